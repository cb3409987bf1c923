package store_test

import (
	"context"
	"testing"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// TestErasureDropsNewerKeysOfEvents: the removal of a case's bytes by this
// build keeps no key of the case's events that it does not know — a newer
// build's events are stored as it wrote them, and a newer key may quote the
// applicant as Detail and Note may. Only the events the redaction changed
// were written again before, so those it left alone kept every newer key.
func TestErasureDropsNewerKeysOfEvents(t *testing.T) {
	db, dir := openTemp(t)
	if _, _, _, err := db.Create(context.Background(), storetest.NewSubmission("s1", "p", "m1"),
		[]submission.Event{{Type: submission.EventReceived}, {Type: submission.EventQueued, Detail: "from outside"}}, "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	planted := 0
	if err := store.RewriteEvents(dir, "s1", func(e map[string]any) bool {
		e["futureQuote"] = "Erika Mustermann"
		planted++
		return true
	}); err != nil || planted != 2 {
		t.Fatalf("planted the newer key in %d events: %v", planted, err)
	}
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// The redaction changes the second event only.
	if _, err := db.UpdateRedacting("s1", func(*submission.Submission) ([]submission.Event, error) {
		return []submission.Event{{Type: submission.EventBytesRemoved}}, nil
	}, func(e *submission.Event) bool {
		if e.Detail == "" {
			return false
		}
		e.Detail = ""
		return true
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	n := 0
	if err := store.RewriteEvents(dir, "s1", func(e map[string]any) bool {
		n++
		if v, ok := e["futureQuote"]; ok {
			t.Errorf("after the erasure event %v (%v) still has the newer key: %v", e["seq"], e["type"], v)
		}
		return false
	}); err != nil || n != 3 {
		t.Fatalf("%d events: %v", n, err)
	}
}
