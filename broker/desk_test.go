package broker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// brokenBlobs is a store whose blobs cannot be opened: a cluster without quorum.
type brokenBlobs struct{ store.Store }

func (s brokenBlobs) Blobs() store.BlobStore { return brokenBlobStore{s.Store.Blobs()} }

type brokenBlobStore struct{ store.BlobStore }

func (brokenBlobStore) Open(context.Context, string) (io.ReadCloser, error) {
	return nil, errors.New("jsstore: blob: no chunk after 5 fetches")
}

// shortBlobs is a store whose blobs open but end early: a cluster blob whose
// first chunk is there and a later one is not, a file cut short by a disk fault.
type shortBlobs struct{ store.Store }

func (s shortBlobs) Blobs() store.BlobStore { return shortBlobStore{s.Store.Blobs()} }

type shortBlobStore struct{ store.BlobStore }

func (s shortBlobStore) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	rc, err := s.BlobStore.Open(ctx, digest)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b[:len(b)/2])), nil
}

// TestReadCaseRecordsThePickupOnlyForTheWholePackage: the mailbox's case page
// recorded the pickup (a signed Zustellbestaetigung) once the package had opened,
// and a package whose bytes then ended early counted as delivered to a clerk who
// saw only an error. ReadCase reads and checks the whole package first.
func TestReadCaseRecordsThePickupOnlyForTheWholePackage(t *testing.T) {
	ctx := context.Background()
	b := startOver(t, t.TempDir(), testConfig, func(db *store.DB) store.Store { return shortBlobs{db} }, &scripted{channel: "primary", block: make(chan struct{})})
	in := intake("short", "primary")
	in.Attachments = nil
	a, err := b.Receive(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	if c, err := b.ReadCase(ctx, "office-a", id, CaseRead{Max: 1 << 20, Pickup: Pickup{Channel: "mailbox", Receiver: "anna"}}); err != nil || !errors.Is(c.Unread, ErrUnreadable) || c.Package != nil || c.Sub.ID != id {
		t.Fatalf("ReadCase of bytes cut short: %+v %v, want the record and ErrUnreadable", c, err)
	}
	if s, err := b.Submission(id); err != nil || s.DeliveredAt != nil {
		t.Fatalf("bytes cut short counted as picked up: delivered at %v (%v)", s.DeliveredAt, err)
	}
	if c, err := b.ReadCase(ctx, "office-a", id, CaseRead{Max: 10, Pickup: Pickup{Channel: "mailbox"}}); err != nil || !errors.Is(c.Unread, ErrTooLarge) {
		t.Fatalf("ReadCase with a 10-byte limit: %+v %v, want ErrTooLarge", c, err)
	}
	if _, err := b.ReadCase(ctx, "office-b", id, CaseRead{Max: 1 << 20, Pickup: Pickup{Channel: "mailbox"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another office's ReadCase: %v, want ErrNotFound", err)
	}
}

// TestReadCaseReadsAndPicksUp is the control: the whole package is returned,
// byte for byte, its reading is the pickup, and the events read after it show
// it. A case its Open leaves is read without its package and picked up by
// nobody.
func TestReadCaseReadsAndPicksUp(t *testing.T) {
	ctx := context.Background()
	b := startOver(t, t.TempDir(), testConfig, func(db *store.DB) store.Store { return db }, &scripted{channel: "primary", block: make(chan struct{})})
	in := intake("whole", "primary")
	in.Attachments = nil
	a, err := b.Receive(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	pickup := Pickup{Channel: "mailbox", Receiver: "anna"}
	left, err := b.ReadCase(ctx, "office-a", a.Submission.ID, CaseRead{Max: 1 << 20, Pickup: pickup,
		Open: func(*submission.Submission) bool { return false }})
	if err != nil || left.Package != nil || left.Unread != nil || left.Sub.DeliveredAt != nil || len(left.Events) == 0 {
		t.Fatalf("ReadCase left unopened: %+v %v", left, err)
	}
	c, err := b.ReadCase(ctx, "office-a", a.Submission.ID, CaseRead{Max: 1 << 20, Pickup: pickup})
	if err != nil || !bytes.Equal(c.Package, in.Package) || c.Sub.DeliveredAt == nil || c.Unread != nil {
		t.Fatalf("ReadCase: %v, %d bytes (want %d), %+v", err, len(c.Package), len(in.Package), c)
	}
	if last := c.Events[len(c.Events)-1]; last.Type != submission.EventDelivered {
		t.Errorf("the events read after the pickup end with %s", last.Type)
	}
	if s, err := b.Submission(a.Submission.ID); err != nil || s.DeliveredAt == nil {
		t.Fatalf("the pickup is not stored: %v", err)
	}
}

// TestUnreadableBytesAreUnavailable: bytes the store cannot read now are
// ErrUnreadable (the faces answer 503 and "retry later"), not an internal error,
// and such a fetch does not record the office's pickup; bytes that are not there
// stay ErrNotFound.
func TestUnreadableBytesAreUnavailable(t *testing.T) {
	ctx := context.Background()
	b := startOver(t, t.TempDir(), testConfig, func(db *store.DB) store.Store { return brokenBlobs{db} }, &scripted{channel: "primary", block: make(chan struct{})})
	in := intake("unreadable", "primary")
	in.Attachments = nil
	a, err := b.Receive(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.OpenPackage(ctx, "office-a", a.Submission.ID, Pickup{Channel: "api"}); !errors.Is(err, ErrUnreadable) {
		t.Fatalf("OpenPackage: %v, want ErrUnreadable", err)
	}
	// A fetch that could not read the bytes is no pickup.
	if s, err := b.Submission(a.Submission.ID); err != nil || s.DeliveredAt != nil {
		t.Fatalf("after a failed fetch: delivered at %v (%v), want not delivered", s.DeliveredAt, err)
	}
	if _, _, err := b.OpenAttachment(ctx, "office-a", a.Submission.ID, "nope", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenAttachment of no such attachment: %v, want ErrNotFound", err)
	}
}

// TestErasedBeforePickupIsNoDelivery: an operator erased a held case's bytes
// before the office had them. A pickup the office's face records without the
// bytes — a clerk opening the case page in the mailbox, a decision through the
// pull API — is no delivery: no delivered state and no signed
// Zustellbestaetigung for an application no office had (the XTA face refuses
// its close for the same reason). It is ErrConflict, and ErrBytesRemoved.
func TestErasedBeforePickupIsNoDelivery(t *testing.T) {
	noEraseGrace(t)
	e := start(t, t.TempDir())
	ctx := context.Background()
	a, err := e.b.Receive(ctx, intake("erased-before-pickup", "unconfigured"))
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	waitState(t, e.b, id, submission.StateHeld)
	if _, err := e.b.Erase(ctx, id, "operator", "withdrawn by the applicant"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Confirm(ctx, "office-a", id, Pickup{Channel: "mailbox", Receiver: "user anna (mailbox)"}); !errors.Is(err, ErrConflict) || !errors.Is(err, ErrBytesRemoved) {
		t.Errorf("confirm of an erased case never fetched: %v, want ErrConflict and ErrBytesRemoved", err)
	}
	if _, err := e.b.Decide(ctx, "office-a", id, Decision{Outcome: OutcomeAccepted, Actor: "office system", Channel: "api"}); !errors.Is(err, ErrConflict) {
		t.Errorf("decision on an erased case never fetched: %v, want ErrConflict", err)
	}
	s, err := e.b.Submission(id)
	if err != nil || s.DeliveredAt != nil || s.State != submission.StateHeld {
		t.Fatalf("erased case after the pickups: %+v %v, want held and not delivered", s, err)
	}
	if r, err := e.db.Receipt(id, ReceiptDelivery); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a Zustellbestaetigung was signed for bytes no office had: %q %v", r, err)
	}
}

// TestReplyAfterTheBytesWereRemoved: a reply to a case whose bytes were removed
// (the retention after the answer, or an erasure) can never be read — the
// portal's fetch is 410, the retention's sweep takes its blob — so it is refused
// with ErrBytesRemoved instead of being acknowledged to the office and lost. A
// repeat of a reply stored before still answers with that reply.
func TestReplyAfterTheBytesWereRemoved(t *testing.T) {
	noEraseGrace(t)
	e := start(t, t.TempDir())
	ctx := context.Background()
	a, err := e.b.Receive(ctx, intake("reply-after-erasure"))
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	if _, err := e.b.Decide(ctx, "office-a", id, Decision{Outcome: OutcomeAccepted, Actor: "office system", Channel: "api"}); err != nil {
		t.Fatal(err)
	}
	first := ReplyIn{Kind: "Bescheid", MessageID: "bescheid-1", ContentType: "application/pdf", Content: []byte("%PDF Bescheid"), Actor: "Fachverfahren", Channel: "api"}
	r1, err := e.b.Reply(ctx, "office-a", id, first)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Erase(ctx, id, "operator", "Art. 17"); err != nil {
		t.Fatal(err)
	}
	if again, err := e.b.Reply(ctx, "office-a", id, first); err != nil || again.ID != r1.ID {
		t.Fatalf("repeat of a reply stored before the erasure: %+v %v, want %s", again, err, r1.ID)
	}
	late := ReplyIn{Kind: "Bescheid", MessageID: "bescheid-2", ContentType: "application/pdf", Content: []byte("%PDF Änderungsbescheid"), Actor: "Fachverfahren", Channel: "api"}
	r2, err := e.b.Reply(ctx, "office-a", id, late)
	if !errors.Is(err, ErrBytesRemoved) {
		if err == nil {
			_, _, perr := e.b.PortalReply(ctx, "amt24", id, r2.ID)
			t.Fatalf("a reply after the erasure was acknowledged (%s); the portal reads it: %v", r2.ID, perr)
		}
		t.Fatalf("a reply after the erasure: %v, want ErrBytesRemoved", err)
	}
	if s, _ := e.b.Submission(id); len(s.Replies) != 1 {
		t.Fatalf("replies %+v, want the one from before the erasure", s.Replies)
	}
}

// fullDisk is a store whose writes of changes fail after the change itself
// was fine, as bbolt's commit does on a full disk.
type fullDisk struct {
	store.Store
	full bool
}

func (s *fullDisk) Update(id string, fn func(*submission.Submission) ([]submission.Event, error)) (*submission.Submission, error) {
	if !s.full {
		return s.Store.Update(id, fn)
	}
	cur, err := s.Store.Get(id)
	if err != nil {
		return nil, err
	}
	if _, err := fn(cur); err != nil {
		return nil, err
	}
	return nil, errors.New("write amtsbote.db: no space left on device")
}

func (s *fullDisk) UpdateWithReceipt(id, kind string, receipt []byte, fn func(*submission.Submission) ([]submission.Event, error)) (*submission.Submission, bool, error) {
	if !s.full {
		return s.Store.UpdateWithReceipt(id, kind, receipt, fn)
	}
	_, err := s.Update(id, fn)
	return nil, false, err
}

// TestOfficeWriteOnAFullDiskIsUnavailable: an office's decision, pickup or
// reply that the store cannot write is ErrUnavailable (503, "retry later"), as
// the portal's intake of the same failure is — it was an untyped error, a 500
// "internal error" at every office face. A change that is itself refused stays
// what it is (ErrConflict), and so does an unknown case (ErrNotFound).
func TestOfficeWriteOnAFullDiskIsUnavailable(t *testing.T) {
	ctx := context.Background()
	var st *fullDisk
	b := startOver(t, t.TempDir(), testConfig, func(db *store.DB) store.Store { st = &fullDisk{Store: db}; return st })
	a, err := b.Receive(ctx, intake("full-disk", "unconfigured")) // held: no channel
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Decide(ctx, "office-a", a.Submission.ID, Decision{Outcome: OutcomeAccepted, Actor: "clerk", Channel: "api"}); err != nil {
		t.Fatal(err)
	}
	st.full = true
	if _, err := b.MarkProcessed(ctx, "office-a", a.Submission.ID, true, "clerk", "api"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a mark on a full disk: %v, want ErrUnavailable", err)
	}
	if _, err := b.Decide(ctx, "office-a", a.Submission.ID, Decision{Outcome: OutcomeRejected, Reason: "unvollständig", Actor: "clerk", Channel: "api"}); !errors.Is(err, ErrConflict) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("a decision against the first: %v, want ErrConflict", err)
	}
	if _, err := b.MarkProcessed(ctx, "office-a", "no-such-case", true, "clerk", "api"); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("a mark on no case: %v, want ErrNotFound", err)
	}
	st.full = false
	if s, err := b.Submission(a.Submission.ID); err != nil || s.Processed {
		t.Fatalf("after the failed write: processed %v, %v", s.Processed, err)
	}
}

// TestRecordFetchAfterTheDeliveryChangesNothing: XTA records the fetch once its
// answer is out; a close sent on another connection as soon as the bytes arrived
// may confirm the case first. A fetch after the delivery says nothing, and its
// event stood after the delivery in the log (a review, 2026-12-05). Before the
// delivery, the fetch is recorded with the time given.
func TestRecordFetchAfterTheDeliveryChangesNothing(t *testing.T) {
	e := start(t, t.TempDir())
	ctx := context.Background()
	fetched, err := e.b.Receive(ctx, intake("fetch-first", "unconfigured"))
	if err != nil {
		t.Fatal(err)
	}
	closed, err := e.b.Receive(ctx, intake("close-first", "unconfigured"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.b, fetched.Submission.ID, submission.StateHeld)
	waitState(t, e.b, closed.Submission.ID, submission.StateHeld)
	at := time.Date(2026, 12, 5, 15, 0, 0, 0, time.UTC)
	if s, err := e.b.RecordFetch(ctx, "office-a", fetched.Submission.ID, "xta", at); err != nil || s.FetchedAt == nil || !s.FetchedAt.Equal(at) {
		t.Fatalf("the fetch before the delivery: %v %+v", err, s)
	}
	if _, err := e.b.Confirm(ctx, "office-a", closed.Submission.ID, Pickup{Channel: "xta", Receiver: "close"}); err != nil {
		t.Fatal(err)
	}
	if s, err := e.b.RecordFetch(ctx, "office-a", closed.Submission.ID, "xta", at); err != nil || s.FetchedAt != nil {
		t.Fatalf("a fetch after the delivery was recorded: %v %+v", err, s)
	}
	evs, _ := e.b.Log(closed.Submission.ID)
	if len(submission.OfType(evs, submission.EventFetched)) != 0 {
		t.Fatalf("a fetched event after the delivery: %+v", evs)
	}
}

// TestAdmitIsAskedOnTheRecordTheActionReads: a face's Admit is asked with the
// record the desk read for the call, after the office check, and its refusal
// is the call's answer with nothing opened or recorded — no pickup, no
// decision. Decide asks it before it checks the outcome, so that a face may
// check its own form there (the mailbox's decision form).
func TestAdmitIsAskedOnTheRecordTheActionReads(t *testing.T) {
	ctx := context.Background()
	b := startOver(t, t.TempDir(), testConfig, nil)
	a, err := b.Receive(ctx, intake("admit", "unconfigured")) // held: no channel
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	refused := errors.New("not here (test)")
	var asked []string
	refuse := func(s *submission.Submission) error {
		asked = append(asked, s.ID)
		return refused
	}
	calls := map[string]func(Admit) error{
		"OpenPackage": func(ad Admit) error {
			_, rc, err := b.OpenPackage(ctx, "office-a", id, Pickup{Channel: "mailbox", Receiver: "anna", Admit: ad})
			if err == nil {
				rc.Close()
			}
			return err
		},
		"OpenAttachment": func(ad Admit) error {
			_, rc, err := b.OpenAttachment(ctx, "office-a", id, "a1", ad)
			if err == nil {
				rc.Close()
			}
			return err
		},
		"Confirm": func(ad Admit) error {
			_, err := b.Confirm(ctx, "office-a", id, Pickup{Channel: "mailbox", Receiver: "anna", Admit: ad})
			return err
		},
		"ReadCase": func(ad Admit) error {
			_, err := b.ReadCase(ctx, "office-a", id, CaseRead{Max: 1 << 20, Pickup: Pickup{Channel: "mailbox", Receiver: "anna", Admit: ad}})
			return err
		},
		"Decide": func(ad Admit) error {
			_, err := b.Decide(ctx, "office-a", id, Decision{Outcome: OutcomeAccepted, Actor: "anna", Channel: "mailbox", Admit: ad})
			return err
		},
		"Decide without an outcome": func(ad Admit) error {
			_, err := b.Decide(ctx, "office-a", id, Decision{Actor: "anna", Channel: "mailbox", Admit: ad})
			return err
		},
	}
	for name, call := range calls {
		asked = nil
		if err := call(refuse); err != refused {
			t.Errorf("%s refused by Admit: %v, want the refusal as returned", name, err)
		}
		if len(asked) != 1 || asked[0] != id {
			t.Errorf("%s: Admit asked with %v, want once with the case", name, asked)
		}
	}
	s, err := b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.DeliveredAt != nil || s.Decision != nil {
		t.Fatalf("a refusal recorded something: delivered %v, decision %+v", s.DeliveredAt, s.Decision)
	}
	// Another office's case: not found, and its record is not shown to Admit.
	asked = nil
	if _, err := b.Decide(ctx, "office-b", id, Decision{Actor: "lars", Channel: "mailbox", Admit: refuse}); !errors.Is(err, ErrNotFound) || len(asked) > 0 {
		t.Fatalf("another office's decision: %v, Admit asked %v; want ErrNotFound, not asked", err, asked)
	}
	// Admitted: the call goes on as without Admit.
	if err := calls["Decide"](func(*submission.Submission) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if s, _ = b.Submission(id); s.DeliveredAt == nil || s.Decision == nil {
		t.Fatalf("an admitted decision: delivered %v, decision %+v", s.DeliveredAt, s.Decision)
	}
}

// fullBlobs is a store whose disk filled up once full is set: every blob put
// fails as the file system fails it.
type fullBlobs struct {
	store.Store
	full *atomic.Bool
}

func (s fullBlobs) Blobs() store.BlobStore { return fullBlobStore{s.Store.Blobs(), s.full} }

type fullBlobStore struct {
	store.BlobStore
	full *atomic.Bool
}

func (s fullBlobStore) Put(b []byte) (string, error) {
	if s.full.Load() {
		return "", &fs.PathError{Op: "write", Path: "blobs/tmp", Err: syscall.ENOSPC}
	}
	return s.BlobStore.Put(b)
}

// TestReplyOnAFullDiskIsUnavailable: a reply whose bytes the store cannot
// write now (the disk is full) is ErrUnavailable, as a package's is — the
// faces answer 503 and "retry later" — not an internal error (500, an alert
// for a bug) while the operator frees the disk.
func TestReplyOnAFullDiskIsUnavailable(t *testing.T) {
	ctx := context.Background()
	var full atomic.Bool
	b := startOver(t, t.TempDir(), testConfig, func(db *store.DB) store.Store { return fullBlobs{db, &full} }, &scripted{channel: "primary", block: make(chan struct{})})
	in := intake("full-disk", "primary")
	in.Attachments = nil
	a, err := b.Receive(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	if _, err := b.Confirm(ctx, "office-a", id, Pickup{Channel: "api", Receiver: "office-a system"}); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	_, err = b.Reply(ctx, "office-a", id, ReplyIn{Kind: "Bescheid", MessageID: "b-1", ContentType: "application/pdf",
		Content: []byte("%PDF-1.4 Bescheid"), Actor: "office-a system", Channel: "api"})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a reply on a full disk: %v, want ErrUnavailable with its cause", err)
	}
	if s, err := b.Submission(id); err != nil || len(s.Replies) != 0 {
		t.Fatalf("a reply not stored is in the record: %+v (%v)", s.Replies, err)
	}
}
