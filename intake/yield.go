package intake

import (
	"context"
	"log/slog"
	"math"
	"runtime"
	"sync/atomic"
	"time"
)

// Yield gives delivery part of the CPU when the two compete for it and delivery
// is losing: while packages pile up for offices that take them as fast as they
// are sent (Behind) and this process uses (nearly) all its CPUs, it holds half of
// intake's verification slots, so intake verifies at half its pace and delivery
// gets what that frees. Once the pile is small again (below Low), or the CPU is no
// longer full (then intake was not what held delivery back), the slots go back.
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
	// High: yield once Behind is above it (and the CPU is full); Low: stop once
	// it is below (NewYield: High/4).
	High, Low int
	// Every is how often Behind and the CPU are looked at.
	Every time.Duration
	// Busy is the share of the process's CPUs (GOMAXPROCS) above which the CPU
	// counts as full; below Idle while yielding, the slots go back.
	Busy, Idle float64
	// CPU returns the CPU time this process has used so far; nil: getrusage.
	// Where it is not available (ok false) only Behind counts.
	CPU func() (used time.Duration, ok bool)
	Log *slog.Logger

	yielding atomic.Int64 // slots held now
	times    atomic.Int64 // how often it started yielding
}

// DefaultYieldBacklog is limits.yield_backlog's default: the packages waiting for
// fast offices above which intake yields. A fast office's line holds up to 1,024
// (broker); 256 is a quarter second of work at the bench's pace and far above
// what a handful of concurrent deliveries keeps waiting in normal running.
const DefaultYieldBacklog = 256

// NewYield returns a Yield for slots with its defaults: yield above high
// packages behind, stop below high/4, look every 50 ms, the CPU full above 85 %
// of GOMAXPROCS and no longer full below 60 %. Nil when there is nothing to
// give: no slots, or one only.
func NewYield(slots *Slots, behind func() int, high int, log *slog.Logger) *Yield {
	if slots.Size() < 2 || high <= 0 {
		return nil
	}
	if log == nil {
		log = slog.Default()
	}
	return &Yield{Slots: slots, Behind: behind, High: high, Low: max(high/4, 1),
		Every: 50 * time.Millisecond, Busy: 0.85, Idle: 0.6, Log: log}
}

// Yielding is the number of verification slots held for delivery now.
func (y *Yield) Yielding() int64 {
	if y == nil {
		return 0
	}
	return y.yielding.Load()
}

// Times counts how often intake started to yield.
func (y *Yield) Times() int64 {
	if y == nil {
		return 0
	}
	return y.times.Load()
}

// Run looks every y.Every until ctx ends, then gives back what it holds.
func (y *Yield) Run(ctx context.Context) {
	cpu := y.CPU
	if cpu == nil {
		cpu = processCPU
	}
	tick := time.NewTicker(y.Every)
	defer tick.Stop()
	var held []func()
	defer func() {
		for _, release := range held {
			release()
		}
		y.yielding.Store(0)
	}()
	lastCPU, cpuOK := cpu()
	lastAt := time.Now()
	var lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		used, ok := cpu()
		now := time.Now()
		busy := -1.0 // unknown
		if ok && cpuOK {
			if wall := now.Sub(lastAt); wall > 0 {
				busy = float64(used-lastCPU) / (float64(wall) * float64(runtime.GOMAXPROCS(0)))
			}
		}
		lastCPU, cpuOK, lastAt = used, ok, now
		behind := y.Behind()
		switch {
		case held == nil && behind > y.High && (busy < 0 || busy >= y.Busy):
			held = y.hold(ctx, y.Slots.Size()/2)
			if held == nil {
				return // ctx ended while taking the slots
			}
			n := y.times.Add(1)
			// Under a lasting overload it turns on and off a few times a second:
			// the log says so once a minute, the metrics every time.
			log := y.Log.Debug
			if now.Sub(lastLog) >= time.Minute {
				log, lastLog = y.Log.Info, now
			}
			log("intake yields to delivery: packages wait for offices that answer fast while the CPU is full",
				"behind", behind, "cpu_busy", round2(busy), "slots_held", len(held), "slots", y.Slots.Size(), "times", n)
		case held != nil && (behind < y.Low || (busy >= 0 && busy < y.Idle)):
			for _, release := range held {
				release()
			}
			held = nil
			y.yielding.Store(0)
			y.Log.Debug("intake takes all its verification slots again", "behind", behind, "cpu_busy", round2(busy))
		}
	}
}

// hold takes n slots, waiting in line with the packages (first come, first
// served: packages already waiting are verified first). Nil if ctx ends first.
func (y *Yield) hold(ctx context.Context, n int) []func() {
	held := make([]func(), 0, n)
	for range n {
		select {
		case y.Slots.ch <- struct{}{}:
			held = append(held, y.Slots.release)
			y.yielding.Add(1)
		case <-ctx.Done():
			for _, release := range held {
				release()
			}
			y.yielding.Store(0)
			return nil
		}
	}
	return held
}

// round2 keeps the log line short; -1 (unknown) stays -1.
func round2(f float64) float64 { return math.Round(f*100) / 100 }
