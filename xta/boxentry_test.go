package xta

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// lateBoxDesk reports every case as put into the message box an hour after
// the gateway received it, as for one that came to XTA after its office's
// first channel had failed for an hour.
type lateBoxDesk struct{ broker.OfficeDesk }

func late(s *submission.Submission) *submission.Submission {
	c := s.Clone()
	at := c.ReceivedAt.Add(time.Hour)
	c.HandedOverAt = &at
	return c
}

func (d lateBoxDesk) List(ctx context.Context, office string, q broker.ListQuery) (broker.Page, error) {
	p, err := d.OfficeDesk.List(ctx, office, q)
	for i, s := range p.Items {
		p.Items[i] = late(s)
	}
	return p, err
}

func (d lateBoxDesk) Get(ctx context.Context, office, id string) (*submission.Submission, error) {
	s, err := d.OfficeDesk.Get(ctx, office, id)
	if err != nil {
		return nil, err
	}
	return late(s), nil
}

// TestBoxEntryTimeIsTheDelivery: MessageBoxEntryTimeFrom/To select by the time
// a message entered the box — "nach Delivery", as the schema documents it, the
// Delivery its metadata carries — not by the time the gateway received it. A
// message that came to the box an hour after its receipt (its office's first
// channel failed) was left out of a poll from a time between the two: a
// Fachverfahren that polls from its last poll, or from the last Delivery it
// saw, never listed it.
func TestBoxEntryTimeIsTheDelivery(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, func(o *Options) { o.Desk = lateBoxDesk{o.Desk} })
	sub := e.wait(t, e.submit(t, officeA, pkgBytes(300)).ID, submission.StateHandedOver)
	xid := MessageID("amtsbote", sub.ID)
	between := sub.ReceivedAt.Add(30 * time.Minute)
	list := func(name string, from, to time.Time) []string {
		t.Helper()
		r := post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "getStatusList"),
			soapUIRequest(xtaA, "", statusListBody(false, 10, from, to)))
		mustOK(t, name, r)
		v.AddMessage(name, r.root, r.parts)
		if ids := texts(r, "//MessageStatusList/MessageMetaData/XTAMessageID"); slices.Contains(ids, xid) {
			if got := r.text("//MessageStatusList/MessageMetaData/DeliveryAttributes/Delivery"); got == "" {
				t.Errorf("%s: the listed message has no Delivery", name)
			}
			return ids
		}
		return nil
	}
	if ids := list("from between receipt and box entry", between, time.Time{}); len(ids) != 1 {
		t.Errorf("a poll from a time before the message entered the box (after its receipt) lists %v, want it", ids)
	}
	if ids := list("up to between receipt and box entry", time.Time{}, between); len(ids) != 0 {
		t.Errorf("a poll up to a time before the message entered the box lists %v, want none", ids)
	}
	if ids := list("from its receipt", sub.ReceivedAt.Add(-time.Minute), sub.ReceivedAt.Add(2*time.Hour)); len(ids) != 1 {
		t.Errorf("a window around both times lists %v, want the message", ids)
	}
	v.Run()
}

// shiftedDesk reports the cases it names as put into the message box that
// long after their receipt.
type shiftedDesk struct {
	broker.OfficeDesk
	by map[string]time.Duration
}

func (d shiftedDesk) shift(s *submission.Submission) *submission.Submission {
	c := s.Clone()
	at := c.ReceivedAt.Add(d.by[c.ID])
	c.HandedOverAt = &at
	return c
}

func (d shiftedDesk) List(ctx context.Context, office string, q broker.ListQuery) (broker.Page, error) {
	p, err := d.OfficeDesk.List(ctx, office, q)
	for i, s := range p.Items {
		p.Items[i] = d.shift(s)
	}
	return p, err
}

// TestStatusListIsInBoxEntryOrder: the WSDL documents getStatusList's order
// as the box entry's ("nach Delivery"). A status list with a time window was
// in the order of receipt: with MaxMessages 1, a message received first but
// put into the box two hours later came before one that entered the box an
// hour earlier, and a Fachverfahren paging from the last Delivery it saw
// skipped the other for good.
func TestStatusListIsInBoxEntryOrder(t *testing.T) {
	v := xtatest.NewValidator(t)
	d := shiftedDesk{by: map[string]time.Duration{}}
	e := startEnv(t, func(o *Options) { d.OfficeDesk = o.Desk; o.Desk = d })
	first := e.wait(t, e.submit(t, officeA, pkgBytes(300)).ID, submission.StateHandedOver)
	second := e.wait(t, e.submit(t, officeA, pkgBytes(400)).ID, submission.StateHandedOver)
	d.by[first.ID], d.by[second.ID] = 2*time.Hour, time.Hour
	from := first.ReceivedAt.Add(-time.Minute)
	var seen []string
	for page := range 3 {
		r := post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "getStatusList"),
			soapUIRequest(xtaA, "", statusListBody(false, 1, from, time.Time{})))
		mustOK(t, "getStatusList", r)
		v.AddMessage(fmt.Sprintf("page %d", page+1), r.root, r.parts)
		ids := texts(r, "//MessageStatusList/MessageMetaData/XTAMessageID")
		if len(ids) == 0 {
			break
		}
		seen = append(seen, ids...)
		// The next page: from just after the last Delivery seen.
		at, err := parseTime(r.text("//MessageStatusList/MessageMetaData/DeliveryAttributes/Delivery"))
		if err != nil {
			t.Fatal(err)
		}
		from = at.Add(time.Millisecond)
	}
	want := []string{MessageID("amtsbote", second.ID), MessageID("amtsbote", first.ID)}
	if !slices.Equal(seen, want) {
		t.Errorf("paging by the last Delivery listed %v, want %v (by box entry)", seen, want)
	}
	v.Run()
}
