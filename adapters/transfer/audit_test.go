package transfer

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
)

// TestStaleMarkerIsNotReused: a marker "<case>.ok" left in the office folder
// (the import removed an earlier case of that name and forgot its marker) would
// confirm a new case of the same name the moment it is written — a
// Zustellbestaetigung for a case nobody imported. The new case takes the next
// free name, and only its own confirmation counts.
func TestStaleMarkerIsNotReused(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	d := realDelivery(dir, "dlv-stale-marker", "4c1f0e52-0000-4000-8000-0000000000a1")
	stale := filepath.Join(dir, caseBase(d)+MarkerSuffix)
	if err := os.WriteFile(stale, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	c, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if c.Reference == caseBase(d) {
		t.Fatalf("the case took the name %q, whose stale marker is there", c.Reference)
	}
	checkCase(t, dir, c.Reference, d)
	if _, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Fatalf("confirmed by a stale marker: %v %v", ok, err)
	}
}

// TestMarkerMustBeAFile: the import confirms with an (empty) file
// "<case>.ok" (docs/transfer.md); a folder of that name, e.g. an import's
// working copy, is no confirmation.
func TestMarkerMustBeAFile(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	d := realDelivery(dir, "dlv-marker-folder", "4c1f0e52-0000-4000-8000-0000000000a2")
	c, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	mustMkdir(t, filepath.Join(dir, c.Reference+MarkerSuffix))
	if _, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Fatalf("a folder named like the marker confirmed the case: %v %v", ok, err)
	}
}

// TestLedgerRecordOfAnotherDelivery: a ledger record is named after the
// delivery id, or a digest of it, and carries the full id; one that names
// another delivery is not this delivery's. Deliver must not take it for a
// hand-over of its own (the office would never get the case) and Confirmed must
// not answer with the other case's confirmation.
func TestLedgerRecordOfAnotherDelivery(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	d := realDelivery(dir, "dlv-own", "4c1f0e52-0000-4000-8000-0000000000a3")
	other := "20261129-other-case"
	mustMkdir(t, filepath.Join(dir, other))
	if err := os.WriteFile(filepath.Join(dir, other+MarkerSuffix), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	if err := writeLedger(dir, fileID(d.ID), &ledgerRecord{DeliveryID: "dlv-other", SubmissionID: "other",
		Case: other, WrittenAt: at, Handovers: []handover{{Attempt: 1, At: at}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Fatalf("confirmed by another delivery's record and marker: %v %v", ok, err)
	}
	c, err := a.Deliver(t.Context(), d)
	if err == nil {
		t.Fatalf("Deliver answered %+v on another delivery's record: no case of its own was written", c)
	}
	if adapters.IsPermanent(err) {
		t.Errorf("a ledger for an operator to look at is no verdict on the channel: %v", err)
	}
}

// TestSourceBytesMustMatch: the case folder holds the exact signed bytes. A
// package whose bytes from the store do not match their digest, or an
// attachment shorter than its size, is refused as the store's failure
// (transient, "the package could not be read from the store") and no case
// folder appears.
func TestSourceBytesMustMatch(t *testing.T) {
	for name, spoil := range map[string]func(d *adapters.Delivery){
		"package digest": func(d *adapters.Delivery) { d.PackageSHA256 = sha([]byte("other bytes")) },
		"attachment size": func(d *adapters.Delivery) {
			d.Attachments[0].SHA256 = "" // no digest to catch it: the size must
			d.Attachments[0].Size++
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := officeFolder(t)
			a := newAdapter(t)
			d := realDelivery(dir, "dlv-spoilt", "4c1f0e52-0000-4000-8000-0000000000a4")
			spoil(&d)
			_, err := a.Deliver(t.Context(), d)
			if err == nil || adapters.IsPermanent(err) || adapters.PublicReason(err) != ReasonSource {
				t.Fatalf("Deliver: %v (reason %q), want a transient %q", err, adapters.PublicReason(err), ReasonSource)
			}
			if got := cases(t, dir); len(got) != 0 {
				t.Fatalf("case folders written: %v", got)
			}
			if got := temps(t, dir); len(got) != 0 {
				t.Fatalf("temporary folders left: %v", got)
			}
		})
	}
}

// TestUnwatchableFolderWarnsOnce: docs/transfer.md promises a warning when
// fsnotify cannot watch an office folder (a host out of inotify watches), after
// which confirmations come by polling alone. The failure was logged at debug
// level, so nobody saw it; logged at every call it would repeat for every case
// every round. It is warned about once per folder, tried again at each call, and
// a folder watched at last is warned about again should it fail once more. A
// folder that is not there plays the refusal here (running out of watches would
// take every other process on the host down with the test).
func TestUnwatchableFolderWarnsOnce(t *testing.T) {
	var logs bytes.Buffer
	a, err := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	if a.watcher == nil {
		t.Fatal("fsnotify did not start: the test needs inotify")
	}
	dir := filepath.Join(t.TempDir(), "office")
	warnings := func() int {
		return strings.Count(logs.String(), "level=WARN msg=\"transfer: cannot watch office folder")
	}
	for range 3 {
		a.watch(dir)
		a.settleWatches()
	}
	if n := warnings(); n != 1 {
		t.Fatalf("%d warnings after three failed watches, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "folder="+dir) {
		t.Errorf("the warning does not name the folder:\n%s", logs.String())
	}
	mustMkdir(t, dir)
	a.watch(dir)
	a.settleWatches()
	if !a.isWatched(dir) {
		t.Fatal("the folder, there now, is not watched")
	}
	if n := warnings(); n != 1 {
		t.Errorf("%d warnings after the watch succeeded, want still 1", n)
	}
}

// TestUnmountedShareIsSaidByTheConfirmation: with the share unmounted, the
// confirmation question finds no ledger record, as for a delivery never handed
// over there, and answered "not yet" without an error: no import, rightly, but
// also no word. An office that gets no new case meanwhile (no attempt to fail as
// "transfer folder missing") had its handed-over cases wait in silence until
// AmtsboteUnconfirmedForDays, days later. A missing ledger folder is an error of
// the question now, "transfer folder missing" as the attempt says it, which the
// broker logs once a minute per office ("confirmation questions failed"); the
// look for the ledger folder is made only when the record is missing. A ledger
// folder that is there and lacks the record is still a plain "not handed over".
func TestUnmountedShareIsSaidByTheConfirmation(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	d := realDelivery(dir, "dlv-unmounted-question", "4c1f0e52-0000-4000-8000-0000000000a5")
	if _, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Fatalf("never handed over, ledger folder there: ok=%v err=%v, want not confirmed and no error", ok, err)
	}
	if _, err := a.Deliver(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	remount := unmountShare(t, dir)
	_, ok, err := a.Confirmed(t.Context(), d)
	if ok || err == nil || adapters.IsPermanent(err) || adapters.PublicReason(err) != ReasonMissing ||
		!strings.Contains(err.Error(), "share not mounted?") {
		t.Fatalf("share unmounted: ok=%v err=%v, want not confirmed and a transient %q naming the unmounted share", ok, err, ReasonMissing)
	}
	remount()
	if _, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Fatalf("share back, case still there: ok=%v err=%v", ok, err)
	}
}
