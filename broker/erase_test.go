package broker

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// blocks holds every attempt on channel "primary" until its context ends, so a
// package stays queued with its attempt running.
type blocks struct{}

func (blocks) Channel() string { return "primary" }
func (blocks) Deliver(ctx context.Context, _ adapters.Delivery) (adapters.Confirmation, error) {
	<-ctx.Done()
	return adapters.Confirmation{}, ctx.Err()
}
func (blocks) Close() error { return nil }

// TestEraseOneCase: an operator erases one case's bytes on request before its
// retention ends, whether or not the office answered. The package, attachment and
// reply bytes go now (blobs too, from the file), the record, event log and
// receipts stay, the event names the operator; a blob another case shares stays.
// A package still waiting for an attempt is refused, and an erased held package
// cannot be redelivered.
// TestEraseOutlivesItsClient: the client of an erasure hangs up (its context ends)
// while the gateway looks for other cases sharing the blobs. The erasure goes on:
// the package's blob is deleted now, not at the next hourly sweep.
func TestEraseOutlivesItsClient(t *testing.T) {
	noEraseGrace(t)
	e := start(t, t.TempDir(), blocks{})
	in := intake("erase-gone-client", "unconfigured")
	a, err := e.b.Receive(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.b, a.Submission.ID, submission.StateHeld)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := e.b.Erase(gone, a.Submission.ID, "test", "")
	if err != nil || res.BlobsDeleted != 2 {
		t.Fatalf("erase with its client gone: %+v %v, want the package's and the attachment's blobs deleted", res, err)
	}
	if _, err := e.db.Blobs().Open(context.Background(), a.Submission.PackageSHA256); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the erased package's blob is still there: %v", err)
	}
}

func TestEraseOneCase(t *testing.T) {
	noEraseGrace(t)
	e := start(t, t.TempDir(), blocks{})
	ctx := context.Background()
	const name = "Erika-Mustermann-geb-12-08-1964"
	in := intake("erase-me", "unconfigured") // no adapter for it: held after one attempt
	in.Package = []byte("<Antragspaket><Name>" + name + "</Name></Antragspaket>")
	a, err := e.b.Receive(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	waitState(t, e.b, id, submission.StateHeld)
	other, err := e.b.Receive(ctx, intake("keeps-the-shared-attachment"))
	if err != nil {
		t.Fatal(err)
	}
	if !inFile(t, e, name) {
		t.Fatal("the name is not in the file as it is: the check below would prove nothing")
	}

	res, err := e.b.Erase(ctx, id, "m.meier (admin API)", "Art. 17 request, Az. DS-2026-17")
	if err != nil {
		t.Fatal(err)
	}
	if res.Already || res.BlobsDeleted != 1 || res.Submission.BytesRemovedAt == nil {
		t.Fatalf("erase: %+v (want the package's blob deleted, the shared attachment kept)", res)
	}
	if _, _, err := e.b.OpenPackage(ctx, "office-a", id, Pickup{Channel: "api"}); !errors.Is(err, ErrBytesRemoved) {
		t.Fatalf("package after erasure: %v", err)
	}
	if _, _, err := e.b.OpenAttachment(ctx, "office-a", id, "a1", nil); !errors.Is(err, ErrBytesRemoved) {
		t.Fatalf("attachment after erasure: %v", err)
	}
	_, rc, err := e.b.OpenAttachment(ctx, "office-a", other.Submission.ID, "a1", nil)
	if err != nil {
		t.Fatalf("the other case lost the attachment it shares: %v", err)
	}
	rc.Close()
	if _, err := e.db.Blobs().Open(ctx, a.Submission.PackageSHA256); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the erased package's blob is still there: %v", err)
	}
	if inFile(t, e, name) {
		t.Error("the erased package is still in amtsbote.db (a free page nobody overwrote)")
	}
	if r, err := e.db.Receipt(id, ReceiptIntake); err != nil || len(r) == 0 {
		t.Fatalf("the receipt must outlive the bytes: %v", err)
	}
	evs, err := e.b.Log(id)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.Type != submission.EventBytesRemoved || last.Actor != "m.meier (admin API)" || last.Detail != ErasedDetail || last.Note == "" {
		t.Fatalf("last event %+v, want bytes_removed naming the operator", last)
	}

	again, err := e.b.Erase(ctx, id, "m.meier (admin API)", "")
	if err != nil || !again.Already {
		t.Fatalf("erasing again: %+v %v, want Already and no error", again, err)
	}
	if n := len(eventTypes(t, e.b, id)); n != len(evs) {
		t.Fatalf("erasing again added events: %d, want %d", n, len(evs))
	}
	if _, err := e.b.Redeliver(id, "operator"); !errors.Is(err, ErrConflict) {
		t.Fatalf("redeliver an erased package: %v, want a conflict", err)
	}
	if _, err := e.b.Erase(ctx, "01a00000-0000-7000-8000-000000000000", "op", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("erase an unknown id: %v", err)
	}

	waiting, err := e.b.Receive(ctx, intake("waiting", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Erase(ctx, waiting.Submission.ID, "op", ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("erase a package waiting for its attempt: %v, want a conflict", err)
	}
	if _, _, err := e.b.OpenPackage(ctx, "office-a", waiting.Submission.ID, Pickup{Channel: "api"}); err != nil && errors.Is(err, ErrBytesRemoved) {
		t.Fatal("the refused erasure removed the bytes")
	}
}

// noEraseGrace lets an erasure delete blobs of cases seconds old, for the tests
// of what it deletes; TestEraseLeavesABlobARequestIsAboutToReference keeps the
// grace.
func noEraseGrace(t *testing.T) {
	old := eraseGrace
	eraseGrace = 0
	t.Cleanup(func() { eraseGrace = old })
}

// TestEraseLeavesABlobARequestIsAboutToReference: an operator erases case A while
// a request for case B stores the same attachment and has not committed its record
// yet (a portal sending the file again, with a multipart upload maybe hours
// before its last part). The erasure's scan cannot see B; with its cut-off at the
// scan's start it deleted the blob B had just stored, and B was acknowledged
// without it. The erasure now leaves blobs younger than store.HoldGrace to the
// sweep and says so (BlobsLeft); A's bytes are gone from its record all the same.
func TestEraseLeavesABlobARequestIsAboutToReference(t *testing.T) {
	e := start(t, t.TempDir(), blocks{})
	ctx := context.Background()
	inA := intake("erase-a", "unconfigured")
	inA.Attachments[0].Content = bytes.Repeat([]byte("Bauplan "), 40<<10) // a blob file
	a, err := e.b.Receive(ctx, inA)
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.b, a.Submission.ID, submission.StateHeld)
	digest := a.Submission.Attachments[0].SHA256
	// B's request stores the same content, as intake's PutStream does before the
	// record; then the erasure runs; then B commits.
	put, err := e.db.Blobs().PutStream(ctx, bytes.NewReader(inA.Attachments[0].Content), -1, digest)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.b.Erase(ctx, a.Submission.ID, "op", "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Submission.BytesRemovedAt == nil || res.BlobsLeft == 0 {
		t.Fatalf("erase: %+v, want A's bytes removed and the recent blobs left to the sweep", res)
	}
	inB := intake("erase-b", "unconfigured")
	inB.Attachments[0].Content = nil
	inB.Attachments[0].Stored = true
	inB.Attachments[0].Meta.SHA256, inB.Attachments[0].Meta.Size = put.Digest, put.Size
	b, err := e.b.Receive(ctx, inB)
	if err != nil {
		t.Fatal(err)
	}
	_, rc, err := e.b.OpenAttachment(ctx, "office-a", b.Submission.ID, b.Submission.Attachments[0].ID, nil)
	if err != nil {
		t.Fatalf("B, acknowledged, lost its attachment to A's erasure: %v", err)
	}
	rc.Close()
}

// officeWords is what an office's validator answered to a delivery: it quotes
// the application, and the broker keeps it in the case's events (operator note).
const officeWords = "Feld Geburtsdatum 01.02.1980 von Max Mustermann ungueltig"

// quotes reports which of a case's events still quote s, in detail or note.
func quotes(t *testing.T, b *Broker, id, s string) []submission.Event {
	t.Helper()
	evs, err := b.Log(id)
	if err != nil {
		t.Fatal(err)
	}
	var out []submission.Event
	for _, e := range evs {
		if strings.Contains(e.Detail+e.Note, s) {
			out = append(out, e)
		}
	}
	return out
}

// TestErasureTakesTheOfficesWordsFromTheEvents: an office answering 503 and then
// 422 with a body that quotes the applicant left those words in the case's
// attempt_failed and channel_failed events, and an erasure removed the package
// but kept the events as they were — for retention.records, and for a case no
// office answers for good (an audit). The erasure now replaces them with
// submission.RemovedText in the same transaction, in the store's events (what
// the admin API's events view and `amtsbote admin show` read) and in the file's
// free pages; the receiver's status stays.
func TestErasureTakesTheOfficesWordsFromTheEvents(t *testing.T) {
	office := &scripted{channel: "primary", answers: []error{
		&webhook.StatusError{StatusCode: 503, Snippet: officeWords + ": bitte spaeter"},
		adapters.Permanent("receiver refused with HTTP 422", &webhook.StatusError{StatusCode: 422, Snippet: officeWords}),
	}}
	e := start(t, t.TempDir(), office)
	a, err := e.b.Receive(context.Background(), intake("erase-words", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	waitState(t, e.b, id, submission.StateHeld)
	if n := len(quotes(t, e.b, id, officeWords)); n != 2 || !inFile(t, e, officeWords) {
		t.Fatalf("%d events quote the office (want the attempt's and the channel's), in the file: %v: the checks below would prove nothing", n, inFile(t, e, officeWords))
	}

	if _, err := e.b.Erase(context.Background(), id, "m.meier (admin API)", "Art. 17"); err != nil {
		t.Fatal(err)
	}
	if left := quotes(t, e.b, id, officeWords); len(left) > 0 {
		t.Fatalf("after the erasure the events still quote the office: %+v", left)
	}
	if inFile(t, e, officeWords) {
		t.Error("the office's words are still in amtsbote.db (the events as they were, in a free page)")
	}
	evs, _ := e.b.Log(id)
	seen := map[string]bool{}
	for _, ev := range evs {
		switch ev.Type {
		case submission.EventAttemptFailed, submission.EventChannelFailed:
			if ev.Note != submission.RemovedText || !strings.Contains(ev.Detail, "HTTP ") {
				t.Errorf("%s after the erasure: detail %q, note %q; want the status kept and the note replaced", ev.Type, ev.Detail, ev.Note)
			}
			seen[ev.Type] = true
		}
	}
	if !seen[submission.EventAttemptFailed] || !seen[submission.EventChannelFailed] {
		t.Fatalf("the failures' events are gone: %+v", evs)
	}
}

// TestEraseAgainWipesWhatAFailedWipeLeft: an erasure whose wipe of free pages
// failed had written its record and answered with the error; the repeat the
// answer asks for said "already removed" and left the office's words in the
// store's free pages. Asked again, it wipes.
func TestEraseAgainWipesWhatAFailedWipeLeft(t *testing.T) {
	office := &scripted{channel: "primary", answers: []error{
		adapters.Permanent("receiver refused with HTTP 422", &webhook.StatusError{StatusCode: 422, Snippet: officeWords}),
	}}
	e := start(t, t.TempDir(), office)
	a, err := e.b.Receive(context.Background(), intake("erase-wipe-fails", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	waitState(t, e.b, id, submission.StateHeld)
	if !inFile(t, e, officeWords) {
		t.Fatal("the office's words are not in the file: the check below would prove nothing")
	}
	wipeFault = func() error { return errors.New("disk error (test)") }
	_, err = e.b.Erase(context.Background(), id, "operator", "")
	wipeFault = nil
	if err == nil {
		t.Fatal("a failed wipe was not reported")
	}
	wiped := 0
	wipeFault = func() error { wiped++; return nil }
	defer func() { wipeFault = nil }()
	res, err := e.b.Erase(context.Background(), id, "operator", "")
	if err != nil || !res.Already {
		t.Fatalf("erase again: %+v %v", res, err)
	}
	// (Whether the old page is still in the file after further writes is bbolt's
	// choice of pages; that the repeat wipes is what the operator is promised.)
	if wiped == 0 {
		t.Error("erased again after a failed wipe, the free pages were not wiped")
	}
	if inFile(t, e, officeWords) {
		t.Error("erased again, the office's words are still in amtsbote.db")
	}
}

// TestEraseCaseTakesItsNachreichungen: an erasure request for an application
// covers what the applicant sent for it later. The case's erasure erases each
// Nachreichung after it, with the same operator; one still waiting for a
// delivery attempt is named with its refusal and erased by a later request;
// a Nachreichung's own id erases only itself.
func TestEraseCaseTakesItsNachreichungen(t *testing.T) {
	noEraseGrace(t)
	e := start(t, t.TempDir(), blocks{})
	ctx := context.Background()
	n := 0
	receive := func(name, caseID, target string) string {
		t.Helper()
		n++
		in := intake("m-"+strconv.Itoa(n), target) // not the name: the message id stays with the record
		in.Package = []byte("<Antragspaket><Name>" + name + "</Name></Antragspaket>")
		in.CaseID = caseID
		r, err := e.b.Receive(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return r.Submission.ID
	}
	caseID := receive("Erika-Mustermann-Antrag", "", "unconfigured")
	held := receive("Erika-Mustermann-Ausweis", caseID, "unconfigured")
	waiting := receive("Erika-Mustermann-Nachweis", caseID, "primary") // blocks: queued
	other := receive("Max-Muster-Antrag", "", "unconfigured")
	for _, id := range []string{caseID, held, other} {
		waitState(t, e.b, id, submission.StateHeld)
	}

	// Its client hangs up at once: the Nachreichungen go all the same.
	gone, cancel := context.WithCancel(ctx)
	cancel()
	res, fus, err := e.b.EraseCase(gone, caseID, "m.meier (admin API)", "Az. DS-2026-18")
	if err != nil || res.Submission.BytesRemovedAt == nil {
		t.Fatalf("erase the case: %+v %v", res, err)
	}
	if len(fus) != 2 || fus[0].ID != held || fus[0].Err != nil || fus[0].Submission.BytesRemovedAt == nil ||
		fus[1].ID != waiting || !errors.Is(fus[1].Err, ErrConflict) {
		t.Fatalf("the Nachreichungen: %+v, want %s erased and %s refused as still waiting", fus, held, waiting)
	}
	if inFile(t, e, "Erika-Mustermann-Ausweis") {
		t.Error("the erased Nachreichung's package is still in amtsbote.db")
	}
	evs, err := e.b.Log(held)
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; last.Type != submission.EventBytesRemoved || last.Actor != "m.meier (admin API)" {
		t.Errorf("the Nachreichung's last event %+v, want bytes_removed by the operator", last)
	}
	if s, _ := e.b.Submission(other); s.BytesRemovedAt != nil {
		t.Error("another case was erased with it")
	}
	// A Nachreichung's own id: itself alone.
	if r, fus, err := e.b.EraseCase(ctx, held, "m.meier (admin API)", ""); err != nil || !r.Already || fus != nil {
		t.Fatalf("erase the Nachreichung again: %+v %+v %v", r, fus, err)
	}
	// Asked again, the case is as it was and the waiting one still refused.
	if r, fus, err := e.b.EraseCase(ctx, caseID, "m.meier (admin API)", ""); err != nil || !r.Already || len(fus) != 2 ||
		!fus[0].Already || !errors.Is(fus[1].Err, ErrConflict) {
		t.Fatalf("erase the case again: %+v %+v %v", r, fus, err)
	}
}

// scanCounting is the real store, counting the broker's scans of every record.
type scanCounting struct {
	store.Store
	scans atomic.Int32
}

func (c *scanCounting) Scan(fn func(*submission.Submission) bool) error {
	c.scans.Add(1)
	return c.Store.Scan(fn)
}

// TestEraseCaseReadsTheRecordsOnce: which blobs no other case holds takes a
// read of every record (minutes on a store of a million), and the erasure of
// a case with k Nachreichungen erased each in turn and read them k+1 times.
// The records go first now, then the blobs of all in one scan: a blob the
// case shares with an erased Nachreichung goes (counted for the case), one
// another case holds stays.
func TestEraseCaseReadsTheRecordsOnce(t *testing.T) {
	noEraseGrace(t)
	var sc *scanCounting
	e := startEnv(t, t.TempDir(), testConfig, testChannels, func(db *store.DB) store.Store {
		sc = &scanCounting{Store: db}
		return sc
	})
	ctx := context.Background()
	receive := func(msg, caseID string, attachment []byte) *submission.Submission {
		t.Helper()
		in := intake(msg, "unconfigured")
		in.CaseID = caseID
		if attachment != nil {
			in.Attachments[0].Content = attachment
		}
		r, err := e.b.Receive(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, e.b, r.Submission.ID, submission.StateHeld)
		return r.Submission
	}
	photo := []byte("%PDF-1.4 Foto der Erika Mustermann")
	c := receive("case", "", photo)
	f1 := receive("nachreichung-1", c.ID, photo) // the same photo again
	f2 := receive("nachreichung-2", c.ID, nil)   // the attachment another case holds
	receive("other", "", nil)

	before := sc.scans.Load()
	res, fus, err := e.b.EraseCase(ctx, c.ID, "op", "")
	if err != nil {
		t.Fatal(err)
	}
	if n := sc.scans.Load() - before; n != 1 {
		t.Errorf("the erasure of a case with two Nachreichungen read every record %d times, want once", n)
	}
	if res.BlobsDeleted != 2 || len(fus) != 2 || fus[0].ID != f1.ID || fus[0].BlobsDeleted != 1 || fus[1].ID != f2.ID || fus[1].BlobsDeleted != 1 {
		t.Fatalf("blobs deleted: case %d (want its package and the photo), Nachreichungen %+v (want each its package)", res.BlobsDeleted, fus)
	}
	for _, d := range []string{c.PackageSHA256, f1.PackageSHA256, f2.PackageSHA256, c.Attachments[0].SHA256} {
		if rc, err := e.b.db.Blobs().Open(ctx, d); err == nil {
			rc.Close()
			t.Errorf("blob %s is still there", d)
		}
	}
	if rc, err := e.b.db.Blobs().Open(ctx, f2.Attachments[0].SHA256); err != nil {
		t.Errorf("the attachment another case holds went with the erasure: %v", err)
	} else {
		rc.Close()
	}
}
