package transfer

import (
	"testing"
	"time"
)

// TestHungShareHoldsNoOtherOffice: adding an office folder's watch looks the
// folder up, and on a share whose server stopped answering that hangs. The
// adapter added it holding the lock every delivery and confirmation question
// takes (watch), so one office's hung share stopped every other office's
// deliveries too (an audit, 2026-12-07). Now only the hung office's own calls
// wait: another office's delivery goes through, and its folder is watched.
func TestHungShareHoldsNoOtherOffice(t *testing.T) {
	a := newAdapter(t)
	if a.watcher == nil {
		t.Fatal("fsnotify unavailable here: the watch is what this test is about")
	}
	hung, other := officeFolder(t), officeFolder(t)
	entered, release := make(chan struct{}), make(chan struct{})
	add := a.addWatch
	a.addWatch = func(dir string) error {
		if dir == hung {
			close(entered)
			<-release // the share's server does not answer
		}
		return add(dir)
	}
	defer close(release)
	go a.watch(hung)
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
	if !a.isWatched(other) {
		t.Error("the other office's folder is not watched")
	}
	if a.isWatched(hung) {
		t.Error("the hung share's folder counts as watched before its watch was added")
	}
}
