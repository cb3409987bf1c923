// Package storetest is the one contract every store.Store implementation runs: the
// single-node bbolt store (store.DB) and the replicated JetStream store
// (store/jsstore) pass the same cases, in the way nats-server runs one storage test
// against its file and memory stores. A case that only one implementation needs
// belongs in that implementation's own tests, not here.
//
// The package's own tests plant defects in an otherwise correct store (a wrapper
// around store.DB) and prove that the suite fails for each of them.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/prometheus/client_golang/prometheus"
)

// Harness gives the suite stores to test.
type Harness struct {
	// Open returns a fresh, empty store. The harness closes it in t.Cleanup (a close
	// after the suite closed it itself must be harmless).
	Open func(t *testing.T) store.Store
	// Reopen closes old and opens the same storage again, as a restarted process
	// would. Required: durability is part of the contract.
	Reopen func(t *testing.T, old store.Store) store.Store
	// Concurrency is the number of goroutines of the concurrent cases (default 32).
	Concurrency int
	// StepBack makes the blob digest of st look put by a clock that ran ahead by
	// d and was then stepped back (NTP; or, in a cluster, put by a node whose
	// clock is d ahead of the next one's): its time moves d forward, as that put
	// would have left it. It returns the blob's new time (the put's Written).
	// Required: DiscardNew's safety depends on it (testBlobClockStepBack).
	StepBack func(t *testing.T, st store.Store, digest string, d time.Duration) time.Time
	// Older closes st and makes its storage look as a build before the undecided
	// and follow-up indexes left it — no index, and nothing that says it was
	// built — then opens it again, as this build's first start on it would.
	// Required: the cases an older build delivered must be listed after the
	// upgrade (testUndecidedBuiltOnOpen), and so must its Nachreichungen
	// (testFollowUps).
	Older func(t *testing.T, st store.Store) store.Store
	// Rewrite hands edit the stored record of id as its JSON object (numbers as
	// json.Number), as a newer build would have written it or as the next reader
	// finds it, and writes the object back if edit returns true — as a gateway of
	// another build would, beside st or while it is closed. It returns the store
	// to go on with (st, or st opened again). Required: what a newer build wrote
	// must survive this one's rewrite (testKeepsNewerKeys).
	Rewrite func(t *testing.T, st store.Store, id string, edit func(record map[string]any) bool) store.Store
	// MidListing makes st call fn once, in the middle of its next listing of
	// an index: after it read the listing's first key and before it reads the
	// next. A store whose listing is one read transaction (bbolt) may call fn
	// before it: a change then lands before or after the listing, never in it.
	// Required: an office's waiting list must name a case that waits
	// throughout once, however it moves meanwhile (testWaitingWhileMoving).
	MidListing func(t *testing.T, st store.Store, fn func())
	// MidRead makes st call fn once in its next GetWithEvents, after it read
	// the record and before it reads the events. A store that reads both at
	// once (one transaction, one document) calls fn before it: the change
	// then lands before or after the read, never in it. Required: a status
	// answer pairs a state with the log that state was written with
	// (testGetWithEvents).
	MidRead func(t *testing.T, st store.Store, fn func())
	// Reindex runs the store's repair of its derived indexes (`amtsbote store
	// reindex`: store.DB.Reindex, jsstore.Store.Reindex) on st and returns its
	// report, failing t on an error. Required: both stores have a repair, and
	// `amtsbote store reindex` runs it beside (cluster) or instead of
	// (single node) the gateways (testReindex).
	Reindex func(t *testing.T, st store.Store) store.ReindexReport
}

// watchdog bounds every concurrent case: a liveness guard, not a timing assertion.
const watchdog = 2 * time.Minute

// Run runs every case of the contract against stores from h. Each case is a subtest
// with a stable name, so one can be run alone (-run 'X/Suite/ConcurrentUpdates').
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil || h.Reopen == nil || h.StepBack == nil || h.Older == nil || h.Rewrite == nil || h.MidListing == nil || h.MidRead == nil || h.Reindex == nil {
		t.Fatal("storetest: Harness needs Open, Reopen, StepBack, Older, Rewrite, MidListing, MidRead and Reindex")
	}
	if h.Concurrency <= 0 {
		h.Concurrency = 32
	}
	s := &suite{h: h}
	t.Run("CreateAndGet", s.testCreateAndGet)
	t.Run("CreateIdempotent", s.testCreateIdempotent)
	t.Run("ConcurrentCreatesOfOneMessage", s.testConcurrentCreates)
	t.Run("CreateExistingIDConflicts", s.testCreateExistingID)
	t.Run("NotFound", s.testNotFound)
	t.Run("UpdateWritesRecordAndEvents", s.testUpdate)
	t.Run("UpdateWithoutEventsWritesNothing", s.testUpdateNoEvents)
	t.Run("UpdateErrorAborts", s.testUpdateError)
	t.Run("UpdateWithReceiptOnlyWinnerWrites", s.testUpdateWithReceipt)
	t.Run("IndexesFollowState", s.testIndexes)
	t.Run("WaitingNamesOfficeAndErasure", s.testWaiting)
	t.Run("WaitingWhileMoving", s.testWaitingWhileMoving)
	t.Run("UndecidedFollowsTheDecision", s.testUndecided)
	t.Run("UndecidedIndexBuiltOnOpen", s.testUndecidedBuiltOnOpen)
	t.Run("KeepsNewerKeys", s.testKeepsNewerKeys)
	t.Run("RepliesByMessage", s.testRepliesByMessage)
	t.Run("FollowUps", s.testFollowUps)
	t.Run("WalkOffice", s.testWalkOffice)
	t.Run("Scan", s.testScan)
	t.Run("EventsOrderAndSeq", s.testEventsOrder)
	t.Run("GetWithEventsIsOneRead", s.testGetWithEvents)
	t.Run("LongEventLog", s.testLongEventLog)
	t.Run("UpdateRedacting", s.testUpdateRedacting)
	t.Run("ConcurrentUpdates", s.testConcurrentUpdates)
	t.Run("OpaqueKeys", s.testOpaqueKeys)
	t.Run("Blobs", s.testBlobs)
	t.Run("Durable", s.testDurable)
	t.Run("Delete", s.testDelete)
	t.Run("DeleteFreesIdempotencyKey", s.testDeleteFreesKey)
	t.Run("ConcurrentDeleteAndUpdate", s.testConcurrentDeleteAndUpdate)
	t.Run("BlobDeleteAndWalk", s.testBlobDeleteAndWalk)
	t.Run("BlobPutStream", s.testBlobPutStream)
	t.Run("BlobRefresh", s.testBlobRefresh)
	t.Run("BlobClockStepBack", s.testBlobClockStepBack)
	t.Run("WritesTimed", s.testWritesTimed)
	t.Run("ReindexRepairsAnOlderBuildsWrites", s.testReindex)
	t.Run("StraysAreWhatReindexRemoves", s.testStrays)
}

type suite struct{ h Harness }

// StepBackFile is Harness.StepBack for a blob kept as a file in the folder
// blobs (store.Blobs' layout): its time moves d forward.
func StepBackFile(t *testing.T, blobs, digest string, d time.Duration) time.Time {
	t.Helper()
	name := filepath.Join(blobs, digest[:2], digest)
	info, err := os.Stat(name)
	if err != nil {
		t.Fatalf("StepBack: %v", err)
	}
	at := info.ModTime().Add(d)
	if err := os.Chtimes(name, at, at); err != nil {
		t.Fatalf("StepBack: %v", err)
	}
	return at
}

// NewSubmission returns a queued submission for tests: id, sender and message id as
// given, addressed to office-a with one webhook target.
func NewSubmission(id, sender, messageID string) *submission.Submission {
	now := time.Now().UTC()
	return &submission.Submission{
		ID: id, DeliveryID: "d-" + id, MessageID: messageID, Sender: sender, OfficeID: "office-a",
		OfficeName: "Amt A", LeikaKey: "99123456789000", Place: "Leipzig",
		Targets: []submission.Target{{Channel: "webhook"}, {Channel: "mailbox"}},
		State:   submission.StateQueued, ReceivedAt: now, UpdatedAt: now, Generation: 1,
		PackageSHA256: hex.EncodeToString(make([]byte, 32)), PackageSize: 1234,
		Attachments: []submission.Attachment{{ID: "a1", FileName: "Nachweis.pdf", MimeType: "application/pdf", Size: 10, SHA256: hex.EncodeToString(make([]byte, 32))}},
	}
}

func firstEvents() []submission.Event {
	return []submission.Event{{Type: submission.EventReceived, Detail: "signed"}, {Type: submission.EventRouted}, {Type: submission.EventQueued, Channel: "webhook"}}
}

// uid makes ids unique per run, so a store that keeps data between Opens (a shared
// cluster) cannot pass a case with a previous case's data.
func uid(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func mustCreate(t *testing.T, st store.Store, sub *submission.Submission, evs []submission.Event, receipt string) *submission.Submission {
	t.Helper()
	got, _, created, err := st.Create(context.Background(), sub, evs, "in", []byte(receipt))
	if err != nil {
		t.Fatalf("Create %s: %v", sub.ID, err)
	}
	if !created {
		t.Fatalf("Create %s: created=false for a new message", sub.ID)
	}
	return got
}

func setState(state submission.State, evType string) func(*submission.Submission) ([]submission.Event, error) {
	return func(s *submission.Submission) ([]submission.Event, error) {
		s.State = state
		return []submission.Event{{Type: evType}}, nil
	}
}

func eventTypes(evs []submission.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func (s *suite) testCreateAndGet(t *testing.T) {
	st := s.h.Open(t)
	sub := NewSubmission(uid("s"), uid("portal"), uid("m"))
	at := time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC)
	evs := firstEvents()
	evs[0].At = at
	stored, rcpt, created, err := st.Create(context.Background(), sub, evs, "in", []byte("receipt-1"))
	if err != nil || !created || stored.ID != sub.ID || string(rcpt) != "receipt-1" {
		t.Fatalf("Create = %v, %q, %v, %v", stored, rcpt, created, err)
	}
	got, err := st.Get(sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != sub.ID || got.Sender != sub.Sender || got.MessageID != sub.MessageID || got.OfficeID != "office-a" ||
		got.State != submission.StateQueued || got.Generation != 1 || len(got.Targets) != 2 || got.Targets[1].Channel != "mailbox" ||
		len(got.Attachments) != 1 || got.Attachments[0].FileName != "Nachweis.pdf" || !got.ReceivedAt.Equal(sub.ReceivedAt) {
		t.Fatalf("Get returned %+v, stored %+v", got, sub)
	}
	if f, err := st.FindByMessage(sub.Sender, sub.MessageID); err != nil || f.ID != sub.ID {
		t.Fatalf("FindByMessage = %v, %v", f, err)
	}
	if r, err := st.Receipt(sub.ID, "in"); err != nil || string(r) != "receipt-1" {
		t.Fatalf("Receipt = %q, %v", r, err)
	}
	log, err := st.Events(sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(eventTypes(log), []string{"received", "routed", "queued"}) {
		t.Fatalf("events %v", eventTypes(log))
	}
	for i, e := range log {
		if e.SubmissionID != sub.ID || e.Seq == 0 || e.At.IsZero() {
			t.Errorf("event %d: %+v: want submission id, seq and time set", i, e)
		}
	}
	if !log[0].At.Equal(at) || log[0].Detail != "signed" || log[2].Channel != "webhook" {
		t.Errorf("event fields not kept: %+v", log[0])
	}
	if ids, err := st.Outbox(); err != nil || !slices.Contains(ids, sub.ID) {
		t.Fatalf("a queued submission is not in the outbox: %v %v", ids, err)
	}
}

func (s *suite) testCreateIdempotent(t *testing.T) {
	st := s.h.Open(t)
	ctx := context.Background()
	portal, other := uid("amt24"), uid("other")
	m1, m2 := uid("m"), uid("m")
	ids := map[string]string{"s1": uid("s1"), "s2": uid("s2"), "s3": uid("s3"), "s4": uid("s4")}
	tests := []struct {
		name, id, sender, msg string
		wantCreated           bool
		wantID                string
	}{
		{"first", ids["s1"], portal, m1, true, ids["s1"]},
		{"same sender and message again", ids["s2"], portal, m1, false, ids["s1"]},
		{"same message from another sender", ids["s3"], other, m1, true, ids["s3"]},
		{"new message", ids["s4"], portal, m2, true, ids["s4"]},
	}
	for _, tc := range tests {
		sub := NewSubmission(tc.id, tc.sender, tc.msg)
		got, rcpt, created, err := st.Create(ctx, sub, firstEvents(), "in", []byte("receipt-"+tc.id))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if created != tc.wantCreated || got.ID != tc.wantID {
			t.Fatalf("%s: created=%v id=%s, want %v %s", tc.name, created, got.ID, tc.wantCreated, tc.wantID)
		}
		if string(rcpt) != "receipt-"+tc.wantID {
			t.Fatalf("%s: receipt %q, want the first one", tc.name, rcpt)
		}
	}
	if _, err := st.Get(ids["s2"]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the duplicate was stored: %v", err)
	}
	if evs, err := st.Events(ids["s1"]); err != nil || len(evs) != 3 {
		t.Fatalf("the duplicate changed the first's event log: %v %v", eventTypes(evs), err)
	}
	if f, err := st.FindByMessage(portal, m1); err != nil || f.ID != ids["s1"] {
		t.Fatalf("FindByMessage after duplicate = %v, %v", f, err)
	}
	if f, err := st.FindByMessage(other, m1); err != nil || f.ID != ids["s3"] {
		t.Fatalf("FindByMessage(other sender) = %v, %v", f, err)
	}
}

func (s *suite) testConcurrentCreates(t *testing.T) {
	st := s.h.Open(t)
	n := s.h.Concurrency
	sender, msg := uid("amt24"), uid("same")
	type result struct {
		id, receipt string
		created     bool
	}
	results := make(chan result, n)
	errs := make(chan error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			id := fmt.Sprintf("%s-%02d", msg, i)
			got, rcpt, created, err := st.Create(context.Background(), NewSubmission(id, sender, msg), firstEvents(), "in", []byte("receipt-"+id))
			if err != nil {
				errs <- err
				return
			}
			results <- result{got.ID, string(rcpt), created}
		}()
	}
	close(start)
	waitGroup(t, &wg)
	close(results)
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Create: %v", err)
	}
	var winners []string
	seen := map[string]int{}
	for r := range results {
		if r.created {
			winners = append(winners, r.id)
		}
		seen[r.id]++
		if r.receipt != "receipt-"+r.id {
			t.Errorf("Create returned record %s with receipt %q", r.id, r.receipt)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d creates won for one message, want exactly 1: %v", len(winners), winners)
	}
	if len(seen) != 1 || seen[winners[0]] != n {
		t.Fatalf("callers saw different records: %v (winner %s)", seen, winners[0])
	}
	count := 0
	for _, x := range scanAll(t, st) {
		if x.MessageID == msg {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("Scan finds %d records for one message", count)
	}
	outbox, _ := st.Outbox()
	inOutbox := 0
	for _, id := range outbox {
		if len(id) > len(msg) && id[:len(msg)] == msg {
			inOutbox++
		}
	}
	if inOutbox != 1 {
		t.Fatalf("outbox has %d entries for one message", inOutbox)
	}
	if evs, err := st.Events(winners[0]); err != nil || len(evs) != 3 {
		t.Fatalf("winner's events: %v %v", eventTypes(evs), err)
	}
}

func (s *suite) testCreateExistingID(t *testing.T) {
	st := s.h.Open(t)
	sub := mustCreate(t, st, NewSubmission(uid("s"), uid("p"), uid("m")), firstEvents(), "r1")
	again := NewSubmission(sub.ID, uid("p"), uid("m"))
	_, _, created, err := st.Create(context.Background(), again, firstEvents(), "in", []byte("r2"))
	if !errors.Is(err, store.ErrConflict) || created {
		t.Fatalf("Create with an existing submission id: created=%v err=%v, want ErrConflict", created, err)
	}
	if got, _ := st.Get(sub.ID); got == nil || got.MessageID != sub.MessageID {
		t.Fatalf("the first record was replaced: %+v", got)
	}
	if r, _ := st.Receipt(sub.ID, "in"); string(r) != "r1" {
		t.Fatalf("receipt replaced: %q", r)
	}
}

func (s *suite) testNotFound(t *testing.T) {
	st := s.h.Open(t)
	known := mustCreate(t, st, NewSubmission(uid("s"), uid("p"), uid("m")), firstEvents(), "r")
	missing := uid("missing")
	noop := func(*submission.Submission) ([]submission.Event, error) { return []submission.Event{{Type: "x"}}, nil }
	checks := map[string]error{}
	_, checks["Get"] = st.Get(missing)
	_, checks["FindByMessage"] = st.FindByMessage(known.Sender, uid("other-message"))
	_, checks["FindByMessage(other sender)"] = st.FindByMessage(uid("p"), known.MessageID)
	_, checks["Receipt(unknown id)"] = st.Receipt(missing, "in")
	_, checks["Receipt(unknown kind)"] = st.Receipt(known.ID, "out")
	_, checks["Events"] = st.Events(missing)
	_, _, checks["GetWithEvents"] = st.GetWithEvents(missing)
	_, checks["Update"] = st.Update(missing, noop)
	_, _, checks["UpdateWithReceipt"] = st.UpdateWithReceipt(missing, "out", []byte("r"), noop)
	checks["Delete"] = st.Delete(missing)
	for _, bad := range []string{"../" + missing, missing + ".>", "*", "a b", "ü"} {
		_, checks["Get("+bad+")"] = st.Get(bad)
	}
	for name, err := range checks {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want one wrapping store.ErrNotFound", name, err)
		}
	}
	if _, err := st.Get(missing); err == nil {
		t.Fatal("Update of a missing submission created it")
	}
}

func (s *suite) testUpdate(t *testing.T) {
	st := s.h.Open(t)
	sub := mustCreate(t, st, NewSubmission(uid("s"), uid("p"), uid("m")), firstEvents(), "r")
	runs := 0
	out, err := st.Update(sub.ID, func(x *submission.Submission) ([]submission.Event, error) {
		runs++
		x.State = submission.StateRetrying
		x.Attempts++
		x.TotalAttempts++
		x.NextAttemptAt = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		return []submission.Event{{Type: submission.EventAttemptFailed, Attempt: 1, Detail: "receiver answered HTTP 503", Note: "op only"}, {Type: "second"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if runs < 1 || out.State != submission.StateRetrying || out.TotalAttempts != 1 {
		t.Fatalf("Update returned %+v after %d runs of fn", out, runs)
	}
	got, err := st.Get(sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != submission.StateRetrying || got.Attempts != 1 || got.TotalAttempts != 1 || !got.NextAttemptAt.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("record after Update: %+v", got)
	}
	evs, err := st.Events(sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(eventTypes(evs), []string{"received", "routed", "queued", "attempt_failed", "second"}) {
		t.Fatalf("events after Update: %v", eventTypes(evs))
	}
	if e := evs[3]; e.Attempt != 1 || e.Detail != "receiver answered HTTP 503" || e.Note != "op only" || e.SubmissionID != sub.ID {
		t.Fatalf("event fields: %+v", e)
	}
}

func (s *suite) testUpdateNoEvents(t *testing.T) {
	st := s.h.Open(t)
	sub := mustCreate(t, st, NewSubmission(uid("s"), uid("p"), uid("m")), firstEvents(), "r")
	if _, err := st.Update(sub.ID, func(x *submission.Submission) ([]submission.Event, error) {
		x.State = submission.StateHandedOver
		x.TotalAttempts = 99
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	_, changed, err := st.UpdateWithReceipt(sub.ID, "out", []byte("never"), func(x *submission.Submission) ([]submission.Event, error) {
		x.State = submission.StateDelivered
		return []submission.Event{}, nil
	})
	if err != nil || changed {
		t.Fatalf("UpdateWithReceipt without events: changed=%v err=%v", changed, err)
	}
	got, _ := st.Get(sub.ID)
	if got.State != submission.StateQueued || got.TotalAttempts != 0 {
		t.Fatalf("fn returned no events but the record changed: %+v", got)
	}
	if evs, _ := st.Events(sub.ID); len(evs) != 3 {
		t.Fatalf("events written without a change: %v", eventTypes(evs))
	}
	if _, err := st.Receipt(sub.ID, "out"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("receipt written without a change: %v", err)
	}
	assertIndexed(t, st, sub.ID, true, false)
}

func (s *suite) testUpdateError(t *testing.T) {
	st := s.h.Open(t)
	sub := mustCreate(t, st, NewSubmission(uid("s"), uid("p"), uid("m")), firstEvents(), "r")
	boom := errors.New("boom")
	_, err := st.Update(sub.ID, func(x *submission.Submission) ([]submission.Event, error) {
		x.State = submission.StateHandedOver
		return []submission.Event{{Type: "handed_over"}}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update err = %v, want the fn's error", err)
	}
	_, changed, err := st.UpdateWithReceipt(sub.ID, "out", []byte("r"), func(x *submission.Submission) ([]submission.Event, error) {
		x.State = submission.StateDelivered
		return []submission.Event{{Type: "delivered"}}, fmt.Errorf("wrapped: %w", submission.ErrIllegal)
	})
	if !errors.Is(err, submission.ErrIllegal) || changed {
		t.Fatalf("UpdateWithReceipt err = %v changed=%v", err, changed)
	}
	got, _ := st.Get(sub.ID)
	if got.State != submission.StateQueued {
		t.Fatalf("state changed to %s despite the error", got.State)
	}
	if evs, _ := st.Events(sub.ID); len(evs) != 3 {
		t.Fatalf("events written despite the error: %v", eventTypes(evs))
	}
	if _, err := st.Receipt(sub.ID, "out"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("receipt written despite the error: %v", err)
	}
	assertIndexed(t, st, sub.ID, true, false)
}

func (s *suite) testUpdateWithReceipt(t *testing.T) {
	st := s.h.Open(t)
	sub := mustCreate(t, st, NewSubmission(uid("s"), uid("p"), uid("m")), firstEvents(), "r")
	deliver := func(receipt string) bool {
		t.Helper()
		out, changed, err := st.UpdateWithReceipt(sub.ID, "out", []byte(receipt), func(x *submission.Submission) ([]submission.Event, error) {
			if x.State == submission.StateDelivered {
				return nil, nil
			}
			x.State = submission.StateDelivered
			x.Receiver = receipt
			return []submission.Event{{Type: submission.EventDelivered, Detail: receipt}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if out == nil || out.State != submission.StateDelivered {
			t.Fatalf("UpdateWithReceipt returned %+v", out)
		}
		return changed
	}
	if !deliver("by webhook") {
		t.Fatal("the first confirmation did not change the record")
	}
	if deliver("by api") {
		t.Fatal("the second confirmation changed the record")
	}
	r, err := st.Receipt(sub.ID, "out")
	evs, _ := st.Events(sub.ID)
	got, _ := st.Get(sub.ID)
	if err != nil || string(r) != "by webhook" || len(evs) != 4 || evs[3].Detail != "by webhook" || got.Receiver != "by webhook" {
		t.Fatalf("receipt %q (%v), record %q and events %v disagree", r, err, got.Receiver, eventTypes(evs))
	}
	if in, _ := st.Receipt(sub.ID, "in"); string(in) != "r" {
		t.Fatalf("intake receipt changed to %q", in)
	}
	assertIndexed(t, st, sub.ID, false, false)

	// Racing confirmations: exactly one wins, and its receipt is the one kept.
	sub2 := mustCreate(t, st, NewSubmission(uid("s"), uid("p"), uid("m")), firstEvents(), "r")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := fmt.Sprintf("confirmation-%d", i)
			_, changed, err := st.UpdateWithReceipt(sub2.ID, "out", []byte(who), func(x *submission.Submission) ([]submission.Event, error) {
				if x.State == submission.StateDelivered {
					return nil, nil
				}
				x.State = submission.StateDelivered
				return []submission.Event{{Type: submission.EventDelivered, Detail: who}}, nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			if changed {
				mu.Lock()
				winners = append(winners, who)
				mu.Unlock()
			}
		}()
	}
	waitGroup(t, &wg)
	r, _ = st.Receipt(sub2.ID, "out")
	evs, _ = st.Events(sub2.ID)
	if len(winners) != 1 || string(r) != winners[0] || len(evs) != 4 || evs[3].Detail != winners[0] {
		t.Fatalf("racing confirmations: winners %v, receipt %q, events %v", winners, r, eventTypes(evs))
	}
}

func assertIndexed(t *testing.T, st store.Store, id string, outbox, handed bool) {
	t.Helper()
	ob, err := st.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	hoe, err := st.HandedOver()
	if err != nil {
		t.Fatal(err)
	}
	var ho []string
	for _, e := range hoe {
		ho = append(ho, e.ID)
		if e.ID == id {
			s, err := st.Get(id)
			if err != nil {
				t.Fatal(err)
			}
			if want := waitingEntry(s); e != want {
				t.Fatalf("handed-over entry %+v, want %+v", e, want)
			}
		}
	}
	if slices.Contains(ob, id) != outbox || slices.Contains(ho, id) != handed {
		t.Fatalf("%s: in outbox=%v (want %v), in handed-over=%v (want %v)", id, slices.Contains(ob, id), outbox, slices.Contains(ho, id), handed)
	}
	// The held index follows the record: listed exactly while it is held.
	hl, err := store.IDsOf(st.Held)()
	if err != nil {
		t.Fatal(err)
	}
	wantHeld := false
	if s, err := st.Get(id); err == nil {
		wantHeld = s.State == submission.StateHeld
	}
	if got := count(hl, id); got != map[bool]int{false: 0, true: 1}[wantHeld] {
		t.Fatalf("%s: listed %d times as held, want held=%v", id, got, wantHeld)
	}
	if n := count(ob, id); n > 1 {
		t.Fatalf("%s listed %d times in the outbox", id, n)
	}
	// The undecided index follows the record too, with the record's value.
	assertUndecided(t, st, id)
	// Waiting lists the three together, once each, with what the record says.
	// Waiting lists the three together, once each, with what the record says,
	// for the record's office only.
	office := ""
	if s, err := st.Get(id); err == nil {
		office = s.OfficeID
	}
	for _, o := range []string{office, office + "-other"} {
		w, err := st.Waiting(o)
		if err != nil {
			t.Fatal(err)
		}
		var got []store.Waiting
		for _, e := range w {
			if e.Known && e.Office != o {
				t.Fatalf("Waiting(%q) lists an entry of office %q: %+v", o, e.Office, e)
			}
			if e.ID == id {
				got = append(got, e)
			}
		}
		wantIn := (outbox || handed || wantHeld) && o == office
		if len(got) != map[bool]int{false: 0, true: 1}[wantIn] {
			t.Fatalf("%s: Waiting(%q) names it %d times (%+v), want in=%v", id, o, len(got), got, wantIn)
		}
		if wantIn {
			s, err := st.Get(id)
			if err != nil {
				t.Fatal(err)
			}
			if want := waitingEntry(s); got[0] != want {
				t.Fatalf("Waiting entry %+v, want %+v", got[0], want)
			}
		}
		if !slices.IsSortedFunc(w, func(a, b store.Waiting) int { return strings.Compare(a.ID, b.ID) }) {
			t.Fatal("Waiting is not in id order")
		}
	}
}

// assertUndecided checks that the undecided index lists id exactly while its
// record awaits the office's decision (submission.AwaitsDecision), once, with
// the value the record makes.
func assertUndecided(t *testing.T, st store.Store, id string) {
	t.Helper()
	ud, err := st.Undecided()
	if err != nil {
		t.Fatal(err)
	}
	var got []store.Waiting
	for _, e := range ud {
		if e.ID == id {
			got = append(got, e)
		}
	}
	want := false
	s, err := st.Get(id)
	if err == nil {
		want = s.AwaitsDecision()
	}
	if len(got) != map[bool]int{false: 0, true: 1}[want] {
		state := "deleted"
		if s != nil {
			state = fmt.Sprintf("%s, delivered via %q, processed %v, erased %v", s.State, s.DeliveryChannel(), s.Processed, s.BytesRemovedAt != nil)
		}
		t.Fatalf("%s (%s): listed %d times as undecided, want undecided=%v", id, state, len(got), want)
	}
	if want && got[0] != waitingEntry(s) {
		t.Fatalf("undecided entry %+v, want %+v", got[0], waitingEntry(s))
	}
}

// deliverVia is an Update fn that records the delivery by ch as the lifecycle
// does (Confirm: the office's pickup, or the push channel's confirmation).
func deliverVia(ch string) func(*submission.Submission) ([]submission.Event, error) {
	return func(s *submission.Submission) ([]submission.Event, error) {
		return s.Confirm(time.Now().UTC(), ch, submission.Confirmation{Receiver: "office (" + ch + ")"})
	}
}

// testUndecided: the undecided index holds a delivered case exactly while its
// office's decision is still to come here, through every change that ends or
// restarts the wait: a decision, the office's "processed" mark and its
// withdrawal, an erasure, Delete; cases delivered by XTA or a transfer folder,
// which never decide here, are not in it, nor are other offices' cases missing.
func (s *suite) testUndecided(t *testing.T) {
	st := s.h.Open(t)
	mk := func(office string) string {
		sub := NewSubmission(uid("u"), uid("p"), uid("m"))
		sub.OfficeID = office
		return mustCreate(t, st, sub, firstEvents(), "r").ID
	}
	update := func(id string, fn func(*submission.Submission) ([]submission.Event, error)) {
		t.Helper()
		if _, err := st.Update(id, fn); err != nil {
			t.Fatal(err)
		}
		assertIndexed(t, st, id, false, false)
	}
	officeB := uid("office-b")
	api, mailbox, xta, transfer, other := mk("office-a"), mk("office-a"), mk("office-a"), mk("office-a"), mk(officeB)
	for id, ch := range map[string]string{api: "api", mailbox: "mailbox", xta: "xta", transfer: "transfer", other: "webhook"} {
		update(id, deliverVia(ch))
	}
	ud, err := st.Undecided()
	if err != nil {
		t.Fatal(err)
	}
	got := store.IDs(ud)
	slices.Sort(got)
	want := []string{api, mailbox, other}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("undecided %v, want %v (by the api, the mailbox and a webhook; not by XTA or a transfer folder)", got, want)
	}
	now := time.Now().UTC()
	// A reply is no decision: the case still waits for one.
	update(api, addReply(uid("msg")))
	// The office's mark that it dealt with the case ends the wait, its withdrawal
	// starts it again; a decision ends it for good.
	update(mailbox, func(x *submission.Submission) ([]submission.Event, error) {
		return x.MarkProcessed(now, true, "anna", "mailbox")
	})
	update(mailbox, func(x *submission.Submission) ([]submission.Event, error) {
		return x.MarkProcessed(now, false, "anna", "mailbox")
	})
	update(mailbox, func(x *submission.Submission) ([]submission.Event, error) {
		return x.Decide(now, "", submission.OutcomeRejected, "unvollständig", "anna")
	})
	update(api, func(x *submission.Submission) ([]submission.Event, error) {
		return x.Decide(now, "", submission.OutcomeAccepted, "", "fv")
	})
	// An erasure leaves nothing to decide on.
	update(other, func(x *submission.Submission) ([]submission.Event, error) {
		x.BytesGone(now)
		return []submission.Event{{Type: submission.EventBytesRemoved}}, nil
	})
	// Delete takes an undecided case's entry with it.
	gone := mk("office-a")
	update(gone, deliverVia("webhook"))
	if err := st.Delete(gone); err != nil {
		t.Fatal(err)
	}
	assertIndexed(t, st, gone, false, false)
	// A record created delivered (an import from another store) is indexed.
	imported := NewSubmission(uid("u"), uid("p"), uid("m"))
	if _, err := deliverVia("api")(imported); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, st, imported, firstEvents(), "r")
	assertIndexed(t, st, imported.ID, false, false)
	ud, err = st.Undecided()
	if err != nil {
		t.Fatal(err)
	}
	if ids := store.IDs(ud); !slices.Equal(ids, []string{imported.ID}) {
		t.Fatalf("undecided at the end %v, want only the imported case %s", ids, imported.ID)
	}
}

// testUndecidedBuiltOnOpen: a store an earlier build wrote has no undecided
// index; the first open of this build fills it from the records, and its cases
// that await a decision are listed, with their values, and only those.
func (s *suite) testUndecidedBuiltOnOpen(t *testing.T) {
	st := s.h.Open(t)
	var ids, waiting []string
	for i, fn := range []func(*submission.Submission) ([]submission.Event, error){
		deliverVia("api"), deliverVia("xta"), deliverVia("mailbox"), nil, deliverVia("webhook"),
	} {
		sub := mustCreate(t, st, NewSubmission(uid("o"), uid("p"), uid("m")), firstEvents(), "r")
		ids = append(ids, sub.ID)
		if fn == nil {
			continue
		}
		if _, err := st.Update(sub.ID, fn); err != nil {
			t.Fatal(err)
		}
		if i != 1 {
			waiting = append(waiting, sub.ID)
		}
	}
	now := time.Now().UTC()
	if _, err := st.Update(ids[4], func(x *submission.Submission) ([]submission.Event, error) {
		return x.Decide(now, "", submission.OutcomeAccepted, "", "fv")
	}); err != nil {
		t.Fatal(err)
	}
	waiting = waiting[:2]
	st = s.h.Older(t, st)
	ud, err := st.Undecided()
	if err != nil {
		t.Fatal(err)
	}
	got := store.IDs(ud)
	slices.Sort(got)
	slices.Sort(waiting)
	if !slices.Equal(got, waiting) {
		t.Fatalf("undecided after opening an older store %v, want %v", got, waiting)
	}
	for _, id := range ids {
		assertIndexed(t, st, id, id == ids[3], false)
	}
	// And it is kept from then on.
	if _, err := st.Update(ids[0], func(x *submission.Submission) ([]submission.Event, error) {
		return x.Decide(now, "", submission.OutcomeAccepted, "", "fv")
	}); err != nil {
		t.Fatal(err)
	}
	assertIndexed(t, st, ids[0], false, false)
}

// waitingEntry is the entry the waiting indexes must hold for s.
func waitingEntry(s *submission.Submission) store.Waiting {
	t, _ := s.CurrentTarget()
	return store.Waiting{ID: s.ID, Known: true, Office: s.OfficeID, Erased: s.BytesRemovedAt != nil, Channel: t.Channel, Fetched: s.FetchedAt != nil}
}

// testWaiting: the waiting entries name the office and follow an erasure, for
// every waiting state, without reading a record (the XTA face counts
// MessagesPending from them on every getMessage).
func (s *suite) testWaiting(t *testing.T) {
	st := s.h.Open(t)
	officeB := uid("office-b")
	var ids []string
	for i, state := range []submission.State{submission.StateQueued, submission.StateRetrying, submission.StateHandedOver, submission.StateHeld} {
		sub := NewSubmission(uid("w"), uid("p"), uid("m"))
		sub.State = state
		if i%2 == 1 {
			sub.OfficeID = officeB
		}
		mustCreate(t, st, sub, firstEvents(), "r")
		ids = append(ids, sub.ID)
		assertIndexed(t, st, sub.ID, state.Dispatchable(), state == submission.StateHandedOver)
	}
	// An erasure of a waiting submission's bytes changes no state: its entry says so.
	for _, id := range ids {
		if _, err := st.Update(id, func(x *submission.Submission) ([]submission.Event, error) {
			now := time.Now().UTC()
			x.BytesRemovedAt = &now
			return []submission.Event{{Type: submission.EventBytesRemoved}}, nil
		}); err != nil {
			t.Fatal(err)
		}
		x, _ := st.Get(id)
		assertIndexed(t, st, id, x.State.Dispatchable(), x.State == submission.StateHandedOver)
	}
	// A fallback to the next channel while waiting: the entry names it.
	if _, err := st.Update(ids[1], func(x *submission.Submission) ([]submission.Event, error) {
		x.TargetIndex = 1
		return []submission.Event{{Type: submission.EventFallback, Channel: x.Targets[1].Channel}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	assertIndexed(t, st, ids[1], true, false)
	// A first fetch by the office's system (XTA getMessage): the entry says so.
	if _, err := st.Update(ids[2], func(x *submission.Submission) ([]submission.Event, error) {
		now := time.Now().UTC()
		x.FetchedAt = &now
		return []submission.Event{{Type: submission.EventFetched, Channel: "xta"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	assertIndexed(t, st, ids[2], false, true)
	// Moving on keeps the erasure in the entry; leaving the waiting states ends it.
	if _, err := st.Update(ids[0], setState(submission.StateHandedOver, "handed_over")); err != nil {
		t.Fatal(err)
	}
	assertIndexed(t, st, ids[0], false, true)
	if _, err := st.Update(ids[2], setState(submission.StateDelivered, "delivered")); err != nil {
		t.Fatal(err)
	}
	assertIndexed(t, st, ids[2], false, false)
	w, err := st.Waiting(officeB)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range w {
		if e.Erased {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d erased entries of office %s, want 2: %+v", n, officeB, w)
	}
}

func count(ids []string, id string) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}

func (s *suite) testIndexes(t *testing.T) {
	st := s.h.Open(t)
	a := mustCreate(t, st, NewSubmission(uid("a"), uid("p"), uid("m")), firstEvents(), "r")
	b := mustCreate(t, st, NewSubmission(uid("b"), uid("p"), uid("m")), firstEvents(), "r")
	held := NewSubmission(uid("h"), uid("p"), uid("m"))
	held.State = submission.StateHeld
	mustCreate(t, st, held, firstEvents(), "r")
	assertIndexed(t, st, held.ID, false, false)
	steps := []submission.State{
		submission.StateRetrying, submission.StateHandedOver, submission.StateQueued, submission.StateHandedOver,
		submission.StateDelivered, submission.StateQueued, submission.StateHeld, submission.StateAccepted,
		submission.StateRejected, submission.StateForwarded, submission.StateRetrying,
	}
	for _, state := range steps {
		if _, err := st.Update(a.ID, setState(state, string(state))); err != nil {
			t.Fatal(err)
		}
		assertIndexed(t, st, a.ID, state.Dispatchable(), state == submission.StateHandedOver)
		assertIndexed(t, st, b.ID, true, false) // the other submission is not touched
	}
	if _, err := st.Update(b.ID, setState(submission.StateHandedOver, "handed_over")); err != nil {
		t.Fatal(err)
	}
	assertIndexed(t, st, b.ID, false, true)
	if _, _, err := st.UpdateWithReceipt(b.ID, "out", []byte("r"), setState(submission.StateDelivered, "delivered")); err != nil {
		t.Fatal(err)
	}
	assertIndexed(t, st, b.ID, false, false)
	if err := st.Delete(held.ID); err != nil {
		t.Fatal(err)
	}
	assertIndexed(t, st, held.ID, false, false)
	evs, _ := st.Events(a.ID)
	want := []string{"received", "routed", "queued"}
	for _, state := range steps {
		want = append(want, string(state))
	}
	if !slices.Equal(eventTypes(evs), want) {
		t.Fatalf("events %v, want %v", eventTypes(evs), want)
	}
}

// addReply is an Update fn that adds a reply carrying the office's message id.
func addReply(messageID string) func(*submission.Submission) ([]submission.Event, error) {
	return func(s *submission.Submission) ([]submission.Event, error) {
		s.Replies = append(s.Replies, submission.Reply{ID: uid("r"), Kind: "Bescheid", MessageID: messageID, Channel: "xta"})
		return []submission.Event{{Type: "reply_sent"}}, nil
	}
}

// testRepliesByMessage: the reply index finds every record holding a reply with a
// message id — across records, after a reopen, for a record created with its
// replies (an import) — and follows Delete.
func (s *suite) testRepliesByMessage(t *testing.T) {
	st := s.h.Open(t)
	m1, m2, m3 := uid("xta-"), uid("xta-"), uid("never")
	a := mustCreate(t, st, NewSubmission(uid("a"), uid("p"), uid("m")), firstEvents(), "r")
	b := mustCreate(t, st, NewSubmission(uid("b"), uid("p"), uid("m")), firstEvents(), "r")
	imported := NewSubmission(uid("c"), uid("p"), uid("m"))
	imported.Replies = []submission.Reply{{ID: uid("r"), Kind: "Bescheid", MessageID: m2, Channel: "xta"}}
	mustCreate(t, st, imported, firstEvents(), "r")
	for _, step := range []struct{ id, messageID string }{{a.ID, m1}, {a.ID, m2}, {b.ID, m1}, {b.ID, ""}} {
		if _, err := st.Update(step.id, addReply(step.messageID)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(st store.Store, messageID string, want ...string) {
		t.Helper()
		got, err := st.RepliesByMessage(messageID)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) && len(got)+len(want) > 0 {
			t.Fatalf("RepliesByMessage(%q) = %v, want %v", messageID, got, want)
		}
	}
	check(st, m1, a.ID, b.ID)
	check(st, m2, a.ID, imported.ID)
	check(st, m3)
	check(st, "") // a reply without an id of its own is not indexed
	st = s.h.Reopen(t, st)
	check(st, m1, a.ID, b.ID)
	if err := st.Delete(a.ID); err != nil {
		t.Fatal(err)
	}
	check(st, m1, b.ID)
	check(st, m2, imported.ID)
}

// testFollowUps: the index by case finds a case's Nachreichungen — not the case
// itself, not another case's whose id begins with this one's —, in id order,
// after a reopen and after an upgrade from a build before the index (Older),
// and follows Delete.
func (s *suite) testFollowUps(t *testing.T) {
	st := s.h.Open(t)
	c := mustCreate(t, st, NewSubmission(uid("case"), uid("p"), uid("m")), firstEvents(), "r")
	other := mustCreate(t, st, NewSubmission(c.ID+"x", uid("p"), uid("m")), firstEvents(), "r")
	var want []string
	for i := range 3 {
		n := NewSubmission(fmt.Sprintf("%s-n%d", uid("n"), i), uid("p"), uid("m"))
		n.CaseID = c.ID
		mustCreate(t, st, n, firstEvents(), "r")
		want = append(want, n.ID)
	}
	o := NewSubmission(uid("n"), uid("p"), uid("m"))
	o.CaseID = other.ID
	mustCreate(t, st, o, firstEvents(), "r")
	// A change of a Nachreichung keeps it listed, once.
	if _, err := st.Update(want[1], setState(submission.StateHandedOver, "handed_over")); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	check := func(st store.Store, caseID string, want ...string) {
		t.Helper()
		got, err := st.FollowUps(caseID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) && len(got)+len(want) > 0 {
			t.Fatalf("FollowUps(%q) = %v, want %v", caseID, got, want)
		}
	}
	check(st, c.ID, want...)
	check(st, other.ID, o.ID)
	check(st, want[0]) // a Nachreichung has none of its own
	check(st, uid("never"))
	st = s.h.Reopen(t, st)
	check(st, c.ID, want...)
	st = s.h.Older(t, st)
	check(st, c.ID, want...)
	check(st, other.ID, o.ID)
	if err := st.Delete(want[0]); err != nil {
		t.Fatal(err)
	}
	check(st, c.ID, want[1:]...)
}

func (s *suite) testWalkOffice(t *testing.T) {
	st := s.h.Open(t)
	officeA, officeAB, officeB := uid("office-a"), "", uid("office-b")
	officeAB = officeA + "b" // a prefix of another office must not leak into it
	var idsA []string
	base := uid("w")
	for i := range 7 {
		sub := NewSubmission(fmt.Sprintf("%s-%02d", base, i), uid("p"), uid("m"))
		switch i {
		case 2:
			sub.OfficeID = officeB
		case 5:
			sub.OfficeID = officeAB
		default:
			sub.OfficeID = officeA
			idsA = append(idsA, sub.ID)
		}
		mustCreate(t, st, sub, firstEvents(), "r")
	}
	// Changing a record keeps it in its office's listing, once.
	if _, err := st.Update(idsA[1], setState(submission.StateHandedOver, "handed_over")); err != nil {
		t.Fatal(err)
	}
	walk := func(office, after string, limit int) []string {
		t.Helper()
		var out []string
		if err := st.WalkOffice(office, after, func(x *submission.Submission) bool {
			if x.OfficeID != office {
				t.Errorf("WalkOffice(%s) returned %s of office %s", office, x.ID, x.OfficeID)
			}
			out = append(out, x.ID)
			return limit == 0 || len(out) < limit
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if all := walk(officeA, "", 0); !slices.Equal(all, idsA) {
		t.Fatalf("WalkOffice(%s) = %v, want %v (oldest first, by id)", officeA, all, idsA)
	}
	var paged []string
	after := ""
	for range 10 {
		page := walk(officeA, after, 2)
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1]
	}
	if !slices.Equal(paged, idsA) {
		t.Fatalf("paging by 2 = %v, want %v", paged, idsA)
	}
	if got := walk(officeA, idsA[2], 0); !slices.Equal(got, idsA[3:]) {
		t.Fatalf("after %s: %v, want %v", idsA[2], got, idsA[3:])
	}
	if got := walk(officeB, "", 0); len(got) != 1 || got[0] != base+"-02" {
		t.Fatalf("%s sees %v", officeB, got)
	}
	if got := walk(officeAB, "", 0); len(got) != 1 || got[0] != base+"-05" {
		t.Fatalf("%s sees %v", officeAB, got)
	}
	if got := walk(uid("office-none"), "", 0); len(got) != 0 {
		t.Fatalf("an unknown office sees %v", got)
	}
}

func (s *suite) testScan(t *testing.T) {
	st := s.h.Open(t)
	want := map[string]bool{}
	for range 5 {
		sub := mustCreate(t, st, NewSubmission(uid("scan"), uid("p"), uid("m")), firstEvents(), "r")
		want[sub.ID] = true
	}
	if _, err := st.Update(slices.Sorted(mapKeys(want))[0], setState(submission.StateDelivered, "delivered")); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, x := range scanAll(t, st) {
		seen[x.ID]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("Scan saw %s %d times", id, seen[id])
		}
	}
	calls := 0
	if err := st.Scan(func(*submission.Submission) bool { calls++; return false }); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("Scan went on after fn returned false: %d calls", calls)
	}
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (s *suite) testEventsOrder(t *testing.T) {
	st := s.h.Open(t)
	a := mustCreate(t, st, NewSubmission(uid("a"), uid("p"), uid("m")), firstEvents(), "r")
	b := mustCreate(t, st, NewSubmission(uid("b"), uid("p"), uid("m")), nil, "r")
	want := []string{"received", "routed", "queued"}
	for i := range 6 {
		evs := []submission.Event{{Type: fmt.Sprintf("e%d.1", i)}, {Type: fmt.Sprintf("e%d.2", i)}, {Type: fmt.Sprintf("e%d.3", i)}}
		for _, e := range evs {
			want = append(want, e.Type)
		}
		if _, err := st.Update(a.ID, func(*submission.Submission) ([]submission.Event, error) { return evs, nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Update(b.ID, func(*submission.Submission) ([]submission.Event, error) {
			return []submission.Event{{Type: fmt.Sprintf("b%d", i)}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.Events(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(eventTypes(got), want) {
		t.Fatalf("events %v, want %v", eventTypes(got), want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("Seq not increasing: %d then %d", got[i-1].Seq, got[i].Seq)
		}
	}
	bl, err := st.Events(b.ID)
	if err != nil || len(bl) != 6 {
		t.Fatalf("the other submission's log: %v %v", eventTypes(bl), err)
	}
	for _, e := range bl {
		if e.SubmissionID != b.ID {
			t.Fatalf("event of %s in the log of %s", e.SubmissionID, b.ID)
		}
	}
}

// testGetWithEvents: the record and the log GetWithEvents returns are those
// Get and Events read, and a write landing while it reads gives both as they
// were before it or both as it left them — the portal's and the office's
// status answers are built from one call.
func (s *suite) testGetWithEvents(t *testing.T) {
	st := s.h.Open(t)
	sub := mustCreate(t, st, NewSubmission(uid("s"), uid("p"), uid("m")), firstEvents(), "r")
	attempt := func(n int) func(x *submission.Submission) ([]submission.Event, error) {
		return func(x *submission.Submission) ([]submission.Event, error) {
			x.State = submission.StateRetrying
			x.TotalAttempts = n
			return []submission.Event{{Type: submission.EventAttemptFailed, Attempt: n}}, nil
		}
	}
	if _, err := st.Update(sub.ID, attempt(1)); err != nil {
		t.Fatal(err)
	}
	got, evs, err := st.GetWithEvents(sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	want, err := st.Get(sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantEvs, err := st.Events(sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != want.ID || got.State != want.State || got.TotalAttempts != want.TotalAttempts || got.Generation != want.Generation {
		t.Fatalf("GetWithEvents record %+v, Get %+v", got, want)
	}
	if !slices.Equal(eventTypes(evs), eventTypes(wantEvs)) || evs[len(evs)-1].Seq != wantEvs[len(wantEvs)-1].Seq {
		t.Fatalf("GetWithEvents events %v, Events %v", eventTypes(evs), eventTypes(wantEvs))
	}
	// A write during the read: the attempts the record counts are the
	// attempt_failed events of the log read with it.
	s.h.MidRead(t, st, func() {
		if _, err := st.Update(sub.ID, attempt(2)); err != nil {
			t.Error(err)
		}
	})
	got, evs, err = st.GetWithEvents(sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, e := range evs {
		if e.Type == submission.EventAttemptFailed {
			failed++
		}
	}
	if failed != got.TotalAttempts {
		t.Fatalf("GetWithEvents paired a record of %d attempts with a log of %d failed ones: %v", got.TotalAttempts, failed, eventTypes(evs))
	}
	if now, err := st.Get(sub.ID); err != nil || now.TotalAttempts != 2 {
		t.Fatalf("the write meanwhile did not land: %+v %v", now, err)
	}
}

func (s *suite) testConcurrentUpdates(t *testing.T) {
	st := s.h.Open(t)
	sub := mustCreate(t, st, NewSubmission(uid("c"), uid("p"), uid("m")), firstEvents(), "r")
	n := s.h.Concurrency
	if n%4 != 0 {
		n += 4 - n%4 // an even number of state toggles ends where it started
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := st.Update(sub.ID, func(x *submission.Submission) ([]submission.Event, error) {
				x.TotalAttempts++
				if i%2 == 0 { // half the updates move the indexes too
					if x.State == submission.StateHandedOver {
						x.State = submission.StateQueued
					} else {
						x.State = submission.StateHandedOver
					}
				}
				return []submission.Event{{Type: "counted", Attempt: x.TotalAttempts, Detail: fmt.Sprint(i)}}, nil
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		}()
	}
	close(start)
	waitGroup(t, &wg)
	got, err := st.Get(sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.TotalAttempts != n {
		t.Fatalf("TotalAttempts = %d after %d concurrent updates: updates were lost", got.TotalAttempts, n)
	}
	evs, _ := st.Events(sub.ID)
	if len(evs) != n+3 {
		t.Fatalf("%d events after %d updates, want %d", len(evs), n, n+3)
	}
	var attempts []int
	writers := map[string]bool{}
	for _, e := range evs[3:] {
		attempts = append(attempts, e.Attempt)
		writers[e.Detail] = true
	}
	sort.Ints(attempts)
	for i, a := range attempts {
		if a != i+1 {
			t.Fatalf("event counters %v: each update must see the one before it", attempts)
		}
	}
	if len(writers) != n {
		t.Fatalf("events of %d updates, want %d", len(writers), n)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq <= evs[i-1].Seq || i > 3 && evs[i].Attempt != evs[i-1].Attempt+1 {
			t.Fatalf("log out of commit order at %d: %+v then %+v", i, evs[i-1], evs[i])
		}
	}
	assertIndexed(t, st, sub.ID, got.State.Dispatchable(), got.State == submission.StateHandedOver)
	if got.State != submission.StateQueued {
		t.Fatalf("state %s after an even number of toggles", got.State)
	}
}

// testOpaqueKeys: ids, office ids, senders and message ids are opaque strings; dots,
// wildcards, separators and non-ASCII must neither break nor mix them up.
func (s *suite) testOpaqueKeys(t *testing.T) {
	st := s.h.Open(t)
	office := "sn:14612000.amt/1 *>" + uid("")
	odd := []string{"x.y", "x*", "x>", "x y", "ü-" + uid(""), "=eA", "x\x00y", strings.Repeat("L", 300)}
	for i, raw := range odd {
		id := raw + "-" + uid("")
		sub := NewSubmission(id, "portal."+raw, "msg*"+raw)
		sub.OfficeID = office
		if i%2 == 1 {
			sub.State = submission.StateHandedOver
		}
		mustCreate(t, st, sub, firstEvents(), "r-"+id)
		odd[i] = id
	}
	for i, id := range odd {
		got, err := st.Get(id)
		if err != nil || got.ID != id {
			t.Fatalf("Get(%q) = %v, %v", id, got, err)
		}
		if f, err := st.FindByMessage(got.Sender, got.MessageID); err != nil || f.ID != id {
			t.Fatalf("FindByMessage for %q = %v, %v", id, f, err)
		}
		if r, err := st.Receipt(id, "in"); err != nil || string(r) != "r-"+id {
			t.Fatalf("Receipt(%q) = %q, %v", id, r, err)
		}
		assertIndexed(t, st, id, i%2 == 0, i%2 == 1)
	}
	var walked []string
	if err := st.WalkOffice(office, "", func(x *submission.Submission) bool { walked = append(walked, x.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if want := slices.Sorted(slices.Values(odd)); !slices.Equal(walked, want) {
		t.Fatalf("WalkOffice(%q) = %q, want %q", office, walked, want)
	}
	if err := st.WalkOffice("sn:14612000", "", func(x *submission.Submission) bool {
		t.Errorf("office prefix sees %q", x.ID)
		return true
	}); err != nil {
		t.Fatal(err)
	}
}

func (s *suite) testBlobs(t *testing.T) {
	st := s.h.Open(t)
	bs := st.Blobs()
	ctx := context.Background()
	big := make([]byte, 1<<20+12345) // larger than one NATS message
	_, _ = rand.Read(big)
	for _, b := range [][]byte{[]byte("%PDF-1.4 tiny"), {}, big} {
		d, err := bs.Put(b)
		if err != nil {
			t.Fatalf("Put %d bytes: %v", len(b), err)
		}
		sum := sha256.Sum256(b)
		if d != hex.EncodeToString(sum[:]) {
			t.Fatalf("Put returned %s, not the hex SHA-256", d)
		}
		if d2, err := bs.Put(b); err != nil || d2 != d {
			t.Fatalf("second Put of the same bytes: %s %v", d2, err)
		}
		rc, err := bs.Open(ctx, d)
		if err != nil {
			t.Fatalf("Open %d bytes: %v", len(b), err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("read back %d of %d bytes: %v", len(got), len(b), err)
		}
	}
	for _, name := range []string{"", "../../etc/passwd", "ABCDEF", "zz" + string(make([]byte, 62)), "*", hex.EncodeToString(make([]byte, 32)) + ".>",
		"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"} {
		if _, err := bs.Open(ctx, name); !errors.Is(err, store.ErrBadDigest) {
			t.Errorf("Open(%q): %v, want ErrBadDigest", name, err)
		}
	}
	missing := sha256.Sum256([]byte(uid("never put")))
	if _, err := bs.Open(ctx, hex.EncodeToString(missing[:])); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Open of a digest never put: %v, want ErrNotFound", err)
	}
}

func (s *suite) testDurable(t *testing.T) {
	st := s.h.Open(t)
	ctx := context.Background()
	digest, err := st.Blobs().Put([]byte("%PDF-1.4 durable"))
	if err != nil {
		t.Fatal(err)
	}
	a := mustCreate(t, st, NewSubmission(uid("a"), uid("p"), uid("m")), firstEvents(), "ra")
	b := mustCreate(t, st, NewSubmission(uid("b"), uid("p"), uid("m")), firstEvents(), "rb")
	if _, _, err := st.UpdateWithReceipt(b.ID, "out", []byte("delivered-b"), setState(submission.StateHandedOver, "handed_over")); err != nil {
		t.Fatal(err)
	}
	st = s.h.Reopen(t, st)
	if got, err := st.Get(a.ID); err != nil || got.State != submission.StateQueued {
		t.Fatalf("after reopen: Get = %+v, %v", got, err)
	}
	if r, err := st.Receipt(a.ID, "in"); err != nil || string(r) != "ra" {
		t.Fatalf("after reopen: receipt %q %v", r, err)
	}
	if r, err := st.Receipt(b.ID, "out"); err != nil || string(r) != "delivered-b" {
		t.Fatalf("after reopen: receipt %q %v", r, err)
	}
	if evs, err := st.Events(b.ID); err != nil || len(evs) != 4 {
		t.Fatalf("after reopen: events %v %v", eventTypes(evs), err)
	}
	assertIndexed(t, st, a.ID, true, false)
	assertIndexed(t, st, b.ID, false, true)
	// Idempotency survives: the same message again gets the first record.
	got, rcpt, created, err := st.Create(ctx, NewSubmission(uid("again"), a.Sender, a.MessageID), firstEvents(), "in", []byte("x"))
	if err != nil || created || got.ID != a.ID || string(rcpt) != "ra" {
		t.Fatalf("after reopen: duplicate Create = %v %q %v %v", got, rcpt, created, err)
	}
	rc, err := st.Blobs().Open(ctx, digest)
	if err != nil {
		t.Fatalf("after reopen: blob: %v", err)
	}
	defer rc.Close()
	if body, err := io.ReadAll(rc); err != nil || string(body) != "%PDF-1.4 durable" {
		t.Fatalf("after reopen: blob %q %v", body, err)
	}
	// And the reopened store keeps working.
	if _, err := st.Update(a.ID, setState(submission.StateHandedOver, "handed_over")); err != nil {
		t.Fatal(err)
	}
	assertIndexed(t, st, a.ID, false, true)
}

func waitGroup(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(watchdog):
		t.Fatalf("concurrent calls did not finish within %s", watchdog)
	}
}

// testWritesTimed: every write is counted in amtsbote_store_write_wait_seconds,
// the histogram the AmtsboteStoreSlow alert and the bench read.
func (s *suite) testWritesTimed(t *testing.T) {
	st := s.h.Open(t)
	before := writeWaits(t, st)
	sub := mustCreate(t, st, NewSubmission(uid("s"), uid("portal"), uid("m")), firstEvents(), "in")
	if _, err := st.Update(sub.ID, setState(submission.StateHandedOver, "handed_over")); err != nil {
		t.Fatal(err)
	}
	if got := writeWaits(t, st) - before; got < 2 {
		t.Fatalf("%d writes timed in amtsbote_store_write_wait_seconds after a create and an update", got)
	}
}

// writeWaits is the sample count of st's amtsbote_store_write_wait_seconds.
func writeWaits(t *testing.T, st store.Store) uint64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range st.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatalf("the store's collectors: %v", err)
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "amtsbote_store_write_wait_seconds" && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatal("the store's collectors have no amtsbote_store_write_wait_seconds histogram")
	return 0
}
