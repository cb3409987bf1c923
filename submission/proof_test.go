package submission

import (
	"testing"
	"time"
)

// TestDropOutsideTextKeepsTheProof: the removal of a case's bytes keeps the
// record and its events as the proof of what happened, for retention.records.
// The gateway's own events of an ordinary case — received (signer, size and the
// package's digest, which the receipts name too), routed, queued, delivered
// (receiver, reference), the decision with its reason, the reply's id and the
// removal itself — carry no text from outside that the removal must take, and
// DropOutsideText leaves every one of them as it was.
func TestDropOutsideTextKeepsTheProof(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s, evs := New(Params{ID: "s1", DeliveryID: "d1", MessageID: "m1", Sender: "amt24", SignerID: "amt24-signer",
		OfficeID: "o1", AreaName: "Dresden", LeikaKey: "99000000000000", PackageSHA256: "ab12", PackageSize: 42,
		Targets: []Target{{Channel: "webhook"}}}, now)
	add := func(e []Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e...)
	}
	add(s.Delivered(now, s.Generation, Confirmation{Receiver: "office o1", Reference: "Az-7"}))
	add(s.Decide(now, "", OutcomeRejected, "Nachweis fehlt", "clerk"))
	add(s.AddReply(now, Reply{ID: "r1", Kind: "Bescheid", SHA256: "cd34", Size: 3, Channel: "api"}))
	add(s.RemoveBytes(now, "retention: 2160h0m0s after the office's answer"))
	for i := range evs {
		before := evs[i]
		if DropOutsideText(&evs[i]) || evs[i] != before {
			t.Errorf("%s event changed by the removal: %+v -> %+v", before.Type, before, evs[i])
		}
	}
	if len(evs) < 7 {
		t.Fatalf("events %v", types(evs))
	}
}
