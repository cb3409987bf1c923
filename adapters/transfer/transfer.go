// Package transfer is the delivery channel of maturity level 2: per office a folder
// (usually on a network share) into which the gateway writes one case folder per
// package, and from which the office's import takes it. docs/transfer.md is the guide
// for the office's IT.
//
// Deliver writes the case folder atomically: everything goes into ".tmp-<delivery>"
// inside the office folder, every file and folder is fsynced, the temporary folder is
// renamed to "<YYYYMMDD>-<submission id>" and the office folder is fsynced. Only then
// does the adapter record the hand-over in its ledger, ".amtsbote/<delivery>.json" in
// the office folder. The ledger is how the adapter knows it wrote a case: Confirmed
// answers from it, so a case folder that was never renamed into place (a crash in
// between) can never count as imported, and a repeated Deliver of a delivery that was
// already handed over (or even imported) creates no second case. Just before the
// rename the same file holds a pending record, naming the case folder; after it
// the temporary folder goes only by that rename or after the pending record, so an
// attempt that finds the pending record tells by the temporary folder whether the
// rename happened. A hand-over whose final record could not be written (the share
// full or gone just then, a crash) is thus recorded by the retry, also when the
// import took the case folder in between, instead of writing the case twice. The
// record of a case whose confirmation the adapter noticed is removed
// Options.LedgerKeep later (prune.go), when the broker has long stopped asking.
//
// Nothing is written into an office folder that lacks the ledger folder .amtsbote/:
// Deliver then fails transiently ("transfer folder missing") and never creates it.
// That is how the adapter tells a share from the bare mount point under it: with the
// share unmounted, the endpoint is an empty folder of the local disk, and a case
// written there would be reported as handed over and then hidden by the share once it
// is mounted again: never imported, never retried. The ledger folder is created only
// by the start-up check (CheckTarget), and only in an empty folder (a new office
// folder); a folder with content but without the ledger is refused, for an operator
// to look at (the share not mounted over a mount point that holds something, the
// wrong folder, or the gateway's records deleted). An empty bare mount point at start
// looks like a new office folder to the ledger; the check tells them apart by the
// system's mount tables (mounts.go): an empty folder under an /etc/fstab or systemd
// mount point that is not mounted now is refused. A share mounted by other means
// (by hand, by a script) is not in them; docs/transfer.md has operators leave a file
// in the bare mount point, which turns it into a refusal too. The folder's device number
// (st_dev) is deliberately not recorded as its identity: network file systems (NFS,
// SMB) get a new one at every mount, so it would raise a false alarm after every
// reboot, and the ledger's presence already says what it would.
//
// The office confirms by moving or deleting the case folder, or by creating the marker
// "<case folder>.ok" next to it. Confirmed reports that, with the time it noticed the
// folder gone, or the marker's modification time bounded to the hand-over and now
// (the office's clock goes into the signed receipt); Changes signals early through
// fsnotify, but fsnotify misses events on network shares (SMB, NFS), so the broker's
// polling of Confirmed is the truth.
//
// An erasure of the case withdraws a case folder the office has not taken yet
// (Withdraw, withdraw.go): renamed out of the import's sight, then removed, with a
// withdrawal record in the ledger that no question counts as a hand-over.
package transfer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
)

// Channel is the name the adapter registers under.
const Channel = channel.Transfer

// Names inside the office folder and the case folder. They are the interface to the
// office's import: never rename one.
const (
	PackageFile    = "antrag.xml"
	SummaryFile    = "zusammenfassung.pdf"
	IndexJSONFile  = "index.json"
	IndexXMLFile   = "index.xml"
	AttachmentsDir = "anlagen"
	MarkerSuffix   = ".ok"       // "<case folder>.ok" next to the case folder confirms it
	LedgerDir      = ".amtsbote" // the adapter's own records; the import leaves it alone
	TempPrefix     = ".tmp-"     // folders being written; the import ignores them
)

// Bounds.
const (
	maxPackageBytes = 512 << 20
	// staleTemp: temporary folders of other deliveries older than this are leftovers of
	// a crash whose delivery was never retried here (it went to another channel); a
	// successful Deliver removes them.
	staleTemp = 24 * time.Hour
	// maxHandovers bounds the hand-over times kept in a ledger record.
	maxHandovers = 50
	// maxCaseSuffix bounds the search for a free case folder name.
	maxCaseSuffix = 100
)

// Options configures New.
type Options struct {
	// Logger receives one line per attempt and per noticed confirmation; never
	// personal data (no file names, no form content). Nil: slog.Default().
	Logger *slog.Logger
	// Now is the clock for confirmations, index files and the ledger (default time.Now).
	Now func() time.Time
	// NoWatch turns fsnotify off (Changes returns nil): the broker's polling alone
	// notices confirmations.
	NoWatch bool
	// LedgerKeep is how long a ledger record stays after the adapter noticed the
	// import's confirmation of its case (prune.go). 0: DefaultLedgerKeep;
	// negative: records are kept for ever.
	LedgerKeep time.Duration
	// BeforeRename, if not nil, runs in Deliver with the temporary folder just
	// before the attempt's last look at its context and the rename into the
	// office folder, after the pending record: for tests, also of other
	// packages (the broker's takeover while an attempt is under way), that hold
	// an attempt at its point of no return. Nil in the gateway.
	BeforeRename func(tmp string)
}

// Adapter is the transfer channel. Create it with New.
type Adapter struct {
	log *slog.Logger
	now func() time.Time

	gate adapters.Gate

	locks [64]sync.Mutex // per delivery id (hashed): one writer per case

	// lease is how long a delivery's lock on the share stays valid without
	// renewal, leaseNow the owner's clock for it (sharelock.go); tests change
	// both.
	lease    time.Duration
	leaseNow func() time.Time

	keep        time.Duration // Options.LedgerKeep in effect
	pmu         sync.Mutex
	pruning     map[string]bool      // office folders whose ledger a pass works on now
	lastPrune   map[string]time.Time // when the last pass over an office folder began
	pruneCursor map[string]string    // the ledger entry the last pass ended with

	watcher   *fsnotify.Watcher
	wmu       sync.Mutex
	watched   map[string]bool
	watchedAt map[string]time.Time // when a watched folder's watch was last asked for (watch)
	unwatched map[string]bool      // office folders fsnotify refused, warned about once
	adding    map[string]bool      // office folders queued or being added now (watch)
	addQueue  []string             // office folders to add, in order (addLoop)
	addKick   chan struct{}        // a folder was queued
	addStop   chan struct{}        // closed by Close: addLoop ends
	addIdle   *sync.Cond           // on wmu: an add finished (tests wait for it)
	// addWatch adds a folder to the watcher: watcher.Add; tests replace it with
	// one that hangs, as on a share whose server stopped answering.
	addWatch  func(dir string) error
	changes   chan struct{}
	loopDone  chan struct{}
	closeOnce sync.Once

	// Test hooks: called with the temporary folder just before, and with the case
	// folder just after, the rename.
	beforeRename func(tmp string)
	afterRename  func(final string)
	// atStep runs in Deliver at the named step with its path: "write" before
	// the temporary folder is written, "pending" before the pending record
	// (tests: another gateway's withdrawal at that moment).
	atStep func(step, path string)
	// shareLockWaits runs whenever a wait for the delivery's lock on the share
	// (sharelock.go) finds another holder (tests: release that holder then).
	shareLockWaits func(lock string)
	// beforeCaseCheck runs in Confirmed between reading the ledger record and
	// looking for the case folder (tests: a share unmounted just then).
	beforeCaseCheck func()
	// beforeWithdrawRename runs in Withdraw with the case folder just before it
	// is renamed out of the import's sight, afterWithdrawRename with its
	// withdrawal name just after (tests: the office's import at that moment).
	beforeWithdrawRename func(caseDir string)
	afterWithdrawRename  func(hidden string)
}

var (
	_ adapters.Adapter   = (*Adapter)(nil)
	_ adapters.Confirmer = (*Adapter)(nil)
	_ adapters.Checker   = (*Adapter)(nil)
	// A case folder renamed into the share by an attempt whose outcome the
	// gateway lost (a crash just after the rename) is found by a look, not an
	// attempt, once a clerk has taken the case over (HandedOver).
	_ adapters.HandOverFinder = (*Adapter)(nil)
	// An erasure removes a case folder the office has not taken yet: it is the
	// one copy of an application outside the gateway's store (withdraw.go).
	_ adapters.Withdrawer = (*Adapter)(nil)
)

// New returns the transfer adapter. If fsnotify cannot start (no inotify instances
// left), the adapter works without it: Changes then never fires and polling notices
// every confirmation.
func New(o Options) (*Adapter, error) {
	a := &Adapter{log: o.Logger, now: o.Now, watched: map[string]bool{}, watchedAt: map[string]time.Time{}, unwatched: map[string]bool{}, adding: map[string]bool{}, keep: o.LedgerKeep,
		pruning: map[string]bool{}, lastPrune: map[string]time.Time{}, pruneCursor: map[string]string{},
		beforeRename: o.BeforeRename, lease: defaultLease, leaseNow: time.Now}
	if a.keep == 0 {
		a.keep = DefaultLedgerKeep
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if !o.NoWatch {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			a.log.Warn("transfer: fsnotify unavailable, confirmations are noticed by polling only", "err", err)
		} else {
			a.watcher = w
			a.addWatch = w.Add
			a.addKick, a.addStop, a.addIdle = make(chan struct{}, 1), make(chan struct{}), sync.NewCond(&a.wmu)
			a.changes = make(chan struct{}, 1)
			a.loopDone = make(chan struct{})
			go a.watchLoop()
			go a.addLoop()
		}
	}
	return a, nil
}

// Channel implements adapters.Adapter.
func (a *Adapter) Channel() string { return Channel }

// Changes implements adapters.Confirmer: it signals when something in a watched office
// folder changed that may be a confirmation (a folder moved or deleted, a marker
// created). nil when fsnotify is off.
func (a *Adapter) Changes() <-chan struct{} {
	if a.changes == nil {
		return nil
	}
	return a.changes
}

// Close implements adapters.Adapter.
func (a *Adapter) Close() error {
	a.gate.Close()
	a.closeOnce.Do(func() {
		if a.watcher != nil {
			// addLoop is not waited for: an add hung on a share would hang
			// Close with it. It does nothing more once the gate is closed.
			close(a.addStop)
			a.wmu.Lock()
			_ = a.watcher.Close()
			a.addIdle.Broadcast()
			a.wmu.Unlock()
			<-a.loopDone
		}
	})
	return nil
}

func (a *Adapter) watchLoop() {
	defer close(a.loopDone)
	for {
		select {
		case ev, ok := <-a.watcher.Events:
			if !ok {
				return
			}
			base := filepath.Base(ev.Name)
			switch {
			case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
				if a.isWatched(ev.Name) { // the office folder itself went away
					a.unwatch(ev.Name)
				}
				if strings.HasPrefix(base, ".") {
					continue // our own temporary folders and ledger files
				}
			case ev.Has(fsnotify.Create) && strings.HasSuffix(base, MarkerSuffix):
			default:
				continue
			}
			select {
			case a.changes <- struct{}{}:
			default:
			}
		case err, ok := <-a.watcher.Errors:
			if !ok {
				return
			}
			a.log.Debug("transfer: fsnotify", "err", err)
			// An overflow means events were lost: ask the broker to look now.
			select {
			case a.changes <- struct{}{}:
			default:
			}
		}
	}
}

func (a *Adapter) isWatched(dir string) bool {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return a.watched[dir]
}

func (a *Adapter) unwatch(dir string) {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	delete(a.watched, dir)
}

// watch has an office folder added to fsnotify once, by addLoop; failures only
// cost speed. A failure is tried again at the next call (watches may have been
// freed) and warned about once per folder: it was logged at debug level, so a
// host out of inotify watches (fs.inotify.max_user_watches) said nothing where
// docs/transfer.md promised a warning, and every call would repeat it (Confirmed
// calls this for each case, every round).
//
// The caller does not wait for the add: adding a watch looks the folder up, and
// on a share whose server stopped answering that hangs. Each delivery and each
// confirmation question calls this, so a hang here held every office's
// deliveries. Merely adding outside wmu was not enough: fsnotify's inotify
// backend holds its own lock across the add, so another office's add waited
// in fsnotify for the hung one (TestHungShareHoldsNoOtherOffice). Queued, only
// the watches wait; until they are added, polling notices the confirmations.
//
// A watched folder's watch is asked for again once rewatchEvery has passed:
// fsnotify drops a watch without an event when the file system under it is
// unmounted (inotify's IN_UNMOUNT), so a share unmounted and mounted again
// was taken for watched and gave no signal until the gateway restarted
// (TestRemountedFolderWatchedAgain). Adding a watch the folder has is
// harmless to fsnotify (the kernel keeps the one it has).
func (a *Adapter) watch(dir string) {
	if a.watcher == nil {
		return
	}
	now := a.now()
	a.wmu.Lock()
	if a.adding[dir] || a.gate.Closed() {
		a.wmu.Unlock()
		return
	}
	if last, ok := a.watchedAt[dir]; a.watched[dir] && ok && now.Sub(last) < rewatchEvery && now.Sub(last) >= 0 {
		a.wmu.Unlock()
		return
	}
	a.watchedAt[dir] = now
	a.adding[dir] = true
	a.addQueue = append(a.addQueue, dir)
	a.wmu.Unlock()
	select {
	case a.addKick <- struct{}{}:
	default: // a kick is pending: addLoop takes the whole queue
	}
}

// rewatchEvery is how long a watched folder's watch is taken as it is before
// watch asks fsnotify for it again.
const rewatchEvery = time.Minute

// addLoop adds the folders watch queued, one at a time, as fsnotify would
// anyway, until Close.
func (a *Adapter) addLoop() {
	for {
		select {
		case <-a.addStop:
			return
		case <-a.addKick:
		}
		for {
			a.wmu.Lock()
			if len(a.addQueue) == 0 || a.gate.Closed() {
				a.wmu.Unlock()
				break
			}
			dir := a.addQueue[0]
			a.addQueue = a.addQueue[1:]
			a.wmu.Unlock()
			a.added(dir, a.addWatch(dir))
		}
	}
}

// added records the end of dir's add, err its failure.
func (a *Adapter) added(dir string, err error) {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	delete(a.adding, dir)
	a.addIdle.Broadcast()
	if a.gate.Closed() {
		return
	}
	if err != nil {
		if !a.unwatched[dir] {
			a.unwatched[dir] = true
			a.log.Warn("transfer: cannot watch office folder, confirmations are noticed by polling only", "folder", dir, "err", err)
		}
		return
	}
	delete(a.unwatched, dir)
	a.watched[dir] = true
}

// Error is a failed attempt. Its Reason is short, fixed text that may be shown to the
// portal (PublicReason); the wrapped error carries the system's detail without paths
// (file names can hold personal data).
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return "transfer: " + e.Reason
	}
	return "transfer: " + e.Reason + ": " + e.Err.Error()
}
func (e *Error) Unwrap() error        { return e.Err }
func (e *Error) PublicReason() string { return e.Reason }

// Public reasons.
const (
	ReasonFull        = "transfer folder full"
	ReasonMissing     = "transfer folder missing"
	ReasonNotWritable = "transfer folder not writable"
	ReasonNotFolder   = "transfer target is not a folder"
	ReasonNotAbsolute = "transfer target is not an absolute folder path"
	ReasonWrite       = "writing the case folder failed"
	ReasonSource      = "the package could not be read from the store"
	// ReasonRead: a confirmation question could not read what it needs (the
	// ledger, the marker, the case folder's entry); it said "writing the case
	// folder failed" before, for a share where nothing was being written.
	ReasonRead = "reading the transfer folder failed"
	// ReasonWithdrawn: an attempt of a delivery an erasure withdrew (Withdraw).
	ReasonWithdrawn = "the case was erased and withdrawn from the transfer folder"
)

// stripPath drops the path from os errors: paths inside a case folder contain
// attachment file names, which the logs must not carry.
func stripPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return fmt.Errorf("%s: %w", le.Op, le.Err)
	}
	return err
}

// classify turns a file system error while writing into a transient *Error (every
// write failure may heal: space freed, share remounted, permissions fixed).
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("transfer: %s: %w", what, err)
	}
	inner := fmt.Errorf("%s: %w", what, stripPath(err))
	switch {
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		return &Error{Reason: ReasonFull, Err: inner}
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS):
		return &Error{Reason: ReasonNotWritable, Err: inner}
	case errors.Is(err, fs.ErrNotExist):
		return &Error{Reason: ReasonMissing, Err: inner}
	}
	return &Error{Reason: ReasonWrite, Err: inner}
}

// classifyRead turns a file system error while reading for a confirmation
// question into a transient *Error: it may heal as a write failure may (share
// remounted, permissions fixed), but it is no write failure.
func classifyRead(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("transfer: %s: %w", what, err)
	}
	return &Error{Reason: ReasonRead, Err: fmt.Errorf("%s: %w", what, stripPath(err))}
}

// officeDir checks the target's endpoint: an absolute, clean folder path.
func officeDir(t adapters.Target) (string, error) {
	ep := t.Endpoint
	if ep == "" || !filepath.IsAbs(ep) || strings.ContainsRune(ep, 0) {
		return "", adapters.Permanent(ReasonNotAbsolute, nil)
	}
	return filepath.Clean(ep), nil
}

// errNoLedger is the detail of an office folder without its ledger folder.
var errNoLedger = errors.New("no " + LedgerDir + "/ in the office folder (share not mounted?)")

// statOffice classifies the office folder: missing or unreachable is transient (the
// share may come back), not a folder is permanent. A folder without the ledger folder
// counts as missing: it is what an unmounted share leaves (see the package comment).
func statOffice(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return classify("office folder", err)
	}
	if !st.IsDir() {
		return adapters.Permanent(ReasonNotFolder, nil)
	}
	return statLedger(dir)
}

// statLedger checks that dir holds the ledger folder, itself and not a link to one.
func statLedger(dir string) error {
	st, err := os.Lstat(filepath.Join(dir, LedgerDir))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &Error{Reason: ReasonMissing, Err: errNoLedger}
	case err != nil:
		return classify("ledger folder", err)
	case !st.IsDir():
		return &Error{Reason: ReasonMissing, Err: errors.New(LedgerDir + " in the office folder is not a folder")}
	}
	return nil
}

// CheckTarget implements adapters.Checker: the folder must exist, be a folder, hold
// the ledger folder .amtsbote/ and be writable (checked by creating and removing a
// probe file in .amtsbote/). In an empty folder, a new office folder, it creates
// .amtsbote/; a folder with content but without it is refused (see the package
// comment).
func (a *Adapter) CheckTarget(t adapters.Target) error {
	ep := t.Endpoint
	if ep == "" || !filepath.IsAbs(ep) || strings.ContainsRune(ep, 0) {
		return &adapters.TargetError{Field: "endpoint", Reason: "must be an absolute folder path"}
	}
	dir := filepath.Clean(ep)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &adapters.TargetError{Field: "endpoint", Reason: "folder " + dir + " does not exist"}
	case err != nil:
		return &adapters.TargetError{Field: "endpoint", Reason: "folder " + dir + " cannot be read: " + stripPath(err).Error()}
	case !st.IsDir():
		return &adapters.TargetError{Field: "endpoint", Reason: dir + " is not a folder"}
	}
	ld := filepath.Join(dir, LedgerDir)
	lst, err := os.Lstat(ld)
	prepared := err == nil // the gateway wrote into this folder before
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := a.prepare(dir); err != nil {
			return err
		}
	case err != nil:
		return &adapters.TargetError{Field: "endpoint", Reason: "folder " + ld + " cannot be read: " + stripPath(err).Error()}
	case !lst.IsDir():
		return &adapters.TargetError{Field: "endpoint", Reason: ld + " is not a folder"}
	}
	if err := probe(dir); errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		// Full or over quota now: the office's share, out of the operator's reach,
		// and transient — deliveries into it are retried (ReasonFull) and wait until
		// its import makes room. Refusing the start for it kept the whole gateway
		// down after a restart, every office and every portal, for one full share.
		a.log.Warn("transfer: office folder is full now; deliveries into it wait and are retried until it has room",
			"folder", dir, "err", stripPath(err))
	} else if prepared && errors.Is(err, syscall.EROFS) {
		// Read-only now, but the gateway prepared this folder before: the share
		// went read-only (a file server that remounts itself read-only on
		// errors does). As for a full share, refusing the start kept the whole
		// gateway down, every office and every portal, for one office's share;
		// deliveries into it are retried as "transfer folder not writable" and
		// then go to the office's next channel. A permission refused is still
		// refused at the start: after a deployment that is the gateway's user
		// or group (the configuration, for the person starting it), and a
		// warning would let every office's cases go to their next channel
		// unseen (a review, 2026-12-07). So is a new folder the gateway cannot
		// prepare (prepare).
		a.log.Warn("transfer: office folder is not writable now; deliveries into it are retried until it is, then go to the office's next channel",
			"folder", dir, "err", stripPath(err))
	} else if err != nil {
		return &adapters.TargetError{Field: "endpoint", Reason: "folder " + dir + " is not writable: " + stripPath(err).Error()}
	}
	a.watch(dir)
	return nil
}

// prepare creates the ledger folder in an empty office folder, and refuses one with
// content: its ledger is missing, so it is not the folder as the gateway left it.
func (a *Adapter) prepare(dir string) error {
	ld := filepath.Join(dir, LedgerDir)
	f, err := os.Open(dir)
	if err != nil {
		return &adapters.TargetError{Field: "endpoint", Reason: "folder " + dir + " cannot be read: " + stripPath(err).Error()}
	}
	names, err := f.Readdirnames(1)
	f.Close()
	if len(names) > 0 {
		return &adapters.TargetError{Field: "endpoint", Reason: "folder " + dir + " has content but no " + LedgerDir +
			"/ (the gateway's records): is the share mounted? If this is the office's transfer folder, create " +
			ld + " as the gateway's user (docs/transfer.md, \"The folder's .amtsbote/\")"}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return &adapters.TargetError{Field: "endpoint", Reason: "folder " + dir + " cannot be read: " + stripPath(err).Error()}
	}
	if where, what, ok := unmountedShare(dir); ok {
		return &adapters.TargetError{Field: "endpoint", Reason: "folder " + dir + " is empty and lies under " + where +
			", which the system mounts (" + what + ") but which is not mounted now: mount it, then start again" +
			" (docs/transfer.md, \"The folder's .amtsbote/\")"}
	}
	if err := os.Mkdir(ld, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return &adapters.TargetError{Field: "endpoint", Reason: "folder " + dir + " is not writable: " + stripPath(err).Error()}
	}
	if err := syncDir(dir); err != nil {
		return &adapters.TargetError{Field: "endpoint", Reason: "folder " + dir + " is not writable: " + stripPath(err).Error()}
	}
	a.log.Info("transfer: new office folder, created its ledger folder", "folder", dir, "ledger", LedgerDir)
	return nil
}

func probe(dir string) error {
	ld := filepath.Join(dir, LedgerDir)
	var b [8]byte
	_, _ = rand.Read(b[:])
	p := filepath.Join(ld, ".probe-"+hex.EncodeToString(b[:]))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte("probe\n"))
	cerr := f.Close()
	rerr := os.Remove(p)
	return errors.Join(werr, cerr, rerr)
}

// lock serialises work on one delivery id inside this process.
func (a *Adapter) lock(id string) func() {
	m := a.lockOf(id)
	m.Lock()
	return m.Unlock
}

// tryLock takes the lock of delivery id if it is free (never waiting, so work on
// other deliveries may use it while holding a lock: the locks are shared by hash).
func (a *Adapter) tryLock(id string) (func(), bool) {
	m := a.lockOf(id)
	if !m.TryLock() {
		return nil, false
	}
	return m.Unlock, true
}

func (a *Adapter) lockOf(id string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return &a.locks[h.Sum32()%uint32(len(a.locks))]
}

// fileID is the delivery id as a file name: itself when it is plainly safe, else a
// digest (the ledger record carries the full id and is checked against it).
func fileID(id string) string {
	ok := id != "" && len(id) <= 100 && id[0] != '.'
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if ok {
		return id
	}
	s := sha256.Sum256([]byte(id))
	return "h" + hex.EncodeToString(s[:16])
}

// Deliver implements adapters.Adapter: it writes the case folder and answers Pending
// (the office confirms by its import, see Confirmed).
func (a *Adapter) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, error) {
	if err := a.gate.Begin(ctx, "transfer"); err != nil {
		return adapters.Confirmation{}, err
	}
	defer a.gate.Leave()
	dir, err := officeDir(d.Target)
	if err != nil {
		return adapters.Confirmation{}, err
	}
	if err := statOffice(dir); err != nil {
		a.log.Info("transfer: attempt failed", "delivery", d.ID, "office", d.OfficeID, "folder", dir, "err", err)
		return adapters.Confirmation{}, err
	}
	unlock := a.lock(d.ID)
	defer unlock()
	// The lock of this process keeps its own work on d out; the lock on the
	// share that of the other gateways of a cluster (sharelock.go).
	sl, err := a.lockShare(ctx, dir, fileID(d.ID), "attempt", true)
	if err != nil {
		a.log.Info("transfer: attempt failed", "delivery", d.ID, "office", d.OfficeID, "folder", dir,
			"attempt", d.Attempt, "reason", adapters.PublicReason(err), "err", err)
		return adapters.Confirmation{}, err
	}
	defer sl.release()

	c, err := a.deliver(ctx, dir, d, sl)
	if err != nil && ctx.Err() != nil {
		// Stopped, not failed: the gateway's shutdown, the attempt's time up, or a
		// clerk's takeover in the web mailbox (the cause says which); the office's
		// folder is not at fault.
		a.log.Info("transfer: attempt stopped", "delivery", d.ID, "office", d.OfficeID, "folder", dir,
			"attempt", d.Attempt, "cause", context.Cause(ctx))
		return adapters.Confirmation{}, err
	}
	if err != nil {
		a.log.Info("transfer: attempt failed", "delivery", d.ID, "office", d.OfficeID, "folder", dir,
			"attempt", d.Attempt, "reason", adapters.PublicReason(err), "err", err)
		return adapters.Confirmation{}, err
	}
	a.watch(dir)
	a.schedulePrune(dir, fileID(d.ID))
	return c, nil
}

func (a *Adapter) confirmation(dir, caseName string, at time.Time) adapters.Confirmation {
	return adapters.Confirmation{Receiver: "transfer folder " + dir, At: at, Reference: caseName, Pending: true}
}

func (a *Adapter) deliver(ctx context.Context, dir string, d adapters.Delivery, sl *shareLock) (adapters.Confirmation, error) {
	fid := fileID(d.ID)
	// 1. Already handed over (the ledger says so): no second case, whether the office
	//    imported the first one or not.
	//    A pending record is a hand-over an earlier attempt began and did not record:
	//    settled first (resolvePending).
	rec, err := readLedger(dir, fid)
	switch {
	case err == nil && rec.DeliveryID != d.ID:
		return adapters.Confirmation{}, &Error{Reason: ReasonWrite, Err: errors.New("ledger record belongs to another delivery id")}
	case err == nil && rec.withdrawn():
		// An erasure withdrew it: the application must not reach the office
		// after all, nor count as handed over (adapters.Withdrawer).
		return adapters.Confirmation{}, adapters.Permanent(ReasonWithdrawn, adapters.ErrWithdrawn)
	case err == nil && rec.pending():
		c, handed, err := a.resolvePending(dir, fid, rec, d)
		if err != nil || handed {
			return c, err
		}
		// Not renamed: nothing was handed over; write the case afresh.
	case err == nil:
		a.noteHandover(dir, fid, rec, d.Attempt)
		a.log.Info("transfer: already handed over", "delivery", d.ID, "office", d.OfficeID, "case", rec.Case, "attempt", d.Attempt)
		return a.confirmation(dir, rec.Case, rec.WrittenAt), nil
	case !errors.Is(err, fs.ErrNotExist):
		return adapters.Confirmation{}, classify("read ledger", err)
	}

	if err != nil && a.keep > 0 && !d.CreatedAt.IsZero() && a.now().Sub(d.CreatedAt) > a.keep {
		// Its record may have been pruned (prune.go): had the case been handed over
		// here and imported, the office gets it a second time.
		a.log.Warn("transfer: no ledger record of a delivery accepted longer ago than confirmed records are kept; "+
			"if it was handed over into this folder before, the office gets it again (same delivery_id)",
			"delivery", d.ID, "office", d.OfficeID, "folder", dir, "accepted", d.CreatedAt.UTC(), "keep", a.keep.String())
	}

	// 2. A case folder of this delivery without a ledger record: a crash after the
	//    rename (by a version without pending records), or a record pruned. Adopt
	//    it. Otherwise find the first free name.
	own, name, err := caseFolderOf(dir, d)
	if err != nil {
		return adapters.Confirmation{}, classify("look for case folder", err)
	}
	if own != "" {
		at := a.now()
		if err := writeLedger(dir, fid, &ledgerRecord{DeliveryID: d.ID, SubmissionID: d.SubmissionID, Case: own,
			WrittenAt: at, Handovers: []handover{{Attempt: d.Attempt, At: at}}}); err != nil {
			return adapters.Confirmation{}, classify("write ledger", err)
		}
		a.log.Info("transfer: adopted case folder written before a crash", "delivery", d.ID, "office", d.OfficeID, "case", own)
		return a.confirmation(dir, own, at), nil
	}
	if name == "" {
		return adapters.Confirmation{}, &Error{Reason: ReasonWrite, Err: fmt.Errorf("no free case folder name after %d tries", maxCaseSuffix)}
	}

	// 3. Write into the temporary folder (a leftover of an earlier attempt of this
	//    delivery is removed first), then rename.
	tmp := filepath.Join(dir, TempPrefix+fid)
	if a.atStep != nil {
		a.atStep("write", tmp)
	}
	if err := sl.check(); err != nil {
		return adapters.Confirmation{}, err
	}
	if err := os.RemoveAll(tmp); err != nil {
		return adapters.Confirmation{}, classify("remove leftover temporary folder", err)
	}
	at := a.now()
	if err := a.writeCase(ctx, tmp, name, dir, d, at); err != nil {
		_ = os.RemoveAll(tmp) // free the space; the next attempt starts afresh
		return adapters.Confirmation{}, err
	}
	if err := ctx.Err(); err != nil {
		_ = os.RemoveAll(tmp)
		return adapters.Confirmation{}, fmt.Errorf("transfer: %w", err)
	}
	// The ledger folder again, just before the case becomes visible: the check at
	// the start of the attempt is long past (the wait for the delivery's lock, the
	// writing of the case), and a share unmounted meanwhile leaves the bare mount
	// point, where the temporary folder was then written. Renamed there, the case
	// would lie on the local disk under the share, never imported. A share that
	// goes away after this check takes the temporary folder with it, so the rename
	// fails.
	if err := statLedger(dir); err != nil {
		_ = os.RemoveAll(tmp)
		return adapters.Confirmation{}, err
	}
	// 4. The pending record, durable before the rename: from here on the ledger says
	//    a hand-over of this case began, and the temporary folder says whether the
	//    rename happened. It is removed only by the rename, or after the pending
	//    record (abandon); so a retry that finds the record without the folder knows
	//    the case was handed over, even if the import took it before the hand-over
	//    was recorded (resolvePending).
	if a.atStep != nil {
		a.atStep("pending", tmp)
	}
	if err := sl.check(); err != nil {
		// Another gateway may hold the delivery's lock now, and a withdrawal
		// of it have written its record: nothing of this attempt's goes into
		// the ledger any more. Its own temporary folder goes, as no record
		// of this attempt names it.
		_ = os.RemoveAll(tmp)
		return adapters.Confirmation{}, err
	}
	if err := writeLedger(dir, fid, &ledgerRecord{DeliveryID: d.ID, SubmissionID: d.SubmissionID, PendingCase: name,
		WrittenAt: at}); err != nil {
		// It may be in place all the same (written, then the folder's fsync failed).
		abandon(dir, fid, tmp)
		return adapters.Confirmation{}, classify("write pending ledger record", err)
	}
	if a.beforeRename != nil {
		a.beforeRename(tmp)
	}
	// The context once more, at the point of no return: the broker cancels an
	// attempt whose case a clerk took over in the web mailbox meanwhile (the
	// writing of a large case takes seconds, the pending record's flushes on a
	// share milliseconds). Renamed, the case would be the office import's as
	// well as the clerk's: two people processing one application. Given up
	// here, it leaves no case folder, no hand-over and, as any attempt given up
	// before the rename, neither its pending record nor its temporary folder.
	//
	// The lock on the share is looked at first: lapsed, the ledger may hold
	// another gateway's record now (a withdrawal's, over this pending one),
	// which abandon would remove. The pending record and the temporary folder
	// stay then, and say "not renamed" to whoever comes next.
	if err := sl.check(); err != nil {
		return adapters.Confirmation{}, err
	}
	if err := ctx.Err(); err != nil {
		abandon(dir, fid, tmp)
		return adapters.Confirmation{}, fmt.Errorf("transfer: %w", err)
	}
	final := filepath.Join(dir, name)
	if err := os.Rename(tmp, final); err != nil {
		// Only a temporary folder still there proves the rename did not happen (a
		// network file system may report a rename it did as failed): then the
		// attempt is given up. Otherwise both stay for the retry to settle.
		if _, serr := os.Lstat(tmp); serr == nil {
			abandon(dir, fid, tmp)
		}
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return adapters.Confirmation{}, &Error{Reason: ReasonWrite, Err: errors.New("case folder name taken while writing")}
		}
		return adapters.Confirmation{}, classify("rename case folder", err)
	}
	if err := syncDir(dir); err != nil {
		return adapters.Confirmation{}, classify("sync office folder", err)
	}
	if a.afterRename != nil {
		a.afterRename(final)
	}
	if err := sl.check(); err != nil {
		// Handed over, but the lock may be another gateway's now, and its
		// withdrawal may have taken the case folder out under a withdrawal
		// record: the hand-over's record written over that would count the
		// erased case as handed over. The pending record stays, and the next
		// attempt or look settles it (resolvePending).
		return adapters.Confirmation{}, err
	}
	// 5. Record the hand-over, over the pending record. Should this fail (the share
	//    full or gone just now), the attempt fails and the retry finds the pending
	//    record without the temporary folder: handed over, whether the case folder
	//    is still there or the import took it meanwhile; never a second case.
	if err := writeLedger(dir, fid, &ledgerRecord{DeliveryID: d.ID, SubmissionID: d.SubmissionID, Case: name,
		WrittenAt: at, Handovers: []handover{{Attempt: d.Attempt, At: at}}}); err != nil {
		return adapters.Confirmation{}, classify("write ledger", err)
	}
	a.log.Info("transfer: case folder written", "delivery", d.ID, "office", d.OfficeID, "folder", dir, "case", name,
		"attempt", d.Attempt, "attachments", len(d.Attachments))
	a.removeStaleTemps(dir, fid)
	return a.confirmation(dir, name, at), nil
}

// resolvePending settles a hand-over that an earlier attempt began (its pending
// record was written) and did not record, through a failure or a crash between the
// pending record and the final one. The temporary folder tells whether the rename
// happened: once the pending record is written, the adapter removes that folder
// only by renaming it to the case folder, or after removing the pending record
// (abandon). handed reports that the case was handed over; c is then the answer.
// Otherwise the pending record is gone and the caller writes the case afresh.
func (a *Adapter) resolvePending(dir, fid string, rec *ledgerRecord, d adapters.Delivery) (c adapters.Confirmation, handed bool, err error) {
	renamed, err := pendingRenamed(dir, fid)
	switch {
	case err != nil:
		return adapters.Confirmation{}, false, classify("look for temporary folder", err)
	case !renamed:
		// Not renamed: nothing was handed over. The pending record goes first, and
		// durably, so that the temporary folder may go after it.
		if err := dropPending(dir, fid); err != nil {
			return adapters.Confirmation{}, false, classify("remove pending ledger record", err)
		}
		a.log.Info("transfer: hand-over begun before did not happen, writing the case again", "delivery", d.ID,
			"office", d.OfficeID, "attempt", d.Attempt)
		return adapters.Confirmation{}, false, nil
	}
	// Renamed: the case was handed over. Its folder is there, or the import took it
	// before the hand-over was recorded; or the share went away since the record
	// was read, and then the ledger folder is gone too.
	name := rec.PendingCase
	how := "case folder there"
	if _, err := os.Lstat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
		if err := statLedger(dir); err != nil {
			return adapters.Confirmation{}, false, err
		}
		how = "case folder taken by the import already"
	} else if err != nil {
		return adapters.Confirmation{}, false, classify("look for case folder", err)
	}
	if err := writeLedger(dir, fid, &ledgerRecord{DeliveryID: d.ID, SubmissionID: d.SubmissionID, Case: name,
		WrittenAt: rec.WrittenAt, Handovers: []handover{{Attempt: d.Attempt, At: a.now()}}}); err != nil {
		return adapters.Confirmation{}, false, classify("write ledger", err)
	}
	a.log.Info("transfer: recorded a hand-over begun before", "delivery", d.ID, "office", d.OfficeID, "case", name,
		"attempt", d.Attempt, "found", how)
	return a.confirmation(dir, name, rec.WrittenAt), true, nil
}

// pendingRenamed reports whether the attempt that left a pending ledger
// record for fid renamed its temporary folder into the case folder: the
// folder is gone, for after the pending record it goes only by the rename, or
// after the record (abandon). err is the look's, other than "not there".
func pendingRenamed(dir, fid string) (bool, error) {
	_, err := os.Lstat(filepath.Join(dir, TempPrefix+fid))
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, fs.ErrNotExist):
		return true, nil
	}
	return false, err
}

// dropPending removes a pending ledger record and makes that durable. In a folder
// without the ledger folder (a share unmounted meanwhile) it fails.
func dropPending(dir, fid string) error {
	if err := os.Remove(ledgerPath(dir, fid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Join(dir, LedgerDir))
}

// abandon gives up an attempt that may have written its pending record and did
// not rename its case: the record goes first, then the temporary folder. Should
// the record stay, so does the folder, and the next attempt finds both and starts
// afresh; the record without the folder would say the case was handed over.
func abandon(dir, fid, tmp string) {
	if dropPending(dir, fid) == nil {
		_ = os.RemoveAll(tmp)
	}
}

// caseFolderOf walks the names Deliver gives the case folder of d ("<base>",
// "<base>-2", … up to maxCaseSuffix): own is a folder of d found there by its
// index.json (one renamed into place whose ledger record is missing), free
// the first name with neither folder nor marker (a stale marker would confirm
// a new case at once), where Deliver writes it and after which it wrote none.
// Both "": every name is taken. err is the file system's, unclassified.
func caseFolderOf(dir string, d adapters.Delivery) (own, free string, err error) {
	base := caseBase(d)
	for i := 1; i <= maxCaseSuffix; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		p := filepath.Join(dir, name)
		_, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if _, merr := os.Lstat(p + MarkerSuffix); errors.Is(merr, fs.ErrNotExist) {
				return "", name, nil
			}
		case err != nil:
			return "", "", err
		default:
			if owner, _ := caseOwner(p); owner == d.ID {
				return name, "", nil
			}
		}
	}
	return "", "", nil
}

// caseBase is "<YYYYMMDD>-<submission id>", the date of acceptance in German time, so
// every attempt of a delivery computes the same name.
func caseBase(d adapters.Delivery) string {
	t := d.CreatedAt
	if t.IsZero() {
		t = time.Now()
	}
	sub := d.SubmissionID
	var sb strings.Builder
	for i := 0; i < len(sub) && sb.Len() < 64; i++ {
		c := sub[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' {
			sb.WriteByte(c)
		} else {
			sb.WriteByte('_')
		}
	}
	s := sb.String()
	if s == "" {
		s = fileID(d.ID)
	}
	return t.In(berlin).Format("20060102") + "-" + s
}

var berlin = func() *time.Location {
	if l, err := time.LoadLocation("Europe/Berlin"); err == nil {
		return l
	}
	return time.UTC
}()

// caseOwner reads the delivery id from a case folder's index.json.
func caseOwner(caseDir string) (string, error) {
	b, err := readFileLimited(filepath.Join(caseDir, IndexJSONFile), 4<<20)
	if err != nil {
		return "", err
	}
	var ix struct {
		DeliveryID string `json:"delivery_id"`
	}
	if err := json.Unmarshal(b, &ix); err != nil {
		return "", err
	}
	return ix.DeliveryID, nil
}

// readFileLimited reads a plain file of at most max bytes. The office's import
// can write where some of these files lie (a case folder is the office's once
// handed over) and put anything there: a named pipe, opened the usual way, waits
// for a writer for good, deaf to every deadline. So it is opened without waiting
// and refused unless it is a regular file (a link to one is followed).
func readFileLimited(p string, max int64) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errors.New("file too large")
	}
	return b, nil
}

// removeStaleTemps removes temporary folders of other deliveries left by a crash long
// ago (best effort), after the case of delivery fid was written into dir.
//
// Their age is taken by the share's clock: the file server sets a folder's time,
// so "now" is the time it gave fid's ledger record just written, not the
// gateway's clock (which stays the fallback). Against the gateway's clock a NAS
// whose clock fell back a few days, or a gateway's clock ahead, made every
// temporary folder look old, and each case delivered removed the ones other
// attempts were writing just then (TestStaleTempsByTheSharesClock).
func (a *Adapter) removeStaleTemps(dir, fid string) {
	now := shareClock(dir, fid, a.now())
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), TempPrefix) {
			continue
		}
		if info, err := e.Info(); err != nil || now.Sub(info.ModTime()) < staleTemp {
			continue
		}
		if fid, ok := strings.CutPrefix(e.Name(), withdrawalPrefix); ok {
			if a.removeStaleWithdrawal(dir, fid) {
				a.log.Info("transfer: removed the leftover of a withdrawn case folder", "folder", dir, "name", e.Name())
			}
			continue
		}
		if a.removeStaleTemp(dir, strings.TrimPrefix(e.Name(), TempPrefix), now) {
			a.log.Info("transfer: removed stale temporary folder", "folder", dir, "name", e.Name())
		}
	}
}

// shareClock is the share's clock about now: the time the file server gave
// delivery fid's ledger record in dir, just written; fallback (the gateway's
// clock) where it cannot be read. Leftovers' ages are taken by it
// (removeStaleTemps, schedulePrune).
func shareClock(dir, fid string, fallback time.Time) time.Time {
	if st, err := os.Stat(ledgerPath(dir, fid)); err == nil {
		return st.ModTime()
	}
	return fallback
}

// removeStaleTemp removes the temporary folder of delivery fid if it is still
// stale at now, under the delivery's lock, and reports whether it did. The lock
// keeps an attempt of the delivery out meanwhile, also one that takes over the
// leftover (a retry a day or more after the crash that left it): removed under
// it, that attempt failed, or, removed between its pending record and its
// rename, its next attempt took the case for handed over while none was
// (TestStaleTempOfAnAttemptUnderWayStays). A folder whose delivery has a pending
// ledger record goes only after that record: the record without the folder would
// say the case was handed over (resolvePending).
func (a *Adapter) removeStaleTemp(dir, fid string, now time.Time) bool {
	id := fid // the delivery id, unless it was too odd for a file name (fileID)
	if rec, err := readLedger(dir, fid); err == nil {
		id = rec.DeliveryID
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	unlock, ok := a.tryLock(id)
	if !ok {
		return false // an attempt of it is running (or this one shares its lock)
	}
	defer unlock()
	if lockedOnShare(dir, fid) {
		return false // an attempt or withdrawal of it runs on another gateway
	}
	// Looked at again under the lock: an attempt of the delivery that ran
	// between the listing and the lock may have written the folder afresh.
	tmp := filepath.Join(dir, TempPrefix+fid)
	if st, err := os.Lstat(tmp); err != nil || !st.IsDir() || now.Sub(st.ModTime()) < staleTemp {
		return false
	}
	rec, err := readLedger(dir, fid)
	switch {
	case errors.Is(err, fs.ErrNotExist) || err == nil && !rec.pending():
		return os.RemoveAll(tmp) == nil
	case err == nil && rec.DeliveryID == id:
		return dropPending(dir, fid) == nil && os.RemoveAll(tmp) == nil
	}
	return false // unreadable, or another delivery's record now: a later pass
}

// ledgerQuestion is delivery d's ledger record as a question about it reads
// it (Confirmed, HandedOver): the office folder, the record's file id, the
// record and readLedger's error as they came, with d's lock held until
// unlock, so no attempt of d writes meanwhile.
type ledgerQuestion struct {
	dir, fid string
	rec      *ledgerRecord
	err      error
	unlock   func()
}

// askLedger reads delivery d's ledger record under d's lock; an error is the
// context's or the target's, before anything was read or locked.
func (a *Adapter) askLedger(ctx context.Context, d adapters.Delivery) (ledgerQuestion, error) {
	if err := ctx.Err(); err != nil {
		return ledgerQuestion{}, fmt.Errorf("transfer: %w", err)
	}
	dir, err := officeDir(d.Target)
	if err != nil {
		return ledgerQuestion{}, err
	}
	q := ledgerQuestion{dir: dir, fid: fileID(d.ID), unlock: a.lock(d.ID)}
	q.rec, q.err = readLedger(dir, q.fid)
	return q, nil
}

// Confirmed implements adapters.Confirmer. A delivery counts as confirmed when the
// ledger says the adapter handed its case folder over and the folder is gone from the
// office folder (moved or deleted by the import) or carries the marker
// "<case folder>.ok". Without a ledger record (never written, or crashed before the
// rename) it is never confirmed.
func (a *Adapter) Confirmed(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, bool, error) {
	q, err := a.askLedger(ctx, d)
	if err != nil {
		return adapters.Confirmation{}, false, err
	}
	defer q.unlock()
	dir, fid, rec, err := q.dir, q.fid, q.rec, q.err
	if errors.Is(err, fs.ErrNotExist) {
		// Not handed over here, or the office folder is not the one the case went
		// into: an unmounted share shows no ledger either, which is why the ledger
		// lives in it. Neither is an import. The second is said, as HandedOver
		// says it: answered "not yet" in silence, an unmounted share went unseen
		// at an office that got no new case meanwhile (whose attempt would fail as
		// "transfer folder missing") until AmtsboteUnconfirmedForDays, days later;
		// as an error the broker logs it once a minute per office. The look costs a
		// stat only when the record is missing, which a handed-over case's is not.
		if err := statLedger(dir); err != nil {
			return adapters.Confirmation{}, false, err
		}
		return adapters.Confirmation{}, false, nil
	}
	if err != nil {
		return adapters.Confirmation{}, false, classifyRead("read ledger", err)
	}
	if rec.DeliveryID != d.ID {
		return adapters.Confirmation{}, false, nil // another delivery's record
	}
	if rec.pending() {
		// A hand-over begun and not recorded: whether its case folder was ever
		// renamed into place only the temporary folder tells, and only the
		// delivery's next attempt settles that (resolvePending). Its case folder
		// gone or marked is no import then: after a crash before the rename it
		// never came, and a confirmation would sign a Zustellbestaetigung for a
		// case the office never had. This check alone says so: the case folder
		// is looked for by the name the record gives in either state
		// (caseName). Before, the empty Case of a pending record did it unasked
		// (the office folder itself was looked at, which is there), and a change
		// that filled Case earlier would have undone it silently
		// (TestPendingRecordIsNoHandOver).
		return adapters.Confirmation{}, false, nil
	}
	if rec.withdrawn() {
		// An erasure withdrew the case folder, or is withdrawing it: gone it is
		// no import, and a confirmation would sign a Zustellbestaetigung for an
		// application the office never had. Had the office taken it first, the
		// withdrawal put the hand-over's record back (settleWithdrawal).
		return adapters.Confirmation{}, false, nil
	}
	name := rec.caseName()
	a.watch(dir)
	receiver := "import of " + dir
	if !rec.ConfirmedAt.IsZero() {
		return adapters.Confirmation{Receiver: receiver, At: rec.ConfirmedAt, Reference: name}, true, nil
	}
	caseDir := filepath.Join(dir, name)
	if mi, err := os.Lstat(caseDir + MarkerSuffix); err == nil && !mi.IsDir() {
		// The marker's time is the office's clock, or a copy tool's, and goes into the
		// signed Zustellbestaetigung: never before the hand-over, never after now.
		now := a.now()
		at := submission.ClampTime(mi.ModTime(), rec.WrittenAt, now)
		if at.Sub(mi.ModTime()).Abs() > markerSlack {
			a.log.Warn("transfer: marker time lies outside hand-over and now, the confirmation names the nearest",
				"delivery", d.ID, "office", d.OfficeID, "case", name, "marker_time", mi.ModTime().UTC(),
				"handed_over", rec.WrittenAt.UTC(), "now", now.UTC(), "confirmed_at", at.UTC())
		}
		rec.ConfirmedAt, rec.ConfirmNoticedAt = at, now
		if err := writeLedger(dir, fid, rec); err != nil {
			a.log.Warn("transfer: cannot record the confirmation in the ledger", "delivery", d.ID, "err", stripPath(err))
		}
		a.log.Info("transfer: import confirmed by marker", "delivery", d.ID, "office", d.OfficeID, "case", name)
		return adapters.Confirmation{Receiver: receiver, At: at, Reference: name}, true, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return adapters.Confirmation{}, false, classifyRead("look for marker", err)
	}
	if a.beforeCaseCheck != nil {
		a.beforeCaseCheck()
	}
	_, err = os.Lstat(caseDir)
	switch {
	case err == nil:
		return adapters.Confirmation{}, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return adapters.Confirmation{}, false, classifyRead("look for case folder", err)
	}
	// Gone. The ledger record is read again: a share unmounted since it was read
	// leaves the bare mount point, where the case folder is "gone" too, and that
	// is no import (the record of an import that never happened would be signed
	// in the Zustellbestaetigung). Still there, the office folder is the right one
	// and reachable: the import moved or deleted the case. Remember when we
	// noticed, so every later answer names the same time.
	// A withdrawal record now is another gateway's withdrawal (the delivery's
	// lock of this process is not the other's, and this question takes none on
	// the share): the folder is gone under its withdrawal name, no import
	// (TestConfirmedDuringAWithdrawalOnAnotherGateway). Written over, the
	// hand-over's record came back and the erased case was confirmed.
	if again, err := readLedger(dir, fid); err != nil || again.DeliveryID != d.ID || again.withdrawn() || again.pending() {
		return adapters.Confirmation{}, false, nil
	}
	at := a.now()
	rec.ConfirmedAt, rec.ConfirmNoticedAt = at, at
	if err := writeLedger(dir, fid, rec); err != nil {
		a.log.Warn("transfer: cannot record the confirmation in the ledger", "delivery", d.ID, "err", err)
	}
	a.log.Info("transfer: import confirmed, case folder gone", "delivery", d.ID, "office", d.OfficeID, "case", name)
	return adapters.Confirmation{Receiver: receiver, At: at, Reference: name}, true, nil
}

// HandedOver implements adapters.HandOverFinder: what the first step of the
// delivery's next attempt (deliver, resolvePending) would find in the ledger,
// without writing — a look for a case a clerk took over in the web mailbox,
// which no attempt will come for. A final record is a hand-over; a pending one
// is when its temporary folder is gone (the rename happened: after the pending
// record that folder goes only by the rename, or after the record); no record
// is none. The record is left as it is: nothing will ask for it again, and the
// office's IT, told to take the case folder out, sees what the gateway saw.
// A ledger folder that is not there (the share unmounted) is an error, not a
// "none": an unmounted share shows no records either.
func (a *Adapter) HandedOver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, bool, error) {
	q, err := a.askLedger(ctx, d)
	if err != nil {
		return adapters.Confirmation{}, false, err
	}
	defer q.unlock()
	dir, fid, rec, err := q.dir, q.fid, q.rec, q.err
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := statLedger(dir); err != nil {
			return adapters.Confirmation{}, false, err
		}
		return adapters.Confirmation{}, false, nil
	case err != nil:
		return adapters.Confirmation{}, false, classifyRead("read ledger", err)
	case rec.DeliveryID != d.ID:
		return adapters.Confirmation{}, false, nil // another delivery's record
	case rec.withdrawn():
		return adapters.Confirmation{}, false, nil // an erasure withdrew it (Withdraw)
	case rec.pending():
		renamed, err := pendingRenamed(dir, fid)
		switch {
		case err != nil:
			return adapters.Confirmation{}, false, classifyRead("look for temporary folder", err)
		case !renamed:
			return adapters.Confirmation{}, false, nil // nothing handed over
		}
		// Renamed, unless the share went away since the record was read
		// (then the ledger folder is gone too).
		if err := statLedger(dir); err != nil {
			return adapters.Confirmation{}, false, err
		}
	}
	return a.confirmation(dir, rec.caseName(), rec.WrittenAt), true, nil
}

// markerSlack is how far a marker's time may lie outside [hand-over, now] before the
// clamping is worth a warning: file systems store coarse times (FAT-style shares two
// seconds, Linux the last timer tick) and the office's clocks drift a little.
const markerSlack = time.Minute

// ledgerRecord is .amtsbote/<delivery>.json: the adapter's proof that it handed a
// case folder over, or, pending, that it began to.
type ledgerRecord struct {
	DeliveryID   string `json:"delivery_id"`
	SubmissionID string `json:"submission_id"`
	Case         string `json:"case"`
	// PendingCase names the case folder of a hand-over begun and not yet recorded:
	// written just before the temporary folder is renamed to it (deliver). Case is
	// then empty, so that a gateway of an older version, which knows no pending
	// records, refuses the record (and retries) instead of taking it for a
	// hand-over.
	PendingCase   string     `json:"pending_case,omitempty"`
	WrittenAt     time.Time  `json:"written_at"`
	HandoverCount int        `json:"handover_count"`
	Handovers     []handover `json:"handovers"` // the last maxHandovers
	ConfirmedAt   time.Time  `json:"confirmed_at,omitzero"`
	// ConfirmNoticedAt is when the adapter noticed the confirmation and first
	// answered yes (ConfirmedAt may be a marker's earlier time): the keep of a
	// pruned record counts from it.
	ConfirmNoticedAt time.Time `json:"confirm_noticed_at,omitzero"`
	// WithdrawnCase names the case folder of a delivery an erasure withdrew, or
	// is withdrawing (withdraw.go): Case and PendingCase are empty then, as
	// PendingCase keeps Case empty, so that a gateway of an older version
	// refuses the record instead of taking the folder it no longer finds for
	// the office's import.
	WithdrawnCase string `json:"withdrawn_case,omitempty"`
	// WithdrawnAt is when the withdrawal was done: the case folder out of the
	// import's sight (renamed to its withdrawal name), or no case folder to
	// withdraw. Zero while the withdrawal is begun and the rename may or may not
	// have happened (settleWithdrawal tells).
	WithdrawnAt time.Time `json:"withdrawn_at,omitzero"`
}

// pending reports whether r is a pending record: a hand-over begun and not
// recorded, which may or may not have happened (resolvePending tells by the
// temporary folder). Every decision between a begun and a recorded hand-over
// asks this, never whether Case is empty: Case is empty in a pending record
// only for older versions' sake, not as its mark.
func (r *ledgerRecord) pending() bool { return r.PendingCase != "" }

// withdrawn reports whether r is the record of a withdrawal, begun or done
// (withdraw.go): no hand-over any more, whatever its times say.
func (r *ledgerRecord) withdrawn() bool { return r.WithdrawnCase != "" }

// caseName is the case folder r names, pending, handed over or withdrawn.
func (r *ledgerRecord) caseName() string {
	switch {
	case r.pending():
		return r.PendingCase
	case r.withdrawn():
		return r.WithdrawnCase
	}
	return r.Case
}

type handover struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
}

func ledgerPath(dir, fid string) string { return filepath.Join(dir, LedgerDir, fid+".json") }

func readLedger(dir, fid string) (*ledgerRecord, error) {
	b, err := readFileLimited(ledgerPath(dir, fid), 1<<20)
	if err != nil {
		return nil, err
	}
	var r ledgerRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("ledger record: %w", err)
	}
	if r.pending() && r.Case != "" {
		return nil, errors.New("ledger record: both pending and handed over")
	}
	if r.withdrawn() && (r.Case != "" || r.pending()) {
		return nil, errors.New("ledger record: both withdrawn and handed over")
	}
	if name := r.caseName(); name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return nil, errors.New("ledger record: bad case folder name")
	}
	return &r, nil
}

func writeLedger(dir, fid string, r *ledgerRecord) error {
	if r.HandoverCount < len(r.Handovers) {
		r.HandoverCount = len(r.Handovers)
	}
	if n := len(r.Handovers); n > maxHandovers {
		r.Handovers = r.Handovers[n-maxHandovers:]
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	// The ledger folder must be there already (never created here): without it this
	// is not the office folder the start-up check saw, e.g. a share unmounted since.
	return writeFileAtomic(filepath.Join(dir, LedgerDir), fid+".json", b)
}

// noteHandover records a repeated hand-over of an existing case (best effort: the
// case is there whether or not the note can be written).
func (a *Adapter) noteHandover(dir, fid string, r *ledgerRecord, attempt int) {
	r.Handovers = append(r.Handovers, handover{Attempt: attempt, At: a.now()})
	r.HandoverCount++
	if err := writeLedger(dir, fid, r); err != nil {
		a.log.Warn("transfer: cannot note the repeated hand-over in the ledger", "err", stripPath(err))
	}
}

// writeFileAtomic writes dir/name through a temporary file, fsyncs it, renames it into
// place and fsyncs dir.
func writeFileAtomic(dir, name string, b []byte) error {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".tmp-"+hex.EncodeToString(rnd[:])+"-"+name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	// Some network file systems refuse fsync on a directory; the rename is still
	// what makes the case visible.
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}
