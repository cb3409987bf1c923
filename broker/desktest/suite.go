package desktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
)

// The offices of the suite: A holds the cases, B is the other office.
const (
	officeA = "office-a"
	officeB = "office-b"
)

// errRefused is what the suite's Admit answers when it refuses a case.
var errRefused = errors.New("desktest: the face refuses this case")

// Run runs the conformance suite against the desks h builds: one subtest per
// rule of the broker.OfficeDesk comment. Each subtest builds its own desk.
func Run(t *testing.T, h Harness) {
	t.Helper()
	s := &suite{h: h, f: h.Features()}
	t.Run("OtherOfficeIsNotFound", s.testOtherOffice)
	t.Run("ListPagesOwnCasesOldestFirst", s.testList)
	t.Run("ListTextFolds", s.testListText)
	t.Run("ListCaseNamesItsNachreichungen", s.testListCase)
	t.Run("OpeningIsThePickup", s.testOpeningIsPickup)
	t.Run("DecisionImpliesPickup", s.testDecisionImpliesPickup)
	t.Run("DecisionIsFinal", s.testDecisionIsFinal)
	t.Run("ActionsAreLogged", s.testActionsAreLogged)
	t.Run("AdmitAfterTheOfficeCheck", s.testAdmit)
	t.Run("ReadCaseReadsWholeAndPicksUp", s.testReadCase)
	t.Run("ReadCaseUnreadIsNoPickup", s.testReadCaseUnread)
	t.Run("ErasedBytesAreRemoved", s.testErased)
	t.Run("ErasedUnreadAllowsNoPickup", s.testErasedUnread)
	t.Run("ForwardedAllowsNoPickup", s.testForwarded)
	t.Run("ForwardedFetchRecordsNothing", s.testForwardedFetch)
	t.Run("ForwardedDecisionIsThePeers", s.testForwardedDecision)
	t.Run("TakeoverIsRecorded", s.testTakeoverRecorded)
	t.Run("TakenOverIsRefusedToTheSystem", s.testTakenOverRefused)
	t.Run("ReadFirstIsNoTakeover", s.testReadFirstNoTakeover)
	t.Run("FetchUnderWayAtTheTakeoverIsRecorded", s.testFetchAtTakeover)
	t.Run("ReceiptOwnOfficeOnly", s.testReceipt)
	t.Run("FetchRecordsNothingUntilRecordFetch", s.testFetch)
	t.Run("WaitingNamesWhatWaits", s.testWaiting)
	t.Run("OpenAttachmentRecordsNothing", s.testOpenAttachment)
	t.Run("ReplyStoredOnce", s.testReply)
	t.Run("RefusedReplyLeavesNoBytes", s.testRefusedReply)
	t.Run("FindReplyOwnOfficeOnly", s.testFindReply)
	t.Run("MarkProcessed", s.testMarkProcessed)
}

type suite struct {
	h Harness
	f Features
}

// newCase is a case of office with a package and one attachment, each with
// content that names n.
func newCase(office string, n int) Case {
	return Case{Office: office, Package: fmt.Appendf(nil, "<Antragspaket>%s %d</Antragspaket>", office, n),
		Attachments: []Attachment{{ID: "att-1", FileName: "nachweis.pdf", MimeType: "application/pdf", Content: fmt.Appendf(nil, "%%PDF-1.4 %d", n)}}}
}

// fixture is one desk with one case of office A handed over.
type fixture struct {
	d  Desk
	id string
	c  Case
}

func (s *suite) fixture(t *testing.T) fixture {
	t.Helper()
	d := s.h.NewDesk(t)
	if d == nil {
		t.Fatal("harness returned a nil desk")
	}
	c := newCase(officeA, 1)
	return fixture{d: d, id: d.HandOver(t, c), c: c}
}

func ctx() context.Context { return context.Background() }

// events is the event log of office A's case id.
func events(t *testing.T, d Desk, id string) []submission.Event {
	t.Helper()
	evs, err := d.Events(ctx(), officeA, id)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	// GetWithEvents reads the same log, with the record (nothing writes
	// between here).
	sub, both, err := d.GetWithEvents(ctx(), officeA, id)
	if err != nil || sub.ID != id || sub.OfficeID != officeA || len(both) != len(evs) {
		t.Fatalf("GetWithEvents: %v, %d events against Events' %d (%v)", sub, len(both), len(evs), err)
	}
	return evs
}

// record is office A's case id as the desk holds it.
func record(t *testing.T, d Desk, id string) *submission.Submission {
	t.Helper()
	sub, err := d.Get(ctx(), officeA, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if sub.ID != id || sub.OfficeID != officeA {
		t.Fatalf("Get %s of %s returned %s of %s", id, officeA, sub.ID, sub.OfficeID)
	}
	return sub
}

// unchanged fails unless the case's record and events are as before: not
// picked up, not fetched, not decided, no event more.
func unchanged(t *testing.T, d Desk, id string, before []submission.Event, what string) {
	t.Helper()
	if evs := events(t, d, id); len(evs) != len(before) {
		t.Errorf("%s recorded events %v", what, types(evs[min(len(before), len(evs)):]))
	}
	sub := record(t, d, id)
	if sub.DeliveredAt != nil || sub.State == submission.StateDelivered {
		t.Errorf("%s recorded a pickup: %s, delivered at %v", what, sub.State, sub.DeliveredAt)
	}
	if sub.FetchedAt != nil || sub.Decision != nil {
		t.Errorf("%s recorded a fetch (%v) or a decision (%+v)", what, sub.FetchedAt, sub.Decision)
	}
}

func types(evs []submission.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
		if e.Channel != "" {
			out[i] += ":" + e.Channel
		}
	}
	return out
}

func readAll(t *testing.T, rc io.ReadCloser, err error, what string) []byte {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("%s: read: %v", what, err)
	}
	return b
}

func wantErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

func (s *suite) testOtherOffice(t *testing.T) {
	f := s.fixture(t)
	before := events(t, f.d, f.id)
	// Another office's id and an id nobody has must answer alike, for every
	// call, and change nothing.
	for _, id := range []string{f.id, "no-such-case"} {
		what := func(call string) string { return fmt.Sprintf("%s of %s for %s", call, id, officeB) }
		_, err := f.d.Get(ctx(), officeB, id)
		wantErr(t, err, broker.ErrNotFound, what("Get"))
		_, err = f.d.Events(ctx(), officeB, id)
		wantErr(t, err, broker.ErrNotFound, what("Events"))
		_, _, err = f.d.GetWithEvents(ctx(), officeB, id)
		wantErr(t, err, broker.ErrNotFound, what("GetWithEvents"))
		_, _, err = f.d.OpenPackage(ctx(), officeB, id, broker.Pickup{Channel: "api", Receiver: "office B"})
		wantErr(t, err, broker.ErrNotFound, what("OpenPackage"))
		_, err = f.d.ReadCase(ctx(), officeB, id, broker.CaseRead{Max: 1 << 20, Pickup: broker.Pickup{Channel: "mailbox", Receiver: "bert"}})
		wantErr(t, err, broker.ErrNotFound, what("ReadCase"))
		_, _, err = f.d.FetchPackage(ctx(), officeB, id, "xta")
		wantErr(t, err, broker.ErrNotFound, what("FetchPackage"))
		_, err = f.d.RecordFetch(ctx(), officeB, id, "xta", time.Now())
		wantErr(t, err, broker.ErrNotFound, what("RecordFetch"))
		_, _, err = f.d.OpenAttachment(ctx(), officeB, id, "att-1", nil)
		wantErr(t, err, broker.ErrNotFound, what("OpenAttachment"))
		_, err = f.d.Receipt(ctx(), officeB, id, broker.ReceiptIntake)
		wantErr(t, err, broker.ErrNotFound, what("Receipt"))
		_, err = f.d.Confirm(ctx(), officeB, id, broker.Pickup{Channel: "xta", Receiver: "office B"})
		wantErr(t, err, broker.ErrNotFound, what("Confirm"))
		_, err = f.d.Decide(ctx(), officeB, id, broker.Decision{Outcome: broker.OutcomeAccepted, Actor: "office B", Channel: "api"})
		wantErr(t, err, broker.ErrNotFound, what("Decide"))
		_, err = f.d.MarkProcessed(ctx(), officeB, id, true, "bert", "mailbox")
		wantErr(t, err, broker.ErrNotFound, what("MarkProcessed"))
		_, err = f.d.Reply(ctx(), officeB, id, broker.ReplyIn{Kind: "Bescheid", MessageID: "b-1", ContentType: "text/plain", Content: []byte("x"), Actor: "bert", Channel: "api"})
		wantErr(t, err, broker.ErrNotFound, what("Reply"))
		_, _, err = f.d.OpenReply(ctx(), officeB, id, "r-1")
		wantErr(t, err, broker.ErrNotFound, what("OpenReply"))
	}
	// No office is no office.
	_, err := f.d.Get(ctx(), "", f.id)
	wantErr(t, err, broker.ErrNotFound, "Get without an office")
	p, err := f.d.List(ctx(), officeB, broker.ListQuery{})
	if err != nil || len(p.Items) != 0 {
		t.Errorf("List of %s: %d items (%v), want none", officeB, len(p.Items), err)
	}
	w, err := f.d.Waiting(ctx(), officeB)
	if err != nil || len(w) != 0 {
		t.Errorf("Waiting of %s: %v (%v), want none", officeB, w, err)
	}
	unchanged(t, f.d, f.id, before, "another office's calls")
}

func (s *suite) testList(t *testing.T) {
	d := s.h.NewDesk(t)
	var ids []string
	for i := range 3 {
		ids = append(ids, d.HandOver(t, newCase(officeA, i)))
		d.HandOver(t, newCase(officeB, i))
	}
	var got []string
	q := broker.ListQuery{Limit: 2}
	for range 5 {
		p, err := d.List(ctx(), officeA, q)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		for _, sub := range p.Items {
			if sub.OfficeID != officeA {
				t.Errorf("List of %s shows %s of %s", officeA, sub.ID, sub.OfficeID)
			}
			got = append(got, sub.ID)
		}
		if p.Next == "" {
			break
		}
		q.After = p.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Errorf("List pages of 2: %v, want %v (the office's own, oldest first)", got, ids)
	}
}

// testListText: ListQuery.Text finds the office's cases by place or service
// also as people type them — without umlauts or ß ("Goerlitz", "Strasse" find
// Görlitz, Straße: docs/mailbox.md, "Suche"), in any letter case, decomposed
// (NFD, as macOS sends it) — and only the office's own.
func (s *suite) testListText(t *testing.T) {
	d := s.h.NewDesk(t)
	goerlitz, strasse, plain := newCase(officeA, 1), newCase(officeA, 2), newCase(officeA, 3)
	goerlitz.Place = "Görlitz"
	strasse.Service = "Sondernutzung öffentlicher Straßen"
	idG, idS, idP := d.HandOver(t, goerlitz), d.HandOver(t, strasse), d.HandOver(t, plain)
	other := newCase(officeB, 4)
	other.Place = "Görlitz"
	d.HandOver(t, other)
	// A Nachreichung to the plain case is found by that case's id, with it:
	// the clerk searches a case number and finds what came in for it since.
	nach := newCase(officeA, 5)
	nach.CaseID = idP
	idN := d.HandOver(t, nach)
	for _, c := range []struct {
		text string
		want []string
	}{
		{"Görlitz", []string{idG}},
		{"GÖRLITZ", []string{idG}},
		{"Goerlitz", []string{idG}},
		{"gorlitz", []string{idG}},
		{"Go\u0308rlitz", []string{idG}},
		{"Straße", []string{idS}},
		{"Strasse", []string{idS}},
		{"oeffentlicher strassen", []string{idS}},
		{"Leipzig", nil},
		{idP, []string{idP, idN}},
		{"", []string{idG, idS, idP, idN}},
	} {
		p, err := d.List(ctx(), officeA, broker.ListQuery{Text: c.text})
		if err != nil {
			t.Fatalf("List %q: %v", c.text, err)
		}
		var got []string
		for _, sub := range p.Items {
			got = append(got, sub.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("List of %s with text %q: %v, want %v", officeA, c.text, got, c.want)
		}
	}
}

// testListCase: ListQuery.Case lists the Nachreichungen to a case, oldest
// first, in pages — the office's own only (one routed to another office is
// that office's), not the case itself, not another case's — with the other
// fields applied too.
func (s *suite) testListCase(t *testing.T) {
	d := s.h.NewDesk(t)
	idC := d.HandOver(t, newCase(officeA, 1))
	idOther := d.HandOver(t, newCase(officeA, 2))
	nachreichung := func(office string, n int, caseID string) string {
		c := newCase(office, n)
		c.CaseID = caseID
		return d.HandOver(t, c)
	}
	n1 := nachreichung(officeA, 3, idC)
	nachreichung(officeA, 4, idOther)
	atB := nachreichung(officeB, 5, idC)
	n2 := nachreichung(officeA, 6, idC)
	n3 := nachreichung(officeA, 7, idC)
	list := func(office string, q broker.ListQuery) ([]string, string) {
		t.Helper()
		p, err := d.List(ctx(), office, q)
		if err != nil {
			t.Fatalf("List %+v: %v", q, err)
		}
		var got []string
		for _, sub := range p.Items {
			got = append(got, sub.ID)
		}
		return got, p.Next
	}
	for _, c := range []struct {
		office string
		q      broker.ListQuery
		want   []string
	}{
		{officeA, broker.ListQuery{Case: idC}, []string{n1, n2, n3}},
		{officeB, broker.ListQuery{Case: idC}, []string{atB}},
		{officeA, broker.ListQuery{Case: n1}, nil},
		{officeA, broker.ListQuery{Case: "no-such-case"}, nil},
		{officeA, broker.ListQuery{Case: idC, After: n1}, []string{n2, n3}},
		{officeA, broker.ListQuery{Case: idC, States: []submission.State{submission.StateDelivered}}, nil},
	} {
		if got, _ := list(c.office, c.q); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("List of %s with %+v: %v, want %v", c.office, c.q, got, c.want)
		}
	}
	got, next := list(officeA, broker.ListQuery{Case: idC, Limit: 2})
	if fmt.Sprint(got) != fmt.Sprint([]string{n1, n2}) || next != n2 {
		t.Errorf("first page of 2: %v, next %q; want [%s %s], next %q", got, next, n1, n2, n2)
	}
	// Picked up, a Nachreichung is still listed, and listed as delivered.
	if _, err := d.Confirm(ctx(), officeA, n2, broker.Pickup{Channel: "mailbox", Receiver: "anna"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := list(officeA, broker.ListQuery{Case: idC, States: []submission.State{submission.StateDelivered}}); fmt.Sprint(got) != fmt.Sprint([]string{n2}) {
		t.Errorf("delivered Nachreichungen: %v, want [%s]", got, n2)
	}
}

func (s *suite) testOpeningIsPickup(t *testing.T) {
	f := s.fixture(t)
	sub, rc, err := f.d.OpenPackage(ctx(), officeA, f.id, broker.Pickup{Channel: "api", Receiver: "office A (pull API)"})
	if got := readAll(t, rc, err, "OpenPackage"); !bytes.Equal(got, f.c.Package) {
		t.Errorf("OpenPackage: %q, want the package %q", got, f.c.Package)
	}
	if sub.State != submission.StateDelivered || sub.DeliveredAt == nil {
		t.Errorf("OpenPackage returned %s, delivered at %v: want delivered", sub.State, sub.DeliveredAt)
	}
	if now := record(t, f.d, f.id); now.State != submission.StateDelivered || now.DeliveredAt == nil {
		t.Errorf("after OpenPackage the case is %s, delivered at %v: want delivered", now.State, now.DeliveredAt)
	}
	evs := events(t, f.d, f.id)
	if got := submission.OfType(evs, submission.EventDelivered); len(got) != 1 || got[0].Channel != "api" {
		t.Errorf("after OpenPackage: delivered events %+v, want one on api", got)
	}
	// Opening again, and a confirmation after it, are no second pickup.
	_, rc, err = f.d.OpenPackage(ctx(), officeA, f.id, broker.Pickup{Channel: "mailbox", Receiver: "anna"})
	readAll(t, rc, err, "OpenPackage again")
	if _, err := f.d.Confirm(ctx(), officeA, f.id, broker.Pickup{Channel: "xta", Receiver: "office A (XTA)"}); err != nil {
		t.Errorf("Confirm after the pickup: %v", err)
	}
	if after := events(t, f.d, f.id); len(after) != len(evs) {
		t.Errorf("a second pickup recorded %v", types(after[len(evs):]))
	}
	// Confirm is a pickup on its own.
	g := s.fixture(t)
	sub, err = g.d.Confirm(ctx(), officeA, g.id, broker.Pickup{Channel: "xta", Receiver: "office A (XTA)"})
	if err != nil || sub.State != submission.StateDelivered || sub.DeliveredAt == nil {
		t.Errorf("Confirm: %v, %+v: want delivered", err, sub)
	}
}

var decisionA = broker.Decision{Outcome: broker.OutcomeRejected, Reason: "unvollständig", Actor: "office A system", Channel: "api"}

func (s *suite) testDecisionImpliesPickup(t *testing.T) {
	f := s.fixture(t)
	sub, err := f.d.Decide(ctx(), officeA, f.id, decisionA)
	if err != nil {
		t.Fatalf("Decide on a case not picked up: %v", err)
	}
	if sub.DeliveredAt == nil || sub.Decision == nil || sub.Decision.Outcome != broker.OutcomeRejected || sub.State != submission.StateRejected {
		t.Errorf("Decide returned %s, delivered at %v, decision %+v: want picked up and rejected", sub.State, sub.DeliveredAt, sub.Decision)
	}
	now := record(t, f.d, f.id)
	if now.DeliveredAt == nil || now.State != submission.StateRejected {
		t.Errorf("after Decide the case is %s, delivered at %v: want picked up and rejected", now.State, now.DeliveredAt)
	}
	evs := events(t, f.d, f.id)
	got := types(evs)
	iDel, iDec := -1, -1
	for i, e := range evs {
		switch e.Type {
		case submission.EventDelivered:
			iDel = i
		case submission.EventRejected:
			iDec = i
		}
	}
	if iDel < 0 || iDec < 0 || iDel > iDec || evs[iDel].Channel != "api" {
		t.Errorf("events %v: want the pickup on api, then the decision", got)
	}
}

func (s *suite) testDecisionIsFinal(t *testing.T) {
	f := s.fixture(t)
	// An outcome the desk does not know is refused before the pickup.
	before := events(t, f.d, f.id)
	_, err := f.d.Decide(ctx(), officeA, f.id, broker.Decision{Outcome: "maybe", Actor: "office A system", Channel: "api"})
	wantErr(t, err, broker.ErrConflict, "Decide with an unknown outcome")
	unchanged(t, f.d, f.id, before, "a decision with an unknown outcome")

	if _, err := f.d.Decide(ctx(), officeA, f.id, decisionA); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	decided := record(t, f.d, f.id)
	evs := events(t, f.d, f.id)
	again := decisionA
	again.Reason, again.Actor, again.Channel = "noch einmal", "anna", "mailbox"
	if _, err := f.d.Decide(ctx(), officeA, f.id, again); err != nil {
		t.Errorf("the same decision again: %v, want no error", err)
	}
	other := decisionA
	other.Outcome = broker.OutcomeAccepted
	_, err = f.d.Decide(ctx(), officeA, f.id, other)
	wantErr(t, err, broker.ErrConflict, "another decision")
	if after := events(t, f.d, f.id); len(after) != len(evs) {
		t.Errorf("a repeated or other decision recorded %v", types(after[len(evs):]))
	}
	now := record(t, f.d, f.id)
	if now.State != submission.StateRejected || now.Decision == nil || *now.Decision != *decided.Decision {
		t.Errorf("after a repeat and another decision: %s, %+v; want the first decision %+v", now.State, now.Decision, decided.Decision)
	}
}

// names: the event names who acted, in its actor or (a pickup's receiver)
// in its detail.
func names(e submission.Event, actor string) bool {
	return e.Actor == actor || strings.Contains(e.Detail, actor)
}

func (s *suite) testActionsAreLogged(t *testing.T) {
	f := s.fixture(t)
	last := func(what string, n int) []submission.Event {
		t.Helper()
		evs := events(t, f.d, f.id)
		if len(evs) < n {
			t.Fatalf("%s: %d events, want at least %d", what, len(evs), n)
		}
		return evs[len(evs)-n:]
	}
	before := len(events(t, f.d, f.id))
	if _, err := f.d.RecordFetch(ctx(), officeA, f.id, "xta", time.Now()); err != nil {
		t.Fatalf("RecordFetch: %v", err)
	}
	if e := last("RecordFetch", 1)[0]; len(events(t, f.d, f.id)) != before+1 || e.Type != submission.EventFetched || e.Channel != "xta" {
		t.Errorf("RecordFetch logged %+v, want one fetched event on xta", e)
	}
	if _, err := f.d.Confirm(ctx(), officeA, f.id, broker.Pickup{Channel: "mailbox", Receiver: "user anna (mailbox)"}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	if e := last("Confirm", 1)[0]; e.Type != submission.EventDelivered || e.Channel != "mailbox" || !names(e, "user anna (mailbox)") {
		t.Errorf("the pickup logged %+v, want delivered on mailbox naming its receiver", e)
	}
	if _, err := f.d.Decide(ctx(), officeA, f.id, broker.Decision{Outcome: broker.OutcomeAccepted, Actor: "anna", Channel: "mailbox"}); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if e := last("Decide", 1)[0]; e.Type != submission.EventAccepted || e.Actor != "anna" || e.Channel != "mailbox" {
		t.Errorf("the decision logged %+v, want accepted by anna on mailbox", e)
	}
	if _, err := f.d.MarkProcessed(ctx(), officeA, f.id, true, "anna", "mailbox"); err != nil {
		t.Fatalf("MarkProcessed: %v", err)
	}
	if e := last("MarkProcessed", 1)[0]; e.Type != submission.EventProcessed || e.Actor != "anna" || e.Channel != "mailbox" {
		t.Errorf("MarkProcessed logged %+v, want processed by anna on mailbox", e)
	}
	if _, err := f.d.Reply(ctx(), officeA, f.id, broker.ReplyIn{Kind: "Bescheid", MessageID: "m-1", ContentType: "text/plain", Content: []byte("Bescheid"), Actor: "office A system", Channel: "api"}); err != nil {
		t.Fatalf("Reply: %v", err)
	}
	if e := last("Reply", 1)[0]; e.Type != submission.EventReplied || e.Actor != "office A system" || e.Channel != "api" {
		t.Errorf("Reply logged %+v, want replied by the office's system on api", e)
	}
	for _, e := range events(t, f.d, f.id) {
		if e.SubmissionID != "" && e.SubmissionID != f.id {
			t.Errorf("event %+v names another case", e)
		}
	}
}

// admitCall counts an Admit's calls and remembers the record it was asked on.
type admitCall struct {
	calls int
	seen  *submission.Submission
	err   error
}

func (a *admitCall) admit(s *submission.Submission) error {
	a.calls++
	a.seen = s
	return a.err
}

func (s *suite) testAdmit(t *testing.T) {
	f := s.fixture(t)
	before := events(t, f.d, f.id)
	calls := map[string]func(office string, admit broker.Admit) error{
		"OpenPackage": func(office string, admit broker.Admit) error {
			_, rc, err := f.d.OpenPackage(ctx(), office, f.id, broker.Pickup{Channel: "mailbox", Receiver: "anna", Admit: admit})
			if rc != nil {
				rc.Close()
			}
			return err
		},
		"ReadCase": func(office string, admit broker.Admit) error {
			_, err := f.d.ReadCase(ctx(), office, f.id, broker.CaseRead{Max: 1 << 20, Pickup: broker.Pickup{Channel: "mailbox", Receiver: "anna", Admit: admit}})
			return err
		},
		"Confirm": func(office string, admit broker.Admit) error {
			_, err := f.d.Confirm(ctx(), office, f.id, broker.Pickup{Channel: "mailbox", Receiver: "anna", Admit: admit})
			return err
		},
		"Decide": func(office string, admit broker.Admit) error {
			_, err := f.d.Decide(ctx(), office, f.id, broker.Decision{Outcome: broker.OutcomeAccepted, Actor: "anna", Channel: "mailbox", Admit: admit})
			return err
		},
		"Decide with an unknown outcome": func(office string, admit broker.Admit) error {
			// Admit is asked before the outcome is checked.
			_, err := f.d.Decide(ctx(), office, f.id, broker.Decision{Outcome: "maybe", Actor: "anna", Channel: "mailbox", Admit: admit})
			return err
		},
		"OpenAttachment": func(office string, admit broker.Admit) error {
			_, rc, err := f.d.OpenAttachment(ctx(), office, f.id, "att-1", admit)
			if rc != nil {
				rc.Close()
			}
			return err
		},
	}
	for name, call := range calls {
		other := &admitCall{}
		wantErr(t, call(officeB, other.admit), broker.ErrNotFound, name+" of another office")
		if other.calls != 0 {
			t.Errorf("%s of another office asked Admit: it must answer ErrNotFound first", name)
		}
		refuse := &admitCall{err: fmt.Errorf("mailbox rule: %w", errRefused)}
		wantErr(t, call(officeA, refuse.admit), errRefused, name+" refused by Admit")
		if refuse.calls != 1 || refuse.seen == nil || refuse.seen.ID != f.id {
			t.Errorf("%s asked Admit %d times on %+v, want once on the case's record", name, refuse.calls, refuse.seen)
		}
		unchanged(t, f.d, f.id, before, name+" refused by Admit")
	}
	// Admitted, the action goes on.
	ok := &admitCall{}
	if _, err := f.d.Decide(ctx(), officeA, f.id, broker.Decision{Outcome: broker.OutcomeAccepted, Actor: "anna", Channel: "mailbox", Admit: ok.admit}); err != nil || ok.calls != 1 {
		t.Errorf("Decide admitted: %v, Admit asked %d times, want once", err, ok.calls)
	}
}

func (s *suite) testReadCase(t *testing.T) {
	f := s.fixture(t)
	before := events(t, f.d, f.id)
	pickup := broker.Pickup{Channel: "mailbox", Receiver: "user anna (mailbox)"}
	// Open saying no: the record and the events, no package, no pickup.
	asked := 0
	c, err := f.d.ReadCase(ctx(), officeA, f.id, broker.CaseRead{Max: 1 << 20, Pickup: pickup,
		Open: func(sub *submission.Submission) bool { asked++; return false }})
	if err != nil || c.Package != nil || c.Unread != nil || c.Sub == nil || c.Sub.ID != f.id || len(c.Events) != len(before) || asked != 1 {
		t.Fatalf("ReadCase that Open leaves: %+v, %v (Open asked %d times)", c, err, asked)
	}
	unchanged(t, f.d, f.id, before, "ReadCase that Open leaves")
	// Read whole: the package byte for byte, the pickup, the events after it.
	c, err = f.d.ReadCase(ctx(), officeA, f.id, broker.CaseRead{Max: int64(len(f.c.Package)), Pickup: pickup})
	if err != nil {
		t.Fatalf("ReadCase: %v", err)
	}
	if !bytes.Equal(c.Package, f.c.Package) || c.Unread != nil {
		t.Errorf("ReadCase: package %q, unread %v; want %q", c.Package, c.Unread, f.c.Package)
	}
	if c.Sub.DeliveredAt == nil || c.Sub.State != submission.StateDelivered {
		t.Errorf("ReadCase's record is %s, delivered at %v: want picked up", c.Sub.State, c.Sub.DeliveredAt)
	}
	if len(c.Events) == 0 || c.Events[len(c.Events)-1].Type != submission.EventDelivered || c.Events[len(c.Events)-1].Channel != "mailbox" {
		t.Errorf("ReadCase's events %v: want them read after the pickup, ending with it", types(c.Events))
	}
	if now := record(t, f.d, f.id); now.DeliveredAt == nil {
		t.Error("ReadCase's pickup is not kept")
	}
}

func (s *suite) testReadCaseUnread(t *testing.T) {
	pickup := broker.Pickup{Channel: "mailbox", Receiver: "user anna (mailbox)"}
	f := s.fixture(t)
	before := events(t, f.d, f.id)
	c, err := f.d.ReadCase(ctx(), officeA, f.id, broker.CaseRead{Max: int64(len(f.c.Package)) - 1, Pickup: pickup})
	if err != nil || !errors.Is(c.Unread, broker.ErrTooLarge) || c.Package != nil || c.Sub == nil || c.Sub.ID != f.id {
		t.Errorf("ReadCase of a package larger than Max: %+v, %v; want the record, Unread ErrTooLarge", c, err)
	}
	unchanged(t, f.d, f.id, before, "ReadCase of a package larger than Max")

	d := s.h.NewDesk(t)
	damaged := newCase(officeA, 2)
	damaged.Damaged = true
	id := d.HandOver(t, damaged)
	before = events(t, d, id)
	c, err = d.ReadCase(ctx(), officeA, id, broker.CaseRead{Max: 1 << 20, Pickup: pickup})
	if err != nil || !errors.Is(c.Unread, broker.ErrUnreadable) || c.Package != nil || c.Sub == nil || c.Sub.ID != id {
		t.Errorf("ReadCase of bytes that end early: %+v, %v; want the record, Unread ErrUnreadable", c, err)
	}
	unchanged(t, d, id, before, "ReadCase of bytes that end early")
}

// closeIf closes what a call that should have failed opened anyway.
func closeIf(rc io.ReadCloser) {
	if rc != nil {
		rc.Close()
	}
}

func (s *suite) testErased(t *testing.T) {
	f := s.fixture(t)
	f.d.Erase(t, f.id)
	if sub := record(t, f.d, f.id); sub.BytesRemovedAt == nil {
		t.Fatalf("Erase left case %s with its bytes", f.id)
	}
	before := events(t, f.d, f.id)
	pickup := broker.Pickup{Channel: "mailbox", Receiver: "user anna (mailbox)"}
	_, rc, err := f.d.OpenPackage(ctx(), officeA, f.id, pickup)
	closeIf(rc)
	wantErr(t, err, broker.ErrBytesRemoved, "OpenPackage of an erased case")
	_, rc, err = f.d.FetchPackage(ctx(), officeA, f.id, "xta")
	closeIf(rc)
	wantErr(t, err, broker.ErrBytesRemoved, "FetchPackage of an erased case")
	c, err := f.d.ReadCase(ctx(), officeA, f.id, broker.CaseRead{Max: 1 << 20, Pickup: pickup})
	if err != nil || !errors.Is(c.Unread, broker.ErrBytesRemoved) || c.Package != nil || c.Sub == nil || c.Sub.ID != f.id || len(c.Events) != len(before) {
		t.Errorf("ReadCase of an erased case: %+v, %v; want the record and its events, Unread ErrBytesRemoved", c, err)
	}
	// The attachments went with the package: the record still names them, so a
	// name it has is removed, and only one it never had is not found.
	_, rc, err = f.d.OpenAttachment(ctx(), officeA, f.id, "att-1", nil)
	closeIf(rc)
	wantErr(t, err, broker.ErrBytesRemoved, "OpenAttachment of an erased case")
	_, rc, err = f.d.OpenAttachment(ctx(), officeA, f.id, "no-such-attachment", nil)
	closeIf(rc)
	wantErr(t, err, broker.ErrNotFound, "OpenAttachment of an id the erased case never had")
	unchanged(t, f.d, f.id, before, "reading an erased case")
	// Erased is still another office's case: ErrNotFound, not that it was erased.
	_, rc, err = f.d.FetchPackage(ctx(), officeB, f.id, "xta")
	closeIf(rc)
	wantErr(t, err, broker.ErrNotFound, "FetchPackage of another office's erased case")

	// The replies go too, and a new one nobody could read is not taken.
	g := s.replied(t)
	in := broker.ReplyIn{Kind: "Bescheid", MessageID: "bescheid-1", ContentType: "application/xml", Content: []byte("<Bescheid/>"), Actor: "office A system", Channel: "xta"}
	r, err := g.d.Reply(ctx(), officeA, g.id, in)
	if err != nil {
		t.Fatalf("Reply: %v", err)
	}
	g.d.Erase(t, g.id)
	before = events(t, g.d, g.id)
	_, rc, err = g.d.OpenReply(ctx(), officeA, g.id, r.ID)
	closeIf(rc)
	wantErr(t, err, broker.ErrBytesRemoved, "OpenReply of an erased case")
	_, rc, err = g.d.OpenReply(ctx(), officeA, g.id, "no-such-reply")
	closeIf(rc)
	wantErr(t, err, broker.ErrNotFound, "OpenReply of an id the erased case never had")
	if again, err := g.d.Reply(ctx(), officeA, g.id, in); err != nil || again.ID != r.ID {
		t.Errorf("a repeat of a reply to an erased case: %+v, %v; want the reply stored first, %s", again, err, r.ID)
	}
	in.MessageID = "bescheid-2"
	_, err = g.d.Reply(ctx(), officeA, g.id, in)
	wantErr(t, err, broker.ErrBytesRemoved, "a new Reply to an erased case")
	if after := events(t, g.d, g.id); len(after) != len(before) {
		t.Errorf("replies to an erased case recorded %v", types(after[len(before):]))
	}
	if sub := record(t, g.d, g.id); len(sub.Replies) != 1 {
		t.Errorf("the erased case holds replies %+v, want only the one stored before", sub.Replies)
	}
}

func (s *suite) testErasedUnread(t *testing.T) {
	f := s.fixture(t)
	f.d.Erase(t, f.id)
	before := events(t, f.d, f.id)
	// The office cannot have what it never read: a pickup would sign a
	// Zustellbestaetigung for an application no office had.
	both := func(err error, what string) {
		t.Helper()
		if !errors.Is(err, broker.ErrConflict) || !errors.Is(err, broker.ErrBytesRemoved) {
			t.Errorf("%s: %v, want ErrConflict and ErrBytesRemoved", what, err)
		}
	}
	_, err := f.d.Confirm(ctx(), officeA, f.id, broker.Pickup{Channel: "xta", Receiver: "office A (XTA)"})
	both(err, "Confirm of a case erased before the office read it")
	_, err = f.d.Decide(ctx(), officeA, f.id, decisionA)
	both(err, "Decide of a case erased before the office read it")
	unchanged(t, f.d, f.id, before, "taking a case erased before the office read it")

	// Read once by the office's system, the case was the office's: its
	// confirmation after the erasure is still the pickup.
	g := s.fixture(t)
	if _, err := g.d.RecordFetch(ctx(), officeA, g.id, "xta", time.Now()); err != nil {
		t.Fatalf("RecordFetch: %v", err)
	}
	g.d.Erase(t, g.id)
	if sub, err := g.d.Confirm(ctx(), officeA, g.id, broker.Pickup{Channel: "xta", Receiver: "office A (XTA)"}); err != nil || sub.DeliveredAt == nil {
		t.Errorf("Confirm of a case erased after its fetch: %+v, %v; want delivered", sub, err)
	}
}

func (s *suite) testForwarded(t *testing.T) {
	f := s.fixture(t)
	f.d.Forward(t, f.id)
	if sub := record(t, f.d, f.id); sub.State != submission.StateForwarded {
		t.Fatalf("Forward left case %s %s", f.id, sub.State)
	}
	before := events(t, f.d, f.id)
	pickup := broker.Pickup{Channel: "mailbox", Receiver: "user anna (mailbox)"}
	c, err := f.d.ReadCase(ctx(), officeA, f.id, broker.CaseRead{Max: 1 << 20, Pickup: pickup})
	if err != nil || !errors.Is(c.Unread, broker.ErrConflict) || c.Package != nil || c.Sub == nil || c.Sub.ID != f.id || len(c.Events) != len(before) {
		t.Errorf("ReadCase of a forwarded case: %+v, %v; want the record and its events, Unread ErrConflict", c, err)
	}
	_, rc, err := f.d.OpenPackage(ctx(), officeA, f.id, pickup)
	closeIf(rc)
	wantErr(t, err, broker.ErrConflict, "OpenPackage of a forwarded case")
	_, err = f.d.Confirm(ctx(), officeA, f.id, pickup)
	wantErr(t, err, broker.ErrConflict, "Confirm of a forwarded case")
	_, err = f.d.Decide(ctx(), officeA, f.id, broker.Decision{Outcome: broker.OutcomeAccepted, Actor: "anna", Channel: "mailbox"})
	wantErr(t, err, broker.ErrConflict, "Decide of a forwarded case")
	unchanged(t, f.d, f.id, before, "taking a forwarded case")
	if sub := record(t, f.d, f.id); sub.State != submission.StateForwarded {
		t.Errorf("taking a forwarded case moved it to %s", sub.State)
	}
}

// testForwardedFetch: FetchPackage of a forwarded case hands out its bytes
// and records nothing — no pickup, no fetch, no event — before the peer
// reports that its office has the case and after: the delivery stays the
// peer's, one delivered event by channel peer. Nor does RecordFetch, which
// the XTA face calls once the bytes are out (getMessage): it recorded
// FetchedAt and a fetched event, since the fetch's transition asked no state.
func (s *suite) testForwardedFetch(t *testing.T) {
	f := s.fixture(t)
	f.d.Forward(t, f.id)
	fetch := func(when string) {
		t.Helper()
		before, was := events(t, f.d, f.id), record(t, f.d, f.id)
		_, rc, err := f.d.FetchPackage(ctx(), officeA, f.id, "xta")
		if got := readAll(t, rc, err, "FetchPackage of a forwarded case "+when); !bytes.Equal(got, f.c.Package) {
			t.Errorf("FetchPackage of a forwarded case %s: %q, want the package %q", when, got, f.c.Package)
		}
		// Not an error: the face sent the bytes, which it may, and a refusal
		// here is logged as a fetch that could not be recorded.
		if sub, err := f.d.RecordFetch(ctx(), officeA, f.id, "xta", time.Now()); err != nil || sub == nil || sub.FetchedAt != nil {
			var fetched *time.Time
			if sub != nil {
				fetched = sub.FetchedAt
			}
			t.Errorf("RecordFetch of a forwarded case %s: fetched at %v, %v; want the record, not fetched, and no error", when, fetched, err)
		}
		if after := events(t, f.d, f.id); len(after) != len(before) {
			t.Errorf("FetchPackage of a forwarded case %s recorded %v", when, types(after[len(before):]))
		}
		now := record(t, f.d, f.id)
		if now.State != was.State || now.FetchedAt != nil || (now.DeliveredAt == nil) != (was.DeliveredAt == nil) ||
			now.DeliveredAt != nil && !now.DeliveredAt.Equal(*was.DeliveredAt) || now.DeliveryChannel() != was.DeliveryChannel() {
			t.Errorf("FetchPackage of a forwarded case %s changed it from %s (delivered at %v by %q) to %s (delivered at %v by %q, fetched at %v)",
				when, was.State, was.DeliveredAt, was.DeliveryChannel(), now.State, now.DeliveredAt, now.DeliveryChannel(), now.FetchedAt)
		}
	}
	fetch("before the peer's delivery")
	f.d.PeerDelivered(t, f.id)
	if sub := record(t, f.d, f.id); sub.DeliveredAt == nil || sub.DeliveryChannel() != "peer" {
		t.Fatalf("PeerDelivered left case %s %s, delivered at %v by %q", f.id, sub.State, sub.DeliveredAt, sub.DeliveryChannel())
	}
	fetch("after the peer's delivery")
	if got := submission.OfType(events(t, f.d, f.id), submission.EventDelivered); len(got) != 1 || got[0].Channel != "peer" {
		t.Errorf("delivered events %+v, want the peer's one", got)
	}
}

// testForwardedDecision: a forwarded case is decided by the peer's report
// alone. Once the peer reported that its office has it, the case is delivered
// (by channel peer), and a decision through a face here was recorded: it went
// to the portal as the office's answer while the office at the peer decides
// on its own. It is ErrConflict now and records nothing, before the peer's
// decision and after it (also of the same outcome: no face here decided),
// and the peer's decision is still recorded.
func (s *suite) testForwardedDecision(t *testing.T) {
	f := s.fixture(t)
	f.d.Forward(t, f.id)
	f.d.PeerDelivered(t, f.id)
	local := []broker.Decision{decisionA, {Outcome: broker.OutcomeAccepted, Actor: "anna", Channel: channel.Mailbox}}
	refused := func(when string) {
		t.Helper()
		before, was := events(t, f.d, f.id), record(t, f.d, f.id)
		for _, dec := range local {
			_, err := f.d.Decide(ctx(), officeA, f.id, dec)
			wantErr(t, err, broker.ErrConflict, fmt.Sprintf("Decide %s on %s of a forwarded case %s", dec.Outcome, dec.Channel, when))
		}
		if after := events(t, f.d, f.id); len(after) != len(before) {
			t.Errorf("local decisions of a forwarded case %s recorded %v", when, types(after[len(before):]))
		}
		now := record(t, f.d, f.id)
		if now.State != was.State || (now.Decision == nil) != (was.Decision == nil) || now.Decision != nil && *now.Decision != *was.Decision {
			t.Errorf("local decisions of a forwarded case %s changed it from %s %+v to %s %+v", when, was.State, was.Decision, now.State, now.Decision)
		}
	}
	refused("after the peer's delivery")
	if sub := record(t, f.d, f.id); sub.State != submission.StateDelivered || sub.Decision != nil || sub.DeliveryChannel() != "peer" {
		t.Fatalf("after the peer's delivery the case is %s by %q, decision %+v", sub.State, sub.DeliveryChannel(), sub.Decision)
	}
	f.d.PeerDecided(t, f.id, broker.OutcomeAccepted)
	if sub := record(t, f.d, f.id); sub.State != submission.StateAccepted || sub.Decision == nil || sub.Decision.Outcome != broker.OutcomeAccepted {
		t.Fatalf("the peer's decision left the case %s, decision %+v", sub.State, sub.Decision)
	}
	if got := submission.OfType(events(t, f.d, f.id), submission.EventAccepted); len(got) != 1 {
		t.Errorf("accepted events %v, want the peer's one", types(got))
	}
	refused("after the peer's decision")
}

// bound is a desk with one case of office A handed over on its way to the
// office's system on ch (Case.Channel).
func (s *suite) bound(t *testing.T, ch string) fixture {
	t.Helper()
	d := s.h.NewDesk(t)
	c := newCase(officeA, 1)
	c.Channel = ch
	return fixture{d: d, id: d.HandOver(t, c), c: c}
}

// takenOver says of a record returned whether it names a takeover, for a
// failure's message.
func takenOver(sub *submission.Submission) string {
	switch {
	case sub == nil:
		return "no record"
	case sub.TakenOverFrom == "":
		return "a record that names no takeover"
	}
	return "a record taken over from " + sub.TakenOverFrom
}

// clerk is a clerk's pickup in the web mailbox; system the office system's
// through the pull API.
var (
	clerk  = broker.Pickup{Channel: channel.Mailbox, Receiver: "user anna (mailbox)"}
	system = broker.Pickup{Channel: channel.API, Receiver: "office A (pull API)"}
)

// takeOver is the clerk's takeover of f's case as the mailbox makes it
// ("Eingang hier übernehmen und öffnen": OpenPackage on the mailbox's channel).
func takeOver(t *testing.T, f fixture) *submission.Submission {
	t.Helper()
	sub, rc, err := f.d.OpenPackage(ctx(), officeA, f.id, clerk)
	if got := readAll(t, rc, err, "the clerk's takeover"); !bytes.Equal(got, f.c.Package) {
		t.Errorf("the clerk's takeover opened %q, want the package %q", got, f.c.Package)
	}
	return sub
}

// testTakeoverRecorded: a clerk's pickup in the mailbox of a case on its way
// to the office's system is the takeover, and the record says so — taken over
// from that system's channel (TakenOverFrom), delivered by the mailbox, with
// one delivered event that names the clerk and says "taken over" — by the
// mailbox's download and by its confirmation alike.
func (s *suite) testTakeoverRecorded(t *testing.T) {
	check := func(f fixture, before []submission.Event, sub *submission.Submission, from, how string) {
		t.Helper()
		if sub == nil || sub.TakenOverFrom != from {
			t.Errorf("%s of a case on its way to %s returned %s; want it taken over from %s", how, from, takenOver(sub), from)
		}
		now := record(t, f.d, f.id)
		if now.TakenOverFrom != from || now.DeliveredAt == nil || now.DeliveryChannel() != channel.Mailbox || now.State != submission.StateDelivered {
			t.Errorf("after %s: %s, delivered at %v by %q, taken over from %q; want delivered by the mailbox, taken over from %s",
				how, now.State, now.DeliveredAt, now.DeliveryChannel(), now.TakenOverFrom, from)
		}
		evs := events(t, f.d, f.id)
		added := evs[min(len(before), len(evs)):]
		if len(added) != 1 || added[0].Type != submission.EventDelivered || added[0].Channel != channel.Mailbox ||
			!names(added[0], clerk.Receiver) || !strings.Contains(added[0].Note, "taken over") {
			t.Errorf("%s recorded %+v; want one delivered event on the mailbox that names %q and says it was taken over", how, added, clerk.Receiver)
		}
	}
	for _, ch := range []string{channel.API, channel.XTA, channel.Webhook} {
		f := s.bound(t, ch)
		before := events(t, f.d, f.id)
		check(f, before, takeOver(t, f), ch, "the mailbox's download")
	}
	f := s.bound(t, channel.API)
	before := events(t, f.d, f.id)
	sub, err := f.d.Confirm(ctx(), officeA, f.id, clerk)
	if err != nil {
		t.Fatalf("the mailbox's confirmation: %v", err)
	}
	check(f, before, sub, channel.API, "the mailbox's confirmation")
}

// testTakenOverRefused: a case a clerk took over is hers. The office's system
// picks it up no more — OpenPackage, FetchPackage (XTA getMessage), Confirm
// and Decide through its channels are ErrConflict and
// submission.ErrTakenOver — nor replies to it (Reply refused so too: the
// clerk answers the applicant, and the system's reply would reach them beside
// hers), and nothing is recorded or stored. The
// mailbox's own channel goes on: it opens, reads and decides the case, and
// the system's decision after the clerk's is refused as taken over still, not
// as a second decision or a repeat.
func (s *suite) testTakenOverRefused(t *testing.T) {
	f := s.bound(t, channel.API)
	takeOver(t, f)
	before, was := events(t, f.d, f.id), record(t, f.d, f.id)
	both := func(err error, what string) {
		t.Helper()
		if !errors.Is(err, broker.ErrConflict) || !errors.Is(err, submission.ErrTakenOver) {
			t.Errorf("%s of a case a clerk took over: %v, want ErrConflict and submission.ErrTakenOver", what, err)
		}
	}
	_, rc, err := f.d.OpenPackage(ctx(), officeA, f.id, system)
	closeIf(rc)
	both(err, "the system's OpenPackage")
	_, rc, err = f.d.FetchPackage(ctx(), officeA, f.id, channel.XTA)
	closeIf(rc)
	both(err, "an XTA getMessage (FetchPackage)")
	_, err = f.d.Confirm(ctx(), officeA, f.id, system)
	both(err, "the system's Confirm")
	_, err = f.d.Confirm(ctx(), officeA, f.id, broker.Pickup{Channel: channel.XTA, Receiver: "office A (XTA close)"})
	both(err, "an XTA close")
	_, err = f.d.Decide(ctx(), officeA, f.id, decisionA)
	both(err, "the system's Decide")
	for _, ch := range []string{channel.XTA, channel.API} {
		_, err = f.d.Reply(ctx(), officeA, f.id, broker.ReplyIn{Kind: "Bescheid", MessageID: "fv-" + ch, ContentType: "application/xml",
			Content: []byte("<Bescheid/>"), Actor: "office A system", Channel: ch})
		both(err, "the system's Reply on "+ch)
	}
	if after := events(t, f.d, f.id); len(after) != len(before) {
		t.Errorf("the system's calls recorded %v", types(after[len(before):]))
	}
	now := record(t, f.d, f.id)
	if now.TakenOverFrom != channel.API || now.DeliveryChannel() != channel.Mailbox || now.State != was.State ||
		now.Decision != nil || now.FetchedAt != nil || len(now.Replies) != 0 {
		t.Errorf("the system's calls changed the case: %s by %q, taken over from %q, decision %+v, fetched %v, replies %+v",
			now.State, now.DeliveryChannel(), now.TakenOverFrom, now.Decision, now.FetchedAt, now.Replies)
	}

	// The clerk's channel: the case opens, reads and is decided there.
	_, rc, err = f.d.OpenPackage(ctx(), officeA, f.id, clerk)
	if got := readAll(t, rc, err, "the clerk opens her case again"); !bytes.Equal(got, f.c.Package) {
		t.Errorf("the clerk opens her case again: %q, want the package", got)
	}
	c, err := f.d.ReadCase(ctx(), officeA, f.id, broker.CaseRead{Max: 1 << 20, Pickup: clerk})
	if err != nil || c.Unread != nil || !bytes.Equal(c.Package, f.c.Package) {
		t.Errorf("the clerk's case page: %+v, %v; want the package read", c, err)
	}
	if after := events(t, f.d, f.id); len(after) != len(before) {
		t.Errorf("the clerk opening her case again recorded %v", types(after[len(before):]))
	}
	sub, err := f.d.Decide(ctx(), officeA, f.id, broker.Decision{Outcome: broker.OutcomeAccepted, Actor: "anna", Channel: channel.Mailbox})
	if err != nil || sub.State != submission.StateAccepted {
		t.Fatalf("the clerk's decision: %+v, %v", sub, err)
	}
	decided := events(t, f.d, f.id)
	if got := submission.OfType(decided, submission.EventAccepted); len(got) != 1 || got[0].Channel != channel.Mailbox {
		t.Errorf("accepted events %+v, want the clerk's on the mailbox", got)
	}
	_, err = f.d.Decide(ctx(), officeA, f.id, decisionA)
	both(err, "the system's other decision after the clerk's")
	same := decisionA
	same.Outcome = broker.OutcomeAccepted
	_, err = f.d.Decide(ctx(), officeA, f.id, same)
	both(err, "the system's same decision after the clerk's")
	if after := events(t, f.d, f.id); len(after) != len(decided) {
		t.Errorf("the system's decisions after the clerk's recorded %v", types(after[len(decided):]))
	}
}

// testFetchAtTakeover: an XTA getMessage under way when a clerk takes the
// case over gave the system the package (FetchPackage before the takeover),
// and its RecordFetch comes after it: it is recorded (FetchedAt, one fetched
// event on XTA, not before the takeover's), for the clerk's page to say the
// system got the case all the same; the case stays the clerk's (the system's
// close is refused). A fetch on another channel than the one the case was
// taken over from, and a second one, record nothing.
func (s *suite) testFetchAtTakeover(t *testing.T) {
	f := s.bound(t, channel.XTA)
	_, rc, err := f.d.FetchPackage(ctx(), officeA, f.id, channel.XTA)
	readAll(t, rc, err, "the getMessage under way")
	takeOver(t, f)
	before := events(t, f.d, f.id)
	sub, err := f.d.RecordFetch(ctx(), officeA, f.id, channel.XTA, time.Now().Add(-time.Hour))
	if err != nil || sub == nil || sub.FetchedAt == nil || !sub.FetchedAfterTakeover() {
		t.Fatalf("RecordFetch after the takeover: %+v, %v; want the fetch recorded", sub, err)
	}
	evs := events(t, f.d, f.id)
	added := evs[min(len(before), len(evs)):]
	if len(added) != 1 || added[0].Type != submission.EventFetched || added[0].Channel != channel.XTA ||
		added[0].At.Before(before[len(before)-1].At) || !sub.IsFetchAfterTakeover(added[0]) {
		t.Errorf("RecordFetch after the takeover recorded %+v; want one fetched event on xta, not before the takeover", added)
	}
	if _, err := f.d.RecordFetch(ctx(), officeA, f.id, channel.XTA, time.Now()); err != nil || len(events(t, f.d, f.id)) != len(evs) {
		t.Errorf("a second RecordFetch: %v, or it recorded again", err)
	}
	_, err = f.d.Confirm(ctx(), officeA, f.id, broker.Pickup{Channel: channel.XTA, Receiver: "office A (XTA close)"})
	if !errors.Is(err, submission.ErrTakenOver) {
		t.Errorf("the system's close after its fetch of a case taken over: %v, want submission.ErrTakenOver", err)
	}
	if now := record(t, f.d, f.id); now.DeliveryChannel() != channel.Mailbox || now.TakenOverFrom != channel.XTA {
		t.Errorf("the fetch changed whose case it is: delivered by %q, taken over from %q", now.DeliveryChannel(), now.TakenOverFrom)
	}

	g := s.bound(t, channel.API)
	takeOver(t, g)
	if sub, err := g.d.RecordFetch(ctx(), officeA, g.id, channel.XTA, time.Now()); err != nil || sub.FetchedAt != nil {
		t.Errorf("an XTA fetch of a case taken over from the pull API: %v, fetched %v; want nothing recorded", err, sub.FetchedAt)
	}
}

// testReadFirstIsNoTakeover: a case the office's system read first is no
// takeover when a clerk then opens it — fetched by XTA (RecordFetch), or
// picked up by the pull API: both have it, the record names no takeover, and
// the system goes on with it (its close, decision and reply are taken).
func (s *suite) testReadFirstNoTakeover(t *testing.T) {
	f := s.bound(t, channel.XTA)
	if _, err := f.d.RecordFetch(ctx(), officeA, f.id, channel.XTA, time.Now()); err != nil {
		t.Fatalf("RecordFetch: %v", err)
	}
	sub, err := f.d.Confirm(ctx(), officeA, f.id, clerk)
	if err != nil || sub.TakenOverFrom != "" {
		t.Errorf("the clerk's pickup of a case the system fetched: %s, %v; want delivered, no takeover", takenOver(sub), err)
	}
	if got := submission.OfType(events(t, f.d, f.id), submission.EventDelivered); len(got) != 1 || strings.Contains(got[0].Note, "taken over") {
		t.Errorf("delivered events %+v, want the clerk's pickup, not a takeover", got)
	}
	if _, err := f.d.Confirm(ctx(), officeA, f.id, broker.Pickup{Channel: channel.XTA, Receiver: "office A (XTA close)"}); err != nil {
		t.Errorf("the system's close of the case it fetched: %v", err)
	}
	if _, err := f.d.Reply(ctx(), officeA, f.id, broker.ReplyIn{Kind: "Bescheid", MessageID: "fv-1", ContentType: "application/xml",
		Content: []byte("<Bescheid/>"), Actor: "office A system", Channel: channel.XTA}); err != nil {
		t.Errorf("the system's reply to the case it fetched: %v", err)
	}

	g := s.bound(t, channel.API)
	_, rc, err := g.d.OpenPackage(ctx(), officeA, g.id, system)
	readAll(t, rc, err, "the system's fetch")
	evs := events(t, g.d, g.id)
	sub = takeOver(t, g)
	if sub == nil || sub.TakenOverFrom != "" || record(t, g.d, g.id).TakenOverFrom != "" {
		t.Errorf("the clerk's opening of a case the system picked up: %s; want no takeover", takenOver(sub))
	}
	if after := events(t, g.d, g.id); len(after) != len(evs) {
		t.Errorf("the clerk's opening of a case the system picked up recorded %v", types(after[len(evs):]))
	}
	if _, err := g.d.Decide(ctx(), officeA, g.id, decisionA); err != nil {
		t.Errorf("the system's decision of the case it picked up: %v", err)
	}
}

func (s *suite) testReceipt(t *testing.T) {
	f := s.fixture(t)
	before := events(t, f.d, f.id)
	r, err := f.d.Receipt(ctx(), officeA, f.id, broker.ReceiptIntake)
	if s.f.Receipts {
		if err != nil || len(r) == 0 {
			t.Errorf("Receipt of the office's own case: %d bytes, %v; want its intake receipt", len(r), err)
		}
	} else {
		wantErr(t, err, broker.ErrNotFound, "Receipt of a desk that holds none")
	}
	r, err = f.d.Receipt(ctx(), officeB, f.id, broker.ReceiptIntake)
	wantErr(t, err, broker.ErrNotFound, "Receipt of another office's case")
	if len(r) != 0 {
		t.Errorf("Receipt of another office's case returned %d bytes", len(r))
	}
	unchanged(t, f.d, f.id, before, "Receipt")
}

func (s *suite) testFetch(t *testing.T) {
	f := s.fixture(t)
	before := events(t, f.d, f.id)
	_, rc, err := f.d.FetchPackage(ctx(), officeA, f.id, "xta")
	if got := readAll(t, rc, err, "FetchPackage"); !bytes.Equal(got, f.c.Package) {
		t.Errorf("FetchPackage: %q, want %q", got, f.c.Package)
	}
	unchanged(t, f.d, f.id, before, "FetchPackage")
	if w, err := f.d.Waiting(ctx(), officeA); err != nil || len(w) != 1 || w[0].Fetched {
		t.Errorf("Waiting after FetchPackage: %+v (%v), want the case not fetched", w, err)
	}
	at := time.Now().Add(-time.Minute)
	sub, err := f.d.RecordFetch(ctx(), officeA, f.id, "xta", at)
	if err != nil || sub.FetchedAt == nil || sub.DeliveredAt != nil {
		t.Fatalf("RecordFetch: %v, %+v: want fetched, not delivered", err, sub)
	}
	evs := events(t, f.d, f.id)
	if got := submission.OfType(evs, submission.EventFetched); len(got) != 1 || got[0].Channel != "xta" {
		t.Errorf("after RecordFetch: fetched events %+v, want one on xta", got)
	}
	if w, err := f.d.Waiting(ctx(), officeA); err != nil || len(w) != 1 || !w[0].Fetched {
		t.Errorf("Waiting after RecordFetch: %+v (%v), want the case fetched", w, err)
	}
	// A later fetch changes nothing.
	if _, err := f.d.RecordFetch(ctx(), officeA, f.id, "xta", time.Now()); err != nil {
		t.Errorf("RecordFetch again: %v", err)
	}
	if after := events(t, f.d, f.id); len(after) != len(evs) {
		t.Errorf("a second RecordFetch recorded %v", types(after[len(evs):]))
	}
	if now := record(t, f.d, f.id); now.FetchedAt == nil || !now.FetchedAt.Equal(*sub.FetchedAt) {
		t.Errorf("a second RecordFetch moved FetchedAt from %v to %v", sub.FetchedAt, now.FetchedAt)
	}
}

func (s *suite) testWaiting(t *testing.T) {
	d := s.h.NewDesk(t)
	var ids []string
	for i := range 3 {
		ids = append(ids, d.HandOver(t, newCase(officeA, i)))
		d.HandOver(t, newCase(officeB, i))
	}
	got := func() []string {
		t.Helper()
		w, err := d.Waiting(ctx(), officeA)
		if err != nil {
			t.Fatalf("Waiting: %v", err)
		}
		var out []string
		for _, e := range w {
			out = append(out, e.ID)
		}
		return out
	}
	if w := got(); fmt.Sprint(w) != fmt.Sprint(ids) {
		t.Errorf("Waiting: %v, want the office's own %v, oldest first", w, ids)
	}
	// Picked up, a case waits no more.
	if _, err := d.Confirm(ctx(), officeA, ids[1], broker.Pickup{Channel: "api", Receiver: "office A"}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	if w := got(); fmt.Sprint(w) != fmt.Sprint([]string{ids[0], ids[2]}) {
		t.Errorf("Waiting after a pickup: %v, want %v", w, []string{ids[0], ids[2]})
	}
}

func (s *suite) testOpenAttachment(t *testing.T) {
	f := s.fixture(t)
	before := events(t, f.d, f.id)
	a, rc, err := f.d.OpenAttachment(ctx(), officeA, f.id, "att-1", nil)
	if got := readAll(t, rc, err, "OpenAttachment"); !bytes.Equal(got, f.c.Attachments[0].Content) || a.ID != "att-1" {
		t.Errorf("OpenAttachment: %+v %q, want att-1 %q", a, got, f.c.Attachments[0].Content)
	}
	_, _, err = f.d.OpenAttachment(ctx(), officeA, f.id, "no-such-attachment", nil)
	wantErr(t, err, broker.ErrNotFound, "OpenAttachment of an id the case does not have")
	unchanged(t, f.d, f.id, before, "OpenAttachment")
}

// replied is a case of office A picked up, ready for replies.
func (s *suite) replied(t *testing.T) fixture {
	t.Helper()
	f := s.fixture(t)
	if _, err := f.d.Confirm(ctx(), officeA, f.id, broker.Pickup{Channel: "xta", Receiver: "office A (XTA)"}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	return f
}

func (s *suite) testReply(t *testing.T) {
	f := s.replied(t)
	in := broker.ReplyIn{Kind: "Bescheid", MessageID: "bescheid-1", ContentType: "application/xml", FileName: "Bescheid Müller.xml",
		Content: []byte("<Bescheid/>"), Actor: "office A system", Channel: "xta"}
	r, err := f.d.Reply(ctx(), officeA, f.id, in)
	if err != nil || r.ID == "" || r.MessageID != in.MessageID || r.Size != int64(len(in.Content)) {
		t.Fatalf("Reply: %+v, %v", r, err)
	}
	// Its file name is kept: the portal offers the applicant the Bescheid
	// under it.
	if r.FileName != in.FileName {
		t.Errorf("Reply: file name %q, want %q", r.FileName, in.FileName)
	}
	evs := events(t, f.d, f.id)
	again := in
	again.Content = []byte("<Bescheid>anders</Bescheid>")
	r2, err := f.d.Reply(ctx(), officeA, f.id, again)
	if err != nil || r2.ID != r.ID {
		t.Errorf("the same message id again: %+v, %v; want the reply stored first, %s", r2, err, r.ID)
	}
	if after := events(t, f.d, f.id); len(after) != len(evs) {
		t.Errorf("a repeated reply recorded %v", types(after[len(evs):]))
	}
	// Its other bytes are not kept: no record names them (the broker stored
	// them before its transaction told the repeat, 2026-12-06).
	if f.d.StoresBytes(t, again.Content) {
		t.Error("the other bytes of a repeated reply were stored")
	}
	if got := submission.OfType(evs, submission.EventReplied); len(got) != 1 {
		t.Errorf("replied events %v, want one", types(got))
	}
	if sub := record(t, f.d, f.id); len(sub.Replies) != 1 || sub.Replies[0].ID != r.ID || sub.Replies[0].FileName != in.FileName {
		t.Errorf("the case holds replies %+v, want the one stored, named %q", sub.Replies, in.FileName)
	}
	got, rc, err := f.d.OpenReply(ctx(), officeA, f.id, r.ID)
	if b := readAll(t, rc, err, "OpenReply"); !bytes.Equal(b, in.Content) || got.ID != r.ID {
		t.Errorf("OpenReply: %+v %q, want %q", got, b, in.Content)
	}
	_, _, err = f.d.OpenReply(ctx(), officeA, f.id, "no-such-reply")
	wantErr(t, err, broker.ErrNotFound, "OpenReply of an id the case does not have")
}

// testRefusedReply: a reply the desk refuses — to a case its office does not
// have yet, to one forwarded to a peer gateway, from the system to a case a
// clerk took over, to an erased case — is refused before its bytes are
// stored: nothing would ever read them, and only a sweep would take them
// away (the broker stored a forwarded case's reply first, 2026-12-06).
func (s *suite) testRefusedReply(t *testing.T) {
	refused := func(f fixture, ch, what string) {
		t.Helper()
		content := []byte("<Bescheid>" + what + "</Bescheid>")
		_, err := f.d.Reply(ctx(), officeA, f.id, broker.ReplyIn{Kind: "Bescheid", MessageID: "refused-" + f.id, ContentType: "application/xml",
			Content: content, Actor: "office A system", Channel: ch})
		if err == nil {
			t.Errorf("a reply %s was taken", what)
		}
		if f.d.StoresBytes(t, content) {
			t.Errorf("a reply %s was refused (%v) and its bytes stored", what, err)
		}
		if got := record(t, f.d, f.id).Replies; len(got) != 0 {
			t.Errorf("a reply %s: the case holds %+v", what, got)
		}
	}
	refused(s.fixture(t), channel.XTA, "to a case its office does not have yet")

	f := s.fixture(t)
	f.d.Forward(t, f.id)
	f.d.PeerDelivered(t, f.id)
	refused(f, channel.XTA, "to a forwarded case")

	g := s.bound(t, channel.API)
	takeOver(t, g)
	refused(g, channel.API, "of the system to a case a clerk took over")

	h := s.replied(t)
	h.d.Erase(t, h.id)
	refused(h, channel.XTA, "to an erased case")
}

func (s *suite) testFindReply(t *testing.T) {
	f := s.replied(t)
	idB := f.d.HandOver(t, newCase(officeB, 1))
	if _, err := f.d.Confirm(ctx(), officeB, idB, broker.Pickup{Channel: "xta", Receiver: "office B (XTA)"}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	in := broker.ReplyIn{Kind: "Bescheid", MessageID: "bescheid-1", ContentType: "application/xml", Content: []byte("<Bescheid/>"), Actor: "office A system", Channel: "xta"}
	r, err := f.d.Reply(ctx(), officeA, f.id, in)
	if err != nil {
		t.Fatalf("Reply: %v", err)
	}
	sub, got, err := f.d.FindReply(ctx(), officeA, "bescheid-1")
	if err != nil || sub == nil || sub.ID != f.id || got.ID != r.ID {
		t.Errorf("FindReply: %+v, %+v, %v; want case %s, reply %s", sub, got, err, f.id, r.ID)
	}
	_, _, err = f.d.FindReply(ctx(), officeB, "bescheid-1")
	wantErr(t, err, broker.ErrNotFound, "FindReply of another office's message id")
	_, _, err = f.d.FindReply(ctx(), officeA, "no-such-message")
	wantErr(t, err, broker.ErrNotFound, "FindReply of an unknown message id")
	_, _, err = f.d.FindReply(ctx(), officeA, "")
	wantErr(t, err, broker.ErrNotFound, "FindReply without a message id")
	// The same message id at another office is that office's own.
	in.Actor = "office B system"
	rB, err := f.d.Reply(ctx(), officeB, idB, in)
	if err != nil {
		t.Fatalf("Reply of office B: %v", err)
	}
	if sub, got, err := f.d.FindReply(ctx(), officeB, "bescheid-1"); err != nil || sub.ID != idB || got.ID != rB.ID {
		t.Errorf("FindReply of office B: %+v, %+v, %v; want case %s", sub, got, err, idB)
	}
	if sub, _, err := f.d.FindReply(ctx(), officeA, "bescheid-1"); err != nil || sub.ID != f.id {
		t.Errorf("FindReply of office A after B's: %+v, %v; want case %s", sub, err, f.id)
	}
}

func (s *suite) testMarkProcessed(t *testing.T) {
	f := s.fixture(t)
	before := events(t, f.d, f.id)
	// The office must have the case first.
	_, err := f.d.MarkProcessed(ctx(), officeA, f.id, true, "anna", "mailbox")
	wantErr(t, err, broker.ErrConflict, "MarkProcessed of a case not picked up")
	unchanged(t, f.d, f.id, before, "MarkProcessed of a case not picked up")
	if _, err := f.d.Confirm(ctx(), officeA, f.id, broker.Pickup{Channel: "mailbox", Receiver: "anna"}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	sub, err := f.d.MarkProcessed(ctx(), officeA, f.id, true, "anna", "mailbox")
	if err != nil || !sub.Processed {
		t.Fatalf("MarkProcessed: %+v, %v", sub, err)
	}
	evs := events(t, f.d, f.id)
	if e := evs[len(evs)-1]; e.Type != submission.EventProcessed || e.Actor != "anna" || e.Channel != "mailbox" {
		t.Errorf("MarkProcessed logged %+v", e)
	}
	if _, err := f.d.MarkProcessed(ctx(), officeA, f.id, true, "bert", "mailbox"); err != nil {
		t.Errorf("the same mark again: %v", err)
	}
	if after := events(t, f.d, f.id); len(after) != len(evs) {
		t.Errorf("the same mark again recorded %v", types(after[len(evs):]))
	}
	sub, err = f.d.MarkProcessed(ctx(), officeA, f.id, false, "anna", "mailbox")
	if err != nil || sub.Processed {
		t.Fatalf("taking the mark back: %+v, %v", sub, err)
	}
	if e := events(t, f.d, f.id); e[len(e)-1].Type != submission.EventReopened || e[len(e)-1].Actor != "anna" {
		t.Errorf("taking the mark back logged %+v", e[len(e)-1])
	}
	if record(t, f.d, f.id).Processed {
		t.Error("the mark taken back is still there")
	}
}
