package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
)

// Withdrawing a case folder (adapters.Withdrawer). An erasure (Art. 17 DSGVO, a
// withdrawn application) removes the bytes from the gateway's store; the case
// folder waiting in the office's share for its import is the one copy outside it,
// readable by everyone with access to the share, and an import that came later
// would process an application that no longer exists. Withdraw removes it, unless
// the office took it first.
//
// The office takes a case folder by moving or deleting it, or by writing the
// marker "<case folder>.ok" next to it (docs/transfer.md). The withdrawal
// renames the case folder, within the office folder, to withdrawalPrefix+<file
// id> first, and removes it only under that name. A rename within one folder is
// atomic on every file system the channel runs on (the case's own hand-over
// relies on it): the office's move and the withdrawal's rename of the same name
// have one winner. If the office's wins, the withdrawal's fails with "not there",
// and the case is the office's; if the withdrawal's wins, the office's import
// finds no case folder, never one half removed. The withdrawal name begins with
// TempPrefix, which the import ignores (docs/transfer.md), so the folder is out of
// the import's sight from the rename on; removeStaleTemps takes what a crash
// leaves of it a day later, should no repeated erasure come first.
//
// The ledger says what happened, so that the broker never records the case as
// delivered: before the rename its record becomes a withdrawal record (Case
// moves to WithdrawnCase, which an older version refuses), and once the folder
// is out of sight it gets WithdrawnAt. A withdrawal record is no hand-over to
// Confirmed, HandedOver and Deliver. The rename happens only after the record
// says "begun", and the folder under its withdrawal name goes only after the
// record says "done"; so a repeated Withdraw tells from the folders what a
// crash in between left (settleWithdrawal): the withdrawal name there means the
// rename happened, the case folder there means it did not, neither means the
// office took the case folder first (and the hand-over's record is put back, so
// that its confirmation counts).

// withdrawalPrefix begins the name a case folder is renamed to when it is
// withdrawn. "~" is no character of a file id (fileID), so the name can never be
// an attempt's temporary folder.
const withdrawalPrefix = TempPrefix + "withdrawn~"

// withdrawalPath is where the case folder of delivery fid lies once withdrawn.
func withdrawalPath(dir, fid string) string { return filepath.Join(dir, withdrawalPrefix+fid) }

// lockCtx takes delivery id's lock, waiting at most until ctx ends: an attempt
// of the delivery may hold it for as long as it writes a large case (or, on a
// hung share, for ever), and an erasure must not hang with it.
func (a *Adapter) lockCtx(ctx context.Context, id string) (func(), error) {
	wait := time.Millisecond
	for {
		if unlock, ok := a.tryLock(id); ok {
			return unlock, nil
		}
		if err := pause(ctx, &wait, 50*time.Millisecond); err != nil {
			return nil, fmt.Errorf("transfer: wait for an attempt of the delivery: %w", err)
		}
	}
}

// pause waits *delay, or until ctx ends (its error), and doubles *delay up to
// most: the wait between two looks at a lock another holds.
func pause(ctx context.Context, delay *time.Duration, most time.Duration) error {
	t := time.NewTimer(*delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	*delay = min(2**delay, most)
	return nil
}

// Withdraw implements adapters.Withdrawer (see the comment at the top).
func (a *Adapter) Withdraw(ctx context.Context, d adapters.Delivery) (adapters.Withdrawal, error) {
	if err := a.gate.Begin(ctx, "transfer"); err != nil {
		return adapters.Withdrawal{}, err
	}
	defer a.gate.Leave()
	dir, err := officeDir(d.Target)
	if err != nil {
		return adapters.Withdrawal{}, err
	}
	fid := fileID(d.ID)
	unlock, err := a.lockCtx(ctx, d.ID)
	if err != nil {
		return adapters.Withdrawal{}, err
	}
	defer unlock()
	if err := ctx.Err(); err != nil {
		return adapters.Withdrawal{}, fmt.Errorf("transfer: %w", err)
	}
	// The lock of this process keeps its own attempts of d out; the lock on
	// the share those of the other gateways of a cluster, whose attempt may
	// be past its last look at its context (sharelock.go). Waited for as the
	// lock above: at most until ctx ends.
	sl, err := a.lockShare(ctx, dir, fid, "withdrawal", true)
	if err != nil {
		a.log.Warn("transfer: withdrawal failed", "delivery", d.ID, "office", d.OfficeID, "folder", dir, "err", err)
		return adapters.Withdrawal{}, err
	}
	defer sl.release()
	w, err := a.withdraw(dir, fid, d, sl)
	if err != nil {
		a.log.Warn("transfer: withdrawal failed", "delivery", d.ID, "office", d.OfficeID, "folder", dir, "err", err)
		return adapters.Withdrawal{}, err
	}
	a.log.Info("transfer: withdrawal", "delivery", d.ID, "office", d.OfficeID, "folder", dir, "outcome", string(w.Outcome),
		"case", w.Reference, "leftovers_removed", w.Leftovers)
	return w, nil
}

// withdraw is Withdraw under the delivery's locks; sl is the one on the share,
// checked before each step that writes (sharelock.go).
func (a *Adapter) withdraw(dir, fid string, d adapters.Delivery, sl *shareLock) (adapters.Withdrawal, error) {
	rec, err := readLedger(dir, fid)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// No record: nothing handed over, unless the share is not there (an
		// unmounted share shows no records either). An attempt that crashed
		// before its pending record may have left its temporary folder.
		if err := statLedger(dir); err != nil {
			return adapters.Withdrawal{}, err
		}
		// A case folder of d may be there all the same, unmarked: renamed
		// into place by a version without pending records that crashed
		// before its record (Deliver adopts such a folder).
		name, marked, err := unrecordedCase(dir, d)
		switch {
		case err != nil:
			return adapters.Withdrawal{}, err
		case marked:
			// Confirmed, and its record pruned since: the office's.
			return adapters.Withdrawal{Outcome: adapters.WithdrawTaken, Reference: name}, nil
		case name != "":
			begun := &ledgerRecord{DeliveryID: d.ID, SubmissionID: d.SubmissionID, WithdrawnCase: name, WrittenAt: a.now()}
			if err := sl.check(); err != nil {
				return adapters.Withdrawal{}, err
			}
			if err := writeLedger(dir, fid, begun); err != nil {
				return adapters.Withdrawal{}, classify("write withdrawal ledger record", err)
			}
			return a.hideCase(dir, fid, begun, sl)
		}
		return a.withdrawLeftovers(dir, fid, d, caseBase(d), sl)
	case err != nil:
		return adapters.Withdrawal{}, classifyRead("read ledger", err)
	case rec.DeliveryID != d.ID:
		return adapters.Withdrawal{}, &Error{Reason: ReasonRead, Err: errors.New("ledger record belongs to another delivery id")}
	case rec.withdrawn():
		return a.settleWithdrawal(dir, fid, rec, sl)
	case rec.pending():
		renamed, err := pendingRenamed(dir, fid)
		if err != nil {
			return adapters.Withdrawal{}, classifyRead("look for temporary folder", err)
		}
		if !renamed {
			// Begun and not renamed: the case folder never reached the
			// import; its temporary folder holds the bytes.
			return a.withdrawLeftovers(dir, fid, d, rec.PendingCase, sl)
		}
		// Renamed: handed over, whether or not the hand-over was recorded.
		rec.Case, rec.PendingCase = rec.PendingCase, ""
	}
	if !rec.ConfirmedAt.IsZero() {
		return adapters.Withdrawal{Outcome: adapters.WithdrawTaken, Reference: rec.Case}, nil
	}
	taken, err := a.takenByOffice(dir, rec.Case)
	if err != nil || taken {
		return adapters.Withdrawal{Outcome: adapters.WithdrawTaken, Reference: rec.Case}, err
	}
	// Begun: from here the record is no hand-over, and the folders tell a
	// repeated Withdraw how far this one came.
	begun := *rec
	begun.WithdrawnCase, begun.Case = rec.Case, ""
	if err := sl.check(); err != nil {
		return adapters.Withdrawal{}, err
	}
	if err := writeLedger(dir, fid, &begun); err != nil {
		return adapters.Withdrawal{}, classify("write withdrawal ledger record", err)
	}
	return a.hideCase(dir, fid, &begun, sl)
}

// unrecordedCase finds a case folder of d without a ledger record as Deliver's
// adoption does (caseFolderOf), and whether it is marked imported; "" if
// there is none.
func unrecordedCase(dir string, d adapters.Delivery) (name string, marked bool, err error) {
	name, _, err = caseFolderOf(dir, d)
	if err != nil || name == "" {
		return "", false, classifyRead("look for case folder", err)
	}
	_, merr := os.Lstat(filepath.Join(dir, name) + MarkerSuffix)
	return name, merr == nil, nil
}

// takenByOffice reports whether the office took case folder name: marked it,
// or moved or deleted it. A share unmounted meanwhile shows no case folder
// either; that is an error, not a take.
func (a *Adapter) takenByOffice(dir, name string) (bool, error) {
	if mi, err := os.Lstat(filepath.Join(dir, name) + MarkerSuffix); err == nil && !mi.IsDir() {
		return true, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, classifyRead("look for marker", err)
	}
	_, err := os.Lstat(filepath.Join(dir, name))
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return false, classifyRead("look for case folder", err)
	}
	if err := statLedger(dir); err != nil {
		return false, err
	}
	return true, nil
}

// hideCase renames the case folder of a begun withdrawal rec out of the
// import's sight, and finishes the withdrawal; if the office took the case
// folder first, the hand-over's record is put back.
func (a *Adapter) hideCase(dir, fid string, rec *ledgerRecord, sl *shareLock) (adapters.Withdrawal, error) {
	name := rec.WithdrawnCase
	caseDir, hidden := filepath.Join(dir, name), withdrawalPath(dir, fid)
	if a.beforeWithdrawRename != nil {
		a.beforeWithdrawRename(caseDir)
	}
	if err := sl.check(); err != nil {
		return adapters.Withdrawal{}, err // begun: the repeat settles it
	}
	if err := os.Rename(caseDir, hidden); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			// Refused (an SMB server refuses to rename a folder the import
			// has open; permissions). With the case folder still under its
			// name and none under the withdrawal name, the rename did not
			// happen: the hand-over's record goes back, so that the office's
			// take still counts until a repeated erasure comes. Otherwise (a
			// network file system may report a rename it did as failed) the
			// record stays begun, and a repeated Withdraw tells which.
			werr := classify("rename case folder out of the import's sight", err)
			if _, cerr := os.Lstat(caseDir); cerr == nil {
				if _, herr := os.Lstat(hidden); errors.Is(herr, fs.ErrNotExist) {
					if _, berr := a.takenFirst(dir, fid, rec, sl); berr != nil {
						return adapters.Withdrawal{}, errors.Join(werr, berr)
					}
				}
			}
			return adapters.Withdrawal{}, werr
		}
		// Not there: the office's move or delete won, unless the rename
		// happened all the same (NFS answers a retransmitted rename it did
		// with "not there"): then the folder lies under its withdrawal name.
		if _, herr := os.Lstat(hidden); herr == nil {
			return a.finishWithdrawal(dir, fid, rec, sl)
		} else if !errors.Is(herr, fs.ErrNotExist) {
			return adapters.Withdrawal{}, classifyRead("look for withdrawn case folder", herr)
		}
		if err := statLedger(dir); err != nil {
			return adapters.Withdrawal{}, err
		}
		return a.takenFirst(dir, fid, rec, sl)
	}
	if a.afterWithdrawRename != nil {
		a.afterWithdrawRename(hidden)
	}
	return a.finishWithdrawal(dir, fid, rec, sl)
}

// finishWithdrawal finishes a begun withdrawal rec whose case folder lies under
// its withdrawal name: it puts the folder back if the office marked it imported
// meanwhile, otherwise records the withdrawal done and removes the folder.
func (a *Adapter) finishWithdrawal(dir, fid string, rec *ledgerRecord, sl *shareLock) (adapters.Withdrawal, error) {
	name := rec.WithdrawnCase
	caseDir, hidden := filepath.Join(dir, name), withdrawalPath(dir, fid)
	// A marker written before the rename won: a marking import reads the
	// case folder in place and then marks it, so the folder is the office's
	// copy. It goes back under its name, whole (the rename took nothing out
	// of it). A marker written after this look finds no folder by its name:
	// the import read it before the rename, and the answer below says
	// "removed" of a case the office may have read; nothing can tell that.
	if mi, err := os.Lstat(caseDir + MarkerSuffix); err == nil && !mi.IsDir() {
		if err := sl.check(); err != nil {
			return adapters.Withdrawal{}, err
		}
		if err := os.Rename(hidden, caseDir); err != nil {
			return adapters.Withdrawal{}, classify("put a marked case folder back", err)
		}
		if err := syncDir(dir); err != nil {
			return adapters.Withdrawal{}, classify("sync office folder", err)
		}
		return a.takenFirst(dir, fid, rec, sl)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return adapters.Withdrawal{}, classifyRead("look for marker", err)
	}
	if err := syncDir(dir); err != nil {
		return adapters.Withdrawal{}, classify("sync office folder", err)
	}
	done := *rec
	done.WithdrawnAt = a.now()
	if err := sl.check(); err != nil {
		return adapters.Withdrawal{}, err
	}
	if err := writeLedger(dir, fid, &done); err != nil {
		return adapters.Withdrawal{}, classify("write withdrawal ledger record", err)
	}
	left, err := removeWithdrawn(dir, fid)
	if err != nil {
		return adapters.Withdrawal{}, err
	}
	return adapters.Withdrawal{Outcome: adapters.WithdrawRemoved, Reference: name, Leftovers: left}, nil
}

// takenFirst puts the hand-over's record of a begun withdrawal rec back: the
// office took the case folder before the withdrawal could, and its
// confirmation counts (Confirmed); or the withdrawal's rename was refused, and
// the case folder is as handed over.
//
// Unless the record says the withdrawal is done: another gateway of the
// cluster sharing the folder (the delivery's lock is each one's own) withdrew
// the case folder meanwhile, which is why it was gone here. Put back over
// that, the record said handed over for a folder removed, and Confirmed
// signed its absence as the import's take.
func (a *Adapter) takenFirst(dir, fid string, rec *ledgerRecord, sl *shareLock) (adapters.Withdrawal, error) {
	if now, err := readLedger(dir, fid); err == nil && now.DeliveryID == rec.DeliveryID && now.withdrawn() && !now.WithdrawnAt.IsZero() {
		return adapters.Withdrawal{Outcome: adapters.WithdrawnBefore, Reference: now.WithdrawnCase}, nil
	}
	back := *rec
	back.Case, back.WithdrawnCase, back.WithdrawnAt = rec.WithdrawnCase, "", time.Time{}
	if err := sl.check(); err != nil {
		return adapters.Withdrawal{}, err
	}
	if err := writeLedger(dir, fid, &back); err != nil {
		return adapters.Withdrawal{}, classify("write ledger", err)
	}
	return adapters.Withdrawal{Outcome: adapters.WithdrawTaken, Reference: back.Case}, nil
}

// settleWithdrawal answers for a withdrawal record rec: done, it removes what a
// crash left; begun, the folders tell how far the withdrawal came (see the
// comment at the top), and it is finished.
func (a *Adapter) settleWithdrawal(dir, fid string, rec *ledgerRecord, sl *shareLock) (adapters.Withdrawal, error) {
	if !rec.WithdrawnAt.IsZero() {
		if _, err := removeWithdrawn(dir, fid); err != nil {
			return adapters.Withdrawal{}, err
		}
		return adapters.Withdrawal{Outcome: adapters.WithdrawnBefore, Reference: rec.WithdrawnCase}, nil
	}
	_, err := os.Lstat(withdrawalPath(dir, fid))
	switch {
	case err == nil:
		return a.finishWithdrawal(dir, fid, rec, sl) // renamed before a crash
	case !errors.Is(err, fs.ErrNotExist):
		return adapters.Withdrawal{}, classifyRead("look for withdrawn case folder", err)
	}
	taken, err := a.takenByOffice(dir, rec.WithdrawnCase)
	switch {
	case err != nil:
		return adapters.Withdrawal{}, err
	case taken:
		return a.takenFirst(dir, fid, rec, sl)
	}
	return a.hideCase(dir, fid, rec, sl)
}

// withdrawLeftovers withdraws a delivery that handed no case folder over: its
// temporary folder, if an attempt left one, goes after a withdrawal record named
// name (so that no later attempt writes the case again). Nothing there: nothing
// is written.
func (a *Adapter) withdrawLeftovers(dir, fid string, d adapters.Delivery, name string, sl *shareLock) (adapters.Withdrawal, error) {
	tmp := filepath.Join(dir, TempPrefix+fid)
	if _, err := os.Lstat(tmp); errors.Is(err, fs.ErrNotExist) {
		return adapters.Withdrawal{Outcome: adapters.WithdrawNothing}, nil
	} else if err != nil {
		return adapters.Withdrawal{}, classifyRead("look for temporary folder", err)
	}
	// The record first: a pending record without its temporary folder would
	// say the case was renamed into place (pendingRenamed).
	now := a.now()
	if err := sl.check(); err != nil {
		return adapters.Withdrawal{}, err
	}
	if err := writeLedger(dir, fid, &ledgerRecord{DeliveryID: d.ID, SubmissionID: d.SubmissionID, WithdrawnCase: name,
		WrittenAt: now, WithdrawnAt: now}); err != nil {
		return adapters.Withdrawal{}, classify("write withdrawal ledger record", err)
	}
	if _, err := removeWithdrawn(dir, fid); err != nil {
		return adapters.Withdrawal{}, err
	}
	return adapters.Withdrawal{Outcome: adapters.WithdrawRemoved, Leftovers: true}, nil
}

// removeWithdrawn removes the withdrawal name's folder and the temporary folder
// of delivery fid, of a withdrawal recorded done, and fsyncs the office folder;
// left reports whether a temporary folder was there.
func removeWithdrawn(dir, fid string) (left bool, err error) {
	tmp := filepath.Join(dir, TempPrefix+fid)
	if _, err := os.Lstat(tmp); err == nil {
		left = true
	}
	for _, p := range []string{withdrawalPath(dir, fid), tmp} {
		if err := os.RemoveAll(p); err != nil {
			return left, classify("remove withdrawn case folder", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return left, classify("sync office folder", err)
	}
	return left, nil
}

// removeStaleWithdrawal removes the folder under the withdrawal name of
// delivery fid that a withdrawal recorded done and could not remove (a crash,
// a failing share), if no Withdraw of it runs, and reports whether it did
// (removeStaleTemps). One of a withdrawal only begun stays: it is the proof
// that the rename happened, and without it a repeated withdrawal would take
// the case folder for taken by the office and put the hand-over's record
// back, which its confirmation would then sign. One without a record is of a
// withdrawal done whose record was pruned (the record is written before the
// rename, and only a done one is pruned): the applicant's data would stay in
// the share for good, so it goes too.
func (a *Adapter) removeStaleWithdrawal(dir, fid string) bool {
	if lockedOnShare(dir, fid) {
		return false // a withdrawal of it runs on some gateway (sharelock.go)
	}
	rec, err := readLedger(dir, fid)
	if errors.Is(err, fs.ErrNotExist) && statLedger(dir) == nil {
		return os.RemoveAll(withdrawalPath(dir, fid)) == nil
	}
	if err != nil {
		return false
	}
	unlock, ok := a.tryLock(rec.DeliveryID)
	if !ok {
		return false
	}
	defer unlock()
	if rec, err = readLedger(dir, fid); err != nil || !rec.withdrawn() || rec.WithdrawnAt.IsZero() {
		return false
	}
	return os.RemoveAll(withdrawalPath(dir, fid)) == nil
}
