package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/submission"
)

// fill puts n submissions in different states, with receipts and blobs, into st.
func fill(t *testing.T, st store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		pkg, _ := st.Blobs().Put([]byte(fmt.Sprintf("<Antragspaket>%d</Antragspaket>", i)))
		att, _ := st.Blobs().Put([]byte(fmt.Sprintf("%%PDF-1.4 %d", i)))
		s, evs := submission.New(submission.Params{ID: fmt.Sprintf("s%03d", i), DeliveryID: fmt.Sprintf("d%d", i),
			MessageID: fmt.Sprintf("m%d", i), Sender: "amt24", OfficeID: "office-a",
			Targets: []submission.Target{{Channel: "webhook"}}, PackageSHA256: pkg, PackageSize: 10,
			Attachments: []submission.Attachment{{ID: "a1", FileName: "x.pdf", SHA256: att, Size: 5}}}, time.Now().UTC())
		if _, _, _, err := st.Create(ctx, s, evs, "Eingangsbestaetigung", []byte("<Eingang "+s.ID+"/>")); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 { // delivered, with its receipt
			if _, _, err := st.UpdateWithReceipt(s.ID, "Zustellbestaetigung", []byte("<Zustellung "+s.ID+"/>"), func(c *submission.Submission) ([]submission.Event, error) {
				return c.Delivered(time.Now().UTC(), c.Generation, submission.Confirmation{Receiver: "office"})
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

type snapshot struct {
	Sub      *submission.Submission
	Types    []string
	Receipts map[string]string
	Blobs    map[string]string
}

func snap(t *testing.T, st store.Store) map[string]snapshot {
	t.Helper()
	out := map[string]snapshot{}
	var ids []string
	if err := st.Scan(func(s *submission.Submission) bool { ids = append(ids, s.ID); return true }); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		s, _ := st.Get(id)
		evs, _ := st.Events(id)
		sn := snapshot{Sub: s, Receipts: map[string]string{}, Blobs: map[string]string{}}
		for _, e := range evs {
			if e.Type != EventImported {
				sn.Types = append(sn.Types, e.Type)
			}
		}
		for _, k := range receiptKinds {
			if r, err := st.Receipt(id, k); err == nil {
				sn.Receipts[k] = string(r)
			}
		}
		for _, d := range bytesOf(s) {
			rc, err := st.Blobs().Open(context.Background(), d)
			if err != nil {
				t.Fatalf("blob %s of %s: %v", d, id, err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			sn.Blobs[d] = string(b)
		}
		// What the target store sets itself is not part of the comparison.
		c := *s
		c.UpdatedAt = time.Time{}
		sn.Sub = &c
		out[id] = sn
	}
	return out
}

func same(t *testing.T, a, b map[string]snapshot) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d submissions vs %d", len(a), len(b))
	}
	for id, x := range a {
		y := b[id]
		if !reflect.DeepEqual(x.Types, y.Types) || !reflect.DeepEqual(x.Receipts, y.Receipts) || !reflect.DeepEqual(x.Blobs, y.Blobs) ||
			x.Sub.State != y.Sub.State || x.Sub.MessageID != y.Sub.MessageID || x.Sub.DeliveryID != y.Sub.DeliveryID {
			t.Fatalf("%s differs:\n%+v\n%+v", id, x, y)
		}
	}
}

func outbox(t *testing.T, st store.Store) []string {
	ids, err := st.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(ids)
	return ids
}

// TestBBoltToJetStreamAndBack: a single node's data moves into the replicated store
// and back without losing a record, an event, a receipt or a byte; the outbox comes
// along (waiting packages are delivered by the gateway on the target); importing
// the same export again changes nothing.
func TestBBoltToJetStreamAndBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filledStore(t, 12)
	// A reply with the office's message id, which the reply index holds.
	var answered string
	if err := src.Scan(func(s *submission.Submission) bool {
		if s.DeliveredAt != nil {
			answered = s.ID
		}
		return answered == ""
	}); err != nil || answered == "" {
		t.Fatalf("no delivered case: %v", err)
	}
	d, err := src.Blobs().Put([]byte("Bescheid"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Update(answered, func(x *submission.Submission) ([]submission.Event, error) {
		return x.AddReply(time.Now().UTC(), submission.Reply{ID: "r1", Kind: "Bescheid", MessageID: "xta-1", SHA256: d, Size: 8, Channel: "xta"})
	}); err != nil {
		t.Fatal(err)
	}

	exp, err := Export(ctx, src, filepath.Join(dir, "export1"), nil)
	if err != nil || exp.Blobs == 0 {
		t.Fatalf("export: %+v %v", exp, err)
	}
	b, err := bus.Start(ctx, bus.Options{StoreDir: filepath.Join(dir, "js")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	js, err := jsstore.Open(ctx, b.JS, jsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer js.Close()
	st, err := Import(ctx, js, filepath.Join(dir, "export1"), "test", nil)
	if err != nil || st.Submissions != 12 || st.Blobs != exp.Blobs { // Blobs stayed 0 until 2026-12-04
		t.Fatalf("import: %+v %v (export wrote %d blobs)", st, err, exp.Blobs)
	}
	same(t, snap(t, src), snap(t, js))
	// Both stores agree with their indexes, every one Check reads: the
	// office's list, the idempotency keys and the reply index included.
	for name, st := range map[string]store.Store{"bbolt": src, "jetstream": js} {
		if _, _, faults, err := Check(ctx, st, nil); err != nil || len(faults) != 0 {
			t.Fatalf("%s: index faults %v %v", name, faults, err)
		}
	}
	if a, b := outbox(t, src), outbox(t, js); !reflect.DeepEqual(a, b) || len(a) != 8 {
		t.Fatalf("outbox %v vs %v", a, b)
	}
	if st, err := Import(ctx, js, filepath.Join(dir, "export1"), "test", nil); err != nil || st.Skipped != 12 || st.Submissions != 0 || st.Blobs != 0 {
		t.Fatalf("second import: %+v %v", st, err)
	}
	evs, _ := js.Events("s000")
	if evs[len(evs)-1].Type != EventImported {
		t.Fatalf("no imported event: %+v", evs)
	}

	if _, err := Export(ctx, js, filepath.Join(dir, "export2"), nil); err != nil {
		t.Fatal(err)
	}
	back := openStore(t, filepath.Join(dir, "back"))
	if _, err := Import(ctx, back, filepath.Join(dir, "export2"), "test", nil); err != nil {
		t.Fatal(err)
	}
	same(t, snap(t, src), snap(t, back))

	// A blob of the export changed on its way is refused; streamed now, it is
	// still checked against its name before it is kept.
	blobs, _ := filepath.Glob(filepath.Join(dir, "export2", "blobs", "*"))
	if len(blobs) == 0 {
		t.Fatal("the export has no blobs")
	}
	if err := os.WriteFile(blobs[0], []byte("changed"), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := openStore(t, filepath.Join(dir, "fresh"))
	if _, err := Import(ctx, fresh, filepath.Join(dir, "export2"), "test", nil); err == nil || !strings.Contains(err.Error(), "differ from their digest") {
		t.Fatalf("import of a changed blob: %v", err)
	}
}

// damaged is a store one of whose blobs cannot be read and another reads wrong.
type damaged struct {
	store.Store
	gone, wrong string
}

func (d damaged) Blobs() store.BlobStore { return damagedBlobs{d.Store.Blobs(), d} }

type damagedBlobs struct {
	store.BlobStore
	d damaged
}

func (b damagedBlobs) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	switch digest {
	case b.d.gone:
		return nil, errors.New("jsstore: blob: no chunk")
	case b.d.wrong:
		return io.NopCloser(strings.NewReader("other bytes")), nil
	}
	return b.BlobStore.Open(ctx, digest)
}

// TestCheckNamesUnreadableBlobs: Check reads every blob the records name and
// reports, per submission, the ones that cannot be read or whose bytes do not
// match their name; a whole store passes.
func TestCheckNamesUnreadableBlobs(t *testing.T) {
	ctx := context.Background()
	src := filledStore(t, 5)
	st, bad, _, err := Check(ctx, src, nil)
	if err != nil || len(bad) != 0 || st.Submissions != 5 || st.Blobs != 10 {
		t.Fatalf("whole store: %+v %v %v", st, bad, err)
	}
	s1, _ := src.Get("s001")
	s3, _ := src.Get("s003")
	st, bad, _, err = Check(ctx, damaged{Store: src, gone: s1.PackageSHA256, wrong: s3.Attachments[0].SHA256}, nil)
	if err != nil || st.Unreadable != 2 || len(bad) != 2 {
		t.Fatalf("damaged store: %+v %v %v", st, bad, err)
	}
	if bad[0].SubmissionID != "s001" || bad[0].Digest != s1.PackageSHA256 || bad[1].SubmissionID != "s003" || bad[1].Digest != s3.Attachments[0].SHA256 {
		t.Fatalf("reported %+v", bad)
	}
}

// TestExportAfterRetention: a record whose bytes the retention removed keeps
// their digests but has no blobs. Export asked for them and stopped ("blob …
// not found") at the first aged record, so no gateway that had run its retention
// could be moved; the record now goes with its events and receipts, without
// bytes, and comes back marked as before.
func TestExportAfterRetention(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filledStore(t, 3)
	aged, err := src.Update("s000", func(s *submission.Submission) ([]submission.Event, error) {
		evs, err := s.Decide(time.Now().UTC(), "", "accepted", "", "office")
		if err != nil {
			return nil, err
		}
		more, err := s.RemoveBytes(time.Now().UTC(), "retention")
		return append(evs, more...), err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range aged.Digests() {
		if err := src.Blobs().Delete(d); err != nil {
			t.Fatal(err)
		}
	}
	exp, err := Export(ctx, src, filepath.Join(dir, "export"), nil)
	if err != nil || exp.Submissions != 3 {
		t.Fatalf("export after retention: %+v %v", exp, err)
	}
	// The export holds the applicants' data: its files are the owner's alone, as
	// the store's and the backups' (they were 0644 under the usual umask).
	if err := filepath.WalkDir(filepath.Join(dir, "export"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if fi, err := d.Info(); err != nil || fi.Mode().Perm()&0o077 != 0 {
			return fmt.Errorf("%s: mode %v (%v)", p, fi.Mode().Perm(), err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	dst := openStore(t, filepath.Join(dir, "dst"))
	importAll(t, dst, filepath.Join(dir, "export"), 3)
	if got, err := dst.Get("s000"); err != nil || got.BytesRemovedAt == nil {
		t.Fatalf("the aged record after the import: %+v %v", got, err)
	}
}

// TestImportFinishesARecordAnEarlierRunLeftHalfWritten: Import writes a record with
// Create and its further receipts with later changes. A run that stopped in
// between (killed, the cluster out of reach) left the record without its delivery
// receipt; running the import again, as an operator does after a failure, must
// write it, not skip the record as already there. The state such a run leaves is
// made here with the very Create the import issues.
func TestImportFinishesARecordAnEarlierRunLeftHalfWritten(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filledStore(t, 4) // s000 and s003 delivered, with a Zustellbestaetigung
	if _, err := Export(ctx, src, filepath.Join(dir, "export"), nil); err != nil {
		t.Fatal(err)
	}
	dst := openStore(t, filepath.Join(dir, "dst"))
	// The first run: s000's blobs and Create, then it stopped.
	s, _ := src.Get("s000")
	evs, _ := src.Events("s000")
	intake, _ := src.Receipt("s000", receiptKinds[0])
	for _, d := range s.Digests() {
		if _, err := importBlob(ctx, dst, filepath.Join(dir, "export"), d); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, created, err := dst.Create(ctx, s, evs, receiptKinds[0], intake); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	imp, err := Import(ctx, dst, filepath.Join(dir, "export"), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := dst.Receipt("s000", "Zustellbestaetigung"); err != nil {
		t.Fatalf("the half-written record's delivery receipt after the second run: %q, %v (%+v)", r, err, imp)
	}
	same(t, snap(t, src), snap(t, dst))
	// A record that moved on in the target since is not given the export's
	// receipts: they would not match its event log.
	s3, _ := src.Get("s003")
	evs3, _ := src.Events("s003")
	intake3, _ := src.Receipt("s003", receiptKinds[0])
	s3.State, s3.Generation = submission.StateQueued, s3.Generation+1
	other := openStore(t, filepath.Join(dir, "other"))
	if _, _, _, err := other.Create(ctx, s3, evs3, receiptKinds[0], intake3); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, other, filepath.Join(dir, "export"), "test", nil); err != nil {
		t.Fatal(err)
	}
	if r, err := other.Receipt("s003", "Zustellbestaetigung"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a record in another state got the export's delivery receipt: %q, %v", r, err)
	}
	// A third run finds everything there and changes nothing.
	again, err := Import(ctx, dst, filepath.Join(dir, "export"), "test", nil)
	if err != nil || again.Submissions != 0 || again.Skipped != 4 {
		t.Fatalf("third run: %+v %v", again, err)
	}
}

// retiring is a store whose retention removes one record's bytes just as Check
// reads them: in cluster mode `store verify` runs beside the serving gateways.
type retiring struct {
	store.Store
	t  *testing.T
	id string
}

func (r retiring) Blobs() store.BlobStore { return retiringBlobs{r.Store.Blobs(), r} }

type retiringBlobs struct {
	store.BlobStore
	r retiring
}

func (b retiringBlobs) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	s, err := b.r.Store.Get(b.r.id)
	if err == nil && s.BytesRemovedAt == nil && s.PackageSHA256 == digest {
		if _, err := b.r.Store.Update(b.r.id, func(s *submission.Submission) ([]submission.Event, error) {
			evs, err := s.Decide(time.Now().UTC(), "", "accepted", "", "office")
			if err != nil {
				return nil, err
			}
			more, err := s.RemoveBytes(time.Now().UTC(), "retention")
			return append(evs, more...), err
		}); err != nil {
			b.r.t.Fatal(err)
		}
		for _, d := range s.Digests() {
			if err := b.r.Store.Blobs().Delete(d); err != nil {
				b.r.t.Fatal(err)
			}
		}
	}
	return b.BlobStore.Open(ctx, digest)
}

// TestCheckIgnoresBytesTheRetentionRemovedMeanwhile: a record whose bytes the
// retention removed while Check read them is no damage; Check named it as
// unreadable, and `store verify` failed on a healthy store.
func TestCheckIgnoresBytesTheRetentionRemovedMeanwhile(t *testing.T) {
	ctx := context.Background()
	src := filledStore(t, 3)
	st, bad, _, err := Check(ctx, retiring{Store: src, t: t, id: "s000"}, nil)
	if err != nil || len(bad) != 0 || st.Unreadable != 0 || st.Submissions != 3 {
		t.Fatalf("a store whose retention ran during the check: %+v %v %v", st, bad, err)
	}
	if s, _ := src.Get("s000"); s.BytesRemovedAt == nil {
		t.Fatal("the retention did not run: the test tests nothing")
	}
}

// filledStore is a bbolt store with n submissions of fill, closed after the test.
func filledStore(t *testing.T, n int) *store.DB {
	t.Helper()
	src := openStore(t, filepath.Join(t.TempDir(), "src"))
	fill(t, src, n)
	return src
}

// TestCheckRemembersOnlyListedRecords: Check kept the id of every record it read
// to find index entries without a record, so `store verify` on a store of
// millions of cases held hundreds of megabytes for a question about the few
// that wait. It keeps only the ids an index lists, and still finds an entry
// without a record (TestCheckNamesIndexFaults).
func TestCheckRemembersOnlyListedRecords(t *testing.T) {
	src := filledStore(t, 30) // every third delivered via webhook: undecided
	var delivered []string
	if err := src.Scan(func(s *submission.Submission) bool {
		if s.AwaitsDecision() {
			delivered = append(delivered, s.ID)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(delivered) != 10 {
		t.Fatalf("%d cases await a decision, want 10", len(delivered))
	}
	for _, id := range delivered {
		if _, err := src.Update(id, func(x *submission.Submission) ([]submission.Event, error) {
			return x.Decide(time.Now().UTC(), "", submission.OutcomeAccepted, "", "fv")
		}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, view, _, err := check(context.Background(), src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(view.seenByRecords); n != 20 { // the queued ones, in the outbox
		t.Errorf("Check remembered %d record ids, want the 20 an index lists", n)
	}
}

// TestImportAgainLeavesAnErasedCaseErased: a case erased (or its bytes removed
// by the retention) on the target after an import must not get its package and
// attachments back when the same export is imported again, as an operator does
// after a failed or interrupted run: the record is skipped, and so are its
// bytes. They were put back before the record was looked at, unreferenced blobs
// holding the applicant's data until the next sweep.
func TestImportAgainLeavesAnErasedCaseErased(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filledStore(t, 2)
	if _, err := Export(ctx, src, filepath.Join(dir, "export"), nil); err != nil {
		t.Fatal(err)
	}
	dst := openStore(t, filepath.Join(dir, "dst"))
	importAll(t, dst, filepath.Join(dir, "export"), 2)
	// The erasure as broker.Erase leaves it: the record says the bytes are gone,
	// and its blobs are deleted.
	erased, err := dst.Update("s001", func(s *submission.Submission) ([]submission.Event, error) {
		s.BytesGone(time.Now().UTC())
		return []submission.Event{{Type: submission.EventBytesRemoved, Detail: "erased on request"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range erased.Digests() {
		if err := dst.Blobs().Delete(d); err != nil {
			t.Fatal(err)
		}
	}
	again, err := Import(ctx, dst, filepath.Join(dir, "export"), "test", nil)
	if err != nil || again.Submissions != 0 || again.Skipped != 2 || again.Blobs != 0 {
		t.Fatalf("second import: %+v %v", again, err)
	}
	for _, d := range erased.Digests() {
		if rc, err := dst.Blobs().Open(ctx, d); err == nil {
			rc.Close()
			t.Errorf("blob %s of the erased case is back after the second import", d)
		} else if !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if s, err := dst.Get("s001"); err != nil || s.BytesRemovedAt == nil {
		t.Fatalf("the erased record after the second import: %+v %v", s, err)
	}
}

// stopsAfterCreate is a target store on which every write after the Create
// of record id fails, as a run killed or cut off from the cluster right after
// that Create leaves it.
type stopsAfterCreate struct {
	store.Store
	id      string
	stopped bool
}

var errStopped = errors.New("the import stopped here")

func (s *stopsAfterCreate) Create(ctx context.Context, sub *submission.Submission, evs []submission.Event, kind string, receipt []byte) (*submission.Submission, []byte, bool, error) {
	if s.stopped {
		return nil, nil, false, errStopped
	}
	s.stopped = sub.ID == s.id
	return s.Store.Create(ctx, sub, evs, kind, receipt)
}

func (s *stopsAfterCreate) Update(id string, fn func(*submission.Submission) ([]submission.Event, error)) (*submission.Submission, error) {
	if s.stopped {
		return nil, errStopped
	}
	return s.Store.Update(id, fn)
}

func (s *stopsAfterCreate) UpdateWithReceipt(id, kind string, r []byte, fn func(*submission.Submission) ([]submission.Event, error)) (*submission.Submission, bool, error) {
	if s.stopped {
		return nil, false, errStopped
	}
	return s.Store.UpdateWithReceipt(id, kind, r, fn)
}

// TestImportedEventSurvivesAnInterruptedRun: every record Import writes says
// so in its event log ("imported", from where). The event came with a later
// write than the record's Create: a run that stopped in between left a record
// without it, and the next run, finding the record complete, passed it by — an
// imported case that looked as if it had been taken in on the target.
func TestImportedEventSurvivesAnInterruptedRun(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filledStore(t, 2) // s000 delivered with a Zustellbestaetigung, s001 queued
	if _, err := Export(ctx, src, filepath.Join(dir, "export"), nil); err != nil {
		t.Fatal(err)
	}
	dst := openStore(t, filepath.Join(dir, "dst"))
	// The first run stops right after the Create of s001, which has no
	// further receipt.
	if _, err := Import(ctx, &stopsAfterCreate{Store: dst, id: "s001"}, filepath.Join(dir, "export"), "test", nil); err != nil && !errors.Is(err, errStopped) {
		t.Fatalf("the first run: %v", err)
	}
	if _, err := dst.Get("s001"); err != nil {
		t.Fatalf("the first run did not write s001: the test tests nothing: %v", err)
	}
	if _, err := Import(ctx, dst, filepath.Join(dir, "export"), "test", nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s000", "s001"} {
		evs, err := dst.Events(id)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(evs, func(e submission.Event) bool { return e.Type == EventImported && e.Detail == "imported from test" }) {
			t.Errorf("%s has no imported event: %+v", id, evs)
		}
	}
	same(t, snap(t, src), snap(t, dst))
}

// changingDuringExport is a store whose retention and erasures run while an
// export reads it, as beside a cluster's serving gateways: the record deleted
// is deleted right after the scan listed it, and the record erased is erased
// (its bytes removed from the record, its blobs deleted) when its blob on is
// opened — after its other blobs were copied.
type changingDuringExport struct {
	store.Store
	t                   *testing.T
	deleted, erased     string
	on                  string
	didDelete, didErase bool
}

func (c *changingDuringExport) Scan(fn func(*submission.Submission) bool) error {
	err := c.Store.Scan(fn)
	if err == nil && !c.didDelete {
		c.didDelete = true
		if err := c.Store.Delete(c.deleted); err != nil {
			c.t.Fatal(err)
		}
	}
	return err
}

func (c *changingDuringExport) Blobs() store.BlobStore { return erasingBlobs{c.Store.Blobs(), c} }

type erasingBlobs struct {
	store.BlobStore
	c *changingDuringExport
}

func (b erasingBlobs) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	if c := b.c; digest == c.on && !c.didErase {
		c.didErase = true
		s, err := c.Store.Update(c.erased, func(s *submission.Submission) ([]submission.Event, error) {
			s.BytesGone(time.Now().UTC())
			return []submission.Event{{Type: submission.EventBytesRemoved, Detail: "erased on request"}}, nil
		})
		if err != nil {
			c.t.Fatal(err)
		}
		for _, d := range s.Digests() {
			if err := c.Store.Blobs().Delete(d); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	return b.BlobStore.Open(ctx, digest)
}

// TestExportBesideTheRetentionAndAnErasure: in cluster mode an export runs
// beside the serving gateways (docs/cluster.md), whose retention deletes
// records and removes bytes and whose operators erase cases. An export failed
// on the first record deleted after its scan, or whose bytes went while it
// copied them ("blob … not found"); it passes over the deleted one and exports
// the erased one as it is now, without its bytes — also without those it had
// copied before they went.
func TestExportBesideTheRetentionAndAnErasure(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filledStore(t, 3)
	erased, err := src.Get("s001")
	if err != nil {
		t.Fatal(err)
	}
	c := &changingDuringExport{Store: src, t: t, deleted: "s002", erased: "s001", on: erased.Attachments[0].SHA256}
	exp, err := Export(ctx, c, filepath.Join(dir, "export"), nil)
	if err != nil || exp.Submissions != 2 {
		t.Fatalf("export: %+v %v", exp, err)
	}
	if !c.didDelete || !c.didErase {
		t.Fatal("nothing changed during the export: the test tests nothing")
	}
	for _, d := range erased.Digests() {
		if _, err := os.Stat(filepath.Join(dir, "export", "blobs", d)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the erased case's blob %s is in the export: %v", d, err)
		}
	}
	dst := openStore(t, filepath.Join(dir, "dst"))
	importAll(t, dst, filepath.Join(dir, "export"), 2)
	if s, err := dst.Get("s001"); err != nil || s.BytesRemovedAt == nil {
		t.Fatalf("the erased case after the move: %+v %v", s, err)
	}
	same(t, snap(t, src), snap(t, dst))
}

// openStore opens the bbolt store in dir until the test ends.
func openStore(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// importAll imports the export in from into dst and wants n submissions written.
func importAll(t *testing.T, dst store.Store, from string, n int) {
	t.Helper()
	if imp, err := Import(context.Background(), dst, from, "test", nil); err != nil || imp.Submissions != n {
		t.Fatalf("import: %+v %v, want %d submissions", imp, err, n)
	}
}
