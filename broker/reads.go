package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
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

// ForPortal returns the submission if the portal sent it, and ErrNotFound otherwise:
// a portal sees only its own submissions, and cannot learn that others exist.
func (b *Broker) ForPortal(portal, id string) (*submission.Submission, error) {
	s, err := b.db.Get(id)
	if err != nil {
		return nil, err
	}
	if portal == "" || s.Sender != portal {
		return nil, fmt.Errorf("submission %s: %w", id, ErrNotFound)
	}
	// A package a peer gateway forwarded here keeps the sender id of another
	// state's portal, and portal ids are one namespace across states (every
	// development PKI's portal is "amt24"): this gateway's portal with the same id
	// did not send it. The portal that did reads it at its own gateway.
	if s.Origin != nil {
		return nil, fmt.Errorf("submission %s: forwarded by gateway %s, not sent by a portal of this gateway: %w", id, s.Origin.Gateway, ErrNotFound)
	}
	return s, nil
}

// PortalEvents returns the event log as the portal that sent the submission may read
// it: without operator notes (an office endpoint's error page can contain anything).
func (b *Broker) PortalEvents(portal, id string) ([]submission.Event, error) {
	if _, err := b.ForPortal(portal, id); err != nil {
		return nil, err
	}
	evs, err := b.db.Events(id)
	for i := range evs {
		evs[i].Note = ""
	}
	return evs, err
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

// Redeliver queues a held submission again from its first channel (the operator's
// replay after fixing an office's endpoint).
func (b *Broker) Redeliver(id, actor string) (*submission.Submission, error) {
	s, err := b.changeSub(id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		// A held case whose bytes were erased has nothing left to deliver; queued
		// again, every attempt would fail on the missing package.
		if cur.BytesRemovedAt != nil {
			return nil, fmt.Errorf("%w: its package bytes were removed (%s); there is nothing to deliver", submission.ErrIllegal, cur.BytesRemovedAt.Format(time.RFC3339))
		}
		return cur.Requeue(now, actor)
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
	var list func() ([]string, error)
	switch {
	case state == submission.StateHeld:
		list = b.db.Held
	case state == submission.StateHandedOver:
		list = b.db.HandedOver
	case state.Dispatchable():
		list = b.db.Outbox
	default:
		return b.db.Scan(func(s *submission.Submission) bool {
			return state != "" && s.State != state || fn(s)
		})
	}
	ids, err := list()
	if err != nil {
		return err
	}
	slices.Sort(ids) // time-ordered ids
	for _, id := range ids {
		s, err := b.db.Get(id)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since the index was listed (retention runs beside us)
		}
		if err != nil {
			return err
		}
		if s.State == state && !fn(s) {
			return nil
		}
	}
	return nil
}
