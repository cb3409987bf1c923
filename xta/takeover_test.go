package xta

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// TestTakenOverMessageLeavesTheBox: the office's system lists its box, and a
// clerk then takes one of the messages over in the web mailbox (a mailbox
// pickup of a case on its way to XTA). The system still got the message by
// getMessage with the id it had listed (getMessage reads any case of the
// office), and its close was answered as a repeat: the clerk and the system
// processed one application. Now both answer InvalidMessageIDException
// (env:Sender), as for a message no longer in the box, and record nothing;
// the message is not listed any more. A message the system read before a
// clerk opened it is no takeover: its close is answered as before.
func TestTakenOverMessageLeavesTheBox(t *testing.T) {
	ctx := context.Background()
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	taken := e.submit(t, officeA, pkgBytes(300), []byte("%PDF-1.7 Anlage"))
	read := e.submit(t, officeA, pkgBytes(400))
	takenID, readID := MessageID("amtsbote", taken.ID), MessageID("amtsbote", read.ID)
	const every = `<ns:OtherCriteria><ns:NewEntry>false</ns:NewEntry></ns:OtherCriteria>`
	if got := listed(t, v, e, "the box before", every); !slices.Contains(got, takenID) || !slices.Contains(got, readID) {
		t.Fatalf("the box lists %v, want both messages", got)
	}
	call := func(name, op, id string) *soapResp {
		t.Helper()
		r := post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, op), soapUIRequest(xtaA, "", fetchBody(id)))
		v.AddMessage(name, r.root, r.parts)
		return r
	}
	// The system reads the other message before a clerk opens it.
	mustOK(t, "getMessage before the clerk", call("getMessage before the clerk", "getMessage", readID))

	clerk := broker.Pickup{Channel: channel.Mailbox, Receiver: "anna (Behördenpostfach)"}
	for _, id := range []string{taken.ID, read.ID} {
		_, rc, err := e.b.OpenPackage(ctx, officeA, id, clerk)
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	if s, _ := e.b.Submission(taken.ID); s.TakenOverFrom != channel.XTA {
		t.Fatalf("the clerk's pickup of the message on its way is no takeover: %q", s.TakenOverFrom)
	}
	before := eventsOf(t, e, taken.ID)

	for _, op := range []string{"getMessage", "close"} {
		r := call(op+" of a message taken over", op, takenID)
		if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(InvalidMessageID) {
			t.Errorf("%s of a message taken over: HTTP %d %s %s, want 400 env:Sender InvalidMessageIDException\n%s", op, r.status, code, exc, r.root)
		}
		if !strings.Contains(string(r.root), "web mailbox") || strings.Contains(string(r.root), "anna") {
			t.Errorf("%s of a message taken over: the fault does not say why, or names the clerk:\n%s", op, r.root)
		}
	}
	if after := eventsOf(t, e, taken.ID); len(after) != len(before) {
		t.Errorf("the refusals recorded %v", after[len(before):])
	}
	if s, _ := e.b.Submission(taken.ID); s.FetchedAt != nil || s.DeliveredVia != channel.Mailbox {
		t.Errorf("the message taken over: fetched %v, delivered via %q", s.FetchedAt, s.DeliveredVia)
	}
	if got := listed(t, v, e, "the box after", every); slices.Contains(got, takenID) {
		t.Errorf("the box still lists the message taken over: %v", got)
	}
	mustOK(t, "close of the message read before the clerk", call("close of the message read before", "close", readID))
	v.Run()
}

// TestTakenOverCaseTakesNoReply: a reply by sendMessage to a case a clerk
// took over in the web mailbox was stored and would reach the applicant
// beside the clerk's answer (the system can have the content only from a
// getMessage under way at the takeover). It is refused now with
// ParameterIsNotValidException (env:Sender; the WSDL declares no
// InvalidMessageIDException for sendMessage), which says why and names no
// clerk, and nothing is stored or recorded. A reply to a case the system
// read before the clerk opened it is stored as before.
func TestTakenOverCaseTakesNoReply(t *testing.T) {
	ctx := context.Background()
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	taken := e.submit(t, officeA, pkgBytes(300))
	read := e.submit(t, officeA, pkgBytes(400))
	if _, err := e.b.RecordFetch(ctx, officeA, read.ID, channel.XTA, time.Now()); err != nil {
		t.Fatal(err)
	}
	clerk := broker.Pickup{Channel: channel.Mailbox, Receiver: "anna (Behördenpostfach)"}
	for _, id := range []string{taken.ID, read.ID} {
		if _, err := e.b.Confirm(ctx, officeA, id, clerk); err != nil {
			t.Fatal(err)
		}
	}
	if s, _ := e.b.Submission(taken.ID); s.TakenOverFrom != channel.XTA {
		t.Fatalf("the clerk's pickup of the message on its way is no takeover: %q", s.TakenOverFrom)
	}
	before := eventsOf(t, e, taken.ID)
	r := sendReply(t, e, NewMessageID("office-a-fv"), MessageID("amtsbote", taken.ID))
	v.AddMessage("sendMessage to a case taken over", r.root, r.parts)
	if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(ParameterIsNotValid) {
		t.Errorf("sendMessage to a case taken over: HTTP %d %s %s, want 400 env:Sender ParameterIsNotValidException\n%s", r.status, code, exc, r.root)
	}
	if !strings.Contains(string(r.root), "web mailbox") || strings.Contains(string(r.root), "anna") {
		t.Errorf("sendMessage to a case taken over: the fault does not say why, or names the clerk:\n%s", r.root)
	}
	if after := eventsOf(t, e, taken.ID); len(after) != len(before) {
		t.Errorf("the refused reply recorded %v", after[len(before):])
	}
	if s, _ := e.b.Submission(taken.ID); len(s.Replies) != 0 {
		t.Errorf("the refused reply was stored: %+v", s.Replies)
	}
	r = sendReply(t, e, NewMessageID("office-a-fv"), MessageID("amtsbote", read.ID))
	mustOK(t, "sendMessage to the case read before the clerk", r)
	v.AddMessage("sendMessage to the case read before the clerk", r.root, r.parts)
	if s, _ := e.b.Submission(read.ID); len(s.Replies) != 1 {
		t.Errorf("the reply to the case read before the clerk: %+v", s.Replies)
	}
	v.Run()
}

func eventsOf(t *testing.T, e *env, id string) []submission.Event {
	t.Helper()
	evs, err := e.b.Events(context.Background(), officeA, id)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// takeoverDesk makes a clerk's takeover of the case id land while a
// getMessage of it is under way: after its FetchPackage, before its answer is
// written and its fetch recorded (Waiting comes between).
type takeoverDesk struct {
	broker.OfficeDesk
	id   string
	once sync.Once
	err  error
}

func (d *takeoverDesk) Waiting(ctx context.Context, office string) ([]broker.WaitingEntry, error) {
	if d.id != "" {
		d.once.Do(func() {
			var rc io.ReadCloser
			_, rc, d.err = d.OpenPackage(ctx, office, d.id, broker.Pickup{Channel: channel.Mailbox, Receiver: "anna (Behördenpostfach)"})
			if rc != nil {
				rc.Close()
			}
		})
	}
	return d.OfficeDesk.Waiting(ctx, office)
}

// TestGetMessageUnderWayAtTheTakeoverIsRecorded: a getMessage under way when a
// clerk takes the message over in the web mailbox gives the office's system
// the whole application all the same. The gateway recorded nothing of it (the
// fetch of a case delivered, to the clerk, counted for nothing), and the
// clerk's page said the system does not get the case. The fetch is recorded
// now, after the takeover in the history, and the clerk's page says the
// system got it (mailbox.TestFetchAfterTakeoverIsOnThePage); the case stays
// the clerk's: the system's close is refused as before.
func TestGetMessageUnderWayAtTheTakeoverIsRecorded(t *testing.T) {
	v := xtatest.NewValidator(t)
	d := &takeoverDesk{}
	e := startEnv(t, func(o *Options) { d.OfficeDesk = o.Desk; o.Desk = d })
	sub := e.submit(t, officeA, pkgBytes(300))
	d.id = sub.ID
	xid := MessageID("amtsbote", sub.ID)
	call := func(op string) *soapResp {
		t.Helper()
		r := post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, op), soapUIRequest(xtaA, "", fetchBody(xid)))
		v.AddMessage(op, r.root, r.parts)
		return r
	}
	mustOK(t, "getMessage under way at the takeover", call("getMessage"))
	if d.err != nil {
		t.Fatalf("the clerk's takeover: %v", d.err)
	}
	s, _ := e.b.Submission(sub.ID)
	if s.TakenOverFrom != channel.XTA || s.DeliveredVia != channel.Mailbox {
		t.Fatalf("the clerk's pickup was no takeover: taken over from %q, delivered via %q", s.TakenOverFrom, s.DeliveredVia)
	}
	if s.FetchedAt == nil || !s.FetchedAfterTakeover() {
		t.Errorf("the getMessage that gave the system the application after the takeover was not recorded (fetched %v)", s.FetchedAt)
	}
	evs := eventsOf(t, e, sub.ID)
	last := evs[len(evs)-1]
	if len(evs) < 2 || last.Type != submission.EventFetched || last.Channel != channel.XTA || evs[len(evs)-2].Type != submission.EventDelivered ||
		last.At.Before(evs[len(evs)-2].At) {
		t.Errorf("the history does not end with the takeover and then the system's fetch: %+v", evs)
	}
	if code, exc := call("close").fault(); code != "env:Sender" || exc != string(InvalidMessageID) {
		t.Errorf("close of the message taken over: %s %s, want env:Sender InvalidMessageIDException", code, exc)
	}
	if now, _ := e.b.Submission(sub.ID); now.DeliveredVia != channel.Mailbox || len(eventsOf(t, e, sub.ID)) != len(evs) {
		t.Errorf("the refused close changed the case: delivered via %q", now.DeliveredVia)
	}
	v.Run()
}
