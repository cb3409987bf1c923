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

// Keyed is a Limit per key (an endpoint, an office's channel), each made on its
// key's first event. Beyond Max keys (0: no bound) a new key's events are all
// allowed rather than kept: the bound only loses the once-a-period rule for
// the surplus. It is safe for concurrent use.
type Keyed[K comparable] struct {
	Every time.Duration
	Max   int
	mu    sync.Mutex
	m     map[K]*Limit
}

// Allow is Limit.Allow for key.
func (k *Keyed[K]) Allow(key K, now time.Time) bool {
	k.mu.Lock()
	l := k.m[key]
	if l == nil {
		if k.Max > 0 && len(k.m) >= k.Max {
			k.mu.Unlock()
			return true
		}
		if k.m == nil {
			k.m = map[K]*Limit{}
		}
		l = &Limit{Every: k.Every}
		k.m[key] = l
	}
	k.mu.Unlock()
	return l.Allow(now)
}

// Forget drops every key keep does not keep and returns those dropped: a fault
// that has ended, whose next one is said at once.
func (k *Keyed[K]) Forget(keep func(K) bool) []K {
	k.mu.Lock()
	defer k.mu.Unlock()
	var gone []K
	for key := range k.m {
		if !keep(key) {
			delete(k.m, key)
			gone = append(gone, key)
		}
	}
	return gone
}
