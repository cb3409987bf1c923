package federation

// Replies travel back (docs/federation.md, "Replies"): the office that decides a
// forwarded package is at the receiving gateway, and so is its Bescheid or
// Rückfrage; the portal that submitted reads at the forwarding gateway. The
// forwarding gateway's status question asks for the replies after those it has
// (Query.Replies); the answer announces each with its size and SHA-256 inside
// the signed Statusauskunft (ReplyInfo); the forwarding gateway fetches the bytes
// with a signed Antwortabruf and stores them only if they are what was announced.
// The bytes need no signature of their own: the announcement is signed.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// PathReply is where a forwarding gateway fetches the bytes of a reply.
const PathReply = PathPrefix + "/antworten"

// MaxReplyQueryBytes bounds an Antwortabruf: a head, one package named as in a
// status question, a reply id, and the signature (as EnvelopeOverhead allows).
const MaxReplyQueryBytes = 2*500*6 + 200*6 + 128<<10

// ReplyQuery asks for the bytes of one reply (Antwortabruf).
type ReplyQuery struct {
	From, To string
	At       time.Time
	Ref      Ref
	ReplyID  string
}

// Sign builds and signs the question.
func (q *ReplyQuery) Sign(s *signing.Signer) ([]byte, error) {
	if q.ReplyID == "" {
		return nil, fmt.Errorf("%w: an Antwortabruf names a reply", ErrMalformed)
	}
	root := statusDoc("Antwortabruf", q.From, q.To, q.At)
	addVorgang(root, q.Ref)
	add(root, "AntwortID", q.ReplyID)
	return s.Sign(root)
}

// ParseReplyQuery reads an Antwortabruf from a verified root.
func ParseReplyQuery(root *etree.Element) (*ReplyQuery, error) {
	if err := checkRoot(root, "Antwortabruf"); err != nil {
		return nil, err
	}
	r := newReader(root, "Antwortabruf")
	q := &ReplyQuery{}
	q.From, q.To, q.At = readHead(r)
	ref, _, err := readVorgang(r, "Antwortabruf")
	if err != nil {
		return nil, err
	}
	q.Ref = ref
	q.ReplyID = r.text("AntwortID", 200)
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return q, nil
}

// repliesOf announces s's replies after the first from, at most budget of them
// (and MaxReplies), oldest first.
func repliesOf(s *submission.Submission, from, budget int) []ReplyInfo {
	var out []ReplyInfo
	for _, r := range s.Replies[min(from, len(s.Replies)):] {
		if len(out) == min(budget, MaxReplies) {
			break
		}
		out = append(out, ReplyInfo{ID: r.ID, Kind: r.Kind, ContentType: r.ContentType, FileName: r.FileName, Size: r.Size, SHA256: r.SHA256, At: r.At, Actor: r.Actor})
	}
	return out
}

// reply answers a signed Antwortabruf with the bytes of one reply of a package
// the asking peer forwarded here, and records the first whole fetch as the
// portal's (submission.EventReplyFetched). Any other package, and a reply it does not
// have, is 404 not-found, whether it exists or not (as the status answer's
// "unbekannt"); a case whose bytes were removed is 410 gone.
func (h *Receiver) reply(w http.ResponseWriter, r *http.Request) {
	q, peer, ok := readSigned(h, w, r, MaxReplyQueryBytes, "reply question", ParseReplyQuery, func(q *ReplyQuery) (string, string, time.Time) { return q.From, q.To, q.At })
	if !ok {
		return
	}
	notFound := func() {
		problem.Write(w, r, problem.New(http.StatusNotFound, problem.TypeNotFound, "no such reply of a package your gateway forwarded here"))
	}
	s, err := h.Broker.FindMessage(q.Ref.Sender, q.Ref.MessageID)
	if errors.Is(err, store.ErrNotFound) || err == nil && (s.Origin == nil || s.Origin.Gateway != peer.ID) {
		notFound()
		return
	}
	if err != nil {
		h.fail(w, r, peer.ID, err)
		return
	}
	rep, rc, err := h.Broker.OpenReplyOf(r.Context(), s, q.ReplyID)
	if errors.Is(err, broker.ErrNotFound) || errors.Is(err, store.ErrNotFound) {
		notFound()
		return
	}
	if err != nil {
		h.fail(w, r, peer.ID, err)
		return
	}
	defer rc.Close()
	// Up to 64 MiB: under the progress rule of every other download (and of a
	// forwarding's upload), not the server's fixed write timeout, which cut a
	// reply of tens of megabytes off on a slow link at every attempt.
	u := h.uploads()
	w = api.Paced(w, api.Transfer{Window: u.Window, MinRate: u.MinRate})
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(rep.Size, 10))
	n, err := io.Copy(w, rc)
	if err != nil || n != rep.Size {
		if r.Context().Err() == nil {
			h.log().Warn("sending a reply to the peer gateway broke off", "peer", peer.ID, "submission", s.ID, "err", err)
		}
		return
	}
	// The peer fetches it for its portal, which holds the applicant: for the
	// office here that is the portal's fetch (broker.RecordReplyFetch).
	if err := h.Broker.RecordReplyFetch(s.ID, rep, "gateway "+peer.ID); err != nil {
		h.log().Warn("could not record the peer gateway's fetch of a reply; its next fetch records it", "peer", peer.ID, "submission", s.ID, "reply", rep.ID, "err", err)
	}
}

// FetchReply asks the peer for the bytes of one reply its signed status answer
// announced (a). The caller reads at most a.Size bytes and checks them against
// a.SHA256 (broker.RecordPeerReply does both); ctx bounds the whole transfer.
// Errors: a refusal (404, 410, ...) is a *RefusedError, anything else transient.
func (c *Client) FetchReply(ctx context.Context, peer config.Peer, ref Ref, a ReplyInfo) (io.ReadCloser, error) {
	if err := c.Trust.CheckPeer(peer); err != nil {
		return nil, &untrustedPeer{Peer: peer.ID, Err: err}
	}
	q := &ReplyQuery{From: c.Self, To: peer.ID, At: c.now().UTC(), Ref: ref, ReplyID: a.ID}
	doc, err := q.Sign(c.Signer)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(peer.BaseURL, "/")+PathReply, strings.NewReader(string(doc)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("Accept", "application/octet-stream, application/problem+json")
	// The transfer is bounded by ctx (the caller gives it time by the size), not
	// by the client's timeout for status questions. Its answer must begin within
	// replyAnswerWait all the same: a peer that took the question and answered
	// nothing held the fetch — and its next status question (the tracker asks
	// and fetches in turn) — for the whole time of the reply's size, 17 minutes
	// for 64 MiB (an audit, 2026-12-07).
	hc := *c.client()
	hc.Timeout = 0
	rctx, cancel := context.WithCancel(ctx)
	late := time.AfterFunc(replyAnswerWait, cancel)
	resp, err := hc.Do(req.WithContext(rctx))
	if !late.Stop() {
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		return nil, &UnreachableError{Peer: peer.ID, Err: fmt.Errorf("no answer within %s: %w", replyAnswerWait, context.DeadlineExceeded)}
	}
	if err != nil {
		cancel()
		return nil, &UnreachableError{Peer: peer.ID, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, classify(peer.ID, resp.StatusCode, c.problemOf(resp, b))
	}
	if resp.ContentLength >= 0 && resp.ContentLength != a.Size {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("federation: peer gateway %s sends %d bytes for reply %s, %d announced", peer.ID, resp.ContentLength, a.ID, a.Size)
	}
	return cancelOnClose{resp.Body, cancel}, nil
}

// replyAnswerWait is how long a fetch of a reply waits for the peer's answer
// to begin (its status line and headers); the bytes then have the time of
// their size. A variable for tests.
var replyAnswerWait = QuestionTimeout

// cancelOnClose is a body whose Close also ends the context its request ran
// under.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
