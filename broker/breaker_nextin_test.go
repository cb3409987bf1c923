package broker

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/submission"
)

// TestAttemptFailedStatesTheBreakersHold: the failure that opens the office's
// circuit breaker is followed by no attempt before the cool-down is over, and
// its attempt_failed event (which the portal, the office's IT and operators read
// in the status and history) said "next attempt in 5s", the schedule's first
// delay, while the package waited a minute. The event now states the breaker's
// hold, as a lower bound (another package may be the probe and fail), and the
// record's nextAttemptAt agrees with it.
func TestAttemptFailedStatesTheBreakersHold(t *testing.T) {
	const scale = 1.0 / 1000 // the minute's cool-down takes 60 ms, the 5 s retry 5 ms
	hook := newHook(t, func(n int, _ time.Time) (int, string) {
		if n == 0 {
			return http.StatusServiceUnavailable, ""
		}
		return http.StatusOK, ""
	})
	cfg := Config{Workers: 2, Schedule: StandardSchedule, TimeScale: scale, AttemptTimeout: 5 * time.Second,
		BreakerThreshold: 1, BreakerCooldown: time.Minute}
	e, _ := startHooked(t, t.TempDir(), cfg, hook)
	var mu sync.Mutex
	var atFailure *submission.Submission
	e.b.Observe(func(s *submission.Submission, ev submission.Event) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Type == submission.EventAttemptFailed && atFailure == nil {
			c := *s
			atFailure = &c
		}
	})
	a, err := e.b.Receive(context.Background(), intake("held-by-breaker", webhook.Channel))
	if err != nil {
		t.Fatal(err)
	}
	s := waitState(t, e.b, a.Submission.ID, submission.StateDelivered)
	evs, err := e.b.Log(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	failed := submission.OfType(evs, submission.EventAttemptFailed)
	if len(failed) != 1 {
		t.Fatalf("failed attempts %+v, want one", failed)
	}
	t.Logf("attempt_failed: %q", failed[0].Detail)
	stated := nextIn(t, failed[0])
	if stated < cfg.BreakerCooldown {
		t.Errorf("attempt_failed states the next attempt in %s; the breaker holds it for %s: %q", stated, cfg.BreakerCooldown, failed[0].Detail)
	}
	if !strings.Contains(failed[0].Detail, "at the earliest") {
		t.Errorf("attempt_failed %q promises a time: while the breaker holds, another package's probe decides", failed[0].Detail)
	}
	// The record says the same as the event (in scaled time), and the next
	// request did not come before it.
	mu.Lock()
	defer mu.Unlock()
	if atFailure == nil {
		t.Fatal("no record seen at the failure")
	}
	due := failed[0].At.Add(time.Duration(float64(stated) * scale))
	if d := atFailure.NextAttemptAt.Sub(due); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("nextAttemptAt %s, the event says %s", atFailure.NextAttemptAt, due)
	}
	reqs := hook.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if reqs[1].at.Before(due) {
		t.Errorf("the next request came %s before the time the event stated", due.Sub(reqs[1].at))
	}
}
