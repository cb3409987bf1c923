// Package webhook is the delivery channel of maturity level 3: the gateway POSTs a
// small signed JSON notification to the office's endpoint, and the office's system
// fetches the package and attachments through the gateway's office API and answers
// with accept or reject (FIT-Connect's callback + pull model).
//
// The notification never carries the package bytes: the office authenticates itself
// when it fetches them, so a leaked or mis-routed notification discloses ids only.
// Every POST carries two signature header sets under one secret: FIT-Connect's
// callback-authentication (HMAC-SHA512) and Standard Webhooks' webhook-signature
// (HMAC-SHA256), so receivers can use either ecosystem's library. Verify and
// ReadVerified are the receiver side for offices' systems written in Go.
//
// The adapter makes exactly one POST per Deliver and classifies the outcome; retries
// are the broker's business.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/outbound"
)

// Channel is the name the adapter registers under.
const Channel = channel.Webhook

// ParamReceiver in Target.Params names the receiving system for the Confirmation
// (default: the endpoint's host).
const ParamReceiver = "receiver"

// Limits of what is read from a response: enough for a JSON receipt, small enough that
// a misbehaving endpoint cannot make the gateway buffer much.
const (
	maxResponseBytes = 64 << 10
	maxDrainBytes    = 256 << 10
	maxReferenceLen  = 256
	maxSnippetLen    = 200
)

// DefaultTimeout bounds one attempt when Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Options configures New.
type Options struct {
	// PublicBaseURL is where offices reach the gateway's office API, e.g.
	// "https://amtsbote.example.de". Required.
	PublicBaseURL string
	// Client sends the POSTs. It is copied and its CheckRedirect replaced (redirects
	// are never followed). Nil: a client with dial, TLS and header timeouts whose
	// roots and certificate warnings are Outbound's.
	Client *http.Client
	// Outbound verifies the endpoints' certificates (the system's roots plus
	// tls.outbound_ca_file) and warns when one does not verify; nil: the system's
	// roots. Used when Client is nil.
	Outbound *outbound.Config
	// Timeout bounds one attempt in addition to the caller's ctx (default 30s).
	Timeout time.Duration
	// Logger receives one line per attempt; never secrets. Nil: slog.Default().
	Logger *slog.Logger
	// Now is the clock for signatures and confirmations (default time.Now).
	Now func() time.Time
}

// Adapter is the webhook channel. Create it with New.
type Adapter struct {
	base    string
	client  *http.Client
	ownsTr  *http.Transport // closed on Close if we built it
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time

	gate adapters.Gate
}

var _ adapters.Adapter = (*Adapter)(nil)

// ErrConfig is returned by New for unusable Options.
var ErrConfig = errors.New("webhook: invalid options")

// StatusError is an HTTP answer other than 2xx. It is wrapped as permanent or
// transient by Deliver; errors.As gives the details to logs and the admin console.
type StatusError struct {
	StatusCode int
	// Snippet is the start of the response body, printable characters only.
	Snippet string
	// RetryAfterDelay is the receiver's Retry-After (delta seconds or an HTTP date,
	// relative to the adapter's clock) on a transient answer; 0 when absent or
	// unreadable. The broker does not retry earlier (adapters.RetryAfter).
	RetryAfterDelay time.Duration
}

// RetryAfter implements the interface read by adapters.RetryAfter.
func (e *StatusError) RetryAfter() time.Duration { return e.RetryAfterDelay }

// EndpointGone implements the interface read by adapters.Gone: 410 Gone says the
// endpoint was removed for good; the broker disables the office's channel.
func (e *StatusError) EndpointGone() bool { return e.StatusCode == http.StatusGone }

// PublicReason is what the portal may read: the status code, not the receiver's body.
func (e *StatusError) PublicReason() string {
	return fmt.Sprintf("receiver answered HTTP %d", e.StatusCode)
}

// LogReason implements the interface read by adapters.LogReason: the status, not
// the receiver's body, which may quote the application.
func (e *StatusError) LogReason() string {
	return fmt.Sprintf("webhook: receiver answered HTTP %d (its answer is in the case's events)", e.StatusCode)
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("webhook: receiver answered HTTP %d", e.StatusCode)
	if e.Snippet != "" {
		s += ": " + e.Snippet
	}
	return s
}

// New returns the webhook adapter.
func New(o Options) (*Adapter, error) {
	base, err := url.Parse(o.PublicBaseURL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || base.User != nil ||
		base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("%w: PublicBaseURL must be an absolute http(s) URL without credentials, query or fragment", ErrConfig)
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("%w: negative Timeout", ErrConfig)
	}
	a := &Adapter{base: trimBase(base.String()), timeout: o.Timeout, log: o.Logger, now: o.Now}
	if a.timeout == 0 {
		a.timeout = DefaultTimeout
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if o.Client != nil {
		c := *o.Client
		a.client = &c
	} else {
		a.ownsTr = newTransport(a.timeout, o.Outbound)
		a.client = &http.Client{Transport: o.Outbound.Watch(a.ownsTr, "webhook")}
	}
	a.client.CheckRedirect = noRedirects
	return a, nil
}

// NewClient is the client the channel sends with, for other senders of signed
// callbacks: bounded dials and handshakes, responseTimeout for the answer's
// headers, out's roots (nil: the system's) with its warning on certificates that
// do not verify, naming the sender as what, and no redirects followed.
func NewClient(responseTimeout time.Duration, out *outbound.Config, what string) *http.Client {
	return &http.Client{CheckRedirect: noRedirects, Transport: out.Watch(newTransport(responseTimeout, out), what)}
}

func newTransport(responseTimeout time.Duration, out *outbound.Config) *http.Transport {
	return &http.Transport{
		TLSClientConfig:       out.TLS(""),
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: responseTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// noRedirects: a redirect would re-send a signed notification to an address nobody
// configured; the 3xx itself is the answer (permanent: the configuration is wrong).
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// CheckEndpoint reports whether s is usable as an endpoint: an absolute http(s) URL
// without credentials. The error never quotes s (its query may hold a token).
func CheckEndpoint(s string) error {
	_, err := parseEndpoint(s)
	return err
}

// Channel implements adapters.Adapter.
func (a *Adapter) Channel() string { return Channel }

// Close refuses new deliveries, waits for running ones and drops idle connections.
func (a *Adapter) Close() error {
	a.gate.Close()
	if a.ownsTr != nil {
		a.ownsTr.CloseIdleConnections()
	}
	return nil
}

// Deliver POSTs the notification for d once and classifies the answer.
func (a *Adapter) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, error) {
	if !a.gate.Enter() {
		return adapters.Confirmation{}, adapters.ErrClosed
	}
	defer a.gate.Leave()

	start := a.now()
	c, status, err := a.deliver(ctx, d)
	attrs := []slog.Attr{
		slog.String("delivery", d.ID), slog.String("submission", d.SubmissionID),
		slog.Int("attempt", d.Attempt), slog.Any("target", d.Target),
		slog.Duration("took", a.now().Sub(start)),
	}
	if status != 0 {
		attrs = append(attrs, slog.Int("status", status))
	}
	if err == nil {
		// The broker records the delivery event; this line is for debugging only.
		a.log.LogAttrs(ctx, slog.LevelDebug, "webhook delivered", attrs...)
		return c, nil
	}
	attrs = append(attrs, slog.Bool("permanent", adapters.IsPermanent(err)), slog.String("error", adapters.LogReason(err)))
	// Debug too: the broker logs every failed attempt with its cause and the next
	// try ("delivery attempt failed"); a WARN here said it twice per attempt.
	a.log.LogAttrs(ctx, slog.LevelDebug, "webhook delivery failed", attrs...)
	return c, err
}

// CheckTarget implements adapters.Checker: an office's webhook needs an absolute
// http(s) endpoint and a whsec_ secret, or no package could ever reach it.
func (a *Adapter) CheckTarget(t adapters.Target) error {
	if _, err := parseEndpoint(t.Endpoint); err != nil {
		return &adapters.TargetError{Field: "endpoint", Reason: err.Error()}
	}
	if _, err := parseSecrets(t.Secret); err != nil {
		return &adapters.TargetError{Field: "secret", Reason: err.Error()}
	}
	return nil
}

func (a *Adapter) deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, int, error) {
	if err := ctx.Err(); err != nil {
		return adapters.Confirmation{}, 0, fmt.Errorf("webhook: %w", err)
	}
	if d.Target.Channel != "" && d.Target.Channel != Channel {
		return adapters.Confirmation{}, 0, adapters.Permanent("target is for channel "+d.Target.Channel, nil)
	}
	endpoint, err := parseEndpoint(d.Target.Endpoint)
	if err != nil {
		return adapters.Confirmation{}, 0, adapters.Permanent("invalid endpoint", err)
	}
	secrets, err := parseSecrets(d.Target.Secret)
	if err != nil {
		return adapters.Confirmation{}, 0, adapters.Permanent("invalid secret", err)
	}
	if d.ID == "" || d.SubmissionID == "" {
		return adapters.Confirmation{}, 0, adapters.Permanent("delivery lacks id or submission id", nil)
	}
	body, err := json.Marshal(buildNotification(a.base, d))
	if err != nil {
		// Only strings, ints and a time: cannot fail short of a bug.
		return adapters.Confirmation{}, 0, adapters.Permanent("encode notification", err)
	}

	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.String(), bytes.NewReader(body))
	if err != nil {
		return adapters.Confirmation{}, 0, adapters.Permanent("build request", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "amtsbote-webhook/1")
	sign(req.Header, secrets, d.ID, a.now(), body)

	resp, err := a.client.Do(req)
	if err != nil {
		return adapters.Confirmation{}, 0, a.transportError(ctx, endpoint, err)
	}
	defer func() {
		// Drain a little so the connection can be reused, but never let a chatty
		// endpoint hold the attempt: beyond the limit the connection is dropped.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes))
		_ = resp.Body.Close()
	}()
	head, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	code := resp.StatusCode

	switch {
	case code >= 200 && code <= 299:
		// The status line is the receiver's word; a body cut short by a later network
		// error does not undo it.
		_ = readErr
		return adapters.Confirmation{
			Receiver:  receiverName(d.Target, endpoint),
			At:        a.now(),
			Reference: reference(resp.Header, head),
		}, code, nil
	case isTransientStatus(code):
		se := a.statusError(code, head, secrets, endpoint)
		se.RetryAfterDelay = adapters.ParseRetryAfter(resp.Header.Get("Retry-After"), a.now())
		return adapters.Confirmation{}, code, fmt.Errorf("webhook: transient: %w", se)
	case code == http.StatusGone:
		return adapters.Confirmation{}, code, adapters.Permanent("endpoint gone (HTTP 410)", a.statusError(code, head, secrets, endpoint))
	default:
		return adapters.Confirmation{}, code, adapters.Permanent(fmt.Sprintf("receiver refused with HTTP %d", code), a.statusError(code, head, secrets, endpoint))
	}
}

// isTransientStatus: 408 Request Timeout, 425 Too Early, 429 Too Many Requests and
// every 5xx may succeed later; everything else that is not 2xx (3xx, other 4xx, odd
// codes) says the request as configured is wrong.
func isTransientStatus(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests:
		return true
	case code >= 500 && code <= 599:
		return true
	}
	return false
}

// transportError classifies a failure to get any answer. All are transient (the
// endpoint may come back), including our own deadline; the ctx error is kept in the
// chain so the broker can tell cancellation from failure.
func (a *Adapter) transportError(ctx context.Context, endpoint *url.URL, err error) error {
	// *url.Error would repeat the full URL including its query; we print our own,
	// reduced form instead.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%v)", cerr, err)
	}
	return fmt.Errorf("webhook: POST %s: %w", safeURL(endpoint), err)
}

func (a *Adapter) statusError(code int, body []byte, secrets []secret, endpoint *url.URL) *StatusError {
	return &StatusError{StatusCode: code, Snippet: snippet(body, secrets, queryValues(endpoint)...)}
}

// queryValues are the values in the endpoint's query, raw and decoded: an office
// may have put an API key there, which the logs never show (SafeEndpoint) and an
// endpoint that echoes its own URL must not bring back. Values shorter than four
// characters are no keys, and scrubbing them would blank every "1" of a body.
func queryValues(u *url.URL) []string {
	if u == nil || u.RawQuery == "" {
		return nil
	}
	var out []string
	for _, pair := range strings.Split(u.RawQuery, "&") {
		_, raw, _ := strings.Cut(pair, "=")
		for _, v := range []string{raw, unescapeQuery(raw)} {
			if len(v) >= 4 {
				out = append(out, v)
			}
		}
	}
	return out
}

func unescapeQuery(s string) string {
	v, err := url.QueryUnescape(s)
	if err != nil {
		return s
	}
	return v
}

// snippet keeps the printable start of a response body for the operator, with any
// configured secret (and the endpoint's query values, also) scrubbed in case an
// endpoint echoes what it was given.
func snippet(body []byte, secrets []secret, also ...string) string {
	s := strings.ToValidUTF8(string(body), "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	for _, sec := range secrets {
		s = strings.ReplaceAll(s, sec.raw, "[secret]")
		s = strings.ReplaceAll(s, strings.TrimPrefix(sec.raw, SecretPrefix), "[secret]")
	}
	for _, v := range also {
		s = strings.ReplaceAll(s, v, "[secret]")
	}
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > maxSnippetLen {
		s = string(r[:maxSnippetLen]) + "…"
	}
	return s
}

// ErrEndpoint is wrapped in the permanent error for an unusable Target.Endpoint.
var ErrEndpoint = errors.New("webhook: endpoint must be an absolute http(s) URL without credentials")

func parseEndpoint(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Hostname() == "" {
		// Not wrapping err: url.Parse errors quote the input, which may carry a token
		// in its query.
		return nil, ErrEndpoint
	}
	u.Fragment = ""
	return u, nil
}

// safeURL is the endpoint as logs and errors may show it (adapters.SafeEndpoint).
func safeURL(u *url.URL) string { return adapters.SafeEndpoint(u.String()) }

func receiverName(t adapters.Target, u *url.URL) string {
	if r := t.Params[ParamReceiver]; r != "" {
		return r
	}
	return u.Scheme + "://" + u.Host
}

// reference takes the receiver's own id for the delivery from a JSON answer
// ({"id": …} or {"reference": …}) or else from the Location header of a 201.
func reference(h http.Header, body []byte) string {
	var v struct {
		ID        json.RawMessage `json:"id"`
		Reference json.RawMessage `json:"reference"`
	}
	if len(body) > 0 && json.Unmarshal(body, &v) == nil {
		for _, raw := range []json.RawMessage{v.Reference, v.ID} {
			if s := scalar(raw); s != "" {
				return s
			}
		}
	}
	return clean(h.Get("Location"))
}

// scalar accepts a JSON string or number as an id.
func scalar(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return clean(s)
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return clean(n.String())
	}
	return ""
}

// clean keeps a reference storable and printable: trimmed, bounded, no control chars.
func clean(s string) string {
	s = strings.TrimSpace(strings.ToValidUTF8(s, ""))
	if s == "" || len(s) > maxReferenceLen {
		return ""
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return ""
		}
	}
	return s
}
