// Package callback tells portals that their applications have news: FIT-Connect's
// new-events callback, sent after the events are committed and signed like the
// office webhook (FIT-Connect's callback-authentication and Standard Webhooks'
// signature, so a portal can use either ecosystem's library).
//
// A callback is a hint, not the news: it names submission ids, and the portal reads
// what happened (state, events, receipts, replies) through the status API with its
// own token, as FIT-Connect's senders do. So the body carries nothing personal, a
// forged or replayed callback can only make a portal ask, and a lost one loses
// nothing: the portal's periodic status polling stays the safety net, the callback
// only makes it fast. That is why callbacks wait in memory, not in a durable outbox
// (the federation's nudge rests on the same argument, docs/federation.md): a crash
// costs the portal one polling interval, not an application.
//
// Events of one portal are gathered for Window and sent as one callback of up to
// MaxBatch ids; a portal that does not answer 2xx gets them again with a delay that
// doubles up to MaxBackoff. At most MaxPending ids wait per portal; beyond that the
// newest are dropped and counted (the portal's polling finds them).
package callback

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/outbound"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// TypeNewEvents is the callback's type, FIT-Connect's for new events in the log.
const TypeNewEvents = "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-events"

// Portal is one portal that wants callbacks: where, and with which secret (one or
// more "whsec_" keys, newest first, as for an office's webhook).
type Portal struct {
	ID, Endpoint, Secret string
}

// Options configure the Notifier. Zero values take the defaults noted.
type Options struct {
	Portals    []Portal
	Window     time.Duration // gathering time before a callback; default 1s
	MaxBatch   int           // ids per callback; default 500
	MaxPending int           // ids waiting per portal; default 100,000
	Timeout    time.Duration // one POST; default 10s
	MaxBackoff time.Duration // longest wait after failures; default 5m
	Client     *http.Client  // default webhook.NewClient(Timeout, Outbound, "portal callback")
	// Outbound verifies the portals' servers (the system's roots plus
	// tls.outbound_ca_file) and warns when one's certificate does not verify; nil:
	// the system's roots. Used when Client is nil.
	Outbound   *outbound.Config
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// ErrConfig is wrapped by New's errors; they name the portal, never the secret.
var ErrConfig = errors.New("callback: invalid configuration")

// Notifier sends the callbacks. Observe feeds it; Start and Close run it.
type Notifier struct {
	o       Options
	log     *slog.Logger
	portals map[string]*queue
	sent    *prometheus.CounterVec
	dropped *prometheus.CounterVec
	ctx     context.Context // ends at Close, a POST in flight with it
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// queue is what waits for one portal, oldest first.
type queue struct {
	p       Portal
	mu      sync.Mutex
	waiting []subject
	in      map[string]bool // the submission ids in waiting
	wake    chan struct{}
	full    bool // logged that it overflowed, until it drains
}

// New checks every portal's endpoint and secret.
func New(o Options) (*Notifier, error) {
	if o.Window <= 0 {
		o.Window = time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 500
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 100_000
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.Client == nil {
		o.Client = webhook.NewClient(o.Timeout, o.Outbound, "portal callback")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	n := &Notifier{
		o: o, log: o.Logger.With("component", "portal-callback"), portals: map[string]*queue{},
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amtsbote_portal_callbacks_total",
			Help: "New-events callbacks to portals by result: ok (2xx), failed (sent again later)."}, []string{"portal", "result"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amtsbote_portal_callback_dropped_total",
			Help: "Events whose submission id was left out of a portal's callbacks because too many ids waited (the portal's polling finds them)."}, []string{"portal"}),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for _, p := range o.Portals {
		if err := webhook.CheckEndpoint(p.Endpoint); err != nil {
			return nil, fmt.Errorf("%w: portals.%s.callback.endpoint: %w", ErrConfig, p.ID, err)
		}
		if err := webhook.ValidateSecret(p.Secret); err != nil {
			return nil, fmt.Errorf("%w: portals.%s.callback.secret: %w", ErrConfig, p.ID, err)
		}
		n.portals[p.ID] = &queue{p: p, in: map[string]bool{}, wake: make(chan struct{}, 1)}
		n.sent.WithLabelValues(p.ID, "ok")
		n.sent.WithLabelValues(p.ID, "failed")
		n.dropped.WithLabelValues(p.ID)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{n.sent, n.dropped} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("callback: metrics: %w", err)
			}
		}
	}
	return n, nil
}

// Observe is the broker's observer: an event of a submission whose portal wants
// callbacks puts its id in the portal's queue. It never blocks. The portal's
// own read of a reply (reply_fetched) is no news to it: its callback would
// only send it to read the status again.
func (n *Notifier) Observe(s *submission.Submission, e submission.Event) {
	q := n.portals[s.Sender]
	if q == nil || s.Origin != nil || e.Type == submission.EventReplyFetched {
		// A package a peer forwarded carries another state's portal id: the
		// portal here with the same id did not send it and may not read it.
		return
	}
	q.mu.Lock()
	if !q.in[s.ID] {
		if len(q.waiting) >= n.o.MaxPending {
			full := q.full
			q.full = true
			q.mu.Unlock()
			n.dropped.WithLabelValues(q.p.ID).Inc()
			if !full {
				n.log.Warn("portal callbacks overflow: ids are left out until the portal answers again", "portal", q.p.ID, "waiting", n.o.MaxPending)
			}
			return
		}
		q.waiting = append(q.waiting, subject{DestinationID: wire.DestinationID(s.OfficeID, toPeer(s)),
			SubmissionID: s.ID, CaseID: s.Case(), OfficeID: s.OfficeID})
		q.in[s.ID] = true
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// toPeer reports whether s goes to another state's gateway: then its destinationId
// is the peer gateway's, as /v1/routes named it to the portal.
func toPeer(s *submission.Submission) bool {
	for _, t := range s.Targets {
		if t.Channel == channel.Peer {
			return true
		}
	}
	return false
}

// Start runs one sender per portal until Close.
func (n *Notifier) Start() {
	for _, q := range n.portals {
		n.wg.Add(1)
		go n.run(q)
	}
}

// Close stops the senders; what still waits is dropped (see the package comment).
func (n *Notifier) Close() error {
	n.cancel()
	n.wg.Wait()
	return nil
}

// sleep waits d, or until Close; it reports whether to go on.
func (n *Notifier) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.ctx.Done():
		return false
	}
}

func (n *Notifier) run(q *queue) {
	defer n.wg.Done()
	backoff := time.Duration(0)
	for {
		select {
		case <-q.wake:
		case <-n.ctx.Done():
			return
		}
		// Gather: the events of one submission's step come in a burst (received,
		// routed, queued), and many submissions' steps in one second make one call.
		if !n.sleep(n.o.Window) {
			return
		}
		for {
			batch := q.take(n.o.MaxBatch)
			if len(batch) == 0 {
				break
			}
			if err := n.send(q.p, batch); err != nil {
				if n.ctx.Err() != nil {
					return // closing: the POST was cut short, not refused
				}
				if lost := q.putBack(batch, n.o.MaxPending); lost > 0 {
					n.dropped.WithLabelValues(q.p.ID).Add(float64(lost))
				}
				n.sent.WithLabelValues(q.p.ID, "failed").Inc()
				backoff = min(max(2*backoff, n.o.Window), n.o.MaxBackoff)
				// A portal that said when to come back (503 in a maintenance window,
				// 429) is not asked again before: it came again after 1 s, 2 s, …
				wait := backoff
				if ref, ok := errors.AsType[*refusal](err); ok && ref.retryAfter > wait {
					wait = min(ref.retryAfter, n.o.MaxBackoff)
				}
				n.log.Warn("portal callback failed; sent again later", "portal", q.p.ID, "ids", len(batch), "retry_in", wait, "err", err)
				if !n.sleep(wait) {
					return
				}
				continue
			}
			n.sent.WithLabelValues(q.p.ID, "ok").Inc()
			backoff = 0
		}
	}
}

// take removes up to max waiting submissions, oldest first.
func (q *queue) take(max int) []subject {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := min(max, len(q.waiting))
	batch := append([]subject(nil), q.waiting[:k]...)
	q.waiting = q.waiting[k:]
	for _, x := range batch {
		delete(q.in, x.SubmissionID)
	}
	if len(q.waiting) == 0 {
		q.waiting, q.full = nil, false // let the backing array go after a burst
	}
	return batch
}

// putBack puts a failed batch in front of what came meanwhile — a submission
// that came again meanwhile is there once —, keeping at most max ids waiting
// (the newest beyond it are left out, as Observe leaves them), and returns how
// many it left out.
func (q *queue) putBack(batch []subject, max int) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	keep := make([]subject, 0, len(batch)+len(q.waiting))
	for _, x := range batch {
		if !q.in[x.SubmissionID] {
			keep = append(keep, x)
			q.in[x.SubmissionID] = true
		}
	}
	q.waiting = append(keep, q.waiting...)
	lost := 0
	if len(q.waiting) > max {
		for _, x := range q.waiting[max:] {
			delete(q.in, x.SubmissionID)
		}
		lost = len(q.waiting) - max
		q.waiting = q.waiting[:max:max]
	}
	return lost
}

// body is FIT-Connect's CallbackNewEvents; submissionIds is deprecated there but
// still sent, as the office notification does, for receivers of the older form.
type body struct {
	Type          string    `json:"type"`
	SubmissionIDs []string  `json:"submissionIds"`
	Submissions   []subject `json:"submissions"`
}

// subject is FIT-Connect's SubmissionForNewEvents: DestinationID is a UUID, the
// destinationId /v1/routes gave the portal for the office (wire.DestinationID), and
// OfficeID (amtsbote's, beside FIT-Connect's members) the readable office id.
type subject struct {
	DestinationID string `json:"destinationId"`
	SubmissionID  string `json:"submissionId"`
	CaseID        string `json:"caseId"`
	OfficeID      string `json:"officeId"`
}

// maxAnswer bounds what is read of a portal's answer: its status alone judges
// the callback, and an answer without end (a portal's error page streamed, a
// broken proxy) would keep the portal's one sender reading until the POST's
// timeout, every time (TestEndlessAnswerIsReadOnlyToItsCap).
const maxAnswer = 4 << 10

func (n *Notifier) send(p Portal, batch []subject) error {
	b := body{Type: TypeNewEvents, SubmissionIDs: make([]string, len(batch)), Submissions: batch}
	for i, x := range batch {
		b.SubmissionIDs[i] = x.SubmissionID
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.Endpoint, bytes.NewReader(raw))
	if err != nil {
		return errors.New("callback: cannot build the request") // the error would quote the endpoint
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "amtsbote-callback/1")
	var id [12]byte
	_, _ = rand.Read(id[:])
	if err := webhook.Sign(req.Header, p.Secret, "cb_"+hex.EncodeToString(id[:]), n.o.Now(), raw); err != nil {
		return err
	}
	resp, err := n.o.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // *url.Error quotes the endpoint, whose query may hold a token
		}
		return fmt.Errorf("callback: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &refusal{status: resp.StatusCode, retryAfter: adapters.ParseRetryAfter(resp.Header.Get("Retry-After"), n.o.Now())}
	}
	return nil
}

// refusal is a portal's answer other than 2xx, with the wait its Retry-After
// asked for (0: none).
type refusal struct {
	status     int
	retryAfter time.Duration
}

func (r *refusal) Error() string {
	return fmt.Sprintf("callback: the portal answered HTTP %d", r.status)
}
