package intake

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/internal/procs"
)

// fakeCPU reports CPU time for a Yield: full (every CPU busy since it was made),
// idle (none used) or unknown, switchable while the Yield runs.
type fakeCPU struct {
	start time.Time
	mode  atomic.Int32 // 0 full, 1 idle, 2 unknown
	idle  atomic.Int64 // CPU time frozen when it went idle
}

func newFakeCPU() *fakeCPU { return &fakeCPU{start: time.Now()} }

func (f *fakeCPU) read() (time.Duration, bool) {
	switch f.mode.Load() {
	case 1:
		return time.Duration(f.idle.Load()), true
	case 2:
		return 0, false
	}
	return time.Since(f.start) * time.Duration(procs.CPUs()), true // every CPU busy
}

func (f *fakeCPU) goIdle() {
	used, _ := f.read()
	f.idle.Store(int64(used))
	f.mode.Store(1)
}

// startYield runs a Yield over slots with a backlog the test sets, looking every
// period; looks counts how often it looked.
func startYield(t *testing.T, slots *Slots, cpu *fakeCPU, every time.Duration) (y *Yield, behind *atomic.Int64, looks *atomic.Int64) {
	t.Helper()
	behind, looks = new(atomic.Int64), new(atomic.Int64)
	y = NewYield(slots, func() int { looks.Add(1); return int(behind.Load()) }, 256, slog.New(slog.NewTextHandler(io.Discard, nil)))
	y.Every = every
	y.CPU = cpu.read
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); y.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return y, behind, looks
}

// afterLooks waits until the Yield has looked n more times.
func afterLooks(t *testing.T, looks *atomic.Int64, n int64) {
	t.Helper()
	target := looks.Load() + n
	waitFor(t, func() bool { return looks.Load() >= target }, "the yield looked again")
}

// TestYieldFollowsTheBacklog: up to Low packages behind intake keeps every
// slot; at High half of them are held through every period, from twice High
// three quarters; in between for a part of a period in proportion; below Low
// they go back.
func TestYieldFollowsTheBacklog(t *testing.T) {
	slots := NewSlots(4)
	y, behind, looks := startYield(t, slots, newFakeCPU(), 5*time.Millisecond)

	behind.Store(60) // up to Low (64): nothing
	afterLooks(t, looks, 5)
	if y.Yielding() != 0 || len(slots.ch) != 0 || y.Times() != 0 {
		t.Fatalf("yielding %v, slots taken %d with 60 behind (Low 64); want none", y.Yielding(), len(slots.ch))
	}
	// heldThrough checks that n slots stay taken look after look.
	heldThrough := func(n int) {
		t.Helper()
		waitFor(t, func() bool { return y.Yielding() == float64(n) && len(slots.ch) == n }, "slots held")
		for range 20 {
			afterLooks(t, looks, 1)
			if got := len(slots.ch); got != n {
				t.Fatalf("%d slots taken, want %d held through every period", got, n)
			}
		}
	}
	behind.Store(256) // High: two of four, all the time
	heldThrough(2)
	behind.Store(5000) // far past it: three of four, and the fourth still serves packages
	heldThrough(3)
	release, err := slots.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	release()

	behind.Store(112) // a quarter of the way from Low to High: one slot, half of each period
	waitFor(t, func() bool { return y.Yielding() == 0.5 }, "half a slot")
	sawFree, sawHeld := false, false
	for range 2000 { // at least 10 periods
		switch len(slots.ch) {
		case 0:
			sawFree = true
		case 1:
			sawHeld = true
		}
		if sawFree && sawHeld {
			break
		}
		time.Sleep(25 * time.Microsecond)
	}
	if !sawFree || !sawHeld {
		t.Fatalf("at half a slot: seen free %v, seen held %v; want both within a few periods", sawFree, sawHeld)
	}
	behind.Store(10)
	waitFor(t, func() bool { return y.Yielding() == 0 && len(slots.ch) == 0 }, "the slots given back")
	if y.Times() != 1 {
		t.Fatalf("started yielding %d times, want 1", y.Times())
	}
}

// TestYieldCountsCPUsNotProcessors: a gateway runs on one processor more than
// it has CPUs (internal/procs); every CPU busy is a full CPU all the same. Taken
// against GOMAXPROCS, two busy CPUs of three processors were 67 %, never full,
// and intake never yielded: in the open loop delivery fell to an eighth of
// intake's pace.
func TestYieldCountsCPUsNotProcessors(t *testing.T) {
	before := runtime.GOMAXPROCS(procs.CPUs() + 1)
	defer runtime.GOMAXPROCS(before)
	slots := NewSlots(4)
	y, behind, _ := startYield(t, slots, newFakeCPU(), 5*time.Millisecond)
	behind.Store(256)
	waitFor(t, func() bool { return y.Yielding() == 2 }, "half the slots held with every CPU busy")
}

// TestYieldAmount: how much is held at a given backlog, with Low 64 and High 256.
func TestYieldAmount(t *testing.T) {
	for _, c := range []struct {
		slots, behind int
		want          float64
	}{
		{2, 0, 0}, {2, 64, 0}, {2, 160, 0.5}, {2, 256, 1}, {2, 384, 1.25}, {2, 512, 1.5}, {2, 100000, 1.5},
		{8, 64, 0}, {8, 160, 2}, {8, 256, 4}, {8, 512, 6}, {8, 100000, 6},
	} {
		y := NewYield(NewSlots(c.slots), nil, 256, nil)
		if got := y.amountFor(c.behind); got != c.want {
			t.Errorf("%d slots, %d behind: hold %v, want %v", c.slots, c.behind, got, c.want)
		}
	}
}

// TestYieldNotWhileTheCPUIsIdle: packages behind with the CPU not full is not
// intake's doing (the office's share of attempts is the limit); intake keeps its
// slots.
func TestYieldNotWhileTheCPUIsIdle(t *testing.T) {
	slots := NewSlots(2)
	cpu := newFakeCPU()
	cpu.goIdle()
	y, behind, looks := startYield(t, slots, cpu, time.Millisecond)
	behind.Store(5000)
	afterLooks(t, looks, 20)
	if y.Yielding() != 0 || y.Times() != 0 {
		t.Fatalf("yielding %v (times %d) with the CPU idle; want none", y.Yielding(), y.Times())
	}
}

// TestYieldEndsWhenTheCPUIsNoLongerFull: yielding that leaves the CPU idle did
// not help delivery; the slots go back though packages are still behind.
func TestYieldEndsWhenTheCPUIsNoLongerFull(t *testing.T) {
	slots := NewSlots(2)
	cpu := newFakeCPU()
	y, behind, _ := startYield(t, slots, cpu, time.Millisecond)
	behind.Store(256)
	waitFor(t, func() bool { return y.Yielding() == 1 && len(slots.ch) == 1 }, "one of two slots held")
	cpu.goIdle()
	waitFor(t, func() bool { return y.Yielding() == 0 && len(slots.ch) == 0 }, "the slot given back")
}

// TestYieldByBacklogWhereCPUIsUnknown: without a CPU reading the backlog alone
// decides, both ways.
func TestYieldByBacklogWhereCPUIsUnknown(t *testing.T) {
	slots := NewSlots(2)
	cpu := newFakeCPU()
	cpu.mode.Store(2)
	y, behind, _ := startYield(t, slots, cpu, time.Millisecond)
	behind.Store(256)
	waitFor(t, func() bool { return y.Yielding() == 1 && len(slots.ch) == 1 }, "one slot held")
	behind.Store(0)
	waitFor(t, func() bool { return y.Yielding() == 0 && len(slots.ch) == 0 }, "the slot given back")
}

// TestYieldGivesBackOnStop: a stopped Yield holds nothing, also when it was
// still waiting for a slot behind packages.
func TestYieldGivesBackOnStop(t *testing.T) {
	slots := NewSlots(2)
	y := NewYield(slots, func() int { return 256 }, 256, slog.New(slog.NewTextHandler(io.Discard, nil)))
	y.Every, y.CPU = time.Millisecond, newFakeCPU().read
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); y.Run(ctx) }()
	waitFor(t, func() bool { return y.Yielding() == 1 && len(slots.ch) == 1 }, "one slot held")
	cancel()
	<-done
	if len(slots.ch) != 0 || y.Yielding() != 0 {
		t.Fatalf("after stop: %d slots taken, yielding %v", len(slots.ch), y.Yielding())
	}

	// Every slot busy with packages: the Yield waits in line, and gives up
	// waiting when it is stopped.
	r1, _ := slots.Acquire(context.Background())
	r2, _ := slots.Acquire(context.Background())
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { defer close(done); y.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	<-done
	r1()
	r2()
	if len(slots.ch) != 0 || y.Yielding() != 0 {
		t.Fatalf("after a stop while waiting: %d slots taken, yielding %v", len(slots.ch), y.Yielding())
	}
}

// TestNewYieldNeedsSlotsToGive: with no bound or a single slot there is
// nothing to give (half of one is none).
func TestNewYieldNeedsSlotsToGive(t *testing.T) {
	for _, s := range []*Slots{nil, NewSlots(1)} {
		if y := NewYield(s, func() int { return 0 }, 256, nil); y != nil {
			t.Fatalf("NewYield over %d slots = %v, want nil", s.Size(), y)
		}
	}
	if y := NewYield(NewSlots(2), func() int { return 0 }, 0, nil); y != nil {
		t.Fatal("NewYield with High 0 is not nil")
	}
	var y *Yield
	if y.Yielding() != 0 || y.Times() != 0 {
		t.Fatal("a nil Yield reports yielding")
	}
}
