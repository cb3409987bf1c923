package broker

import (
	"context"
	"errors"
	"testing"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
)

// TestTakeoverBetweenReadAndPickupWins: the office's system fetches (or
// decides) a case through the pull API, and a clerk takes it over in the web
// mailbox after the desk read the record for the fetch and before the fetch's
// pickup is committed — the system listed the case, came back for it, and the
// clerk was a moment faster. The desk took the pickup for a repeat (the case
// was delivered by then) and handed the system the package, and its decision
// counted: two people processed one application. Now the pickup's own
// transition refuses it (ErrConflict, submission.ErrTakenOver) on the record
// it commits to, and nothing is recorded. Afterwards, every pickup by the
// system is refused on the record read, and the clerk's own faces go on.
func TestTakeoverBetweenReadAndPickupWins(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	close(release)
	b := startOver(t, t.TempDir(), testConfig, nil, &handOverAdapter{release: release})
	receive := func(msg string) string {
		t.Helper()
		a, err := b.Receive(ctx, intake(msg, channel.API, channel.Mailbox))
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, b, a.Submission.ID, submission.StateHandedOver)
		return a.Submission.ID
	}
	clerk := Pickup{Channel: channel.Mailbox, Receiver: "anna (Behördenpostfach)"}
	system := Pickup{Channel: channel.API, Receiver: "office office-a (pull API)"}
	// meanwhile is an Admit that lets the clerk's takeover in between the desk's
	// read of the record (which it is asked on) and the pickup.
	meanwhile := func(id string) Admit {
		return func(*submission.Submission) error {
			_, rc, err := b.OpenPackage(ctx, "office-a", id, clerk)
			if err != nil {
				t.Errorf("the clerk's takeover: %v", err)
				return nil
			}
			rc.Close()
			return nil
		}
	}
	refused := func(what string, err error, id string, events int) {
		t.Helper()
		if !errors.Is(err, ErrConflict) || !errors.Is(err, submission.ErrTakenOver) {
			t.Errorf("%s: %v, want ErrConflict and submission.ErrTakenOver", what, err)
		}
		s, _ := b.Submission(id)
		if s.DeliveredVia != channel.Mailbox || s.TakenOverFrom != channel.API || s.Decision != nil {
			t.Errorf("%s: delivered via %q, taken over from %q, decided %+v", what, s.DeliveredVia, s.TakenOverFrom, s.Decision)
		}
		if got := eventTypes(t, b, id); len(got) != events {
			t.Errorf("%s: events %v, want %d", what, got, events)
		}
	}

	fetched := receive("fetched")
	system.Admit = meanwhile(fetched)
	_, rc, err := b.OpenPackage(ctx, "office-a", fetched, system)
	if rc != nil {
		rc.Close()
	}
	n := len(eventTypes(t, b, fetched))
	refused("the system's fetch after the takeover", err, fetched, n)
	if evs, _ := b.Log(fetched); evs[n-1].Type != submission.EventDelivered || evs[n-1].Channel != channel.Mailbox {
		t.Errorf("the last event is %+v, want the clerk's pickup", evs[n-1])
	}

	decided := receive("decided")
	_, err = b.Decide(ctx, "office-a", decided, Decision{Outcome: OutcomeAccepted, Actor: "office office-a (pull API)", Channel: channel.API, Admit: meanwhile(decided)})
	refused("the system's decision after the takeover", err, decided, len(eventTypes(t, b, decided)))

	// Read after the takeover: refused on that read, whatever the face.
	system.Admit = nil
	events := len(eventTypes(t, b, fetched))
	_, rc, err = b.OpenPackage(ctx, "office-a", fetched, system)
	if rc != nil {
		rc.Close()
	}
	refused("a later fetch", err, fetched, events)
	_, err = b.Confirm(ctx, "office-a", fetched, Pickup{Channel: channel.XTA, Receiver: "XTA account (close)"})
	refused("a later close", err, fetched, events)
	_, err = b.Decide(ctx, "office-a", fetched, Decision{Outcome: OutcomeRejected, Reason: "r", Actor: "office", Channel: channel.API})
	refused("a later decision", err, fetched, events)

	// The clerk's: opened again and decided in the mailbox.
	if _, rc, err := b.OpenPackage(ctx, "office-a", fetched, clerk); err != nil {
		t.Fatalf("the clerk opens her case again: %v", err)
	} else {
		rc.Close()
	}
	if s, err := b.Decide(ctx, "office-a", fetched, Decision{Outcome: OutcomeAccepted, Actor: "anna", Channel: channel.Mailbox}); err != nil || s.State != submission.StateAccepted {
		t.Fatalf("the clerk's decision: %v", err)
	}
}
