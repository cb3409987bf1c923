package storetest

import (
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// LongLogBytes is how many bytes of event notes testLongEventLog writes to one
// submission: more than a NATS message may carry by default (1 MiB), so a store that
// keeps a submission's events in one message must page them.
const LongLogBytes = 5 << 18

// testLongEventLog: a submission retried for weeks and redelivered by hand many times
// collects hundreds of attempt_failed events, each with up to 2,000 characters of an
// office's error text (broker.reasonOf clips there). Every change must still be
// recorded — above all the delivery at the end: a store that refused it would have
// the broker deliver the package again and again — and the log must come back whole,
// in order, and go with Delete.
func (s *suite) testLongEventLog(t *testing.T) {
	st := s.h.Open(t)
	sub := mustCreate(t, st, NewSubmission(uid("long"), uid("p"), uid("m")), firstEvents(), "r")
	note := strings.Repeat("ä", 1000) // 2,000 bytes, the broker's clip
	want := eventTypes(firstEvents())
	const perChange = 4
	for i := 0; len(want)*len(note) < LongLogBytes; i++ {
		evs := make([]submission.Event, perChange)
		for j := range evs {
			evs[j] = submission.Event{Type: submission.EventAttemptFailed, Channel: "webhook", Attempt: i*perChange + j + 1, Detail: "the office did not answer", Note: note}
			want = append(want, evs[j].Type)
		}
		if _, err := st.Update(sub.ID, func(*submission.Submission) ([]submission.Event, error) { return evs, nil }); err != nil {
			t.Fatalf("change %d (%d events, ~%d KiB of notes): %v", i, len(want), len(want)*len(note)>>10, err)
		}
	}
	if _, _, err := st.UpdateWithReceipt(sub.ID, "out", []byte("delivered"), setState(submission.StateDelivered, submission.EventDelivered)); err != nil {
		t.Fatalf("the delivery after %d events: %v", len(want), err)
	}
	want = append(want, submission.EventDelivered)
	check := func(st store.Store, when string) {
		t.Helper()
		got, err := st.Events(sub.ID)
		if err != nil {
			t.Fatalf("%s: Events: %v", when, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d events, want %d", when, len(got), len(want))
		}
		for i, e := range got {
			if e.Type != want[i] || e.Seq != uint64(i+1) || e.SubmissionID != sub.ID {
				t.Fatalf("%s: event %d is %s seq %d of %q, want %s seq %d", when, i, e.Type, e.Seq, e.SubmissionID, want[i], i+1)
			}
			if e.Type == submission.EventAttemptFailed && (e.Note != note || e.Attempt != i-2) {
				t.Fatalf("%s: event %d came back changed: attempt %d, note of %d bytes", when, i, e.Attempt, len(e.Note))
			}
		}
	}
	check(st, "after the delivery")
	st = s.h.Reopen(t, st)
	check(st, "reopened")
	if r, err := st.Receipt(sub.ID, "out"); err != nil || string(r) != "delivered" {
		t.Fatalf("receipt: %q %v", r, err)
	}
	if err := st.Delete(sub.ID); err != nil {
		t.Fatal(err)
	}
	assertGone(t, st, sub)
}
