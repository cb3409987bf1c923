package broker

import (
	"errors"
	"testing"
	"time"
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
