package transfer

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestRemountedFolderWatchedAgain: fsnotify drops a folder's watch without a
// word when the file system under it is unmounted (inotify's IN_UNMOUNT), and
// the adapter went on taking the folder for watched. A share unmounted and
// mounted again (a network hiccup, an automounter, a NAS's restart) was
// watched no more until the gateway restarted, though a folder that is not
// watched is tried again as the gateway looks at it (docs/transfer.md,
// "fsnotify and polling: polling is the truth"). Now
// a watched folder's watch is renewed once rewatchEvery has passed, and the
// import in the mounted share signals a change again.
func TestRemountedFolderWatchedAgain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "office")
	mustMkdir(t, dir)
	mountShare := func() {
		t.Helper()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs (the test needs root; CI runs as root): %v: %s", err, out)
		}
	}
	mounted := false
	t.Cleanup(func() {
		if mounted {
			_ = exec.Command("umount", dir).Run()
		}
	})
	mountShare()
	mounted = true
	prepareOffice(t, dir)

	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a, err := New(Options{Logger: slog.New(slog.DiscardHandler), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	if a.watcher == nil {
		t.Fatal("fsnotify unavailable here: the watch is what this test is about")
	}
	first := realDelivery(dir, "dlv-before-remount", "4c1f0e52-0000-4000-8000-0000000000a1")
	if _, err := a.Deliver(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	a.settleWatches()

	// The share goes away and comes back: the gateway's own check looks the same.
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	mounted = false
	mountShare()
	mounted = true
	prepareOffice(t, dir)

	mu.Lock()
	now = now.Add(rewatchEvery)
	mu.Unlock()
	d := realDelivery(dir, "dlv-after-remount", "4c1f0e52-0000-4000-8000-0000000000a2")
	handed := handOverQuietly(t, a, d)
	if err := os.WriteFile(filepath.Join(dir, handed.Reference+MarkerSuffix), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Changes():
	case <-time.After(10 * time.Second):
		t.Fatal("no change signalled within 10s for a marker in the folder mounted again: its watch was not renewed")
	}
}
