// Package repeatlimit lets a log line that repeats while a fault lasts (a bus
// that is away, a reconnect that keeps failing) through at most once a period,
// so the journal says the fault and its reason without thousands of copies.
package repeatlimit

import (
	"sync"
	"time"
)

// Limit allows one event per Every. The zero Limit with Every set allows the
// first event at once. It is safe for concurrent use.
type Limit struct {
	Every time.Duration
	mu    sync.Mutex
	last  time.Time
}

// Allow reports whether Every has passed since the last allowed event, and if so
// counts now as that event.
func (l *Limit) Allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.Every {
		return false
	}
	l.last = now
	return true
}

// Reset makes the next event allowed at once (the fault ended; a new one is news).
func (l *Limit) Reset() {
	l.mu.Lock()
	l.last = time.Time{}
	l.mu.Unlock()
}
