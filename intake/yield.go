package intake

import (
	"context"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/amtsbote/amtsbote/internal/cputime"
	"github.com/amtsbote/amtsbote/internal/procs"
)

// Yield gives delivery part of the CPU when the two compete for it and delivery
// is losing: while packages pile up for offices that take them as fast as they
// are sent (Behind) and this process uses (nearly) all its CPUs, it holds some of
// intake's verification slots, ahead of the packages waiting for them, for as
// much of every period as the pile asks (amountFor: from Low packages on, up to
// half the slots at High and three quarters at twice High), so intake verifies
// slower and delivery gets what that frees. When the CPU is no longer full,
// intake was not what held delivery back, and it yields nothing.
//
// Why: intake and delivery share the CPUs, and Go's scheduler has no priorities.
// A verification runs about a millisecond at a stretch; a delivery is a chain of
// short steps (read the record, send, the office's answer, the receipt, the
// commit), each of which waits behind whatever is runnable. With many portal
// connections intake always has a package ready for each slot, and delivery to
// one office fell to a third of intake's pace: in a closed loop of 48
// connections 1,109 accepted/s against 401 delivered/s, the backlog growing by
// 700 a second, unbounded (docs/performance.md, "Intake yields to delivery").
// The 201 promises durability, not delivery, but a backlog that only grows
// delays every package behind it without end. With the yield the same run
// delivered what it accepted.
//
// Only packages for offices that answer fast count (broker.Broker.Behind): a
// slow or unreachable office's waiting packages are that office's matter, and
// holding back every portal for them would help nobody. Refusals follow from the
// slots as before: a package that waits 10 s for one gets 503 and Retry-After.
type Yield struct {
	Slots *Slots
	// Behind reports how many packages wait for offices that take them fast.
	Behind func() int
	// Low and High shape how much is held (amountFor; NewYield: Low is High/4).
	High, Low int
	// Every is the period: how often Behind and the CPU are looked at.
	Every time.Duration
	// Busy is the share of the process's CPUs (procs.CPUs) from which the CPU
	// counts as full; once full, it counts so down to Idle.
	Busy, Idle float64
	// CPU returns the CPU time this process has used so far; nil: cputime.Process.
	// Where it is not available (ok false) only Behind counts.
	CPU func() (used time.Duration, ok bool)
	Log *slog.Logger

	amount atomic.Uint64 // float64 bits: slots held, averaged over the period (amountFor)
	times  atomic.Int64  // how often it started yielding
}

// DefaultYieldBacklog is limits.yield_backlog's default: the packages waiting
// for fast offices at which intake leaves half its slots to delivery. A fast
// office's line holds up to 1,024 (broker); 256 is a quarter second of work at
// the bench's pace and far above what a handful of concurrent deliveries keeps
// waiting in normal running.
const DefaultYieldBacklog = 256

// NewYield returns a Yield for slots with its defaults: half the slots at high
// packages behind, none up to high/4, a period of 50 ms, the CPU full from 85 %
// of the CPUs (procs.CPUs) and no longer full below 80 %. Nil when there is
// nothing to give: no slots, or one only.
//
// Why 80 %: yielding is for when intake and delivery compete for the CPU; with
// a fifth of it idle they do not, and delivery's pace is then the offices' or
// the per-office cap's, which holding intake back does not raise.
func NewYield(slots *Slots, behind func() int, high int, log *slog.Logger) *Yield {
	if slots.Size() < 2 || high <= 0 {
		return nil
	}
	if log == nil {
		log = slog.Default()
	}
	return &Yield{Slots: slots, Behind: behind, High: high, Low: max(high/4, 1),
		Every: 50 * time.Millisecond, Busy: 0.85, Idle: 0.8, Log: log}
}

// Yielding is the number of verification slots left to delivery now, averaged
// over the current period (half the slots held for part of it counts a part).
func (y *Yield) Yielding() float64 {
	if y == nil {
		return 0
	}
	return math.Float64frombits(y.amount.Load())
}

// Times counts how often intake started to yield.
func (y *Yield) Times() int64 {
	if y == nil {
		return 0
	}
	return y.times.Load()
}

// Run looks every y.Every until ctx ends, then gives back what it holds.
//
// How much it yields follows the backlog in proportion (amountFor). An
// all-or-nothing first version (half the slots above High until below Low)
// kept delivery's pace but swung intake between full and half speed every
// second or so; at an arrival rate the machine could just carry, the requests
// that piled up in each half-speed phase put intake's p99 at 0.75–1.4 s.
func (y *Yield) Run(ctx context.Context) {
	cpu := y.CPU
	if cpu == nil {
		cpu = cputime.Process
	}
	tick := time.NewTicker(y.Every)
	defer tick.Stop()
	held := 0
	release := func(keep int) {
		for ; held > keep; held-- {
			y.Slots.free()
		}
	}
	defer func() { release(0); y.amount.Store(0) }()
	lastCPU, cpuOK := cpu()
	lastAt := time.Now()
	busy, full := -1.0, false
	var lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		used, ok := cpu()
		now := time.Now()
		if ok && cpuOK {
			if wall := now.Sub(lastAt); wall > 0 {
				b := float64(used-lastCPU) / (float64(wall) * float64(procs.CPUs()))
				// Smoothed over a few periods: one period is a few scheduler
				// time slices.
				if busy < 0 {
					busy = b
				} else {
					busy += (b - busy) / 4
				}
			}
		} else {
			busy = -1
		}
		lastCPU, cpuOK, lastAt = used, ok, now
		// Full from Busy on, and still full down to Idle: the CPU that yielding
		// frees goes to delivery, so a yield that helps keeps it full.
		full = busy < 0 || busy >= y.Busy || (full && busy >= y.Idle)

		behind := y.Behind()
		amount := 0.0
		if full {
			amount = y.amountFor(behind)
		}
		was := math.Float64frombits(y.amount.Swap(math.Float64bits(amount)))
		if amount == 0 {
			release(0)
			if was != 0 {
				y.Log.Debug("intake takes all its verification slots again", "behind", behind, "cpu_busy", round2(busy))
			}
			continue
		}
		if was == 0 {
			n := y.times.Add(1)
			// Under a lasting overload it may start and stop a few times a
			// second: the log says so once a minute, the metrics every time.
			log := y.Log.Debug
			if now.Sub(lastLog) >= time.Minute {
				log, lastLog = y.Log.Info, now
			}
			log("intake yields to delivery: packages wait for offices that answer fast while the CPU is full",
				"behind", behind, "cpu_busy", round2(busy), "slots", y.Slots.Size(), "times", n)
		}
		// Whole slots for the whole period (kept into the next one if it wants
		// them too), one more for the fraction of it.
		whole := int(amount)
		part := amount - float64(whole)
		need := whole
		if part > 0 {
			need++
		}
		release(need)
		if held < need {
			if !y.Slots.takeAhead(ctx, need-held) {
				return // ctx ended while taking the slots
			}
			held = need
		}
		if part > 0 {
			t := time.NewTimer(time.Duration(part * float64(y.Every)))
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			release(whole)
		}
	}
}

// amountFor is how many slots to hold, averaged over a period, with behind
// packages waiting: none up to Low; from Low to High rising to half the slots;
// from High to twice High rising further to three quarters, so that far past
// the machine's limit delivery still gets its share. With at most half, at
// 1,800 arrivals a second on two CPUs intake still accepted 793/s against 449
// delivered (without the yield 1,201 against 90); with three quarters, taken
// ahead of the waiting packages, 756 and 824 against 731 and 792. A quarter
// stays with intake.
func (y *Yield) amountFor(behind int) float64 {
	n := float64(y.Slots.Size())
	half, most := n/2, n*3/4
	switch {
	case behind <= y.Low:
		return 0
	case behind <= y.High:
		return half * float64(behind-y.Low) / float64(max(y.High-y.Low, 1))
	default:
		return half + (most-half)*min(1, float64(behind-y.High)/float64(y.High))
	}
}

// round2 keeps the log line short; -1 (unknown) stays -1.
func round2(f float64) float64 { return math.Round(f*100) / 100 }
