package broker

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

func TestStandardScheduleSpansADay(t *testing.T) {
	var sum time.Duration
	for _, d := range StandardSchedule {
		sum += d
	}
	if sum < 24*time.Hour {
		t.Fatalf("the standard schedule spans %s, want at least a day", sum)
	}
	b := &Broker{cfg: Config{Schedule: StandardSchedule, MaxAttempts: 3}}
	if n := b.maxAttempts(); n != len(StandardSchedule)+1 {
		t.Fatalf("attempts on a channel = %d, want %d (the first and one per delay)", n, len(StandardSchedule)+1)
	}
}

func TestParseSchedule(t *testing.T) {
	if s, err := ParseSchedule("standard"); err != nil || len(s) != len(StandardSchedule) {
		t.Fatalf("standard: %v %v", s, err)
	}
	if s, err := ParseSchedule("exponential"); err != nil || s != nil {
		t.Fatalf("exponential: %v %v", s, err)
	}
	if s, err := ParseSchedule(" 10s, 1m ,2h"); err != nil || len(s) != 3 || s[2] != 2*time.Hour {
		t.Fatalf("list: %v %v", s, err)
	}
	for _, bad := range []string{"", "daily", "10s,-1m", "10s,,1m", "0s"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", bad)
		}
	}
	if s := ScheduleFor("nonsense"); len(s) != len(StandardSchedule) {
		t.Errorf("ScheduleFor of a bad spec = %v, want the standard schedule", s)
	}
}

// retryAfterErr is a transient error whose receiver asked to wait.
type retryAfterErr time.Duration

func (e retryAfterErr) Error() string             { return "503 with Retry-After" }
func (e retryAfterErr) RetryAfter() time.Duration { return time.Duration(e) }

func TestRetryDelayFollowsTheSchedule(t *testing.T) {
	b := &Broker{cfg: Config{Schedule: StandardSchedule, TimeScale: 1}}
	for i := 0; i < 200; i++ {
		for n, want := range StandardSchedule {
			got := b.retryDelay(n+1, errors.New("503"))
			lo, hi := time.Duration(float64(want)*0.9)-time.Second, time.Duration(float64(want)*1.1)+time.Second
			if want < time.Minute {
				lo, hi = time.Duration(float64(want)*0.9), time.Duration(float64(want)*1.1)
			}
			if got < lo || got > hi {
				t.Fatalf("delay after failure %d = %s, want %s ±10 %%", n+1, got, want)
			}
		}
	}
	// Past the end (never reached by the broker, which falls back) it stays at the last.
	if got := b.retryDelay(len(StandardSchedule)+5, errors.New("x")); got < 21*time.Hour {
		t.Fatalf("beyond the schedule: %s", got)
	}
}

func TestRetryDelayHonoursRetryAfter(t *testing.T) {
	for _, cfg := range []Config{
		{Schedule: StandardSchedule},
		{BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond, MaxAttempts: 5},
	} {
		b := &Broker{cfg: cfg}
		if got := b.retryDelay(1, retryAfterErr(time.Hour)); got != time.Hour {
			t.Errorf("Retry-After 1h on the first failure: delay %s, want 1h", got)
		}
		if got := b.retryDelay(1, retryAfterErr(72*time.Hour)); got != 24*time.Hour {
			t.Errorf("Retry-After 72h: delay %s, want the 24h cap", got)
		}
	}
	// A Retry-After shorter than the schedule does not make the retry earlier.
	b := &Broker{cfg: Config{Schedule: StandardSchedule}}
	if got := b.retryDelay(5, retryAfterErr(time.Second)); got < 4*time.Hour {
		t.Errorf("a short Retry-After shortened the 5h delay to %s", got)
	}
}

// A failed attempt stores its next attempt as a wall time; a clock stepped back
// afterwards (NTP correcting a clock that ran an hour ahead) made every retry
// wait for the whole step as well. The wait is bounded by the scheduled delay.
func TestRetryWaitIsBoundedByTheScheduleAfterAClockStep(t *testing.T) {
	b := &Broker{cfg: Config{Schedule: StandardSchedule, TimeScale: 1}, log: slog.New(slog.DiscardHandler)}
	failedAt := time.Now().Add(time.Hour) // by the clock an hour ahead
	s := &submission.Submission{ID: "s1", Targets: []submission.Target{{Channel: "primary"}}, State: submission.StateQueued, Generation: 1}
	if _, err := s.AttemptFailed(failedAt, 1, submission.Reason{Public: "503"}, failedAt.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if w := b.retryWait(s); w <= 0 || w > 5*time.Second {
		t.Fatalf("after a 1 h step back a retry scheduled in 5 s waits %s", w)
	}
	// Seen again (the message came back after that wait): the wait runs from the
	// first sighting, not from the stored time again.
	if w := b.retryWait(s); w <= 0 || w > 5*time.Second {
		t.Fatalf("second sighting: waits %s, want at most the 5 s left", w)
	}
	v, ok := b.stepped.Load("s1")
	if !ok {
		t.Fatal("the stepped retry is not remembered")
	}
	b.stepped.Store("s1", steppedRetry{gen: 1, attempts: 1, due: time.Now().Add(-time.Millisecond)})
	if w := b.retryWait(s); w != 0 {
		t.Fatalf("once its scheduled delay has passed the retry waits %s more (was due %v)", w, v.(steppedRetry).due)
	}

	// Without a step the stored time holds, a receiver's long Retry-After too.
	now := time.Now()
	r := &submission.Submission{ID: "s2", Targets: []submission.Target{{Channel: "primary"}}, State: submission.StateQueued, Generation: 1}
	if _, err := r.AttemptFailed(now, 1, submission.Reason{Public: "503"}, now.Add(10*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if w := b.retryWait(r); w < 9*time.Hour {
		t.Fatalf("a 10 h Retry-After waits only %s", w)
	}
	// A record from before RetryDelay: bounded by the longest delay the schedule
	// or a Retry-After could give (24 h), not by a step of ten days.
	r.RetryDelay, r.NextAttemptAt = 0, now.Add(10*24*time.Hour)
	if w := b.retryWait(r); w <= 0 || w > 27*time.Hour {
		t.Fatalf("an old record ten days ahead waits %s", w)
	}
}

// The dispatcher end to end: a failure recorded by a clock an hour ahead (the
// record as the broker writes it then), and the clock corrected. The retry the
// schedule set to 3 s waited the hour.
func TestRetryAfterAClockStepBackKeepsItsSchedule(t *testing.T) {
	cfg := testConfig
	cfg.BackoffBase, cfg.BackoffMax = 3*time.Second, 3*time.Second
	cfg.MaxAttempts = 5
	rx := &scripted{channel: "primary", answers: []error{errors.New("503")}}
	e := startWith(t, t.TempDir(), cfg, rx)
	a, err := e.b.Receive(context.Background(), intake("clock-1", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	waitState(t, e.b, id, submission.StateRetrying)
	ahead := time.Now().UTC().Add(time.Hour)
	if _, err := e.db.Update(id, func(cur *submission.Submission) ([]submission.Event, error) {
		return cur.AttemptFailed(ahead, cur.Generation, submission.Reason{Public: "503"}, ahead.Add(3*time.Second))
	}); err != nil {
		t.Fatal(err)
	}
	waitState(t, e.b, id, submission.StateDelivered)
}
