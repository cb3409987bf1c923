package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/adapters"
)

// Endpoint states as the admin API and the metrics show them.
const (
	EndpointClosed   = "closed"    // attempts go through
	EndpointOpen     = "open"      // failing: no attempts until the cool-down is over
	EndpointHalfOpen = "half_open" // cool-down over: one probe at a time
	EndpointDisabled = "disabled"  // the endpoint answered 410 Gone: skipped until an operator enables it
)

// breakerGauge values of amtsbote_endpoint_breaker_state.
var breakerGauge = map[string]float64{EndpointClosed: 0, EndpointHalfOpen: 1, EndpointOpen: 2, EndpointDisabled: 3}

// EndpointState is what the gateway knows about one office's channel (office +
// channel): its circuit breaker, or that it is disabled. Times are real times.
type EndpointState struct {
	Office   string `json:"office"`
	Channel  string `json:"channel"`
	State    string `json:"state"`
	Failures int    `json:"consecutiveFailures"`
	// Opened counts how often the breaker opened since the gateway started.
	Opened   int        `json:"opened"`
	OpenedAt *time.Time `json:"openedAt,omitempty"`
	// RetryAt is when an open breaker lets the next probe through, or until when the
	// receiver asked not to be called (Retry-After).
	RetryAt    *time.Time `json:"retryAt,omitempty"`
	DisabledAt *time.Time `json:"disabledAt,omitempty"`
	Reason     string     `json:"reason,omitempty"`
}

type endpointKey struct{ office, channel string }

type endpoint struct {
	addr      string // endpointID of the address the breaker judged; a new one resets it
	state     string // closed, open or half_open (disabled is kept apart)
	failures  int
	opened    int
	openedAt  time.Time
	retryAt   time.Time // open: end of the cool-down
	notBefore time.Time // the receiver's Retry-After
	probing   bool
}

// disabledEndpoint is one entry of the book of disabled endpoints.
type disabledEndpoint struct {
	Office  string    `json:"office"`
	Channel string    `json:"channel"`
	At      time.Time `json:"at"`
	Reason  string    `json:"reason"`
	// Endpoint identifies the address that answered 410 (endpointID, a digest: the
	// address may carry a token). A configuration that moved the channel to another
	// address enables it again.
	Endpoint string `json:"endpoint,omitempty"`
}

// endpointID identifies a target's address without storing it.
func endpointID(t adapters.Target) string {
	sum := sha256.Sum256([]byte(t.Endpoint))
	return hex.EncodeToString(sum[:8])
}

// endpoints holds the per-endpoint circuit breakers (in memory: they restart closed)
// and the disabled endpoints (kept in memory as their book has them, see
// disabledBook; the book is written outside mu, as it may be a network call).
type endpoints struct {
	threshold int           // consecutive failures that open a breaker; 0: no breaker
	cooldown  time.Duration // real
	// probeWait is how long a message stays away while another one probes a
	// half-open endpoint: about as long as that probe can take (the attempt
	// timeout), not the cool-down, so that a backlog follows the successful probe
	// within seconds instead of trickling in over half a cool-down (seen in the
	// Portalverbund kill test: the last of 16 packages came 40 s after the peer
	// was back). 0: half the cool-down.
	probeWait time.Duration
	book      disabledBook // nil: memory only
	gauge     *prometheus.GaugeVec

	mu       sync.Mutex
	m        map[endpointKey]*endpoint
	disabled map[endpointKey]disabledEndpoint
}

func newEndpoints(threshold int, cooldown time.Duration, file string, reg prometheus.Registerer) *endpoints {
	e := &endpoints{
		threshold: threshold, cooldown: cooldown,
		m: map[endpointKey]*endpoint{}, disabled: map[endpointKey]disabledEndpoint{},
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "amtsbote_endpoint_breaker_state",
			Help: "State of an office's channel: 0 closed, 1 half-open (probing), 2 open (failing, attempts paused), 3 disabled (410 Gone, waits for an operator).",
		}, []string{"office", "channel"}),
	}
	if reg != nil {
		if err := reg.Register(e.gauge); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				e.gauge = are.ExistingCollector.(*prometheus.GaugeVec)
			}
		}
	}
	if file != "" {
		e.book = newFileBook(file)
	}
	return e
}

// load reads the disabled endpoints from the book, then follows the changes other
// gateways make to it until ctx ends.
func (e *endpoints) load(ctx context.Context) error {
	if e.book == nil {
		return nil
	}
	list, err := e.book.load(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	for _, d := range list {
		k := endpointKey{d.Office, d.Channel}
		e.disabled[k] = d
		e.gauge.WithLabelValues(k.office, k.channel).Set(breakerGauge[EndpointDisabled])
	}
	e.mu.Unlock()
	go e.book.watch(ctx, e.changed)
	return nil
}

// changed applies a change of the book, which may be another gateway's: a 410 it
// saw disables the channel here too; an operator's enable there (or a channel
// moved to a new address) enables it here and closes the breaker, as enable does.
func (e *endpoints) changed(d disabledEndpoint, removed bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := endpointKey{d.Office, d.Channel}
	if !removed {
		e.disabled[k] = d
		e.gauge.WithLabelValues(k.office, k.channel).Set(breakerGauge[EndpointDisabled])
		return
	}
	if _, ok := e.disabled[k]; !ok {
		return
	}
	delete(e.disabled, k)
	e.closeLocked(k, e.get(k))
}

// closeLocked closes the endpoint's breaker and forgets what it waited for: an
// operator (here or at another gateway) says the endpoint works again.
func (e *endpoints) closeLocked(k endpointKey, p *endpoint) {
	p.state, p.failures, p.probing, p.notBefore, p.retryAt = EndpointClosed, 0, false, time.Time{}, time.Time{}
	e.setGauge(k, p)
}

// bookTimeout bounds one write of the book (a round trip to the cluster).
const bookTimeout = 10 * time.Second

func (e *endpoints) put(d disabledEndpoint) error {
	if e.book == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), bookTimeout)
	defer cancel()
	return e.book.put(ctx, d)
}

func (e *endpoints) remove(k endpointKey) error {
	if e.book == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), bookTimeout)
	defer cancel()
	return e.book.remove(ctx, k.office, k.channel)
}

func (e *endpoints) get(k endpointKey) *endpoint {
	p := e.m[k]
	if p == nil {
		p = &endpoint{state: EndpointClosed}
		e.m[k] = p
	}
	return p
}

// setGauge shows p's state in the gauge. A closed breaker has no series: the
// gauge named every office's channel that ever had a package, at 0, for as long
// as the process ran — on a directory of all German municipalities some ten
// thousand series, nine in ten of /metrics, that no alert reads (the alerts ask
// for 2 and 3). An endpoint in trouble has its series, and closing it ends it.
func (e *endpoints) setGauge(k endpointKey, p *endpoint) {
	if p.state == EndpointClosed {
		e.gauge.DeleteLabelValues(k.office, k.channel)
		return
	}
	e.gauge.WithLabelValues(k.office, k.channel).Set(breakerGauge[p.state])
}

// isDisabled reports whether the endpoint is disabled, and why. A channel the
// configuration has moved to another address (addr) since is enabled again.
func (e *endpoints) isDisabled(k endpointKey, addr string) (d disabledEndpoint, off bool, reenabled bool, err error) {
	e.mu.Lock()
	d, ok := e.disabled[k]
	if !ok || d.Endpoint == "" || d.Endpoint == addr {
		e.mu.Unlock()
		return d, ok, false, nil
	}
	delete(e.disabled, k)
	// The breaker's state, as setGauge shows it: none for a closed one (a series
	// at 0 was left behind here for every channel moved after a 410).
	if p := e.m[k]; p != nil {
		e.setGauge(k, p)
	} else {
		e.gauge.DeleteLabelValues(k.office, k.channel)
	}
	e.mu.Unlock()
	return d, false, true, e.remove(k)
}

// Why allow keeps a message away from its endpoint: the label "reason" of
// amtsbote_delivery_deferred_total.
const (
	deferRetryAfter = "retry_after" // the receiver asked not to be called yet (Retry-After)
	deferBreaker    = "breaker"     // the breaker is open: the cool-down is not over
	deferProbe      = "probe"       // half-open: another message's attempt probes the endpoint
)

// deferReasons are all of allow's reasons, for the series at 0 from the start.
var deferReasons = []string{deferRetryAfter, deferBreaker, deferProbe}

// allow reports whether an attempt may go to the endpoint now; if not, wait is how
// long the message should stay away (real time, with jitter so the waiting messages
// do not all come back at once) and why is one of the defer reasons. A true answer
// in half-open state makes the caller the one probe: it must report the outcome
// (success, failure or release).
func (e *endpoints) allow(k endpointKey, addr string, now time.Time) (ok bool, wait time.Duration, why string) {
	if e.threshold <= 0 {
		return true, 0, ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.get(k)
	switch p.addr {
	case addr:
	case "":
		// New, or made by a failure after a success forgot the endpoint (forget):
		// the address is this one, and the failure counts.
		p.addr = addr
	default:
		// A new address (a rotation): what the old one did says nothing about it.
		*p = endpoint{addr: addr, state: EndpointClosed, opened: p.opened}
		e.setGauge(k, p)
	}
	if now.Before(p.notBefore) {
		return false, p.notBefore.Sub(now) + e.jitter(), deferRetryAfter
	}
	switch p.state {
	case EndpointOpen:
		if now.Before(p.retryAt) {
			return false, p.retryAt.Sub(now) + e.jitter(), deferBreaker
		}
		p.state, p.probing = EndpointHalfOpen, true
		e.setGauge(k, p)
		return true, 0, ""
	case EndpointHalfOpen:
		if p.probing {
			w := e.cooldown / 2
			if e.probeWait > 0 && e.probeWait < w {
				w = e.probeWait
			}
			return false, w + jitter(w), deferProbe
		}
		p.probing = true
		return true, 0, ""
	}
	return true, 0, ""
}

// jitter is up to a fifth of the cool-down, at least a millisecond.
func (e *endpoints) jitter() time.Duration { return jitter(e.cooldown) }

// jitter is up to a fifth of d, at least a millisecond: waiting messages do not all
// come back at once.
func jitter(d time.Duration) time.Duration {
	return time.Millisecond + time.Duration(rand.Int64N(int64(d/5)+1))
}

// success closes the endpoint's breaker.
func (e *endpoints) success(k endpointKey) {
	if e.threshold <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.get(k)
	p.failures, p.probing = 0, false
	if p.state != EndpointClosed {
		p.state = EndpointClosed
		e.setGauge(k, p)
	}
	e.forget(k, p)
}

// forget drops an endpoint that has nothing to tell: closed, no failure, no
// probe, never opened, never asked to wait. Every office's channel that had one
// package got an entry, and kept it until the process ended; on a directory of
// all German municipalities that is some ten thousand entries, each in the admin
// list of endpoints. An endpoint with a history (opened, Retry-After) stays, so
// that the admin list keeps how often it opened; those are the offices that had
// trouble, not every office that had a package. A forgotten endpoint is what a
// new one is: allow makes it again.
func (e *endpoints) forget(k endpointKey, p *endpoint) {
	if p.state == EndpointClosed && p.failures == 0 && !p.probing && p.opened == 0 && p.notBefore.IsZero() && e.m[k] == p {
		delete(e.m, k)
	}
}

// failure counts a transient failure; threshold failures in a row, or a failed
// probe, open the breaker for a cool-down. retryAfter (real, 0: none) keeps every
// attempt away from the endpoint as long as the receiver asked. opened says the
// breaker opened from closed: a failed probe reopens it (counted in Opened) but
// is not news — the caller warned when it first opened, and a dead endpoint with
// a backlog would otherwise log a warning every cool-down for as long as it is down.
func (e *endpoints) failure(k endpointKey, now time.Time, retryAfter time.Duration) (opened bool) {
	if e.threshold <= 0 {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.get(k)
	p.failures++
	if retryAfter > 0 && now.Add(retryAfter).After(p.notBefore) {
		p.notBefore = now.Add(retryAfter)
	}
	probe := p.probing
	p.probing = false
	if probe || (p.state == EndpointClosed && p.failures >= e.threshold) || p.state == EndpointHalfOpen {
		if p.state != EndpointOpen {
			p.opened++
			p.openedAt = now
			opened = p.state == EndpointClosed
		}
		p.state, p.retryAt = EndpointOpen, now.Add(e.cooldown)
		e.setGauge(k, p)
		e.halfOpenAfterCooldown(k, p, p.retryAt)
	}
	return opened
}

// holds is how long from now the endpoint keeps every attempt away (real time):
// until its open breaker's cool-down is over, or the receiver's Retry-After; 0
// when an attempt may go now. A failure's next attempt comes no earlier (failed).
func (e *endpoints) holds(k endpointKey, now time.Time) time.Duration {
	if e.threshold <= 0 {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.m[k]
	if p == nil {
		return 0
	}
	until := p.notBefore
	if p.state == EndpointOpen && p.retryAt.After(until) {
		until = p.retryAt
	}
	return max(until.Sub(now), 0)
}

// halfOpenAfterCooldown shows the breaker as half-open in the gauge once its
// cool-down is over. The state itself moves only when an attempt comes due
// (allow), and with nothing waiting for the endpoint (the office's packages
// went on to its mailbox, or the next retry is hours off) none comes: the gauge
// said open for ever, and AmtsboteEndpointFailing fired for an endpoint nobody
// had tried since, also after the office mended it.
func (e *endpoints) halfOpenAfterCooldown(k endpointKey, p *endpoint, retryAt time.Time) {
	time.AfterFunc(time.Until(retryAt), func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, off := e.disabled[k]; !off && e.m[k] == p && p.state == EndpointOpen && p.retryAt.Equal(retryAt) {
			e.gauge.WithLabelValues(k.office, k.channel).Set(breakerGauge[EndpointHalfOpen])
		}
	})
}

// release ends a probe that said nothing about the endpoint's health (a permanent
// refusal of one package, an attempt cut short by shutdown).
func (e *endpoints) release(k endpointKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.m[k]; p != nil {
		p.probing = false
		e.forget(k, p)
	}
}

// disable marks the endpoint gone until enable; persisted when a file is set.
func (e *endpoints) disable(k endpointKey, addr string, now time.Time, reason string) error {
	e.mu.Lock()
	if _, ok := e.disabled[k]; ok {
		e.mu.Unlock()
		return nil
	}
	d := disabledEndpoint{Office: k.office, Channel: k.channel, At: now.UTC(), Reason: reason, Endpoint: addr}
	e.disabled[k] = d
	e.gauge.WithLabelValues(k.office, k.channel).Set(breakerGauge[EndpointDisabled])
	e.mu.Unlock()
	return e.put(d)
}

// enable lifts a disabled state and closes the breaker (an operator says the
// endpoint works again). It reports whether anything was known of the endpoint.
func (e *endpoints) enable(k endpointKey) (bool, error) {
	e.mu.Lock()
	was, wasDisabled := e.disabled[k]
	p, known := e.m[k]
	if !wasDisabled && !known {
		e.mu.Unlock()
		return false, nil
	}
	if p == nil {
		p = e.get(k)
	}
	e.closeLocked(k, p)
	delete(e.disabled, k)
	e.mu.Unlock()
	if !wasDisabled {
		return true, nil
	}
	if err := e.remove(k); err != nil {
		// The book still says disabled: keep it so in memory too, so a restart (and
		// every other gateway) agrees.
		e.mu.Lock()
		e.disabled[k] = was
		e.gauge.WithLabelValues(k.office, k.channel).Set(breakerGauge[EndpointDisabled])
		e.mu.Unlock()
		return true, err
	}
	return true, nil
}

// list returns every endpoint known: disabled ones and those with a breaker that
// failed, opened or was asked to wait since the start (forget drops the others).
func (e *endpoints) list(now time.Time) []EndpointState {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := map[endpointKey]bool{}
	var out []EndpointState
	ptr := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return &t
	}
	for k, p := range e.m {
		seen[k] = true
		st := EndpointState{Office: k.office, Channel: k.channel, State: p.state, Failures: p.failures, Opened: p.opened}
		if p.state == EndpointOpen && !now.Before(p.retryAt) {
			st.State = EndpointHalfOpen // the cool-down is over: the next attempt is a probe (as the gauge says)
		}
		if p.state != EndpointClosed {
			st.OpenedAt = ptr(p.openedAt)
		}
		if p.state == EndpointOpen {
			st.RetryAt = ptr(p.retryAt)
		}
		if now.Before(p.notBefore) && (st.RetryAt == nil || p.notBefore.After(*st.RetryAt)) {
			st.RetryAt = ptr(p.notBefore)
		}
		if d, ok := e.disabled[k]; ok {
			st.State, st.DisabledAt, st.Reason = EndpointDisabled, ptr(d.At), d.Reason
		}
		out = append(out, st)
	}
	for k, d := range e.disabled {
		if !seen[k] {
			out = append(out, EndpointState{Office: k.office, Channel: k.channel, State: EndpointDisabled, DisabledAt: ptr(d.At), Reason: d.Reason})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Office != out[j].Office {
			return out[i].Office < out[j].Office
		}
		return out[i].Channel < out[j].Channel
	})
	return out
}

// Endpoints lists what the gateway knows of the offices' endpoints: circuit breakers
// that failed, opened or were asked to wait since the start (in memory, per
// process; an endpoint that only ever answered is not listed) and disabled
// channels (persisted). For the admin API.
func (b *Broker) Endpoints() []EndpointState { return b.ends.list(time.Now()) }

// EnableEndpoint lifts the disabled state of an office's channel and closes its
// breaker, so the next packages try it again. ErrNotFound: nothing is known of it.
func (b *Broker) EnableEndpoint(office, channel, actor string) (EndpointState, error) {
	k := endpointKey{office, channel}
	known, err := b.ends.enable(k)
	if err != nil {
		return EndpointState{}, fmt.Errorf("broker: enable %s/%s: %w", office, channel, err)
	}
	if !known {
		return EndpointState{}, fmt.Errorf("%w: endpoint %s/%s", ErrNotFound, office, channel)
	}
	b.log.Info("endpoint enabled by operator", "office", office, "channel", channel, "actor", actor)
	for _, st := range b.Endpoints() {
		if st.Office == office && st.Channel == channel {
			return st, nil
		}
	}
	return EndpointState{Office: office, Channel: channel, State: EndpointClosed}, nil
}
