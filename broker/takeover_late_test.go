package broker

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
)

// TestHandOverAfterTakeoverIsRecorded: a transfer attempt that a clerk's
// takeover did not stop — it ran on another gateway of a cluster, or the
// takeover came in the moment of the rename — puts its case folder into the
// office's share after the case became the clerk's. Its hand-over was stale
// and dropped without a word: the office's import took the application the
// clerk was processing, and nobody knew. Now it is recorded on the case (a
// handed_over event on channel transfer, after the takeover's delivered event,
// with the operator's note; HandedOverAfterTakeoverAt) while the case stays the clerk's,
// counted, and logged at WARN naming the case and the office; a second report
// of the same hand-over records nothing more.
func TestHandOverAfterTakeoverIsRecorded(t *testing.T) {
	ctx := context.Background()
	h := holdTransferAtRename(t)
	e := h.e
	r, err := e.b.Receive(ctx, intake("taken-while-renamed", channel.Transfer, channel.Mailbox))
	if err != nil {
		t.Fatal(err)
	}
	id := r.Submission.ID
	<-h.held
	// The takeover as another gateway of the cluster commits it: the same
	// transition on the shared store, and no stop reaches this attempt.
	if _, err := e.b.db.Update(id, func(cur *submission.Submission) ([]submission.Event, error) {
		return cur.Confirm(time.Now().UTC(), channel.Mailbox, submission.Confirmation{Receiver: "anna (Behördenpostfach)"})
	}); err != nil {
		t.Fatal(err)
	}
	close(h.release)
	eventually(t, "the attempt's end", func() bool {
		_, busy := e.b.inflight.Load(id)
		return !busy
	})

	var cases []string
	ents, err := os.ReadDir(h.share)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if ent.Name() != ".amtsbote" {
			cases = append(cases, ent.Name())
		}
	}
	if len(cases) != 1 {
		t.Fatalf("case folders in the share: %v, want the one the attempt renamed", cases)
	}
	s, err := e.b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != submission.StateDelivered || s.DeliveredVia != channel.Mailbox || s.TakenOverFrom != channel.Transfer {
		t.Errorf("after the late hand-over: %s via %q, taken over from %q; want the clerk's", s.State, s.DeliveredVia, s.TakenOverFrom)
	}
	evs, err := e.b.Log(id)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if !s.HandedOverAfterTakeover() || !s.IsHandOverAfterTakeover(last) {
		t.Errorf("the record does not say the case folder reached the share: %v", s.HandedOverAfterTakeoverAt)
	}
	if last.Type != submission.EventHandedOver || last.Channel != channel.Transfer || !strings.Contains(last.Detail, cases[0]) ||
		!strings.Contains(last.Note, "taken over") {
		t.Errorf("last event %+v, want the hand-over on transfer naming %s, with the operator's note", last, cases[0])
	}
	if evs[len(evs)-2].Type != submission.EventDelivered || evs[len(evs)-2].Channel != channel.Mailbox {
		t.Errorf("the event before the hand-over: %+v, want the takeover's delivery", evs[len(evs)-2])
	}
	if n := counterOf(t, e.b.metrics.lateHandOvers, channel.Transfer); n != 1 {
		t.Errorf("amtsbote_delivery_handed_over_after_takeover_total = %v, want 1", n)
	}
	if l := h.logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "after a clerk took the case over") || !strings.Contains(l, id) {
		t.Errorf("no WARN line naming the case:\n%s", l)
	}

	// The same outcome recorded again (a retry of the recording) adds nothing.
	gen := s.Generation
	if _, err := e.b.changeSub(id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.HandOver(now, gen, submission.Confirmation{Receiver: "transfer folder"})
	}); err != nil {
		t.Fatal(err)
	}
	s2, err := e.b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if evs2, _ := e.b.Log(id); len(evs2) != len(evs) || !s2.HandedOverAfterTakeoverAt.Equal(*s.HandedOverAfterTakeoverAt) {
		t.Errorf("a repeated hand-over changed the case: %d events (was %d), handed over %v (was %v)", len(evs2), len(evs), s2.HandedOverAfterTakeoverAt, s.HandedOverAfterTakeoverAt)
	}
}

// counterOf reads the counter of vec with the given label values.
func counterOf(t *testing.T, vec *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	if err := vec.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
