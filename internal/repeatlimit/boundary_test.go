package repeatlimit

import (
	"testing"
	"time"
)

// TestLimitAllowsOncePerPeriodExactly: the next line is let through as soon as
// Every has passed, not one tick later, so a fault that lasts is said once every
// period (a period of a minute says it 60 times an hour, not 59).
func TestLimitAllowsOncePerPeriodExactly(t *testing.T) {
	l := &Limit{Every: time.Minute}
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	for i := range 3 {
		if !l.Allow(t0.Add(time.Duration(i) * time.Minute)) {
			t.Fatalf("event %d, %v after the last one allowed: not allowed", i, time.Minute)
		}
		if l.Allow(t0.Add(time.Duration(i)*time.Minute + time.Minute - time.Nanosecond)) {
			t.Fatalf("event %d: allowed before the period was over", i)
		}
	}
}
