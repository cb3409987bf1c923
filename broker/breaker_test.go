package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/submission"
)

// hookSecret signs the notifications to the test offices.
var hookSecret = webhook.NewSecret()

// hookReq is one request an office endpoint received.
type hookReq struct {
	n            webhook.Notification
	at           time.Time
	status       int
	retryAfter   string
	concurrently int64
}

// officeHook is an office's webhook endpoint (a real HTTP server) whose answer the
// test decides per request; it counts how many requests run at once.
type officeHook struct {
	srv    *httptest.Server
	answer func(n int, at time.Time) (status int, retryAfter string)
	hold   time.Duration // how long a 2xx answer takes

	mu           sync.Mutex
	reqs         []hookReq
	active, peak atomic.Int64
}

func newHook(t *testing.T, answer func(n int, at time.Time) (int, string)) *officeHook {
	h := &officeHook{answer: answer}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		cur := h.active.Add(1)
		defer h.active.Add(-1)
		for p := h.peak.Load(); cur > p && !h.peak.CompareAndSwap(p, cur); p = h.peak.Load() {
		}
		var n webhook.Notification
		_ = json.NewDecoder(r.Body).Decode(&n)
		h.mu.Lock()
		status, ra := h.answer(len(h.reqs), now)
		h.reqs = append(h.reqs, hookReq{n: n, at: now, status: status, retryAfter: ra, concurrently: cur})
		h.mu.Unlock()
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		if status < 300 {
			time.Sleep(h.hold)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *officeHook) requests() []hookReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookReq(nil), h.reqs...)
}

// startHooked runs a broker whose office-a/webhook channel is hook, with a scripted
// "mailbox" as the office's last channel.
func startHooked(t *testing.T, dir string, cfg Config, hook *officeHook) (*env, *scripted) {
	t.Helper()
	wh, err := webhook.New(webhook.Options{PublicBaseURL: "https://gateway.example", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mailbox := &scripted{channel: "mailbox"}
	chans := ChannelsFunc(func(office, ch string) (adapters.Target, bool) {
		if ch == webhook.Channel {
			return adapters.Target{Channel: ch, Endpoint: hook.srv.URL, Secret: hookSecret}, true
		}
		return testChannels.Target(office, ch)
	})
	return startWithChannels(t, dir, cfg, chans, wh, mailbox), mailbox
}

// nextIn reads the delay an attempt_failed event states ("...; next attempt in 5h0m0s",
// or "...; next attempt in 1m2s at the earliest (...)").
func nextIn(t *testing.T, e submission.Event) time.Duration {
	t.Helper()
	_, after, ok := strings.Cut(e.Detail, "next attempt in ")
	if !ok {
		t.Fatalf("attempt_failed without its next attempt: %q", e.Detail)
	}
	after, _, _ = strings.Cut(after, " ") // "... at the earliest (...)" while the endpoint is paused
	d, err := time.ParseDuration(after)
	if err != nil {
		t.Fatalf("next attempt in %q: %v", after, err)
	}
	return d
}

func (b *Broker) endpoint(office, channel string) EndpointState {
	for _, st := range b.Endpoints() {
		if st.Office == office && st.Channel == channel {
			return st
		}
	}
	return EndpointState{}
}

// TestOfficeDownForADay: the office's endpoint answers 503 for a (simulated) day and
// then recovers. The package is retried on the standard schedule, the breaker opens
// and is visible (event log, metrics, admin view), and after the recovery the package
// is delivered on the webhook with its original delivery id, never falling back.
func TestOfficeDownForADay(t *testing.T) {
	const scale = 1.0 / 20000 // a simulated day takes 4.3 s
	day := time.Duration(float64(24*time.Hour) * scale)
	var first time.Time
	hook := newHook(t, func(n int, at time.Time) (int, string) {
		if n == 0 {
			first = at
		}
		if at.Sub(first) < day {
			return http.StatusServiceUnavailable, ""
		}
		return http.StatusOK, ""
	})
	reg := prometheus.NewRegistry()
	cfg := Config{Workers: 4, PerOffice: 2, Schedule: StandardSchedule, TimeScale: scale, AttemptTimeout: 5 * time.Second, Registerer: reg}
	e, mailbox := startHooked(t, t.TempDir(), cfg, hook)

	// What an operator would see right after the failure that opened the breaker.
	type seen struct {
		gauge    float64
		endpoint EndpointState
	}
	var mu sync.Mutex
	atFailure := map[int]seen{}
	e.b.Observe(func(_ *submission.Submission, ev submission.Event) {
		if ev.Type != submission.EventAttemptFailed {
			return
		}
		var m dto.Metric
		_ = e.b.ends.gauge.WithLabelValues("office-a", webhook.Channel).Write(&m)
		g := m.GetGauge().GetValue()
		mu.Lock()
		atFailure[ev.Attempt] = seen{g, e.b.endpoint("office-a", webhook.Channel)}
		mu.Unlock()
	})

	a, err := e.b.Receive(context.Background(), intake("day-1", webhook.Channel, "mailbox"))
	if err != nil {
		t.Fatal(err)
	}
	s := waitState(t, e.b, a.Submission.ID, submission.StateDelivered)

	evs, err := e.b.Log(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	failed := submission.OfType(evs, submission.EventAttemptFailed)
	// Attempts at 0, 5s, 5m, 35m, 2h35m, 7h35m, 17h35m fall in the day (7 failures);
	// a slow machine stretches simulated time, so at least the first six are certain.
	if len(failed) < 6 || len(failed) > len(StandardSchedule) {
		t.Fatalf("%d failed attempts, want 6..%d: %+v", len(failed), len(StandardSchedule), failed)
	}
	var span time.Duration
	for i, ev := range failed {
		want := StandardSchedule[i]
		got := nextIn(t, ev)
		if lo, hi := time.Duration(float64(want)*0.9)-time.Second, time.Duration(float64(want)*1.1)+time.Second; got < lo || got > hi {
			t.Errorf("attempt %d: next attempt in %s, want %s ±10 %%", ev.Attempt, got, want)
		}
		if ev.Attempt != i+1 || ev.Channel != webhook.Channel || !strings.HasPrefix(ev.Detail, "receiver answered HTTP 503; ") {
			t.Errorf("attempt_failed %d: %+v", i+1, ev)
		}
		span += got
		t.Logf("attempt %d: %s", ev.Attempt, ev.Detail)
	}
	if n := len(failed); n == 7 && span < 17*time.Hour {
		t.Errorf("seven failed attempts span %s of simulated time", span)
	}
	del := submission.OfType(evs, submission.EventDelivered)
	if len(del) != 1 || del[0].Channel != webhook.Channel || del[0].Attempt != len(failed)+1 {
		t.Fatalf("delivered events %+v, want one on the webhook at attempt %d", del, len(failed)+1)
	}
	if n := len(submission.OfType(evs, submission.EventChannelFailed)); n != 0 || len(mailbox.deliveries()) != 0 {
		t.Fatalf("fell back: %d channel_failed, %d mailbox deliveries", n, len(mailbox.deliveries()))
	}

	// Every request carried the same delivery id, one per recorded attempt, in order;
	// the last came after the office's day of downtime.
	reqs := hook.requests()
	if len(reqs) != len(failed)+1 {
		t.Fatalf("%d requests for %d attempts", len(reqs), len(failed)+1)
	}
	for i, r := range reqs {
		if r.n.DeliveryID != s.DeliveryID || r.n.SubmissionID != s.ID || r.n.Attempt != i+1 {
			t.Errorf("request %d: delivery %q attempt %d, want %q attempt %d", i, r.n.DeliveryID, r.n.Attempt, s.DeliveryID, i+1)
		}
	}
	if last := reqs[len(reqs)-1]; last.status != http.StatusOK || last.at.Sub(first) < day {
		t.Errorf("the delivering request: %d at %s after the first", last.status, last.at.Sub(first))
	}

	// The breaker opened at the fifth failure, visible in metrics and the admin view;
	// it is closed again after the delivery.
	mu.Lock()
	at5 := atFailure[5]
	mu.Unlock()
	// On the compressed clock the cool-down (a minute) is over within
	// milliseconds, and an open breaker whose cool-down is over shows half-open
	// (TestBreakerGaugeShowsTheCooldownEnd): either is the breaker that opened.
	// The gauge and the admin view are two reads, and the cool-down may end
	// between them (CI saw gauge open, view half-open), so each is checked alone.
	openOrHalf := func(s string) bool { return s == EndpointOpen || s == EndpointHalfOpen }
	opened := (at5.gauge == breakerGauge[EndpointOpen] || at5.gauge == breakerGauge[EndpointHalfOpen]) &&
		openOrHalf(at5.endpoint.State)
	if !opened || at5.endpoint.Opened < 1 || at5.endpoint.OpenedAt == nil || at5.endpoint.RetryAt == nil {
		t.Errorf("after the fifth failure: gauge %v, endpoint %+v; want open (or half-open after its cool-down)", at5.gauge, at5.endpoint)
	}
	if st := e.b.endpoint("office-a", webhook.Channel); st.State != EndpointClosed || st.Opened < 1 || st.Failures != 0 {
		t.Errorf("after the delivery: %+v, want closed, opened at least once", st)
	}
	// A closed breaker has no series (TestBreakerKeepsOnlyEndpointsInTrouble).
	if s := testenv.Series(t, reg, "amtsbote_endpoint_breaker_state"); len(s) > 0 {
		t.Errorf("amtsbote_endpoint_breaker_state after the breaker closed: %v, want no series", s)
	}

	// The portal sees the schedule in simulated terms, not the operator's notes.
	_, pevs, err := e.b.PortalStatus("amt24", s.ID)
	if err != nil {
		t.Fatal(err)
	}
	pfailed := submission.OfType(pevs, submission.EventAttemptFailed)
	if len(pfailed) != len(failed) || !strings.Contains(pfailed[4].Detail, "next attempt in ") || pfailed[4].Note != "" {
		t.Fatalf("portal view of the fifth failure: %+v", pfailed)
	}
	if d := nextIn(t, pfailed[4]); d < 4*time.Hour+30*time.Minute || d > 5*time.Hour+30*time.Minute {
		t.Errorf("portal sees the fifth retry in %s, want about 5h", d)
	}
}

// TestRecoveryIsNotAHerd: while the breaker is open, packages wait without using up
// attempts; when the office recovers, the waiting packages go out under the
// per-office cap, not all at once.
func TestRecoveryIsNotAHerd(t *testing.T) {
	var up atomic.Bool
	hook := newHook(t, func(int, time.Time) (int, string) {
		if up.Load() {
			return http.StatusOK, ""
		}
		return http.StatusServiceUnavailable, ""
	})
	hook.hold = 20 * time.Millisecond
	cfg := Config{Workers: 8, PerOffice: 2, MaxAttempts: 1000, BackoffBase: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		BreakerThreshold: 5, BreakerCooldown: 300 * time.Millisecond, AttemptTimeout: 5 * time.Second}
	e, _ := startHooked(t, t.TempDir(), cfg, hook)

	const packages = 24
	var ids []string
	for i := 0; i < packages; i++ {
		a, err := e.b.Receive(context.Background(), intake(fmt.Sprintf("herd-%d", i), webhook.Channel, "mailbox"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.Submission.ID)
	}
	deadline := time.Now().Add(20 * time.Second)
	for e.b.endpoint("office-a", webhook.Channel).Opened == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the breaker never opened")
		}
		time.Sleep(2 * time.Millisecond)
	}
	up.Store(true)
	for _, id := range ids {
		waitState(t, e.b, id, submission.StateDelivered)
	}

	reqs := hook.requests()
	var refused, untried int
	for _, r := range reqs {
		if r.status != http.StatusOK {
			refused++
		}
	}
	var recorded int
	for _, id := range ids {
		evs, _ := e.b.Log(id)
		n := len(submission.OfType(evs, submission.EventAttemptFailed))
		recorded += n
		if n == 0 {
			untried++
		}
		if d := submission.OfType(evs, submission.EventDelivered); len(d) != 1 || d[0].Channel != webhook.Channel {
			t.Errorf("%s: delivered %+v, want on the webhook", id, d)
		}
	}
	if recorded != refused {
		t.Errorf("%d attempt_failed events for %d refused requests: waiting behind the breaker used up attempts", recorded, refused)
	}
	if refused >= packages || untried == 0 {
		t.Errorf("%d refused requests for %d packages, %d waited without an attempt: the breaker did not hold them back", refused, packages, untried)
	}
	if p := hook.peak.Load(); p > int64(cfg.PerOffice) {
		t.Errorf("%d requests ran at once at the office, cap is %d", p, cfg.PerOffice)
	}
	var afterRecovery int64
	for _, r := range reqs {
		if r.status == http.StatusOK {
			afterRecovery = max(afterRecovery, r.concurrently)
		}
	}
	if afterRecovery > int64(cfg.PerOffice) {
		t.Errorf("%d requests at once right after the recovery, cap is %d", afterRecovery, cfg.PerOffice)
	}
	if st := e.b.endpoint("office-a", webhook.Channel); st.State != EndpointClosed {
		t.Errorf("endpoint after the recovery: %+v", st)
	}
}

// TestRetryAfterIsHonoured: 429 and 503 with Retry-After hold the next attempt at
// least as long as asked, capped at 24 hours.
func TestRetryAfterIsHonoured(t *testing.T) {
	const scale = 1.0 / 100000
	hook := newHook(t, func(n int, _ time.Time) (int, string) {
		switch n {
		case 0:
			return http.StatusTooManyRequests, "3600"
		case 1:
			return http.StatusServiceUnavailable, "172800" // two days: capped at one
		}
		return http.StatusOK, ""
	})
	cfg := Config{Workers: 2, Schedule: StandardSchedule, TimeScale: scale, AttemptTimeout: 5 * time.Second}
	e, _ := startHooked(t, t.TempDir(), cfg, hook)
	a, err := e.b.Receive(context.Background(), intake("ra-1", webhook.Channel))
	if err != nil {
		t.Fatal(err)
	}
	s := waitState(t, e.b, a.Submission.ID, submission.StateDelivered)
	evs, _ := e.b.Log(s.ID)
	failed := submission.OfType(evs, submission.EventAttemptFailed)
	if len(failed) != 2 {
		t.Fatalf("failed attempts %+v", failed)
	}
	if d := nextIn(t, failed[0]); d != time.Hour || !strings.HasPrefix(failed[0].Detail, "receiver answered HTTP 429") {
		t.Errorf("after the 429: %q, want next attempt in 1h0m0s", failed[0].Detail)
	}
	if d := nextIn(t, failed[1]); d != 24*time.Hour {
		t.Errorf("after the 503: %q, want the 24h cap", failed[1].Detail)
	}
	// Never earlier than asked (in scaled time): each request after its failure's
	// event plus the delay asked.
	reqs := hook.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	for i, asked := range []time.Duration{time.Hour, 24 * time.Hour} {
		due := failed[i].At.Add(time.Duration(float64(asked) * scale))
		if reqs[i+1].at.Before(due) {
			t.Errorf("request %d came %s before the Retry-After was over", i+2, due.Sub(reqs[i+1].at))
		}
	}
}

// TestDeferralIsCounted: an office answers 503 with Retry-After: 3600 (a
// maintenance window); a package that arrives meanwhile is kept from it without
// an attempt. That deferral was counted nowhere, so accepted packages with flat
// attempts made AmtsboteDeliveriesStalled page for an office that had only asked
// to be called later; amtsbote_delivery_deferred_total now moves instead.
func TestDeferralIsCounted(t *testing.T) {
	hook := newHook(t, func(int, time.Time) (int, string) {
		return http.StatusServiceUnavailable, "3600"
	})
	cfg := Config{Workers: 2, Schedule: StandardSchedule, AttemptTimeout: 5 * time.Second}
	e, _ := startHooked(t, t.TempDir(), cfg, hook)
	count := func(vec *prometheus.CounterVec, labels ...string) float64 { return counterOf(t, vec, labels...) }
	first, err := e.b.Receive(context.Background(), intake("defer-1", webhook.Channel))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first attempt failed", func() bool {
		evs, _ := e.b.Log(first.Submission.ID)
		return len(submission.OfType(evs, submission.EventAttemptFailed)) == 1
	})
	second, err := e.b.Receive(context.Background(), intake("defer-2", webhook.Channel))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second package deferred for the Retry-After", func() bool {
		return count(e.b.metrics.deferred, webhook.Channel, deferRetryAfter) == 1
	})
	// Its record and history say until when (TestWaitingPackageLearnsOfTheBreakersHold).
	eventually(t, "the second package's deferral recorded", func() bool {
		evs, _ := e.b.Log(second.Submission.ID)
		return len(deferrals(evs)) == 1
	})
	evs, _ := e.b.Log(second.Submission.ID)
	s, err := e.b.Submission(second.Submission.ID)
	if err != nil {
		t.Fatal(err)
	}
	ra := e.b.endpoint("office-a", webhook.Channel).RetryAt
	if d := deferrals(evs)[0].Detail; !strings.HasPrefix(d, "the office's endpoint asked to be called later; next attempt in ") ||
		ra == nil || s.NextAttemptAt.Before(*ra) || s.State != submission.StateQueued {
		t.Errorf("the deferred package: %s, next attempt %s (Retry-After until %v), event %q", s.State, s.NextAttemptAt, ra, d)
	}
	if n := len(hook.requests()); n != 1 {
		t.Fatalf("the office got %d requests during its Retry-After, want the first one only", n)
	}
	if got := count(e.b.metrics.attempts, webhook.Channel, "transient"); got != 1 {
		t.Fatalf("%v transient attempts, want 1", got)
	}
}

// TestGoneDisablesTheChannel: a 410 Gone sends the package to the office's next
// channel at once and disables the endpoint: later packages skip it (with an event
// saying so), across a restart, until an operator enables it again.
func TestGoneDisablesTheChannel(t *testing.T) {
	var gone atomic.Bool
	gone.Store(true)
	hook := newHook(t, func(int, time.Time) (int, string) {
		if gone.Load() {
			return http.StatusGone, ""
		}
		return http.StatusOK, ""
	})
	dir := t.TempDir()
	file := filepath.Join(dir, "endpoints.json")
	cfg := Config{Workers: 2, Schedule: StandardSchedule, AttemptTimeout: 5 * time.Second, EndpointsFile: file}
	e, mailbox := startHooked(t, dir, cfg, hook)

	deliver := func(e *env, msg string) []submission.Event {
		t.Helper()
		a, err := e.b.Receive(context.Background(), intake(msg, webhook.Channel, "mailbox"))
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, e.b, a.Submission.ID, submission.StateDelivered)
		_, evs, _ := e.b.PortalStatus("amt24", a.Submission.ID)
		return evs
	}
	channelOf := func(evs []submission.Event) string {
		d := submission.OfType(evs, submission.EventDelivered)
		if len(d) != 1 {
			t.Fatalf("delivered events %+v", d)
		}
		return d[0].Channel
	}

	evs := deliver(e, "gone-1")
	cf := submission.OfType(evs, submission.EventChannelFailed)
	if len(cf) != 1 || cf[0].Detail != "receiver answered HTTP 410" || channelOf(evs) != "mailbox" {
		t.Fatalf("first package: %+v", evs)
	}
	if all, _ := e.b.Log(cf[0].SubmissionID); !strings.Contains(submission.OfType(all, submission.EventChannelFailed)[0].Note, "disabled") {
		t.Errorf("the operator's note does not say the channel was disabled: %+v", all)
	}
	if len(submission.OfType(evs, submission.EventAttemptFailed)) != 0 {
		t.Fatal("a 410 was retried")
	}
	if st := e.b.endpoint("office-a", webhook.Channel); st.State != EndpointDisabled || st.DisabledAt == nil {
		t.Fatalf("endpoint after 410: %+v", st)
	}

	evs = deliver(e, "gone-2")
	cf = submission.OfType(evs, submission.EventChannelFailed)
	if len(cf) != 1 || !strings.Contains(cf[0].Detail, "channel webhook is disabled") || channelOf(evs) != "mailbox" {
		t.Fatalf("second package: %+v", evs)
	}
	if n := len(hook.requests()); n != 1 {
		t.Fatalf("the disabled endpoint got %d requests, want the first only", n)
	}

	// A restart keeps it disabled (the file in the data folder).
	raw, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(raw), `"office": "office-a"`) || strings.Contains(string(raw), hook.srv.URL) {
		t.Fatalf("persisted state %s (%v): want the office, not the address", raw, err)
	}
	e.stop()
	gone.Store(false)
	e, _ = startHooked(t, dir, cfg, hook)
	if st := e.b.endpoint("office-a", webhook.Channel); st.State != EndpointDisabled {
		t.Fatalf("after the restart: %+v", st)
	}
	if channelOf(deliver(e, "gone-3")) != "mailbox" || len(hook.requests()) != 1 {
		t.Fatal("after the restart the disabled endpoint was tried")
	}

	// The operator enables it: the next package goes to the webhook again.
	if _, err := e.b.EnableEndpoint("office-a", "fax", "test"); err == nil {
		t.Error("enabling an unknown endpoint succeeded")
	}
	st, err := e.b.EnableEndpoint("office-a", webhook.Channel, "test")
	if err != nil || st.State != EndpointClosed {
		t.Fatalf("enable: %+v %v", st, err)
	}
	if channelOf(deliver(e, "gone-4")) != webhook.Channel || len(hook.requests()) != 2 {
		t.Fatal("the enabled endpoint was not used")
	}
	raw, _ = os.ReadFile(file)
	if strings.Contains(string(raw), "office-a") {
		t.Fatalf("enabled endpoint still persisted: %s", raw)
	}
	_ = mailbox
}

// TestBreakerStates walks the breaker without a queue: threshold, cool-down, one
// probe at a time, a failed probe reopens, a success closes; a new address resets it.
func TestBreakerStates(t *testing.T) {
	e := newEndpoints(3, time.Minute, "", nil)
	k, addr := endpointKey{"o", "webhook"}, "a1"
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for i := 0; i < 2; i++ {
		if ok, _, _ := e.allow(k, addr, now); !ok {
			t.Fatal("closed breaker refused")
		}
		if e.failure(k, now, 0) {
			t.Fatalf("opened after %d failures", i+1)
		}
	}
	if ok, _, _ := e.allow(k, addr, now); !ok || !e.failure(k, now, 0) {
		t.Fatal("the third failure did not open the breaker")
	}
	if ok, wait, why := e.allow(k, addr, now.Add(30*time.Second)); ok || wait < 30*time.Second || why != deferBreaker {
		t.Fatalf("open breaker: ok %v, wait %s, why %q", ok, wait, why)
	}
	probeAt := now.Add(61 * time.Second)
	if ok, _, _ := e.allow(k, addr, probeAt); !ok {
		t.Fatal("no probe after the cool-down")
	}
	if ok, wait, why := e.allow(k, addr, probeAt); ok || wait > 43*time.Second || why != deferProbe {
		t.Fatalf("a second probe while the first runs: ok %v, wait %s, why %q", ok, wait, why)
	}
	// Who waits for a probe waits about as long as a probe can take, not half the
	// cool-down: the backlog follows a good probe within seconds.
	e.probeWait = 5 * time.Second
	if ok, wait, _ := e.allow(k, addr, probeAt); ok || wait > 6*time.Second+time.Millisecond {
		t.Fatalf("waiting for a probe with a 5s attempt timeout: ok %v, wait %s", ok, wait)
	}
	e.probeWait = 0
	if e.failure(k, probeAt, 0) {
		t.Fatal("a failed probe reported as a newly opened breaker (a warning per cool-down while the endpoint is down)")
	}
	if ok, _, _ := e.allow(k, addr, probeAt.Add(time.Second)); ok {
		t.Fatal("a failed probe did not reopen the breaker")
	}
	probeAt = probeAt.Add(61 * time.Second)
	if ok, _, _ := e.allow(k, addr, probeAt); !ok {
		t.Fatal("no second probe")
	}
	e.release(k) // the probe said nothing (a permanent refusal of its package)
	if ok, _, _ := e.allow(k, addr, probeAt); !ok {
		t.Fatal("released probe not replaced")
	}
	e.success(k)
	if st := e.list(probeAt)[0]; st.State != EndpointClosed || st.Opened != 2 {
		t.Fatalf("after a good probe: %+v", st)
	}
	// Retry-After holds every attempt to the endpoint.
	e.failure(k, probeAt, time.Hour)
	if ok, wait, why := e.allow(k, addr, probeAt.Add(time.Minute)); ok || wait < 59*time.Minute || why != deferRetryAfter {
		t.Fatalf("Retry-After: ok %v wait %s why %q", ok, wait, why)
	}
	// A rotated address starts afresh.
	if ok, _, _ := e.allow(k, "a2", probeAt.Add(time.Minute)); !ok {
		t.Fatal("a new address inherited the old one's breaker")
	}
}

// TestBreakerGaugeShowsTheCooldownEnd: the breaker moves from open to half-open
// only when an attempt for the endpoint comes due; with nothing waiting (the
// office's packages went on to its mailbox) none comes, and the gauge said open
// for ever — AmtsboteEndpointFailing fired for an endpoint nobody had tried
// since, also after the office had mended it. Once the cool-down is over the
// gauge and the admin list say half-open.
func TestBreakerGaugeShowsTheCooldownEnd(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEndpoints(1, 500*time.Millisecond, "", reg)
	k := endpointKey{office: "office-a", channel: "webhook"}
	if !e.failure(k, time.Now(), 0) {
		t.Fatal("one failure at threshold 1 did not open the breaker")
	}
	value := func() float64 {
		t.Helper()
		s := testenv.Series(t, reg, "amtsbote_endpoint_breaker_state")
		v, ok := s["amtsbote_endpoint_breaker_state channel=webhook office=office-a"]
		if !ok || len(s) != 1 {
			t.Fatalf("amtsbote_endpoint_breaker_state: %v, want the one series of office-a", s)
		}
		return v
	}
	if v := value(); v != breakerGauge[EndpointOpen] {
		t.Fatalf("gauge %v right after opening, want open", v)
	}
	deadline := time.Now().Add(10 * time.Second)
	for value() != breakerGauge[EndpointHalfOpen] {
		if time.Now().After(deadline) {
			t.Fatalf("gauge %v long after the cool-down, want half-open", value())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := e.list(time.Now()); len(st) != 1 || st[0].State != EndpointHalfOpen {
		t.Fatalf("the admin list after the cool-down: %+v", st)
	}
}

// TestBreakerKeepsOnlyEndpointsInTrouble: a gateway for all German
// municipalities delivers to thousands of offices. Every office's channel that
// had one package got a breaker entry and an amtsbote_endpoint_breaker_state
// series at 0 for as long as the process ran (measured: 2,323 of 2,619 series
// of /metrics after 3,000 packages to 2,323 offices) and a row in the admin list
// of endpoints. Healthy endpoints now leave neither; one in trouble has its
// series while it is open and its row (how often it opened) after it closed.
func TestBreakerKeepsOnlyEndpointsInTrouble(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEndpoints(2, time.Minute, "", reg)
	series := func() map[string]float64 { // by office
		t.Helper()
		out := map[string]float64{}
		for k, v := range testenv.Series(t, reg, "amtsbote_endpoint_breaker_state") {
			_, office, _ := strings.Cut(k, " office=")
			out[office] = v
		}
		return out
	}
	now := time.Now()
	for i := range 1000 {
		k := endpointKey{fmt.Sprintf("office-%04d", i), "webhook"}
		if ok, _, _ := e.allow(k, "addr", now); !ok {
			t.Fatalf("%v: not allowed", k)
		}
		if i%2 == 0 {
			e.success(k)
		} else {
			e.release(k) // a permanent refusal of one package
		}
	}
	// One failure below the threshold, then a success: nothing to tell either.
	k := endpointKey{"office-0001", "webhook"}
	e.allow(k, "addr", now)
	e.failure(k, now, 0)
	e.allow(k, "addr", now)
	e.success(k)
	if s := series(); len(s) != 0 {
		t.Fatalf("%d breaker series for 1000 healthy endpoints, want none", len(s))
	}
	if l := e.list(now); len(l) != 0 {
		t.Fatalf("the admin list names %d healthy endpoints (first %+v), want none", len(l), l[0])
	}

	// An endpoint in trouble: open, then closed by a good probe.
	k = endpointKey{"office-0007", "webhook"}
	for range 2 {
		e.allow(k, "addr", now)
		e.failure(k, now, 0)
	}
	if s := series(); len(s) != 1 || s["office-0007"] != breakerGauge[EndpointOpen] {
		t.Fatalf("series with one breaker open: %v", s)
	}
	probe := now.Add(2 * time.Minute)
	if ok, _, _ := e.allow(k, "addr", probe); !ok {
		t.Fatal("no probe after the cool-down")
	}
	e.success(k)
	if s := series(); len(s) != 0 {
		t.Fatalf("series after the breaker closed: %v, want none", s)
	}
	if l := e.list(probe); len(l) != 1 || l[0].Office != "office-0007" || l[0].State != EndpointClosed || l[0].Opened != 1 {
		t.Fatalf("the admin list after the breaker closed: %+v, want office-0007 closed, opened once", l)
	}

	// A failure after a success forgot the endpoint still counts towards the
	// threshold (allow adopts the address of an entry a failure made).
	k = endpointKey{"office-0042", "webhook"}
	e.allow(k, "addr", now)
	e.allow(k, "addr", now) // a second attempt in flight
	e.success(k)            // the first: forgotten
	e.failure(k, now, 0)    // the second
	e.allow(k, "addr", now)
	e.failure(k, now, 0)
	if s := series(); s["office-0042"] != breakerGauge[EndpointOpen] {
		t.Fatalf("two failures in a row around a forgetting success did not open the breaker: %v", s)
	}
}

// TestChannelMovedAfterGoneLeavesNoSeries: a channel disabled after a 410 and
// then moved to another address is enabled again by the move. Its gauge series
// went from 3 to 0 and stayed, a closed breaker's series, which d40d73e meant
// no longer to exist; now the series goes as when an operator enables it.
func TestChannelMovedAfterGoneLeavesNoSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEndpoints(2, time.Minute, "", reg)
	k := endpointKey{"office-a", "webhook"}
	if err := e.disable(k, "a1", time.Now(), "410 Gone"); err != nil {
		t.Fatal(err)
	}
	if s := testenv.Series(t, reg, "amtsbote_endpoint_breaker_state"); len(s) != 1 {
		t.Fatalf("series of a disabled channel: %v", s)
	}
	if _, off, reenabled, err := e.isDisabled(k, "a2"); off || !reenabled || err != nil {
		t.Fatalf("moved to another address: off %v, enabled again %v, %v", off, reenabled, err)
	}
	if s := testenv.Series(t, reg, "amtsbote_endpoint_breaker_state"); len(s) != 0 {
		t.Fatalf("series after the move: %v, want none (a closed breaker has no series)", s)
	}
}
