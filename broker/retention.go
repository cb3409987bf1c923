package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// Retention says how long what is kept after the office's final answer (accepted or
// rejected). Zero durations keep forever.
type Retention struct {
	// PackageBytes: the package, attachment and reply bytes (personal data in bulk).
	PackageBytes time.Duration
	// Records: the record, its event log and its receipts (the proof of what happened).
	Records time.Duration
	// BlobGrace: a blob no record references is removed only when it is older than
	// this, so a package whose record is being committed right now is never swept.
	BlobGrace time.Duration
	// CompactMinFree: a store that can rewrite its file while in use (store.DB)
	// does so after a run that left at least this many bytes, and at least half of
	// the file, free (0: 64 MiB; negative: never).
	CompactMinFree int64
}

// DefaultCompactMinFree is Retention.CompactMinFree's default.
const DefaultCompactMinFree = 64 << 20

// GCReport is what one GC run removed.
type GCReport struct {
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

// GC applies the retention: removes the bytes of answered cases whose PackageBytes
// period ended (event bytes_removed), deletes records whose Records period ended, and
// sweeps blobs no remaining record needs. It runs beside intake and delivery (each
// step is an ordinary store transaction), so it needs no pause.
func (b *Broker) GC(ctx context.Context, now time.Time, r Retention) (GCReport, error) {
	var rep GCReport
	if r.BlobGrace <= 0 {
		r.BlobGrace = time.Hour
	}
	expired := func(s *submission.Submission, keep time.Duration) bool {
		return keep > 0 && s.Decision != nil && !s.Decision.At.Add(keep).After(now)
	}
	var strip, drop []string
	needed := map[string]bool{}
	err := b.db.Scan(func(s *submission.Submission) bool {
		switch {
		case expired(s, r.Records):
			drop = append(drop, s.ID)
		case s.BytesRemovedAt != nil:
		case expired(s, r.PackageBytes):
			strip = append(strip, s.ID)
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
	why := fmt.Sprintf("retention: %s after the office's answer", r.PackageBytes)
	for _, id := range strip {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if _, err := b.changeSub(id, func(cur *submission.Submission, t time.Time) ([]submission.Event, error) {
			return cur.RemoveBytes(t, why)
		}); err != nil {
			return rep, fmt.Errorf("broker: gc %s: %w", id, err)
		}
		rep.BytesRemoved++
	}
	for _, id := range drop {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := b.db.Delete(id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return rep, fmt.Errorf("broker: gc delete %s: %w", id, err)
		}
		rep.RecordsDeleted++
	}
	if err := b.sweepBlobs(ctx, now, r, needed, &rep); err != nil {
		return rep, err
	}
	if err := b.compact(ctx, r, &rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// compact rewrites the store's file when the retention freed enough of it.
func (b *Broker) compact(ctx context.Context, r Retention, rep *GCReport) error {
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
	cr, err := c.Compact(ctx)
	if err != nil {
		return fmt.Errorf("broker: gc: %w", err)
	}
	rep.Compacted, rep.FileBefore, rep.FileAfter, rep.CompactPause = true, cr.Before, cr.After, cr.Pause
	return nil
}

// sweepBlobs removes blobs no record needs that are older than the grace period.
func (b *Broker) sweepBlobs(ctx context.Context, now time.Time, r Retention, needed map[string]bool, rep *GCReport) error {
	// Only a store that can delete a blob on condition that nobody put it again since
	// is swept: a record committed after the scan may reference an old blob whose
	// content a portal sent again, and Put refreshes its time.
	cond, ok := b.db.Blobs().(interface {
		DeleteIfOlder(digest string, before time.Time) (bool, error)
	})
	if !ok {
		return nil
	}
	var sweep []string
	var sizes []int64
	if err := b.db.Blobs().Walk(func(d string, size int64, written time.Time) bool {
		if !needed[d] && written.Before(now.Add(-r.BlobGrace)) {
			sweep = append(sweep, d)
			sizes = append(sizes, size)
		}
		return ctx.Err() == nil
	}); err != nil {
		return fmt.Errorf("broker: gc walk blobs: %w", err)
	}
	for i, d := range sweep {
		gone, err := cond.DeleteIfOlder(d, now.Add(-r.BlobGrace))
		if err != nil {
			return fmt.Errorf("broker: gc blob %s: %w", d, err)
		}
		if gone {
			rep.BlobsDeleted++
			rep.BlobBytesFreed += sizes[i]
		}
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

// ErrBytesRemoved: the retention period of the bytes ended; the record remains.
var ErrBytesRemoved = errors.New("the package bytes were removed after the retention period")

// applyRetention is one run of the background retention job (Config.RetentionEvery).
func (b *Broker) applyRetention(r Retention) {
	start := time.Now()
	rep, err := b.GC(b.ctx, time.Now().UTC(), r)
	if err != nil {
		if b.ctx.Err() == nil {
			b.log.Error("retention run failed", "err", err)
		}
		return
	}
	if rep.BytesRemoved+rep.RecordsDeleted+rep.BlobsDeleted > 0 || rep.LeftoverChunks > 0 || rep.Compacted {
		b.log.Info("retention applied", "bytes_removed", rep.BytesRemoved, "records_deleted", rep.RecordsDeleted,
			"blobs_deleted", rep.BlobsDeleted, "freed", rep.BlobBytesFreed, "leftover_chunks", rep.LeftoverChunks, "compacted", rep.Compacted,
			"file_before", rep.FileBefore, "file_after", rep.FileAfter, "compact_pause", rep.CompactPause.Round(time.Microsecond),
			"took", time.Since(start).Round(time.Millisecond))
	}
}
