package broker

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/submission"
)

// deferrals are the events after a package's intake that moved its next
// attempt because the office's endpoint was paused (Broker.deferred).
func deferrals(evs []submission.Event) []submission.Event {
	var out []submission.Event
	for _, e := range evs {
		if e.Type == submission.EventQueued && strings.Contains(e.Detail, "at the earliest") {
			out = append(out, e)
		}
	}
	return out
}

// TestWaitingPackageLearnsOfTheBreakersHold: package A failed and its
// attempt_failed said "next attempt in 5s"; before that came, package B's
// failure opened the office endpoint's circuit breaker for its minute's
// cool-down. A's retry was then kept back silently (counted only in
// amtsbote_delivery_deferred_total), while its history and its record's
// nextAttemptAt still promised the 5 s. The deferral now moves the record's
// nextAttemptAt to the hold's end, with one event saying so "at the earliest",
// and the queue message comes back no earlier than that.
func TestWaitingPackageLearnsOfTheBreakersHold(t *testing.T) {
	// The 5 s retry takes 5 ms, the cool-down 600 ms: A's queue message must come
	// back while the breaker holds. With a minute's (60 ms) it had once come back
	// after the hold on a loaded machine (make test's race detector beside two
	// other test binaries), and was simply delivered.
	const scale = 1.0 / 1000
	hook := newHook(t, func(n int, _ time.Time) (int, string) {
		if n < 2 {
			return http.StatusServiceUnavailable, ""
		}
		return http.StatusOK, ""
	})
	cfg := Config{Workers: 2, PerOffice: 2, Schedule: StandardSchedule, TimeScale: scale, AttemptTimeout: 5 * time.Second,
		BreakerThreshold: 2, BreakerCooldown: 10 * time.Minute}
	e, _ := startHooked(t, t.TempDir(), cfg, hook)

	var mu sync.Mutex
	var bID string
	var aAtDeferral *submission.Submission
	var retryAtDeferral time.Time
	bFailed := make(chan struct{})
	var once, bOnce sync.Once
	e.b.Observe(func(s *submission.Submission, ev submission.Event) {
		// By message id: the worker may fail A before Receive has returned.
		a, b := s.MessageID == "waits-for-5s", s.MessageID == "opens-the-breaker"
		switch {
		case a && ev.Type == submission.EventAttemptFailed && ev.Attempt == 1:
			// A's failure is recorded and its queue message not yet back: B
			// comes now and its failure opens the breaker (the second in a row)
			// while A waits for its 5 s.
			once.Do(func() {
				got, err := e.b.Receive(context.Background(), intake("opens-the-breaker", webhook.Channel))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				bID = got.Submission.ID
				mu.Unlock()
				select {
				case <-bFailed:
				case <-time.After(10 * time.Second):
					t.Error("package B's attempt did not fail within 10 s")
				}
			})
		case b && ev.Type == submission.EventAttemptFailed:
			bOnce.Do(func() { close(bFailed) })
		case a && ev.Type == submission.EventQueued && aAtDeferral == nil && s.Attempts > 0:
			c := *s
			mu.Lock()
			aAtDeferral = &c
			if r := e.b.endpoint("office-a", webhook.Channel).RetryAt; r != nil {
				retryAtDeferral = *r
			}
			mu.Unlock()
		}
	})
	got, err := e.b.Receive(context.Background(), intake("waits-for-5s", webhook.Channel))
	if err != nil {
		t.Fatal(err)
	}
	a := waitState(t, e.b, got.Submission.ID, submission.StateDelivered)
	mu.Lock()
	b := bID
	mu.Unlock()
	if b == "" {
		t.Fatal("package B never came: A's failure was not seen")
	}
	waitState(t, e.b, b, submission.StateDelivered)

	evs, err := e.b.Log(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	failed := submission.OfType(evs, submission.EventAttemptFailed)
	if len(failed) != 1 || strings.Contains(failed[0].Detail, "at the earliest") {
		t.Fatalf("A's attempt_failed events %+v, want one with the schedule's 5s", failed)
	}
	moved := deferrals(evs)
	if len(moved) != 1 {
		t.Fatalf("A's events after the breaker opened: %+v; want one that moves its next attempt to the hold's end", evs)
	}
	t.Logf("A: %q, then %q", failed[0].Detail, moved[0].Detail)
	if moved[0].Channel != webhook.Channel || !strings.Contains(moved[0].Detail, "(attempts to the office's endpoint are paused)") {
		t.Errorf("the deferral event %+v", moved[0])
	}
	stated := nextIn(t, moved[0])
	due := moved[0].At.Add(time.Duration(float64(stated) * scale))

	mu.Lock()
	defer mu.Unlock()
	if aAtDeferral == nil {
		t.Fatal("no record seen at the deferral")
	}
	if d := aAtDeferral.NextAttemptAt.Sub(due); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("nextAttemptAt %s, the event says %s", aAtDeferral.NextAttemptAt, due)
	}
	if retryAtDeferral.IsZero() || aAtDeferral.NextAttemptAt.Before(retryAtDeferral) {
		t.Errorf("nextAttemptAt %s, before the breaker's cool-down ends (%s)", aAtDeferral.NextAttemptAt, retryAtDeferral)
	}
	var aReqs []hookReq
	for _, r := range hook.requests() {
		if r.n.SubmissionID == a.ID {
			aReqs = append(aReqs, r)
		}
	}
	if len(aReqs) != 2 {
		t.Fatalf("%d requests for A, want 2", len(aReqs))
	}
	if aReqs[1].at.Before(aAtDeferral.NextAttemptAt) {
		t.Errorf("A's retry came %s before the time its record stated", aAtDeferral.NextAttemptAt.Sub(aReqs[1].at))
	}
}

// TestPausedEndpointDoesNotGrowTheLog: an office's endpoint stays down while
// its breaker opens again after every failed probe (a day's outage is some
// 1,400 cool-downs). The packages waiting behind it are deferred after every
// cool-down, but each gets at most one event per stated next attempt: the one
// that moves it to the hold's end "at the earliest". An event per deferral
// would grow every waiting case's log by one a minute for as long as the
// office is down.
func TestPausedEndpointDoesNotGrowTheLog(t *testing.T) {
	const scale = 1.0 / 1000
	hook := newHook(t, func(int, time.Time) (int, string) { return http.StatusServiceUnavailable, "" })
	cfg := Config{Workers: 4, PerOffice: 2, Schedule: StandardSchedule, TimeScale: scale, AttemptTimeout: 5 * time.Second,
		BreakerThreshold: 1, BreakerCooldown: time.Minute}
	e, _ := startHooked(t, t.TempDir(), cfg, hook)
	const packages = 12
	var ids []string
	for i := range packages {
		a, err := e.b.Receive(context.Background(), intake(fmt.Sprintf("paused-%d", i), webhook.Channel))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.Submission.ID)
	}
	// Ten cool-downs, each ended by a failed probe.
	eventually(t, "the breaker to open ten times", func() bool {
		return e.b.endpoint("office-a", webhook.Channel).Opened >= 10
	})
	var deferred int
	for _, id := range ids {
		evs, err := e.b.Log(id)
		if err != nil {
			t.Fatal(err)
		}
		// Between two attempts (or the intake and the first), at most one deferral.
		n, most := 0, 0
		for _, ev := range evs {
			switch {
			case ev.Type == submission.EventAttemptFailed:
				n = 0
			case ev.Type == submission.EventQueued && strings.Contains(ev.Detail, "at the earliest"):
				n++
				deferred++
				most = max(most, n)
			}
		}
		if most > 1 {
			t.Errorf("%s: %d deferral events before one attempt, want at most one: %+v", id, most, evs)
		}
	}
	if deferred == 0 {
		t.Error("no package was told of the pause")
	}
}
