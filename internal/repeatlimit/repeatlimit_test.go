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

func TestKeyed(t *testing.T) {
	k := &Keyed[string]{Every: time.Minute, Max: 2}
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	if !k.Allow("a", t0) || k.Allow("a", t0.Add(time.Second)) || !k.Allow("b", t0) {
		t.Fatal("one event a minute per key")
	}
	if !k.Allow("c", t0) || !k.Allow("c", t0.Add(time.Second)) {
		t.Fatal("a key beyond Max is not limited")
	}
	if gone := k.Forget(func(key string) bool { return key != "a" }); len(gone) != 1 || gone[0] != "a" {
		t.Fatalf("forgot %v, want [a]", gone)
	}
	if !k.Allow("a", t0.Add(2*time.Second)) {
		t.Fatal("a forgotten key's next event is not allowed at once")
	}
}
