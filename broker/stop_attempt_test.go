package broker

import (
	"context"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

// TestAttemptCutShortByStopDoesNotCount: an attempt the gateway itself cuts off
// while it stops is no failure of the receiver. It spends none of the channel's
// attempts (with three on a channel, a few restarts during a slow office's
// attempts moved its packages on to the mailbox), opens no breaker and writes no
// attempt_failed event for the portal to read; the package waits queued for the
// next start.
func TestAttemptCutShortByStopDoesNotCount(t *testing.T) {
	ad := &scripted{channel: "primary", block: make(chan struct{})} // never answers
	e := start(t, t.TempDir(), ad)
	id := e.receiveUnderWay(t, "cut-by-stop")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = e.b.Stop(ctx) // the attempt does not end by itself: Stop cuts it off
	e.b.attempts.Wait()
	s, err := e.b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != submission.StateQueued || s.Attempts != 0 || s.TotalAttempts != 0 {
		t.Fatalf("after the stop: state %s, %d attempts (%d in all); want queued with none", s.State, s.Attempts, s.TotalAttempts)
	}
	evs, _ := e.b.Log(id)
	for _, ev := range evs {
		if ev.Type == submission.EventAttemptFailed {
			t.Fatalf("the stop was recorded as a failed attempt: %+v", ev)
		}
	}
}

// receiveUnderWay receives a package for the channel "primary" and returns its
// id once an attempt to deliver it is under way (held there by a blocking
// adapter).
func (e *env) receiveUnderWay(t *testing.T, name string) string {
	t.Helper()
	r, err := e.b.Receive(context.Background(), intake(name, "primary"))
	if err != nil {
		t.Fatal(err)
	}
	id := r.Submission.ID
	eventually(t, "an attempt under way", func() bool {
		_, busy := e.b.inflight.Load(id)
		return busy
	})
	return id
}
