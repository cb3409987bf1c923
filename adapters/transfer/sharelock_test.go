package transfer

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
)

// TestWithdrawRacingAnAttemptOnAnotherGateway: two gateways of a cluster write
// into one office folder, and each one's lock of a delivery is its own. An
// attempt of the delivery on gateway b (one whose attempt timeout ran out, or
// the queue's redelivery after it) is held at a step while gateway a's erasure
// withdraws the case. Whatever the steps' order, the erasure's promise holds:
// once it answered "removed", no case folder of the case waits for the import,
// and no question or attempt on either gateway counts the case as handed over
// (a Zustellbestaetigung would be signed for an application that no longer
// exists).
//
// Without a lock on the share the three holds fail: at "write" (b has read no
// record and not yet written its temporary folder) the withdrawal finds
// nothing and b hands the erased case over afterwards; at "pending" (b's
// temporary folder written, its pending record not yet) the withdrawal removes
// the temporary folder under a withdrawal record, b writes its pending record
// over that, its rename fails, and the pending record without its temporary
// folder says "renamed": HandedOver finds a hand-over, and a retry records
// one; at "renamed" (b's case folder in place, its hand-over's record not yet)
// the withdrawal removes the case folder, b writes the hand-over's record over
// the withdrawal's, and Confirmed takes the folder's absence for the import's
// take.
func TestWithdrawRacingAnAttemptOnAnotherGateway(t *testing.T) {
	for i, step := range []string{"write", "pending", "renamed"} {
		t.Run(step, func(t *testing.T) {
			dir := officeFolder(t)
			a, b := newAdapter(t), newAdapter(t) // a erases, b runs the attempt
			d := realDelivery(dir, "dlv-race-"+step, fmt.Sprintf("4c1f0e52-0000-4000-8000-0000000000a%d", i))
			var (
				w    adapters.Withdrawal
				werr error
				done = make(chan struct{})
				held = make(chan struct{}, 1)
			)
			// Once a's withdrawal waits for b's lock on the share (or is done,
			// without one), b goes on.
			a.shareLockWaits = func(string) {
				select {
				case held <- struct{}{}:
				default:
				}
			}
			erase := func() {
				go func() {
					defer close(done)
					w, werr = a.Withdraw(t.Context(), d)
				}()
				select {
				case <-done:
				case <-held:
				}
			}
			if step == "renamed" {
				b.afterRename = func(string) { erase() }
			} else {
				b.atStep = func(s, _ string) {
					if s == step {
						erase()
					}
				}
			}
			_, derr := b.Deliver(t.Context(), d)
			<-done
			t.Logf("attempt: %v; withdrawal: %+v %v", derr, w, werr)
			if werr != nil || w.Outcome != adapters.WithdrawRemoved {
				t.Errorf("the erasure's withdrawal: %+v %v, want removed", w, werr)
			}
			if name := officeCopy(t, dir, d); name != "" {
				t.Errorf("case folder %s of the erased case waits for the import", name)
			}
			b.atStep, b.afterRename = nil, nil
			withdrawnForGood(t, a, dir, d)
			withdrawnForGood(t, b, dir, d)
		})
	}
}

// BenchmarkDeliver is one attempt that writes a small case into an office
// folder on the local disk; the import takes each case before the next one
// (not timed).
func BenchmarkDeliver(b *testing.B) {
	dir := officeFolder(b)
	a, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NoWatch: true, LedgerKeep: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	d := realDelivery(dir, "", "4c1f0e52-0000-4000-8000-0000000000b0")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.ID = fmt.Sprintf("dlv-bench-%d", i)
		c, err := a.Deliver(b.Context(), d)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(filepath.Join(dir, c.Reference)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// expireLock makes delivery id's lock file in dir, which must be there, look
// as a lock left a day ago: not written since by its owner.
func expireLock(t testing.TB, dir, id string) {
	t.Helper()
	p := lockPath(dir, fileID(id))
	old := time.Now().Add(-24 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatalf("the delivery's lock on the share: %v", err)
	}
}
