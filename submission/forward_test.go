package submission

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func forwardable(t *testing.T) *Submission {
	t.Helper()
	s, _ := New(Params{ID: "s", DeliveryID: "d", MessageID: "m", Sender: "amt24", OfficeID: "peer-09", Targets: []Target{{Channel: "peer"}}}, time.Unix(0, 0))
	return s
}

func TestForwardedThenPeerEvents(t *testing.T) {
	now := time.Unix(100, 0).UTC()
	s := forwardable(t)
	evs, err := s.Forwarded(now, Forward{Peer: "by", PeerSubmissionID: "x"})
	if err != nil || len(evs) != 1 || evs[0].Type != EventForwarded || s.State != StateForwarded || s.State.Dispatchable() {
		t.Fatalf("forwarded: %v %+v %s", err, evs, s.State)
	}
	// The broker's own record of the attempt is stale now.
	if _, err := s.HandOver(now, s.Generation, Confirmation{}); !errors.Is(err, ErrStale) {
		t.Errorf("hand-over after forwarding: %v", err)
	}
	if evs, err := s.Forwarded(now, Forward{Peer: "by", PeerSubmissionID: "x"}); err != nil || evs != nil {
		t.Errorf("repeat: %v %v", evs, err)
	}
	if _, err := s.Forwarded(now, Forward{Peer: "he", PeerSubmissionID: "y"}); !errors.Is(err, ErrIllegal) {
		t.Errorf("forward to another peer: %v", err)
	}
	// Nothing new: nothing recorded. Held at the peer: one peer_status event.
	if evs, _ := s.PeerUpdate(now, PeerStatus{Peer: "by", State: StateQueued}); len(evs) != 0 {
		t.Errorf("no news: %+v", evs)
	}
	evs, _ = s.PeerUpdate(now, PeerStatus{Peer: "by", State: StateHeld, Detail: "held: receiver answered HTTP 503"})
	if len(evs) != 1 || evs[0].Type != EventPeerStatus || s.State != StateForwarded {
		t.Errorf("held at the peer: %+v %s", evs, s.State)
	}
	if _, err := s.PeerUpdate(now, PeerStatus{Peer: "he", State: StateDelivered}); !errors.Is(err, ErrIllegal) {
		t.Errorf("status from another peer: %v", err)
	}
	// The decision arrives without a separate delivery report: both are recorded.
	u := PeerStatus{Peer: "by", State: StateAccepted, Receiver: "KVR München", Decision: &Decision{Outcome: OutcomeAccepted, Reason: "ok", Actor: "office x"}}
	if !s.ImpliesDelivery(u) {
		t.Error("a decision implies the delivery")
	}
	evs, err = s.PeerUpdate(now, u)
	if err != nil || len(evs) != 2 || evs[0].Type != EventDelivered || evs[1].Type != EventAccepted || s.State != StateAccepted || s.DeliveredAt == nil {
		t.Fatalf("accepted: %v %+v %s", err, evs, s.State)
	}
	if evs, err := s.PeerUpdate(now, u); err != nil || len(evs) != 0 {
		t.Errorf("repeat of the decision: %+v %v", evs, err)
	}
	u.State, u.Decision = StateRejected, &Decision{Outcome: OutcomeRejected}
	if _, err := s.PeerUpdate(now, u); !errors.Is(err, ErrIllegal) {
		t.Errorf("a different decision later: %v", err)
	}
}

func TestForwardedOnlyWhileWaiting(t *testing.T) {
	s := forwardable(t)
	s.State = StateHeld
	if _, err := s.Forwarded(time.Now(), Forward{Peer: "by"}); !errors.Is(err, ErrIllegal) {
		t.Errorf("held: %v", err)
	}
	if _, err := forwardable(t).PeerUpdate(time.Now(), PeerStatus{State: StateDelivered}); !errors.Is(err, ErrIllegal) {
		t.Errorf("peer status without forwarding: %v", err)
	}
}

// TestPeerUpdateNamesTheOfficesGateway: a peer that forwarded the package on says
// where the office is; the receiver and the deciding office are named at that
// gateway, once, however many gateways already named it.
func TestPeerUpdateNamesTheOfficesGateway(t *testing.T) {
	now := time.Unix(100, 0).UTC()
	s := forwardable(t)
	if _, err := s.Forwarded(now, Forward{Peer: "by", PeerSubmissionID: "x"}); err != nil {
		t.Fatal(err)
	}
	u := PeerStatus{Peer: "by", State: StateDelivered, Gateway: "nw", Receiver: "office koeln (webhook) at gateway nw"}
	evs, err := s.PeerUpdate(now, u)
	if err != nil || len(evs) != 1 || evs[0].Type != EventDelivered {
		t.Fatalf("delivered: %v %+v", err, evs)
	}
	if s.Receiver != "office koeln (webhook) at gateway nw" || s.Forward.ReceiverGateway != "nw" ||
		evs[0].Detail != "receiver office koeln (webhook) at gateway nw, forwarded there by gateway by" {
		t.Errorf("receiver %q at %q: %q", s.Receiver, s.Forward.ReceiverGateway, evs[0].Detail)
	}
	u.State, u.Decision = StateAccepted, &Decision{Outcome: OutcomeAccepted, Actor: "office koeln at nw"}
	if _, err := s.PeerUpdate(now, u); err != nil || s.Decision.Actor != "office koeln at nw" {
		t.Errorf("decided: %v %+v", err, s.Decision)
	}
	// One hop: the peer itself, named so.
	one := forwardable(t)
	_, _ = one.Forwarded(now, Forward{Peer: "by", PeerSubmissionID: "y"})
	if _, err := one.PeerUpdate(now, PeerStatus{Peer: "by", State: StateDelivered}); err != nil || one.Receiver != "office at gateway by" {
		t.Errorf("one hop, no name: %v %q", err, one.Receiver)
	}
	if got := ReceiverAt(ReceiverAt("KVR", "by"), "by"); got != "KVR at gateway by" {
		t.Errorf("ReceiverAt twice: %q", got)
	}
}

// A peer whose clock ran 100 days behind reported its delivery and decision
// times as they were: stored unchecked, the Zustellbestaetigung said delivered
// before received and the retention counted from the peer's decision time.
func TestPeerTimesAreBoundedByThisGatewaysClock(t *testing.T) {
	s := forwardable(t) // received at Unix 0
	forwarded := time.Unix(1000, 0).UTC()
	if _, err := s.Forwarded(forwarded, Forward{Peer: "by", PeerSubmissionID: "x"}); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(5000, 0).UTC()
	behind := s.ReceivedAt.Add(-100 * 24 * time.Hour)
	if _, err := s.PeerUpdate(now, PeerStatus{Peer: "by", State: StateAccepted, DeliveredAt: &behind,
		Decision: &Decision{Outcome: OutcomeAccepted, At: behind, Actor: "office"}}); err != nil {
		t.Fatal(err)
	}
	if s.DeliveredAt == nil || !s.DeliveredAt.Equal(s.ReceivedAt) {
		t.Errorf("delivered at %v, want the time received %v (a peer's time before it is bounded to it)", s.DeliveredAt, s.ReceivedAt)
	}
	if !s.Decision.At.Equal(*s.DeliveredAt) {
		t.Errorf("decided at %v, want the delivery %v", s.Decision.At, s.DeliveredAt)
	}
	if !s.Decision.RecordedAt.Equal(now) || !s.Decision.DecidedLocally().Equal(now) {
		t.Errorf("recorded at %v (%v), want this gateway's time %v", s.Decision.RecordedAt, s.Decision.DecidedLocally(), now)
	}

	// A peer clock ahead: a delivery and decision in the future are now.
	s = forwardable(t)
	if _, err := s.Forwarded(forwarded, Forward{Peer: "by", PeerSubmissionID: "x"}); err != nil {
		t.Fatal(err)
	}
	ahead := now.Add(24 * time.Hour)
	if _, err := s.PeerUpdate(now, PeerStatus{Peer: "by", State: StateRejected, DeliveredAt: &ahead,
		Decision: &Decision{Outcome: OutcomeRejected, At: ahead}}); err != nil {
		t.Fatal(err)
	}
	if !s.DeliveredAt.Equal(now) || !s.Decision.At.Equal(now) {
		t.Errorf("peer clock ahead: delivered %v, decided %v, want both %v", s.DeliveredAt, s.Decision.At, now)
	}

	// A time within the bounds is the peer's, as it said.
	s = forwardable(t)
	if _, err := s.Forwarded(forwarded, Forward{Peer: "by", PeerSubmissionID: "x"}); err != nil {
		t.Fatal(err)
	}
	d, dec := time.Unix(2000, 0).UTC(), time.Unix(3000, 0).UTC()
	if _, err := s.PeerUpdate(now, PeerStatus{Peer: "by", State: StateAccepted, DeliveredAt: &d,
		Decision: &Decision{Outcome: OutcomeAccepted, At: dec}}); err != nil {
		t.Fatal(err)
	}
	if !s.DeliveredAt.Equal(d) || !s.Decision.At.Equal(dec) {
		t.Errorf("times within bounds: delivered %v, decided %v, want %v, %v", s.DeliveredAt, s.Decision.At, d, dec)
	}
}

// TestForwardedCaseIsDecidedByThePeerAlone: once the peer reported that its
// office has the package, the forwarded case is delivered (by channel peer)
// and Decide's state check passed: a decision through a face here was
// recorded and went to the portal as the office's answer, while the office at
// the peer decides on its own. Decide refuses a forwarded case now, before
// the peer's decision and after it (no repeat: no face here decided); the
// peer's report still records its decision.
func TestForwardedCaseIsDecidedByThePeerAlone(t *testing.T) {
	now := time.Unix(100, 0).UTC()
	s := forwardable(t)
	if _, err := s.Forwarded(now, Forward{Peer: "by", PeerSubmissionID: "x"}); err != nil {
		t.Fatal(err)
	}
	local := func(when string) {
		t.Helper()
		for _, ch := range []string{"api", "mailbox", ""} {
			before := *s
			evs, err := s.Decide(now, ch, OutcomeAccepted, "", "anna")
			if !errors.Is(err, ErrIllegal) || len(evs) != 0 || s.State != before.State || s.Decision != before.Decision {
				t.Errorf("a decision on %q %s: %v %+v, state %s, decision %+v; want ErrIllegal and nothing changed", ch, when, err, evs, s.State, s.Decision)
			}
		}
	}
	local("before the peer's delivery")
	if _, err := s.PeerUpdate(now, PeerStatus{Peer: "by", State: StateDelivered}); err != nil || s.State != StateDelivered {
		t.Fatalf("the peer's delivery: %v, %s", err, s.State)
	}
	local("after the peer's delivery")
	u := PeerStatus{Peer: "by", State: StateAccepted, Decision: &Decision{Outcome: OutcomeAccepted, Actor: "office x"}}
	if evs, err := s.PeerUpdate(now, u); err != nil || len(evs) != 1 || evs[0].Type != EventAccepted || s.State != StateAccepted {
		t.Fatalf("the peer's decision: %v %+v %s", err, evs, s.State)
	}
	local("after the peer's decision")
}

// TestFetchOfAForwardedCaseRecordsNothing: a read of a forwarded case's bytes
// (XTA getMessage, which FetchPackage serves) records no fetch, before the
// peer's delivery and after it: the delivery is the peer's report, and a
// fetched event said an office's system here read it.
func TestFetchOfAForwardedCaseRecordsNothing(t *testing.T) {
	now := time.Unix(100, 0).UTC()
	s := forwardable(t)
	if _, err := s.Forwarded(now, Forward{Peer: "by", PeerSubmissionID: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, when := range []string{"before the peer's delivery", "after it"} {
		if evs, err := s.Fetched(now, now, "xta"); err != nil || len(evs) != 0 || s.FetchedAt != nil {
			t.Errorf("a fetch %s: %v %+v, fetched at %v; want nothing recorded", when, err, evs, s.FetchedAt)
		}
		if _, err := s.PeerUpdate(now, PeerStatus{Peer: "by", State: StateDelivered}); err != nil {
			t.Fatal(err)
		}
	}
	// A case not forwarded records its first fetch.
	o := forwardable(t)
	if evs, err := o.Fetched(now, now, "xta"); err != nil || len(evs) != 1 || o.FetchedAt == nil {
		t.Errorf("a fetch of a case not forwarded: %v %+v", err, evs)
	}
}

// TestForwardedCaseTakesNoReplyHere: a reply to a forwarded case, before the
// peer's delivery and after it, is refused and records nothing, as a decision
// is (TestForwardedCaseIsDecidedByThePeerAlone): its office is at the peer.
// After the peer's delivery it was stored, and would have reached the
// applicant as the office's answer.
func TestForwardedCaseTakesNoReplyHere(t *testing.T) {
	now := time.Unix(100, 0).UTC()
	s := forwardable(t)
	if _, err := s.Forwarded(now, Forward{Peer: "by", PeerSubmissionID: "x"}); err != nil {
		t.Fatal(err)
	}
	reply := func(when string) {
		t.Helper()
		for _, ch := range []string{"xta", "mailbox"} {
			evs, err := s.AddReply(now, Reply{ID: "r-" + ch, Kind: "Bescheid", Channel: ch})
			if !errors.Is(err, ErrIllegal) || len(evs) != 0 || len(s.Replies) != 0 {
				t.Errorf("a reply on %s %s: %v %+v, replies %+v; want ErrIllegal and nothing stored", ch, when, err, evs, s.Replies)
			}
		}
	}
	reply("before the peer's delivery")
	if _, err := s.PeerUpdate(now, PeerStatus{Peer: "by", State: StateDelivered}); err != nil || s.State != StateDelivered {
		t.Fatalf("the peer's delivery: %v, %s", err, s.State)
	}
	reply("after the peer's delivery")
}

// TestHeldAfterThePeerChannelNamesNoOfficeFetch: a package for another state's
// office held after its peer channel failed waits for an operator alone. No
// office face of this gateway picks a forwarded package up (docs/federation.md),
// so the portal must not read that "the office" will fetch it here.
func TestHeldAfterThePeerChannelNamesNoOfficeFetch(t *testing.T) {
	s := forwardable(t)
	evs, err := s.ChannelFailed(time.Unix(100, 0), s.Generation, Reason{Public: "refused by gateway by"})
	if err != nil || s.State != StateHeld {
		t.Fatalf("channel failed: %v %s", err, s.State)
	}
	held := evs[len(evs)-1]
	if held.Type != EventHeld || strings.Contains(held.Detail, "office to fetch") || !strings.Contains(held.Detail, "operator") {
		t.Errorf("held detail %q: want an operator's step, no office fetching it here", held.Detail)
	}
}
