package jsstore

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// TestLostAcknowledgementNotAppliedTwice: a write that was committed but whose
// acknowledgement never arrived (the server died right after the commit) is retried
// by the store; the op id in the document must make the retry see its own write
// instead of running fn again (which would count an attempt twice).
func TestLostAcknowledgementNotAppliedTwice(t *testing.T) {
	b, err := bus.Start(context.Background(), bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	st, err := Open(context.Background(), b.JS, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var lost atomic.Int64
	st.loseAck = func() bool { lost.Add(1); return true } // every acknowledgement is lost

	if _, _, created, err := st.Create(context.Background(), storetest.NewSubmission("s1", "amt24", "m1"), nil, "in", []byte("r")); err != nil || !created {
		t.Fatalf("Create with a lost acknowledgement: created=%v %v", created, err)
	}
	for i := range 10 {
		_, err := st.Update("s1", func(s *submission.Submission) ([]submission.Event, error) {
			s.TotalAttempts++
			if i%3 == 0 { // some updates move the indexes: the atomic batch path
				if s.State == submission.StateHandedOver {
					s.State = submission.StateQueued
				} else {
					s.State = submission.StateHandedOver
				}
			}
			return []submission.Event{{Type: "counted"}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	s, _ := st.Get("s1")
	evs, _ := st.Events("s1")
	if s.TotalAttempts != 10 || len(evs) != 10 {
		t.Fatalf("after 10 updates with lost acknowledgements: counter %d, %d events", s.TotalAttempts, len(evs))
	}
	stats := st.Stats()
	if stats.Ambiguous != 11 || stats.Recognised != 11 || lost.Load() != 11 {
		t.Fatalf("stats %+v: want 11 lost acknowledgements, all recognised", stats)
	}
	// HandedOver toggled 4 times (i = 0, 3, 6, 9): back in the outbox.
	if ob, _ := st.Outbox(); len(ob) != 1 || s.State != submission.StateQueued {
		t.Fatalf("state %s, outbox %v", s.State, ob)
	}
}
