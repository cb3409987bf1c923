package mailbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/submission"
)

// memDesk is an in-memory broker.OfficeDesk with the desk's rules (office scoping,
// pickup before decision, final decisions), built on the submission model. The page
// tests and the conformance harness use it; the browser and notice tests use the
// real broker.
type memDesk struct {
	mu     sync.Mutex
	subs   map[string]*submission.Submission
	events map[string][]submission.Event
	blobs  map[string][]byte // package by submission id, attachments by sha256
	order  []string
}

func newMemDesk() *memDesk {
	return &memDesk{subs: map[string]*submission.Submission{}, events: map[string][]submission.Event{}, blobs: map[string][]byte{}}
}

// add stores a handed-over submission with its package and attachments.
func (d *memDesk) add(s *submission.Submission, pkg []byte, atts map[string][]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.subs[s.ID]; ok {
		return
	}
	cp := *s
	d.subs[s.ID] = &cp
	d.order = append(d.order, s.ID)
	d.blobs["pkg:"+s.ID] = pkg
	for sum, b := range atts {
		d.blobs[sum] = b
	}
	d.events[s.ID] = append(d.events[s.ID], submission.Event{At: s.ReceivedAt, Type: submission.EventReceived}, submission.Event{At: s.ReceivedAt, Type: submission.EventHandedOver, Channel: "mailbox"})
}

func (d *memDesk) forOffice(office, id string) (*submission.Submission, error) {
	s, ok := d.subs[id]
	if !ok || office == "" || s.OfficeID != office {
		return nil, fmt.Errorf("submission %s: %w", id, broker.ErrNotFound)
	}
	return s, nil
}

// admitted is forOffice, then the face's admit (if not nil), as the broker asks it.
func (d *memDesk) admitted(office, id string, admit broker.Admit) (*submission.Submission, error) {
	s, err := d.forOffice(office, id)
	if err != nil {
		return nil, err
	}
	if admit != nil {
		cp := *s
		if err := admit(&cp); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (d *memDesk) record(id string, evs []submission.Event) {
	for i := range evs {
		evs[i].SubmissionID = id
	}
	d.events[id] = append(d.events[id], evs...)
}

func (d *memDesk) Waiting(_ context.Context, office string) ([]broker.WaitingEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []broker.WaitingEntry
	for _, id := range d.order {
		s := d.subs[id]
		w := s.State.Dispatchable() || s.State == submission.StateHandedOver || s.State == submission.StateHeld
		if s.OfficeID == office && w && s.BytesRemovedAt == nil {
			out = append(out, broker.WaitingEntry{ID: id, Fetched: s.FetchedAt != nil})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (d *memDesk) List(_ context.Context, office string, q broker.ListQuery) (broker.Page, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := map[submission.State]bool{}
	for _, s := range q.States {
		want[s] = true
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	ids := append([]string(nil), d.order...)
	sort.SliceStable(ids, func(i, j int) bool { return d.subs[ids[i]].ReceivedAt.Before(d.subs[ids[j]].ReceivedAt) })
	var p broker.Page
	started := q.After == ""
	for _, id := range ids {
		s := d.subs[id]
		if !started {
			started = id == q.After
			continue
		}
		if s.OfficeID != office || (len(want) > 0 && !want[s.State]) {
			continue
		}
		if q.Text != "" && !bytes.Contains(bytes.ToLower([]byte(s.ID+" "+s.ServiceName+" "+s.Place+" "+s.Sender+" "+s.MessageID)), bytes.ToLower([]byte(q.Text))) {
			continue
		}
		if len(p.Items) == limit {
			p.Next = p.Items[limit-1].ID
			break
		}
		cp := *s
		p.Items = append(p.Items, &cp)
	}
	return p, nil
}

func (d *memDesk) Get(_ context.Context, office, id string) (*submission.Submission, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.forOffice(office, id)
	if err != nil {
		return nil, err
	}
	cp := *s
	return &cp, nil
}

func (d *memDesk) Events(_ context.Context, office, id string) ([]submission.Event, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.forOffice(office, id); err != nil {
		return nil, err
	}
	return append([]submission.Event(nil), d.events[id]...), nil
}

func (d *memDesk) OpenPackage(ctx context.Context, office, id string, p broker.Pickup) (*submission.Submission, io.ReadCloser, error) {
	s, err := d.Confirm(ctx, office, id, p)
	if err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return s, io.NopCloser(bytes.NewReader(d.blobs["pkg:"+id])), nil
}

func (d *memDesk) ReadCase(ctx context.Context, office, id string, o broker.CaseRead) (*broker.Case, error) {
	s, err := d.Get(ctx, office, id)
	if err != nil {
		return nil, err
	}
	if o.Pickup.Admit != nil {
		if err := o.Pickup.Admit(s); err != nil {
			return nil, err
		}
	}
	c := &broker.Case{Sub: s}
	if o.Open == nil || o.Open(s) {
		d.mu.Lock()
		b := d.blobs["pkg:"+id]
		d.mu.Unlock()
		if int64(len(b)) > o.Max {
			c.Unread = broker.ErrTooLarge
		} else if now, err := d.Confirm(ctx, office, id, broker.Pickup{Channel: o.Pickup.Channel, Receiver: o.Pickup.Receiver}); err != nil {
			c.Unread = err
		} else {
			c.Sub, c.Package = now, append([]byte(nil), b...)
		}
	}
	if c.Events, err = d.Events(ctx, office, id); err != nil {
		return nil, err
	}
	return c, nil
}

func (d *memDesk) MarkProcessed(_ context.Context, office, id string, done bool, actor, ch string) (*submission.Submission, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.forOffice(office, id)
	if err != nil {
		return nil, err
	}
	evs, err := s.MarkProcessed(time.Now().UTC(), done, actor, ch)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", broker.ErrConflict, err)
	}
	d.events[id] = append(d.events[id], evs...)
	return s, nil
}

func (d *memDesk) FetchPackage(_ context.Context, office, id, ch string) (*submission.Submission, io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.forOffice(office, id)
	if err != nil {
		return nil, nil, err
	}
	return s, io.NopCloser(bytes.NewReader(d.blobs["pkg:"+id])), nil
}

func (d *memDesk) RecordFetch(_ context.Context, office, id, ch string, at time.Time) (*submission.Submission, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.forOffice(office, id)
	if err != nil {
		return nil, err
	}
	evs, _ := s.Fetched(at.UTC(), ch)
	d.events[id] = append(d.events[id], evs...)
	return s, nil
}

func (d *memDesk) OpenAttachment(_ context.Context, office, id, aid string, admit broker.Admit) (submission.Attachment, io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.admitted(office, id, admit)
	if err != nil {
		return submission.Attachment{}, nil, err
	}
	for _, a := range s.Attachments {
		if a.ID == aid {
			return a, io.NopCloser(bytes.NewReader(d.blobs[a.SHA256])), nil
		}
	}
	return submission.Attachment{}, nil, fmt.Errorf("attachment %s: %w", aid, broker.ErrNotFound)
}

func (d *memDesk) Receipt(_ context.Context, office, id, kind string) ([]byte, error) {
	return nil, broker.ErrNotFound
}

func (d *memDesk) Confirm(_ context.Context, office, id string, p broker.Pickup) (*submission.Submission, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.admitted(office, id, p.Admit)
	if err != nil {
		return nil, err
	}
	evs, err := s.Confirm(time.Now().UTC(), p.Channel, submission.Confirmation{Receiver: p.Receiver})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", broker.ErrConflict, err)
	}
	d.record(id, evs)
	cp := *s
	return &cp, nil
}

func (d *memDesk) Decide(ctx context.Context, office, id string, dec broker.Decision) (*submission.Submission, error) {
	// dec.Admit is asked by the pickup the decision implies, on its one read.
	if _, err := d.Confirm(ctx, office, id, broker.Pickup{Channel: dec.Channel, Receiver: dec.Actor, Admit: dec.Admit}); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.subs[id]
	evs, err := s.Decide(time.Now().UTC(), dec.Outcome, dec.Reason, dec.Actor)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", broker.ErrConflict, err)
	}
	d.record(id, evs)
	cp := *s
	return &cp, nil
}

var _ broker.OfficeDesk = (*memDesk)(nil)

// Replies are not part of the mailbox (yet); the fake refuses them.
func (d *memDesk) Reply(_ context.Context, office, id string, _ broker.ReplyIn) (submission.Reply, error) {
	return submission.Reply{}, fmt.Errorf("memDesk: replies: %w", broker.ErrConflict)
}

func (d *memDesk) OpenReply(_ context.Context, office, id, _ string) (submission.Reply, io.ReadCloser, error) {
	return submission.Reply{}, nil, broker.ErrNotFound
}

func (d *memDesk) FindReply(_ context.Context, office, _ string) (*submission.Submission, submission.Reply, error) {
	return nil, submission.Reply{}, broker.ErrNotFound
}
