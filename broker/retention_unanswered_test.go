package broker

import (
	"context"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

// TestUnansweredRetentionCountsFromTheDelivery: retention.unanswered gives the
// office that long from when it got the package, not from the intake. A package
// held for its office's pickup for months (an office without a channel) is
// fetched late; counted from the intake, its bytes went before the office had
// had them for the period, or as soon as it fetched them.
func TestUnansweredRetentionCountsFromTheDelivery(t *testing.T) {
	e := start(t, t.TempDir(), &scripted{channel: "primary"})
	ctx := context.Background()
	held, err := e.b.Receive(ctx, intake("held-then-fetched"))
	if err != nil {
		t.Fatal(err)
	}
	id := held.Submission.ID
	waitState(t, e.b, id, submission.StateHeld)
	// The pickup's time must differ from the intake's, by the clock's own
	// resolution at least: the office fetches it later.
	for !time.Now().UTC().After(held.Submission.ReceivedAt.Add(time.Millisecond)) {
		time.Sleep(time.Millisecond)
	}
	_, rc, err := e.b.OpenPackage(ctx, "office-a", id, Pickup{Channel: "api", Receiver: "office-a (pull API)"})
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	s, err := e.b.Submission(id)
	if err != nil || s.State != submission.StateDelivered || s.DeliveredAt == nil || !s.DeliveredAt.After(s.ReceivedAt) {
		t.Fatalf("after the pickup: %+v %v", s, err)
	}
	year := 365 * 24 * time.Hour
	r := Retention{Unanswered: year, BlobGrace: time.Nanosecond, CompactMinFree: -1}
	// Between a year after the intake and a year after the delivery: not yet.
	between := s.ReceivedAt.Add(year).Add(s.DeliveredAt.Sub(s.ReceivedAt) / 2)
	if rep, err := e.b.GC(ctx, between, r); err != nil || rep.BytesRemoved != 0 {
		t.Fatalf("a year after the intake, less than one after the delivery: %+v %v", rep, err)
	}
	if s, err := e.b.Submission(id); err != nil || s.BytesRemovedAt != nil {
		t.Fatalf("the case lost its bytes before its time: %+v %v", s, err)
	}
	if rep, err := e.b.GC(ctx, s.DeliveredAt.Add(year), r); err != nil || rep.BytesRemoved != 1 {
		t.Fatalf("a year after the delivery: %+v %v", rep, err)
	}
}
