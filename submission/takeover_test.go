package submission

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestTakeoverIsTheMailboxsPickupOfACaseOnItsWay: a clerk's pickup in the web
// mailbox of a case on its way to the office's own system is the takeover, and
// the record says so (TakenOverFrom, in the delivered event's transition);
// the record alone could not tell it from a clerk opening a case that was the
// mailbox's anyway (DeliveredVia mailbox for both, and the current target api
// also for a held case opened after an operator queued it again). From then
// on the system's face picks the case up no more; the mailbox does. Any other
// pickup is no takeover, and a record of an older build has none.
func TestTakeoverIsTheMailboxsPickupOfACaseOnItsWay(t *testing.T) {
	c := Confirmation{Receiver: "anna (Behördenpostfach)"}
	onItsWay := func(ch string, st State) *Submission {
		s, _ := New(Params{ID: "s1", OfficeID: "o1", Targets: []Target{{Channel: ch}, {Channel: "mailbox"}}}, t0)
		switch st {
		case StateHandedOver:
			if _, err := s.HandOver(t0, s.Generation, Confirmation{Receiver: ch}); err != nil {
				t.Fatal(err)
			}
		case StateRetrying:
			if _, err := s.AttemptFailed(t0, s.Generation, Reason{Public: "HTTP 503"}, t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	for _, tc := range []struct {
		name string
		s    func() *Submission
		by   string
		from string // TakenOverFrom afterwards; "" no takeover
	}{
		{"pull API, handed over", func() *Submission { return onItsWay("api", StateHandedOver) }, "mailbox", "api"},
		{"XTA, handed over", func() *Submission { return onItsWay("xta", StateHandedOver) }, "mailbox", "xta"},
		{"webhook, retrying", func() *Submission { return onItsWay("webhook", StateRetrying) }, "mailbox", "webhook"},
		{"transfer, folder not written", func() *Submission { return onItsWay("transfer", StateQueued) }, "mailbox", "transfer"},
		{"transfer, folder written", func() *Submission { return onItsWay("transfer", StateHandedOver) }, "mailbox", ""},
		{"XTA, read by the system", func() *Submission {
			s := onItsWay("xta", StateHandedOver)
			if _, err := s.Fetched(t0, t0, "xta"); err != nil {
				t.Fatal(err)
			}
			return s
		}, "mailbox", ""},
		{"held", func() *Submission {
			s := onItsWay("webhook", StateQueued)
			for range 2 {
				if _, err := s.ChannelFailed(t0, s.Generation, Reason{Public: "gone"}); err != nil {
					t.Fatal(err)
				}
			}
			return s
		}, "mailbox", ""},
		{"bound for the mailbox", func() *Submission { return onItsWay("mailbox", StateHandedOver) }, "mailbox", ""},
		{"fetched by the system", func() *Submission { return onItsWay("api", StateHandedOver) }, "api", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s()
			evs, err := s.Confirm(t0, tc.by, c)
			if err != nil || len(evs) != 1 || s.DeliveredAt == nil {
				t.Fatalf("the pickup: %v %+v", err, evs)
			}
			if s.TakenOverFrom != tc.from {
				t.Fatalf("taken over from %q, want %q", s.TakenOverFrom, tc.from)
			}
			if said := strings.Contains(evs[0].Note, "taken over"); said != (tc.from != "") {
				t.Errorf("the delivered event says %q", evs[0].Detail)
			}
			for _, ch := range []string{"api", "xta", "webhook", "transfer", ""} {
				_, err := s.Confirm(t0, ch, c)
				if tc.from == "" && err != nil {
					t.Errorf("a repeat pickup on %q: %v", ch, err)
				}
				if tc.from != "" && (!errors.Is(err, ErrIllegal) || !errors.Is(err, ErrTakenOver)) {
					t.Errorf("a pickup on %q of the case taken over: %v, want ErrIllegal and ErrTakenOver", ch, err)
				}
			}
			if evs, err := s.Confirm(t0, "mailbox", c); err != nil || evs != nil {
				t.Errorf("the clerk opens it again: %v %+v", err, evs)
			}
		})
	}

	// A record of a build before the marker decodes without a takeover.
	var old Submission
	if err := json.Unmarshal([]byte(`{"id":"s1","state":"delivered","deliveredAt":"2026-12-01T10:00:00Z","deliveredVia":"mailbox","targets":[{"channel":"api"}]}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.TakenOverFrom != "" || old.PickupAllowed("api") != nil {
		t.Errorf("an older record: taken over from %q", old.TakenOverFrom)
	}
}

// TestTakenOverCaseTakesNoReplyFromTheSystem: a reply from the office's own
// system (XTA sendMessage) to a case a clerk took over was stored, and would
// reach the applicant beside the clerk's answer. AddReply refuses it now
// (ErrIllegal and ErrTakenOver) and changes nothing; the mailbox's channel,
// a repeat of a reply held, and a case that was no takeover take it.
func TestTakenOverCaseTakesNoReplyFromTheSystem(t *testing.T) {
	taken := func() *Submission {
		s, _ := New(Params{ID: "s1", OfficeID: "o1", Targets: []Target{{Channel: "xta"}, {Channel: "mailbox"}}}, t0)
		if _, err := s.HandOver(t0, s.Generation, Confirmation{Receiver: "xta"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Confirm(t0, "mailbox", Confirmation{Receiver: "anna (Behördenpostfach)"}); err != nil || s.TakenOverFrom != "xta" {
			t.Fatalf("the takeover: %v, from %q", err, s.TakenOverFrom)
		}
		return s
	}
	reply := func(id, ch string) Reply {
		return Reply{ID: id, MessageID: "m-" + id, Kind: "Bescheid", Channel: ch, SHA256: "00", Size: 1}
	}
	s := taken()
	for _, ch := range []string{"xta", "api", "webhook", ""} {
		evs, err := s.AddReply(t0, reply("r-"+ch, ch))
		if !errors.Is(err, ErrIllegal) || !errors.Is(err, ErrTakenOver) || len(evs) != 0 || len(s.Replies) != 0 {
			t.Errorf("a reply on %q to the case taken over: %v %+v, replies %+v; want ErrIllegal and ErrTakenOver, nothing stored", ch, err, evs, s.Replies)
		}
	}
	if evs, err := s.AddReply(t0, reply("r1", "mailbox")); err != nil || len(evs) != 1 || len(s.Replies) != 1 {
		t.Errorf("a reply on the mailbox's channel: %v %+v", err, evs)
	}
	if evs, err := s.AddReply(t0, reply("r1", "xta")); err != nil || len(evs) != 0 {
		t.Errorf("a repeat of the reply held: %v %+v", err, evs)
	}
	// The system fetched first: no takeover, its reply is taken.
	o, _ := New(Params{ID: "s2", OfficeID: "o1", Targets: []Target{{Channel: "xta"}}}, t0)
	if _, err := o.HandOver(t0, o.Generation, Confirmation{Receiver: "xta"}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Fetched(t0, t0, "xta"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Confirm(t0, "mailbox", Confirmation{Receiver: "anna"}); err != nil || o.TakenOverFrom != "" {
		t.Fatalf("the clerk's pickup after the fetch: %v, taken over from %q", err, o.TakenOverFrom)
	}
	if evs, err := o.AddReply(t0, reply("r2", "xta")); err != nil || len(evs) != 1 {
		t.Errorf("the system's reply to a case it read first: %v %+v", err, evs)
	}
}

// TestHandOverAfterTakeoverIsTheTransferFolders: a stale hand-over is recorded
// on a taken-over case only where it put the case in the office's hands — the
// transfer channel, whose case folder the import takes — and only once, for
// the generation the takeover found; the case stays the clerk's (state,
// delivery, decision). A webhook's or a pull channel's late outcome, one of an
// earlier generation, and a case that was no takeover stay stale.
func TestHandOverAfterTakeoverIsTheTransferFolders(t *testing.T) {
	clerk := Confirmation{Receiver: "anna (Behördenpostfach)"}
	folder := Confirmation{Receiver: "transfer folder /srv/x", Reference: "20261206-s1"}
	takenOver := func(ch string) *Submission {
		s, _ := New(Params{ID: "s1", OfficeID: "o1", Targets: []Target{{Channel: ch}, {Channel: "mailbox"}}}, t0)
		if _, err := s.Confirm(t0, "mailbox", clerk); err != nil || s.TakenOverFrom != ch {
			t.Fatalf("takeover from %s: %v, taken over from %q", ch, err, s.TakenOverFrom)
		}
		return s
	}
	t1 := t0.Add(time.Second)

	s := takenOver("transfer")
	gen := s.Generation
	if _, err := s.Decide(t0, "mailbox", OutcomeAccepted, "", "anna"); err != nil {
		t.Fatal(err)
	}
	evs, err := s.HandOver(t1, gen, folder)
	if err != nil || len(evs) != 1 {
		t.Fatalf("late hand-over of the transfer folder: %v, %v", evs, err)
	}
	if e := evs[0]; e.Type != EventHandedOver || e.Channel != "transfer" || !strings.Contains(e.Detail, "20261206-s1") || strings.Contains(e.Detail, "mailbox") || e.Note == "" {
		t.Errorf("event %+v: want handed_over on transfer naming the case folder, the takeover in the note only", e)
	}
	if s.State != StateAccepted || s.DeliveredVia != "mailbox" || s.Decision == nil || !s.HandedOverAfterTakeover() || !s.HandedOverAfterTakeoverAt.Equal(t1) || !s.IsHandOverAfterTakeover(evs[0]) {
		t.Errorf("after the late hand-over: %s via %q, decision %v, handed over %v", s.State, s.DeliveredVia, s.Decision, s.HandedOverAfterTakeoverAt)
	}
	if evs, err := s.HandOver(t1.Add(time.Second), gen, folder); !errors.Is(err, ErrStale) || len(evs) != 0 || !s.HandedOverAfterTakeoverAt.Equal(t1) {
		t.Errorf("a second report: %v, %v, handed over %v; want stale and nothing changed", evs, err, s.HandedOverAfterTakeoverAt)
	}

	for _, tc := range []struct {
		name string
		s    func() *Submission
		gen  func(*Submission) int
	}{
		{"webhook", func() *Submission { return takenOver("webhook") }, nil},
		{"pull API", func() *Submission { return takenOver("api") }, nil},
		{"XTA", func() *Submission { return takenOver("xta") }, nil},
		{"an earlier generation", func() *Submission { return takenOver("transfer") }, func(s *Submission) int { return s.Generation - 1 }},
		{"no takeover", func() *Submission {
			s, _ := New(Params{ID: "s1", OfficeID: "o1", Targets: []Target{{Channel: "transfer"}, {Channel: "mailbox"}}}, t0)
			if _, err := s.Confirm(t0, "api", clerk); err != nil {
				t.Fatal(err)
			}
			return s
		}, nil},
	} {
		s := tc.s()
		gen := s.Generation
		if tc.gen != nil {
			gen = tc.gen(s)
		}
		if evs, err := s.HandOver(t1, gen, folder); !errors.Is(err, ErrStale) || len(evs) != 0 || s.HandedOverAfterTakeover() {
			t.Errorf("%s: %v, %v, handed over after the takeover %v; want stale", tc.name, evs, err, s.HandedOverAfterTakeoverAt)
		}
	}
}
