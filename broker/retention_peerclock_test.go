package broker

import (
	"context"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

// TestRetentionCountsFromTheLocalRecordingOfAPeersDecision: the retention of an
// answered case counts from when this gateway recorded the decision
// (Decision.RecordedAt), not from the decider's time (Decision.At), which for a
// forwarded case is a peer gateway's clock: one running behind made the bytes go
// before the period had passed here. The peer's time is clamped to the case's
// own history, so the two differ by how long the case waited at the peer; at the
// end of the period counted from the peer's time, the bytes must still be there.
func TestRetentionCountsFromTheLocalRecordingOfAPeersDecision(t *testing.T) {
	e := start(t, t.TempDir(), &scripted{channel: "primary", block: make(chan struct{})})
	ctx := context.Background()
	a, err := e.b.Receive(ctx, intake("peer-decision-time", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	if _, err := e.b.RecordForwarded(id, submission.Forward{Peer: "amtsbote-by", PeerSubmissionID: "p-1", At: time.Now().UTC()}, []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	// The peer reports later than the case came, with its clock far behind.
	for !time.Now().UTC().After(a.Submission.ReceivedAt.Add(time.Millisecond)) {
		time.Sleep(time.Millisecond)
	}
	past := time.Now().UTC().Add(-100 * 24 * time.Hour)
	s, err := e.b.RecordPeerStatus(id, submission.PeerStatus{Peer: "amtsbote-by", State: submission.StateAccepted,
		Receiver: "office x", DeliveredAt: &past,
		Decision: &submission.Decision{Outcome: submission.OutcomeAccepted, At: past, Actor: "office"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Decision == nil || !s.Decision.RecordedAt.After(s.Decision.At) {
		t.Fatalf("decision %+v: want the peer's time before the local recording", s.Decision)
	}
	keep := 90 * 24 * time.Hour
	r := Retention{PackageBytes: keep, CompactMinFree: -1}
	if rep, err := e.b.GC(ctx, s.Decision.At.Add(keep), r); err != nil || rep.BytesRemoved != 0 {
		t.Fatalf("the period counted from the peer's time is over, not the one counted here: %+v %v", rep, err)
	}
	if rep, err := e.b.GC(ctx, s.Decision.RecordedAt.Add(keep), r); err != nil || rep.BytesRemoved != 1 {
		t.Fatalf("the period counted from the local recording is over: %+v %v", rep, err)
	}
}
