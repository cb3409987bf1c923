package federation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/internal/clientgone"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/internal/repeatlimit"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/beevik/etree"
)

// PathNudge is where a peer tells the forwarding gateway that something changed, so
// it asks soon instead of at its next poll. Empty, it needs no authentication:
// all it can do is trigger a signed status question, and however many come, at
// most one early question per peer per NudgeGap. With a signed Aenderungsmeldung
// (changes.go) it also names the packages to ask about.
const PathNudge = PathPrefix + "/hinweis"

// Receiver is the receiving gateway's HTTP face of the Portalverbund, mounted at
// PathPrefix: it takes forwarded packages, answers status questions and nudges.
type Receiver struct {
	Trust    *Trust
	Signer   *signing.Signer
	Pipeline *intake.Pipeline
	Broker   *broker.Broker
	// MaxBytes bounds the body of a forwarding (an envelope holds the package in
	// base64), and the envelope part of a forwarding with attachments: what the
	// envelope of a package of the gateway's largest size needs (EnvelopeBytes).
	// Default: EnvelopeBytes of paket's default package limit.
	MaxBytes int64
	// Bodies bounds the bytes of request bodies held in memory at once: an
	// envelope is read whole before its signature can be checked, by anyone who
	// reaches the port. A request takes its declared length (the limit when it
	// declares none) before reading, and waits at most BodyWait for room; then it
	// is answered 503 with Retry-After. Default: room for two envelopes of
	// MaxBytes (DefaultBodies). Bodies from an address a trusted peer has sent
	// a signed document from may take PeerRoom more (peeraddrs.go).
	Bodies *httpbody.Budget
	// PeerRoom is the memory for bodies beyond Bodies that only addresses a
	// trusted peer sent from may take, so that junk filling Bodies does not
	// hold up the peers' forwardings. Default: one envelope of MaxBytes.
	PeerRoom int64
	// PeerAddrTTL is how long such an address is remembered after its last
	// signed document; default DefaultPeerAddrTTL.
	PeerAddrTTL time.Duration
	// TrustedProxies are the reverse proxies in front of the gateway
	// (http.trusted_proxies): behind one, a request's address is the client's
	// it recorded in X-Forwarded-For.
	TrustedProxies []netip.Prefix
	// PeerAddresses are where the configured peers send from (peers[].addresses):
	// known as peers' addresses from the start, as if a signed document had come.
	PeerAddresses []netip.Prefix
	// Uploads bound a forwarding with attachments (multipart/related): its whole
	// size and the progress rule its body must keep (api.UploadBody).
	Uploads Uploads
	// NextPeer says which peer a place goes to from here (loop check before storing).
	NextPeer func(ars string) (string, bool)
	// Nudged is called when a peer nudges (Tracker.Kick: the tracker asks soon); may be nil.
	Nudged func()
	// Changed is called with a peer's signed Aenderungsmeldung: the packages it
	// names, forwarded to that peer (Tracker.Changed); nil: Nudged is called.
	// ctx ends with the request.
	Changed func(ctx context.Context, peer string, refs []Ref)
	// StoreDown, if set, says why the gateway's store is known to be out of reach
	// now (a cluster without quorum); nil: it answers. A forwarding or a status
	// request is then answered 503 at once, before its body is read, instead of
	// holding body memory for the store's timeout (30 s).
	StoreDown func() error
	// QuestionWait is how long a peer's status question waits for the one
	// the peer has in flight before it is answered 429 (questions.go);
	// default DefaultQuestionWait.
	QuestionWait time.Duration
	// Metrics counts the questions so answered; nil counts nothing.
	Metrics *Metrics
	Log     *slog.Logger

	questions  questionSlots
	bodiesOnce sync.Once
	all        *httpbody.Budget // Bodies and PeerRoom (bodies)
	addrs      peerAddrs
	// refusedLog lets the line of a 503 through once a minute: a flood of
	// posts must not flood the log (set up once, on first use).
	refusedLog  repeatlimit.Limit
	refusedOnce sync.Once
}

// Uploads are the limits of a forwarding with attachments.
type Uploads struct {
	MaxBytes     int64         // the whole request; default MaxBytes + 4 GiB
	Window       time.Duration // default api.DefaultTransferWindow
	MinRate      int64         // bytes per second; default api.DefaultTransferMinRate
	WriteTimeout time.Duration // for the answer after the upload; default api.DefaultWriteTimeout
}

func (h *Receiver) uploads() Uploads {
	u := h.Uploads
	if u.MaxBytes <= 0 {
		u.MaxBytes = h.maxBytes() + 4<<30
	}
	if u.Window <= 0 {
		u.Window = api.DefaultTransferWindow
	}
	if u.MinRate <= 0 {
		u.MinRate = api.DefaultTransferMinRate
	}
	if u.WriteTimeout <= 0 {
		u.WriteTimeout = api.DefaultWriteTimeout
	}
	return u
}

func (h *Receiver) maxBytes() int64 {
	if h.MaxBytes <= 0 {
		return EnvelopeBytes(paket.DefaultLimits().MaxBytes)
	}
	return h.MaxBytes
}

// EnvelopeOverhead bounds what a forwarding envelope holds besides the package's
// base64: the elements the receiver reads (ParseEnvelope's limits: 2,054
// characters of head fields and up to 2×MaxHops stations of 764, under 8,200
// characters in all, at most 6 bytes each as written: ~49 KB), the portal's
// certificate (at most 64 KiB of base64) and the signature (SignedInfo, the value
// and the signer's certificate chain in KeyInfo: a few KiB, 64 KiB allowed);
// rounded up.
const EnvelopeOverhead = 256 << 10

// EnvelopeBytes is the largest envelope a package of at most maxPackage bytes
// needs: the package travels as unwrapped base64 (4 bytes per 3, the last group
// padded) plus EnvelopeOverhead. A receiving gateway takes packages up to its own
// limits.max_body_bytes whatever the way they came (intake checks the decoded
// package again), so a larger envelope can only be refused. 32 MiB packages make
// envelopes of at most 42.9 MiB (it was 2 × 32 MiB + 1 MiB before).
func EnvelopeBytes(maxPackage int64) int64 {
	return 4*((maxPackage+2)/3) + EnvelopeOverhead
}

// MaxQueryBytes bounds a status question: at most MaxQuery packages, each named by
// Absender and NachrichtID of at most 500 characters (6 bytes each as written,
// with their tags), plus the head and the signature as in EnvelopeOverhead. About
// 3 MiB; real questions name UUIDs and stay under 100 KiB.
const MaxQueryBytes = MaxQuery*(2*500*6+128) + 128<<10

// BodyWait is how long a request waits for room in Bodies before it is answered
// 503: briefly, since a forwarding gateway retries anyway.
const BodyWait = 2 * time.Second

// DefaultBodies is the default of Receiver.Bodies for envelopes of at most
// maxBytes: two envelopes of the largest size at once, or many ordinary ones (a
// package is typically 10-50 KB). Each envelope read takes a few times its size
// until intake is done with it (the parsed document, the decoded package).
func DefaultBodies(maxBytes int64) *httpbody.Budget {
	return httpbody.NewBudget(2*maxBytes, BodyWait)
}

func (h *Receiver) bodies() *httpbody.Budget {
	h.bodiesOnce.Do(func() {
		if h.Bodies == nil {
			h.Bodies = DefaultBodies(h.maxBytes())
		}
		room := h.PeerRoom
		if room <= 0 {
			room = h.maxBytes()
		}
		h.all = httpbody.NewBudget(h.Bodies.Max()+room, BodyWait)
		h.Bodies.Within(h.all)
	})
	return h.Bodies
}

func (h *Receiver) log() *slog.Logger {
	if h.Log == nil {
		return slog.Default()
	}
	return h.Log
}

// ServeHTTP implements http.Handler.
func (h *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if (r.URL.Path == PathForward || r.URL.Path == PathStatus || r.URL.Path == PathReply) && r.Method == http.MethodPost && h.StoreDown != nil {
		if err := h.StoreDown(); err != nil {
			h.early(w, r, h.maxBytes(), func() { api.WriteStoreDown(w, r, err) })
			return
		}
	}
	switch {
	case r.URL.Path == PathForward && r.Method == http.MethodPost:
		h.forward(w, r)
	case r.URL.Path == PathStatus && r.Method == http.MethodPost:
		h.status(w, r)
	case r.URL.Path == PathReply && r.Method == http.MethodPost:
		h.reply(w, r)
	case r.URL.Path == PathNudge && r.Method == http.MethodPost:
		h.nudge(w, r)
	case r.URL.Path == PathSchema && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write(XSD)
	case r.URL.Path == PathForward || r.URL.Path == PathStatus || r.URL.Path == PathReply || r.URL.Path == PathNudge:
		h.early(w, r, h.maxBytes(), func() {
			w.Header().Set("Allow", "POST")
			problem.Write(w, r, problem.New(http.StatusMethodNotAllowed, problem.TypeMethodNotAllowed, "use POST"))
		})
	default:
		h.early(w, r, h.maxBytes(), func() {
			problem.Write(w, r, problem.New(http.StatusNotFound, problem.TypeNotFound, "no such resource"))
		})
	}
}

// early answers a request before its body has been read to its end, and then
// reads and discards the rest, at most max bytes within one window of the
// upload's progress rule: answered and closed with the rest unread, the
// connection was reset under a peer still sending, which saw "connection
// reset" instead of the problem and took a refusal for a failure to retry
// (httpbody.Drain). Nothing of the rest is held.
func (h *Receiver) early(w http.ResponseWriter, r *http.Request, max int64, answer func()) {
	httpbody.Refusing(w, r)
	answer()
	httpbody.Drain(w, r, r.Body, max, time.Now().Add(h.uploads().Window))
}

// declaredRest is what early may read of a body declared longer than max,
// before a byte of it was read: up to max again (as much as a body cut at the
// limit while read may have left), and nothing where its end lies beyond
// that, as the drain could not reach it.
func declaredRest(r *http.Request, max int64) int64 {
	if r.ContentLength > 2*max {
		return 0
	}
	return 2 * max
}

// read reads a request body of at most max bytes into memory, within the body
// budget: it takes the declared length (or max) before reading and keeps what the
// body needed; the caller releases the lease when it is done with the body. A body
// declared larger than max is refused before a byte of it is read.
func (h *Receiver) read(w http.ResponseWriter, r *http.Request, max int64) ([]byte, *httpbody.Lease, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/xml") && !strings.HasPrefix(ct, "text/xml") {
		h.early(w, r, max, func() {
			problem.Write(w, r, problem.New(http.StatusUnsupportedMediaType, problem.TypeUnsupportedMedia, "send application/xml"))
		})
		return nil, nil, false
	}
	tooLarge := func() {
		problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, problem.TypeTooLarge, fmt.Sprintf("body larger than %d bytes", max)).With("max", max))
	}
	if r.ContentLength > max {
		h.early(w, r, declaredRest(r, max), tooLarge)
		return nil, nil, false
	}
	// The budget grows with the bytes that arrive (httpbody.FirstBytes says why).
	lease, err := h.budgetFor(r).Acquire(r.Context(), httpbody.First(r.ContentLength))
	if err != nil {
		h.early(w, r, max, func() { h.fail(w, r, "", err) })
		return nil, nil, false
	}
	body, err := httpbody.ReadAll(lease.Reader(r.Context(), http.MaxBytesReader(w, r.Body, max), max), r.ContentLength)
	lease.Keep(int64(cap(body)))
	if err != nil {
		lease.Release()
		var mb *http.MaxBytesError
		if errors.Is(err, httpbody.ErrBusy) {
			h.early(w, r, max, func() { h.fail(w, r, "", err) })
		} else if errors.As(err, &mb) {
			// Cut at the limit while read (no length declared): the rest
			// from r.Body itself, under the limit its reader hit.
			h.early(w, r, max, tooLarge)
		} else {
			problem.Write(w, r, problem.New(http.StatusBadRequest, problem.TypeMalformed, "body could not be read"))
		}
		return nil, nil, false
	}
	return body, lease, true
}

// ErrTaken: a forwarded package whose sender and NachrichtID name a package this
// gateway holds from elsewhere: its own portal, another peer, or the same peer with
// other bytes. Only a repeat of the same package by the same peer is idempotent.
var ErrTaken = errors.New("federation: the NachrichtID names another package at this gateway; a NachrichtID names one package")

// sameHop: s, found under the envelope's sender and NachrichtID, is this peer's
// earlier forwarding of the same package.
func sameHop(s *submission.Submission, peer string, env *Envelope) bool {
	return s.Origin != nil && s.Origin.Gateway == peer && s.PackageSHA256 == env.PackageSHA256()
}

// problemFor maps the federation's own errors, then the intake's.
func problemFor(err error) *problem.Problem {
	switch {
	case errors.Is(err, ErrUntrustedPeer):
		return problem.New(http.StatusForbidden, TypeUntrustedPeer, err.Error())
	case errors.Is(err, ErrClockSkew):
		return problem.New(http.StatusBadRequest, TypeClockSkew, err.Error())
	case errors.Is(err, ErrMisdirected):
		return problem.New(http.StatusMisdirectedRequest, TypeMisdirected, err.Error())
	case errors.Is(err, intake.ErrLoop):
		return problem.New(http.StatusConflict, TypeLoop, err.Error())
	case errors.Is(err, intake.ErrHopLimit):
		return problem.New(http.StatusConflict, TypeHopLimit, err.Error())
	case errors.Is(err, httpbody.ErrBusy):
		return problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, "the gateway holds as many forwarded packages in memory as it may; nothing was received; retry later")
	case errors.Is(err, ErrTaken):
		return problem.New(http.StatusConflict, problem.TypeConflict, err.Error())
	case errors.Is(err, intake.ErrEnvelopeMismatch):
		return problem.New(http.StatusUnprocessableEntity, TypeEnvelopeMismatch, err.Error())
	case errors.Is(err, intake.ErrSenderNotVouched):
		return problem.New(http.StatusForbidden, problem.TypeUntrustedSigner, err.Error())
	case errors.Is(err, ErrMalformed):
		return problem.New(http.StatusBadRequest, problem.TypeMalformed, err.Error())
	}
	return api.ProblemFor(err)
}

// fail answers err. An untrusted-peer refusal's line says why, and which
// certificate the document presented (presentedBy: the error carries it from
// where it was read), so that the operator of a new peer can tell a certificate
// missing from the trust store from a revoked or expired one, one of another
// name, or a signer not configured as a peer. It said none of it (an audit,
// 2026-12-06). The reason names certificates and gateway ids, never the
// document's content; the other refusals' reasons may (a NachrichtID, a
// sender) and are not logged.
func (h *Receiver) fail(w http.ResponseWriter, r *http.Request, peer string, err error) {
	if clientgone.Answer(w, r, err, h.log()) {
		return
	}
	p := problemFor(err)
	if p.Status >= 500 {
		if p.Status == http.StatusServiceUnavailable {
			// Busy or stopping is the answer, not a fault: a flood of posts must
			// not flood the log either.
			h.refusedOnce.Do(func() { h.refusedLog.Every = time.Minute })
			if h.refusedLog.Allow(time.Now()) {
				h.log().Warn("federation requests refused for now (at most one such line a minute)", "path", r.URL.Path, "peer", peer, "err", err)
			}
		} else {
			h.log().Error("federation request failed", "path", r.URL.Path, "peer", peer, "err", err)
		}
		if p.Status == http.StatusServiceUnavailable {
			// Busy, stopping or storage failing: a fixed sentence, and when to retry.
			w.Header().Set("Retry-After", api.RetryAfterSeconds)
		} else {
			p.Detail = "internal error; the package was not received"
		}
	} else {
		args := []any{"path", r.URL.Path, "peer", peer, "type", p.Type, "status", p.Status}
		if errors.Is(err, ErrUntrustedPeer) {
			args = append(args, "reason", err.Error())
			args = append(args, presentedBy(err)...)
		}
		h.log().Info("federation request refused", args...)
	}
	problem.Write(w, r, p)
}

// check accepts a signed document of a peer only if a trusted peer signed it, it
// names that peer as its sender and this gateway as its addressee, and its time is
// within the clock-skew window; otherwise it answers the problem itself.
func check[T any](h *Receiver, w http.ResponseWriter, r *http.Request, body []byte, what string,
	parse func(*etree.Element) (T, error), header func(T) (from, to string, at time.Time)) (doc T, peer config.Peer, ok bool) {
	var zero T
	v, peer, err := h.Trust.Verify(body, "")
	if err != nil {
		h.fail(w, r, "", err)
		return zero, peer, false
	}
	doc, err = parse(v.Root)
	if err == nil {
		from, to, at := header(doc)
		if from != peer.ID {
			err = presented(v, fmt.Errorf("%w: %s says it is from %q, signed by %q", ErrUntrustedPeer, what, from, peer.ID))
		} else if err = h.Trust.CheckAddressed(to); err == nil {
			err = h.Trust.CheckTime(peer, at)
		}
	}
	if err != nil {
		h.fail(w, r, peer.ID, err)
		return zero, peer, false
	}
	h.learnAddr(r, peer.ID)
	return doc, peer, true
}

// readSigned reads a peer's signed question of at most max bytes within the body
// budget and checks it (check): a status question and an Antwortabruf need their
// body only until it is read, so its room in the budget is given back then.
func readSigned[T any](h *Receiver, w http.ResponseWriter, r *http.Request, max int64, what string,
	parse func(*etree.Element) (T, error), header func(T) (from, to string, at time.Time)) (doc T, peer config.Peer, ok bool) {
	body, lease, ok := h.read(w, r, max)
	if !ok {
		return doc, peer, false
	}
	defer lease.Release()
	return check(h, w, r, body, what, parse, header)
}

// forward takes one hop: verify the envelope, then receive the package through the
// intake (its own signature, routing here, durable storage) and answer with the
// signed Eingangsbestaetigung; 201 the first time, 200 with the same receipt for a
// repeat.
func (h *Receiver) forward(w http.ResponseWriter, r *http.Request) {
	if mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "multipart/related" {
		h.forwardParts(w, r, params)
		return
	}
	body, lease, ok := h.read(w, r, h.maxBytes())
	if !ok {
		return
	}
	defer lease.Release()
	env, peer, ok := check(h, w, r, body, "envelope", ParseEnvelope, envelopeHeader)
	if !ok {
		return
	}
	h.receive(w, r, env, peer, body, nil)
}

func envelopeHeader(e *Envelope) (string, string, time.Time) { return e.From, e.To, e.At }

// forwardParts takes a hop with attachments by reference (multipart/related): the
// signed envelope is the first part, read into memory within MaxBytes; every
// further part is an attachment the package references, streamed by the intake
// into the blob store against the size and SHA-256 in the signed package — as the
// portal API's multipart intake does, with the same progress rule for the upload.
// The envelope is checked before any attachment is read.
func (h *Receiver) forwardParts(w http.ResponseWriter, r *http.Request, params map[string]string) {
	u := h.uploads()
	if params["boundary"] == "" {
		h.early(w, r, h.maxBytes(), func() {
			problem.Write(w, r, problem.New(http.StatusBadRequest, problem.TypeMalformed, "multipart/related needs a boundary parameter"))
		})
		return
	}
	if r.ContentLength > u.MaxBytes {
		// Beyond the envelope's and every attachment's limit: far more than a
		// refusal may read (declaredRest of the envelope's limit), so at once.
		h.early(w, r, 0, func() {
			problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, problem.TypeTooLarge, fmt.Sprintf("body larger than %d bytes", u.MaxBytes)))
		})
		return
	}
	upload := api.UploadBody(w, r, u.MaxBytes, u.Window, u.MinRate)
	mr := multipart.NewReader(upload, params["boundary"])
	// Every answer from here on sets the write deadline the upload lifted. A
	// refusal (the envelope's framing, its signer, a part the package does
	// not declare) comes with the parts after it unread: they are drained
	// as early does, at most the envelope's limit (as the portal API's
	// uploads, api.failUpload). A repeat does too, further (below).
	a := &answering{ResponseWriter: w, r: r, timeout: u.WriteTimeout}
	defer func() {
		if a.refused {
			httpbody.Drain(a, r, r.Body, h.maxBytes(), time.Now().Add(u.Window))
		}
	}()
	w = a
	root, err := mr.NextRawPart()
	if err != nil {
		h.fail(w, r, "", fmt.Errorf("%w: the envelope part: %w", intake.ErrPartRead, err))
		return
	}
	body, release, err := api.ReadRoot(r.Context(), h.budgetFor(r), root, h.maxBytes(), "the signed envelope")
	defer release()
	if err != nil {
		h.fail(w, r, "", err)
		return
	}
	env, peer, ok := check(h, w, r, body, "envelope", ParseEnvelope, envelopeHeader)
	if !ok {
		return
	}
	if rest := h.receive(w, r, env, peer, body, api.RelatedParts(mr)); rest > 0 {
		// A repeat, answered with its parts unread: the peer's package, its
		// envelope and signature checked again, so the rest may be what its
		// signed sizes declare plus framing — what its first forwarding was
		// allowed — under the upload's progress rule, not only a refusal's
		// envelope limit. Unread, the connection was reset under a peer that
		// sends the whole request before it reads, which saw "connection
		// reset" instead of the 200 and forwarded again (as the portal API's
		// repeated uploads, api.RepeatRest).
		api.DrainUpload(w, r, upload, rest, time.Time{})
	}
}

// answering sets the write deadline for the answer to an upload when the answer
// starts: parts are read until then, without one.
type answering struct {
	http.ResponseWriter
	r       *http.Request
	timeout time.Duration
	set     bool
	refused bool // the answer is a refusal, readied for a drain (forwardParts)
}

func (a *answering) WriteHeader(code int) {
	if !a.set {
		a.set = true
		api.AnswerUpload(a.ResponseWriter, a.timeout)
		if code >= 400 {
			a.refused = true
			httpbody.Refusing(a.ResponseWriter, a.r)
		}
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *answering) Write(b []byte) (int, error) {
	if !a.set {
		a.WriteHeader(http.StatusOK)
	}
	return a.ResponseWriter.Write(b)
}

func (a *answering) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// receive hands a verified envelope's package (and its attachment parts) to the
// intake and answers with the signed Eingangsbestaetigung: 201 for a new package,
// 200 and the first receipt for a repeat (the same package from the same peer),
// 409 when the sender's NachrichtID names another package here. It returns
// how much a repeat's unread parts may still hold (api.RepeatRest), readied
// for the caller's drain (httpbody.Refusing); 0 when nothing is left unread
// but for a refusal's, which the caller drains as it does every refusal.
func (h *Receiver) receive(w http.ResponseWriter, r *http.Request, env *Envelope, peer config.Peer, body []byte, parts intake.Parts) (rest int64) {
	chain := make([]submission.Hop, len(env.Chain))
	for i, hp := range env.Chain {
		chain[i] = submission.Hop{Gateway: hp.Gateway, SubmissionID: hp.SubmissionID, At: hp.At}
	}
	sum := sha256.Sum256(body)
	rec, err := h.Pipeline.SubmitForwarded(r.Context(), intake.Forwarded{
		Package: env.Package, Sender: env.Sender, SenderCert: env.SenderCert, MessageID: env.MessageID, LeikaKey: env.LeikaKey,
		Origin: submission.Origin{Gateway: env.From, SubmissionID: env.Chain[len(env.Chain)-1].SubmissionID, Chain: chain,
			ReceiptSHA256: env.ReceiptSHA256, ForwardedAt: env.At, EnvelopeSHA256: hex.EncodeToString(sum[:])},
		Self: h.Trust.Self(), MaxHops: MaxHops, NextPeer: h.NextPeer, Parts: parts,
	})
	if err != nil {
		h.fail(w, r, peer.ID, err)
		return 0
	}
	if !rec.Created && !sameHop(rec.Submission, peer.ID, env) {
		// The NachrichtID names a package this peer did not send here (this
		// gateway's own portal's, another peer's, or other bytes): its receipt is
		// not this peer's to read, and the peer's package is not taken.
		h.log().Warn("forwarded package refused: its NachrichtID names another package here", "submission", rec.Submission.ID, "peer", peer.ID)
		h.fail(w, r, peer.ID, fmt.Errorf("%w: Absender %q, NachrichtID %q", ErrTaken, env.Sender, env.MessageID))
		return 0
	}
	w.Header().Set("Content-Type", ContentType)
	// Declared, not chunked: a peer that reads the answer while it still sends
	// a repeat's parts can tell its end before the drain ends (httpbody.Drain).
	w.Header().Set("Content-Length", strconv.Itoa(len(rec.Receipt)))
	w.Header().Set("X-Submission-Id", rec.Submission.ID)
	if rec.Created {
		h.log().Info("forwarded package received", "submission", rec.Submission.ID, "peer", peer.ID, "hops", len(env.Chain))
		w.WriteHeader(http.StatusCreated)
	} else {
		if parts != nil {
			// Its parts unread: the intake found the package and read none.
			httpbody.Refusing(w, r)
			rest = api.RepeatRest(rec.Submission.Attachments)
		}
		w.WriteHeader(http.StatusOK)
	}
	_, _ = w.Write(rec.Receipt)
	return rest
}

// status answers a signed status question about packages the asking peer forwarded
// here; any other package is "unbekannt", whether it exists or not.
func (h *Receiver) status(w http.ResponseWriter, r *http.Request) {
	q, peer, ok := readSigned(h, w, r, MaxQueryBytes, "question", ParseQuery, func(q *Query) (string, string, time.Time) { return q.From, q.To, q.At })
	if !ok {
		return
	}
	done, ok := h.questionSlot(w, r, peer.ID)
	if !ok {
		return
	}
	defer done()
	rp := &Report{From: h.Trust.Self(), To: peer.ID, At: time.Now().UTC()}
	budget := MaxAnswerReplies
	for _, ref := range q.Refs {
		if r.Context().Err() != nil {
			// The asker has gone (its QuestionTimeout, a closed connection):
			// nobody reads the answer, and the peer's next question waits for
			// this one's slot meanwhile.
			return
		}
		st := Status{Ref: ref, State: StateUnknown}
		s, err := h.Broker.FindMessage(ref.Sender, ref.MessageID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			h.fail(w, r, peer.ID, err)
			return
		}
		if err == nil && s.Origin != nil && s.Origin.Gateway == peer.ID {
			st = StatusOf(s)
			if from, ok := q.Replies[ref]; ok {
				st.Replies = repliesOf(s, from, budget)
				budget -= len(st.Replies)
			}
			if s.State == submission.StateHeld {
				// Why it is held: the last public failure reason (never an operator note).
				if evs, err := h.Broker.Log(s.ID); err == nil {
					for i := len(evs) - 1; i >= 0; i-- {
						if evs[i].Type == submission.EventChannelFailed && evs[i].Detail != "" {
							st.Note = "held: " + evs[i].Detail
							break
						}
					}
				}
			}
		}
		rp.Items = append(rp.Items, st)
	}
	doc, err := rp.Sign(h.Signer)
	if err != nil {
		h.fail(w, r, peer.ID, err)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	_, _ = w.Write(doc)
}

// StatusOf is what a receiving gateway reports about one of its submissions.
func StatusOf(s *submission.Submission) Status {
	st := Status{Ref: Ref{Sender: s.Sender, MessageID: s.MessageID}, State: string(s.State), SubmissionID: s.ID}
	if s.DeliveredAt != nil {
		t := *s.DeliveredAt
		st.DeliveredAt = &t
		st.Receiver = s.Receiver
		if st.Receiver == "" {
			st.Receiver = s.OfficeName
		}
		if f := s.Forward; f != nil {
			// It went on from here: the office is at the gateway the package was
			// forwarded to (or further on, as that one reported).
			st.ReceiverGateway = f.ReceiverGateway
			if st.ReceiverGateway == "" {
				st.ReceiverGateway = f.Peer
			}
			st.Receiver = submission.ReceiverAt(st.Receiver, st.ReceiverGateway)
		}
	}
	if d := s.Decision; d != nil {
		st.Decision = &Decision{Outcome: d.Outcome, At: d.At, Actor: d.Actor, Reason: d.Reason}
	}
	switch s.State {
	case submission.StateHeld:
		st.Note = "no delivery channel of " + s.OfficeName + " answered; the package waits for the office's pickup"
	case submission.StateForwarded:
		if s.Forward != nil {
			st.Note = "forwarded on to gateway " + s.Forward.Peer
		}
	case submission.StateRetrying:
		st.Note = "delivery to " + s.OfficeName + " is being retried"
	}
	return st
}
