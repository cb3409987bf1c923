package httpbody

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// TestBudget: the budget never grants more than its size, serves waiters in
// order, gives back what a lease does not keep, and refuses after the wait.
func TestBudget(t *testing.T) {
	ctx := context.Background()
	b := NewBudget(100, time.Hour)
	a, err := b.Acquire(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	granted := make(chan string, 2)
	var wg sync.WaitGroup
	for _, w := range []struct {
		name string
		n    int64
	}{{"big", 80}, {"small", 30}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := b.Acquire(ctx, w.n)
			if err != nil {
				t.Error(err)
				return
			}
			granted <- w.name
			l.Release()
		}()
		waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) >= 1 }) // big queues first
		if w.name == "big" {
			continue
		}
		waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == 2 })
	}
	// 30 would fit beside 60, but the big one waits first: order, no starvation.
	select {
	case g := <-granted:
		t.Fatalf("%s was granted before anything came free", g)
	case <-time.After(20 * time.Millisecond):
	}
	a.Keep(30) // the body needed 30: 30 come free, not enough for 80 (and 30, which would fit, waits behind it)
	select {
	case g := <-granted:
		t.Fatalf("%s was granted with 80 used", g)
	case <-time.After(20 * time.Millisecond):
	}
	a.Release()
	if first := <-granted; first != "big" {
		t.Fatalf("%s was granted first", first)
	}
	wg.Wait()
	if b.used != 0 {
		t.Fatalf("%d bytes still counted after every lease was released", b.used)
	}

	short := NewBudget(10, 10*time.Millisecond)
	l, _ := short.Acquire(ctx, 10)
	if _, err := short.Acquire(ctx, 1); !errors.Is(err, ErrBusy) {
		t.Fatalf("over the budget after the wait: %v", err)
	}
	l.Release()
	l.Release() // twice: nothing more comes back
	if short.used != 0 {
		t.Fatalf("used %d after release", short.used)
	}
	if l, err := short.Acquire(ctx, 1000); err != nil || l.held != 10 {
		t.Fatalf("a request over the whole budget takes all of it: %v %+v", err, l)
	}
	var nilBudget *Budget
	if l, err := nilBudget.Acquire(ctx, 5); err != nil {
		t.Fatal(err)
	} else {
		l.Release()
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached")
}

// TestReaderTakesWhatArrives: a lease read through Reader takes from the budget
// as the bytes come, a step at a time and never beyond the limit, and a read
// whose step does not come free fails with ErrBusy.
func TestReaderTakesWhatArrives(t *testing.T) {
	ctx := context.Background()
	b := NewBudget(1<<20, 20*time.Millisecond)
	l, err := b.Acquire(ctx, First(-1))
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 700<<10)
	got, err := io.ReadAll(l.Reader(ctx, bytes.NewReader(body), 1<<20))
	if err != nil || len(got) != len(body) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if held := used(b); held < int64(len(body)) || held > int64(len(body))+GrowStep {
		t.Fatalf("the lease holds %d bytes for %d read, want at most one step more", held, len(body))
	}
	// The rest of the budget is another's: the next step cannot come.
	other, err := b.Acquire(ctx, 1<<20-used(b))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(l.Reader(ctx, bytes.NewReader(make([]byte, 1<<20)), 4<<20))
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("a read beyond the budget: %v, want ErrBusy", err)
	}
	l.Release()
	other.Release()
	if u := used(b); u != 0 {
		t.Fatalf("%d bytes still used after every release", u)
	}
	if First(1000) != 1000 || First(0) != FirstBytes || First(10<<20) != FirstBytes {
		t.Fatal("First")
	}
	// A package of declared length takes that much, not a step more to see its end.
	small, err := b.Acquire(ctx, First(14000))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ReadAll(small.Reader(ctx, bytes.NewReader(make([]byte, 14000)), 1<<20), 14000); err != nil || len(got) != 14000 || used(b) != 14000 {
		t.Fatalf("a 14,000-byte body: %d bytes read, %v, %d bytes of the budget used", len(got), err, used(b))
	}
	small.Release()
}

func used(b *Budget) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// TestBudgetWithinKeepsTheParentsRest: a budget within a larger one takes its
// bytes from both, and never more than its own size, so the parent's rest stays
// for requests of the parent alone (the federation endpoint's memory for peers);
// what it gives back comes free in both.
func TestBudgetWithinKeepsTheParentsRest(t *testing.T) {
	all := NewBudget(300, 0)
	part := NewBudget(200, 0).Within(all)
	ctx := context.Background()
	a, err := part.Acquire(ctx, 200)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.Acquire(ctx, 1); !errors.Is(err, ErrBusy) {
		t.Fatalf("a part that is full: %v, want ErrBusy", err)
	}
	b, err := all.Acquire(ctx, 100)
	if err != nil {
		t.Fatalf("the parent's rest while the part is full: %v", err)
	}
	if _, err := all.Acquire(ctx, 1); !errors.Is(err, ErrBusy) {
		t.Fatalf("the parent, full: %v, want ErrBusy", err)
	}
	a.Keep(50)
	if _, err := all.Acquire(ctx, 150); err != nil {
		t.Fatalf("what the part gave back, in the parent: %v", err)
	}
	if _, err := part.Acquire(ctx, 150); !errors.Is(err, ErrBusy) {
		t.Fatalf("the part while the parent is full: %v, want ErrBusy", err)
	}
	b.Release()
	if _, err := part.Acquire(ctx, 100); err != nil {
		t.Fatalf("the part after the parent's room came back: %v", err)
	}
}

// TestBudgetWithinWaitsOnceForBoth: a lease of a part waits for the part's
// room and then the parent's within the part's one wait, not the parent's wait
// after its own: a request to the federation endpoint is answered 503 after
// the wait the endpoint promises, however long the gateway-wide budget would
// let others wait. The guard's 10 s stand for "the parent's hour".
func TestBudgetWithinWaitsOnceForBoth(t *testing.T) {
	all := NewBudget(100, time.Hour)
	part := NewBudget(100, time.Millisecond).Within(all)
	full, err := all.Acquire(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := part.Acquire(ctx, 1); !errors.Is(err, ErrBusy) {
		t.Fatalf("the part's lease while the parent is full: %v, want ErrBusy after the part's own wait", err)
	}
	// What the part took while it waited for the parent is back: the part is
	// whole again for the next request once the parent has room.
	full.Release()
	l, err := part.Acquire(ctx, 100)
	if err != nil {
		t.Fatalf("the whole part after the parent came free: %v", err)
	}
	l.Release()
}
