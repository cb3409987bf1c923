// Package fachverfahren is a small but real office system (Fachverfahren) at
// maturity level 3: it receives the gateway's webhook, checks both signature header
// sets (or, behind a firewall, polls the pull API for what waits: Poll), fetches
// the signed package and its attachments with its bearer token, checks
// every digest (and, given a verifier, the portal's signature), and answers accept or
// reject. The demo runs it for Stadt Dresden; the end-to-end tests use it as the
// receiving side, so the protocol is exercised by a client that is not the gateway.
// It follows the links of the notification and sends package wire's request bodies;
// like portal it pulls in no server code.
package fachverfahren

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/wire"
)

// Options configure the office system.
type Options struct {
	// Token and Secret are the office's API token and webhook secret (settable later
	// with SetCredentials, since a development gateway creates them on first start).
	Token, Secret string
	// Verifier, if set, checks the portal's signature on every fetched package.
	Verifier *signing.Verifier
	// Decide returns the office's answer; nil accepts everything.
	Decide func(n webhook.Notification, pkg []byte) (accept bool, reason string)
	// Bescheid, if set, is the office's answer to the applicant for a case it
	// accepted, sent through the gateway after the acceptance (POST to the
	// notification's replies link): the portal reads it in the case's status.
	// Its Idempotency-Key is "bescheid-" and the delivery id, so a try again
	// after a lost answer (the package and the decision are sent again too)
	// stores it once. A gateway that names no replies link (a build before the
	// office API took replies) is sent none. nil: no Bescheid.
	Bescheid func(n webhook.Notification, pkg []byte) Reply
	// FailFirst answers 503 to the first n notifications (to show retries).
	FailFirst int
	// Logf receives one line per step; nil is silent.
	Logf func(format string, args ...any)
	// PickupDelay is how long a notification waits in the office's queue before it is
	// processed (real systems process asynchronously; 0 processes at once).
	PickupDelay time.Duration
	// Client calls the gateway; nil uses a client without an overall timeout
	// (IdleTimeout bounds each request instead). A Timeout of its own bounds every
	// download as a whole, however large the attachment: leave it 0.
	Client *http.Client
	// IdleTimeout is how long a request to the gateway may wait for its next byte
	// before it is cut (a download is then resumed where it stopped); 0 is 30
	// seconds. There is no limit on the whole: an attachment of 2 GiB takes long.
	IdleTimeout time.Duration
	// TempDir holds attachments while they download (and, cut off, until they
	// are resumed); "" is os.TempDir().
	TempDir string
	// RetryFor is how long the office tries a package that fails on the way (the
	// gateway restarting, a 5xx), after a notification and in Poll alike, before
	// it reports the error as the package's outcome; 0 is 2 minutes. It keeps the
	// package all the same and goes on trying, less often, until it has decided
	// it or it fails for good: once fetched it is no longer listed as waiting,
	// and no notification comes again.
	RetryFor time.Duration
	// SweepEvery is how often Poll also lists the office's cases that await
	// its decision (GET /v1/office/submissions?awaiting=decision, those its
	// system took) and decides them: in its first round, and then
	// whenever SweepEvery has passed since the last sweep; 0 is 10 minutes,
	// negative the first round only. A later sweep takes only cases delivered
	// at least SweepEvery ago, so another instance of the office's system
	// that is still downloading or deciding what it fetched keeps it. The
	// first fetch is the delivery: a case fetched by an instance that then
	// died is no longer listed as waiting, and Poll swept in its first round
	// only, so an instance already running never took it and it sat
	// undecided for good.
	SweepEvery time.Duration
}

// Reply is a message of the office back to the applicant: its kind
// (wire.ReplyBescheid, wire.ReplyRueckfrage, …), its media type, the name of
// its file ("" for none: sent as Content-Disposition) and its bytes.
type Reply struct {
	Kind, ContentType, FileName string
	Content                     []byte
}

// Outcome is what the office did with one submission.
type Outcome struct {
	SubmissionID string
	DeliveryID   string
	Accepted     bool
	Reason       string
	PackageBytes int
	Attachments  int
	Signer       string
	// Reply is the Bescheid as the gateway stored it (Options.Bescheid), with
	// its id and the office's link to it; zero if none was sent.
	Reply wire.Reply
	Err   error
}

// Office is a running office system.
type Office struct {
	opt     Options
	srv     *http.Server
	ln      net.Listener
	mu      sync.Mutex
	seen    map[string]bool      // delivery ids: duplicates are acknowledged, not processed again
	again   map[string]pollRetry // Poll: failed on the way, tried again in the next rounds until done
	swept   bool                 // Poll: the office's delivered cases were listed once
	sweptAt time.Time            // Poll: when they were listed last
	queued  map[string]bool      // Poll: the ids the last round's list named queued
	done    map[string]Outcome
	partial map[string]*download // attachments cut off (resumed) or checked (not fetched again), until the package is done with
	hits    int
	wg      sync.WaitGroup
	ch      chan Outcome
	// ctx ends with Close: retries give up, and a download under way is cut
	// (the client has no overall timeout, and Close must not wait for gigabytes).
	ctx    context.Context
	cancel context.CancelFunc
}

// Start listens on a loopback port and serves the webhook at /hook.
func Start(opt Options) (*Office, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if opt.Client == nil {
		// No overall Timeout: 30 s cut every download that took longer, and each
		// retry started from zero. send's idle timeout cuts what stalls.
		opt.Client = &http.Client{}
	}
	o := &Office{opt: opt, ln: ln, seen: map[string]bool{}, again: map[string]pollRetry{}, done: map[string]Outcome{},
		partial: map[string]*download{}, ch: make(chan Outcome, 1024)}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", o.hook)
	o.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = o.srv.Serve(ln) }()
	return o, nil
}

// URL is the webhook endpoint to configure for the office.
func (o *Office) URL() string { return "http://" + o.ln.Addr().String() + "/hook" }

// SetCredentials sets the token and webhook secret.
func (o *Office) SetCredentials(token, secret string) {
	o.mu.Lock()
	o.opt.Token, o.opt.Secret = token, secret
	o.mu.Unlock()
}

// SetVerifier sets the verifier of the portal's signature.
func (o *Office) SetVerifier(v *signing.Verifier) {
	o.mu.Lock()
	o.opt.Verifier = v
	o.mu.Unlock()
}

// SetFailFirst makes the next n notifications fail with 503.
func (o *Office) SetFailFirst(n int) {
	o.mu.Lock()
	o.opt.FailFirst, o.hits = n, 0
	o.mu.Unlock()
}

// Outcomes yields each processed submission once it is decided or has failed for
// good. A submission whose fetch or answer keeps failing on the way is yielded
// with that error after Options.RetryFor, and once more when a later try decides
// it (it is kept until then: nothing but this office would ever decide it).
func (o *Office) Outcomes() <-chan Outcome { return o.ch }

// Processed returns what was processed so far, by submission id.
func (o *Office) Processed() map[string]Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]Outcome, len(o.done))
	for k, v := range o.done {
		out[k] = v
	}
	return out
}

// closing reports whether Close has begun.
func (o *Office) closing() bool {
	return o.ctx.Err() != nil
}

// Close stops the server and waits for running work.
func (o *Office) Close() error {
	o.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := o.srv.Shutdown(ctx)
	o.wg.Wait()
	o.mu.Lock()
	for k, d := range o.partial {
		d.discard()
		delete(o.partial, k)
	}
	o.mu.Unlock()
	return err
}

func (o *Office) logf(format string, args ...any) {
	if o.opt.Logf != nil {
		o.opt.Logf(format, args...)
	}
}

func (o *Office) hook(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	secret, token := o.opt.Secret, o.opt.Token
	o.hits++
	fail := o.hits <= o.opt.FailFirst
	o.mu.Unlock()
	n, _, err := webhook.ReadVerified(r, secret, time.Now(), 5*time.Minute)
	if err != nil {
		var ve *webhook.VerifyError
		switch {
		case errors.As(err, &ve):
			o.logf("webhook refused: %v", err)
			http.Error(w, "signature", http.StatusUnauthorized)
		case errors.Is(err, webhook.ErrInvalidSecret):
			// Our own secret is missing (SetCredentials not called yet) or broken:
			// a 5xx, which the gateway retries. A 4xx is permanent there, and the
			// package left the webhook channel for a fault of ours.
			o.logf("webhook not checked, the office's secret is not usable: %v", err)
			http.Error(w, "misconfigured", http.StatusInternalServerError)
		default:
			http.Error(w, "bad notification", http.StatusBadRequest)
		}
		return
	}
	if fail {
		o.logf("webhook for %s answered 503 (simulated outage, attempt %d)", n.SubmissionID, n.Attempt)
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	o.mu.Lock()
	dup := o.seen[n.DeliveryID]
	o.seen[n.DeliveryID] = true
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"id":%q}`, "fv-"+n.DeliveryID)
	if dup {
		return
	}
	o.logf("webhook received: submission %s%s, signatures (Standard Webhooks, FIT-Connect) verified", n.SubmissionID, CaseNote(n.SubmissionID, notifiedCase(n)))
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		ctx := o.ctx // Close cuts a download under way
		time.Sleep(o.opt.PickupDelay)
		// Like a real office system, retry what failed for reasons on the way (the
		// gateway restarting, a 5xx); a wrong digest or signature is final. After
		// RetryFor the error is reported, but the package is not dropped: the
		// notification was answered, so the gateway counts it delivered and sends
		// no other, and nothing but this office would ever decide it.
		var out Outcome
		reported := false
		for wait, give := 200*time.Millisecond, time.Now().Add(o.retryFor()); ; {
			out = o.process(ctx, n, token)
			if !transient(out.Err) || o.closing() {
				break
			}
			if !reported && time.Now().After(give) {
				o.finish(out)
				reported = true
			}
			o.logf("fetch or answer for %s failed (%v); retrying", n.SubmissionID, out.Err)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			if o.closing() {
				break
			}
			if reported {
				wait = min(2*wait, time.Minute)
			} else {
				wait = min(2*wait, 5*time.Second)
			}
		}
		// Reported already and still failing on the way (the office closes while
		// it retries): not yielded a second time.
		if reported && transient(out.Err) {
			return
		}
		o.finish(out)
	}()
}

// finish records out as the submission's outcome and yields it.
func (o *Office) finish(out Outcome) {
	o.mu.Lock()
	o.done[out.SubmissionID] = out
	o.mu.Unlock()
	select {
	case o.ch <- out:
	default:
	}
}

func (o *Office) process(ctx context.Context, n webhook.Notification, token string) (out Outcome) {
	out = Outcome{SubmissionID: n.SubmissionID, DeliveryID: n.DeliveryID}
	defer func() {
		// A download cut off is kept for the next try; once the package is done
		// with, for good either way, nothing is resumed any more.
		if !transient(out.Err) {
			o.dropPartials(n.SubmissionID)
		}
		// Dropped like a case failed for good, but it is none: the office has
		// it, in its mailbox. Said so in the log, which names no clerk (the
		// gateway's answer does not either).
		if errors.Is(out.Err, ErrTakenOver) {
			o.logf("submission %s was taken over by a clerk in the web mailbox; dropped", n.SubmissionID)
		}
	}()
	pkg, err := o.fetch(ctx, n.Package.Href, token, n.Package.Size)
	if err != nil {
		out.Err = err
		return out
	}
	out.PackageBytes = len(pkg)
	if digest(pkg) != n.Package.SHA256 {
		out.Err = fmt.Errorf("package digest differs from the notification")
		return out
	}
	o.logf("package fetched: %d bytes, SHA-256 matches", len(pkg))
	o.mu.Lock()
	verifier := o.opt.Verifier
	o.mu.Unlock()
	if verifier != nil {
		v, err := verifier.Verify(pkg, signing.RolePortal)
		if err != nil {
			out.Err = fmt.Errorf("portal signature: %w", err)
			return out
		}
		out.Signer = v.Signer.ID
		o.logf("portal signature verified: signed by %q", v.Signer.ID)
		// The sizes and digests the attachments are checked against are then the
		// portal's, not only the gateway's word.
		if err := matchDeclared(v, n.Attachments); err != nil {
			out.Err = err
			return out
		}
	}
	for _, a := range n.Attachments {
		if err := o.download(ctx, n.SubmissionID, a, token); err != nil {
			out.Err = err
			return out
		}
		out.Attachments++
		o.logf("attachment fetched: %s (%s, %d bytes), SHA-256 matches", a.ID, a.MimeType, a.Size)
	}
	accept, reason := true, ""
	if o.opt.Decide != nil {
		accept, reason = o.opt.Decide(n, pkg)
	}
	link, decision := n.Links.Accept, wire.DecisionRequest{}
	if !accept {
		link, decision.Reason = n.Links.Reject, reason
	}
	body, _ := json.Marshal(decision)
	if err := o.post(ctx, link, token, body); err != nil {
		out.Err = err
		return out
	}
	out.Accepted, out.Reason = accept, reason
	if accept && o.opt.Bescheid != nil {
		if n.Links.Replies == "" {
			o.logf("the gateway names no replies link for %s (a build before replies on the office API): no Bescheid sent", n.SubmissionID)
			return out
		}
		b := o.opt.Bescheid(n, pkg)
		rep, err := o.reply(ctx, n.Links.Replies, token, "bescheid-"+n.DeliveryID, b)
		if err != nil {
			out.Err = err
			return out
		}
		out.Reply = rep
		o.logf("Bescheid sent to the applicant through the gateway: reply %s (%s, %d bytes)", rep.ID, rep.ContentType, rep.Size)
	}
	return out
}

// reply posts r to the replies link with the Idempotency-Key key and returns
// the reply as the gateway stored it: created (201), or stored before (200, a
// try again after a lost answer).
func (o *Office) reply(ctx context.Context, link, token, key string, r Reply) (wire.Reply, error) {
	var rep wire.Reply
	u := link + "?" + url.Values{wire.ReplyKindParam: {r.Kind}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(r.Content))
	if err != nil {
		return rep, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", r.ContentType)
	req.Header.Set(wire.HeaderIdempotencyKey, key)
	if r.FileName != "" {
		req.Header.Set(wire.HeaderContentDisposition, mime.FormatMediaType("attachment", map[string]string{"filename": r.FileName}))
	}
	resp, err := o.send(req)
	if err != nil {
		return rep, &transientError{fmt.Errorf("POST %s: %w", u, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return rep, statusError(req, resp)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return rep, &transientError{fmt.Errorf("POST %s: %w", u, err)}
	}
	if err := json.Unmarshal(raw, &rep); err != nil || rep.ID == "" {
		return rep, fmt.Errorf("POST %s: the answer is no reply: %q", u, raw)
	}
	if rep.SHA256 != digest(r.Content) {
		return rep, fmt.Errorf("POST %s: the gateway stored SHA-256 %s, the Bescheid has %s", u, rep.SHA256, digest(r.Content))
	}
	if rep.FileName != r.FileName {
		return rep, fmt.Errorf("POST %s: the gateway stored the file name %q, the Bescheid has %q", u, rep.FileName, r.FileName)
	}
	return rep, nil
}

// matchDeclared checks the attachments the gateway announces against those
// the portal's verified package declares: the same ids, sizes and digests. A
// gateway that announced others would have them checked against its own word.
func matchDeclared(v *signing.Verified, announced []webhook.AttachmentRef) error {
	// No limits: the package is signed, its digest checked, and already in
	// memory; the gateway parsed it under its own (possibly raised) limits.
	pk, err := paket.Parse(v.Root, paket.Limits{MaxBytes: -1, MaxDepth: -1, MaxElements: -1, MaxAttributes: -1,
		MaxAttachments: -1, MaxAttachmentBytes: -1, MaxReferencedBytes: -1, MaxReferencedTotal: -1})
	if err != nil {
		return fmt.Errorf("signed package: %w", err)
	}
	declared := make(map[string]paket.Anlage, len(pk.Anlagen))
	for _, a := range pk.Anlagen {
		declared[a.ID] = a
	}
	for _, a := range announced {
		d, ok := declared[a.ID]
		switch {
		case !ok:
			return fmt.Errorf("attachment %s is announced but not declared in the signed package", a.ID)
		case d.Groesse != a.Size || !strings.EqualFold(d.SHA256, a.SHA256):
			return fmt.Errorf("attachment %s is announced with %d bytes and SHA-256 %s, the signed package declares %d bytes and %s",
				a.ID, a.Size, a.SHA256, d.Groesse, d.SHA256)
		}
		delete(declared, a.ID)
	}
	for id := range declared {
		return fmt.Errorf("attachment %s is declared in the signed package but not announced", id)
	}
	return nil
}

// maxUnsized bounds an answer whose size nobody announced (a list page, a
// package announced without its size): beyond it the answer is refused, not cut.
const maxUnsized = 256 << 20

// fetch GETs url whole into memory: a list page (size 0), or a package of the
// size announced. An answer longer than that is an error, never cut to fit (a
// cut package showed only as a wrong digest).
func (o *Office) fetch(ctx context.Context, url, token string, size int64) ([]byte, error) {
	limit := size
	if limit <= 0 {
		limit = maxUnsized
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := o.send(req)
	if err != nil {
		return nil, &transientError{fmt.Errorf("GET %s: %w", url, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(req, resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, &transientError{fmt.Errorf("GET %s: %w", url, err)}
	}
	if int64(len(b)) > limit {
		if size > 0 {
			return nil, fmt.Errorf("GET %s: the answer is longer than the %d bytes announced", url, size)
		}
		return nil, fmt.Errorf("GET %s: the answer is longer than %d bytes", url, limit)
	}
	return b, nil
}

// ErrTakenOver is the outcome of a case a clerk took over in the office's web
// mailbox before this system had it (the gateway's 409 taken-over on its
// package, an attachment or the decision): the case is the clerk's, and the
// office drops it — no retry, no decision. It can meet a case this system
// listed as waiting a moment before the takeover.
var ErrTakenOver = errors.New("fachverfahren: a clerk took the case over in the web mailbox")

// statusError is the error of an answer other than the one expected: a 5xx is
// transient, a 409 taken-over is ErrTakenOver, anything else is not transient.
func statusError(req *http.Request, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	err := fmt.Errorf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, strings.TrimSpace(string(b)))
	if resp.StatusCode >= 500 {
		return &transientError{err}
	}
	var p struct {
		Type string `json:"type"`
	}
	if resp.StatusCode == http.StatusConflict && json.Unmarshal(b, &p) == nil && p.Type == problem.TypeTakenOver {
		return fmt.Errorf("%w: %s %s", ErrTakenOver, req.Method, req.URL)
	}
	return err
}

// download is an attachment on its way: the bytes so far in a temporary file
// and their hash, so a cut download goes on where it stopped; or, checked, one
// the office has, which a later try of the package (after a lost decision,
// say) does not fetch again.
type download struct {
	f       *os.File
	h       hash.Hash
	n       int64
	checked bool
}

// reset starts the download over.
func (d *download) reset() {
	d.discard()
	d.h.Reset()
	d.n = 0
}

// discard removes the temporary file.
func (d *download) discard() {
	if d.f != nil {
		name := d.f.Name()
		_ = d.f.Close()
		_ = os.Remove(name)
		d.f = nil
	}
}

// partialKey names a download in Office.partial.
func partialKey(submissionID, attachmentID string) string {
	return submissionID + "\x00" + attachmentID
}

// dropPartials forgets the cut and the checked downloads of a submission.
func (o *Office) dropPartials(submissionID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, d := range o.partial {
		if strings.HasPrefix(k, submissionID+"\x00") {
			d.discard()
			delete(o.partial, k)
		}
	}
}

// download fetches one attachment into a temporary file, hashing it on the
// way, and checks it against the size and SHA-256 announced (and, given a
// verifier, declared in the signed package): memory does not grow with the
// attachment, which may be 2 GiB. A download cut off after some progress is
// resumed at once with Range and If-Range; one cut off without progress is
// kept, and the next try of the package resumes it. This sample discards the
// checked file; a real system files it with the case here.
func (o *Office) download(ctx context.Context, submissionID string, a webhook.AttachmentRef, token string) error {
	key := partialKey(submissionID, a.ID)
	o.mu.Lock()
	d := o.partial[key]
	if d != nil && d.checked {
		o.mu.Unlock()
		return nil
	}
	delete(o.partial, key) // taken while in use: a concurrent try starts its own
	o.mu.Unlock()
	if d == nil {
		d = &download{h: sha256.New()}
	}
	for {
		before := d.n
		err := o.downloadOnce(ctx, a, d, token)
		switch {
		case err == nil:
			d.discard()
			d.checked = true
			o.mu.Lock()
			if !o.closing() {
				o.partial[key] = d
			}
			o.mu.Unlock()
			return nil
		case !transient(err):
			d.discard()
			return err
		case d.n > before && ctx.Err() == nil && !o.closing():
			o.logf("download of attachment %s cut after %d of %d bytes (%v); resuming", a.ID, d.n, a.Size, err)
			continue
		}
		o.mu.Lock()
		if d.n > 0 && !o.closing() {
			o.partial[key] = d
		} else {
			d.discard()
		}
		o.mu.Unlock()
		return err
	}
}

// downloadOnce is one request of a download: the rest of the attachment after
// the d.n bytes it has.
func (o *Office) downloadOnce(ctx context.Context, a webhook.AttachmentRef, d *download, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.Href, nil)
	if err != nil {
		return fmt.Errorf("attachment %s: %w", a.ID, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if d.n > 0 {
		// The rest, if the content is still the one named by its digest (the
		// gateway's ETag); otherwise the gateway answers it whole.
		req.Header.Set("Range", "bytes="+strconv.FormatInt(d.n, 10)+"-")
		req.Header.Set("If-Range", `"`+a.SHA256+`"`)
	}
	resp, err := o.send(req)
	if err != nil {
		return &transientError{fmt.Errorf("GET %s: %w", a.Href, err)}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		if d.n > 0 {
			o.logf("attachment %s answered whole instead of from byte %d: starting over", a.ID, d.n)
			d.reset()
		}
	case resp.StatusCode == http.StatusPartialContent:
		if first, total, ok := contentRange(resp.Header.Get("Content-Range")); !ok || first != d.n || total != a.Size {
			d.reset()
			return &transientError{fmt.Errorf("GET %s: asked for the bytes from %d of %d, answered %q; starting over",
				a.Href, d.n, a.Size, resp.Header.Get("Content-Range"))}
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && d.n > 0:
		d.reset()
		return &transientError{fmt.Errorf("GET %s: the bytes from %d are not satisfiable; starting over", a.Href, d.n)}
	default:
		return statusError(req, resp)
	}
	if resp.ContentLength >= 0 && resp.ContentLength != a.Size-d.n {
		// Not what was announced: refused before its bytes are read.
		return fmt.Errorf("attachment %s: the gateway sends %d bytes from byte %d, announced are %d in all", a.ID, resp.ContentLength, d.n, a.Size)
	}
	if d.f == nil {
		f, err := os.CreateTemp(o.opt.TempDir, "fachverfahren-*.part")
		if err != nil {
			return &transientError{fmt.Errorf("attachment %s: %w", a.ID, err)}
		}
		d.f = f
	}
	buf := make([]byte, 64<<10)
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			if d.n+int64(k) > a.Size {
				return fmt.Errorf("attachment %s: the gateway sends more than the %d bytes announced", a.ID, a.Size)
			}
			if _, err := d.f.Write(buf[:k]); err != nil {
				d.reset() // the file and the hash part ways: nothing to resume
				return &transientError{fmt.Errorf("attachment %s: %w", a.ID, err)}
			}
			d.h.Write(buf[:k])
			d.n += int64(k)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return &transientError{fmt.Errorf("GET %s: after %d of %d bytes: %w", a.Href, d.n, a.Size, rerr)}
		}
	}
	if d.n < a.Size {
		err := fmt.Errorf("attachment %s: the gateway sends %d of the %d bytes announced", a.ID, d.n, a.Size)
		if resp.ContentLength < 0 {
			// No length of its own: the connection's end cannot be told from the
			// body's, so it may have been cut.
			return &transientError{err}
		}
		return err
	}
	if hex.EncodeToString(d.h.Sum(nil)) != strings.ToLower(a.SHA256) {
		return fmt.Errorf("attachment %s digest differs", a.ID)
	}
	return nil
}

// contentRange reads "bytes first-last/total" (RFC 9110 14.4).
func contentRange(h string) (first, total int64, ok bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, false
	}
	span, size, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, false
	}
	from, _, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, false
	}
	first, err1 := strconv.ParseInt(from, 10, 64)
	total, err2 := strconv.ParseInt(size, 10, 64)
	return first, total, err1 == nil && err2 == nil
}

// errStalled is the cause of a request cut by the idle timeout.
var errStalled = errors.New("stalled")

// send does req with the idle timeout: it is cut when no byte arrives for
// IdleTimeout, while waiting for the answer or between reads of its body, and
// never for taking long as a whole.
func (o *Office) send(req *http.Request) (*http.Response, error) {
	idle := o.opt.IdleTimeout
	if idle <= 0 {
		idle = 30 * time.Second
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	stalled := fmt.Errorf("%w: nothing arrived from the gateway for %s", errStalled, idle)
	t := time.AfterFunc(idle, func() { cancel(stalled) })
	resp, err := o.opt.Client.Do(req.WithContext(ctx))
	if err != nil {
		t.Stop()
		if errors.Is(context.Cause(ctx), errStalled) {
			err = fmt.Errorf("%w: %w", stalled, err)
		}
		cancel(nil)
		return nil, err
	}
	resp.Body = &watchedBody{ReadCloser: resp.Body, ctx: ctx, cancel: cancel, t: t, idle: idle}
	return resp, nil
}

// watchedBody restarts the idle timeout at every byte that arrives.
type watchedBody struct {
	io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	t      *time.Timer
	idle   time.Duration
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.t.Reset(b.idle)
	}
	if err != nil && err != io.EOF {
		if c := context.Cause(b.ctx); errors.Is(c, errStalled) {
			err = fmt.Errorf("%w: %w", c, err)
		}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.t.Stop()
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// Poll is one round of an office system that takes no webhook (channel api,
// behind a firewall that lets nothing in), or of one catching up after it was
// down: it lists what has not reached the office (waitingStates: queued,
// retrying, handed_over, held) at the gateway's base URL, page after page as
// far as the list's next links go, from the first page in every round, and
// fetches, checks and decides each package as it would after a notification —
// the first fetch is the delivery, whatever the gateway was still trying. It returns how
// many it finished (a package given up on after RetryFor counts once with its
// error). What failed on the way for a reason a retry can cure is kept and
// tried again in every later round until it is decided or fails for good
// (a fetch cut off after the gateway counted it is a delivery too, and the
// package is no longer listed as waiting). The first round also lists the
// office's cases that await its decision (awaiting=decision, those its system
// took: deliveredVia api, webhook): those fetched before this office started,
// by a run that stopped before it decided them; a later round lists them again
// every Options.SweepEvery, for those another instance fetched and did not
// decide (it died in between).
func (o *Office) Poll(ctx context.Context, base string) (int, error) {
	o.mu.Lock()
	token, first := o.opt.Token, !o.swept
	every := o.sweepEvery()
	sweep := first || (every > 0 && time.Since(o.sweptAt) >= every)
	var todo []wire.OfficeSubmission
	for _, a := range o.again {
		todo = append(todo, a.s)
	}
	r := &pollRound{taken: map[string]bool{}, queuedBefore: o.queued, queued: map[string]bool{}}
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.queued = r.queued
		o.mu.Unlock()
	}()
	// The packages kept from earlier rounds are tried even when the list
	// cannot be read.
	n := o.pollEach(ctx, base, token, todo, r)
	var errs []error
	if sweep {
		// The office's cases that await its decision (awaiting=decision), which
		// the gateway answers from its index of them: state=delivered read every
		// case the office ever had, and named those XTA or a transfer folder took
		// besides. Only those its system took (deliveredVia api, webhook): a case
		// a clerk took over in the web mailbox is the clerk's, the mailbox told
		// her the office's system would not get it (a review). Still not every
		// round: the waiting list is asked every round anyway. What this office
		// fetches itself it keeps until it is done with it; what another
		// instance fetched it takes once that instance has had a sweep's time.
		var before time.Time
		if !first {
			before = time.Now().Add(-every)
		}
		keep := func(ctx context.Context, s wire.OfficeSubmission) bool {
			if !before.IsZero() && s.DeliveredAt != nil && s.DeliveredAt.After(before) {
				return false
			}
			// A clerk's: the gateway says so (takenOver) and would refuse it
			// (409 taken-over).
			if s.TakenOver != nil {
				return false
			}
			// A gateway of a build before awaiting=decision (one node of a
			// cluster during its upgrade) ignores the parameters and lists every
			// case: what is not delivered and undecided, and a clerk's, is left
			// to it. The list has no events; the case's own view has, read only
			// for a case about to be taken. Still needed beside takenOver and the
			// 409: such a build has neither, and hands a clerk's case out.
			if s.State != wire.StateDelivered || s.Decision != nil {
				return false
			}
			return !o.takenInMailbox(ctx, base, token, s.ID)
		}
		started := time.Now()
		k, err := o.pollList(ctx, base, token, wire.OfficeAwaitingDecisionPath("", 100, sweepVia), r, keep)
		n += k
		if err == nil {
			o.mu.Lock()
			o.swept, o.sweptAt = true, started
			o.mu.Unlock()
		}
		errs = append(errs, err)
	}
	k, err := o.pollList(ctx, base, token, wire.OfficeListPath("", 100, waitingStates), r, nil)
	return n + k, errors.Join(append(errs, err)...)
}

// sweepVia is the channels whose undecided cases the sweep takes: those the
// office's system took, by a fetch (api) or a notification (webhook).
var sweepVia = channel.API + "," + channel.Webhook

// takenInMailbox reports a case delivered through the web mailbox: a clerk has
// it, and decides it there. A case whose view cannot be read is not skipped.
func (o *Office) takenInMailbox(ctx context.Context, base, token, id string) bool {
	raw, err := o.fetch(ctx, base+wire.OfficeSubmissionPath(id), token, 0)
	var v wire.OfficeSubmission
	if err != nil || json.Unmarshal(raw, &v) != nil {
		return false
	}
	for _, e := range v.Events {
		if e.Type == "delivered" {
			return e.Channel == channel.Mailbox
		}
	}
	return false
}

// sweepEvery is Options.SweepEvery, 10 minutes by default.
func (o *Office) sweepEvery() time.Duration {
	if o.opt.SweepEvery == 0 {
		return 10 * time.Minute
	}
	return o.opt.SweepEvery
}

// pollRound is what one Poll round knows: the ids it took (or passed over as
// taken), and the ids listed queued in this round and in the one before.
type pollRound struct {
	taken                map[string]bool
	queuedBefore, queued map[string]bool
}

// waitingStates is what Poll lists every round: every state of a package the
// office does not have yet, as docs/pull.md and docs/webhook.md tell a system
// catching up to ask. Poll listed handed_over only, so a package held (its
// webhook refused, no channel left) or still queued or retrying for an
// unreachable endpoint was never fetched by a polling office. Fetching one is
// the pickup: the gateway records it delivered and makes no further attempt,
// and a notification already under way is a duplicate by its deliveryId (or,
// racing the fetch, repeats the same decision, which the gateway accepts).
// A queued package is taken when the next round lists it queued still: the
// gateway is about to notify or hand it over (moments, not a round), and
// taking it at once raced that first attempt; one left queued a round later is
// stuck (an open circuit breaker keeps packages queued) and is fetched.
var waitingStates = strings.Join([]string{string(wire.StateQueued), string(wire.StateRetrying),
	string(wire.StateHandedOver), string(wire.StateHeld)}, ",")

// pollList fetches, checks and decides the office's cases the list at first
// (its first page: a path with its query) names, every page of the list. Every page, not the first only: a first
// page full of cases that cannot be finished now (kept for the next round, or
// failed for good and waiting for a person) hid every later case, round after
// round. Always from the first page: a next link is no cursor to resume from in
// a later round, since a case can enter a waiting state behind it. keep, if
// not nil, chooses the entries to take.
func (o *Office) pollList(ctx context.Context, base, token, first string, r *pollRound, keep func(context.Context, wire.OfficeSubmission) bool) (int, error) {
	n := 0
	for page, read := first, map[string]bool{}; page != "" && ctx.Err() == nil; {
		if read[page] {
			return n, fmt.Errorf("office list: the next link %s leads back to a page already read", page)
		}
		read[page] = true
		url := page
		if strings.HasPrefix(page, "/") {
			url = base + page
		}
		var list wire.OfficeList
		raw, err := o.fetch(ctx, url, token, 0)
		if err == nil {
			err = json.Unmarshal(raw, &list)
		}
		if err != nil {
			return n, fmt.Errorf("office list: %w", err)
		}
		subs := list.Submissions
		if keep != nil {
			subs = slices.DeleteFunc(subs, func(s wire.OfficeSubmission) bool { return !keep(ctx, s) })
		}
		n += o.pollEach(ctx, base, token, subs, r)
		page = list.Next
	}
	return n, nil
}

// pollEach fetches, checks and decides each of subs not yet taken in this
// round (a queued one only if the last round listed it queued too, see
// waitingStates), and returns how many it finished.
func (o *Office) pollEach(ctx context.Context, base, token string, subs []wire.OfficeSubmission, r *pollRound) int {
	n := 0
	for _, s := range subs {
		o.mu.Lock()
		first, retry := o.again[s.ID]
		// A package kept for another try was claimed by this Poll already.
		dup := (!retry && o.seen[s.DeliveryID]) || r.taken[s.ID]
		later := !dup && !retry && s.State == wire.StateQueued && !r.queuedBefore[s.ID]
		if !dup && !later {
			// Claimed before it is fetched: a notification of the same delivery
			// that arrives meanwhile (a retried webhook of a package listed as
			// retrying) is answered as the duplicate it is. It was marked only
			// once Poll had finished, and the office decided the package twice
			// (an audit, 2026-12-05).
			o.seen[s.DeliveryID] = true
		}
		o.mu.Unlock()
		if dup {
			continue
		}
		if later {
			r.queued[s.ID] = true
			continue
		}
		r.taken[s.ID] = true
		if !retry {
			o.logf("poll found submission %s%s waiting for the office", s.ID, CaseNote(s.ID, s.CaseID))
			first = pollRetry{s: s, since: time.Now()}
		}
		out := o.process(ctx, pollNotification(base, s), token)
		if transient(out.Err) {
			// Kept, also after RetryFor: fetched once, the package is no longer
			// listed as waiting, so a package dropped here was never decided.
			o.logf("fetch or answer for %s failed (%v); next round", s.ID, out.Err)
			report := !first.reported && time.Since(first.since) >= o.retryFor() && ctx.Err() == nil
			first.reported = first.reported || report
			o.mu.Lock()
			o.again[s.ID] = first
			o.mu.Unlock()
			if report {
				o.finish(out)
				n++
			}
			continue
		}
		o.mu.Lock()
		delete(o.again, s.ID)
		o.seen[s.DeliveryID] = true // done for good: decided, or failed for a reason no retry cures
		o.mu.Unlock()
		o.finish(out)
		n++
	}
	return n
}

// retryFor is Options.RetryFor, 2 minutes by default.
func (o *Office) retryFor() time.Duration {
	if o.opt.RetryFor > 0 {
		return o.opt.RetryFor
	}
	return 2 * time.Minute
}

// pollRetry is a package Poll tries again: since its first try, and whether
// its error was reported after RetryFor.
type pollRetry struct {
	s        wire.OfficeSubmission
	since    time.Time
	reported bool
}

// CaseNote is ", a Nachreichung to case C" for the submission id whose case
// is another's (an office system files it with that case), else "": the
// words of this office system's log and of the demo's other office sides.
func CaseNote(id, caseID string) string {
	if caseID == "" || caseID == id {
		return ""
	}
	return ", a Nachreichung to case " + caseID
}

// notifiedCase is the case the notification n names for its submission
// (FIT-Connect's SubmissionForPickup.caseId), or "".
func notifiedCase(n webhook.Notification) string {
	for _, s := range n.Submissions {
		if s.SubmissionID == n.SubmissionID {
			return s.CaseID
		}
	}
	return ""
}

// pollNotification is what a notification would have said of s: the office's
// links at base, the digests the list gives.
func pollNotification(base string, s wire.OfficeSubmission) webhook.Notification {
	n := webhook.Notification{SubmissionID: s.ID, DeliveryID: s.DeliveryID,
		Package: webhook.PackageRef{SHA256: s.PackageSHA256, Size: s.PackageSize, Href: base + wire.OfficePackagePath(s.ID)},
		Links: webhook.Links{Submission: base + wire.OfficeSubmissionPath(s.ID), Package: base + wire.OfficePackagePath(s.ID),
			Accept: base + wire.OfficeDecisionPath(s.ID, wire.OutcomeAccepted), Reject: base + wire.OfficeDecisionPath(s.ID, wire.OutcomeRejected)}}
	// The list's own link, as the notification's: a gateway of a build
	// before the office API took replies names none, and is sent no Bescheid.
	if l := s.Links[wire.LinkReplies]; l != "" {
		n.Links.Replies = l
		if strings.HasPrefix(l, "/") {
			n.Links.Replies = base + l
		}
	}
	for _, a := range s.Attachments {
		n.Attachments = append(n.Attachments, webhook.AttachmentRef{ID: a.ID, MimeType: a.MimeType, Size: a.Size, SHA256: a.SHA256,
			Href: base + wire.OfficeAttachmentPath(s.ID, a.ID)})
	}
	return n
}

// transientError is a failure on the way to the gateway that a retry can cure.
type transientError struct{ err error }

// transient reports whether err is a transientError (nil is not).
func transient(err error) bool {
	var te *transientError
	return errors.As(err, &te)
}

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

func (o *Office) post(ctx context.Context, url, token string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.send(req)
	if err != nil {
		return &transientError{fmt.Errorf("POST %s: %w", url, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(req, resp)
	}
	// Read to its end, so the connection is used again.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return nil
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
