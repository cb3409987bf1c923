package httpbody

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	// parent, if set, is a larger budget this one is a part of: every byte
	// taken here is taken there too (Within).
	parent *Budget

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

// Within makes b a part of parent, before either is used, and returns b: a
// lease of b takes its bytes from both, so requests of b hold at most b's size
// and leave the rest of parent to requests that take from parent alone. The
// federation endpoint keeps so a share of its memory for peers that proved
// who they are, which anonymous bodies cannot fill. parent must not be the
// smaller: a lease of b may take all of b.
func (b *Budget) Within(parent *Budget) *Budget {
	b.parent = parent
	return b
}

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
	// One wait for both: the parent's room is waited for in what is left of it.
	deadline := time.Now().Add(b.wait)
	if err := b.take(ctx, n, deadline); err != nil {
		return nil, err
	}
	if b.parent != nil {
		// Here first, then the parent: a request waiting for its own part's
		// room holds none of the parent's meanwhile.
		if err := b.parent.take(ctx, n, deadline); err != nil {
			b.giveBackHere(n)
			return nil, err
		}
	}
	return &Lease{b: b, held: n}, nil
}

// take takes n bytes of b alone (Acquire), waiting until deadline at most.
func (b *Budget) take(ctx context.Context, n int64, deadline time.Time) error {
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.max {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()

	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	var err error
	select {
	case <-w.ready:
		return nil
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
			return err
		}
	}
	// Granted in the meantime: give it back.
	b.used -= n
	b.grantLocked()
	return err
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
	b.giveBackHere(n)
	if b.parent != nil {
		b.parent.giveBackHere(n)
	}
}

func (b *Budget) giveBackHere(n int64) {
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

// FirstBytes is what a request takes from the budget before its first byte has
// arrived (or its declared length, when that is less); Reader takes the rest as
// the bytes come, GrowStep at a time.
//
// Why not the declared length at once, as before: a client that declares the
// limit (32 MiB) and then sends a byte now and then held 32 MiB of the budget
// for as long as the server's read timeout (a minute) or, for the root part of a
// multipart upload, the progress rule (16 KiB/s: half an hour) allowed. Four
// such connections, idle, took the whole default budget (4 × the body limit),
// and every portal's package waited and got a 503 — on an endpoint anyone may
// post to (found by the fourth round's federation audit). Now a connection
// holds what it has sent, plus at most one step: blocking intake costs sending
// the budget's bytes, again every read timeout.
const (
	FirstBytes = 64 << 10
	GrowStep   = 256 << 10
)

// First is the size of the lease a body of the declared length (≤ 0: unknown)
// starts with: FirstBytes, or less when less was declared.
func First(declared int64) int64 {
	if declared > 0 && declared < FirstBytes {
		return declared
	}
	return FirstBytes
}

// Reader returns r, taking from the budget what r yields beyond what the lease
// holds, GrowStep at a time up to limit (the body's limit, which r itself must
// enforce), waiting for it as Acquire does; a read that cannot get its bytes
// fails with ErrBusy (or ctx's error). A lease of no budget reads r as it is.
func (l *Lease) Reader(ctx context.Context, r io.Reader, limit int64) io.Reader {
	if l.b == nil {
		return r
	}
	return &growingReader{ctx: ctx, l: l, r: r, limit: limit}
}

type growingReader struct {
	ctx   context.Context
	l     *Lease
	r     io.Reader
	limit int64
	read  int64
}

func (g *growingReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return g.r.Read(p)
	}
	g.l.mu.Lock()
	room := g.l.held - g.read
	g.l.mu.Unlock()
	// A read of one byte at the lease's end is ReadAll looking for the end of a
	// body of declared length: it needs no step (a 14 KB package took 256 KiB
	// more for it, per request).
	if room <= 0 && len(p) > 1 {
		g.l.mu.Lock()
		step := min(GrowStep, g.limit-g.l.held)
		g.l.mu.Unlock()
		if step > 0 {
			more, err := g.l.b.Acquire(g.ctx, step)
			if err != nil {
				return 0, err
			}
			g.l.mu.Lock()
			g.l.held += more.held
			room = g.l.held - g.read
			g.l.mu.Unlock()
		}
	}
	// At the limit (room ≤ 0 still) the read goes on: r's own limit ends it.
	if room > 0 && int64(len(p)) > room {
		p = p[:room]
	}
	n, err := g.r.Read(p)
	g.read += int64(n)
	return n, err
}
