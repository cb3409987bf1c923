package intake

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/amtsbote/amtsbote/internal/procs"
)

// ErrBusy: every verification slot stayed taken for the longest wait; nothing
// was accepted, and the client may send the package again later (503,
// Retry-After).
var ErrBusy = errors.New("intake: the gateway is busy verifying other packages")

// DefaultSlotWait is how long a package waits for a verification slot before the
// gateway answers ErrBusy. Well under the HTTP write timeout (60 s by default),
// so the client gets an answer, not a closed connection; long enough that a
// burst is absorbed, not refused.
const DefaultSlotWait = 10 * time.Second

// Slots bounds how many packages are pre-scanned, verified and parsed at once:
// the CPU-bound part of intake (a millisecond or so per 14 KB package). Reading
// the body before and storing the package after (waiting for the disk, streaming
// attachments) hold no slot.
//
// Why: without a bound every request in flight competes for the CPU, and near
// and past the machine's limit hundreds of runnable intake goroutines stood in
// the scheduler's queue in front of each of the few delivery goroutines at every
// one of their wake-ups (the office's answer, the commit, the ack). Delivery fell
// to 13–52 % of the arrivals while intake kept acknowledging (issue #12). With
// the bound, waiting requests are parked, not runnable, and get their slots in
// arrival order (a channel's blocked senders are served first in, first out);
// near the limit delivery kept 87–100 % of the arrivals, and intake's p99 fell
// too. Far beyond the limit it does not help: slots turn over fast, so little
// waits for them (docs/performance.md, "Verification slots").
type Slots struct {
	// MaxWait bounds the wait for a slot (NewSlots: DefaultSlotWait).
	MaxWait time.Duration

	ch      chan struct{}
	waiting atomic.Int64
	refused atomic.Int64
	// owed counts slots a Yield waits for (takeAhead): a package's release hands
	// its slot over through granted instead of to the next package in line.
	owed    atomic.Int64
	granted chan struct{}
}

// NewSlots returns n slots; 0 means one per CPU (procs.CPUs: GOMAXPROCS may be
// one more, for the store's flushes),
// a negative n no bound (nil: every package verifies at once, as before the slots).
func NewSlots(n int) *Slots {
	if n < 0 {
		return nil
	}
	if n == 0 {
		n = procs.CPUs()
	}
	return &Slots{MaxWait: DefaultSlotWait, ch: make(chan struct{}, n), granted: make(chan struct{}, n)}
}

// Acquire takes a slot, waiting for one at most MaxWait (then ErrBusy) or until
// ctx ends; release gives it back. A nil Slots has a slot for everyone.
func (s *Slots) Acquire(ctx context.Context) (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	select {
	case s.ch <- struct{}{}:
		return s.release, nil
	default:
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	t := time.NewTimer(s.MaxWait)
	defer t.Stop()
	select {
	case s.ch <- struct{}{}:
		return s.release, nil
	case <-t.C:
		s.refused.Add(1)
		return nil, fmt.Errorf("%w: no verification slot free for %v", ErrBusy, s.MaxWait)
	case <-ctx.Done():
		return nil, fmt.Errorf("intake: waiting for a verification slot: %w", ctx.Err())
	}
}

// release gives a package's slot back: to a Yield waiting for one first, else
// to the next package in line.
func (s *Slots) release() {
	if s.cancelOwed(1) == 1 {
		s.granted <- struct{}{} // the slot stays taken, now the Yield's
		return
	}
	<-s.ch
}

// free gives back a slot the Yield held.
func (s *Slots) free() { <-s.ch }

// cancelOwed takes up to k off owed and returns how many it took.
func (s *Slots) cancelOwed(k int64) int64 {
	for {
		o := s.owed.Load()
		t := min(o, k)
		if t <= 0 {
			return 0
		}
		if s.owed.CompareAndSwap(o, o-t) {
			return t
		}
	}
}

// takeAhead takes n slots for a Yield ahead of the packages waiting for one:
// free ones at once, the rest as packages give theirs back (a Yield that
// queued behind them waited seconds for its slots far past the machine's
// limit, just when it was needed most). It reports false, holding nothing, if
// ctx ends first. One taker at a time.
func (s *Slots) takeAhead(ctx context.Context, n int) bool {
	taken := 0
	for taken < n && s.tryTake() {
		taken++
	}
	if taken == n {
		return true
	}
	s.owed.Add(int64(n - taken))
	// From here every slot a package gives back comes to us. One given back
	// between the look above and owed being raised went to the line instead,
	// and is still free if nobody waited: take those once more.
	for taken < n && s.tryTake() {
		if s.cancelOwed(1) == 0 {
			s.free() // every owed slot is granted already; the grants count instead
			break
		}
		taken++
	}
	for taken < n {
		select {
		case <-s.granted:
			taken++
		case <-ctx.Done():
			rest := int64(n - taken)
			for range rest - s.cancelOwed(rest) { // granted meanwhile
				<-s.granted
				taken++
			}
			for range taken {
				s.free()
			}
			return false
		}
	}
	return true
}

func (s *Slots) tryTake() bool {
	select {
	case s.ch <- struct{}{}:
		return true
	default:
		return false
	}
}

// run runs fn in a slot (Acquire).
func (s *Slots) run(ctx context.Context, fn func() error) error {
	release, err := s.Acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	return fn()
}

// Waiting is the number of packages waiting for a slot now.
func (s *Slots) Waiting() int64 {
	if s == nil {
		return 0
	}
	return s.waiting.Load()
}

// Refused counts the packages answered ErrBusy.
func (s *Slots) Refused() int64 {
	if s == nil {
		return 0
	}
	return s.refused.Load()
}

// Size is the number of slots; 0 for none (no bound).
func (s *Slots) Size() int {
	if s == nil {
		return 0
	}
	return cap(s.ch)
}
