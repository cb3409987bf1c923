package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

func newSub(id, sender, msg string) *submission.Submission {
	return &submission.Submission{
		ID: id, DeliveryID: "d-" + id, MessageID: msg, Sender: sender, OfficeID: "office-a",
		Targets: []submission.Target{{Channel: "webhook"}},
		State:   submission.StateQueued, ReceivedAt: time.Now().UTC(), Generation: 1,
	}
}

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dir
}

func TestAcceptIsIdempotentPerSenderAndMessage(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	evs := []submission.Event{{Type: submission.EventReceived}, {Type: submission.EventRouted}}
	tests := []struct {
		name        string
		sub         *submission.Submission
		wantCreated bool
		wantID      string
	}{
		{"first", newSub("s1", "amt24", "m1"), true, "s1"},
		{"same sender and message again", newSub("s2", "amt24", "m1"), false, "s1"},
		{"same message from another sender", newSub("s3", "other", "m1"), true, "s3"},
		{"new message", newSub("s4", "amt24", "m2"), true, "s4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, rcpt, created, err := db.Create(ctx, tc.sub, evs, "in", []byte("receipt-"+tc.sub.ID))
			if err != nil {
				t.Fatal(err)
			}
			if created != tc.wantCreated || got.ID != tc.wantID {
				t.Fatalf("created=%v id=%s, want %v %s", created, got.ID, tc.wantCreated, tc.wantID)
			}
			if string(rcpt) != "receipt-"+tc.wantID {
				t.Fatalf("receipt %q is not the first one", rcpt)
			}
		})
	}
	if _, err := db.Get("s2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("duplicate was stored: %v", err)
	}
}

func TestConcurrentDuplicatesStoreOne(t *testing.T) {
	db, _ := openTemp(t)
	var wg sync.WaitGroup
	created := make(chan string, 32)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, _, c, err := db.Create(context.Background(), newSub(fmt.Sprintf("s%02d", i), "amt24", "same"), nil, "in", []byte("r"))
			if err != nil {
				t.Error(err)
				return
			}
			if c {
				created <- s.ID
			}
		}(i)
	}
	wg.Wait()
	close(created)
	if n := len(created); n != 1 {
		t.Fatalf("%d submissions created for one message, want 1", n)
	}
}

func TestOutboxFollowsState(t *testing.T) {
	db, _ := openTemp(t)
	if _, _, _, err := db.Create(context.Background(), newSub("s1", "amt24", "m1"), nil, "in", nil); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		state   submission.State
		inQueue bool
	}{
		{submission.StateRetrying, true}, {submission.StateDelivered, false}, {submission.StateQueued, true}, {submission.StateHeld, false}, {submission.StateAccepted, false},
	}
	for _, st := range steps {
		if _, err := db.Update("s1", func(s *submission.Submission) ([]submission.Event, error) {
			s.State = st.state
			return []submission.Event{{Type: string(st.state)}}, nil
		}); err != nil {
			t.Fatal(err)
		}
		ids, err := db.Outbox()
		if err != nil {
			t.Fatal(err)
		}
		if (len(ids) == 1) != st.inQueue {
			t.Fatalf("state %s: outbox %v, want queued=%v", st.state, ids, st.inQueue)
		}
	}
	evs, err := db.Events("s1")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(steps) || evs[0].Type != string(submission.StateRetrying) || evs[len(evs)-1].Type != string(submission.StateAccepted) {
		t.Fatalf("events not in order: %+v", evs)
	}
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	db, _ := openTemp(t)
	if _, _, _, err := db.Create(context.Background(), newSub("s1", "amt24", "m1"), nil, "in", nil); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err := db.Update("s1", func(s *submission.Submission) ([]submission.Event, error) {
		s.State = submission.StateAccepted
		return nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	s, _ := db.Get("s1")
	if s.State != submission.StateQueued {
		t.Fatalf("state changed to %s despite error", s.State)
	}
	if _, err := db.Update("nope", func(*submission.Submission) ([]submission.Event, error) { return nil, nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing submission: %v", err)
	}
}

func TestDataSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	digest, err := db.Blobs().Put([]byte("%PDF-1.4 tiny"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := db.Create(context.Background(), newSub("s1", "amt24", "m1"), []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r1")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if b, err := db.Files().Read(digest); err != nil || string(b) != "%PDF-1.4 tiny" {
		t.Fatalf("blob after reopen: %q %v", b, err)
	}
	if r, err := db.Receipt("s1", "in"); err != nil || string(r) != "r1" {
		t.Fatalf("receipt after reopen: %q %v", r, err)
	}
	ids, _ := db.Outbox()
	if len(ids) != 1 || ids[0] != "s1" {
		t.Fatalf("outbox after reopen: %v", ids)
	}
}

func TestWalkOfficePaging(t *testing.T) {
	db, _ := openTemp(t)
	for i := 0; i < 5; i++ {
		s := newSub(fmt.Sprintf("s%d", i), "amt24", fmt.Sprintf("m%d", i))
		if i == 4 {
			s.OfficeID = "office-b"
		}
		if _, _, _, err := db.Create(context.Background(), s, nil, "in", nil); err != nil {
			t.Fatal(err)
		}
	}
	byOffice := func(office, after string, limit int) []*submission.Submission {
		var out []*submission.Submission
		if err := db.WalkOffice(office, after, func(s *submission.Submission) bool {
			out = append(out, s)
			return limit == 0 || len(out) < limit
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	page1 := byOffice("office-a", "", 2)
	page2 := byOffice("office-a", page1[1].ID, 2)
	page3 := byOffice("office-a", page2[len(page2)-1].ID, 2)
	if len(page1) != 2 || len(page2) != 2 || len(page3) != 0 || page2[0].ID != "s2" {
		t.Fatalf("pages: %d %d %d", len(page1), len(page2), len(page3))
	}
	b := byOffice("office-b", "", 0)
	if len(b) != 1 || b[0].ID != "s4" {
		t.Fatalf("office-b sees %v", b)
	}
}

func TestBlobRejectsBadNames(t *testing.T) {
	db, _ := openTemp(t)
	for _, name := range []string{"", "../../etc/passwd", "ABCDEF", "zz" + string(make([]byte, 62))} {
		if _, err := db.Blobs().Open(context.Background(), name); !errors.Is(err, ErrBadDigest) {
			t.Errorf("%q: %v", name, err)
		}
	}
	missing := "0000000000000000000000000000000000000000000000000000000000000000"
	if _, err := db.Blobs().Open(context.Background(), missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing blob: %v", err)
	}
}

func TestUpdateWithReceiptOnlyTheWinnerWrites(t *testing.T) {
	db, _ := openTemp(t)
	if _, _, _, err := db.Create(context.Background(), newSub("s1", "amt24", "m1"), nil, "in", nil); err != nil {
		t.Fatal(err)
	}
	deliver := func(receipt string) bool {
		_, changed, err := db.UpdateWithReceipt("s1", "out", []byte(receipt), func(s *submission.Submission) ([]submission.Event, error) {
			if s.State == submission.StateDelivered {
				return nil, nil
			}
			s.State = submission.StateDelivered
			return []submission.Event{{Type: submission.EventDelivered, Detail: receipt}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	if !deliver("by webhook") || deliver("by api") {
		t.Fatal("first confirmation must win, the second must change nothing")
	}
	r, _ := db.Receipt("s1", "out")
	evs, _ := db.Events("s1")
	if string(r) != "by webhook" || len(evs) != 1 || evs[0].Detail != "by webhook" {
		t.Fatalf("receipt %q and events %+v disagree", r, evs)
	}
}
