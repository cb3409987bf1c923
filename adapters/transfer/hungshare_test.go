package transfer

import (
	"sync"
	"testing"
	"time"
)

// settleWatches waits until the watches asked for so far are added or have
// failed (addLoop), or the adapter is closed.
func (a *Adapter) settleWatches() {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	for len(a.adding) > 0 && !a.gate.Closed() {
		a.addIdle.Wait()
	}
}

// TestHungShareHoldsNoOtherOffice: adding an office folder's watch looks the
// folder up, and on a share whose server stopped answering that hangs. The
// adapter added it holding the lock every delivery and confirmation question
// takes (watch), so one office's hung share stopped every other office's
// deliveries too (an audit, 2026-12-07). Adding it outside that lock was not
// enough: fsnotify's inotify backend holds its own lock across the add
// (InotifyAddWatch under its w.mu), so another office's add waited there for the
// hung one, and the fake here does the same. Now no delivery waits for a watch:
// another office's delivery goes through, and its folder is watched once the
// hung add ends.
func TestHungShareHoldsNoOtherOffice(t *testing.T) {
	a := newAdapter(t)
	if a.watcher == nil {
		t.Fatal("fsnotify unavailable here: the watch is what this test is about")
	}
	hung, other := officeFolder(t), officeFolder(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var fsMu sync.Mutex // fsnotify's lock, held across InotifyAddWatch
	add := a.addWatch
	a.addWatch = func(dir string) error {
		fsMu.Lock()
		defer fsMu.Unlock()
		if dir == hung {
			close(entered)
			<-release // the share's server does not answer
		}
		return add(dir)
	}
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	a.watch(hung)
	<-entered

	done := make(chan error, 1)
	go func() {
		_, err := a.Deliver(t.Context(), realDelivery(other, "dlv-other", "4c1f0e52-0000-4000-8000-0000000000a1"))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the other office's delivery: %v", err)
		}
	case <-time.After(30 * time.Second): // a hang, not a speed: the delivery takes milliseconds
		t.Fatal("the other office's delivery waits for the hung share's watch")
	}
	if a.isWatched(hung) {
		t.Error("the hung share's folder counts as watched before its watch was added")
	}
	close(release)
	released = true
	a.settleWatches()
	if !a.isWatched(other) {
		t.Error("the other office's folder is not watched once the hung add ended")
	}
	if !a.isWatched(hung) {
		t.Error("the hung share's folder is not watched once its add ended")
	}
}
