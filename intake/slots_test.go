package intake

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/internal/procs"
)

// TestSlotsBoundTheWork: with two slots, a third package waits (and is counted as
// waiting) until one of the two is done, then runs.
func TestSlotsBoundTheWork(t *testing.T) {
	s := NewSlots(2)
	release := make(chan struct{})
	var running, most atomic.Int64
	work := func() error {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		running.Add(-1)
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- s.run(context.Background(), work) }()
	}
	waitFor(t, func() bool { return running.Load() == 2 && s.Waiting() == 3 }, "two running and three waiting")
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if most.Load() != 2 || s.Waiting() != 0 || s.Refused() != 0 {
		t.Fatalf("at most %d ran at once (want 2); %d still waiting, %d refused", most.Load(), s.Waiting(), s.Refused())
	}
}

// TestSlotsRefuseAfterTheWait: a package that finds no slot free within MaxWait is
// refused with ErrBusy (a 503 for the client), counted, and its work never runs.
func TestSlotsRefuseAfterTheWait(t *testing.T) {
	s := NewSlots(1)
	s.MaxWait = 20 * time.Millisecond
	release := make(chan struct{})
	go func() { _ = s.run(context.Background(), func() error { <-release; return nil }) }()
	waitFor(t, func() bool { return len(s.ch) == 1 }, "the slot taken")
	ran := false
	err := s.run(context.Background(), func() error { ran = true; return nil })
	close(release)
	if !errors.Is(err, ErrBusy) || ran {
		t.Fatalf("err %v, work ran %v; want ErrBusy without running", err, ran)
	}
	if s.Refused() != 1 || s.Waiting() != 0 {
		t.Fatalf("refused %d, waiting %d; want 1 and 0", s.Refused(), s.Waiting())
	}
}

// TestSlotsStopWaitingForAGoneClient: a request whose client went away stops
// waiting; it is not counted as refused for lack of slots.
func TestSlotsStopWaitingForAGoneClient(t *testing.T) {
	s := NewSlots(1)
	release := make(chan struct{})
	defer close(release)
	go func() { _ = s.run(context.Background(), func() error { <-release; return nil }) }()
	waitFor(t, func() bool { return len(s.ch) == 1 }, "the slot taken")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.run(ctx, func() error { return nil }) }()
	waitFor(t, func() bool { return s.Waiting() == 1 }, "one waiting")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if s.Refused() != 0 || s.Waiting() != 0 {
		t.Fatalf("refused %d, waiting %d; want 0 and 0", s.Refused(), s.Waiting())
	}
}

func TestSlotsDefaults(t *testing.T) {
	// One per CPU, not per processor: a gateway runs on one processor more than
	// it has CPUs (internal/procs), and a third slot on two CPUs verified more
	// at once than the CPUs can, taking them from delivery.
	before := runtime.GOMAXPROCS(procs.CPUs() + 1)
	defer runtime.GOMAXPROCS(before)
	if n := NewSlots(0).Size(); n != procs.CPUs() {
		t.Fatalf("%d slots by default with GOMAXPROCS %d, want one per CPU, %d", n, runtime.GOMAXPROCS(0), procs.CPUs())
	}
	if NewSlots(0).MaxWait != DefaultSlotWait {
		t.Fatal("default wait not set")
	}
	none := NewSlots(-1) // no bound: a Pipeline without slots runs at once
	if none != nil || none.Size() != 0 || none.Waiting() != 0 {
		t.Fatal("a negative count must mean no slots at all")
	}
	if err := none.run(context.Background(), func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTakeAheadOfWaitingPackages: a Yield gets the next slot a package gives
// back, before packages that were waiting longer; given up, it leaves nothing
// owed and nothing taken.
func TestTakeAheadOfWaitingPackages(t *testing.T) {
	s := NewSlots(2)
	rA, _ := s.Acquire(context.Background())
	rB, _ := s.Acquire(context.Background())
	cGot := make(chan func(), 1)
	go func() {
		r, err := s.Acquire(context.Background())
		if err != nil {
			t.Error(err)
		}
		cGot <- r
	}()
	waitFor(t, func() bool { return s.Waiting() == 1 }, "a package waiting")
	took := make(chan bool, 1)
	go func() { took <- s.takeAhead(context.Background(), 1) }()
	waitFor(t, func() bool { return s.owed.Load() == 1 }, "the yield owed a slot")
	rA()
	if !<-took {
		t.Fatal("takeAhead gave up")
	}
	select {
	case <-cGot:
		t.Fatal("the waiting package got the slot the yield was owed")
	case <-time.After(20 * time.Millisecond):
	}
	rB()
	rC := <-cGot
	if len(s.ch) != 2 || s.owed.Load() != 0 {
		t.Fatalf("slots taken %d (want the yield's and the package's), owed %d", len(s.ch), s.owed.Load())
	}
	s.free()
	rC()

	// Given up while owed: nothing left behind.
	rA, _ = s.Acquire(context.Background())
	rB, _ = s.Acquire(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	go func() { took <- s.takeAhead(ctx, 2) }()
	waitFor(t, func() bool { return s.owed.Load() == 2 }, "the yield owed two slots")
	rA() // one granted, one still owed
	waitFor(t, func() bool { return s.owed.Load() == 1 }, "one slot granted")
	cancel()
	if <-took {
		t.Fatal("takeAhead reports success after its context ended")
	}
	rB()
	if len(s.ch) != 0 || s.owed.Load() != 0 || len(s.granted) != 0 {
		t.Fatalf("after giving up: %d slots taken, %d owed, %d grants unread", len(s.ch), s.owed.Load(), len(s.granted))
	}

	// A free slot is taken at once, with nothing owed.
	if !s.takeAhead(context.Background(), 2) || len(s.ch) != 2 || s.owed.Load() != 0 {
		t.Fatalf("free slots: %d taken, %d owed", len(s.ch), s.owed.Load())
	}
	s.free()
	s.free()
}
