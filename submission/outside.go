package submission

import "strings"

// Text from outside the gateway in a case's events.
//
// A failed delivery's event keeps what the receiver said: its operator note
// (Reason.Internal) is the adapter's error with the office's answer in it — a
// validator answering 422 with "Feld Geburtsdatum 01.02.1980 von Max Mustermann
// ungültig", an XTA reader's fault text, a peer gateway's problem detail — and a
// peer gateway's refusal or status is quoted in the public detail too. That is
// the applicant's data, and the event log stays for retention.records (ten
// years; for a case no office answers, until an operator erases it). So when a
// case's bytes are removed (the retention or an erasure), that text goes with
// them: DropOutsideText replaces it with RemovedText, and the store rewrites the
// stored events in the same transaction as the bytes_removed event
// (store.Store.UpdateRedacting).
//
// What stays is the gateway's own words (the receiver's status code, the
// channel, the schedule), and two texts from outside that are the proof the
// record is kept for: the office's decision reason (accepted, rejected), and the
// delivery's receiver and reference (delivered, handed_over).

// RemovedText stands, in an event of a case whose bytes were removed, where text
// from outside the gateway was.
const RemovedText = "[removed with the case's bytes]"

// refusedByPeer begins the public reason of a peer gateway's refusal, which
// quotes the peer's problem detail after the gateway's name (RefusedByPeer).
const refusedByPeer = "refused by gateway "

// RefusedByPeer is the public reason of a peer gateway's refusal: the peer's own
// words (its problem detail) after its name. It is made here so that
// DropOutsideText finds the quote.
func RefusedByPeer(peer, reason string) string {
	return refusedByPeer + peer + ": " + reason
}

// peerStatusDetail is a peer_status event's detail: the gateway's words, then the
// peer's note in parentheses (DropOutsideText cuts it at the first " (").
func peerStatusDetail(peer string, state State, note string) string {
	d := "at gateway " + peer + ": " + string(state)
	if note != "" {
		d += " (" + note + ")"
	}
	return d
}

// DropOutsideText replaces in e what came from outside the gateway (see above)
// with RemovedText and reports whether it changed e. It changes only Detail and
// Note, and doing it again changes nothing.
func DropOutsideText(e *Event) bool {
	changed := false
	set := func(field *string, v string) {
		if *field != v {
			*field, changed = v, true
		}
	}
	switch e.Type {
	case EventAttemptFailed, EventChannelFailed:
		// The note is the adapter's error: whatever the receiver answered.
		if e.Note != "" {
			set(&e.Note, RemovedText)
		}
		// The detail is the gateway's public reason; only a peer's refusal
		// quotes the peer, to the end of the detail.
		if i := strings.Index(e.Detail, refusedByPeer); i >= 0 {
			rest := e.Detail[i+len(refusedByPeer):]
			if j := strings.Index(rest, ": "); j >= 0 {
				set(&e.Detail, e.Detail[:i+len(refusedByPeer)+j+2]+RemovedText)
			} else {
				set(&e.Detail, e.Detail[:i+len(refusedByPeer)]+RemovedText)
			}
		}
	case EventPeerStatus:
		// The note is the gateway's own ("peer state a -> b"); the detail quotes
		// what the peer said of the package in parentheses.
		if i := strings.Index(e.Detail, " ("); i >= 0 {
			set(&e.Detail, e.Detail[:i]+" ("+RemovedText+")")
		}
	}
	return changed
}
