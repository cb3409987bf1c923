package transfer

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
)

// heldReader gives its first bytes, says so on started and then waits for
// release: an attachment copy held in the middle, its file created in the
// temporary folder.
type heldReader struct {
	body             []byte
	started, release chan struct{}
	sent             bool
}

func (r *heldReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		close(r.started)
		<-r.release
	}
	if len(r.body) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.body)
	r.body = r.body[n:]
	return n, nil
}

func (r *heldReader) Close() error { return nil }

// deliverHeld starts delivering x (id "dlv-held") with its attachment copy held,
// waits until its temporary folder holds the attachment's file and returns the
// release and the attempt's outcome.
func deliverHeld(t *testing.T, a *Adapter, dir string) (tmp string, release func() error) {
	t.Helper()
	body := []byte("%PDF-1.4 lageplan, held")
	x := realDelivery(dir, "dlv-held", "4c1f0e52-0000-4000-8000-0000000000b1", att{"Lageplan.pdf", body})
	r := &heldReader{body: body, started: make(chan struct{}), release: make(chan struct{})}
	x.Attachments[0].Open = func(context.Context) (io.ReadCloser, error) { return r, nil }
	done := make(chan error, 1)
	go func() {
		_, err := a.Deliver(context.Background(), x)
		done <- err
	}()
	select {
	case <-r.started:
	case err := <-done:
		t.Fatalf("the held delivery ended before its attachment was copied: %v", err)
	}
	return filepath.Join(dir, TempPrefix+fileID(x.ID)), func() error {
		close(r.release)
		return <-done
	}
}

// otherDelivery is a delivery into dir whose lock is not the held one's (the
// locks are shared by hash: one and the same would wait for the held attempt).
func otherDelivery(t *testing.T, a *Adapter, dir string) adapters.Delivery {
	t.Helper()
	for _, id := range []string{"dlv-other-1", "dlv-other-2", "dlv-other-3", "dlv-other-4"} {
		if a.lockOf(id) != a.lockOf("dlv-held") {
			return realDelivery(dir, id, "4c1f0e52-0000-4000-8000-0000000000b2")
		}
	}
	t.Fatal("no delivery id with a lock of its own")
	return adapters.Delivery{}
}

// TestStaleTempsByTheSharesClock: after a case is delivered, temporary folders
// of other deliveries older than a day are removed, as leftovers of a crash. The
// age was the gateway's clock against the folder's time, which the file server
// sets: with a NAS whose clock fell back a few days (a flat clock battery), or a
// gateway's clock that far ahead, every temporary folder looked old, and each
// case delivered removed the ones other attempts were writing just then — in a
// cluster another gateway's, which no lock of this one keeps (here the test
// writes it, as that gateway would): those attempts failed, and at an office
// with many cases they kept failing one another. The age is measured by the
// share's clock now: the time the ledger record just written there got.
func TestStaleTempsByTheSharesClock(t *testing.T) {
	dir := officeFolder(t)
	// The gateway's clock three days ahead of the file server's.
	a, err := New(Options{Logger: slog.New(slog.DiscardHandler), NoWatch: true,
		Now: func() time.Time { return time.Now().Add(72 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	writing := filepath.Join(dir, TempPrefix+"dlv-on-another-gateway")
	mustMkdir(t, filepath.Join(writing, AttachmentsDir))
	if _, err := a.Deliver(t.Context(), realDelivery(dir, "dlv-here", "4c1f0e52-0000-4000-8000-0000000000b4")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(writing); err != nil {
		t.Errorf("a temporary folder written just now was removed as stale by the gateway's clock: %v", err)
	}
	// One old by the share's clock too still goes.
	left := filepath.Join(dir, TempPrefix+"dlv-crashed")
	mustMkdir(t, left)
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(left, past, past); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deliver(t.Context(), realDelivery(dir, "dlv-here-2", "4c1f0e52-0000-4000-8000-0000000000b5")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("a leftover old by the share's clock was kept: %v", err)
	}
}

// TestStaleTempOfAnAttemptUnderWayStays: a temporary folder that is old by any
// clock, with no pending record, is a leftover of a crash, unless its delivery's
// attempt is writing it right now: a delivery retried a day or more after a
// crash that left it (the gateway down meanwhile) takes the leftover over, and
// the cleanup after another case, having seen it old a moment before, removed
// it under the retry: the retry failed, or, had the removal come between the
// retry's pending record and its rename, the next attempt took the case for
// handed over while none was (resolvePending). The cleanup takes the delivery's
// lock for this removal too, as it does for one with a pending record.
func TestStaleTempOfAnAttemptUnderWayStays(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	tmp, release := deliverHeld(t, a, dir)
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(tmp, past, past); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deliver(t.Context(), otherDelivery(t, a, dir)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Errorf("the temporary folder of an attempt under way was removed as stale: %v", err)
	}
	if err := release(); err != nil {
		t.Fatalf("the attempt whose temporary folder was removed under it: %v", err)
	}
	if got := cases(t, dir); len(got) != 2 {
		t.Errorf("cases %v, want both", got)
	}
	// A leftover nobody writes still goes.
	left := filepath.Join(dir, TempPrefix+"dlv-crashed")
	mustMkdir(t, left)
	if err := os.Chtimes(left, past, past); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deliver(t.Context(), realDelivery(dir, "dlv-third", "4c1f0e52-0000-4000-8000-0000000000b3")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("a stale leftover was kept: %v", err)
	}
}

// TestLedgerTempsByTheSharesClock: the pass over the ledger after a delivery
// removes leftovers of ledger writes cut off by a crash (".amtsbote/.tmp-*"
// older than a day). Their age was the gateway's clock against the file's time,
// which the file server sets: with the NAS's clock days behind, the pass removed
// the file another attempt was writing its record through just then (on this
// gateway or another of the cluster), and that attempt failed. The age is taken
// by the share's clock, as for the temporary folders (TestStaleTempsByTheSharesClock).
func TestLedgerTempsByTheSharesClock(t *testing.T) {
	dir := officeFolder(t)
	logs := &lockedBuffer{}
	a, err := New(Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), NoWatch: true,
		Now: func() time.Time { return time.Now().Add(72 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	writing := filepath.Join(dir, LedgerDir, TempPrefix+"0a1b2c3d4e5f-dlv-on-another-gateway.json")
	left := filepath.Join(dir, LedgerDir, TempPrefix+"5f4e3d2c1b0a-dlv-crashed.json")
	for _, p := range []string{writing, left} {
		if err := os.WriteFile(p, []byte("{}"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(left, past, past); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deliver(t.Context(), realDelivery(dir, "dlv-prune-here", "4c1f0e52-0000-4000-8000-0000000000b6")); err != nil {
		t.Fatal(err)
	}
	// The pass runs in the background and logs once it is through: wait for it.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "removed ledger records"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the pass after the delivery did not log:\n%s", logs.String())
		}
	}
	if _, err := os.Stat(writing); err != nil {
		t.Errorf("a ledger write's file written just now was removed as stale by the gateway's clock: %v", err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("a leftover old by the share's clock was kept: %v", err)
	}
}

// lockedBuffer is a log buffer that a background goroutine may write while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
