package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// maxReplyMediaType bounds the Content-Type of a reply as sent: it is kept in
// the case's record with every reply (up to a hundred), and a header may have
// 64 KiB. RFC 6838 gives a type and a subtype 127 characters each; the rest is
// room for parameters.
const maxReplyMediaType = 255

// replyIn is what POST …/replies asks for, read from its query and headers.
type replyIn struct {
	kind, contentType, key string
	fileName               string // from Content-Disposition, as submission.FileName keeps it
}

// officeReply stores a reply of the office to the applicant — a Bescheid, a
// Rückfrage — that its system sends through the office API (POST
// /v1/office/submissions/{id}/replies?kind=…, the bytes as they are, their
// media type as Content-Type). Until it came only an office on XTA could
// answer the applicant through the gateway (sendMessage); a Fachverfahren on
// the webhook or the api channel could accept or reject and had to send its
// Bescheid some other way. The portal then lists it in the case's status and
// reads its bytes (GET /v1/submissions/{id}/replies/{rid}), across the
// Portalverbund too.
//
// The optional Idempotency-Key is the office's own id for the reply
// (broker.ReplyIn.MessageID): a system that lost the answer sends the same
// request again and gets the reply stored the first time (200). The same key
// with another kind, media type or other bytes is 409 conflict, told from the
// record before the desk is called: the desk takes a repeat by its key alone
// and would have stored the other bytes as a blob no record names. The desk's
// own rules refuse the rest, before the bytes are stored: a case the office
// does not have yet or that went to a peer gateway (409 conflict), one a
// clerk took over in the web mailbox (409 taken-over), one whose bytes were
// removed (410).
func (s *Server) officeReply(w http.ResponseWriter, r *http.Request) {
	in, p := readReplyRequest(r)
	if p != nil {
		if contentCoded(r.Header) {
			w.Header().Set("Accept-Encoding", "identity") // as intake answers it
		}
		s.refuseUnread(w, r, p)
		return
	}
	// The body limit, and the desk's own bound where the operator raised
	// limits.max_body_bytes beyond it: the desk would refuse a larger reply as
	// a conflict after it was read whole.
	limit := min(s.opt.MaxBodyBytes, broker.MaxReplyBytes)
	if declaredTooLarge(w, r, limit) {
		return
	}
	body, lease, ok := s.readBody(w, r, limit)
	if !ok {
		return
	}
	defer lease.Release()
	if len(body) == 0 {
		problem.Write(w, r, problem.New(422, problem.TypeInvalidField, "the reply is empty: send its bytes as the request body").With("field", "body"))
		return
	}
	if in.key != "" {
		// The look for the key below and the desk's store are one step for
		// the requests with this key to this case: a client that sends its
		// reply again while the first request is still under way (a retry
		// after its own timeout, two workers on one queue) got 201 twice for
		// the one reply stored, or, with other bytes, 409 with those bytes
		// left as a blob no record names (an audit, 2026-12-06). Taken once
		// the body is read, so a slow upload holds nobody up. The lock is this
		// gateway's: two gateways of a cluster that take the same key in the
		// same instant still store one reply (the desk's transaction) and tell
		// both 201, and a loser's other bytes wait for the retention's sweep.
		defer s.replyKeys.Lock(officeOf(r) + "\x00" + chi.URLParam(r, "id") + "\x00" + in.key)()
	}
	sub, ok := s.officeSub(w, r)
	if !ok {
		return
	}
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	if in.key != "" {
		for _, have := range sub.Replies {
			if have.MessageID == in.key {
				s.answerRepeat(w, r, sub.ID, have, in, digest)
				return
			}
		}
	}
	rep, err := s.opt.Desk.Reply(r.Context(), sub.OfficeID, sub.ID, broker.ReplyIn{
		Kind: in.kind, MessageID: in.key, ContentType: in.contentType, FileName: in.fileName, Content: body,
		Actor: "office " + sub.OfficeID + " (pull API)", Channel: channel.API})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if in.key != "" && !sameReply(rep, in, digest) {
		// A request with the key on another gateway of a cluster stored its
		// reply between the look above and this one's commit: the desk
		// returned that one. These bytes were not recorded (their blob, if
		// new, goes with the retention's sweep).
		problem.Write(w, r, problem.New(http.StatusConflict, problem.TypeConflict, otherReply(rep)))
		return
	}
	// Created, also in that race across gateways when the other request sent
	// the same reply: both are told its id, and it is stored once.
	writeReply(w, http.StatusCreated, sub.ID, rep)
}

// answerRepeat answers a request whose Idempotency-Key names the reply have
// of the case id: 200 with it when the request sends the same reply again,
// 409 conflict otherwise. Nothing is stored either way.
func (s *Server) answerRepeat(w http.ResponseWriter, r *http.Request, id string, have submission.Reply, in replyIn, digest string) {
	if !sameReply(have, in, digest) {
		problem.Write(w, r, problem.New(http.StatusConflict, problem.TypeConflict, otherReply(have)))
		return
	}
	w.Header().Set(wire.HeaderDuplicate, "true")
	writeReply(w, http.StatusOK, id, have)
}

// sameReply reports whether the stored reply have is the one in asks for with
// a body of this digest: the same kind, media type, file name
// (submission.Reply.NamedAs) and bytes.
func sameReply(have submission.Reply, in replyIn, digest string) bool {
	return have.Kind == in.kind && have.ContentType == in.contentType && have.SHA256 == digest && have.NamedAs(in.fileName)
}

// otherReply is the detail of a 409 for an Idempotency-Key that names have,
// another reply than the one sent.
func otherReply(have submission.Reply) string {
	return fmt.Sprintf("the Idempotency-Key names another reply: %s %s (%s, %d bytes, SHA-256 %s), stored %s; "+
		"a repeat sends the same kind, media type and bytes, and this one was not stored (send another reply with another key)",
		have.Kind, have.ID, have.ContentType, have.Size, have.SHA256, have.At.UTC().Format(time.RFC3339))
}

// writeReply answers a reply stored (201) or repeated (200): the reply as the
// office's view lists it, with its link, also as Location.
func writeReply(w http.ResponseWriter, status int, id string, rep submission.Reply) {
	w.Header().Set("Location", wire.OfficeReplyPath(id, rep.ID))
	writeJSON(w, status, replyOf(rep, wire.OfficeReplyPath(id, rep.ID)))
}

// readReplyRequest reads what a reply's request says besides its body: its
// media type (Content-Type, required; no content coding), its kind (the query
// parameter kind) and the office's Idempotency-Key, and returns the refusal
// (415, 422) if one breaks its rule.
func readReplyRequest(r *http.Request) (replyIn, *problem.Problem) {
	var in replyIn
	// The bytes are stored and handed to the portal as they come, and the
	// gateway decodes no content coding: a gzipped Bescheid would reach the
	// applicant as gzip labelled application/pdf.
	if contentCoded(r.Header) {
		return in, problem.New(http.StatusUnsupportedMediaType, problem.TypeUnsupportedMedia,
			"send the reply without a Content-Encoding: the gateway stores and hands on its bytes as they are")
	}
	ct := strings.TrimSpace(r.Header.Get("Content-Type"))
	mt, params, err := mime.ParseMediaType(ct)
	if ct != "" && err == nil {
		ct = mime.FormatMediaType(mt, params) // "" for what it cannot write back
	}
	// ParseMediaType takes a lone token ("pdf") as well: a media type has its
	// type and its subtype. And a wildcard ("*/*", a client's default, or
	// "application/*") names a range of types to accept, not the bytes': the
	// portal was handed the reply as "*/*".
	typ, sub, _ := strings.Cut(mt, "/")
	switch {
	case ct == "" || err != nil || typ == "" || sub == "" || typ == "*" || sub == "*" || len(r.Header.Values("Content-Type")) > 1 || len(ct) > maxReplyMediaType:
		return in, problem.New(http.StatusUnsupportedMediaType, problem.TypeUnsupportedMedia,
			fmt.Sprintf("name the reply's media type as Content-Type (application/pdf, text/plain; charset=utf-8, …), one, of at most %d characters: the portal hands it on with it", maxReplyMediaType))
	case mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data":
		// What curl -d and -F send on their own: a form around the reply, not
		// the reply (-d also drops its line breaks).
		return in, problem.New(http.StatusUnsupportedMediaType, problem.TypeUnsupportedMedia,
			"a reply is sent as its own bytes with its own media type, not as a form ("+mt+"; curl: --data-binary @file -H 'Content-Type: application/pdf')")
	}
	in.contentType = ct
	if p := repeatedParam(r, wire.ReplyKindParam); p != nil {
		return in, p
	}
	in.kind = strings.TrimSpace(r.URL.Query().Get(wire.ReplyKindParam))
	if in.kind == "" || !utf8.ValidString(in.kind) || utf8.RuneCountInString(in.kind) > wire.MaxReplyKindLength || strings.ContainsFunc(in.kind, unicode.IsControl) {
		return in, problem.New(422, problem.TypeInvalidField,
			fmt.Sprintf("kind names the reply's kind (Bescheid, Rueckfrage, …): 1 to %d characters, no control characters", wire.MaxReplyKindLength)).With("field", wire.ReplyKindParam)
	}
	name, p := replyFileName(r.Header)
	if p != nil {
		return in, p
	}
	in.fileName = name
	keys := r.Header.Values(wire.HeaderIdempotencyKey)
	if len(keys) > 1 {
		return in, problem.New(422, problem.TypeInvalidField, wire.HeaderIdempotencyKey+" is given more than once; it takes one value").With("field", wire.HeaderIdempotencyKey)
	}
	if len(keys) == 1 {
		in.key = keys[0]
		if in.key == "" || len(in.key) > wire.MaxIdempotencyKeyLength || strings.ContainsFunc(in.key, func(c rune) bool { return c < 0x20 || c > 0x7e }) {
			return in, problem.New(422, problem.TypeInvalidField,
				fmt.Sprintf("%s is the office's own id for the reply: 1 to %d printable ASCII characters", wire.HeaderIdempotencyKey, wire.MaxIdempotencyKeyLength)).With("field", wire.HeaderIdempotencyKey)
		}
	}
	return in, nil
}

// replyFileName reads the reply's file name from the request's optional
// Content-Disposition (RFC 6266 syntax, as a download carries it: attachment;
// filename="Bescheid.pdf", or filename*=UTF-8”… for a name that is not
// ASCII), the name's last element as submission.FileName keeps it; a header
// that names no file, or a name no file has, is 422. The detail never quotes
// the name: it often names the applicant.
func replyFileName(h http.Header) (string, *problem.Problem) {
	cds := h.Values(wire.HeaderContentDisposition)
	if len(cds) == 0 {
		return "", nil
	}
	refuse := func(why string) (string, *problem.Problem) {
		return "", problem.New(422, problem.TypeInvalidField,
			wire.HeaderContentDisposition+" names the reply's file, once: attachment; filename=\"Bescheid.pdf\" (filename*=UTF-8''… for a name that is not ASCII); "+why).With("field", wire.HeaderContentDisposition)
	}
	if len(cds) > 1 {
		return refuse("it is given more than once")
	}
	_, params, err := mime.ParseMediaType(cds[0])
	sent, named := params["filename"]
	if err != nil || !named {
		return refuse("this one does not parse or names no filename")
	}
	name, err := submission.FileName(sent)
	switch {
	case err != nil:
		return refuse(strings.TrimPrefix(err.Error(), submission.ErrFileName.Error()+": "))
	case name == "":
		return refuse("this one names a path, no file")
	}
	return name, nil
}

// readBody reads a plain upload's body whole, at most max bytes, within the
// body budget (limits.body_memory): the budget grows with the bytes that
// arrive (httpbody.FirstBytes says why). On a refusal (413 too-large, 503
// busy, 400) it has answered and reports false; otherwise the caller releases
// the lease once it is done with the body.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, *httpbody.Lease, bool) {
	lease, err := s.opt.BodyBudget.Acquire(r.Context(), httpbody.First(r.ContentLength))
	if err != nil {
		s.refuseUnread(w, r, err)
		return nil, nil, false
	}
	body, err := httpbody.ReadAll(lease.Reader(r.Context(), http.MaxBytesReader(w, r.Body, max), max), r.ContentLength)
	lease.Keep(int64(cap(body)))
	if err != nil {
		lease.Release()
		if isMaxBytes(err) || errors.Is(err, httpbody.ErrBusy) {
			s.fail(w, r, err)
			return nil, nil, false
		}
		problem.Write(w, r, problem.New(400, problem.TypeMalformed, "could not read the request body"))
		return nil, nil, false
	}
	return body, lease, true
}

// officeReplyBytes serves the bytes of one reply of the office's case, for
// its system to read back what it sent (or what it sent by XTA). Unlike the
// package and the attachments it is served also for a case a clerk took over,
// as long as the reply is one its system sent before the takeover — but not
// the clerk's own (sent from the web mailbox): a Bescheid to a case that is
// the clerk's holds what the system may no longer read of it (409
// taken-over, as its package).
func (s *Server) officeReplyBytes(w http.ResponseWriter, r *http.Request) {
	sub, ok := s.officeSub(w, r)
	if !ok {
		return
	}
	rid := chi.URLParam(r, "rid")
	if sub.TakenOverFrom != "" && slices.ContainsFunc(sub.Replies, func(rp submission.Reply) bool { return rp.ID == rid && rp.Channel == channel.Mailbox }) {
		s.fail(w, r, fmt.Errorf("%w: %w", broker.ErrConflict, pullAdmit(sub)))
		return
	}
	rep, rc, err := s.opt.Desk.OpenReply(r.Context(), sub.OfficeID, sub.ID, rid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rc.Close()
	_, _ = serveReply(w, rep, rc, s.transfer()) // the office's own read records nothing
}

// attachmentNamed is a download's Content-Disposition: attachment with the
// file's name (RFC 2231 filename* when it is not ASCII).
func attachmentNamed(name string) string {
	return mime.FormatMediaType("attachment", map[string]string{"filename": name})
}

// serveReply sends the bytes of rep with its media type (application/
// octet-stream if it has none that parses) and its file name if it has one,
// under the progress rule: a reply may have 64 MiB, as the office's package.
// It returns what io.Copy does: the bytes written, and why it stopped early.
func serveReply(w http.ResponseWriter, rep submission.Reply, rc io.Reader, t Transfer) (int64, error) {
	replyHeaders(w, rep)
	return io.Copy(Paced(w, t), rc)
}

// replyHeaders are the header fields of a reply's download, a HEAD's too.
func replyHeaders(w http.ResponseWriter, rep submission.Reply) {
	ct := rep.ContentType
	if _, _, err := mime.ParseMediaType(ct); err != nil || ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	if rep.FileName != "" {
		// The name the office gave it, for the portal to save it under
		// (RFC 2231 filename* when it is not ASCII), as an attachment's.
		w.Header().Set(wire.HeaderContentDisposition, attachmentNamed(rep.FileName))
	}
	w.Header().Set("Content-Length", strconv.FormatInt(rep.Size, 10))
}
