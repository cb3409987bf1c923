package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// Submission returns any submission, unrestricted (operators, the gateway itself).
// Faces for portals and offices use ForPortal and the OfficeDesk, which enforce who
// may see what.
func (b *Broker) Submission(id string) (*submission.Submission, error) { return b.db.Get(id) }

// Log returns a submission's whole event log, operator notes included.
func (b *Broker) Log(id string) ([]submission.Event, error) { return b.db.Events(id) }

// FollowUps returns the ids of the Nachreichungen to the case id, of every
// office, oldest first (the store's index by case): the operator's view.
func (b *Broker) FollowUps(id string) ([]string, error) { return b.db.FollowUps(id) }

// ForPortal returns the submission if the portal sent it, and ErrNotFound otherwise:
// a portal sees only its own submissions, and cannot learn that others exist.
func (b *Broker) ForPortal(portal, id string) (*submission.Submission, error) {
	s, err := b.db.Get(id)
	if err != nil {
		return nil, err
	}
	if err := portalSees(portal, s); err != nil {
		return nil, err
	}
	return s, nil
}

// portalSees is ErrNotFound unless the portal sent s itself.
func portalSees(portal string, s *submission.Submission) error {
	if portal == "" || s.Sender != portal {
		return fmt.Errorf("submission %s: %w", s.ID, ErrNotFound)
	}
	// A package a peer gateway forwarded here keeps the sender id of another
	// state's portal, and portal ids are one namespace across states (every
	// development PKI's portal is "amt24"): this gateway's portal with the same id
	// did not send it. The portal that did reads it at its own gateway.
	if s.Origin != nil {
		return fmt.Errorf("submission %s: forwarded by gateway %s, not sent by a portal of this gateway: %w", s.ID, s.Origin.Gateway, ErrNotFound)
	}
	return nil
}

// PortalStatus returns the submission and its event log, from one read (the
// state and the log it was written with; store.Store.GetWithEvents), as the
// portal that sent it may read them: the log without operator notes (an
// office endpoint's error page can contain anything). The status answer read
// the record twice and the log once, and a write between could pair the
// state "queued" with a log ending in "delivered".
func (b *Broker) PortalStatus(portal, id string) (*submission.Submission, []submission.Event, error) {
	s, evs, err := b.db.GetWithEvents(id)
	if err != nil {
		return nil, nil, err
	}
	if err := portalSees(portal, s); err != nil {
		return nil, nil, err
	}
	for i := range evs {
		evs[i].Note = ""
	}
	return s, evs, nil
}

// PortalReceipt returns a receipt of one of the portal's submissions.
func (b *Broker) PortalReceipt(portal, id, kind string) ([]byte, error) {
	if _, err := b.ForPortal(portal, id); err != nil {
		return nil, err
	}
	return b.db.Receipt(id, kind)
}

// PortalReply opens a reply of the office to one of the portal's submissions.
func (b *Broker) PortalReply(ctx context.Context, portal, id, replyID string) (submission.Reply, io.ReadCloser, error) {
	s, err := b.ForPortal(portal, id)
	if err != nil {
		return submission.Reply{}, nil, err
	}
	return b.openReply(ctx, s, replyID)
}

// RecordReplyFetch records that actor — the case's portal ("portal amt24"),
// or the peer gateway that forwarded the case here ("gateway amtsbote-sn") —
// read the bytes of reply rep of case id whole (submission.ReplyFetched): the
// office sees that its Bescheid left the gateway towards the applicant. rep
// is the reply as the face opened it (PortalReply, OpenReplyOf): one read
// before (FetchedAt) costs no store write and no second read of the record,
// so a portal that reads it again and again writes nothing. The face calls it
// after the bytes went out; its error is the face's to log, not the reader's
// (the bytes were served).
func (b *Broker) RecordReplyFetch(id string, rep submission.Reply, actor string) error {
	if rep.FetchedAt != nil {
		return nil
	}
	_, err := b.changeSub(id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.ReplyFetched(now, rep.ID, actor)
	})
	return err
}

// Redeliver queues a held submission again from its first channel (the operator's
// replay after fixing an office's endpoint), with the office's channel plan as
// it is now (Config.Plan) when there is one.
func (b *Broker) Redeliver(id, actor string) (*submission.Submission, error) {
	return b.RedeliverBecause(id, actor, "requeued by operator")
}

// RedeliverBecause is Redeliver for the gateway's own reasons: why is the
// requeued event's detail, which the portal reads.
func (b *Broker) RedeliverBecause(id, actor, why string) (*submission.Submission, error) {
	s, err := b.changeSub(id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		// A held case whose bytes were erased has nothing left to deliver; queued
		// again, every attempt would fail on the missing package.
		if cur.BytesRemovedAt != nil {
			return nil, fmt.Errorf("%w: its package bytes were removed (%s); there is nothing to deliver", submission.ErrIllegal, cur.BytesRemovedAt.Format(time.RFC3339))
		}
		return cur.Requeue(now, actor, why, b.planOf(cur.OfficeID))
	})
	if err != nil {
		return nil, err
	}
	b.enqueue(s)
	return s, nil
}

// InState walks the submissions in one state ("": all) until fn returns false. The
// states the store indexes — held, handed over, queued and retrying (the outbox) —
// are read through their index, oldest first, so what needs a person is listed
// without reading every record; any other state scans.
func (b *Broker) InState(state submission.State, fn func(*submission.Submission) bool) error {
	for _, ix := range b.waitingIndexes() {
		if state != "" && ix.holds(state) {
			_, err := b.walkIndex(ix.list, func(s submission.State) bool { return s == state }, fn)
			return err
		}
	}
	return b.db.Scan(func(s *submission.Submission) bool {
		return state != "" && s.State != state || fn(s)
	})
}

// waitingIndex is one of the store's indexes of submissions that wait, and the
// states whose submissions it names.
type waitingIndex struct {
	list  func() ([]string, error)
	holds func(submission.State) bool
}

// waitingIndexes are the outbox (queued, retrying), the handed-over and the held
// index: InState reads one of them, Backlog all three.
func (b *Broker) waitingIndexes() []waitingIndex {
	is := func(want submission.State) func(submission.State) bool {
		return func(s submission.State) bool { return s == want }
	}
	return []waitingIndex{
		{b.db.Outbox, submission.State.Dispatchable},
		{store.IDsOf(b.db.HandedOver), is(submission.StateHandedOver)},
		{store.IDsOf(b.db.Held), is(submission.StateHeld)},
	}
}

// walkIndex reads the records an index names, oldest first, and hands fn those
// whose state keep accepts (a record that moved on since the listing is passed
// over: the index of its new state has it) until fn returns false, which ends the
// walk with stopped set.
func (b *Broker) walkIndex(list func() ([]string, error), keep func(submission.State) bool, fn func(*submission.Submission) bool) (stopped bool, err error) {
	ids, err := list()
	if err != nil {
		return false, err
	}
	slices.Sort(ids) // time-ordered ids
	for _, id := range ids {
		s, err := b.db.Get(id)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since the index was listed (retention runs beside us)
		}
		if err != nil {
			return false, err
		}
		if keep(s.State) && !fn(s) {
			return true, nil
		}
	}
	return false, nil
}

// OfficeBacklog is what waits for one office: packages not yet handed to its
// system (queued, retrying), handed over but not confirmed (a case folder not
// imported, an XTA message not fetched, a mailbox case not opened), and held for
// a person; WaitingSince is when the oldest of them was received.
type OfficeBacklog struct {
	Office       string    `json:"office"`
	Name         string    `json:"name,omitempty"` // as the directory named it when the oldest was received
	Queued       int       `json:"queued"`
	Retrying     int       `json:"retrying"`
	HandedOver   int       `json:"handedOver"`
	Held         int       `json:"held"`
	WaitingSince time.Time `json:"waitingSince"`
}

// Backlog counts what waits, per office, from the store's outbox, handed-over and
// held indexes: each waiting record is read once, however many cases the store
// holds. It reads at most limit records (complete is false if more wait). Offices
// come oldest wait first: the one that has kept a citizen waiting longest is the
// one to call. The backlog gauge says that something waits; this says for whom.
func (b *Broker) Backlog(limit int) (offices []OfficeBacklog, read int, complete bool, err error) {
	by := map[string]*OfficeBacklog{}
	count := func(s *submission.Submission) bool {
		if read == limit {
			return false
		}
		read++
		if s.BytesRemovedAt != nil {
			return true // erased before the office took it: waits for nothing (walkWaiting)
		}
		o := by[s.OfficeID]
		if o == nil {
			o = &OfficeBacklog{Office: s.OfficeID, Name: s.OfficeName, WaitingSince: s.ReceivedAt}
			by[s.OfficeID] = o
		}
		switch s.State {
		case submission.StateQueued:
			o.Queued++
		case submission.StateRetrying:
			o.Retrying++
		case submission.StateHandedOver:
			o.HandedOver++
		case submission.StateHeld:
			o.Held++
		}
		if s.ReceivedAt.Before(o.WaitingSince) {
			o.WaitingSince, o.Name = s.ReceivedAt, s.OfficeName
		}
		return true
	}
	complete = true
	for _, ix := range b.waitingIndexes() {
		stopped, err := b.walkIndex(ix.list, ix.holds, count)
		if err != nil {
			return nil, 0, false, err
		}
		if stopped {
			complete = false
			break
		}
	}
	for _, o := range by {
		offices = append(offices, *o)
	}
	slices.SortFunc(offices, func(a, b OfficeBacklog) int {
		if c := a.WaitingSince.Compare(b.WaitingSince); c != 0 {
			return c
		}
		return strings.Compare(a.Office, b.Office)
	})
	return offices, read, complete, nil
}

// UndecidedCase is one case that awaits its office's decision
// (submission.AwaitsDecision), as the admin's list shows it.
type UndecidedCase struct {
	ID         string    `json:"id"`
	Office     string    `json:"office"`
	Name       string    `json:"name,omitempty"` // the office's name as the directory gave it at intake
	Channel    string    `json:"channel"`        // how the office took it (DeliveryChannel): api, webhook, mailbox
	ReceivedAt time.Time `json:"receivedAt"`
	// DeliveredAt is when the office took the package: since then its decision
	// has been due.
	DeliveredAt time.Time `json:"deliveredAt"`
}

// Undecided lists the cases that await their office's decision, from the
// store's undecided index: officeID's only unless it is "", those after the id
// after (paging; ids are time-ordered), oldest first, at most limit (0: 1000).
// What the gauge amtsbote_submissions_delivered_undecided counts, this names.
func (b *Broker) Undecided(ctx context.Context, officeID, after string, limit int) ([]UndecidedCase, error) {
	if limit <= 0 {
		limit = 1000
	}
	var out []UndecidedCase
	err := b.walkUndecided(officeID, after, func(s *submission.Submission) bool {
		if ctx.Err() != nil {
			return false
		}
		out = append(out, UndecidedCase{ID: s.ID, Office: s.OfficeID, Name: s.OfficeName, Channel: s.DeliveryChannel(),
			ReceivedAt: s.ReceivedAt, DeliveredAt: *s.DeliveredAt})
		return len(out) < limit // no record read past the page
	})
	if err != nil {
		return nil, err
	}
	return out, ctx.Err()
}

// walkUndecided hands fn the cases of the undecided index — officeID's only
// unless it is "", those after the id after — oldest first, until it returns
// false: the admin's list and an office's own (ListQuery.AwaitingDecision).
// Each entry's value names its office, so another office's entries are passed
// over without reading their records; the record is checked all the same (an
// entry that does not name its office, written before the index kept it, is
// read and kept if it is the office's), and a case that has moved on since the
// index was listed (decided meanwhile, deleted by the retention) is passed over.
func (b *Broker) walkUndecided(officeID, after string, fn func(*submission.Submission) bool) error {
	entries, err := b.db.Undecided()
	if err != nil {
		return err
	}
	// bbolt hands its keys over in order, JetStream need not.
	slices.SortFunc(entries, func(a, b store.Waiting) int { return strings.Compare(a.ID, b.ID) })
	return b.walkEntries(entries, after,
		func(e store.Waiting) bool { return officeID != "" && e.Known && e.Office != officeID },
		func(s *submission.Submission) bool {
			return s.AwaitsDecision() && (officeID == "" || s.OfficeID == officeID)
		}, fn)
}
