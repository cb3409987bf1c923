package jsstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func openEmbedded(t *testing.T) *Store {
	t.Helper()
	b, err := bus.Start(context.Background(), bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	st, err := Open(context.Background(), b.JS, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestDeleteLeavesOnlyMarkers looks under the contract: after Delete every key of the
// submission is a removal marker with a TTL (the document's data is gone from the
// stream, not only hidden), and keys of other submissions are untouched.
func TestDeleteLeavesOnlyMarkers(t *testing.T) {
	st := openEmbedded(t)
	ctx := context.Background()
	id := "odd.id *" // not a plain token: the encoded keys must be the ones removed
	sub := storetest.NewSubmission(id, "amt24", "m1")
	sub.OfficeID = "office.x"
	sub.State = submission.StateHandedOver
	if _, _, _, err := st.Create(ctx, sub, nil, "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	other := storetest.NewSubmission("other", "amt24", "m2")
	other.OfficeID = "office.x"
	if _, _, _, err := st.Create(ctx, other, nil, "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	// A queued record in the outbox as well: Update it there.
	if _, err := st.Update(id, func(s *submission.Submission) ([]submission.Event, error) {
		s.State = submission.StateQueued
		return []submission.Event{{Type: "queued"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{
		"sub":    st.subKey(id),
		"idem":   st.idemKey("amt24", "m1"),
		"office": st.officeKey("office.x", id),
		"outbox": st.outboxKey(id),
	}
	if err := st.Delete(id); err != nil {
		t.Fatal(err)
	}
	for name, subject := range keys {
		m, err := st.lastRaw(ctx, subject)
		if err != nil {
			t.Fatalf("%s key %s: %v", name, subject, err)
		}
		if !removed(m) || m.Header.Get(hdrTTL) == "" {
			t.Errorf("%s key %s after Delete: headers %v, want a removal marker with a TTL", name, subject, m.Header)
		}
		if name != "sub" && len(m.Data) != 0 {
			t.Errorf("%s marker carries data %q", name, m.Data)
		}
	}
	if m, err := st.lastRaw(ctx, st.subKey(id)); err == nil && len(m.Data) > 32 {
		t.Errorf("the document's marker still holds %d bytes", len(m.Data))
	}
	// handed.<id> had left the set before (a marker of the state change): still a marker.
	if _, err := st.last(ctx, st.handedKey(id)); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("handed key: %v", err)
	}
	for _, subject := range []string{st.subKey("other"), st.idemKey("amt24", "m2"), st.officeKey("office.x", "other"), st.outboxKey("other")} {
		if _, err := st.last(ctx, subject); err != nil {
			t.Errorf("key %s of the other submission: %v", subject, err)
		}
	}
}

// TestCreateAfterDeleteOneWinner: concurrent Creates of a deleted message all meet
// the removal marker of its idempotency key; exactly one creates.
func TestCreateAfterDeleteOneWinner(t *testing.T) {
	st := openEmbedded(t)
	ctx := context.Background()
	if _, _, _, err := st.Create(ctx, storetest.NewSubmission("first", "amt24", "m1"), nil, "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete("first"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var won atomic.Int64
	winners := make(chan string, 12)
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("again-%02d", i)
			got, _, created, err := st.Create(ctx, storetest.NewSubmission(id, "amt24", "m1"), nil, "in", []byte("r-"+id))
			if err != nil {
				t.Error(err)
				return
			}
			if created {
				won.Add(1)
			}
			winners <- got.ID
		}()
	}
	wg.Wait()
	close(winners)
	seen := map[string]bool{}
	for id := range winners {
		seen[id] = true
	}
	if won.Load() != 1 || len(seen) != 1 {
		t.Fatalf("%d creates won, callers saw %v; want one winner seen by all", won.Load(), seen)
	}
	// The same id as the deleted submission may be used again too.
	if _, _, created, err := st.Create(ctx, storetest.NewSubmission("first", "amt24", "m-new"), nil, "in", []byte("r")); err != nil || !created {
		t.Fatalf("Create with the id of a deleted submission: created=%v %v", created, err)
	}
}

// TestDeleteLostAcknowledgement: a Delete whose acknowledgement is lost finds its own
// marker (by op id) and reports success, not ErrNotFound.
func TestDeleteLostAcknowledgement(t *testing.T) {
	st := openEmbedded(t)
	ctx := context.Background()
	if _, _, _, err := st.Create(ctx, storetest.NewSubmission("s1", "amt24", "m1"), nil, "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	st.loseAck = func() bool { return true }
	if err := st.Delete("s1"); err != nil {
		t.Fatalf("Delete with a lost acknowledgement: %v", err)
	}
	if s := st.Stats(); s.Ambiguous != 1 || s.Recognised != 1 {
		t.Fatalf("stats %+v: want the lost acknowledgement recognised", s)
	}
	if err := st.Delete("s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
}

// TestWalkOfficeSkipsDeletedSubmissions: an office key whose document is gone (a
// Delete between listing and reading) is skipped, not an error.
func TestWalkOfficeSkipsDeletedSubmissions(t *testing.T) {
	st := openEmbedded(t)
	ctx := context.Background()
	sub := storetest.NewSubmission("live", "amt24", "m1")
	if _, _, _, err := st.Create(ctx, sub, nil, "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	// An index key without a document, as a listing racing a Delete sees it.
	if err := st.write(ctx, []*nats.Msg{put(st.officeKey(sub.OfficeID, "gone"))}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := st.WalkOffice(sub.OfficeID, "", func(s *submission.Submission) bool { ids = append(ids, s.ID); return true }); err != nil {
		t.Fatalf("WalkOffice: %v", err)
	}
	if len(ids) != 1 || ids[0] != "live" {
		t.Fatalf("WalkOffice = %v", ids)
	}
}
