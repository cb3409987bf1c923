package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// Problem types of the federation endpoint; they live with the API's others in
// api/problem (docs/problems.md).
const (
	TypeLoop          = problem.TypeFederationLoop
	TypeHopLimit      = problem.TypeFederationHopLimit
	TypeClockSkew     = problem.TypeFederationClockSkew
	TypeMisdirected   = problem.TypeFederationMisdirected
	TypeUntrustedPeer = problem.TypeFederationUntrustedPeer
	// TypeEnvelopeMismatch: the envelope's NachrichtID or LeiKa key is not the
	// package's (intake.ErrEnvelopeMismatch).
	TypeEnvelopeMismatch = problem.TypeFederationEnvelopeMismatch
	// TypeTooManyQuestions: a status question of a peer that has one in
	// flight already waited QuestionWait for it (429, Retry-After).
	TypeTooManyQuestions = problem.TypeFederationTooManyQuestions
)

// Client is the forwarding side: it sends envelopes and status questions to peers
// and checks their signed answers. Safe for concurrent use.
type Client struct {
	Self   string
	Signer *signing.Signer
	Trust  *Trust
	// HTTP sends the requests; it is copied once and its CheckRedirect replaced:
	// redirects are never followed (NoRedirects). Nil: http.DefaultClient's copy.
	HTTP *http.Client
	Now  func() time.Time

	hcOnce sync.Once
	hc     *http.Client
}

// NoRedirects is the CheckRedirect of every client that talks to a peer: a
// redirect would send the package (or a question about it) to an address no
// operator configured, so the 3xx itself is the answer.
func NoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// client is HTTP with NoRedirects, made once.
func (c *Client) client() *http.Client {
	c.hcOnce.Do(func() {
		hc := http.Client{}
		if c.HTTP != nil {
			hc = *c.HTTP
		}
		hc.CheckRedirect = NoRedirects
		c.hc = &hc
	})
	return c.hc
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Answer is the peer's answer to a hop: its signed Eingangsbestaetigung.
type Answer struct {
	Raw       []byte
	Receipt   signing.Receipt
	Duplicate bool // the peer had the package already (HTTP 200)
	// At is when the peer received the package, to be recorded here: the
	// receipt's time, bounded by this gateway's clock. A fresh receipt's time
	// further from this gateway's clock than the peer's clock_skew is replaced
	// by this gateway's clock (the peer received the package during this
	// request); a repeat's is bounded to the package's arrival here and now.
	At time.Time
	// ClockOff is how far a fresh receipt's time is from this gateway's clock
	// when that is more than the peer's clock_skew; 0 otherwise.
	ClockOff time.Duration
}

// StatusError is an HTTP answer of a peer that a retry may cure (408, 425, 429, 5xx)
// or a clock-skew refusal.
type StatusError struct {
	Peer   string
	Status int
	Type   string
	Detail string // the peer's words: operators only
	// RetryAfterDelay is the peer's Retry-After (a busy or stopping gateway
	// answers 503 with one); 0: none.
	RetryAfterDelay time.Duration
}

// RetryAfter implements the adapters' Retry-After: the broker waits at least this
// long before the next attempt to the peer.
func (e *StatusError) RetryAfter() time.Duration { return e.RetryAfterDelay }

func (e *StatusError) Error() string {
	return fmt.Sprintf("peer gateway %s answered HTTP %d %s: %s", e.Peer, e.Status, e.Type, e.Detail)
}

// LogReason implements the interface read by adapters.LogReason: without the
// peer's detail, which may quote the package.
func (e *StatusError) LogReason() string {
	return fmt.Sprintf("peer gateway %s answered HTTP %d %s", e.Peer, e.Status, e.Type)
}

// PublicReason implements the adapters' public reason: the status code only.
func (e *StatusError) PublicReason() string {
	if e.Type == TypeClockSkew {
		return fmt.Sprintf("peer gateway %s refused the time of the forwarding (clocks differ)", e.Peer)
	}
	return fmt.Sprintf("peer gateway %s answered HTTP %d", e.Peer, e.Status)
}

// RefusedError is a peer's permanent refusal (unknown service there, no office, a
// loop, ...). Its reason is the peer's problem detail: written by a trusted gateway
// for the portal, so it is the public reason.
type RefusedError struct {
	Peer   string
	Status int
	Type   string
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("peer gateway %s refused the package (HTTP %d %s): %s", e.Peer, e.Status, e.Type, e.Reason)
}

// LogReason implements the interface read by adapters.LogReason: the peer, the
// status and the problem type, without the peer's detail, which quotes what the
// package said (the place as the applicant wrote it, a part's Content-ID that a
// portal made of a file name); the detail stays in the case's events and goes to
// the portal. A redirect's reason is this gateway's own words.
func (e *RefusedError) LogReason() string {
	if e.Status >= 300 && e.Status < 400 {
		return e.Error()
	}
	return fmt.Sprintf("peer gateway %s refused the package (HTTP %d %s; its detail is in the case's events)", e.Peer, e.Status, e.Type)
}

// PublicReason is shown to the portal.
func (e *RefusedError) PublicReason() string {
	return submission.RefusedByPeer(e.Peer, clip(e.Reason, 300))
}

// UnreachableError is a network failure reaching the peer (transient).
type UnreachableError struct {
	Peer string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("peer gateway %s unreachable: %v", e.Peer, e.Err)
}
func (e *UnreachableError) Unwrap() error { return e.Err }

// PublicReason names the peer, not the network details.
func (e *UnreachableError) PublicReason() string {
	if errors.Is(e.Err, context.DeadlineExceeded) {
		return fmt.Sprintf("peer gateway %s did not answer in time", e.Peer)
	}
	return fmt.Sprintf("peer gateway %s is not reachable", e.Peer)
}

// untrustedAnswer is a peer answer that does not verify.
type untrustedAnswer struct {
	Peer string
	Err  error
}

func (e *untrustedAnswer) Error() string {
	return fmt.Sprintf("the answer of peer gateway %s does not verify: %v", e.Peer, e.Err)
}
func (e *untrustedAnswer) Unwrap() error { return e.Err }
func (e *untrustedAnswer) PublicReason() string {
	return fmt.Sprintf("the answer of gateway %s is not signed by a trusted certificate", e.Peer)
}

// untrustedPeer is a peer none of whose certificates is trusted now (Trust.CheckPeer):
// nothing was sent to it.
type untrustedPeer struct {
	Peer string
	Err  error
}

func (e *untrustedPeer) Error() string {
	return fmt.Sprintf("nothing sent to peer gateway %s: %v", e.Peer, e.Err)
}
func (e *untrustedPeer) Unwrap() error { return e.Err }
func (e *untrustedPeer) PublicReason() string {
	return fmt.Sprintf("gateway %s is not a trusted peer now (its certificate is revoked, expired or no longer installed); the package was not sent to it", e.Peer)
}

type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	// retryAfter is the answer's Retry-After header, not part of the JSON.
	retryAfter time.Duration
}

// Part is an attachment forwarded by reference: a part of a multipart/related
// request after the envelope, named by the Content-ID that the package's Anlage
// references (Referenz="cid:"+ContentID). Its size and SHA-256 are inside the
// signed package, so the receiving gateway checks it as its own intake would.
type Part struct {
	ContentID string // without angle brackets
	MimeType  string
	// Open yields the bytes; called once, while the request body is written.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

func (c *Client) post(ctx context.Context, peer config.Peer, path string, body []byte, parts []Part) (int, []byte, problemDoc, error) {
	var rd io.Reader = bytes.NewReader(body)
	ctype := ContentType
	hc := c.client()
	if len(parts) > 0 {
		// The envelope first, then each attachment, written while sent: memory does
		// not grow with the attachments. Gigabytes take longer than the client's
		// timeout for ordinary requests, so ctx alone bounds the request (the broker
		// gives an attempt time by its size).
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() { pw.CloseWithError(writeParts(ctx, mw, body, parts)) }()
		defer pr.Close()
		rd, ctype = pr, `multipart/related; type="`+ContentType+`"; boundary=`+mw.Boundary()
	}
	if path == PathForward {
		// A forwarding, inline or with parts, is bounded by ctx alone: the broker
		// gives the attempt its time by the package's size. The inline path kept
		// the client's fixed timeout (attempt_timeout), so a 32 MiB package (43 MiB
		// of envelope) below ~11 Mbit/s was cut mid-upload on every attempt, and one
		// whose answer came late was stored at the peer and held here (an audit,
		// 2026-12-05). Status questions keep the client's timeout.
		long := *hc
		long.Timeout = 0
		hc = &long
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(peer.BaseURL, "/")+path, rd)
	if err != nil {
		return 0, nil, problemDoc{}, adapters.Permanent("the peer's base URL is not usable", err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept", ContentType+", application/problem+json")
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, problemDoc{}, &UnreachableError{Peer: peer.ID, Err: fmt.Errorf("%w: %v", ctx.Err(), err)}
		}
		return 0, nil, problemDoc{}, &UnreachableError{Peer: peer.ID, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, nil, problemDoc{}, &UnreachableError{Peer: peer.ID, Err: err}
	}
	return resp.StatusCode, b, c.problemOf(resp, b), nil
}

// problemOf reads the problem of an answer that is not a success (b: its body,
// or its first bytes); a success has none.
func (c *Client) problemOf(resp *http.Response, b []byte) problemDoc {
	var p problemDoc
	if resp.StatusCode >= 300 {
		_ = json.Unmarshal(b, &p)
		if p.Detail == "" {
			p.Detail = clip(string(b), 300)
		}
		p.retryAfter = adapters.ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	}
	return p
}

func classify(peer string, status int, p problemDoc) error {
	switch {
	case status >= 300 && status < 400:
		// Not followed (NoRedirects): the peer's base_url is not where it answers.
		// Its body would name the other address; the portal reads the status only.
		r := &RefusedError{Peer: peer, Status: status, Type: p.Type,
			Reason: fmt.Sprintf("HTTP %d, a redirect, which is not followed: the peer's base_url is not where its federation endpoint answers", status)}
		return adapters.Permanent(fmt.Sprintf("peer gateway %s answered HTTP %d (a redirect, not followed)", peer, status), r)
	case status == 408 || status == 425 || status == 429 || status >= 500 || p.Type == TypeClockSkew:
		return &StatusError{Peer: peer, Status: status, Type: p.Type, Detail: p.Detail, RetryAfterDelay: p.retryAfter}
	default:
		reason := p.Detail
		if reason == "" {
			reason = p.Title
		}
		if reason == "" {
			reason = fmt.Sprintf("HTTP %d", status)
		}
		r := &RefusedError{Peer: peer, Status: status, Type: p.Type, Reason: reason}
		return adapters.Permanent(r.PublicReason(), r)
	}
}

// writeParts writes the envelope as the root part and the attachments after it.
func writeParts(ctx context.Context, mw *multipart.Writer, envelope []byte, parts []Part) error {
	root, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {ContentType}, "Content-Id": {"<weiterleitung@amtsbote.invalid>"}})
	if err != nil {
		return err
	}
	if _, err := root.Write(envelope); err != nil {
		return err
	}
	// A part is named by its place, not its Content-ID: a portal may make that
	// of the file's name, and this error ends up in the log (the request's
	// error, adapters.LogReason), which carries no applicant's data.
	for i, p := range parts {
		rc, err := p.Open(ctx)
		if err != nil {
			return fmt.Errorf("federation: attachment part %d of %d: %w", i+1, len(parts), err)
		}
		err = wire.WriteRelatedPart(mw, p.ContentID, p.MimeType, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("federation: attachment part %d of %d: %w", i+1, len(parts), err)
		}
	}
	return mw.Close()
}

// Forward sends one hop and returns the peer's verified receipt. Errors are
// classified for the broker: *adapters.PermanentError (a refusal, an answer that does
// not verify) or transient (unreachable, 5xx, clock skew). Attachments the package
// references (Referenz="cid:...") go along as parts, streamed.
func (c *Client) Forward(ctx context.Context, peer config.Peer, env *Envelope, parts ...Part) (*Answer, error) {
	if err := c.Trust.CheckPeer(peer); err != nil {
		// Its receipt could not be taken: the package would stay with a gateway this
		// one no longer trusts, and the portal would never learn of it.
		u := &untrustedPeer{Peer: peer.ID, Err: err}
		return nil, adapters.Permanent(u.PublicReason(), u)
	}
	env.From, env.To, env.At = c.Self, peer.ID, c.now().UTC()
	// An envelope signed with a certificate outside its validity is refused by
	// every peer as from an untrusted peer, a permanent failure: the package was
	// held. This gateway's certificate ending while it runs is the operator's to
	// mend (a renewed certificate and a restart); until then the hop fails
	// transiently and is tried again.
	if cert := c.Signer.Certificate(); env.At.After(cert.NotAfter) || env.At.Before(cert.NotBefore) {
		return nil, fmt.Errorf("federation: this gateway's certificate %q is not valid at %s (valid %s to %s): peer %s would refuse the envelope; the package waits for a renewed certificate (pki.gateway_cert)",
			cert.Subject.CommonName, env.At.Format(time.RFC3339), cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339), peer.ID)
	}
	doc, err := env.Sign(c.Signer)
	if err != nil {
		return nil, adapters.Permanent("the forwarding envelope cannot be built", err)
	}
	status, body, p, err := c.post(ctx, peer, PathForward, doc, parts)
	if err != nil {
		return nil, err
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return nil, classify(peer.ID, status, p)
	}
	// The receipt's signature is what authenticates the answer: the peer's
	// base_url may be plain http, and its TLS certificate (system roots and
	// tls.outbound_ca_file) says only that a server of that name answered.
	// A fresh receipt (201) was signed now and is verified now; a repeat's
	// (200) is the peer's first receipt, signed when the package first
	// reached it, with the certificate it had then (Trust.VerifyRepeatReceipt).
	var since time.Time
	if n := len(env.Chain); n > 0 {
		since = env.Chain[n-1].At
	}
	var v *signing.Verified
	if status == http.StatusOK {
		v, err = c.Trust.VerifyRepeatReceipt(body, peer, since)
	} else {
		v, _, err = c.Trust.Verify(body, peer.ID)
	}
	if err != nil {
		u := &untrustedAnswer{Peer: peer.ID, Err: err}
		return nil, adapters.Permanent(u.PublicReason(), u)
	}
	r, err := signing.ParseReceipt(v.Root)
	if err == nil && (r.Kind != signing.KindEingang || r.Sender != env.Sender || r.MessageID != env.MessageID ||
		r.PackageSHA256 != env.PackageSHA256() || r.GatewayID != peer.ID) {
		err = fmt.Errorf("receipt for %s/%s of %s, sha256 %s, expected %s/%s of %s, sha256 %s",
			r.Sender, r.MessageID, r.GatewayID, r.PackageSHA256, env.Sender, env.MessageID, peer.ID, env.PackageSHA256())
	}
	if err != nil {
		u := &untrustedAnswer{Peer: peer.ID, Err: err}
		return nil, adapters.Permanent("the receipt of gateway "+peer.ID+" does not match the package", u)
	}
	ans := &Answer{Raw: body, Receipt: r, Duplicate: status == http.StatusOK, At: r.Time}
	// The receipt's time is the peer's clock. The package is the peer's now
	// whatever its clock says, so a receipt is never refused for its time
	// (refused, the forwarding would be repeated and answered with the same
	// receipt, and the portal would read a failure while the peer's office
	// has the package); what is recorded here is bounded by this gateway's
	// clock, as the times of its status answers are.
	now := c.now()
	if ans.Duplicate {
		ans.At = submission.ClampTime(r.Time, since, now)
	} else if off := r.Time.Sub(now); off > peer.Skew() || -off > peer.Skew() {
		ans.At, ans.ClockOff = now, off
	}
	return ans, nil
}

// Status asks the peer about packages forwarded to it and returns its verified answer.
func (c *Client) Status(ctx context.Context, peer config.Peer, refs []Ref) (*Report, error) {
	return c.StatusWithReplies(ctx, peer, refs, nil)
}

// StatusWithReplies is Status that asks, for each package in have, for its
// office's replies after the first have[ref] (Query.Replies).
func (c *Client) StatusWithReplies(ctx context.Context, peer config.Peer, refs []Ref, have map[Ref]int) (*Report, error) {
	if err := c.Trust.CheckPeer(peer); err != nil {
		return nil, &untrustedPeer{Peer: peer.ID, Err: err}
	}
	q := &Query{From: c.Self, To: peer.ID, At: c.now().UTC(), Refs: refs, Replies: have}
	doc, err := q.Sign(c.Signer)
	if err != nil {
		return nil, err
	}
	status, body, p, err := c.post(ctx, peer, PathStatus, doc, nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, classify(peer.ID, status, p)
	}
	v, _, err := c.Trust.Verify(body, peer.ID)
	if err != nil {
		return nil, &untrustedAnswer{Peer: peer.ID, Err: err}
	}
	rp, err := ParseReport(v.Root)
	if err != nil {
		return nil, err
	}
	if rp.From != peer.ID {
		return nil, &untrustedAnswer{Peer: peer.ID, Err: fmt.Errorf("report says it is from %q", rp.From)}
	}
	if err := c.Trust.CheckAddressed(rp.To); err != nil {
		return nil, err
	}
	if err := c.Trust.CheckTime(peer, rp.At); err != nil {
		return nil, err
	}
	return rp, nil
}
