package jsstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// TestNewerKeysOfEventsMoveToPages: a newer build's keys in the document itself
// and in its newest events survive this build's writes, also when a write moves
// those events into pages of their own (matched by sequence number, not by
// place); an erasure keeps none of them.
func TestNewerKeysOfEventsMoveToPages(t *testing.T) {
	_, st := openOnEmbedded(t, jsstore.Options{MaxRecordBytes: 16 << 10, Prefix: "newer"})
	ctx := context.Background()
	if _, _, _, err := st.Create(ctx, storetest.NewSubmission("s1", "amt24", "m1"), threeEvents(), "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	jsstore.RewriteDoc(t, st, "s1", func(d map[string]any) bool {
		d["futureDoc"] = "kept"
		evs := d["events"].([]any)
		if len(evs) != 3 {
			t.Fatalf("%d events in the new document, want 3", len(evs))
		}
		for _, e := range evs {
			e.(map[string]any)["futureEvent"] = e.(map[string]any)["seq"]
		}
		return true
	})
	note := string(bytes.Repeat([]byte("n"), 500))
	for i := range 30 {
		if _, err := st.Update("s1", func(*submission.Submission) ([]submission.Event, error) {
			return []submission.Event{{Type: "attempt_failed", Attempt: i + 1, Note: note}}, nil
		}); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	var pages int
	jsstore.RewriteDoc(t, st, "s1", func(d map[string]any) bool {
		if d["futureDoc"] != "kept" {
			t.Errorf("the document's newer key after 30 writes: %v", d["futureDoc"])
		}
		n, _ := d["pages"].(json.Number).Int64()
		pages = int(n)
		return false
	})
	if pages == 0 {
		t.Fatal("no events moved to pages: the case proves nothing")
	}
	found := map[float64]bool{}
	for _, p := range jsstore.EventPages(t, st, "s1", pages) {
		var evs []map[string]any
		if err := json.Unmarshal(p, &evs); err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if f, ok := e["futureEvent"]; ok {
				if f != e["seq"] {
					t.Errorf("event %v carries the newer key of event %v", e["seq"], f)
				}
				found[e["seq"].(float64)] = true
			}
		}
	}
	if len(found) != 3 {
		t.Errorf("the newer key is on the events %v in the pages, want on 1, 2 and 3", found)
	}
	if evs, err := st.Events("s1"); err != nil || len(evs) != 33 {
		t.Fatalf("%d events, %v", len(evs), err)
	}

	if _, err := st.UpdateRedacting("s1", func(x *submission.Submission) ([]submission.Event, error) {
		return []submission.Event{{Type: submission.EventBytesRemoved}}, nil
	}, func(*submission.Event) bool { return false }); err != nil {
		t.Fatal(err)
	}
	jsstore.RewriteDoc(t, st, "s1", func(d map[string]any) bool {
		if v, ok := d["futureDoc"]; ok {
			t.Errorf("after an erasure the document's newer key is still there: %v", v)
		}
		return false
	})
	// Nor do the pages keep their events' newer keys, though the redaction
	// changed none of those events (it left every page as it was before).
	for n, p := range jsstore.EventPages(t, st, "s1", pages) {
		if k := bytes.Count(p, []byte(`"futureEvent"`)); k > 0 {
			t.Errorf("after an erasure page %d still has the newer key of %d events", n+1, k)
		}
	}
}

// TestNewerKeysThatDoNotFitAreDropped: when the keys a newer build wrote would
// make the document too large for this build's write, the write goes through
// without them (as a build before keepjson wrote it), counted: refused, it
// would refuse every later change of the case, its delivery and decision too.
func TestNewerKeysThatDoNotFitAreDropped(t *testing.T) {
	const limit = 8 << 10
	_, st := openOnEmbedded(t, jsstore.Options{MaxRecordBytes: limit, Prefix: "newerbig"})
	ctx := context.Background()
	if _, _, _, err := st.Create(ctx, storetest.NewSubmission("s1", "amt24", "m1"), threeEvents(), "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	big := string(bytes.Repeat([]byte("x"), limit-2<<10))
	jsstore.RewriteDoc(t, st, "s1", func(d map[string]any) bool {
		d["submission"].(map[string]any)["futureBig"] = big
		return true
	})
	note := string(bytes.Repeat([]byte("n"), 1500))
	got, err := st.Update("s1", func(x *submission.Submission) ([]submission.Event, error) {
		x.TotalAttempts++
		return []submission.Event{{Type: "attempt_failed", Attempt: 1, Note: note}}, nil
	})
	if err != nil {
		t.Fatalf("the update with a newer build's keys that do not fit: %v", err)
	}
	if got.TotalAttempts != 1 {
		t.Fatalf("the update's change: %+v", got)
	}
	jsstore.RewriteDoc(t, st, "s1", func(d map[string]any) bool {
		if _, ok := d["submission"].(map[string]any)["futureBig"]; ok {
			t.Error("the newer key that did not fit is still there")
		}
		return false
	})
	if n := st.Stats().NewerDropped; n != 1 {
		t.Fatalf("NewerDropped = %d, want 1", n)
	}
	if evs, err := st.Events("s1"); err != nil || len(evs) != 4 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
}
