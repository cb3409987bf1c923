package transfer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Pruning the ledger. Every delivery leaves .amtsbote/<delivery>.json in its office
// folder; kept for ever, years of cases made hundreds of thousands of files in one
// folder on a network share, and every listing of it, the adapter's and the
// office's import's, slower. A record is needed while its delivery may still be
// asked about (Confirmed answers from it) or delivered again (Deliver creates no
// second case because of it). The broker stops asking once it has recorded the
// delivery as delivered, which it does when Confirmed first says yes, and a
// delivered submission is never delivered again. So a record whose confirmation
// the adapter noticed (ConfirmNoticedAt), or whose withdrawal by an erasure is
// done (WithdrawnAt), is removed once Options.LedgerKeep has passed since: a
// margin for a broker that failed to record the answer and asks again, and for
// a store restored from a backup. Pending and unconfirmed records
// stay. Should a delivery whose record was removed come again all the same, its
// case is written anew (the office drops it by delivery_id), and Deliver warns
// when it writes a case accepted longer than LedgerKeep ago without finding a
// record.

// DefaultLedgerKeep is how long a ledger record is kept after the adapter noticed
// the import's confirmation of its case (Options.LedgerKeep 0).
const DefaultLedgerKeep = 30 * 24 * time.Hour

const (
	// pruneEvery is the least time between two passes over one office folder's
	// ledger; a pass follows a successful Deliver into the folder.
	pruneEvery = 10 * time.Minute
	// prunePerPass bounds the ledger entries one pass looks at (a stat each, a read
	// and a removal for those old enough); the next pass goes on after the last,
	// so a long history is worked through over several passes.
	prunePerPass = 1000
)

// schedulePrune starts a pass over dir's ledger in the background, unless one
// runs or ran less than pruneEvery ago, or pruning is off. Close waits for it.
// fid is the delivery just written into dir: its ledger record's time is the
// share's clock now (removeStaleTemps).
func (a *Adapter) schedulePrune(dir, fid string) {
	if a.keep < 0 {
		return
	}
	now := a.now()
	a.pmu.Lock()
	defer a.pmu.Unlock()
	if a.pruning[dir] {
		return
	}
	if last, ok := a.lastPrune[dir]; ok && now.Sub(last) < pruneEvery && now.Sub(last) >= 0 {
		return
	}
	if !a.gate.Enter() {
		return
	}
	a.pruning[dir], a.lastPrune[dir] = true, now
	go func() {
		defer a.gate.Leave()
		a.pruneLedger(dir, now, shareClock(dir, fid, now)) // the time of the Deliver: Options.Now is read on its caller's goroutines only
		a.pmu.Lock()
		delete(a.pruning, dir)
		a.pmu.Unlock()
	}()
}

// pruneLedger is one pass over dir's ledger (see the comment at the top): it looks
// at up to prunePerPass entries in name order, after the one the last pass ended
// with, removes the records of confirmed cases whose confirmation was noticed more
// than the keep ago, and leftovers of ledger writes and probes cut off by a crash
// (".tmp-*", ".probe-*" older than a day). Best effort: what fails stays for a
// later pass. now is the time the pass counts from; shareNow is the share's
// clock at about the same time, against which a leftover's age is taken: the
// file server sets a file's time, and by the gateway's clock with the NAS's
// days behind, a ledger write in flight (another attempt's, on this gateway or
// another of the cluster) looked old and was removed under it
// (TestLedgerTempsByTheSharesClock).
func (a *Adapter) pruneLedger(dir string, now, shareNow time.Time) {
	if a.keep < 0 {
		return
	}
	ld := filepath.Join(dir, LedgerDir)
	f, err := os.Open(ld)
	if err != nil {
		return
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return
	}
	slices.Sort(names)
	a.pmu.Lock()
	after := a.pruneCursor[dir]
	a.pmu.Unlock()
	i, found := slices.BinarySearch(names, after)
	if found {
		i++
	}
	removed, next := 0, after
	for n := 0; i < len(names) && n < prunePerPass && !a.gate.Closed(); i, n = i+1, n+1 {
		next = names[i]
		if a.pruneEntry(dir, names[i], now, shareNow) {
			removed++
		}
	}
	if i >= len(names) {
		next = "" // at the end: the next pass starts over
	}
	a.pmu.Lock()
	a.pruneCursor[dir] = next
	a.pmu.Unlock()
	if removed > 0 {
		_ = syncDir(ld)
		a.log.Info("transfer: removed ledger records of cases confirmed long ago", "folder", dir, "removed", removed,
			"keep", a.keep.String())
	}
}

// pruneEntry removes one ledger entry if it is no longer needed, and reports
// whether it did.
func (a *Adapter) pruneEntry(dir, name string, now, shareNow time.Time) bool {
	p := filepath.Join(dir, LedgerDir, name)
	st, err := os.Lstat(p)
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	if strings.HasPrefix(name, lockPrefix) {
		// A delivery's lock on the share a day old: a crash's leftover
		// (sharelock.go); a live one is written every quarter lease.
		return pruneLock(dir, name, st.ModTime(), shareNow)
	}
	if strings.HasPrefix(name, ".") {
		// A ledger write's temporary file or a probe, cut off by a crash.
		if (strings.HasPrefix(name, TempPrefix) || strings.HasPrefix(name, ".probe-")) && shareNow.Sub(st.ModTime()) >= staleTemp {
			return os.Remove(p) == nil
		}
		return false
	}
	fid, ok := strings.CutSuffix(name, ".json")
	// Last written within the keep: it cannot hold a confirmation noticed longer
	// ago (the stat spares reading every recent record).
	if !ok || now.Sub(st.ModTime()) < a.keep {
		return false
	}
	rec, err := readLedger(dir, fid)
	if err != nil || rec.pending() || fileID(rec.DeliveryID) != fid {
		return false
	}
	noticed := rec.ConfirmNoticedAt
	switch {
	case rec.withdrawn():
		// A withdrawal done (withdraw.go) is kept as long as a confirmation:
		// the erased case is never delivered again (the broker refuses to
		// queue a case without its bytes), and its questions answer "not
		// confirmed" without the record as with it. Begun, it stays: a
		// repeated erasure settles it by it.
		noticed = rec.WithdrawnAt
		if noticed.IsZero() {
			return false
		}
	case rec.ConfirmedAt.IsZero():
		return false
	case noticed.IsZero(): // recorded before the field existed: the confirmation's own time
		noticed = rec.ConfirmedAt
	}
	if now.Sub(noticed) < a.keep {
		return false
	}
	unlock, ok := a.tryLock(rec.DeliveryID)
	if !ok {
		return false // being worked on; a later pass
	}
	defer unlock()
	if lockedOnShare(dir, fid) {
		return false // being worked on by another gateway; a later pass
	}
	return os.Remove(p) == nil
}
