package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// officeQuote is what an office's validator answered to a failed delivery: the
// applicant's data, in the events' notes and details.
const officeQuote = "Feld Geburtsdatum 01.02.1980 von Max Mustermann ungültig"

// testUpdateRedacting: the removal of a case's bytes takes with it what the case's
// events quote from outside the gateway (an office answering 422 with the
// applicant's name), in the same transaction; before, the events kept it for
// retention.records, and for a case no office answers for good. The log is long
// enough for a store to keep its older events apart from the record (the
// JetStream store's pages), and those are rewritten too. Only Detail and Note
// change, whatever redact does to the rest; every event keeps its place and
// sequence number; the change's own new events are not redacted; fn returning no
// events or an error rewrites nothing; and the rewrite survives a restart.
func (s *suite) testUpdateRedacting(t *testing.T) {
	st := s.h.Open(t)
	sub := mustCreate(t, st, NewSubmission(uid("redact"), uid("p"), uid("m")), firstEvents(), "r")
	note := "webhook: receiver answered HTTP 422: " + officeQuote + strings.Repeat(" (Feld wiederholt)", 100)
	failures := 0
	for failures*len(note) < LongLogBytes/3 { // past a quarter of a 1 MiB message
		failures++
		ev := submission.Event{Type: submission.EventAttemptFailed, Channel: "webhook", Attempt: failures,
			Detail: "receiver answered HTTP 422; " + officeQuote, Note: note}
		if _, err := st.Update(sub.ID, func(*submission.Submission) ([]submission.Event, error) { return []submission.Event{ev}, nil }); err != nil {
			t.Fatalf("failure %d: %v", failures, err)
		}
	}
	// redact drops the quote and tries to change what it must not.
	redact := func(e *submission.Event) bool {
		if !strings.Contains(e.Note+e.Detail, officeQuote) {
			return false
		}
		e.Note = submission.RemovedText
		e.Detail = strings.ReplaceAll(e.Detail, officeQuote, submission.RemovedText)
		e.Type, e.Seq, e.Attempt, e.Channel, e.At = "tampered", 0, -1, "tampered", time.Time{}
		return true
	}
	quoted := func(st store.Store, when string) int {
		t.Helper()
		evs, err := st.Events(sub.ID)
		if err != nil {
			t.Fatalf("%s: Events: %v", when, err)
		}
		n := 0
		for _, e := range evs {
			if strings.Contains(e.Note+e.Detail, officeQuote) {
				n++
			}
		}
		return n
	}
	if n := quoted(st, "before"); n != failures {
		t.Fatalf("%d of %d events quote the office before the removal: the checks below would prove nothing", n, failures)
	}

	// No change, no rewrite; an error, no rewrite.
	if _, err := st.UpdateRedacting(sub.ID, func(*submission.Submission) ([]submission.Event, error) { return nil, nil }, redact); err != nil {
		t.Fatal(err)
	}
	if n := quoted(st, "after a call that recorded no change"); n != failures {
		t.Fatalf("%d of %d events still quote the office after a call whose fn returned no events: it rewrote them without a change", n, failures)
	}
	boom := errors.New("planted")
	if _, err := st.UpdateRedacting(sub.ID, func(s *submission.Submission) ([]submission.Event, error) {
		return []submission.Event{{Type: submission.EventBytesRemoved}}, boom
	}, redact); !errors.Is(err, boom) {
		t.Fatalf("fn's error: %v", err)
	}
	if n := quoted(st, "after fn's error"); n != failures {
		t.Fatalf("%d of %d events still quote the office after fn failed: it rewrote them anyway", n, failures)
	}

	removedAt := time.Now().UTC()
	got, err := st.UpdateRedacting(sub.ID, func(s *submission.Submission) ([]submission.Event, error) {
		s.State = submission.StateHeld
		s.BytesGone(removedAt)
		return []submission.Event{{Type: submission.EventBytesRemoved, Actor: "m.meier", Note: "Löschantrag; " + officeQuote}}, nil
	}, redact)
	if err != nil {
		t.Fatal(err)
	}
	if got.BytesRemovedAt == nil || got.State != submission.StateHeld {
		t.Fatalf("the change itself: %+v", got)
	}
	check := func(st store.Store, when string) {
		t.Helper()
		if s, err := st.Get(sub.ID); err != nil || s.BytesRemovedAt == nil {
			t.Fatalf("%s: record %+v %v, want the bytes removed", when, s, err)
		}
		evs, err := st.Events(sub.ID)
		if err != nil {
			t.Fatalf("%s: Events: %v", when, err)
		}
		if want := len(firstEvents()) + failures + 1; len(evs) != want {
			t.Fatalf("%s: %d events, want %d", when, len(evs), want)
		}
		for i, e := range evs {
			if e.Seq != uint64(i+1) || e.SubmissionID != sub.ID || e.At.IsZero() {
				t.Fatalf("%s: event %d: seq %d of %q at %v, want seq %d of %s", when, i, e.Seq, e.SubmissionID, e.At, i+1, sub.ID)
			}
			switch {
			case i < len(firstEvents()):
				if w := firstEvents()[i]; e.Type != w.Type || e.Detail != w.Detail || e.Channel != w.Channel {
					t.Fatalf("%s: event %d, which redact left alone, is now %+v", when, i, e)
				}
			case i < len(evs)-1:
				if e.Type != submission.EventAttemptFailed || e.Channel != "webhook" || e.Attempt != i-len(firstEvents())+1 {
					t.Fatalf("%s: event %d: %s on %q, attempt %d: redact changed more than Detail and Note", when, i, e.Type, e.Channel, e.Attempt)
				}
				if e.Note != submission.RemovedText || e.Detail != "receiver answered HTTP 422; "+submission.RemovedText {
					t.Fatalf("%s: event %d not rewritten: detail %q, note of %d bytes", when, i, e.Detail, len(e.Note))
				}
			default:
				if e.Type != submission.EventBytesRemoved || !strings.Contains(e.Note, officeQuote) {
					t.Fatalf("%s: the change's own event %+v: it was passed to redact", when, e)
				}
			}
		}
	}
	check(st, "after the removal")
	st = s.h.Reopen(t, st)
	check(st, "reopened")
}
