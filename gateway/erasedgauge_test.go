package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// TestErasedCaseIsNotCounted: a held or handed-over case whose bytes an
// operator erased waits for nothing (the office cannot fetch it, a replay has
// nothing to send); the held and handed-over gauges leave it out, or
// AmtsbotePackagesHeld and AmtsboteUnconfirmedForDays fire for it for ever.
// TestErasedCaseOfAnOlderBuildIsNotCounted tries the entries an older build
// wrote; this one the entries this build writes, which say Erased themselves
// (a mutation audit, 2026-12-06, ignored that flag and no test failed).
func TestErasedCaseIsNotCounted(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ids []string
	for i, c := range []struct {
		state  submission.State
		erased bool
	}{{submission.StateHeld, true}, {submission.StateHandedOver, true}, {submission.StateHeld, false}, {submission.StateHandedOver, false}} {
		sub := storetest.NewSubmission("01a2-erased-"+string(rune('a'+i)), "amt24", "m"+string(rune('a'+i)))
		sub.State = c.state
		if _, _, _, err := db.Create(context.Background(), sub, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
		if c.erased {
			if _, err := db.Update(sub.ID, func(x *submission.Submission) ([]submission.Event, error) {
				x.BytesGone(time.Now())
				return []submission.Event{{Type: submission.EventBytesRemoved}}, nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, sub.ID)
	}
	raw, err := db.Held()
	if err != nil || len(raw) != 2 || !raw[0].Known {
		t.Fatalf("the held index: %+v %v (want both held cases, in entries this build writes)", raw, err)
	}
	held, err := notErased(db.Get, db.Held)()
	if err != nil {
		t.Fatal(err)
	}
	handed, err := notErased(db.Get, db.HandedOver)()
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0].ID != ids[2] || len(handed) != 1 || handed[0].ID != ids[3] {
		t.Fatalf("held %+v, handed over %+v: want only the cases that were not erased", held, handed)
	}
}
