package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// TestRetention: after the office's answer the bytes go first (event bytes_removed,
// 410 for anyone who asks), the record and receipts stay until their own period
// ends; blobs nothing needs any more are swept, those still needed stay, and the
// data folder shrinks. Cases without an answer are never touched.
func TestRetention(t *testing.T) {
	dir := t.TempDir()
	e := start(t, dir)
	ctx := context.Background()
	var answered, open []string
	for i := 0; i < 6; i++ {
		in := intake(fmt.Sprintf("m%d", i))
		in.Package = append(in.Package, make([]byte, 200<<10)...) // a distinct package big enough for a blob file (above store.InlineMax)
		in.Package[len(in.Package)-1] = byte(i)
		a, err := e.b.Receive(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if i < 4 {
			if _, err := e.b.Decide(ctx, "office-a", a.Submission.ID, Decision{Outcome: OutcomeAccepted, Actor: "test", Channel: "api"}); err != nil {
				t.Fatal(err)
			}
			answered = append(answered, a.Submission.ID)
		} else {
			open = append(open, a.Submission.ID)
		}
	}
	blobs := filepath.Join(dir, "store", "blobs")
	before := dirSize(t, blobs)
	r := Retention{PackageBytes: 90 * 24 * time.Hour, Records: 10 * 365 * 24 * time.Hour}

	if rep, err := e.b.GC(ctx, time.Now().Add(24*time.Hour), r); err != nil || rep.BytesRemoved+rep.RecordsDeleted+rep.BlobsDeleted != 0 {
		t.Fatalf("nothing is due after a day: %+v %v", rep, err)
	}
	// A dry run counts what the real one below removes, blobs and their bytes
	// included, and changes nothing.
	dry, err := e.b.GCWith(ctx, time.Now().Add(91*24*time.Hour), r, GCOptions{DryRun: true})
	if err != nil || !dry.DryRun || dry.BytesRemoved != 4 || dry.RecordsDeleted != 0 || dry.BlobsDeleted != 4 || dry.BlobBytesFreed < 4*200<<10 {
		t.Fatalf("dry run after 91 days: %+v %v", dry, err)
	}
	if _, _, err := e.b.OpenPackage(ctx, "office-a", answered[0], Pickup{Channel: "api"}); err != nil || dirSize(t, blobs) != before {
		t.Fatalf("the dry run changed something: package %v, blobs folder %d -> %d bytes", err, before, dirSize(t, blobs))
	}
	var p GCProgress
	rep, err := e.b.GCWith(ctx, time.Now().Add(91*24*time.Hour), r, GCOptions{Progress: &p})
	if err != nil || rep.BytesRemoved != 4 || rep.RecordsDeleted != 0 || rep.BlobsDeleted != 4 {
		t.Fatalf("after 91 days: %+v %v (want the 4 answered packages' bytes; the shared attachment stays)", rep, err)
	}
	if rep.BlobBytesFreed != dry.BlobBytesFreed {
		t.Fatalf("freed %d bytes, the dry run said %d", rep.BlobBytesFreed, dry.BlobBytesFreed)
	}
	// What `amtsbote gc` shows while it runs counted the same work: six records
	// read, four due and done, every blob looked at (six packages, one shared
	// attachment), four swept, and the run ended wiping the free pages.
	if p.Scanned.Load() != 6 || p.Due.Load() != 4 || p.Done.Load() != 4 || p.BlobsWalked.Load() != 7 ||
		p.BlobsSwept.Load() != 4 || GCPhase(p.Phase.Load()) != GCWipe {
		t.Fatalf("progress: phase %d, scanned %d, due %d, done %d, blobs walked %d, swept %d", p.Phase.Load(),
			p.Scanned.Load(), p.Due.Load(), p.Done.Load(), p.BlobsWalked.Load(), p.BlobsSwept.Load())
	}
	for phase, want := range map[GCPhase]string{
		GCScan:    "reading records: 6, 4 due so far",
		GCRemove:  "6 records read; removing what fell due: 4 of 4",
		GCBlobs:   "4 of 4 due cases done; blobs: 7 looked at, 4 removed",
		GCCompact: "rewriting the store file",
		GCWipe:    "overwriting the store file's free pages",
	} {
		p.Phase.Store(int32(phase))
		if line := p.Line(); !strings.Contains(line, want) || !strings.HasSuffix(line, "\n") {
			t.Errorf("phase %d: line %q, want %q", phase, line, want)
		}
	}
	// A dry run's blob phase does not speak of cases done.
	p.Phase.Store(int32(GCBlobs))
	p.DryRun.Store(true)
	if line, want := p.Line(), "6 records read, 4 due; blobs: 7 looked at"; !strings.Contains(line, want) {
		t.Errorf("dry run: line %q, want %q", line, want)
	}
	after := dirSize(t, blobs)
	if after >= before || before-after < 4*200<<10 {
		t.Fatalf("blobs folder %d -> %d bytes", before, after)
	}
	t.Logf("blobs folder: %d -> %d bytes", before, after)
	if _, _, err := e.b.OpenPackage(ctx, "office-a", answered[0], Pickup{Channel: "api"}); !errors.Is(err, ErrBytesRemoved) {
		t.Fatalf("package after retention: %v", err)
	}
	// A real attachment is gone (410); an id the case never had is not found,
	// as before the retention (it was 410 too, which told a prober nothing false
	// but broke the contract's 404).
	if _, _, err := e.b.OpenAttachment(ctx, "office-a", answered[0], "a1", nil); !errors.Is(err, ErrBytesRemoved) {
		t.Fatalf("attachment after retention: %v", err)
	}
	for _, err := range []error{
		func() error {
			_, _, err := e.b.OpenAttachment(ctx, "office-a", answered[0], "no-such-attachment", nil)
			return err
		}(),
		func() error { _, _, err := e.b.OpenReply(ctx, "office-a", answered[0], "no-such-reply"); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("an unknown id after retention: %v, want not found", err)
		}
	}
	if _, _, err := e.b.OpenAttachment(ctx, "office-a", open[0], "a1", nil); err != nil {
		t.Fatalf("an open case lost its attachment (shared blob swept?): %v", err)
	}
	if r, err := e.db.Receipt(answered[0], ReceiptIntake); err != nil || len(r) == 0 {
		t.Fatalf("the receipt must outlive the bytes: %v", err)
	}
	evs, _ := e.b.Log(answered[0])
	if evs[len(evs)-1].Type != submission.EventBytesRemoved {
		t.Fatalf("no bytes_removed event: %v", eventTypes(t, e.b, answered[0]))
	}

	rep, err = e.b.GC(ctx, time.Now().Add(11*365*24*time.Hour), r)
	if err != nil || rep.RecordsDeleted != 4 {
		t.Fatalf("after 11 years: %+v %v", rep, err)
	}
	if _, err := e.b.Submission(answered[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("record after its period: %v", err)
	}
	for _, id := range open {
		if s, err := e.b.Submission(id); err != nil || s.BytesRemovedAt != nil {
			t.Fatalf("an unanswered case was touched: %v %+v", err, s)
		}
	}
}

// TestRetentionCompactsTheFile: when a retention run leaves most of the bbolt file
// free, the background job rewrites it while the broker runs, and the data folder
// shrinks; CompactMinFree < 0 turns that off. (The copy under concurrent writes is
// store.TestCompactOnline.)
func TestRetentionCompactsTheFile(t *testing.T) {
	dir := t.TempDir()
	e := start(t, dir)
	ctx := context.Background()
	var ids []string
	for i := 0; i < 120; i++ {
		a, err := e.b.Receive(ctx, intake(fmt.Sprintf("m%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.b.Decide(ctx, "office-a", a.Submission.ID, Decision{Outcome: OutcomeAccepted, Actor: "test", Channel: "api"}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.Submission.ID)
	}
	file := filepath.Join(dir, "store", "amtsbote.db")
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(11 * 365 * 24 * time.Hour)
	off := Retention{Records: 10 * 365 * 24 * time.Hour, CompactMinFree: -1}
	rep, err := e.b.GC(ctx, later, off)
	if err != nil || rep.RecordsDeleted != len(ids) || rep.Compacted {
		t.Fatalf("with compaction off: %+v %v", rep, err)
	}
	// The packages were small enough to live in the bbolt file (store.InlineMax):
	// the sweep removed them there, which is what freed most of the file.
	if rep.BlobsDeleted < len(ids) {
		t.Fatalf("the sweep removed %d inline blobs of %d deleted records' packages", rep.BlobsDeleted, len(ids))
	}
	on := Retention{Records: 10 * 365 * 24 * time.Hour, CompactMinFree: 256 << 10}
	rep, err = e.b.GC(ctx, later, on)
	if err != nil || !rep.Compacted || rep.FileAfter >= rep.FileBefore {
		t.Fatalf("the freed file was not compacted: %+v %v", rep, err)
	}
	after, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if after.Size() >= info.Size() {
		t.Fatalf("the file did not shrink: %d -> %d bytes", info.Size(), after.Size())
	}
	t.Logf("bbolt file %d -> %d bytes (pause %s)", info.Size(), after.Size(), rep.CompactPause)
	// The broker goes on working on the new file.
	a, err := e.b.Receive(ctx, intake("after-compaction"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Submission(a.Submission.ID); err != nil {
		t.Fatal(err)
	}
	// A second run finds nothing worth compacting.
	if rep, err := e.b.GC(ctx, later, on); err != nil || rep.Compacted {
		t.Fatalf("compacted again without anything freed: %+v %v", rep, err)
	}
}

// TestRetentionRunsAreCounted: every run of the background job shows on /metrics,
// a failed one too. A job that failed every hour (here: the blob folder is gone,
// as after a botched restore) only logged it, and no series told the operator
// that personal data was kept beyond its period.
func TestRetentionRunsAreCounted(t *testing.T) {
	dir := t.TempDir()
	e := start(t, dir)
	r := Retention{PackageBytes: 90 * 24 * time.Hour, Records: 10 * 365 * 24 * time.Hour}
	value := func(c prometheus.Metric) float64 {
		var m dto.Metric
		if err := c.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	runs := func(outcome string) float64 { return value(e.b.metrics.retention.WithLabelValues(outcome)) }
	if runs("ok") != 0 || runs("failed") != 0 || value(e.b.metrics.retentionOK) != 0 {
		t.Fatal("retention counted before any run")
	}
	for i := range 3 {
		if _, err := e.b.Receive(context.Background(), intake(fmt.Sprintf("counted-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now().Unix()
	e.b.applyRetention(r)
	if runs("ok") != 1 || runs("failed") != 0 {
		t.Fatalf("after a good run: ok %v, failed %v", runs("ok"), runs("failed"))
	}
	if at := value(e.b.metrics.retentionOK); at < float64(before) {
		t.Fatalf("last success %v, want at least %d", at, before)
	}
	// What grows with the history: the records the run read, and its length.
	if n, took := value(e.b.metrics.retentionRecords), value(e.b.metrics.retentionTook); n != 3 || took <= 0 {
		t.Fatalf("last run: %v records read in %v s, want 3 records and a length", n, took)
	}
	blobs := filepath.Join(dir, "store", "blobs")
	if err := os.RemoveAll(blobs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blobs, []byte("not a folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.GC(context.Background(), time.Now(), r); err == nil {
		t.Fatal("GC over a blob folder that is a file did not fail")
	}
	e.b.applyRetention(r)
	if runs("ok") != 1 || runs("failed") != 1 {
		t.Fatalf("after a failed run: ok %v, failed %v", runs("ok"), runs("failed"))
	}
}

// inFile reports whether the store's bbolt file holds s anywhere, free pages
// included: what `strings amtsbote.db` or a backup of the file would show.
func inFile(t *testing.T, e *env, s string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "store", store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte(s))
}

// TestRetentionLeavesNoPersonalDataInTheFile: what the retention removed is gone
// from the bbolt file itself, not only from the records. bbolt frees a deleted
// value's pages without overwriting them, so before the fix an expired package
// and a deleted record's rejection reason stayed readable in amtsbote.db (and in
// every backup, which copies the file) until some later write reused the page.
func TestRetentionLeavesNoPersonalDataInTheFile(t *testing.T) {
	e := start(t, t.TempDir())
	ctx := context.Background()
	const (
		answeredName = "Erika-Mustermann-Heidestrasse-17"
		openName     = "Max-Mustermann-Lindenallee-3"
		reason       = "Ausweis-von-Erika-Mustermann-abgelaufen"
	)
	in := intake("answered")
	in.Package = []byte("<Antragspaket><Name>" + answeredName + "</Name></Antragspaket>")
	a, err := e.b.Receive(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Decide(ctx, "office-a", a.Submission.ID, Decision{Outcome: OutcomeRejected, Reason: reason, Actor: "test", Channel: "api"}); err != nil {
		t.Fatal(err)
	}
	in = intake("open")
	in.Package = []byte("<Antragspaket><Name>" + openName + "</Name></Antragspaket>")
	if _, err := e.b.Receive(ctx, in); err != nil {
		t.Fatal(err)
	}
	if !inFile(t, e, answeredName) || !inFile(t, e, reason) {
		t.Fatal("the test's names are not in the file as they are: the check below would prove nothing")
	}

	r := Retention{PackageBytes: 90 * 24 * time.Hour, Records: 10 * 365 * 24 * time.Hour, CompactMinFree: -1}
	if rep, err := e.b.GC(ctx, time.Now().Add(91*24*time.Hour), r); err != nil || rep.BytesRemoved != 1 {
		t.Fatalf("after 91 days: %+v %v", rep, err)
	}
	if inFile(t, e, answeredName) {
		t.Error("the removed package is still in amtsbote.db (a free page nobody overwrote)")
	}
	if !inFile(t, e, openName) {
		t.Error("the open case's package is gone from the file")
	}
	if rep, err := e.b.GC(ctx, time.Now().Add(11*365*24*time.Hour), r); err != nil || rep.RecordsDeleted != 1 {
		t.Fatalf("after 11 years: %+v %v", rep, err)
	}
	if inFile(t, e, reason) {
		t.Error("the deleted record's rejection reason is still in amtsbote.db")
	}
	if _, _, err := e.b.OpenPackage(ctx, "office-a", a.Submission.ID, Pickup{Channel: "api"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted record: %v", err)
	}
}

// TestRetentionOfUnansweredCases: a case the office has and never answers (a
// transfer-only office cannot) kept the applicant's data for good. With
// Retention.Unanswered its bytes go that long after the delivery; a held case
// (no office has it) and an answered one keep their own rules, and without the
// setting nothing changes.
func TestRetentionOfUnansweredCases(t *testing.T) {
	e := start(t, t.TempDir(), &scripted{channel: "primary"})
	ctx := context.Background()
	delivered, err := e.b.Receive(ctx, intake("unanswered", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.b, delivered.Submission.ID, submission.StateDelivered)
	held, err := e.b.Receive(ctx, intake("held"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.b, held.Submission.ID, submission.StateHeld)
	year := 365 * 24 * time.Hour
	later := time.Now().Add(year + 24*time.Hour)
	if rep, err := e.b.GC(ctx, later, Retention{PackageBytes: 90 * 24 * time.Hour}); err != nil || rep.BytesRemoved != 0 {
		t.Fatalf("without retention.unanswered: %+v %v", rep, err)
	}
	r := Retention{PackageBytes: 90 * 24 * time.Hour, Unanswered: year}
	if rep, err := e.b.GC(ctx, time.Now().Add(year-24*time.Hour), r); err != nil || rep.BytesRemoved != 0 {
		t.Fatalf("a day before the year is over: %+v %v", rep, err)
	}
	if rep, err := e.b.GC(ctx, later, r); err != nil || rep.BytesRemoved != 1 {
		t.Fatalf("a year after the delivery: %+v %v", rep, err)
	}
	if _, _, err := e.b.OpenPackage(ctx, "office-a", delivered.Submission.ID, Pickup{Channel: "api"}); !errors.Is(err, ErrBytesRemoved) {
		t.Fatalf("package of the unanswered case: %v", err)
	}
	if s, err := e.b.Submission(held.Submission.ID); err != nil || s.BytesRemovedAt != nil {
		t.Fatalf("the held case was touched: %v %+v", err, s)
	}
	evs, _ := e.b.Log(delivered.Submission.ID)
	if last := evs[len(evs)-1]; last.Type != submission.EventBytesRemoved || last.Detail == "" {
		t.Fatalf("last event %+v", last)
	}
}

// answersDuringScan is a store on which the office answers one case just after the
// retention's scan has read it: a decision on an old unanswered case while a run
// (minutes on a large store) is under way.
type answersDuringScan struct {
	store.Store
	id string
}

func (s *answersDuringScan) Scan(fn func(*submission.Submission) bool) error {
	if err := s.Store.Scan(fn); err != nil {
		return err
	}
	_, err := s.Store.Update(s.id, func(cur *submission.Submission) ([]submission.Event, error) {
		return cur.Decide(time.Now().UTC(), "", submission.OutcomeAccepted, "", "office system")
	})
	return err
}

// TestRetentionRunSurvivesAnAnswerDuringTheRun: a case the scan found unanswered
// for longer than retention.unanswered is answered before its bytes go. It is no
// longer due: the run passes over it and goes on, and its bytes stay, blobs
// included. The run failed with a conflict there, so the sweep, the compaction
// and the wipe of the whole period were skipped; passing over it without noting
// its blobs as needed would have swept the bytes of an answered case.
func TestRetentionRunSurvivesAnAnswerDuringTheRun(t *testing.T) {
	answers := &answersDuringScan{}
	e := startEnv(t, t.TempDir(), testConfig, testChannels, func(db *store.DB) store.Store {
		answers.Store = db
		return answers
	}, &scripted{channel: "primary"})
	ctx := context.Background()
	a, err := e.b.Receive(ctx, intake("answered-during-the-run", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	waitState(t, e.b, id, submission.StateDelivered)
	answers.id = id // read by Scan only, which the GC below calls
	year := 365 * 24 * time.Hour
	rep, err := e.b.GC(ctx, time.Now().Add(year+24*time.Hour), Retention{Unanswered: year, BlobGrace: time.Nanosecond, CompactMinFree: -1})
	if err != nil {
		t.Fatalf("a run during which the office answered a due case: %v", err)
	}
	s, err := e.b.Submission(id)
	if err != nil || s.State != submission.StateAccepted || s.BytesRemovedAt != nil {
		t.Fatalf("the answered case: %+v %v, want accepted with its bytes", s, err)
	}
	for _, d := range s.Digests() {
		rc, err := e.db.Blobs().Open(ctx, d)
		if err != nil {
			t.Fatalf("blob %s of the answered case: %v (report %+v)", d, err, rep)
		}
		rc.Close()
	}
}

// TestRetentionTakesTheOfficesWordsFromTheEvents: the retention's removal of an
// answered case's bytes kept the events, and with them what the office's system
// answered to a failed attempt (its 503 page quoting the applicant), for
// retention.records: ten years. The words now go with the bytes, in the same
// transaction and from the file's free pages; the office's decision reason stays,
// as the proof of the decision.
func TestRetentionTakesTheOfficesWordsFromTheEvents(t *testing.T) {
	office := &scripted{channel: "primary", answers: []error{&webhook.StatusError{StatusCode: 503, Snippet: officeWords + ": bitte spaeter"}}}
	e := start(t, t.TempDir(), office)
	ctx := context.Background()
	a, err := e.b.Receive(ctx, intake("retention-words", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	waitState(t, e.b, id, submission.StateDelivered)
	const reason = "Nachweis fehlt"
	if _, err := e.b.Decide(ctx, "office-a", id, Decision{Outcome: OutcomeRejected, Reason: reason, Actor: "test", Channel: "api"}); err != nil {
		t.Fatal(err)
	}
	if n := len(quotes(t, e.b, id, officeWords)); n != 1 || !inFile(t, e, officeWords) {
		t.Fatalf("%d events quote the office, in the file: %v: the checks below would prove nothing", n, inFile(t, e, officeWords))
	}

	r := Retention{PackageBytes: 90 * 24 * time.Hour, Records: 10 * 365 * 24 * time.Hour, CompactMinFree: -1}
	if rep, err := e.b.GC(ctx, time.Now().Add(91*24*time.Hour), r); err != nil || rep.BytesRemoved != 1 {
		t.Fatalf("after 91 days: %+v %v", rep, err)
	}
	if left := quotes(t, e.b, id, officeWords); len(left) > 0 {
		t.Fatalf("after the retention removed the bytes the events still quote the office: %+v", left)
	}
	if inFile(t, e, officeWords) {
		t.Error("the office's words are still in amtsbote.db (the events as they were, in a free page)")
	}
	if n := len(quotes(t, e.b, id, reason)); n != 1 {
		t.Errorf("the decision's reason is in %d events after the retention, want 1 (the rejected event)", n)
	}
}

// A peer gateway whose clock was 100 days behind reported its office's decision
// with that date: the retention counted from it and removed the bytes of a case
// answered seconds ago at its next run, and the delivery preceded the receipt.
func TestPeerClockBehindDoesNotShortenRetention(t *testing.T) {
	e := start(t, t.TempDir(), &scripted{channel: "primary", block: make(chan struct{})})
	ctx := context.Background()
	a, err := e.b.Receive(ctx, intake("peer-clock", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	if _, err := e.b.RecordForwarded(id, submission.Forward{Peer: "amtsbote-by", PeerSubmissionID: "p-1", At: time.Now().UTC()}, []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	past := time.Now().UTC().Add(-100 * 24 * time.Hour)
	cur, err := e.b.RecordPeerStatus(id, submission.PeerStatus{Peer: "amtsbote-by", State: submission.StateAccepted,
		Receiver: "office x", DeliveredAt: &past,
		Decision: &submission.Decision{Outcome: submission.OutcomeAccepted, At: past, Actor: "office"}})
	if err != nil {
		t.Fatal(err)
	}
	if cur.DeliveredAt == nil || cur.DeliveredAt.Before(cur.ReceivedAt) {
		t.Errorf("delivered %v before received %v", cur.DeliveredAt, cur.ReceivedAt)
	}
	rep, err := e.b.GC(ctx, time.Now().UTC(), Retention{PackageBytes: 90 * 24 * time.Hour, Records: 10 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.BytesRemoved != 0 || rep.RecordsDeleted != 0 {
		t.Fatalf("a case answered seconds ago lost its bytes (%d) or record (%d) to a 90-day retention", rep.BytesRemoved, rep.RecordsDeleted)
	}
	// 90 days on by this gateway's clock the period has ended.
	rep, err = e.b.GC(ctx, time.Now().UTC().Add(91*24*time.Hour), Retention{PackageBytes: 90 * 24 * time.Hour, Records: 10 * 365 * 24 * time.Hour})
	if err != nil || rep.BytesRemoved != 1 {
		t.Fatalf("91 days later: %+v %v", rep, err)
	}
}

// fakeClock is a broker clock the test moves: the wall clock and the monotonic
// one apart, as a clock step does.
type fakeClock struct {
	mu sync.Mutex
	c  clockReading
}

func (f *fakeClock) read() clockReading {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c
}

func (f *fakeClock) set(wall time.Time, mono time.Duration) {
	f.mu.Lock()
	f.c = clockReading{wall: wall, mono: mono}
	f.mu.Unlock()
}

// The background retention counted its periods by the wall clock alone: a clock
// set a year ahead stripped every answered case's bytes at the next hourly run
// (ten years ahead, deleted the records). A run whose wall clock jumped ahead of
// the monotonic clock is paused, counted and shown, until the clocks agree again.
func TestRetentionPausesWhenTheClockJumpsAhead(t *testing.T) {
	ctx := context.Background()
	e := start(t, t.TempDir())
	a, err := e.b.Receive(ctx, intake("clock-jump"))
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	if _, err := e.b.Decide(ctx, "office-a", id, Decision{Outcome: OutcomeAccepted, Actor: "test", Channel: "api"}); err != nil {
		t.Fatal(err)
	}
	r := Retention{PackageBytes: 90 * 24 * time.Hour, Records: 10 * 365 * 24 * time.Hour}
	clock := &fakeClock{}
	e.b.readClock = clock.read
	value := func(c prometheus.Collector) float64 {
		m := &dto.Metric{}
		if err := c.(prometheus.Metric).Write(m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	runs := func(outcome string) float64 { return value(e.b.metrics.retention.WithLabelValues(outcome)) }
	bytesGone := func() bool {
		s, err := e.b.Submission(id)
		if err != nil {
			t.Fatal(err)
		}
		return s.BytesRemovedAt != nil
	}

	now := time.Now().UTC()
	clock.set(now, 0)
	e.b.applyRetention(r) // the reference
	if runs("ok") != 1 || bytesGone() {
		t.Fatalf("first run: ok %v, bytes gone %v", runs("ok"), bytesGone())
	}
	// An hour later by the monotonic clock, a year later by the wall clock.
	clock.set(now.Add(365*24*time.Hour), time.Hour)
	e.b.applyRetention(r)
	if bytesGone() {
		t.Fatal("a clock a year ahead removed the bytes of a case answered an hour ago")
	}
	if runs("paused") != 1 || runs("ok") != 1 {
		t.Fatalf("run with the clock ahead: paused %v, ok %v", runs("paused"), runs("ok"))
	}
	if step := value(e.b.metrics.clockStep); step < float64(364*24*3600) {
		t.Fatalf("amtsbote_retention_clock_step_seconds = %v, want about a year", step)
	}
	// Still ahead an hour on: still paused (the reference is the last good run).
	clock.set(now.Add(365*24*time.Hour+time.Hour), 2*time.Hour)
	e.b.applyRetention(r)
	if bytesGone() || runs("paused") != 2 {
		t.Fatalf("second run ahead: bytes gone %v, paused %v", bytesGone(), runs("paused"))
	}
	// NTP sets the clock right: the runs go on, the gauge is back to 0.
	clock.set(now.Add(3*time.Hour), 3*time.Hour)
	e.b.applyRetention(r)
	if runs("ok") != 2 || value(e.b.metrics.clockStep) != 0 || bytesGone() {
		t.Fatalf("clock right again: ok %v, step %v, bytes gone %v", runs("ok"), value(e.b.metrics.clockStep), bytesGone())
	}
	// A real 90 days by both clocks do remove them.
	clock.set(now.Add(91*24*time.Hour), 91*24*time.Hour)
	e.b.applyRetention(r)
	if !bytesGone() {
		t.Fatal("91 days on by both clocks the bytes are still there")
	}
}

// A clock that runs a little fast between runs is no jump.
func TestClockGuardToleratesDrift(t *testing.T) {
	var g clockGuard
	t0 := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	if _, ok := g.check(clockReading{wall: t0}); !ok {
		t.Fatal("the first reading is the reference")
	}
	if _, ok := g.check(clockReading{wall: t0.Add(time.Hour + 30*time.Minute), mono: time.Hour}); !ok {
		t.Fatal("half an hour ahead in an hour paused the retention")
	}
	if _, ok := g.check(clockReading{wall: t0.Add(-time.Hour), mono: 2 * time.Hour}); !ok {
		t.Fatal("a clock stepped back paused the retention (it only keeps data longer)")
	}
	if step, ok := g.check(clockReading{wall: t0.Add(5 * time.Hour), mono: 3 * time.Hour}); ok || step != 5*time.Hour {
		t.Fatalf("five hours ahead in an hour: %v %v", step, ok)
	}
}
