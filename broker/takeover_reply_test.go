package broker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// TestTakeoverBetweenReadAndReplyWins: the office's system replies by XTA
// (sendMessage) to a case on its way to it, and a clerk takes the case over
// in the web mailbox after the desk read the record for the reply and before
// the reply is committed. The reply was stored (Reply asked nothing of a
// takeover) and would reach the applicant beside the clerk's answer. It is
// refused now, and nothing is recorded or stored: on the record read first,
// which says the office does not have the case yet (a reply answers a case
// its office took; since 2026-12-06 every refusal of the transition is asked
// before the reply's bytes are stored), and once more on the record the
// transaction writes to, where the takeover would refuse it
// (submission.ErrTakenOver, TestTakenOverCaseTakesNoReplyFromTheSystem).
func TestTakeoverBetweenReadAndReplyWins(t *testing.T) {
	ctx := context.Background()
	st := &takeoverOnRead{}
	b := broker.StartForTest(t, t.TempDir(), func(db *store.DB) store.Store {
		st.Store = db
		return st
	}, waitsForTheOffice{channel.XTA})
	a, err := b.Receive(ctx, broker.Intake{MessageID: "m1", Sender: "amt24", SignerID: "amt24", LeikaKey: "99000000000000",
		ServiceName: "Test", Place: "Dresden", AreaName: "Dresden", OfficeID: "office-a", OfficeName: "Office A",
		Package: []byte("<Antragspaket>m1</Antragspaket>"), Targets: []submission.Target{{Channel: channel.XTA}, {Channel: channel.Mailbox}}})
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	// A liveness bound, not a timing assertion: the hand-over takes milliseconds.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if s, err := b.Submission(id); err == nil && s.State == submission.StateHandedOver {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the case was not handed over to XTA")
		}
	}
	st.arm(id, func() {
		_, rc, err := b.OpenPackage(ctx, "office-a", id, broker.Pickup{Channel: channel.Mailbox, Receiver: "anna (Behördenpostfach)"})
		if err != nil {
			t.Errorf("the clerk's takeover: %v", err)
			return
		}
		rc.Close()
	})
	_, err = b.Reply(ctx, "office-a", id, broker.ReplyIn{Kind: "Bescheid", MessageID: "fv-1", ContentType: "application/xml",
		Content: []byte("<Bescheid/>"), Actor: "XTA account fv", Channel: channel.XTA})
	if !errors.Is(err, broker.ErrConflict) || !errors.Is(err, submission.ErrIllegal) {
		t.Errorf("the system's reply after the takeover: %v, want ErrConflict", err)
	}
	s, err := b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.TakenOverFrom != channel.XTA || len(s.Replies) != 0 {
		t.Errorf("after the reply: taken over from %q, replies %+v; want the takeover and no reply", s.TakenOverFrom, s.Replies)
	}
	evs, err := b.Log(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type == submission.EventReplied {
			t.Errorf("the refused reply was logged: %+v", e)
		}
	}
}

// takeoverOnRead is the store that, armed for a case, runs then once right
// after its next read of that case: a takeover between a desk call's read
// and its commit.
type takeoverOnRead struct {
	store.Store
	mu   sync.Mutex
	id   string
	then func()
}

func (s *takeoverOnRead) arm(id string, then func()) {
	s.mu.Lock()
	s.id, s.then = id, then
	s.mu.Unlock()
}

func (s *takeoverOnRead) Get(id string) (*submission.Submission, error) {
	sub, err := s.Store.Get(id)
	s.mu.Lock()
	then := s.then
	if id != s.id {
		then = nil
	} else {
		s.then = nil
	}
	s.mu.Unlock()
	if then != nil {
		then()
	}
	return sub, err
}
