package store_test

import (
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// TestWaitingValueRoundTrip: what WaitingValue writes, ParseWaiting reads back;
// a value of a build before it (empty) or one cut short names nothing, so the
// reader takes the record's word instead of a wrong office.
func TestWaitingValueRoundTrip(t *testing.T) {
	now := time.Now()
	s := &submission.Submission{ID: "id-1", OfficeID: "sn-14612000-bauamt", Targets: []submission.Target{{Channel: "xta"}, {Channel: "mailbox"}}, TargetIndex: 1}
	if got, want := store.ParseWaiting(s.ID, store.WaitingValue(s)), (store.Waiting{ID: "id-1", Known: true, Office: s.OfficeID, Channel: "mailbox"}); got != want {
		t.Fatalf("round trip %+v, want %+v", got, want)
	}
	s.BytesRemovedAt, s.TargetIndex, s.OfficeID = &now, -1, ""
	if got, want := store.ParseWaiting(s.ID, store.WaitingValue(s)), (store.Waiting{ID: "id-1", Known: true, Erased: true}); got != want {
		t.Fatalf("erased, no target, no office: %+v, want %+v", got, want)
	}
	v := store.WaitingValue(&submission.Submission{OfficeID: "office-a", Targets: []submission.Target{{Channel: "webhook"}}})
	for _, bad := range [][]byte{nil, {}, v[:1], v[:5], {0, 0, 'x'}} {
		if got := store.ParseWaiting("x", bad); got != (store.Waiting{ID: "x"}) {
			t.Errorf("value %q read as %+v, want not known", bad, got)
		}
		if !store.WaitingFor(bad, "office-b") {
			t.Errorf("value %q not listed for another office: an entry that names nobody must be read", bad)
		}
	}
	if store.WaitingFor(v, "office-b") || !store.WaitingFor(v, "office-a") {
		t.Error("WaitingFor does not follow the office")
	}
}

// TestWaitingValueOfTheFirstFormIsNotKnown: the value's first form (flag 1,
// then the office id, no channel) reads as not known, not as a channel length
// and another office.
func TestWaitingValueOfTheFirstFormIsNotKnown(t *testing.T) {
	for _, v := range [][]byte{append([]byte{1}, "5office-with-a-digit-first"...), append([]byte{3}, "office-a"...)} {
		if got := store.ParseWaiting("x", v); got.Known {
			t.Errorf("first-form value %q read as %+v", v, got)
		}
	}
}
