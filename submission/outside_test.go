package submission

import (
	"strings"
	"testing"
	"time"
)

// TestDropOutsideText: what a case's events quote from outside the gateway — the
// receiver's words in a failed attempt's note, a peer gateway's refusal and its
// status note in the public detail — is what the removal of the case's bytes
// replaces (it stayed for retention.records before); the gateway's own words and
// the proof the record is kept for (the decision's reason, the delivery's
// receiver and reference) stay, and a second pass changes nothing.
func TestDropOutsideText(t *testing.T) {
	const words = "Feld Geburtsdatum 01.02.1980 von Max Mustermann ungueltig"
	now := time.Now()
	s := &Submission{ID: "s1", State: StateQueued, Generation: 1, Targets: []Target{{Channel: "webhook"}, {Channel: "peer"}}}
	var evs []Event
	add := func(e []Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e...)
	}
	add(s.AttemptFailed(now, 1, Reason{Public: "receiver answered HTTP 503", Internal: "webhook: receiver answered HTTP 503: " + words}, now.Add(time.Minute)))
	add(s.ChannelFailed(now, 1, Reason{Public: "receiver refused with HTTP 422", Internal: "webhook: receiver answered HTTP 422: " + words}))
	add(s.ChannelFailed(now, 2, Reason{Public: "gave up after 3 attempts: " + RefusedByPeer("amtsbote-by", words), Internal: "peer gateway amtsbote-by refused the package: " + words}))
	f := &Submission{ID: "s2", State: StateQueued, Targets: []Target{{Channel: "peer"}}, Generation: 1}
	add(f.Forwarded(now, Forward{Peer: "amtsbote-by", PeerSubmissionID: "p1"}))
	add(f.PeerUpdate(now, PeerStatus{Peer: "amtsbote-by", State: StateHeld, Detail: "held: " + words}))
	add(f.PeerUpdate(now, PeerStatus{Peer: "amtsbote-by", State: StateDelivered, Receiver: "office x, reference Az-1"}))
	add(f.PeerUpdate(now, PeerStatus{Peer: "amtsbote-by", State: StateRejected, Decision: &Decision{Outcome: OutcomeRejected, Reason: "Nachweis fehlt"}}))

	want := map[string]string{} // type: detail after the pass, for the texts checked whole
	for i := range evs {
		e := &evs[i]
		before := *e
		changed := DropOutsideText(e)
		if strings.Contains(e.Detail+e.Note, words) {
			t.Errorf("%s still quotes the receiver: detail %q, note %q", e.Type, e.Detail, e.Note)
		}
		if changed != (before.Detail != e.Detail || before.Note != e.Note) {
			t.Errorf("%s: reported %v, changed %v", e.Type, changed, !changed)
		}
		if e.Seq != before.Seq || e.Type != before.Type || e.Channel != before.Channel || e.Attempt != before.Attempt || e.Actor != before.Actor || !e.At.Equal(before.At) {
			t.Errorf("%s: more than detail and note changed: %+v -> %+v", e.Type, before, *e)
		}
		if again := *e; DropOutsideText(&again) {
			t.Errorf("%s: a second pass changed it again: %+v", e.Type, again)
		}
		want[e.Type+" "+before.Detail] = e.Detail
	}
	for before, after := range map[string]string{
		EventAttemptFailed + " receiver answered HTTP 503; next attempt in 1m0s":                   "receiver answered HTTP 503; next attempt in 1m0s",
		EventChannelFailed + " receiver refused with HTTP 422":                                     "receiver refused with HTTP 422",
		EventChannelFailed + " gave up after 3 attempts: refused by gateway amtsbote-by: " + words: "gave up after 3 attempts: refused by gateway amtsbote-by: " + RemovedText,
		EventPeerStatus + " at gateway amtsbote-by: held (held: " + words + ")":                    "at gateway amtsbote-by: held (" + RemovedText + ")",
		EventDelivered + " receiver office x, reference Az-1 at gateway amtsbote-by":               "receiver office x, reference Az-1 at gateway amtsbote-by",
		EventRejected + " Nachweis fehlt":                                                          "Nachweis fehlt",
	} {
		if got, ok := want[before]; !ok || got != after {
			t.Errorf("%q became %q (found: %v), want %q", before, got, ok, after)
		}
	}
	for _, e := range evs {
		if (e.Type == EventAttemptFailed || e.Type == EventChannelFailed) && e.Note != RemovedText {
			t.Errorf("%s: note %q, want %q", e.Type, e.Note, RemovedText)
		}
	}
}
