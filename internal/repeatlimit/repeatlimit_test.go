package repeatlimit

import (
	"testing"
	"time"
)

func TestLimit(t *testing.T) {
	l := &Limit{Every: time.Minute}
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {time.Second, false}, {59 * time.Second, false}, {61 * time.Second, true}, {62 * time.Second, false}} {
		if got := l.Allow(t0.Add(c.at)); got != c.want {
			t.Fatalf("Allow at +%v = %v, want %v", c.at, got, c.want)
		}
	}
	l.Reset()
	if !l.Allow(t0.Add(63 * time.Second)) {
		t.Fatal("after Reset the next event is not allowed")
	}
}
