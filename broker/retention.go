package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// Retention says how long what is kept after the office's final answer (accepted or
// rejected). Zero durations keep forever.
type Retention struct {
	// PackageBytes: the package, attachment and reply bytes (personal data in
	// bulk), and the text from outside the gateway in the case's events (an
	// office's error answer; submission.DropOutsideText).
	PackageBytes time.Duration
	// Records: the record, its event log and its receipts (the proof of what happened).
	Records time.Duration
	// Unanswered: the bytes of a case delivered to its office and never answered
	// go this long after the delivery (0: never). Without it such a case kept
	// the applicant's data for good: storage limitation (Art. 5 (1) e DSGVO)
	// needs an end, and an office that only takes a transfer folder cannot
	// answer at all (a data protection audit).
	Unanswered time.Duration
	// BlobGrace: a blob no record references is removed only when it is older than
	// this, so a package whose record is being committed right now is never swept
	// (default an hour; at least store.HoldGrace, since a request under way keeps
	// its blobs only that fresh: intake's holding).
	BlobGrace time.Duration
	// CompactMinFree: a store that can rewrite its file while in use (store.DB)
	// does so after a run that left at least this many bytes, and at least half of
	// the file, free (0: 64 MiB; negative: never).
	CompactMinFree int64
}

// DefaultCompactMinFree is Retention.CompactMinFree's default.
const DefaultCompactMinFree = 64 << 20

// GCReport is what one GC run removed (with DryRun: would remove).
type GCReport struct {
	DryRun         bool
	BytesRemoved   int   // submissions whose bytes were removed
	RecordsDeleted int   // submissions deleted for good
	BlobsDeleted   int   // blob files removed
	BlobBytesFreed int64 // their size
	// LeftoverChunks: chunks of the JetStream blob store that no object named any
	// more (left by a node that died mid-delete or mid-upload), purged.
	LeftoverChunks uint64
	// Compacted: the store's file was rewritten, FileBefore -> FileAfter bytes,
	// with every operation waiting CompactPause for the swap.
	Compacted             bool
	FileBefore, FileAfter int64
	CompactPause          time.Duration
}

// GCPhase is the step a GC run is in.
type GCPhase int32

// A GC run's steps, in order.
const (
	GCScan    GCPhase = iota // reading every record
	GCRemove                 // removing bytes and deleting records that fell due
	GCBlobs                  // walking the blobs and sweeping those nothing needs
	GCCompact                // rewriting the store's file
	GCWipe                   // overwriting the file's free pages
)

// GCProgress counts a GC run's work while it goes, for `amtsbote gc`'s progress
// line: on a store with years of data a run reads millions of records and can
// take minutes (docs/performance.md, "A gateway with years of data"). Every field
// may be read at any time during the run.
type GCProgress struct {
	Phase       atomic.Int32 // a GCPhase
	Scanned     atomic.Int64 // records read
	Due         atomic.Int64 // cases found due (bytes to remove, records to delete)
	Done        atomic.Int64 // of them handled
	BlobsWalked atomic.Int64 // blobs looked at
	BlobsSwept  atomic.Int64 // blobs removed
	DryRun      atomic.Bool  // the run only counts (GCOptions.DryRun)
}

// Line is the progress as one line for a terminal.
func (p *GCProgress) Line() string {
	switch GCPhase(p.Phase.Load()) {
	case GCScan:
		return fmt.Sprintf("  reading records: %d, %d due so far\n", p.Scanned.Load(), p.Due.Load())
	case GCRemove:
		return fmt.Sprintf("  %d records read; removing what fell due: %d of %d\n", p.Scanned.Load(), p.Done.Load(), p.Due.Load())
	case GCBlobs:
		if p.DryRun.Load() {
			return fmt.Sprintf("  %d records read, %d due; blobs: %d looked at\n", p.Scanned.Load(), p.Due.Load(), p.BlobsWalked.Load())
		}
		return fmt.Sprintf("  %d of %d due cases done; blobs: %d looked at, %d removed\n", p.Done.Load(), p.Due.Load(), p.BlobsWalked.Load(), p.BlobsSwept.Load())
	case GCCompact:
		return "  rewriting the store file without its free pages\n"
	default:
		return "  overwriting the store file's free pages\n"
	}
}

// GC applies the retention: removes the bytes of answered cases whose PackageBytes
// period ended (event bytes_removed; the office's error texts in the case's
// events go with them, submission.DropOutsideText), deletes records whose Records period ended, and
// sweeps blobs no remaining record needs. It runs beside intake and delivery (each
// step is an ordinary store transaction), so it needs no pause.
func (b *Broker) GC(ctx context.Context, now time.Time, r Retention) (GCReport, error) {
	return b.GCWith(ctx, now, r, GCOptions{})
}

// GCOptions changes how one GC run goes.
type GCOptions struct {
	// Progress counts the run's work while it goes (nil: not counted).
	Progress *GCProgress
	// DryRun finds what the run would remove and reports it, and changes nothing:
	// no bytes removed, no record deleted, no blob swept, the file neither
	// compacted nor wiped. An operator asking "what would a date remove" (`amtsbote
	// gc -dry-run -now DATE`) must not lose the cases that answer the question.
	DryRun bool
}

// GCWith is GC with options.
func (b *Broker) GCWith(ctx context.Context, now time.Time, r Retention, o GCOptions) (GCReport, error) {
	p := o.Progress
	if p == nil {
		p = new(GCProgress)
	}
	rep := GCReport{DryRun: o.DryRun}
	p.DryRun.Store(o.DryRun)
	if r.BlobGrace <= 0 {
		r.BlobGrace = time.Hour
	}
	expired := func(s *submission.Submission, keep time.Duration) bool {
		// Counted from this gateway's own time of the decision: a peer's clock
		// behind (Decision.At) removed a case's bytes as soon as it was answered.
		return keep > 0 && s.Decision != nil && !s.Decision.DecidedLocally().Add(keep).After(now)
	}
	unanswered := func(s *submission.Submission) bool {
		return r.Unanswered > 0 && s.Decision == nil && s.State == submission.StateDelivered &&
			s.DeliveredAt != nil && !s.DeliveredAt.Add(r.Unanswered).After(now)
	}
	var stripAnswered, drop, stripUnanswered []string
	needed := map[string]bool{}
	var followers []follower
	p.Phase.Store(int32(GCScan))
	err := b.db.Scan(func(s *submission.Submission) bool {
		p.Scanned.Add(1)
		// Every record passes here once a run: the owed withdrawals of
		// before a restart, or noted by another gateway, are found again.
		b.noteOwedOf(s)
		switch {
		case expired(s, r.Records):
			drop = append(drop, s.ID)
			p.Due.Add(1)
		case s.CaseID != "" && s.Decision == nil && s.DeliveredAt != nil:
			// A Nachreichung its office took and did not answer itself goes
			// by its case's answer, read once the scan is done (below).
			followers = append(followers, follower{id: s.ID, caseID: s.CaseID, deliveredAt: *s.DeliveredAt,
				bytesGone: s.BytesRemovedAt != nil, unanswered: unanswered(s), digests: s.Digests()})
		case s.BytesRemovedAt != nil:
		case expired(s, r.PackageBytes):
			stripAnswered = append(stripAnswered, s.ID)
			p.Due.Add(1)
		case unanswered(s):
			stripUnanswered = append(stripUnanswered, s.ID)
			p.Due.Add(1)
		default:
			for _, d := range s.Digests() {
				needed[d] = true
			}
		}
		return ctx.Err() == nil
	})
	if err != nil {
		return rep, fmt.Errorf("broker: gc scan: %w", err)
	}
	var stripWithCase []string
	cases := map[string]*submission.Submission{} // a case with several Nachreichungen is read once
	for _, f := range followers {
		c, err := b.caseOf(cases, f.caseID)
		if err != nil {
			return rep, fmt.Errorf("broker: gc: the case of %s: %w", f.id, err)
		}
		// Counted from the later of the case's answer and the Nachreichung's
		// delivery: one sent after the case was answered long ago has its
		// period from when its office took it, not none.
		since := func(keep time.Duration) bool { return keep > 0 && !f.deliveredAt.Add(keep).After(now) }
		switch {
		case (c == nil || expired(c, r.Records)) && since(r.Records):
			drop = append(drop, f.id)
			p.Due.Add(1)
		case f.bytesGone:
		case c != nil && expired(c, r.PackageBytes) && since(r.PackageBytes):
			stripWithCase = append(stripWithCase, f.id)
			p.Due.Add(1)
		case f.unanswered:
			stripUnanswered = append(stripUnanswered, f.id)
			p.Due.Add(1)
		default:
			for _, d := range f.digests {
				needed[d] = true
			}
		}
	}
	if o.DryRun {
		if err := ctx.Err(); err != nil {
			return rep, err // the scan stopped early: its counts are not the answer
		}
		rep.BytesRemoved = len(stripAnswered) + len(stripUnanswered) + len(stripWithCase)
		rep.RecordsDeleted = len(drop)
		p.Phase.Store(int32(GCBlobs))
		if err := b.sweepBlobs(ctx, now, r, needed, &rep, p, true); err != nil {
			return rep, err
		}
		return rep, ctx.Err()
	}
	p.Phase.Store(int32(GCRemove))
	var neededMu sync.Mutex
	// strip removes the bytes of each case in ids with remove (the record stays),
	// and with them the text from outside the gateway in the case's events
	// (removeBytes: an office's error text kept for retention.records otherwise).
	//
	// A case may stop being due between the scan and its removal: the office
	// answers a case the scan found unanswered too long. remove refuses it
	// (ErrConflict); the case is passed over and its blobs are noted as needed,
	// since the scan left them out and the sweep below would take them. The
	// conflict ended the whole run before, with no sweep, compaction or wipe in
	// that period.
	//
	// The retention withdraws no copy outside the gateway (withdraw.go) but
	// one: it removes the bytes only of cases the office has (answered, or
	// delivered and unanswered), and on the transfer channel "delivered" is the
	// import having taken the case folder (moved, deleted or marked it), whose
	// copy is the office's. The one untaken case folder a delivered case can
	// have is that of an attempt a clerk's takeover in the web mailbox came
	// too late to stop (HandedOverAfterTakeoverAt): the clerk has the case, the
	// folder is a second copy no import should process. The gateway withdraws
	// it when it learns of it (tellLateHandOver); one that withdrawal could not
	// reach (the share did not answer) goes when the case's bytes go, unless the
	// import took it meanwhile. One whose withdrawal is settled (removed, or
	// taken by the import: lateFolderUnsettled) is not asked about again: a
	// share down at that moment made the case owe a withdrawal of a folder the
	// office had long since, said "could not be withdrawn" in its history and
	// kept the alert on until the share answered.
	strip := func(ids []string, remove func(cur *submission.Submission, t time.Time) ([]submission.Event, error)) (int, error) {
		return gcEach(ctx, ids, func(id string) (bool, error) {
			removed := false
			s, err := b.removeBytes(id, func(cur *submission.Submission, t time.Time) ([]submission.Event, error) {
				evs, err := remove(cur, t)
				removed = err == nil && len(evs) > 0
				return evs, err
			})
			if err == nil && removed && s != nil && lateFolder(s) && b.lateFolderUnsettled(s) {
				b.withdrawLate(s, s.TakenOverFrom, "retention", nil)
			}
			if errors.Is(err, ErrConflict) {
				cur, gerr := b.db.Get(id)
				if gerr != nil {
					return false, fmt.Errorf("broker: gc %s: %w (then: %w)", id, err, gerr)
				}
				neededMu.Lock()
				for _, d := range cur.Digests() {
					needed[d] = true
				}
				neededMu.Unlock()
				return false, nil
			}
			if err != nil {
				return false, fmt.Errorf("broker: gc %s: %w", id, err)
			}
			p.Done.Add(1)
			return true, nil
		})
	}
	why := fmt.Sprintf("retention: %s after the office's answer", r.PackageBytes)
	whyCase := fmt.Sprintf("retention: %s after the office's answer to its case", r.PackageBytes)
	whyUnanswered := fmt.Sprintf("retention: %s after the delivery, without an answer of the office", r.Unanswered)
	for _, due := range []struct {
		ids    []string
		remove func(cur *submission.Submission, t time.Time) ([]submission.Event, error)
	}{
		{stripAnswered, func(cur *submission.Submission, t time.Time) ([]submission.Event, error) {
			return cur.RemoveBytes(t, why)
		}},
		{stripWithCase, func(cur *submission.Submission, t time.Time) ([]submission.Event, error) {
			return cur.RemoveBytesWithCase(t, whyCase)
		}},
		{stripUnanswered, func(cur *submission.Submission, t time.Time) ([]submission.Event, error) {
			return cur.RemoveUnansweredBytes(t, whyUnanswered)
		}},
	} {
		n, err := strip(due.ids, due.remove)
		rep.BytesRemoved += n
		if err != nil {
			return rep, err
		}
	}
	n, err := gcEach(ctx, drop, func(id string) (bool, error) {
		if err := b.db.Delete(id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, fmt.Errorf("broker: gc delete %s: %w", id, err)
		}
		p.Done.Add(1)
		return true, nil
	})
	rep.RecordsDeleted = n
	if err != nil {
		return rep, err
	}
	p.Phase.Store(int32(GCBlobs))
	if err := b.sweepBlobs(ctx, now, r, needed, &rep, p, false); err != nil {
		return rep, err
	}
	if err := b.compact(ctx, r, &rep, p); err != nil {
		return rep, err
	}
	// What the run removed is gone from the records, but bbolt leaves the old
	// pages as they were until it reuses them: the file (and every backup of it)
	// would still hold the removed packages, the events as they were before the
	// office's error texts went, and the deleted records. A compaction
	// wrote a new file without them; otherwise the free pages are overwritten.
	if !rep.Compacted && rep.BytesRemoved+rep.RecordsDeleted+rep.BlobsDeleted > 0 {
		p.Phase.Store(int32(GCWipe))
		if err := b.wipeFree(); err != nil {
			return rep, fmt.Errorf("broker: gc: %w", err)
		}
	}
	return rep, nil
}

// follower is a Nachreichung (Submission.CaseID) its office took and has not
// answered itself, as the retention's scan met it: offices answer the case,
// seldom each document the applicant sent for it later, so its bytes go when
// the case's go and its record with the case's (an audit, 2026-12-07: with
// retention.unanswered off, the default, such a Nachreichung kept the
// applicant's bytes for good, and its record outlived its case's). One the
// office answered itself goes by its own answer, as every case does.
type follower struct {
	id, caseID            string
	deliveredAt           time.Time
	bytesGone, unanswered bool
	digests               []string
}

// caseOf reads the case id, once per run (read keeps what was read); nil when
// it is gone (the retention deleted its record: its Nachreichungen' go too,
// once their own period is over).
func (b *Broker) caseOf(read map[string]*submission.Submission, id string) (*submission.Submission, error) {
	if c, ok := read[id]; ok {
		return c, nil
	}
	c, err := b.db.Get(id)
	if errors.Is(err, store.ErrNotFound) {
		c, err = nil, nil
	}
	if err == nil {
		read[id] = c
	}
	return c, err
}

// wipeFault, when set (tests), fails a wipe of free pages.
var wipeFault func() error

// wipeFree overwrites the store's free pages where the store keeps removed data
// in its file until the space is reused (store.DB; JetStream purges its own).
func (b *Broker) wipeFree() error {
	if wipeFault != nil {
		if err := wipeFault(); err != nil {
			return err
		}
	}
	if w, ok := b.db.(store.FreeWiper); ok {
		_, err := w.WipeFree()
		return err
	}
	return nil
}

// compact rewrites the store's file when the retention freed enough of it.
func (b *Broker) compact(ctx context.Context, r Retention, rep *GCReport, p *GCProgress) error {
	c, ok := b.db.(store.Compactor)
	if !ok || r.CompactMinFree < 0 {
		return nil // JetStream compacts its own files
	}
	minFree := r.CompactMinFree
	if minFree == 0 {
		minFree = DefaultCompactMinFree
	}
	free, size, err := c.FreeBytes()
	if err != nil {
		return fmt.Errorf("broker: gc: %w", err)
	}
	if free < minFree || free*2 < size {
		return nil
	}
	p.Phase.Store(int32(GCCompact))
	cr, err := c.Compact(ctx)
	if err != nil {
		return fmt.Errorf("broker: gc: %w", err)
	}
	rep.Compacted, rep.FileBefore, rep.FileAfter, rep.CompactPause = true, cr.Before, cr.After, cr.Pause
	return nil
}

// sweepBlobs removes blobs no record needs that are older than the grace period;
// with dry, it only counts them in rep.
func (b *Broker) sweepBlobs(ctx context.Context, now time.Time, r Retention, needed map[string]bool, rep *GCReport, p *GCProgress, dry bool) error {
	// Only a store that can delete a blob on condition that nobody put it again since
	// is swept: a record committed after the scan may reference an old blob whose
	// content a portal sent again, and Put refreshes its time.
	cond, ok := b.db.Blobs().(store.CondDeleter)
	if !ok {
		return nil
	}
	var sweep []string
	sizes := map[string]int64{}
	if err := b.db.Blobs().Walk(func(d string, size int64, written time.Time) bool {
		p.BlobsWalked.Add(1)
		if !needed[d] && written.Before(now.Add(-r.BlobGrace)) {
			sweep = append(sweep, d)
			sizes[d] = size
		}
		return ctx.Err() == nil
	}); err != nil {
		return fmt.Errorf("broker: gc walk blobs: %w", err)
	}
	if dry {
		rep.BlobsDeleted = len(sweep)
		for _, d := range sweep {
			rep.BlobBytesFreed += sizes[d]
		}
		return nil
	}
	var freed atomic.Int64
	n, err := gcEach(ctx, sweep, func(d string) (bool, error) {
		gone, err := cond.DeleteIfOlder(d, now.Add(-r.BlobGrace))
		if err != nil {
			return false, fmt.Errorf("broker: gc blob %s: %w", d, err)
		}
		if gone {
			freed.Add(sizes[d])
			p.BlobsSwept.Add(1)
		}
		return gone, nil
	})
	rep.BlobsDeleted, rep.BlobBytesFreed = n, freed.Load()
	if err != nil {
		return err
	}
	// The cluster store's chunks that no object names: Walk cannot list them.
	if ch, ok := b.db.Blobs().(interface {
		SweepChunks(ctx context.Context, before time.Time) (int, uint64, error)
	}); ok {
		_, n, err := ch.SweepChunks(ctx, now.Add(-r.BlobGrace))
		rep.LeftoverChunks = n
		if err != nil {
			return fmt.Errorf("broker: gc leftover chunks: %w", err)
		}
	}
	return nil
}

// gcWriters is how many of a retention run's writes wait for the disk at once.
// One after another, each waited for a commit of its own: a run with 22,000
// writes to do (the first one on a store with years of history, or `amtsbote gc`
// after a long pause) took 245 s, and `amtsbote gc` runs while the gateway is
// stopped (docs/performance.md, "A gateway with years of data"). Concurrent
// writes share the store's group commits (store.DefaultBatchSize start one, up to
// four times as many go in it).
const gcWriters = 64

// gcEach runs fn for every id, gcWriters at a time, and returns how many calls
// reported done. The first error stops the run (calls already started finish)
// and is returned, as is the context's end.
func gcEach(ctx context.Context, ids []string, fn func(id string) (bool, error)) (int, error) {
	var (
		done  atomic.Int64
		next  atomic.Int64
		first error
		once  sync.Once
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(gcWriters, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				ok, err := fn(ids[i])
				if err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
				if ok {
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return int(done.Load()), first
	}
	return int(done.Load()), context.Cause(ctx)
}

// ErrBytesRemoved: the retention period of the bytes ended, or an operator erased
// them (Erase); the record remains.
var ErrBytesRemoved = errors.New("the package bytes were removed after the retention period")

// applyRetention is one run of the background retention job (Config.RetentionEvery).
//
// On a store several gateways share (store.Leaser: the cluster) the first gateway
// of each period runs it and the others skip that period: each run reads every
// record, and with every gateway doing it the store was read once per gateway. A
// run that fails gives its period back, so that a gateway whose run fails every
// time (its blob folder gone, say) does not keep the others from the work.
//
// A run whose wall clock jumped ahead of the monotonic clock since the last one
// is not made (clockGuard): the retention counts periods of months and years by
// the wall clock, and a clock set a year ahead stripped every answered case's
// bytes at the next run, ten years ahead deleted the records.
func (b *Broker) applyRetention(r Retention) {
	c := b.readClock()
	if step, ok := b.clock.check(c); !ok {
		b.metrics.clockStep.Set(step.Seconds())
		b.metrics.retention.WithLabelValues("paused").Inc()
		b.log.Error("retention paused: the wall clock jumped ahead since the last run; nothing is removed until the clock is right again, or the gateway is restarted once it is (docs/operations.md, \"The clock\")",
			"wall", c.wall, "jump", step.Round(time.Second), "last_run_wall", b.clock.last().wall)
		return
	}
	b.metrics.clockStep.Set(0)
	if l, ok := b.db.(store.Leaser); ok && b.cfg.RetentionEvery > 0 {
		slot := c.wall.Truncate(b.cfg.RetentionEvery)
		held, release, err := l.TryLease(b.ctx, "retention", slot, 2*b.cfg.RetentionEvery)
		switch {
		case err != nil:
			// Without an answer from the store, run: repeated work is safe
			// (every removal is compare-and-set), skipped work is data kept
			// beyond its period.
			b.log.Warn("retention: could not ask the store who runs this period; running here", "err", err)
		case !held:
			b.metrics.retention.WithLabelValues("skipped").Inc()
			b.log.Debug("retention: another gateway runs this period", "period", slot)
			return
		default:
			if err := b.runRetention(c.wall, r); err != nil {
				release()
			}
			return
		}
	}
	_ = b.runRetention(c.wall, r)
}

// runRetention runs the retention as of now once, counts and logs the run.
func (b *Broker) runRetention(now time.Time, r Retention) error {
	start := time.Now()
	var p GCProgress
	rep, err := b.GCWith(b.ctx, now, r, GCOptions{Progress: &p})
	if err != nil {
		if b.ctx.Err() == nil {
			b.log.Error("retention run failed", "err", err)
			b.metrics.observeRetention(err, start, time.Now(), p.Scanned.Load())
		}
		return err
	}
	b.metrics.observeRetention(nil, start, time.Now(), p.Scanned.Load())
	if rep.BytesRemoved+rep.RecordsDeleted+rep.BlobsDeleted > 0 || rep.LeftoverChunks > 0 || rep.Compacted {
		b.log.Info("retention applied", "bytes_removed", rep.BytesRemoved, "records_deleted", rep.RecordsDeleted,
			"blobs_deleted", rep.BlobsDeleted, "freed", rep.BlobBytesFreed, "leftover_chunks", rep.LeftoverChunks, "compacted", rep.Compacted,
			"file_before", rep.FileBefore, "file_after", rep.FileAfter, "compact_pause", rep.CompactPause.Round(time.Microsecond),
			"took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// clockReading is the wall clock and a monotonic one (time since the broker was
// built) read at one moment.
type clockReading struct {
	wall time.Time
	mono time.Duration
}

// clockStepTolerance is how far the wall clock may run ahead of the monotonic
// one between two retention runs before the retention pauses; clockDrift is the
// share of the elapsed time it may gain besides (NTP slews by at most 0.05 %).
// A jump below the tolerance moves a period of months by less than an hour.
const (
	clockStepTolerance = time.Hour
	clockDrift         = 1000 // 0.1 %
)

// clockGuard keeps the clock reading of the last retention run whose wall clock
// agreed with the monotonic one. A later reading whose wall clock advanced
// further than the monotonic clock by more than the tolerance is a jump ahead (an
// operator's typo, a hypervisor's bad time, a GPS or NTP source gone wrong): the
// run is skipped and the reference kept, so the retention resumes only when the
// wall clock is back in agreement with it, or when the gateway is restarted
// (which takes a new reference: the operator's confirmation that the time is
// right). The monotonic clock does not count a suspended machine's sleep, so a
// VM resumed after a day pauses the retention too, until a restart.
type clockGuard struct {
	mu   sync.Mutex
	ref  clockReading
	have bool
}

// agree takes c as the reference.
func (g *clockGuard) agree(c clockReading) {
	g.mu.Lock()
	g.ref, g.have = c, true
	g.mu.Unlock()
}

// last is the reference (zero before the first).
func (g *clockGuard) last() clockReading {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ref
}

// check reports whether c agrees with the reference (taking c as the new one
// then), and otherwise how far its wall clock jumped ahead. The first reading
// agrees.
func (g *clockGuard) check(c clockReading) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.have {
		elapsed := c.mono - g.ref.mono
		if step := c.wall.Sub(g.ref.wall) - elapsed; step > clockStepTolerance+elapsed/clockDrift {
			return step, false
		}
	}
	g.ref, g.have = c, true
	return 0, true
}

// lateFolderUnsettled reports whether the withdrawal of case s's late case
// folder (lateFolder) may still be to do: the record owes it
// (Submission.WithdrawalsOwed), or — a record of a build before the mark —
// its history's last word on the late folder is that it could not be
// withdrawn, or there is none (a crash before the gateway asked). A history
// that cannot be read counts as unsettled: asking again costs a question.
func (b *Broker) lateFolderUnsettled(s *submission.Submission) bool {
	if s.OwesWithdrawal(s.TakenOverFrom) {
		return true
	}
	evs, err := b.db.Events(s.ID)
	if err != nil {
		return true
	}
	last := ""
	for _, e := range evs {
		if out, ok := LateFolderWithdrawal(e); ok && e.Channel == s.TakenOverFrom {
			last = out
		}
	}
	return last == "" || last == WithdrawUnreachable
}
