package intake

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
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
}

// NewSlots returns n slots; 0 means one per CPU the runtime uses (GOMAXPROCS),
// a negative n no bound (nil: every package verifies at once, as before the slots).
func NewSlots(n int) *Slots {
	if n < 0 {
		return nil
	}
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &Slots{MaxWait: DefaultSlotWait, ch: make(chan struct{}, n)}
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

func (s *Slots) release() { <-s.ch }

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
