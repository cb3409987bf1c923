package submission

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// fixture returns a submission with two channels, put into state st the way the
// lifecycle would get there (so the fixture itself exercises legal paths).
func fixture(t *testing.T, st State) *Submission {
	t.Helper()
	s, _ := New(Params{ID: "s1", DeliveryID: "d1", MessageID: "m1", Sender: "amt24", OfficeID: "o1",
		Targets: []Target{{Channel: "webhook"}, {Channel: "mailbox"}}}, t0)
	must := func(_ []Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("fixture %s: %v", st, err)
		}
	}
	c := Confirmation{Receiver: "office"}
	switch st {
	case StateQueued:
	case StateRetrying:
		must(s.AttemptFailed(t0, s.Generation, Reason{Public: "HTTP 503"}, t0.Add(time.Second)))
	case StateHandedOver:
		must(s.HandOver(t0, s.Generation, c))
	case StateDelivered:
		must(s.Delivered(t0, s.Generation, c))
	case StateHeld:
		must(s.ChannelFailed(t0, s.Generation, Reason{Public: "gone"}))
		must(s.ChannelFailed(t0, s.Generation, Reason{Public: "gone"}))
	case StateAccepted, StateRejected:
		must(s.Delivered(t0, s.Generation, c))
		must(s.Decide(t0, "", string(st), "why", "clerk"))
	case StateForwarded:
		s.State = StateForwarded // no transition leads here yet (peer channel)
	default:
		t.Fatalf("no fixture for %s", st)
	}
	if s.State != st {
		t.Fatalf("fixture: want %s, got %s", st, s.State)
	}
	return s
}

// TestEveryTransitionFromEveryState runs each transition from each state and checks
// the outcome against the table: the new state and event types when legal, the
// sentinel error and an unchanged record when not.
func TestEveryTransitionFromEveryState(t *testing.T) {
	c := Confirmation{Receiver: "office", At: t0}
	type result struct {
		state State
		evs   []string
		err   error // nil, ErrIllegal or ErrStale; noop means nil error and no events
	}
	ok := func(st State, evs ...string) result { return result{state: st, evs: evs} }
	noop := func(st State) result { return result{state: st} }
	illegal := result{err: ErrIllegal}
	stale := result{err: ErrStale}
	transitions := []struct {
		name string
		do   func(s *Submission) ([]Event, error)
		want map[State]result
	}{
		{"AttemptFailed", func(s *Submission) ([]Event, error) {
			return s.AttemptFailed(t0, s.Generation, Reason{Public: "HTTP 503", Internal: "body"}, t0.Add(time.Minute))
		}, map[State]result{
			StateQueued: ok(StateRetrying, EventAttemptFailed), StateRetrying: ok(StateRetrying, EventAttemptFailed),
			StateHandedOver: stale, StateDelivered: stale, StateHeld: stale, StateAccepted: stale, StateRejected: stale, StateForwarded: stale,
		}},
		{"Defer", func(s *Submission) ([]Event, error) {
			return s.Defer(t0, s.Generation, s.TotalAttempts, Reason{Public: "the office's endpoint is failing"}, t0.Add(time.Hour))
		}, map[State]result{
			StateQueued: ok(StateQueued, EventQueued), StateRetrying: ok(StateRetrying, EventQueued),
			StateHandedOver: stale, StateDelivered: stale, StateHeld: stale, StateAccepted: stale, StateRejected: stale, StateForwarded: stale,
		}},
		{"ChannelFailed", func(s *Submission) ([]Event, error) {
			return s.ChannelFailed(t0, s.Generation, Reason{Public: "HTTP 410"})
		}, map[State]result{
			StateQueued: ok(StateQueued, EventChannelFailed, EventFallback), StateRetrying: ok(StateQueued, EventChannelFailed, EventFallback),
			StateHandedOver: stale, StateDelivered: stale, StateHeld: stale, StateAccepted: stale, StateRejected: stale, StateForwarded: stale,
		}},
		{"HandOver", func(s *Submission) ([]Event, error) { return s.HandOver(t0, s.Generation, c) }, map[State]result{
			StateQueued: ok(StateHandedOver, EventHandedOver), StateRetrying: ok(StateHandedOver, EventHandedOver),
			StateHandedOver: stale, StateDelivered: stale, StateHeld: stale, StateAccepted: stale, StateRejected: stale, StateForwarded: stale,
		}},
		{"Delivered", func(s *Submission) ([]Event, error) { return s.Delivered(t0, s.Generation, c) }, map[State]result{
			StateQueued: ok(StateDelivered, EventDelivered), StateRetrying: ok(StateDelivered, EventDelivered),
			StateHandedOver: stale, StateDelivered: stale, StateHeld: stale, StateAccepted: stale, StateRejected: stale, StateForwarded: stale,
		}},
		{"Confirm", func(s *Submission) ([]Event, error) { return s.Confirm(t0, "api", c) }, map[State]result{
			StateQueued: ok(StateDelivered, EventDelivered), StateRetrying: ok(StateDelivered, EventDelivered),
			StateHandedOver: ok(StateDelivered, EventDelivered), StateHeld: ok(StateDelivered, EventDelivered),
			StateDelivered: noop(StateDelivered), StateAccepted: noop(StateAccepted), StateRejected: noop(StateRejected),
			StateForwarded: illegal,
		}},
		{"Decide accepted", func(s *Submission) ([]Event, error) { return s.Decide(t0, "", OutcomeAccepted, "", "clerk") }, map[State]result{
			StateDelivered: ok(StateAccepted, EventAccepted), StateAccepted: noop(StateAccepted),
			StateQueued: illegal, StateRetrying: illegal, StateHandedOver: illegal, StateHeld: illegal, StateRejected: illegal, StateForwarded: illegal,
		}},
		{"Decide rejected", func(s *Submission) ([]Event, error) { return s.Decide(t0, "", OutcomeRejected, "incomplete", "clerk") }, map[State]result{
			StateDelivered: ok(StateRejected, EventRejected), StateRejected: noop(StateRejected),
			StateQueued: illegal, StateRetrying: illegal, StateHandedOver: illegal, StateHeld: illegal, StateAccepted: illegal, StateForwarded: illegal,
		}},
		{"Decide unknown outcome", func(s *Submission) ([]Event, error) { return s.Decide(t0, "", "maybe", "", "") }, map[State]result{
			StateQueued: illegal, StateRetrying: illegal, StateHandedOver: illegal, StateDelivered: illegal, StateHeld: illegal,
			StateAccepted: illegal, StateRejected: illegal, StateForwarded: illegal,
		}},
		{"AddReply", func(s *Submission) ([]Event, error) {
			return s.AddReply(t0, Reply{ID: "r1", Kind: "Bescheid", Channel: "xta", SHA256: "00", Size: 1})
		}, map[State]result{
			StateDelivered: ok(StateDelivered, EventReplied), StateAccepted: ok(StateAccepted, EventReplied), StateRejected: ok(StateRejected, EventReplied),
			StateQueued: illegal, StateRetrying: illegal, StateHandedOver: illegal, StateHeld: illegal, StateForwarded: illegal,
		}},
		{"MarkProcessed", func(s *Submission) ([]Event, error) { return s.MarkProcessed(t0, true, "anna", "mailbox") }, map[State]result{
			StateDelivered: ok(StateDelivered, EventProcessed), StateAccepted: ok(StateAccepted, EventProcessed), StateRejected: ok(StateRejected, EventProcessed),
			StateQueued: illegal, StateRetrying: illegal, StateHandedOver: illegal, StateHeld: illegal, StateForwarded: illegal,
		}},
		{"RemoveBytes", func(s *Submission) ([]Event, error) { return s.RemoveBytes(t0, "retention") }, map[State]result{
			StateAccepted: ok(StateAccepted, EventBytesRemoved), StateRejected: ok(StateRejected, EventBytesRemoved),
			StateQueued: illegal, StateRetrying: illegal, StateHandedOver: illegal, StateDelivered: illegal, StateHeld: illegal, StateForwarded: illegal,
		}},
		{"Reoffer", func(s *Submission) ([]Event, error) {
			return s.Reoffer(t0, Reason{Public: "moved", Internal: "note"}, nil)
		}, map[State]result{
			StateHandedOver: ok(StateQueued, EventRequeued),
			StateQueued:     stale, StateRetrying: stale, StateDelivered: stale, StateHeld: stale,
			StateAccepted: stale, StateRejected: stale, StateForwarded: stale,
		}},
		{"ChannelWithdrawn", func(s *Submission) ([]Event, error) {
			return s.ChannelWithdrawn(t0, Reason{Public: "gone", Internal: "note"}, nil)
		}, map[State]result{
			StateHandedOver: ok(StateQueued, EventChannelFailed, EventFallback),
			StateQueued:     stale, StateRetrying: stale, StateDelivered: stale, StateHeld: stale,
			StateAccepted: stale, StateRejected: stale, StateForwarded: stale,
		}},
		{"Requeue", func(s *Submission) ([]Event, error) { return s.Requeue(t0, "operator", "requeued by operator", nil) }, map[State]result{
			StateHeld:   ok(StateQueued, EventRequeued),
			StateQueued: illegal, StateRetrying: illegal, StateHandedOver: illegal, StateDelivered: illegal,
			StateAccepted: illegal, StateRejected: illegal, StateForwarded: illegal,
		}},
	}
	for _, tr := range transitions {
		for _, st := range States() {
			want, listed := tr.want[st]
			if !listed {
				t.Errorf("%s from %s: not in the table", tr.name, st)
				continue
			}
			t.Run(tr.name+"/"+string(st), func(t *testing.T) {
				s := fixture(t, st)
				before := *s
				evs, err := tr.do(s)
				if want.err != nil {
					if !errors.Is(err, want.err) {
						t.Fatalf("want %v, got %v", want.err, err)
					}
					if len(evs) != 0 || s.State != before.State || s.Generation != before.Generation || s.Attempts != before.Attempts {
						t.Fatalf("a refused transition changed the record: %+v -> %+v", before, *s)
					}
					return
				}
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if s.State != want.state {
					t.Fatalf("state %s, want %s", s.State, want.state)
				}
				if len(evs) != len(want.evs) {
					t.Fatalf("events %v, want %v", types(evs), want.evs)
				}
				for i := range evs {
					if evs[i].Type != want.evs[i] {
						t.Fatalf("events %v, want %v", types(evs), want.evs)
					}
				}
				if s.State.Dispatchable() != (s.State == StateQueued || s.State == StateRetrying) {
					t.Fatal("dispatchable mismatch")
				}
			})
		}
	}
}

func types(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func TestNewWithoutChannelIsHeld(t *testing.T) {
	s, evs := New(Params{ID: "s", OfficeID: "o"}, t0)
	if s.State != StateHeld || types(evs)[2] != EventHeld {
		t.Fatalf("got %s %v", s.State, types(evs))
	}
	s, evs = New(Params{ID: "s", OfficeID: "o", Targets: []Target{{Channel: "webhook"}}}, t0)
	if s.State != StateQueued || evs[2].Channel != "webhook" || s.Generation != 1 {
		t.Fatalf("got %s %v", s.State, evs)
	}
}

func TestStaleOutcomeOfAnOlderGeneration(t *testing.T) {
	s := fixture(t, StateQueued)
	old := s.Generation
	if _, err := s.ChannelFailed(t0, old, Reason{Public: "410"}); err != nil {
		t.Fatal(err)
	}
	// The first channel's late success must not mark the fallback's attempt delivered.
	if _, err := s.Delivered(t0, old, Confirmation{}); !errors.Is(err, ErrStale) {
		t.Fatalf("want ErrStale, got %v", err)
	}
	if _, err := s.Delivered(t0, s.Generation, Confirmation{Receiver: "mailbox"}); err != nil {
		t.Fatal(err)
	}
}

func TestFallbackWalksThePlanThenHolds(t *testing.T) {
	s := fixture(t, StateQueued)
	evs, _ := s.ChannelFailed(t0, s.Generation, Reason{Public: "HTTP 410"})
	if evs[1].Channel != "mailbox" || s.Generation != 2 || s.Attempts != 0 {
		t.Fatalf("fallback: %+v %+v", evs, s)
	}
	evs, _ = s.ChannelFailed(t0, s.Generation, Reason{Public: "disk"})
	if s.State != StateHeld || evs[1].Type != EventHeld {
		t.Fatalf("held: %s %v", s.State, types(evs))
	}
	if _, err := s.Requeue(t0, "op", "requeued by operator", nil); err != nil || s.TargetIndex != 0 || s.Generation != 3 {
		t.Fatalf("requeue: %v %+v", err, s)
	}
}

func TestReasonsKeepInternalDetailApart(t *testing.T) {
	s := fixture(t, StateQueued)
	evs, _ := s.AttemptFailed(t0, s.Generation, Reason{Public: "receiver answered HTTP 503", Internal: "<html>stack trace of Fachverfahren</html>"}, t0.Add(2*time.Second))
	if evs[0].Note == "" || evs[0].Detail == "" || evs[0].Detail == evs[0].Note {
		t.Fatalf("event %+v", evs[0])
	}
	if want := "receiver answered HTTP 503; next attempt in 2s"; evs[0].Detail != want {
		t.Fatalf("detail %q, want %q", evs[0].Detail, want)
	}
}

func TestConfirmAtDefaultsToNow(t *testing.T) {
	s := fixture(t, StateHeld)
	if _, err := s.Confirm(t0, "api", Confirmation{Receiver: "office o1 (pull API)"}); err != nil {
		t.Fatal(err)
	}
	if s.DeliveredAt == nil || !s.DeliveredAt.Equal(t0) {
		t.Fatalf("delivered at %v", s.DeliveredAt)
	}
}

func TestReplyOnceAndBounded(t *testing.T) {
	s := fixture(t, StateAccepted)
	r := Reply{ID: "r1", MessageID: "urn:de:xta:messageid:x", Kind: "Bescheid"}
	if evs, err := s.AddReply(t0, r); err != nil || len(evs) != 1 {
		t.Fatal(evs, err)
	}
	r.ID = "r2" // the same office message id again: a retry of the same reply
	if evs, err := s.AddReply(t0, r); err != nil || len(evs) != 0 || len(s.Replies) != 1 {
		t.Fatalf("repeat recorded: %v %v", evs, err)
	}
	for i := 0; i < MaxReplies-1; i++ {
		if _, err := s.AddReply(t0, Reply{ID: fmt.Sprint("x", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddReply(t0, Reply{ID: "one too many"}); !errors.Is(err, ErrIllegal) {
		t.Fatalf("want ErrIllegal, got %v", err)
	}
}

// TestReasonForOperator: the log's reason is the internal one, or the public one
// where there is no other; the broker logged "reason=" for a channel the gateway
// does not have, whose reason is public only.
func TestReasonForOperator(t *testing.T) {
	if got := (Reason{Public: "channel x is not available"}).ForOperator(); got != "channel x is not available" {
		t.Errorf("public only: %q", got)
	}
	if got := (Reason{Public: "receiver refused", Internal: "HTTP 400: bad"}).ForOperator(); got != "HTTP 400: bad" {
		t.Errorf("both: %q", got)
	}
}

// TestRemovedBytesTakeTheFileNames: once the bytes are gone, the record keeps an
// attachment's and a reply's id, type, size and digest, not the name the
// citizen or the clerk gave it.
func TestRemovedBytesTakeTheFileNames(t *testing.T) {
	now := time.Now()
	s := &Submission{ID: "s", Decision: &Decision{Outcome: "accepted"},
		Attachments: []Attachment{{ID: "a1", FileName: "ausweis_erika_mustermann.pdf", MimeType: "application/pdf", Size: 3, SHA256: "ab"}},
		Replies:     []Reply{{ID: "r1", Kind: "Bescheid", FileName: "Bescheid Erika Mustermann.pdf", ContentType: "application/pdf", Size: 4, SHA256: "cd"}}}
	if _, err := s.RemoveBytes(now, "retention"); err != nil {
		t.Fatal(err)
	}
	if a := s.Attachments[0]; a.FileName != "" || a.ID != "a1" || a.SHA256 != "ab" || s.BytesRemovedAt == nil {
		t.Fatalf("after RemoveBytes: %+v", a)
	}
	if r := s.Replies[0]; r.FileName != "" || r.ID != "r1" || r.SHA256 != "cd" {
		t.Fatalf("after RemoveBytes: %+v", r)
	}
}

// TestChannelGoneFollowsTheOfficesChannelsNow: an office moved from its webhook
// to a transfer folder. A package still waiting for the webhook went on with
// the plan made at intake (the mailbox, or held); it goes to the folder, the
// office's first channel now, and the event names both plans. A plan that still
// has the channel, or none, keeps the plan made at intake.
func TestChannelGoneFollowsTheOfficesChannelsNow(t *testing.T) {
	mk := func() *Submission {
		s := &Submission{ID: "s", State: StateRetrying, Generation: 2, Attempts: 3,
			Targets: []Target{{Channel: "webhook"}, {Channel: "mailbox"}}}
		return s
	}
	s := mk()
	evs, err := s.ChannelGone(t0, 2, Reason{Public: "channel webhook is no longer configured for the office"}, []Target{{Channel: "transfer"}, {Channel: "mailbox"}})
	if err != nil {
		t.Fatal(err)
	}
	if ref, _ := s.CurrentTarget(); s.State != StateQueued || ref.Channel != "transfer" || s.Attempts != 0 || s.Generation != 3 {
		t.Fatalf("after the webhook went: %s on %s, attempts %d, generation %d", s.State, ref.Channel, s.Attempts, s.Generation)
	}
	if len(evs) != 2 || evs[1].Type != EventFallback || !strings.Contains(evs[1].Detail, "channels now transfer, mailbox (were webhook, mailbox)") {
		t.Fatalf("events: %+v", evs)
	}
	for _, plan := range [][]Target{nil, {{Channel: "webhook"}, {Channel: "mailbox"}}} {
		s := mk()
		if _, err := s.ChannelGone(t0, 2, Reason{Public: "gone"}, plan); err != nil {
			t.Fatal(err)
		}
		if ref, _ := s.CurrentTarget(); ref.Channel != "mailbox" || len(s.Targets) != 2 {
			t.Fatalf("plan %v: on %s, targets %v; want the intake plan's next channel", plan, ref.Channel, s.Targets)
		}
	}
}

// An office system's confirmation time comes from its clock: one behind made the
// delivery precede the hand-over, one ahead put it in the future.
func TestConfirmationTimeBoundedByHandOverAndNow(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	handed, now := t0.Add(time.Hour), t0.Add(2*time.Hour)
	for _, tc := range []struct {
		name   string
		at     time.Time
		expect time.Time
	}{
		{"behind", t0.Add(-48 * time.Hour), handed},
		{"ahead", now.Add(time.Hour), now},
		{"within", t0.Add(90 * time.Minute), t0.Add(90 * time.Minute)},
	} {
		s, _ := New(Params{ID: "s", Targets: []Target{{Channel: "xta"}}}, t0)
		if _, err := s.HandOver(handed, s.Generation, Confirmation{Receiver: "office"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Confirm(now, "xta", Confirmation{Receiver: "office", At: tc.at}); err != nil {
			t.Fatal(err)
		}
		if !s.DeliveredAt.Equal(tc.expect) {
			t.Errorf("%s: delivered at %v, want %v", tc.name, s.DeliveredAt, tc.expect)
		}
	}
}

// TestWithdrawnSkipsAChannelThatRefusedThePackage: a package whose webhook
// refused it for good went on to the transfer folder and was handed over there;
// the operator then took the transfer channel from the office. The plan as
// configured now restarted at its first channel, the webhook that had refused
// this package, with a fresh retry budget (a review). Channels it failed on are
// left out; when nothing is left, it is held.
func TestWithdrawnSkipsAChannelThatRefusedThePackage(t *testing.T) {
	mk := func() *Submission {
		s := &Submission{ID: "s", State: StateRetrying, Generation: 1,
			Targets: []Target{{Channel: "webhook"}, {Channel: "transfer"}, {Channel: "mailbox"}}}
		if _, err := s.ChannelFailed(t0, 1, Reason{Public: "receiver answered HTTP 422"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.HandOver(t0, s.Generation, Confirmation{Receiver: "transfer folder /x"}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := mk()
	if _, err := s.ChannelWithdrawn(t0, Reason{Public: "transfer withdrawn"}, []Target{{Channel: "webhook"}, {Channel: "mailbox"}}); err != nil {
		t.Fatal(err)
	}
	if ref, _ := s.CurrentTarget(); s.State != StateQueued || ref.Channel != "mailbox" {
		t.Fatalf("after the transfer folder went: %s on %q (targets %v)", s.State, ref.Channel, s.Targets)
	}
	s = mk()
	evs, err := s.ChannelWithdrawn(t0, Reason{Public: "transfer withdrawn"}, []Target{{Channel: "webhook"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.State != StateHeld || evs[len(evs)-1].Type != EventHeld {
		t.Fatalf("with only the refusing webhook left: %s, %+v", s.State, evs)
	}
	// Offered again (the channel still configured, no longer reaching the
	// office): the plan as configured now, from its first channel not failed.
	s = mk()
	if _, err := s.Reoffer(t0, Reason{Public: "moved"}, []Target{{Channel: "webhook"}, {Channel: "xta"}, {Channel: "transfer"}}); err != nil {
		t.Fatal(err)
	}
	if ref, _ := s.CurrentTarget(); s.State != StateQueued || ref.Channel != "xta" {
		t.Fatalf("offered again: %s on %q (targets %v)", s.State, ref.Channel, s.Targets)
	}
}

// TestAwaitsDecisionByTheWayTheOfficeTookIt: a delivered case waits for the
// office's decision when the office took it by a face that decides (its system
// by the office API, a clerk in the mailbox), whatever channel it waited on —
// also a held package its system fetched — and not when XTA, a transfer folder
// or a peer gateway delivered it, which never decide here. A decision, the
// office's "processed" mark and the removal of the bytes end the wait; taking
// the mark back starts it again. A record delivered before DeliveredVia was kept
// goes by its current target.
func TestAwaitsDecisionByTheWayTheOfficeTookIt(t *testing.T) {
	c := Confirmation{Receiver: "office"}
	for _, tc := range []struct {
		name string
		take func(s *Submission) ([]Event, error)
		want bool
	}{
		{"webhook notified", func(s *Submission) ([]Event, error) { return s.Delivered(t0, s.Generation, c) }, true},
		{"fetched by its system", func(s *Submission) ([]Event, error) { return s.Confirm(t0, "api", c) }, true},
		{"opened in the mailbox", func(s *Submission) ([]Event, error) { return s.Confirm(t0, "mailbox", c) }, true},
		{"closed by XTA", func(s *Submission) ([]Event, error) { return s.Confirm(t0, "xta", c) }, false},
		{"imported from the transfer folder", func(s *Submission) ([]Event, error) { return s.Confirm(t0, "transfer", c) }, false},
		{"held, then fetched by its system", func(s *Submission) ([]Event, error) {
			if _, err := s.ChannelFailed(t0, s.Generation, Reason{Public: "gone"}); err != nil {
				return nil, err
			}
			if _, err := s.ChannelFailed(t0, s.Generation, Reason{Public: "gone"}); err != nil {
				return nil, err
			}
			return s.Confirm(t0, "api", c)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fixture(t, StateQueued)
			if s.AwaitsDecision() {
				t.Fatal("a queued case awaits a decision")
			}
			if _, err := tc.take(s); err != nil {
				t.Fatal(err)
			}
			if got := s.AwaitsDecision(); got != tc.want {
				t.Fatalf("delivered via %q: awaits a decision %v, want %v", s.DeliveredVia, got, tc.want)
			}
		})
	}

	s := fixture(t, StateDelivered)
	if !s.AwaitsDecision() {
		t.Fatal("a delivered case does not await its decision")
	}
	must := func(_ []Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.MarkProcessed(t0, true, "clerk", "mailbox"))
	if s.AwaitsDecision() {
		t.Fatal("a case the office marked processed still awaits a decision")
	}
	must(s.MarkProcessed(t0, false, "clerk", "mailbox"))
	if !s.AwaitsDecision() {
		t.Fatal("a reopened case does not await its decision")
	}
	must(s.Decide(t0, "", OutcomeAccepted, "", "clerk"))
	if s.AwaitsDecision() {
		t.Fatal("a decided case awaits a decision")
	}
	s = fixture(t, StateDelivered)
	must(s.RemoveUnansweredBytes(t0, "retention"))
	if s.AwaitsDecision() {
		t.Fatal("a case without its bytes awaits a decision")
	}

	// Delivered before DeliveredVia was kept: the current target tells.
	s = fixture(t, StateDelivered)
	s.DeliveredVia = ""
	if !s.AwaitsDecision() {
		t.Fatal("an older record delivered by webhook does not await its decision")
	}
	s.TargetIndex = 5 // none left: a held package fetched
	if s.AwaitsDecision() || s.DeliveryChannel() != "" {
		t.Fatalf("an older record with no channel left: %q", s.DeliveryChannel())
	}
}

// TestDeferMovesTheStatedNextAttemptOnce: a package whose attempt_failed said
// "next attempt in 5s" is kept back by the office's paused endpoint: Defer moves
// its NextAttemptAt (and RetryDelay, which the dispatcher takes for a stepped
// clock beyond it) to the pause's end with one queued event "at the earliest";
// the same pause again, or a longer one, before the next attempt changes
// nothing; an attempt since makes the deferral stale; a package that waits
// longer anyway is not moved.
func TestDeferMovesTheStatedNextAttemptOnce(t *testing.T) {
	s := fixture(t, StateRetrying) // failed at t0, next attempt at t0+1s
	now := t0.Add(time.Second)
	until := now.Add(time.Minute)
	why := Reason{Public: "the office's endpoint is failing", NextIn: 61 * time.Second}
	evs, err := s.Defer(now, s.Generation, s.TotalAttempts, why, until)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || !evs[0].PutsOff() || evs[0].Channel != "webhook" ||
		evs[0].Detail != "the office's endpoint is failing; next attempt in 1m1s at the earliest (attempts to the office's endpoint are paused)" {
		t.Fatalf("events %+v", evs)
	}
	if !s.NextAttemptAt.Equal(until) || s.RetryDelay != time.Minute || s.State != StateRetrying || s.Attempts != 1 {
		t.Fatalf("record after Defer: next %s, delay %s, %s, attempts %d", s.NextAttemptAt, s.RetryDelay, s.State, s.Attempts)
	}
	// The breaker opens again after a failed probe: no second event.
	if evs, err := s.Defer(until, s.Generation, s.TotalAttempts, why, until.Add(time.Minute)); err != nil || len(evs) != 0 || !s.NextAttemptAt.Equal(until) {
		t.Fatalf("second deferral before the next attempt: %+v, %v, next %s", evs, err, s.NextAttemptAt)
	}
	// An attempt was made since the dispatcher read the record.
	if _, err := s.Defer(now, s.Generation, s.TotalAttempts-1, why, until.Add(time.Hour)); !errors.Is(err, ErrStale) {
		t.Fatalf("deferral of an earlier attempt: %v, want ErrStale", err)
	}
	// The next attempt fails with the schedule's 5 minutes: a pause that ends
	// before them moves nothing, a longer one once more.
	if _, err := s.AttemptFailed(until, s.Generation, Reason{Public: "HTTP 503"}, until.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if evs, _ := s.Defer(until, s.Generation, s.TotalAttempts, why, until.Add(time.Minute)); len(evs) != 0 || !s.NextAttemptAt.Equal(until.Add(5*time.Minute)) {
		t.Fatalf("a pause shorter than the wait: %+v, next %s", evs, s.NextAttemptAt)
	}
	if evs, _ := s.Defer(until.Add(5*time.Minute), s.Generation, s.TotalAttempts, Reason{Public: "x"}, until.Add(6*time.Minute)); len(evs) != 1 || !s.NextAttemptAt.Equal(until.Add(6*time.Minute)) {
		t.Fatalf("a pause after the next attempt: %+v, next %s", evs, s.NextAttemptAt)
	}
	// A failure that stated the pause itself ("at the earliest") is not moved
	// by the same pause again.
	if _, err := s.AttemptFailed(until, s.Generation, Reason{Public: "HTTP 503", Paused: true}, until.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if evs, _ := s.Defer(until.Add(time.Minute), s.Generation, s.TotalAttempts, why, until.Add(2*time.Minute)); len(evs) != 0 {
		t.Fatalf("after an attempt_failed that stated the pause: %+v", evs)
	}
}

// TestOnlyDeferPutsOff: the first queued event (New) does not read as a
// deferral, Defer's does (Event.PutsOff, which the mailbox and the demo word
// differently).
func TestOnlyDeferPutsOff(t *testing.T) {
	s, evs := New(Params{ID: "s", Targets: []Target{{Channel: "webhook"}}}, t0)
	for _, e := range evs {
		if e.PutsOff() {
			t.Fatalf("New's %s event reads as a deferral: %+v", e.Type, e)
		}
	}
	if _, err := s.AttemptFailed(t0, s.Generation, Reason{Public: "HTTP 503"}, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Defer(t0, s.Generation, s.TotalAttempts, Reason{Public: "paused"}, t0.Add(time.Minute))
	if err != nil || len(evs) != 1 || !evs[0].PutsOff() {
		t.Fatalf("Defer: %+v, %v", evs, err)
	}
}

// TestReplyFetchedOnce: the first whole read of a reply is recorded with its
// event; later reads change nothing (a portal that reads it again writes
// nothing), and a reply the case does not have is refused.
func TestReplyFetchedOnce(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s := &Submission{ID: "s", Replies: []Reply{{ID: "r1", Kind: "Bescheid"}, {ID: "r2", Kind: "Rueckfrage"}}}
	evs, err := s.ReplyFetched(now, "r2", "portal amt24")
	if err != nil || len(evs) != 1 || evs[0].Type != EventReplyFetched || evs[0].Actor != "portal amt24" || evs[0].Detail != "Rueckfrage r2" {
		t.Fatalf("first read: %+v %v", evs, err)
	}
	if s.Replies[1].FetchedAt == nil || !s.Replies[1].FetchedAt.Equal(now) || s.Replies[0].FetchedAt != nil {
		t.Fatalf("replies after the first read: %+v", s.Replies)
	}
	if evs, err := s.ReplyFetched(now.Add(time.Hour), "r2", "portal amt24"); err != nil || evs != nil || !s.Replies[1].FetchedAt.Equal(now) {
		t.Errorf("a second read: %+v %v, fetched %v", evs, err, s.Replies[1].FetchedAt)
	}
	if _, err := s.ReplyFetched(now, "r9", "portal amt24"); !errors.Is(err, ErrIllegal) {
		t.Errorf("a reply the case does not have: %v", err)
	}
}
