package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

// TestRetentionTakesANachreichungWithItsCase: offices answer the case, seldom
// each document the applicant sent for it later, and the retention counted
// only a case's own answer: a Nachreichung its office took kept the
// applicant's bytes for good (retention.unanswered is off by default) and its
// record outlived its case's (an audit, 2026-12-07). It goes with its case
// now; one its office has not taken yet waits for it, as every case does.
func TestRetentionTakesANachreichungWithItsCase(t *testing.T) {
	e := start(t, t.TempDir())
	ctx := context.Background()
	caseID := receiveHeld(t, e.b, "antrag", "", true).ID
	taken := receiveHeld(t, e.b, "nachweis", caseID, true).ID
	notTaken := receiveHeld(t, e.b, "ausweis", caseID, false).ID
	if _, err := e.b.Decide(ctx, "office-a", caseID, Decision{Outcome: OutcomeAccepted, Actor: "test", Channel: "api"}); err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	r := Retention{PackageBytes: 90 * day, Records: 3650 * day, BlobGrace: time.Nanosecond, CompactMinFree: -1}

	if rep, err := e.b.GC(ctx, time.Now().Add(day), r); err != nil || rep.BytesRemoved+rep.RecordsDeleted != 0 {
		t.Fatalf("nothing is due after a day: %+v %v", rep, err)
	}
	if dry, err := e.b.GCWith(ctx, time.Now().Add(91*day), r, GCOptions{DryRun: true}); err != nil || dry.BytesRemoved != 2 {
		t.Fatalf("dry run after 91 days: %+v %v, want the case's and its taken Nachreichung's bytes", dry, err)
	}
	if rep, err := e.b.GC(ctx, time.Now().Add(91*day), r); err != nil || rep.BytesRemoved != 2 {
		t.Fatalf("after 91 days: %+v %v, want the case's and its taken Nachreichung's bytes", rep, err)
	}
	s, err := e.b.Submission(taken)
	if err != nil || s.BytesRemovedAt == nil {
		t.Fatalf("the taken Nachreichung kept its bytes: %+v %v", s, err)
	}
	evs, err := e.b.Events(ctx, "office-a", taken)
	if err != nil || !strings.Contains(evs[len(evs)-1].Detail, "after the office's answer to its case") {
		t.Fatalf("its last event: %+v %v", evs[len(evs)-1], err)
	}
	if s, err := e.b.Submission(notTaken); err != nil || s.BytesRemovedAt != nil {
		t.Fatalf("the Nachreichung its office has not taken lost its bytes: %+v %v", s, err)
	}

	if rep, err := e.b.GC(ctx, time.Now().Add(3651*day), r); err != nil || rep.RecordsDeleted != 2 {
		t.Fatalf("after ten years: %+v %v, want the case's and its taken Nachreichung's records", rep, err)
	}
	for _, id := range []string{caseID, taken} {
		if _, err := e.b.Submission(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s after ten years: %v, want gone", id, err)
		}
	}
	if _, err := e.b.Submission(notTaken); err != nil {
		t.Errorf("the Nachreichung its office has not taken: %v, want kept for its pickup", err)
	}
	// A Nachreichung whose case is gone goes too, taken later or not.
	if _, _, err := e.b.OpenPackage(ctx, "office-a", notTaken, Pickup{Channel: "api", Receiver: "office-a (pull API)"}); err != nil {
		t.Fatal(err)
	}
	if rep, err := e.b.GC(ctx, time.Now().Add(3651*day), r); err != nil || rep.RecordsDeleted != 1 {
		t.Fatalf("a Nachreichung of a deleted case: %+v %v", rep, err)
	}
}

// TestRetentionGivesALateNachreichungItsOwnPeriod: a Nachreichung its office
// took after the case was answered keeps its bytes for the period from when
// the office took it. Counted from the case's answer alone, one sent when that
// period was over lost its bytes at the first run after the office took it,
// before anyone had read it twice.
func TestRetentionGivesALateNachreichungItsOwnPeriod(t *testing.T) {
	e := start(t, t.TempDir())
	ctx := context.Background()
	c := receiveHeld(t, e.b, "antrag", "", true)
	decided, err := e.b.Decide(ctx, "office-a", c.ID, Decision{Outcome: OutcomeAccepted, Actor: "test", Channel: "api"})
	if err != nil {
		t.Fatal(err)
	}
	answered := decided.Decision.DecidedLocally()
	for !time.Now().UTC().After(answered.Add(time.Millisecond)) {
		time.Sleep(time.Millisecond)
	}
	late := receiveHeld(t, e.b, "nachweis", c.ID, true)
	if !late.DeliveredAt.After(answered) {
		t.Fatalf("taken at %v, the case answered at %v", late.DeliveredAt, answered)
	}
	day := 24 * time.Hour
	r := Retention{PackageBytes: 90 * day, BlobGrace: time.Nanosecond, CompactMinFree: -1}
	if rep, err := e.b.GC(ctx, answered.Add(90*day), r); err != nil || rep.BytesRemoved != 1 {
		t.Fatalf("90 days after the case's answer: %+v %v, want the case's bytes alone", rep, err)
	}
	if s, err := e.b.Submission(late.ID); err != nil || s.BytesRemovedAt != nil {
		t.Fatalf("the late Nachreichung lost its bytes before its period: %+v %v", s, err)
	}
	if rep, err := e.b.GC(ctx, late.DeliveredAt.Add(90*day), r); err != nil || rep.BytesRemoved != 1 {
		t.Fatalf("90 days after it was taken: %+v %v", rep, err)
	}
}

// receiveHeld receives the package msg (a Nachreichung to caseID unless "")
// for no channel, so that it is held for its office's pickup, and with take
// lets the office fetch it (its delivery); it returns the record then.
func receiveHeld(t *testing.T, b *Broker, msg, caseID string, take bool) *submission.Submission {
	t.Helper()
	ctx := context.Background()
	in := intake(msg)
	in.CaseID = caseID
	a, err := b.Receive(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	waitState(t, b, id, submission.StateHeld)
	if take {
		_, rc, err := b.OpenPackage(ctx, "office-a", id, Pickup{Channel: "api", Receiver: "office-a (pull API)"})
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	s, err := b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
