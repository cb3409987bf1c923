package httpbody

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrBusy: the bytes a body may take did not come free within the wait.
var ErrBusy = errors.New("httpbody: too many request bodies in memory")

// Budget bounds the bytes of request bodies held in memory at once. Intake reads
// a package whole before its signature can be checked, and needs no credentials
// to send one: without a bound, two dozen clients posting 32 MiB each held 768 MiB
// (the federation endpoint, at twice the size, 5.7 GB in an audit). A request
// takes what its body may need before reading it (the declared length, or the
// limit when none is declared), gives back what it did not use once read, and the
// rest when the package is done with. Waiters are served in order, so a big
// body is not starved by a stream of small ones.
type Budget struct {
	max  int64
	wait time.Duration

	mu      sync.Mutex
	used    int64
	waiters []*waiter
}

type waiter struct {
	n     int64
	ready chan struct{}
}

// NewBudget returns a budget of max bytes whose Acquire waits at most wait.
func NewBudget(max int64, wait time.Duration) *Budget {
	return &Budget{max: max, wait: wait}
}

// Max is the budget's size.
func (b *Budget) Max() int64 { return b.max }

// Lease is what one request holds.
type Lease struct {
	b    *Budget
	mu   sync.Mutex
	held int64
}

// Acquire takes n bytes (at most the budget's size), waiting for them in order
// behind earlier requests at most the budget's wait (then ErrBusy) or until ctx
// ends. A nil Budget is no bound.
func (b *Budget) Acquire(ctx context.Context, n int64) (*Lease, error) {
	if b == nil {
		return &Lease{}, nil
	}
	n = min(max(n, 0), b.max)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.max {
		b.used += n
		b.mu.Unlock()
		return &Lease{b: b, held: n}, nil
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()

	t := time.NewTimer(b.wait)
	defer t.Stop()
	var err error
	select {
	case <-w.ready:
		return &Lease{b: b, held: n}, nil
	case <-t.C:
		err = fmt.Errorf("%w: %d bytes did not come free within %v", ErrBusy, n, b.wait)
	case <-ctx.Done():
		err = ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, x := range b.waiters {
		if x == w {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			b.grantLocked() // the one behind may fit now
			return nil, err
		}
	}
	// Granted in the meantime: give it back.
	b.used -= n
	b.grantLocked()
	return nil, err
}

// grantLocked admits waiters from the front while they fit.
func (b *Budget) grantLocked() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.max {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
}

func (b *Budget) giveBack(n int64) {
	b.mu.Lock()
	b.used -= n
	b.grantLocked()
	b.mu.Unlock()
}

// Keep gives back all but n of the bytes held (what the body turned out to need).
func (l *Lease) Keep(n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b == nil || n >= l.held {
		return
	}
	l.b.giveBack(l.held - max(n, 0))
	l.held = max(n, 0)
}

// Release gives back everything held; later calls do nothing.
func (l *Lease) Release() { l.Keep(0) }
