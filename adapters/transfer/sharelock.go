package transfer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The delivery's lock on the share. Deliver, Withdraw and the confirmation
// question's write take a delivery's lock of this process (lock, lockCtx), and
// in a cluster several gateways write into one office folder (docs/cluster.md):
// an attempt whose attempt timeout ran out on one gateway (the queue hands the
// delivery to another meanwhile) may still be writing or renaming while an
// erasure on another withdraws the case. Unexcluded, the withdrawal found
// nothing the attempt then handed over, or removed the case folder whose
// hand-over's record the attempt then wrote over the withdrawal's, and its
// confirmation signed a Zustellbestaetigung for an erased application
// (TestWithdrawRacingAnAttemptOnAnotherGateway). So the delivery's work on the
// share is also excluded on the share: by the lock file
// ".amtsbote/.lock-<file id>", created with O_CREAT|O_EXCL. An exclusive
// create is atomic on every file system the channel runs on (local, NFSv3 and
// later, SMB); flock and fcntl locks are not (NFSv3 needs the separate lock
// manager, SMB clients map them variously), and a lock on the share is the one
// thing all gateways see whatever their build of NATS or their store.
//
// The file holds its owner (host, process, a random token) and the lease, and
// stays open while the work runs: every lease/4 the owner writes the same bytes
// into it again, through the open file, so that the file server sets its
// modification time (renew). A crashed gateway's lock must not block its case
// for ever, an erasure least of all, so a lock whose file was not written for
// longer than the lease is expired and taken over: by the file server's clock
// on both sides, the file's time and the time of a probe file created just
// then (shareNow), so that neither the gateways' clocks nor a file server's
// clock days off make a live lock look old (as TestStaleTempsByTheSharesClock
// found for the temporary folders).
//
// Expired cannot mean "its owner is dead": on a share mounted "hard" (NFS's
// default) a gateway whose file server stopped answering is merely hung, and
// it goes on where it stopped once the server answers again, which can be
// after any lease. Waiting for it for ever would hang the case's erasure with
// it, and no lease is long enough to be safe. So the owner gives the lease up
// itself: it counts its lock as held only until half a lease after the start
// of its last renewal that went through (its own monotonic clock, valid), and
// it begins no step that decides for the case after that — no pending record,
// no rename, no hand-over's record, no withdrawal record — and writes nothing
// more into the ledger; whatever a taker did is then the truth. The other half
// of the lease is the margin for the two clocks' rates and for the owner's
// step under way. What remains is one file operation begun within the lease
// and hung past its end: the NFS client sends it again when the server
// answers, and it then lands after the taker's steps. For that the owner's
// server must not answer it for longer than half a lease while the taker's
// answers (a network cut between the two, not a stopped server, which stops
// the taker too); the steps are short (a rename, a small record), and the
// lease is two minutes against the milliseconds they take.
//
// Everything else that writes for a delivery (the cleanup of day-old
// temporary folders, the ledger's pruning) leaves a delivery with a lock file
// alone, and the ledger's pruning removes lock files a day old
// (pruneEntry): a crash's leftover that no later work of the delivery took
// over. A gateway of a build before the lock does not know it and takes none
// (docs/transfer.md, rolling upgrades).

// lockPrefix begins a delivery's lock file in the ledger folder. It starts with
// a dot, as every name there that is no record does, so the ledger's readers
// (and older builds' pruning, which removes only ".tmp-*" and ".probe-*")
// leave it alone; a file id never holds "~", which marks a lock file being
// taken over (breakLock).
const lockPrefix = ".lock-"

// defaultLease is how long a lock on the share stays valid without renewal.
const defaultLease = 2 * time.Minute

// errLeaseLost is an owner's step refused because its lock on the share may
// have been taken over (see the comment at the top).
var errLeaseLost = errors.New("the delivery's lock on the share lapsed (the share did not answer the renewal in time); another gateway may have taken it over")

// errLockBusy is a lock on the share another holds, when not waited for.
var errLockBusy = errors.New("the delivery's lock on the share is held by another attempt or withdrawal")

func lockPath(dir, fid string) string { return filepath.Join(dir, LedgerDir, lockPrefix+fid) }

// lockFile is what a lock file holds: for the office's IT and for the owner's
// check that a file it moves away is the one it judged expired (breakLock).
type lockFile struct {
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Token   string    `json:"token"`
	Lease   string    `json:"lease"`
	TakenAt time.Time `json:"taken_at"`
	For     string    `json:"for"` // "attempt", "withdrawal", "confirmation"
}

// shareLock is a lock on the share this process holds.
type shareLock struct {
	a     *Adapter
	path  string
	token string
	body  []byte
	f     *os.File

	mu        sync.Mutex
	renewedAt time.Time // a.leaseNow() at the start of the last renewal that went through

	stop     chan struct{}
	stopOnce sync.Once
}

// lockShare takes delivery fid's lock on the share in dir for what (see
// lockFile.For). wait: until ctx ends, taking the lock over once it expired;
// otherwise one look (errLockBusy). Errors are classified (*Error), or the
// context's.
func (a *Adapter) lockShare(ctx context.Context, dir, fid, what string, wait bool) (*shareLock, error) {
	p := lockPath(dir, fid)
	delay := time.Millisecond
	for {
		l, err := a.createLock(p, what)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			// A read-only share included: nothing can be excluded there, and
			// nothing done without the lock (a withdrawal's "nothing there"
			// included, which an attempt on a gateway with the share writable
			// could be about to undo).
			return nil, classify("take the delivery's lock on the share", err)
		}
		took, err := a.breakExpired(dir, p)
		if err != nil {
			return nil, err
		}
		if took {
			continue // the next create decides; another taker may win it
		}
		if a.shareLockWaits != nil {
			a.shareLockWaits(p)
		}
		if !wait {
			return nil, errLockBusy
		}
		if err := pause(ctx, &delay, 100*time.Millisecond); err != nil {
			return nil, fmt.Errorf("transfer: wait for the delivery's lock on the share (an attempt or withdrawal on another gateway): %w", err)
		}
	}
}

// createLock creates lock file p exclusively and starts its renewal.
func (a *Adapter) createLock(p, what string) (*shareLock, error) {
	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	host, _ := os.Hostname()
	start := a.leaseNow() // before the create: the lease counts from no later than the file's time
	body, err := json.Marshal(lockFile{Host: host, PID: os.Getpid(), Token: hex.EncodeToString(rnd[:]),
		Lease: a.lease.String(), TakenAt: a.now().UTC(), For: what})
	if err != nil {
		return nil, err
	}
	body = append(body, '\n')
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(body); err != nil {
		_ = f.Close()
		_ = os.Remove(p)
		return nil, err
	}
	l := &shareLock{a: a, path: p, token: hex.EncodeToString(rnd[:]), body: body, f: f, renewedAt: start, stop: make(chan struct{})}
	go l.renewLoop()
	return l, nil
}

// renewLoop renews the lock every quarter lease until release. A renewal
// that fails or hangs is not waited for by anyone: valid lapses.
func (l *shareLock) renewLoop() {
	t := time.NewTicker(l.a.lease / 4)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.renew()
		}
	}
}

// renew writes the lock file's bytes again through the open file and flushes
// them, so that the file server sets the file's time; its start counts.
func (l *shareLock) renew() {
	start := l.a.leaseNow()
	if _, err := l.f.WriteAt(l.body, 0); err != nil {
		return
	}
	if err := l.f.Sync(); err != nil {
		return
	}
	l.mu.Lock()
	if start.After(l.renewedAt) {
		l.renewedAt = start
	}
	l.mu.Unlock()
}

// valid reports whether the lock is surely still this owner's: less than half
// a lease since its last renewal began.
func (l *shareLock) valid() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.a.leaseNow().Sub(l.renewedAt) < l.a.lease/2
}

// check is nil while the lock is valid, else errLeaseLost as a transient
// *Error; a nil lock (no lock on the share asked for) is always valid.
func (l *shareLock) check() error {
	if l == nil || l.valid() {
		return nil
	}
	return &Error{Reason: ReasonWrite, Err: errLeaseLost}
}

// release ends the lock: its file goes, unless the lock lapsed, and then only
// if it is still this one's (another may have taken it over and hold it now).
func (l *shareLock) release() {
	if l == nil {
		return
	}
	l.stopOnce.Do(func() { close(l.stop) })
	valid := l.valid()
	_ = l.f.Close()
	if valid {
		_ = os.Remove(l.path)
		return
	}
	_, _ = breakLock(l.path, l.token)
}

// breakExpired takes lock file p in office folder dir away if it expired (see
// the comment at the top), and reports whether p is free now to be created.
func (a *Adapter) breakExpired(dir, p string) (bool, error) {
	st, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, nil // released meanwhile
	case err != nil:
		return false, classifyRead("look at the delivery's lock on the share", err)
	}
	lf, _ := readLock(p) // unreadable: judged by its time alone
	now, err := shareNow(dir)
	if err != nil {
		return false, classify("take the share's time", err)
	}
	// The longer of this gateway's lease and the one the owner declared: a
	// gateway configured otherwise is not cut short.
	lease := a.lease
	if d, err := time.ParseDuration(lf.Lease); err == nil && d > lease {
		lease = d
	}
	if now.Sub(st.ModTime()) <= lease {
		return false, nil
	}
	if lf.Token == "" {
		// Unreadable: a crash between the create and the write, or a
		// file that is no lock. Its time alone says it expired.
		lf.Token = "?"
	}
	took, err := breakLock(p, lf.Token)
	if took {
		a.log.Warn("transfer: took over an expired lock of a delivery on the share (its gateway crashed, or hangs on the share)",
			"folder", dir, "lock", filepath.Base(p), "owner_host", lf.Host, "owner_pid", lf.PID, "taken_at", lf.TakenAt,
			"lease", lease.String(), "last_renewed", st.ModTime().UTC())
	}
	return took, err
}

// breakLock removes lock file p if it holds token ("?": any content), and
// reports whether p is free now. It moves p away first, under a name no one
// else uses, and looks at what it moved: two takers of one expired lock may
// race, and the later must not remove the lock the earlier has just created.
// Moved one that is not the token's, it is put back (a link, which fails if
// p was created meanwhile; a file system without links gets it renamed back).
func breakLock(p, token string) (bool, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	moved := p + "~" + hex.EncodeToString(rnd[:])
	if err := os.Rename(p, moved); errors.Is(err, fs.ErrNotExist) {
		return true, nil // another took it away
	} else if err != nil {
		return false, classify("take over the delivery's lock on the share", err)
	}
	lf, err := readLock(moved)
	if token == "?" && lf.Token == "" || err == nil && lf.Token == token || errors.Is(err, fs.ErrNotExist) {
		_ = os.Remove(moved)
		return true, nil
	}
	if lerr := os.Link(moved, p); lerr == nil || errors.Is(lerr, fs.ErrExist) {
		_ = os.Remove(moved)
	} else {
		_ = os.Rename(moved, p)
	}
	return false, nil
}

// readLock reads a lock file.
func readLock(p string) (lockFile, error) {
	var lf lockFile
	b, err := readFileLimited(p, 4096)
	if err != nil {
		return lf, err
	}
	if err := json.Unmarshal(b, &lf); err != nil {
		return lockFile{}, fmt.Errorf("lock file: %w", err)
	}
	return lf, nil
}

// shareNow is the file server's time now: the modification time of a probe file
// created in dir's ledger folder (and removed again).
func shareNow(dir string) (time.Time, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	p := filepath.Join(dir, LedgerDir, ".probe-"+hex.EncodeToString(b[:]))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return time.Time{}, err
	}
	st, serr := f.Stat()
	cerr := f.Close()
	rerr := os.Remove(p)
	if err := errors.Join(serr, cerr, rerr); err != nil {
		return time.Time{}, err
	}
	return st.ModTime(), nil
}

// lockedOnShare reports whether delivery fid has a lock file in dir: work on
// it may be under way on some gateway, so the cleanups leave it alone. A look
// that fails counts as locked.
func lockedOnShare(dir, fid string) bool {
	_, err := os.Lstat(lockPath(dir, fid))
	return !errors.Is(err, fs.ErrNotExist)
}

// pruneLock removes a lock file of the ledger folder (name, under dir) whose
// time lies staleTemp before shareNow: no live lock is that old (a live one is
// written every quarter lease), so it is a crash's leftover that no later work
// of its delivery took over; and a leftover of a take-over cut off (name with
// "~"). Reports whether it did.
func pruneLock(dir, name string, mtime, shareNow time.Time) bool {
	if shareNow.Sub(mtime) < staleTemp {
		return false
	}
	p := filepath.Join(dir, LedgerDir, name)
	if strings.Contains(name, "~") {
		return os.Remove(p) == nil
	}
	lf, err := readLock(p)
	if err != nil {
		lf.Token = "?"
	}
	took, _ := breakLock(p, lf.Token)
	return took
}
