package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
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

// TestExpiredLockTakenOver: a lock on the share left by a crashed gateway
// (not written for longer than the lease, by the file server's clock) is
// taken over by the next withdrawal; a live one (written just now) is not, and
// the withdrawal waits for it only until its context ends, removing nothing.
func TestExpiredLockTakenOver(t *testing.T) {
	dir, a, d, c := handedOverCase(t, "dlv-lock-left", "4c1f0e52-0000-4000-8000-0000000000c0")
	crashed := newAdapter(t) // another gateway, whose attempt dies holding the lock
	if _, err := crashed.lockShare(t.Context(), dir, fileID(d.ID), "attempt", true); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	a.shareLockWaits = func(string) { cancel() } // waiting is the answer
	if w, err := a.Withdraw(ctx, d); !errors.Is(err, context.Canceled) {
		t.Fatalf("Withdraw behind a live lock on the share: %+v %v, want it to wait until its context ends", w, err)
	}
	if officeCopy(t, dir, d) != c.Reference {
		t.Fatal("the case folder went although the withdrawal waited for the lock")
	}

	a.shareLockWaits = func(string) { t.Error("a withdrawal waits for an expired lock") }
	expireLock(t, dir, d.ID)
	wantWithdraw(t, a, d, adapters.WithdrawRemoved, "Withdraw behind an expired lock")
	withdrawnForGood(t, a, dir, d)
	if _, err := os.Lstat(lockPath(dir, fileID(d.ID))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file after the withdrawal that took it over: %v, want none", err)
	}
}

// TestHungOwnerGivesTheLockUp: an attempt on gateway b holds the lock and
// hangs (a share mounted hard whose server stopped answering b) before its
// pending record. Its lease runs out unrenewed: gateway a's erasure takes the
// lock over and withdraws the temporary folder. When b goes on, it counts its
// lease as lost by its own clock and writes nothing more into the ledger:
// no pending record over the withdrawal's, no rename, no hand-over.
func TestHungOwnerGivesTheLockUp(t *testing.T) {
	for _, step := range []string{"pending", "rename"} {
		t.Run(step, func(t *testing.T) {
			dir := officeFolder(t)
			a, b := newAdapter(t), newAdapter(t)
			d := realDelivery(dir, "dlv-hung-"+step, "4c1f0e52-0000-4000-8000-0000000000c1")
			var bclock testClock
			bclock.Set(time.Now())
			b.leaseNow = bclock.Now
			hang := func() {
				// The hang: no renewal reached the server for longer than
				// the lease, and b's clock went on as long.
				expireLock(t, dir, d.ID)
				bclock.Set(bclock.Now().Add(b.lease))
				if _, err := a.Withdraw(t.Context(), d); err != nil {
					t.Errorf("Withdraw while the owner of the lock hangs: %v", err)
				}
			}
			if step == "pending" {
				b.atStep = func(s, _ string) {
					if s == "pending" {
						hang()
					}
				}
			} else {
				b.beforeRename = func(string) { hang() }
			}
			if _, err := b.Deliver(t.Context(), d); !errors.Is(err, errLeaseLost) {
				t.Errorf("Deliver whose lease ran out while it hung: %v, want it to give up (errLeaseLost)", err)
			}
			b.atStep, b.beforeRename, b.leaseNow = nil, nil, time.Now
			withdrawnForGood(t, a, dir, d)
			withdrawnForGood(t, b, dir, d)
		})
	}
}

// TestOldLockFilesPruned: the ledger's pruning removes a lock file a day old
// by the file server's clock, and leaves a live one and the record of a
// delivery whose lock is held.
func TestOldLockFilesPruned(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	if _, err := a.lockShare(t.Context(), dir, "dlv-old", "attempt", true); err != nil {
		t.Fatal(err)
	}
	expireLock(t, dir, "dlv-old")
	live, err := a.lockShare(t.Context(), dir, "dlv-live", "attempt", true)
	if err != nil {
		t.Fatal(err)
	}
	defer live.release()
	now := time.Now()
	if !a.pruneEntry(dir, lockPrefix+"dlv-old", now, now) {
		t.Error("a day-old lock file stayed")
	}
	if a.pruneEntry(dir, lockPrefix+"dlv-live", now, now) {
		t.Error("the pruning removed a live lock file")
	}
	if _, err := os.Lstat(lockPath(dir, "dlv-live")); err != nil {
		t.Errorf("live lock file: %v", err)
	}
}

// TestConfirmedDuringAWithdrawalOnAnotherGateway: the confirmation question on
// gateway a has read the hand-over's record when gateway b's erasure
// withdraws the case folder. a finds the folder gone: that is the withdrawal,
// not the import, and the withdrawal record stays.
func TestConfirmedDuringAWithdrawalOnAnotherGateway(t *testing.T) {
	dir, a, d, _ := handedOverCase(t, "dlv-confirm-race", "4c1f0e52-0000-4000-8000-0000000000c2")
	b := newAdapter(t)
	a.beforeCaseCheck = func() {
		a.beforeCaseCheck = nil
		wantWithdraw(t, b, d, adapters.WithdrawRemoved, "the other gateway's Withdraw")
	}
	if c, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Fatalf("Confirmed while another gateway withdrew the case: %+v %v %v, want not confirmed", c, ok, err)
	}
	withdrawnForGood(t, a, dir, d)
	withdrawnForGood(t, b, dir, d)
}
