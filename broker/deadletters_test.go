package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/submission"
)

// TestDeadLettersAndReplay: packages whose every channel failed for good are listed
// with reason and attempts; replaying them by id or by office queues them again
// with the same delivery id, and each replay is in the event log with its actor.
func TestDeadLettersAndReplay(t *testing.T) {
	gone := &scripted{channel: "primary"}
	for i := 0; i < 3; i++ { // each package fails once; replays then go through
		gone.answers = append(gone.answers, adapters.Permanent("receiver answered HTTP 410", nil))
	}
	e := start(t, t.TempDir(), gone)
	ctx := context.Background()
	var ids []string
	for i := 0; i < 3; i++ {
		in := intake(fmt.Sprintf("m%d", i), "primary")
		if i == 2 {
			in.OfficeID = "office-b"
		}
		a, err := e.b.Receive(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.Submission.ID)
	}
	for _, id := range ids {
		waitState(t, e.b, id, submission.StateHeld)
	}
	dls, err := e.b.DeadLetters(ctx, ReplayFilter{}, 0)
	if err != nil || len(dls) != 3 {
		t.Fatalf("dead letters: %v %+v", err, dls)
	}
	if d := dls[0]; d.Reason != "receiver answered HTTP 410" || d.Channel != "primary" || d.Attempts != 1 {
		t.Fatalf("dead letter %+v", d)
	}
	if b, _ := e.b.DeadLetters(ctx, ReplayFilter{OfficeID: "office-b"}, 0); len(b) != 1 || b[0].ID != ids[2] {
		t.Fatalf("office filter: %+v", b)
	}
	// Pages: two, then the rest after the second.
	if p1, _ := e.b.DeadLetters(ctx, ReplayFilter{}, 2); len(p1) != 2 || p1[1].ID != dls[1].ID {
		t.Fatalf("first page: %+v", p1)
	} else if p2, _ := e.b.DeadLetters(ctx, ReplayFilter{After: p1[1].ID}, 2); len(p2) != 1 || p2[0].ID != dls[2].ID {
		t.Fatalf("page after %s: %+v", p1[1].ID, p2)
	}
	before, _ := e.b.Submission(ids[0])
	// A list with an unknown id queues nothing and names the id.
	var re *ReplayError
	if res, err := e.b.Replay(ctx, ReplayFilter{IDs: []string{ids[0], "nope"}}, "operator anna"); !errors.As(err, &re) || !errors.Is(err, ErrNotFound) || re.ID != "nope" || re.Replayed != 0 || res.Replayed != 0 {
		t.Fatalf("replay with an unknown id: %+v %v", res, err)
	}
	if s, _ := e.b.Submission(ids[0]); s.State != submission.StateHeld {
		t.Fatalf("queued although the list had an unknown id: %s", s.State)
	}
	if res, err := e.b.Replay(ctx, ReplayFilter{IDs: []string{ids[0], ids[0]}}, "operator anna"); err != nil || res.Replayed != 1 || len(res.Skipped) != 0 {
		t.Fatalf("replay one: %+v %v", res, err)
	}
	// The same list again: no longer a dead letter, so skipped with its state, and
	// the rest of the list still goes.
	res, err := e.b.Replay(ctx, ReplayFilter{IDs: []string{ids[0], ids[1]}}, "operator anna")
	if err != nil || res.Replayed != 1 || len(res.Skipped) != 1 || res.Skipped[0].ID != ids[0] || res.Skipped[0].State == submission.StateHeld {
		t.Fatalf("replay again: %+v %v", res, err)
	}
	if res, err := e.b.Replay(ctx, ReplayFilter{OfficeID: "office-a"}, "operator anna"); err != nil || res.Replayed != 0 {
		t.Fatalf("replay office-a (both are queued already): %+v %v", res, err)
	}
	for _, id := range ids[:2] {
		s := waitState(t, e.b, id, submission.StateDelivered)
		if id == ids[0] && s.DeliveryID != before.DeliveryID {
			t.Fatalf("delivery id changed on replay: %s -> %s", before.DeliveryID, s.DeliveryID)
		}
		evs, _ := e.b.Log(id)
		found := false
		for _, ev := range evs {
			if ev.Type == submission.EventRequeued && ev.Actor == "operator anna" {
				found = true
			}
		}
		if !found {
			t.Fatalf("%s: no audited replay in %v", id, eventTypes(t, e.b, id))
		}
	}
	if rest, _ := e.b.DeadLetters(ctx, ReplayFilter{}, 0); len(rest) != 1 || rest[0].ID != ids[2] {
		t.Fatalf("left: %+v", rest)
	}
}

// TestInStateReadsIndexes: the admin's listing by state gives the same submissions
// as a scan of every record, oldest first, whether the state has an index (held,
// handed over, queued, retrying) or not.
func TestInStateReadsIndexes(t *testing.T) {
	e := start(t, t.TempDir())
	states := []submission.State{submission.StateQueued, submission.StateRetrying, submission.StateHandedOver,
		submission.StateHeld, submission.StateDelivered, submission.StateHeld, submission.StateRetrying}
	for i, st := range states {
		sub := &submission.Submission{ID: fmt.Sprintf("01900000-0000-7000-8000-0000000000%02d", len(states)-i), Sender: "amt24", MessageID: fmt.Sprintf("m%d", i), OfficeID: "office-a", State: st}
		if _, _, _, err := e.db.Create(context.Background(), sub, []submission.Event{{Type: "received"}}, "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range []submission.State{"", submission.StateQueued, submission.StateRetrying, submission.StateHandedOver, submission.StateHeld, submission.StateDelivered, submission.StateAccepted} {
		var want, got []string
		_ = e.db.Scan(func(s *submission.Submission) bool {
			if st == "" || s.State == st {
				want = append(want, s.ID)
			}
			return true
		})
		slices.Sort(want)
		if err := e.b.InState(st, func(s *submission.Submission) bool { got = append(got, s.ID); return true }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("InState(%q) = %v, want %v", st, got, want)
		}
	}
}

// TestReplayByFilterPassesOverWhatCannotBeReplayed: a replay of every dead letter
// of a window or an office meets held packages that have nothing to be replayed
// to — one of an office that only pulls (no channel at all). It is named as
// skipped, with why; the dead letters after it are queued again. The replay
// stopped at the first of them (oldest first), and sent again it stopped there
// again: no dead letter held after a pull-only office's package could ever be
// replayed by window. A held package whose bytes an operator erased is no dead
// letter at all (it waits for nobody): neither listed nor named.
func TestReplayByFilterPassesOverWhatCannotBeReplayed(t *testing.T) {
	noEraseGrace(t)
	gone := &scripted{channel: "primary", answers: []error{adapters.Permanent("receiver answered HTTP 410", nil)}}
	e := start(t, t.TempDir(), gone)
	ctx := context.Background()
	pull, err := e.b.Receive(ctx, intake("pull-only")) // no channel: held for the office's pickup
	if err != nil {
		t.Fatal(err)
	}
	erased, err := e.b.Receive(ctx, intake("erased", "unconfigured"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.b, erased.Submission.ID, submission.StateHeld)
	if _, err := e.b.Erase(ctx, erased.Submission.ID, "operator", "withdrawn"); err != nil {
		t.Fatal(err)
	}
	failed, err := e.b.Receive(ctx, intake("failed", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.b, failed.Submission.ID, submission.StateHeld)

	for _, f := range []ReplayFilter{{}, {OfficeID: "office-a"}} {
		res, err := e.b.Replay(ctx, f, "operator anna")
		if err != nil {
			t.Fatalf("replay %+v: %v", f, err)
		}
		if f.OfficeID == "" && res.Replayed != 1 {
			t.Fatalf("replay of every dead letter: %+v, want the failed package queued again", res)
		}
		skipped := map[string]Skipped{}
		for _, k := range res.Skipped {
			skipped[k.ID] = k
		}
		if k, ok := skipped[pull.Submission.ID]; !ok || k.State != submission.StateHeld || k.Reason == "" {
			t.Fatalf("replay %+v: %s not named as skipped with a reason: %+v", f, pull.Submission.ID, res.Skipped)
		}
		if _, ok := skipped[erased.Submission.ID]; ok {
			t.Fatalf("replay %+v: the erased package is named: %+v", f, res.Skipped)
		}
	}
	dls, err := e.b.DeadLetters(ctx, ReplayFilter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dls {
		if d.ID == erased.Submission.ID {
			t.Fatalf("the erased package is a dead letter: %+v", dls)
		}
	}
	if offices, _, _, err := e.b.Backlog(1000); err != nil || len(offices) != 1 || offices[0].Held != 1 {
		t.Fatalf("the backlog counts %+v, %v; want the pull-only package alone held", offices, err)
	}
	waitState(t, e.b, failed.Submission.ID, submission.StateDelivered)
	for _, id := range []string{pull.Submission.ID, erased.Submission.ID} {
		if s, _ := e.b.Submission(id); s.State != submission.StateHeld {
			t.Fatalf("%s: %s, want held", id, s.State)
		}
	}
}
