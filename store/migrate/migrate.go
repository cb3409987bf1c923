// Package migrate moves a gateway's durable truth from one store to another — a
// single node's bbolt file into a cluster's replicated JetStream store and back —
// through a folder an operator can look at, copy and keep: records.jsonl (one line
// per submission: the record, its event log and its receipts) and blobs/<sha256>
// (package, attachment and reply bytes, checked against their names on import).
//
// Import writes each submission with store.Store's own calls (Create, then an
// UpdateWithReceipt for each further receipt), so the target's rules hold: the outbox
// follows the state, so packages still waiting for delivery are delivered by the
// gateway that runs on the target. Each imported record gets one more event,
// "imported", saying when and from where. Importing the same export twice changes
// nothing the second time (Create is idempotent by sender and message id), and one
// that an earlier run left half-written gets the receipts it lacks.
package migrate

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// EventImported marks a record written by Import.
const EventImported = "imported"

// receiptKinds are the receipts a record may have (broker.ReceiptIntake first).
var receiptKinds = []string{"Eingangsbestaetigung", "Zustellbestaetigung", "PeerEingangsbestaetigung"}

// line is one submission in records.jsonl.
type line struct {
	Submission *submission.Submission `json:"submission"`
	Events     []submission.Event     `json:"events"`
	Receipts   map[string][]byte      `json:"receipts"`
}

// Stats counts what a run did.
type Stats struct {
	Submissions, Blobs, Skipped int
}

// Export writes every submission of src into dir (which must not exist yet, so an
// export is never mixed with another). progress, if set, is called every 1000.
func Export(ctx context.Context, src store.Store, dir string, progress func(Stats)) (Stats, error) {
	var st Stats
	if err := os.Mkdir(dir, 0o750); err != nil {
		return st, fmt.Errorf("migrate: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "blobs"), 0o750); err != nil {
		return st, fmt.Errorf("migrate: %w", err)
	}
	// 0600 as the store and its backups: the export holds every applicant's data,
	// and os.Create's 0666 left it readable to every user of the machine.
	f, err := os.OpenFile(filepath.Join(dir, "records.jsonl"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return st, fmt.Errorf("migrate: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	ids, err := scanIDs(ctx, src)
	if err != nil {
		return st, err
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		l, n, err := exportRecord(ctx, src, dir, id)
		if errors.Is(err, errGone) {
			continue
		}
		if err != nil {
			return st, err
		}
		st.Blobs += n
		if err := enc.Encode(l); err != nil {
			return st, err
		}
		st.Submissions++
		if progress != nil && st.Submissions%1000 == 0 {
			progress(st)
		}
	}
	if err := w.Flush(); err != nil {
		return st, err
	}
	return st, f.Sync()
}

// errGone says a submission was deleted after the scan listed it.
var errGone = errors.New("migrate: deleted since the scan")

// exportRecord reads the submission id of src with its events and receipts,
// writes its blobs into dir and returns its line and how many blob files it
// wrote. In cluster mode an export runs beside the serving gateways, whose
// retention or an erasure may delete the record, or remove its bytes, while it
// is read: the export failed on the first such case ("blob … not found"), as
// Check did (gone). A record deleted since the scan is errGone; one whose
// bytes went while they were copied is read again and exported as it is now,
// without them, and the files written for it are removed again — the export
// holds no bytes of a case erased meanwhile.
func exportRecord(ctx context.Context, src store.Store, dir, id string) (line, int, error) {
	for {
		s, err := src.Get(id)
		if errors.Is(err, store.ErrNotFound) {
			return line{}, 0, errGone
		}
		if err != nil {
			return line{}, 0, fmt.Errorf("migrate: %s: %w", id, err)
		}
		evs, err := src.Events(id)
		if err != nil {
			return line{}, 0, fmt.Errorf("migrate: events of %s: %w", id, err)
		}
		l := line{Submission: s, Events: evs, Receipts: map[string][]byte{}}
		for _, k := range receiptKinds {
			if r, err := src.Receipt(id, k); err == nil {
				l.Receipts[k] = r
			} else if !errors.Is(err, store.ErrNotFound) {
				return line{}, 0, fmt.Errorf("migrate: receipt of %s: %w", id, err)
			}
		}
		var wrote []string
		var berr error
		for _, d := range bytesOf(s) {
			n, err := exportBlob(ctx, src, dir, d)
			if err != nil {
				berr = fmt.Errorf("migrate: blob %s of %s: %w", d, id, err)
				break
			}
			if n > 0 {
				wrote = append(wrote, d)
			}
		}
		if berr == nil {
			return l, len(wrote), nil
		}
		if ctx.Err() != nil || !gone(src, id) {
			return line{}, 0, berr
		}
		for _, d := range wrote {
			if err := os.Remove(filepath.Join(dir, "blobs", d)); err != nil {
				return line{}, 0, fmt.Errorf("migrate: blob %s of %s: %w", d, id, err)
			}
		}
	}
}

// exportBlob copies one blob of src into dir and returns 1, or 0 when dir
// holds it already. A copy that fails is removed: a record that shares the
// blob would find the cut file and take it as whole.
func exportBlob(ctx context.Context, src store.Store, dir, digest string) (n int, err error) {
	path := filepath.Join(dir, "blobs", digest)
	if _, err := os.Stat(path); err == nil {
		return 0, nil // shared by several submissions
	}
	rc, err := src.Blobs().Open(ctx, digest)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if _, err := io.Copy(f, rc); err != nil {
		return 0, err
	}
	return 1, f.Sync()
}

// ErrNotExport says a folder is not one Export wrote, or its first record cannot
// be read.
var ErrNotExport = errors.New("migrate: not an export")

// CheckExport says why dir is not a folder Export wrote, before anything is
// written: records.jsonl with blobs/ beside it, and a first record that decodes
// and names its submission with the blobs it needs (an empty records.jsonl is
// the export of an empty store). An operator calls it before opening the
// target, which creates an empty store: a wrong folder, or a file that is no
// export's, left that store in the way of a later restore. Damage further down
// the file is found by Import, which can be run again once it is mended.
func CheckExport(dir string) error {
	f, err := os.Open(filepath.Join(dir, "records.jsonl"))
	if err != nil {
		return fmt.Errorf("%w: %s (store export writes records.jsonl and blobs/ there): %w", ErrNotExport, dir, err)
	}
	defer f.Close()
	if fi, err := os.Stat(filepath.Join(dir, "blobs")); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: %s has records.jsonl but no blobs/ folder beside it", ErrNotExport, dir)
	}
	var l line
	switch err := json.NewDecoder(bufio.NewReader(f)).Decode(&l); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return fmt.Errorf("%w: the first line of %s/records.jsonl is no exported record: %w", ErrNotExport, dir, err)
	case l.Submission == nil || l.Submission.ID == "":
		return fmt.Errorf("%w: the first line of %s/records.jsonl names no submission", ErrNotExport, dir)
	}
	for _, d := range bytesOf(l.Submission) {
		if _, err := os.Stat(filepath.Join(dir, "blobs", d)); err != nil {
			return fmt.Errorf("%w: the first record's blob %s is not in %s/blobs: %w", ErrNotExport, d, dir, err)
		}
	}
	return nil
}

// Import writes the export in dir into dst. A submission dst already holds (same
// sender and message id) is skipped. Blob bytes are checked against their digest.
func Import(ctx context.Context, dst store.Store, dir, from string, progress func(Stats)) (Stats, error) {
	var st Stats
	f, err := os.Open(filepath.Join(dir, "records.jsonl"))
	if err != nil {
		return st, fmt.Errorf("migrate: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		var l line
		if err := dec.Decode(&l); errors.Is(err, io.EOF) {
			return st, nil
		} else if err != nil {
			return st, fmt.Errorf("migrate: records.jsonl after %d records: %w", st.Submissions+st.Skipped, err)
		}
		if l.Submission == nil {
			return st, errors.New("migrate: a line without a submission")
		}
		blobs := bytesOf(l.Submission)
		if len(blobs) > 0 {
			held, err := holds(dst, l.Submission)
			if err != nil {
				return st, fmt.Errorf("migrate: %s: %w", l.Submission.ID, err)
			}
			if held {
				blobs = nil
			}
		}
		for _, d := range blobs {
			created, err := importBlob(ctx, dst, dir, d)
			if err != nil {
				return st, fmt.Errorf("migrate: blob %s of %s: %w", d, l.Submission.ID, err)
			}
			if created { // was never counted: every import said "0 blobs"
				st.Blobs++
			}
		}
		created, err := importRecord(ctx, dst, l, from)
		if err != nil {
			return st, fmt.Errorf("migrate: %s: %w", l.Submission.ID, err)
		}
		if created {
			st.Submissions++
		} else {
			st.Skipped++
		}
		if progress != nil && (st.Submissions+st.Skipped)%1000 == 0 {
			progress(st)
		}
	}
}

// holds reports whether dst already holds a record of s's sender and message
// id. Its blobs were imported before it was created, and the record is not
// written again (importRecord): bytes put back now would be those of a case
// erased on the target since, or whose bytes the retention removed there —
// unreferenced, but the applicant's data until the next sweep.
func holds(dst store.Store, s *submission.Submission) (bool, error) {
	_, err := dst.FindByMessage(s.Sender, s.MessageID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// importBlob streams one blob of the export into dst, checking its digest on the
// way: an attachment may be gigabytes (it was read whole into memory, 415 MB of
// RSS for a 400 MB attachment). It reports whether dst did not hold it before.
func importBlob(ctx context.Context, dst store.Store, dir, digest string) (bool, error) {
	f, err := os.Open(filepath.Join(dir, "blobs", digest))
	if err != nil {
		return false, err
	}
	defer f.Close()
	p, err := dst.Blobs().PutStream(ctx, f, -1, digest)
	if errors.Is(err, store.ErrDigestMismatch) {
		return false, errors.New("bytes differ from their digest")
	}
	return p.Created, err
}

// importRecord writes one line into dst and reports whether it wrote anything.
//
// Create and the further receipts are separate writes: a run that stopped in
// between (killed, the target out of reach) left a record without its delivery
// receipt, and the next run, finding the record, skipped it — the receipt was
// lost for good. So a record dst already holds under the same id, in the state
// of the line, gets the receipts of the line it lacks (a record complete before
// is left as it is).
func importRecord(ctx context.Context, dst store.Store, l line, from string) (bool, error) {
	intake := receiptKinds[0]
	// The "imported" event comes with the record's Create: with a later write,
	// a run stopped in between left a record without it, which the next run
	// found complete and passed by.
	now := time.Now().UTC()
	evs := append(slices.Clone(l.Events), submission.Event{At: now, Type: EventImported, Detail: "imported from " + from})
	stored, _, created, err := dst.Create(ctx, l.Submission, evs, intake, l.Receipts[intake])
	if err != nil {
		return false, err
	}
	if !created && (stored == nil || stored.ID != l.Submission.ID || stored.State != l.Submission.State || stored.Generation != l.Submission.Generation) {
		// Another record of the same sender and message id, or this one moved on
		// in dst since (a receipt of the export would not match its event log).
		return false, nil
	}
	wrote := false
	for _, k := range receiptKinds[1:] {
		r, ok := l.Receipts[k]
		if !ok {
			continue
		}
		if !created {
			if _, err := dst.Receipt(stored.ID, k); err == nil {
				continue
			} else if !errors.Is(err, store.ErrNotFound) {
				return false, err
			}
		}
		// Each further receipt is written with a change, and a note that it
		// came along.
		e := submission.Event{At: now, Type: EventImported, Detail: k + " imported from " + from}
		if _, _, err := dst.UpdateWithReceipt(stored.ID, k, r, func(*submission.Submission) ([]submission.Event, error) {
			return []submission.Event{e}, nil
		}); err != nil {
			return false, err
		}
		wrote = true
	}
	return created || wrote, nil
}

// Unreadable is a stored blob that Check could not read whole with its digest.
type Unreadable struct {
	SubmissionID, Digest string
	Err                  error
}

// CheckStats counts what Check read.
type CheckStats struct {
	Submissions, Blobs, Unreadable, IndexFaults int
}

// Check reads every blob the submissions of src name (package, attachments,
// replies; not those the retention removed, also not while Check ran) to its
// end, checks its SHA-256, and returns those it could not read whole. It is for a store that may hold damage the
// gateway cannot see until an office asks for the bytes: a cluster store written
// during NATS node failures by a build before 2026-12-02, whose object store could
// keep a meta message whose chunks were purged (docs/cluster.md, "Limits").
// progress, if set, is called every 1000 submissions.
//
// It also compares each record with the waiting indexes (outbox, handed over,
// held, undecided: membership by state, and the entry's value) and with the
// entries its writes keep elsewhere — its office's list, its idempotency key,
// its replies by message id, a Nachreichung's entry under its case
// (recordFaults), and the entries of those indexes no record accounts for,
// which reindex removes (strayFaults: store.StrayLister, both stores; on a
// cluster named only if reindex would remove them at that moment) — and
// returns what disagrees on a second look (IndexFault):
// the check an operator runs after an upgrade or a disk fault, which
// docs/architecture.md promised and which read only blobs.
func Check(ctx context.Context, src store.Store, progress func(CheckStats)) (CheckStats, []Unreadable, []IndexFault, error) {
	st, bad, view, faults, err := check(ctx, src, progress)
	if err != nil {
		return st, bad, nil, err
	}
	more, err := view.dangling(src)
	if err != nil {
		return st, bad, nil, fmt.Errorf("migrate: index entries: %w", err)
	}
	if faults, err = confirmFaults(src, append(faults, more...)); err != nil {
		return st, bad, nil, fmt.Errorf("migrate: index entries: %w", err)
	}
	stray, err := strayFaults(ctx, src)
	if err != nil {
		return st, bad, nil, fmt.Errorf("migrate: index entries: %w", err)
	}
	faults = append(faults, stray...)
	st.IndexFaults = len(faults)
	return st, bad, faults, nil
}

func check(ctx context.Context, src store.Store, progress func(CheckStats)) (CheckStats, []Unreadable, *indexView, []IndexFault, error) {
	var st CheckStats
	view, err := readIndexes(src)
	if err != nil {
		return st, nil, nil, nil, err
	}
	ids, err := scanIDs(ctx, src)
	if err != nil {
		return st, nil, nil, nil, err
	}
	var faults []IndexFault
	var bad []Unreadable
	read := map[string]error{} // digest -> result, for blobs shared by several submissions
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return st, bad, nil, nil, err
		}
		s, err := src.Get(id)
		if errors.Is(err, store.ErrNotFound) {
			continue // removed since the scan
		}
		if err != nil {
			return st, bad, nil, nil, fmt.Errorf("migrate: %s: %w", id, err)
		}
		st.Submissions++
		fs, err := recordFaults(src, view, s)
		if err != nil {
			return st, bad, nil, nil, err
		}
		faults = append(faults, fs...)
		if s.BytesRemovedAt == nil {
			var failed []Unreadable
			for _, d := range s.Digests() {
				err, seen := read[d]
				if !seen {
					err = readWhole(ctx, src, d)
					if ctx.Err() != nil {
						return st, bad, nil, nil, ctx.Err()
					}
					read[d] = err
					st.Blobs++
				}
				if err != nil {
					failed = append(failed, Unreadable{SubmissionID: id, Digest: d, Err: err})
				}
			}
			if len(failed) > 0 && gone(src, id) {
				// The retention (or an erasure) removed the bytes while they were
				// read: in cluster mode Check runs beside the serving gateways. No
				// damage; another record that names the same bytes reads them anew.
				for _, u := range failed {
					delete(read, u.Digest)
				}
				failed = nil
			}
			bad = append(bad, failed...)
			st.Unreadable += len(failed)
		}
		if progress != nil && st.Submissions%1000 == 0 {
			progress(st)
		}
	}
	return st, bad, view, faults, nil
}

// gone reports whether the record id no longer names bytes: deleted, or its
// bytes removed since Check read it.
func gone(src store.Store, id string) bool {
	s, err := src.Get(id)
	return errors.Is(err, store.ErrNotFound) || (err == nil && s.BytesRemovedAt != nil)
}

// readWhole reads a blob to its end and compares its SHA-256 with its name.
func readWhole(ctx context.Context, src store.Store, digest string) error {
	rc, err := src.Blobs().Open(ctx, digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = store.CopyChecked(ctx, io.Discard, rc, -1, digest, digest)
	return err
}

// scanIDs lists the ids of every submission of src; Export and Check then read
// each submission on its own, outside the scan.
func scanIDs(ctx context.Context, src store.Store) ([]string, error) {
	var ids []string
	if err := src.Scan(func(s *submission.Submission) bool {
		ids = append(ids, s.ID)
		return ctx.Err() == nil
	}); err != nil {
		return nil, fmt.Errorf("migrate: scan: %w", err)
	}
	return ids, nil
}

// bytesOf are the blobs a record still has: none once the retention removed its
// bytes (BytesRemovedAt), though the record keeps their digests. Export and
// import asked for them and stopped at the first aged record, so no gateway that
// had run its retention could be moved (Check skipped them already).
func bytesOf(s *submission.Submission) []string {
	if s.BytesRemovedAt != nil {
		return nil
	}
	return s.Digests()
}
