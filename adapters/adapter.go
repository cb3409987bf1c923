// Package adapters defines the contract between the broker and the delivery channels
// (webhook, XTA, transfer folder, mailbox, peer gateway).
//
// The broker owns retries, backoff, fallback and the event log. An adapter makes exactly
// one delivery attempt per call and classifies its failure: a PermanentError means
// "retrying the same thing cannot succeed" (the broker moves on to the office's next
// channel), any other error is transient (the broker retries later with backoff).
package adapters

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Delivery is everything an adapter may know about one package it has to hand over.
// Payload bytes are not held here: Package and Attachment.Open stream them from the
// blob store, so an adapter that only notifies (webhook) never reads them.
type Delivery struct {
	// ID is stable across all attempts and channels of one submission; receivers use it
	// to drop duplicates (delivery is at-least-once).
	ID           string
	SubmissionID string
	// CaseID is the case a Nachreichung belongs to (the first package's
	// submission id); "" for a new case, whose case is SubmissionID.
	CaseID      string
	MessageID   string // NachrichtID as the portal set it
	Sender      string // portal id (Absender)
	LeikaKey    string
	ServiceName string
	OfficeID    string
	OfficeName  string
	Target      Target
	Attempt     int // 1 for the first attempt on this target
	CreatedAt   time.Time

	PackageSHA256 string // hex SHA-256 of the exact signed package bytes
	PackageSize   int64
	// Package opens the exact signed package bytes as received from the portal.
	Package     func(ctx context.Context) (io.ReadCloser, error)
	Attachments []Attachment
}

// Attachment describes one Anlage of the package, already checked against the digest
// inside the signed element.
type Attachment struct {
	ID       string
	FileName string
	MimeType string
	Size     int64
	SHA256   string
	Open     func(ctx context.Context) (io.ReadCloser, error)
}

// Target is one channel of one office, as the directory and the gateway configuration
// resolved it when the package was accepted.
type Target struct {
	Channel  string            // adapter name: "webhook", "xta", "transfer", "mailbox", "peer"
	Endpoint string            // channel-specific address (URL, folder, peer base URL)
	Secret   string            // shared secret for the channel; never logged
	Params   map[string]string // channel-specific extras
}

// LogValue keeps the secret out of structured logs, and the endpoint's query.
func (t Target) LogValue() slog.Value {
	return slog.GroupValue(slog.String("channel", t.Channel), slog.String("endpoint", SafeEndpoint(t.Endpoint)))
}

// String keeps the secret out of fmt output, and the endpoint's query.
func (t Target) String() string { return t.Channel + " " + SafeEndpoint(t.Endpoint) }

// SafeEndpoint is an endpoint as logs and errors may show it: a URL without its
// query, fragment and user info (offices put tokens there: every failed webhook
// attempt logged one until an audit saw it), anything else (a folder, an XTA
// identifier) as it is.
func SafeEndpoint(e string) string {
	u, err := url.Parse(e)
	if err != nil {
		// Not a URL Go reads, but it may still carry a query: cut it.
		e, _, _ = strings.Cut(e, "?")
		e, _, _ = strings.Cut(e, "#")
		return e
	}
	if u.Scheme == "" || u.Host == "" {
		return e
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// Confirmation is what the receiving side answered when it took the package over.
type Confirmation struct {
	Receiver  string    // who confirmed (office system, peer gateway id, folder path)
	At        time.Time // when the receiver confirmed
	Reference string    // the receiver's own id for the delivery, if it gave one
	// Pending says the channel has taken the package but the office has not confirmed
	// it yet (a case folder waiting for the office's import, a message waiting in the
	// office's XTA list). The broker records the hand-over and learns of the office's
	// confirmation later: from the adapter's Confirmer, or from the office itself
	// through the broker's OfficeDesk (an XTA close, a person opening the mailbox).
	Pending bool
}

// Reacher is implemented by a channel whose handed-over packages wait where the
// office fetches them (an XTA message box, the web mailbox). Reaches says whether
// the office, with the target as configured now, still fetches there. When it no
// longer does — an XTA office moved from pull to push has no message box to poll,
// an office whose last mailbox user was removed has nobody to open it — the
// broker delivers such a package again on the channel as configured now (a push,
// or the mailbox's refusal and the office's next channel): otherwise it waited
// handed over for ever, reaching no one. The broker calls it for every
// handed-over package of the channel each confirmation round, so it must be a
// look-up, not I/O.
type Reacher interface {
	Reaches(officeID string, t Target) bool
}

// Confirmer is implemented by adapters whose receiver confirms after Deliver has
// returned with Confirmation.Pending. The broker asks it about every delivery of the
// channel that is handed over and not yet confirmed — after a restart too, since the
// question carries the whole Delivery — at a regular interval and whenever the
// adapter signals a change on Changes. Confirmed answers ok=true with the office's
// Confirmation once the office has taken the package (imported the case folder);
// ok=false while it waits. An error is transient: the broker asks again later.
// Confirmed must not report a confirmation the receiver did not give.
type Confirmer interface {
	Confirmed(ctx context.Context, d Delivery) (c Confirmation, ok bool, err error)
	// Changes signals (without blocking the sender) that a confirmation may have
	// arrived, so the broker asks now instead of at its next interval. nil: never.
	Changes() <-chan struct{}
}

// HandOverFinder is implemented by a channel whose attempt can hand a package
// over without the broker learning of it: the transfer folder's, whose case
// folder is in the office's share from the rename on, while the gateway may
// crash, or fail to write its final ledger record, just after. The next
// attempt of the delivery finds that and answers Pending as if it had written
// the case; but a case a clerk took over in the web mailbox meanwhile gets no
// next attempt. HandedOver answers that attempt's question without making one:
// ok=true, with the Confirmation Deliver would have answered, when the
// channel holds a hand-over of d; ok=false when it holds none (nothing was
// handed over, or a hand-over begun did not happen). It writes nothing to the
// office's side. An error is transient (the folder unreachable).
type HandOverFinder interface {
	HandedOver(ctx context.Context, d Delivery) (c Confirmation, ok bool, err error)
}

// Withdrawer is implemented by a channel that leaves a copy of the package outside
// the gateway, where it waits until the office takes it: the transfer folder's case
// folder in the office's share. Every other channel serves the bytes from the store,
// so an erasure (broker.Erase) reaches them; this copy it reaches only through
// Withdraw. Withdraw removes the copy of d if the office has not taken it yet, and
// any leftover of an attempt of d that holds its bytes (a crashed attempt's
// temporary folder). Its contract:
//
//   - It never removes what the office has taken: a copy the office moved,
//     deleted or marked as imported is the office's, and the answer is
//     WithdrawTaken. Taking and withdrawing at the same moment have one winner,
//     and the office never gets a copy the withdrawal removed in part.
//   - After WithdrawRemoved the channel never reports d delivered or handed
//     over (Confirmed and HandedOver answer no), and Deliver of d hands nothing
//     over again: it fails permanently with an error wrapping ErrWithdrawn. A
//     copy the office took stays a confirmation (WithdrawTaken changes
//     nothing), and so does WithdrawNothing: nothing was handed over, and a
//     channel need not refuse a later Deliver of d for it (the broker queues no
//     erased case).
//   - It is idempotent: asked again it answers WithdrawnBefore (or WithdrawTaken,
//     or WithdrawNothing) and finishes a withdrawal an earlier call left half done
//     (a crash, a share gone in between).
//   - An error is transient (the folder unreachable, the context ended); nothing
//     the office could see has changed, or the next call finishes it. It must
//     honour ctx, including while it waits for an attempt of d under way.
type Withdrawer interface {
	Withdraw(ctx context.Context, d Delivery) (Withdrawal, error)
}

// Withdrawal is what Withdraw found and did.
type Withdrawal struct {
	Outcome WithdrawOutcome
	// Reference names the copy as the office knows it (the case folder's name),
	// "" if there was none.
	Reference string
	// Leftovers: a leftover of an attempt (a temporary folder) was removed too.
	Leftovers bool
}

// WithdrawOutcome says what Withdraw found of a delivery's copy.
type WithdrawOutcome string

const (
	// WithdrawRemoved: a copy the office had not taken (or only an attempt's
	// leftover, Reference "") was there and is removed now.
	WithdrawRemoved WithdrawOutcome = "removed"
	// WithdrawnBefore: an earlier Withdraw removed it.
	WithdrawnBefore WithdrawOutcome = "removedBefore"
	// WithdrawTaken: the office had taken the copy; it is the office's and stays.
	WithdrawTaken WithdrawOutcome = "taken"
	// WithdrawNothing: the channel holds nothing of d for the office (nothing was
	// handed over on it).
	WithdrawNothing WithdrawOutcome = "none"
)

// ErrWithdrawn is wrapped by a Deliver (a permanent failure) of a delivery whose
// copy was withdrawn: the erased application must not reach the office after all.
var ErrWithdrawn = errors.New("delivery withdrawn by an erasure")

// Checker is implemented by adapters that can tell at start that an office's target
// can never work (a malformed URL, a missing secret, a folder that does not exist).
// The gateway refuses to start and names the office and the field, instead of
// accepting packages for a channel that fails for each of them later.
type Checker interface {
	CheckTarget(t Target) error
}

// TargetError names the part of a Target that is wrong; Checker implementations
// return it so the gateway can point at the configuration field.
type TargetError struct {
	Field  string // "endpoint", "secret" or "params.<name>"
	Reason string
}

func (e *TargetError) Error() string { return e.Field + ": " + e.Reason }

// PublicReason is the part of a delivery failure that may be shown to the portal
// that submitted the package: a short classification, never the receiver's own
// words (an office endpoint's error page can contain anything). Errors may offer one
// by implementing interface{ PublicReason() string }.
func PublicReason(err error) string {
	var pr interface{ PublicReason() string }
	if errors.As(err, &pr) {
		return pr.PublicReason()
	}
	var p *PermanentError
	if errors.As(err, &p) {
		return p.Reason
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "the receiver did not answer in time"
	}
	return "the delivery attempt failed"
}

// LogReason is what the gateway's log may say of a delivery failure: the error
// without the receiver's own words. An office's validator or error page can quote
// the application ("Antrag von Erika Mustermann, geb. …: Pflichtfeld fehlt"), and
// the log goes where neither the retention nor an erasure reaches, so the words
// stay in the record's event (the admin console shows them). Errors that carry
// such words implement interface{ LogReason() string }, the first in the chain
// answers; other errors (network, TLS, timeouts, the adapters' own refusals) are
// the gateway's own words and are logged whole.
func LogReason(err error) string {
	var lr interface{ LogReason() string }
	if errors.As(err, &lr) {
		return lr.LogReason()
	}
	return err.Error()
}

// RetryAfter reports how long the receiver asked the sender to wait before the next
// attempt (an HTTP Retry-After on a 429 or 503, or its like in another channel).
// Errors offer it by implementing interface{ RetryAfter() time.Duration }; a zero or
// negative duration counts as not asked. The broker never retries earlier than this.
func RetryAfter(err error) (time.Duration, bool) {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		if d := ra.RetryAfter(); d > 0 {
			return d, true
		}
	}
	return 0, false
}

// MaxRetryAfter bounds what a receiver's Retry-After is taken as; the broker caps
// its own wait at 24 hours anyway.
const MaxRetryAfter = 7 * 24 * time.Hour

// ParseRetryAfter reads an HTTP Retry-After header: delta seconds or an HTTP date
// (RFC 9110 10.2.3). Absent, unreadable or in the past: 0. The channels that speak
// HTTP (webhook, peer gateway) offer it through RetryAfter.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, MaxRetryAfter)
}

// Gone reports whether the receiver said its endpoint is gone for good (HTTP 410):
// the broker then disables the office's channel until an operator enables it again.
// Errors say so by implementing interface{ EndpointGone() bool }.
func Gone(err error) bool {
	var g interface{ EndpointGone() bool }
	return errors.As(err, &g) && g.EndpointGone()
}

// Adapter delivers packages over one channel.
//
// Deliver may be called concurrently from many goroutines. It makes one attempt and
// returns when the receiver has confirmed or the attempt failed; it must honour ctx.
// A nil error means the receiver has taken responsibility for the package. A
// *PermanentError (see Permanent, IsPermanent) means the attempt can never succeed as
// configured; any other error is transient. ErrClosed and errors caused by ctx (which
// must wrap ctx.Err()) are transient too: a gateway shutting down or an attempt cut
// short says nothing about the office's channel. Adapters never sleep and retry
// themselves.
//
// Close releases the adapter's resources; it waits for running Deliver calls to return
// (they observe their ctx) and makes later Deliver calls fail with ErrClosed. Close is
// idempotent.
type Adapter interface {
	// Channel is the name under which the adapter is registered, e.g. "webhook".
	Channel() string
	Deliver(ctx context.Context, d Delivery) (Confirmation, error)
	Close() error
}

// ErrClosed is returned by Deliver after Close.
var ErrClosed = errors.New("adapter closed")

// PermanentError marks a failure that retrying cannot cure (rejected by the receiver,
// misconfigured endpoint, package too large for the channel).
type PermanentError struct {
	Reason string
	Err    error
}

func (e *PermanentError) Error() string {
	if e.Err == nil {
		return "permanent delivery failure: " + e.Reason
	}
	return fmt.Sprintf("permanent delivery failure: %s: %v", e.Reason, e.Err)
}

func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a permanent failure with a short, log-safe reason.
func Permanent(reason string, err error) error { return &PermanentError{Reason: reason, Err: err} }

// IsPermanent reports whether err (or anything it wraps) is a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// Registry maps channel names to adapters. It is safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	adapters map[string]Adapter
}

// NewRegistry returns a registry holding the given adapters.
func NewRegistry(as ...Adapter) *Registry {
	r := &Registry{adapters: map[string]Adapter{}}
	for _, a := range as {
		r.Register(a)
	}
	return r
}

// Register adds or replaces the adapter for a.Channel().
func (r *Registry) Register(a Adapter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.adapters[a.Channel()] = a
}

// Get returns the adapter registered for channel.
func (r *Registry) Get(channel string) (Adapter, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a, ok := r.adapters[channel]
	return a, ok
}

// Channels lists the registered channel names, sorted.
func (r *Registry) Channels() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.adapters))
	for c := range r.adapters {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Close closes every adapter and returns the first error.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first error
	for _, a := range r.adapters {
		if err := a.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
