package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
)

// wantWithdraw withdraws d by a and wants the outcome want; what names the
// call in the failure.
func wantWithdraw(t *testing.T, a *Adapter, d adapters.Delivery, want adapters.WithdrawOutcome, what string) adapters.Withdrawal {
	t.Helper()
	w, err := a.Withdraw(t.Context(), d)
	if err != nil || w.Outcome != want {
		t.Fatalf("%s: %+v %v, want %s", what, w, err, want)
	}
	return w
}

// beginWithdrawal hands d over and leaves its withdrawal begun, as a crash
// between the withdrawal's steps would: the record says withdrawing, the case
// folder renamed to its withdrawal name or not. It returns the case folder's
// name.
func beginWithdrawal(t *testing.T, a *Adapter, dir string, d adapters.Delivery, renamed bool) string {
	t.Helper()
	c := handOverQuietly(t, a, d)
	fid := fileID(d.ID)
	rec, err := readLedger(dir, fid)
	if err != nil {
		t.Fatal(err)
	}
	rec.WithdrawnCase, rec.Case = rec.Case, ""
	if err := writeLedger(dir, fid, rec); err != nil {
		t.Fatal(err)
	}
	if renamed {
		if err := os.Rename(filepath.Join(dir, c.Reference), withdrawalPath(dir, fid)); err != nil {
			t.Fatal(err)
		}
	}
	return c.Reference
}

// handedOverCase is a delivery of a fresh office folder handed over by a
// fresh adapter: the start of most withdrawal tests.
func handedOverCase(t *testing.T, name, submission string) (string, *Adapter, adapters.Delivery, adapters.Confirmation) {
	t.Helper()
	dir := officeFolder(t)
	a := newAdapter(t)
	d := realDelivery(dir, name, submission)
	return dir, a, d, handOverQuietly(t, a, d)
}

// officeCopy is what the office's import sees of delivery d in dir: the case
// folder's name, or "" when there is none (dot names are the gateway's and the
// import ignores them, docs/transfer.md).
func officeCopy(t *testing.T, dir string, d adapters.Delivery) string {
	t.Helper()
	for _, name := range cases(t, dir) {
		if owner, _ := caseOwner(filepath.Join(dir, name)); owner == d.ID {
			return name
		}
	}
	return ""
}

// entries lists every name in dir but the ledger folder.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != LedgerDir {
			out = append(out, e.Name())
		}
	}
	return out
}

// withdrawnForGood fails the test unless delivery d counts as withdrawn: no
// confirmation, no hand-over, and a new attempt hands nothing over and says why.
func withdrawnForGood(t *testing.T, a *Adapter, dir string, d adapters.Delivery) {
	t.Helper()
	if c, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Errorf("Confirmed after the withdrawal: %+v %v %v, want not confirmed", c, ok, err)
	}
	if c, ok, err := a.HandedOver(t.Context(), d); ok || err != nil {
		t.Errorf("HandedOver after the withdrawal: %+v %v %v, want none", c, ok, err)
	}
	d.Attempt++
	_, err := a.Deliver(t.Context(), d)
	if !errors.Is(err, adapters.ErrWithdrawn) || !adapters.IsPermanent(err) {
		t.Errorf("Deliver after the withdrawal: %v, want a permanent failure wrapping ErrWithdrawn", err)
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Errorf("the office folder after the withdrawal holds %v, want nothing of the case", got)
	}
}

// TestWithdrawUntakenCase: an erasure of a case whose folder waits for the
// import removes the folder: nothing of it is left in the office folder (no
// case folder, no withdrawal name, no temporary folder), the ledger says
// withdrawn, the case is never confirmed or handed over again, and a repeated
// Withdraw answers "removed before" and changes nothing.
func TestWithdrawUntakenCase(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	d := realDelivery(dir, "dlv-withdraw", "4c1f0e52-0000-4000-8000-000000000080")
	other := realDelivery(dir, "dlv-stays", "4c1f0e52-0000-4000-8000-000000000081")
	c := handOverQuietly(t, a, d)
	oc := handOverQuietly(t, a, other)
	if officeCopy(t, dir, d) != c.Reference {
		t.Fatal("the case folder is not there to withdraw: the test would prove nothing")
	}
	w, err := a.Withdraw(t.Context(), d)
	if err != nil || w.Outcome != adapters.WithdrawRemoved || w.Reference != c.Reference {
		t.Fatalf("Withdraw of an untaken case: %+v %v, want removed %s", w, err, c.Reference)
	}
	if got := entries(t, dir); len(got) != 1 || got[0] != oc.Reference {
		t.Fatalf("office folder after the withdrawal: %v, want only the other case %s", got, oc.Reference)
	}
	checkCase(t, dir, oc.Reference, other)
	var rec map[string]any
	if err := json.Unmarshal(ledgerBytes(t, dir, d), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["withdrawn_case"] != c.Reference || rec["withdrawn_at"] == nil || rec["case"] != nil && rec["case"] != "" {
		t.Errorf("ledger record after the withdrawal: %v", rec)
	}
	before := ledgerBytes(t, dir, d)
	w, err = a.Withdraw(t.Context(), d)
	if err != nil || w.Outcome != adapters.WithdrawnBefore || w.Reference != c.Reference {
		t.Fatalf("repeated Withdraw: %+v %v, want removed before", w, err)
	}
	if after := ledgerBytes(t, dir, d); string(after) != string(before) {
		t.Errorf("a repeated Withdraw rewrote the ledger: %s (was %s)", after, before)
	}
	// The other delivery's folder is no business of d's withdrawal.
	if got := entries(t, dir); len(got) != 1 {
		t.Fatalf("office folder: %v", got)
	}
	if err := os.RemoveAll(filepath.Join(dir, oc.Reference)); err != nil { // its import
		t.Fatal(err)
	}
	withdrawnForGood(t, a, dir, d)
}

// TestWithdrawTakesTheCrashedAttemptsLeftovers: an attempt killed before its
// rename leaves its temporary folder with the whole case in it, and its
// pending record; one killed before the pending record leaves the folder
// alone. Both hold the applicant's data, and the withdrawal removes them; the
// case is then never written (no later attempt may put it into the share).
func TestWithdrawTakesTheCrashedAttemptsLeftovers(t *testing.T) {
	t.Run("pending record", func(t *testing.T) {
		dir := officeFolder(t)
		runChildAndKill(t, "before", dir)
		d := crashDelivery(dir)
		if len(temps(t, dir)) != 1 {
			t.Fatalf("the crash left temporary folders %v, want one", temps(t, dir))
		}
		a := newAdapter(t)
		w, err := a.Withdraw(t.Context(), d)
		if err != nil || w.Outcome != adapters.WithdrawRemoved || !w.Leftovers || w.Reference != "" {
			t.Fatalf("Withdraw after a crash before the rename: %+v %v, want the leftovers removed", w, err)
		}
		withdrawnForGood(t, a, dir, d)
	})
	t.Run("no record", func(t *testing.T) {
		dir := officeFolder(t)
		a := newAdapter(t)
		d := realDelivery(dir, "dlv-tmp-only", "4c1f0e52-0000-4000-8000-000000000082")
		tmp := filepath.Join(dir, TempPrefix+fileID(d.ID))
		mustMkdir(t, filepath.Join(tmp, AttachmentsDir))
		if err := os.WriteFile(filepath.Join(tmp, PackageFile), []byte("<Antrag>Iris Hübner</Antrag>"), 0o640); err != nil {
			t.Fatal(err)
		}
		w, err := a.Withdraw(t.Context(), d)
		if err != nil || w.Outcome != adapters.WithdrawRemoved || !w.Leftovers {
			t.Fatalf("Withdraw of a temporary folder without a record: %+v %v", w, err)
		}
		withdrawnForGood(t, a, dir, d)
	})
	t.Run("nothing", func(t *testing.T) {
		dir := officeFolder(t)
		a := newAdapter(t)
		d := realDelivery(dir, "dlv-never-here", "4c1f0e52-0000-4000-8000-000000000083")
		wantWithdraw(t, a, d, adapters.WithdrawNothing, "Withdraw of a delivery never handed over here")
		if _, err := os.Stat(ledgerPath(dir, fileID(d.ID))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Withdraw of nothing wrote a ledger record: %v", err)
		}
	})
}

// TestWithdrawLeavesWhatTheOfficeTook: a case folder the import moved away,
// deleted or marked is the office's: the withdrawal says "taken", leaves the
// office's copy whole, and the confirmation still counts.
func TestWithdrawLeavesWhatTheOfficeTook(t *testing.T) {
	for _, by := range []string{"move", "delete", "marker"} {
		t.Run(by, func(t *testing.T) {
			dir := officeFolder(t)
			a := newAdapter(t)
			r := &folderReceiver{dir: dir, importDir: filepath.Join(t.TempDir(), "imported"), importBy: by, seen: map[string]*seenCase{}}
			mustMkdir(t, r.importDir)
			d := realDelivery(dir, "dlv-taken-"+by, "4c1f0e52-0000-4000-8000-000000000084")
			c := handOverQuietly(t, a, d)
			r.Confirm(t, d.ID)
			for i := range 2 { // and asked again: the same answer
				w, err := a.Withdraw(t.Context(), d)
				if err != nil || w.Outcome != adapters.WithdrawTaken || w.Reference != c.Reference {
					t.Fatalf("Withdraw #%d of a case the office took (%s): %+v %v, want taken", i+1, by, w, err)
				}
			}
			switch by {
			case "move":
				checkCase(t, r.importDir, c.Reference, d)
			case "marker":
				checkCase(t, dir, c.Reference, d)
			}
			if _, ok, err := a.Confirmed(t.Context(), d); !ok || err != nil {
				t.Errorf("Confirmed of a case the office took before the withdrawal: %v %v, want confirmed", ok, err)
			}
		})
	}
}

// TestWithdrawRacingThePickup: the office's import takes the case folder at
// the moment of the withdrawal, held there by the adapter's hooks — no
// sleeps. Whichever comes first wins whole: an import that moves the folder
// just before the withdrawal's rename keeps it whole and the withdrawal says
// "taken"; a marker written just before the rename has the folder put back
// whole; an import that looks just after the rename finds no case folder,
// never a half-removed one.
func TestWithdrawRacingThePickup(t *testing.T) {
	t.Run("moved just before the rename", func(t *testing.T) {
		dir := officeFolder(t)
		a := newAdapter(t)
		imported := t.TempDir()
		d := realDelivery(dir, "dlv-race-move", "4c1f0e52-0000-4000-8000-000000000085")
		c := handOverQuietly(t, a, d)
		a.beforeWithdrawRename = func(caseDir string) {
			if err := os.Rename(caseDir, filepath.Join(imported, filepath.Base(caseDir))); err != nil {
				t.Errorf("the office's move: %v", err)
			}
		}
		wantWithdraw(t, a, d, adapters.WithdrawTaken, "Withdraw losing to the office's move")
		checkCase(t, imported, c.Reference, d)
		if _, ok, err := a.Confirmed(t.Context(), d); !ok || err != nil {
			t.Errorf("Confirmed after the office's move won: %v %v, want confirmed", ok, err)
		}
	})
	t.Run("marked just before the rename", func(t *testing.T) {
		dir := officeFolder(t)
		a := newAdapter(t)
		d := realDelivery(dir, "dlv-race-marker", "4c1f0e52-0000-4000-8000-000000000086")
		c := handOverQuietly(t, a, d)
		a.beforeWithdrawRename = func(caseDir string) {
			if err := os.WriteFile(caseDir+MarkerSuffix, nil, 0o640); err != nil {
				t.Errorf("the office's marker: %v", err)
			}
		}
		wantWithdraw(t, a, d, adapters.WithdrawTaken, "Withdraw losing to the office's marker")
		checkCase(t, dir, c.Reference, d)
		if got := entries(t, dir); len(got) != 2 { // the case folder and its marker
			t.Errorf("office folder: %v, want the case folder and its marker only", got)
		}
		if _, ok, err := a.Confirmed(t.Context(), d); !ok || err != nil {
			t.Errorf("Confirmed after the office's marker won: %v %v, want confirmed", ok, err)
		}
	})
	t.Run("import looks just after the rename", func(t *testing.T) {
		dir := officeFolder(t)
		a := newAdapter(t)
		imported := t.TempDir()
		d := realDelivery(dir, "dlv-race-late", "4c1f0e52-0000-4000-8000-000000000087")
		c := handOverQuietly(t, a, d)
		looked := false
		a.afterWithdrawRename = func(hidden string) {
			looked = true
			if got := officeCopy(t, dir, d); got != "" {
				t.Errorf("the import sees case folder %s after the withdrawal's rename", got)
			}
			err := os.Rename(filepath.Join(dir, c.Reference), filepath.Join(imported, c.Reference))
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the office's move after the withdrawal's rename: %v, want not there", err)
			}
			if _, err := os.Stat(filepath.Join(hidden, PackageFile)); err != nil {
				t.Errorf("the folder under its withdrawal name is not whole: %v", err)
			}
		}
		w, err := a.Withdraw(t.Context(), d)
		if err != nil || w.Outcome != adapters.WithdrawRemoved || !looked {
			t.Fatalf("Withdraw winning the race: %+v %v (hook ran: %v), want removed", w, err, looked)
		}
		if ents, _ := os.ReadDir(imported); len(ents) != 0 {
			t.Errorf("the office got %v", ents)
		}
		withdrawnForGood(t, a, dir, d)
	})
}

// TestWithdrawalCutShortIsFinished: a withdrawal stopped between its steps (a
// crash, a share gone) leaves its record begun; the repeated Withdraw tells
// from the folders how far it came and finishes it — or, when the office took
// the case folder meanwhile, puts the hand-over's record back so that the
// import's confirmation counts.
func TestWithdrawalCutShortIsFinished(t *testing.T) {
	for _, renamed := range []bool{false, true} {
		name := map[bool]string{false: "before the rename", true: "after the rename"}[renamed]
		t.Run(name, func(t *testing.T) {
			dir := officeFolder(t)
			a := newAdapter(t)
			d := realDelivery(dir, "dlv-cut-short", "4c1f0e52-0000-4000-8000-000000000088")
			ref := beginWithdrawal(t, a, dir, d, renamed)
			if _, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
				t.Fatalf("Confirmed of a begun withdrawal: %v %v, want not confirmed", ok, err)
			}
			w, err := a.Withdraw(t.Context(), d)
			if err != nil || w.Outcome != adapters.WithdrawRemoved || w.Reference != ref {
				t.Fatalf("Withdraw finishing a withdrawal cut short %s: %+v %v", name, w, err)
			}
			withdrawnForGood(t, a, dir, d)
		})
	}
	t.Run("taken meanwhile", func(t *testing.T) {
		dir := officeFolder(t)
		a := newAdapter(t)
		imported := t.TempDir()
		d := realDelivery(dir, "dlv-cut-short-taken", "4c1f0e52-0000-4000-8000-000000000089")
		ref := beginWithdrawal(t, a, dir, d, false)
		if err := os.Rename(filepath.Join(dir, ref), filepath.Join(imported, ref)); err != nil {
			t.Fatal(err)
		}
		wantWithdraw(t, a, d, adapters.WithdrawTaken, "Withdraw of a begun withdrawal whose case the office took")
		checkCase(t, imported, ref, d)
		if _, ok, err := a.Confirmed(t.Context(), d); !ok || err != nil {
			t.Errorf("Confirmed: %v %v, want the office's take confirmed", ok, err)
		}
	})
}

// TestWithdrawFromAnUnreachableShare: with the share unmounted the office
// folder is the bare mount point; no ledger, no case folder, and that is
// neither "taken" nor "nothing": the withdrawal fails transiently and writes
// nothing there. Mounted again, the repeat removes the case folder.
func TestWithdrawFromAnUnreachableShare(t *testing.T) {
	dir, a, d, _ := handedOverCase(t, "dlv-withdraw-unmounted", "4c1f0e52-0000-4000-8000-00000000008a")
	remount := unmountShare(t, dir)
	untouched := watchUntouched(t, dir)
	w, err := a.Withdraw(t.Context(), d)
	if err == nil || adapters.IsPermanent(err) || adapters.PublicReason(err) != ReasonMissing {
		t.Fatalf("Withdraw from the bare mount point: %+v %v, want a transient %q", w, err, ReasonMissing)
	}
	untouched("Withdraw from the bare mount point")
	remount()
	wantWithdraw(t, a, d, adapters.WithdrawRemoved, "Withdraw with the share back")
	withdrawnForGood(t, a, dir, d)
}

// TestWithdrawWaitsNoLongerThanItsContext: an attempt of the delivery holds
// its lock (writing a large case, or hung on the share): the withdrawal waits
// for it only as long as its context lets it, and then removed nothing.
func TestWithdrawWaitsNoLongerThanItsContext(t *testing.T) {
	dir, a, d, c := handedOverCase(t, "dlv-withdraw-locked", "4c1f0e52-0000-4000-8000-00000000008b")
	unlock := a.lock(d.ID)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := a.Withdraw(ctx, d)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Withdraw behind a held lock: %v, want the context's deadline", err)
		}
	case <-time.After(30 * time.Second): // a hang, not a speed
		t.Fatal("Withdraw waits for the attempt's lock beyond its context")
	}
	unlock()
	if officeCopy(t, dir, d) != c.Reference {
		t.Error("the case folder went although the withdrawal gave up")
	}
	wantWithdraw(t, a, d, adapters.WithdrawRemoved, "Withdraw once the attempt is done")
}

// TestWithdrawalRecordRefusedByOlderVersions: a withdrawal record names no
// "case", so a gateway of a version before withdrawals (which knows only case
// and pending_case) refuses it as it refuses a pending one, instead of taking
// the folder it no longer finds for the import's confirmation.
func TestWithdrawalRecordRefusedByOlderVersions(t *testing.T) {
	dir, a, d, _ := handedOverCase(t, "dlv-withdraw-old", "4c1f0e52-0000-4000-8000-00000000008c")
	if _, err := a.Withdraw(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	b := ledgerBytes(t, dir, d)
	var old struct { // what an older version reads of it
		Case        string `json:"case"`
		PendingCase string `json:"pending_case"`
	}
	if err := json.Unmarshal(b, &old); err != nil || old.Case != "" || old.PendingCase != "" {
		t.Errorf("withdrawal record names a case an older version would take for handed over or pending (%v): %s", err, b)
	}
}

// TestStaleWithdrawalLeftovers: the cleanup of day-old temporary folders after
// a delivery takes the leftover of a withdrawal that is done (its removal
// failed), but not the folder of a withdrawal only begun: that one is the
// proof that the rename happened. Taken away, the repeated withdrawal found
// neither the case folder nor the withdrawal name, took the case for taken by
// the office and put its hand-over back — signed as delivered, an erased case
// the office never had.
func TestStaleWithdrawalLeftovers(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	past := time.Now().Add(-48 * time.Hour)
	age := func(p string) {
		t.Helper()
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
	}
	begun := realDelivery(dir, "dlv-begun-long-ago", "4c1f0e52-0000-4000-8000-00000000008d")
	beginWithdrawal(t, a, dir, begun, true)
	fid := fileID(begun.ID)
	age(withdrawalPath(dir, fid))

	done := realDelivery(dir, "dlv-done-long-ago", "4c1f0e52-0000-4000-8000-00000000008e")
	handOverQuietly(t, a, done)
	wantWithdraw(t, a, done, adapters.WithdrawRemoved, "Withdraw")
	left := withdrawalPath(dir, fileID(done.ID)) // its removal failed, say
	mustMkdir(t, filepath.Join(left, AttachmentsDir))
	age(left)

	// One done whose removal failed and whose record was pruned since: only
	// the cleanup can still take the applicant's data out of the share.
	pruned := realDelivery(dir, "dlv-pruned-long-ago", "4c1f0e52-0000-4000-8000-000000000093")
	handOverQuietly(t, a, pruned)
	wantWithdraw(t, a, pruned, adapters.WithdrawRemoved, "Withdraw")
	orphan := withdrawalPath(dir, fileID(pruned.ID))
	mustMkdir(t, filepath.Join(orphan, AttachmentsDir))
	age(orphan)
	if err := os.Remove(ledgerPath(dir, fileID(pruned.ID))); err != nil {
		t.Fatal(err)
	}

	if _, err := a.Deliver(t.Context(), realDelivery(dir, "dlv-next", "4c1f0e52-0000-4000-8000-00000000008f")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the leftover of a withdrawal done stays: %v", err)
	}
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the leftover of a withdrawal whose record was pruned stays: %v", err)
	}
	if _, err := os.Stat(withdrawalPath(dir, fid)); err != nil {
		t.Fatalf("the folder of a withdrawal only begun was removed: %v", err)
	}
	wantWithdraw(t, a, begun, adapters.WithdrawRemoved, "Withdraw finishing the old one")
}

// TestWithdrawalRecordsPruned: the record of a withdrawal done goes
// LedgerKeep after the withdrawal, as a confirmed case's does after its
// confirmation (the erased case is never delivered or confirmed again); one
// only begun stays, for the repeated withdrawal to settle by.
func TestWithdrawalRecordsPruned(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	long := a.keep + time.Hour
	past := time.Now().Add(-long)
	for id, doneAt := range map[string]time.Time{"dlv-withdrawn-done": past, "dlv-withdrawn-begun": {}} {
		if err := writeLedger(dir, id, &ledgerRecord{DeliveryID: id, WithdrawnCase: "20261129-" + id, WrittenAt: past, WithdrawnAt: doneAt}); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(ledgerPath(dir, id), past, past); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if !a.pruneEntry(dir, "dlv-withdrawn-done.json", now, now) {
		t.Error("the record of a withdrawal done longer than the keep ago stays")
	}
	if a.pruneEntry(dir, "dlv-withdrawn-begun.json", now, now) {
		t.Error("the record of a withdrawal only begun was removed")
	}
	if _, err := os.Stat(ledgerPath(dir, "dlv-withdrawn-begun")); err != nil {
		t.Errorf("begun withdrawal's record: %v", err)
	}
}

// TestWithdrawACaseFolderWithoutRecord: a case folder renamed into place by a
// version without pending records that crashed before writing its record has
// no ledger record; Deliver adopts it by its index.json. The withdrawal finds
// it the same way and removes it — unless it is marked imported (a record
// pruned after the confirmation leaves such a folder): that one is the
// office's, and the answer says "taken".
func TestWithdrawACaseFolderWithoutRecord(t *testing.T) {
	for _, marked := range []bool{false, true} {
		name := map[bool]string{false: "unmarked", true: "marked"}[marked]
		t.Run(name, func(t *testing.T) {
			dir := officeFolder(t)
			a := newAdapter(t)
			d := realDelivery(dir, "dlv-no-record-"+name, "4c1f0e52-0000-4000-8000-000000000090")
			c := handOverQuietly(t, a, d)
			if err := os.Remove(ledgerPath(dir, fileID(d.ID))); err != nil {
				t.Fatal(err)
			}
			if marked {
				if err := os.WriteFile(filepath.Join(dir, c.Reference)+MarkerSuffix, nil, 0o640); err != nil {
					t.Fatal(err)
				}
			}
			w, err := a.Withdraw(t.Context(), d)
			if marked {
				if err != nil || w.Outcome != adapters.WithdrawTaken || w.Reference != c.Reference {
					t.Fatalf("Withdraw of a marked case folder without record: %+v %v, want taken", w, err)
				}
				checkCase(t, dir, c.Reference, d)
				return
			}
			if err != nil || w.Outcome != adapters.WithdrawRemoved || w.Reference != c.Reference {
				t.Fatalf("Withdraw of a case folder without record: %+v %v, want removed %s", w, err, c.Reference)
			}
			withdrawnForGood(t, a, dir, d)
		})
	}
}

// TestRefusedRenameKeepsTheHandOver: the file server refuses the
// withdrawal's rename (an SMB server refuses to rename a folder the import has
// open; here the case folder is a mount point, which Linux refuses to rename
// with EBUSY). The withdrawal fails transiently, and the ledger says handed
// over again, not withdrawing: the case folder is as it was, and an import
// taking it meanwhile still counts. The repeated withdrawal removes it.
func TestRefusedRenameKeepsTheHandOver(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("a case folder that cannot be renamed needs a mount (root; CI runs as root)")
	}
	dir, a, d, c := handedOverCase(t, "dlv-rename-refused", "4c1f0e52-0000-4000-8000-000000000091")
	caseDir := filepath.Join(dir, c.Reference)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", caseDir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	mounted := true
	unmount := func() {
		if mounted {
			if out, err := exec.Command("umount", caseDir).CombinedOutput(); err != nil {
				t.Errorf("umount: %v %s", err, out)
			}
			mounted = false
		}
	}
	defer unmount()
	w, err := a.Withdraw(t.Context(), d)
	if err == nil || adapters.IsPermanent(err) || !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("Withdraw of a folder the server will not rename: %+v %v, want a transient failure wrapping EBUSY", w, err)
	}
	if c2, ok, err := a.HandedOver(t.Context(), d); !ok || err != nil || c2.Reference != c.Reference {
		t.Errorf("HandedOver after the refused rename: %+v %v %v, want the hand-over as it was", c2, ok, err)
	}
	if _, err := os.Stat(withdrawalPath(dir, fileID(d.ID))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a withdrawal name after the refused rename: %v", err)
	}
	unmount()
	wantWithdraw(t, a, d, adapters.WithdrawRemoved, "Withdraw once the server renames again")
	withdrawnForGood(t, a, dir, d)
}

// TestRenameDoneButReportedNotThere: a network file system may do a rename
// and answer "not there" (NFS: the reply to the rename is lost, the client
// sends it again, and the server, which did it, finds no source the second
// time). The case folder lies under its withdrawal name then, not with the
// office: the withdrawal finishes it. Taken for the office's move, it put the
// hand-over's record back, Confirmed signed a Zustellbestaetigung for the
// folder "gone", and the applicant's data stayed in the share under the
// withdrawal name for good (the day-old cleanup takes only a withdrawal
// recorded done).
func TestRenameDoneButReportedNotThere(t *testing.T) {
	dir, a, d, c := handedOverCase(t, "dlv-rename-echo", "4c1f0e52-0000-4000-8000-000000000092")
	a.beforeWithdrawRename = func(caseDir string) {
		// The server's rename of the first request; the adapter's own call
		// is the retransmission, answered ENOENT.
		if err := os.Rename(caseDir, withdrawalPath(dir, fileID(d.ID))); err != nil {
			t.Errorf("the server's rename: %v", err)
		}
	}
	w, err := a.Withdraw(t.Context(), d)
	if err != nil || w.Outcome != adapters.WithdrawRemoved || w.Reference != c.Reference {
		t.Fatalf("Withdraw whose rename was done and reported not there: %+v %v, want removed", w, err)
	}
	withdrawnForGood(t, a, dir, d)
}

// TestTwoGatewaysWithdrawTogether: two gateways of a cluster share the
// office's folder: an erasure asked again on the other gateway (a client that
// gave up waiting), or a late case folder's withdrawal beside an operator's
// erasure, withdraw the same case folder at once. The delivery's lock on the
// share (sharelock.go) lets one at a time: the other waits, then finds the
// withdrawal done and answers "removed before". (Before the lock, the one
// whose rename found the folder gone because the other had withdrawn it put
// the hand-over's record back over the other's "done" unless takenFirst looked
// again; that look stays for a gateway of an older build.)
func TestTwoGatewaysWithdrawTogether(t *testing.T) {
	t.Run("the other withdraws it just before the rename", func(t *testing.T) {
		dir := officeFolder(t)
		a, b := newAdapter(t), newAdapter(t)
		d := realDelivery(dir, "dlv-two-rename", "4c1f0e52-0000-4000-8000-000000000093")
		c := handOverQuietly(t, a, d)
		var (
			bw   adapters.Withdrawal
			berr error
			done = make(chan struct{})
			wait = make(chan struct{}, 1)
		)
		b.shareLockWaits = func(string) {
			select {
			case wait <- struct{}{}:
			default:
			}
		}
		a.beforeWithdrawRename = func(string) {
			go func() {
				defer close(done)
				bw, berr = b.Withdraw(t.Context(), d)
			}()
			select {
			case <-wait:
			case <-done:
			}
		}
		w, err := a.Withdraw(t.Context(), d)
		<-done
		if err != nil || w.Outcome != adapters.WithdrawRemoved || w.Reference != c.Reference {
			t.Fatalf("Withdraw: %+v %v, want removed", w, err)
		}
		if berr != nil || bw.Outcome != adapters.WithdrawnBefore || bw.Reference != c.Reference {
			t.Fatalf("the other gateway's Withdraw at the same time: %+v %v, want removed before", bw, berr)
		}
		withdrawnForGood(t, a, dir, d)
		withdrawnForGood(t, b, dir, d)
	})
}
