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
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/adapters/webhook"
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
	// FailFirst answers 503 to the first n notifications (to show retries).
	FailFirst int
	// Logf receives one line per step; nil is silent.
	Logf func(format string, args ...any)
	// PickupDelay is how long a notification waits in the office's queue before it is
	// processed (real systems process asynchronously; 0 processes at once).
	PickupDelay time.Duration
	// Client calls the gateway; nil uses a client with a timeout.
	Client *http.Client
	// RetryFor is how long the office keeps trying a package that fails on the
	// way (the gateway restarting, a 5xx), after a notification and in Poll
	// alike; 0 is 2 minutes.
	RetryFor time.Duration
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
	Err          error
}

// Office is a running office system.
type Office struct {
	opt       Options
	srv       *http.Server
	ln        net.Listener
	mu        sync.Mutex
	seen      map[string]bool      // delivery ids: duplicates are acknowledged, not processed again
	again     map[string]pollRetry // Poll: failed on the way, tried again in the next rounds
	done      map[string]Outcome
	hits      int
	wg        sync.WaitGroup
	ch        chan Outcome
	stop      chan struct{} // closed by Close: retries give up
	closeOnce sync.Once
}

// Start listens on a loopback port and serves the webhook at /hook.
func Start(opt Options) (*Office, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if opt.Client == nil {
		opt.Client = &http.Client{Timeout: 30 * time.Second}
	}
	o := &Office{opt: opt, ln: ln, seen: map[string]bool{}, again: map[string]pollRetry{}, done: map[string]Outcome{}, ch: make(chan Outcome, 1024), stop: make(chan struct{})}
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

// Outcomes yields each processed submission once.
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

// Close stops the server and waits for running work.
func (o *Office) closing() bool {
	select {
	case <-o.stop:
		return true
	default:
		return false
	}
}

func (o *Office) Close() error {
	o.closeOnce.Do(func() { close(o.stop) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := o.srv.Shutdown(ctx)
	o.wg.Wait()
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
		if errors.As(err, &ve) {
			o.logf("webhook refused: %v", err)
			http.Error(w, "signature", http.StatusUnauthorized)
			return
		}
		http.Error(w, "bad notification", http.StatusBadRequest)
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
	o.logf("webhook received: submission %s, signatures (FIT-Connect HMAC-SHA512, Standard Webhooks) valid", n.SubmissionID)
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		time.Sleep(o.opt.PickupDelay)
		// Like a real office system, retry what failed for reasons on the way (the
		// gateway restarting, a 5xx) for a while; a wrong digest or signature is final.
		var out Outcome
		for wait, give := 200*time.Millisecond, time.Now().Add(o.retryFor()); ; wait = min(2*wait, 5*time.Second) {
			out = o.process(n, token)
			var te *transientError
			if out.Err == nil || !errors.As(out.Err, &te) || time.Now().After(give) || o.closing() {
				break
			}
			o.logf("fetch or answer for %s failed (%v); retrying", n.SubmissionID, out.Err)
			time.Sleep(wait)
		}
		o.mu.Lock()
		o.done[n.SubmissionID] = out
		o.mu.Unlock()
		select {
		case o.ch <- out:
		default:
		}
	}()
}

func (o *Office) process(n webhook.Notification, token string) Outcome {
	out := Outcome{SubmissionID: n.SubmissionID, DeliveryID: n.DeliveryID}
	pkg, err := o.get(n.Package.Href, token)
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
	}
	for _, a := range n.Attachments {
		b, err := o.get(a.Href, token)
		if err != nil {
			out.Err = err
			return out
		}
		if digest(b) != a.SHA256 {
			out.Err = fmt.Errorf("attachment %s digest differs", a.ID)
			return out
		}
		out.Attachments++
		o.logf("attachment fetched: %s (%s, %d bytes), SHA-256 matches", a.ID, a.MimeType, len(b))
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
	if err := o.post(link, token, body); err != nil {
		out.Err = err
		return out
	}
	out.Accepted, out.Reason = accept, reason
	return out
}

func (o *Office) get(url, token string) ([]byte, error) {
	return o.getCtx(context.Background(), url, token)
}

func (o *Office) getCtx(ctx context.Context, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := o.opt.Client.Do(req)
	if err != nil {
		return nil, &transientError{err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &transientError{err}
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
		if resp.StatusCode >= 500 {
			return nil, &transientError{err}
		}
		return nil, err
	}
	return b, nil
}

// Poll is one round of an office system that takes no webhook (channel api,
// behind a firewall that lets nothing in): it lists what waits for the office
// (state handed_over) at the gateway's base URL, and fetches, checks and decides
// each package as it would after a notification — the first fetch is the
// delivery. It returns how many it finished. What failed on the way for a
// reason a retry can cure is kept and tried again in the next rounds, whether
// or not the list still names it (a fetch cut off after the gateway counted it
// is a delivery too), for Options.RetryFor as after a notification; then its
// outcome is the error.
func (o *Office) Poll(ctx context.Context, base string) (int, error) {
	o.mu.Lock()
	token := o.opt.Token
	var todo []wire.OfficeSubmission
	for _, a := range o.again {
		todo = append(todo, a.s)
	}
	o.mu.Unlock()
	// The packages kept from earlier rounds are tried even when the list
	// cannot be read: their two minutes run all the same.
	var list wire.OfficeList
	raw, listErr := o.getCtx(ctx, base+wire.OfficeListPath("", 100, string(wire.StateHandedOver)), token)
	if listErr == nil {
		if err := json.Unmarshal(raw, &list); err != nil {
			listErr = fmt.Errorf("office list: %w", err)
		}
	}
	n := 0
	round := map[string]bool{}
	for _, s := range append(todo, list.Submissions...) {
		o.mu.Lock()
		first, retry := o.again[s.ID]
		dup := o.seen[s.DeliveryID] || round[s.ID]
		o.mu.Unlock()
		if dup {
			continue
		}
		round[s.ID] = true
		if !retry {
			o.logf("poll found submission %s waiting for the office", s.ID)
			first.since = time.Now()
		}
		out := o.process(pollNotification(base, s), token)
		var te *transientError
		if out.Err != nil && errors.As(out.Err, &te) && time.Since(first.since) < o.retryFor() && ctx.Err() == nil {
			o.logf("fetch or answer for %s failed (%v); next round", s.ID, out.Err)
			o.mu.Lock()
			o.again[s.ID] = pollRetry{s: s, since: first.since}
			o.mu.Unlock()
			continue
		}
		o.mu.Lock()
		delete(o.again, s.ID)
		if out.Err == nil || !errors.As(out.Err, &te) {
			// Done for good. A package given up on for a curable reason is not:
			// if the list still names it, the next round starts it again.
			o.seen[s.DeliveryID] = true
		}
		o.done[s.ID] = out
		o.mu.Unlock()
		select {
		case o.ch <- out:
		default:
		}
		n++
	}
	return n, listErr
}

// retryFor is Options.RetryFor, 2 minutes by default.
func (o *Office) retryFor() time.Duration {
	if o.opt.RetryFor > 0 {
		return o.opt.RetryFor
	}
	return 2 * time.Minute
}

// pollRetry is a package Poll tries again: since its first failure.
type pollRetry struct {
	s     wire.OfficeSubmission
	since time.Time
}

// pollNotification is what a notification would have said of s: the office's
// links at base, the digests the list gives.
func pollNotification(base string, s wire.OfficeSubmission) webhook.Notification {
	n := webhook.Notification{SubmissionID: s.ID, DeliveryID: s.DeliveryID,
		Package: webhook.PackageRef{SHA256: s.PackageSHA256, Size: s.PackageSize, Href: base + wire.OfficePackagePath(s.ID)},
		Links: webhook.Links{Submission: base + wire.OfficeSubmissionPath(s.ID), Package: base + wire.OfficePackagePath(s.ID),
			Accept: base + wire.OfficeDecisionPath(s.ID, wire.OutcomeAccepted), Reject: base + wire.OfficeDecisionPath(s.ID, wire.OutcomeRejected)}}
	for _, a := range s.Attachments {
		n.Attachments = append(n.Attachments, webhook.AttachmentRef{ID: a.ID, MimeType: a.MimeType, Size: a.Size, SHA256: a.SHA256,
			Href: base + wire.OfficeAttachmentPath(s.ID, a.ID)})
	}
	return n
}

// transientError is a failure on the way to the gateway that a retry can cure.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

func (o *Office) post(url, token string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.opt.Client.Do(req)
	if err != nil {
		return &transientError{err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
		if resp.StatusCode >= 500 {
			return &transientError{err}
		}
		return err
	}
	return nil
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
