package storetest

import (
	"testing"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// testWaitingWhileMoving: a case that waits throughout a listing of its
// office's waiting entries is named in it exactly once, also when it moves
// between the outbox and the handed-over index meanwhile (a delivery attempt
// hands it over; a failed one or a requeue brings it back). The web mailbox
// and the pull API page through that list, and XTA counts MessagesPending from
// it: a case missing from it is one the office does not see waiting, a case
// named twice is listed twice and counted twice.
//
// Two listings, each on a store of its own, so that what each reads first is
// known: one whose first key is the removal of a case's outbox entry (the case
// was handed over before and goes back to the outbox while the listing runs),
// and one whose first key is a case's outbox entry (the case is handed over
// while the listing runs).
func (s *suite) testWaitingWhileMoving(t *testing.T) {
	toggle := func(t *testing.T, st store.Store, id string) {
		t.Helper()
		if _, err := st.Update(id, func(x *submission.Submission) ([]submission.Event, error) {
			if x.State == submission.StateHandedOver {
				x.State = submission.StateRetrying
			} else {
				x.State = submission.StateHandedOver
			}
			return []submission.Event{{Type: string(x.State)}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(t *testing.T, st store.Store, office string) string {
		t.Helper()
		sub := NewSubmission(uid("mv"), uid("p"), uid("m"))
		sub.OfficeID = office
		return mustCreate(t, st, sub, firstEvents(), "r").ID
	}
	listOnce := func(t *testing.T, st store.Store, office string, ids ...string) {
		t.Helper()
		w, err := st.Waiting(office)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			n := 0
			for _, e := range w {
				if e.ID == id {
					n++
				}
			}
			if n != 1 {
				x, _ := st.Get(id)
				t.Errorf("Waiting(%s) names %s %d times, want once: it waited throughout the listing (now %s)", office, id, n, x.State)
			}
		}
		for _, id := range ids {
			assertIndexed(t, st, id, !isHanded(t, st, id), isHanded(t, st, id))
		}
	}

	t.Run("BackToTheOutbox", func(t *testing.T) {
		st := s.h.Open(t)
		office := uid("office")
		back := mk(t, st, office)
		toggle(t, st, back) // handed over: its outbox entry is gone
		stays := mk(t, st, office)
		called := 0
		s.h.MidListing(t, st, func() {
			called++
			toggle(t, st, back)  // back to the outbox
			toggle(t, st, stays) // handed over
		})
		listOnce(t, st, office, back, stays)
		if called != 1 {
			t.Fatalf("the listing made the change %d times, want once (never: the case tested nothing)", called)
		}
	})
	t.Run("HandedOver", func(t *testing.T) {
		st := s.h.Open(t)
		office := uid("office")
		moves := mk(t, st, office)
		called := 0
		s.h.MidListing(t, st, func() { called++; toggle(t, st, moves) })
		listOnce(t, st, office, moves)
		if called != 1 {
			t.Fatalf("the listing made the change %d times, want once (never: the case tested nothing)", called)
		}
	})
}

func isHanded(t *testing.T, st store.Store, id string) bool {
	t.Helper()
	x, err := st.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return x.State == submission.StateHandedOver
}
