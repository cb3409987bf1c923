package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// DeadLetter is a held submission as an operator sees it: every channel of the office
// failed for good, so it waits for a person. Reason is the last channel failure's
// public text, Note what the receiver itself said.
type DeadLetter struct {
	ID, OfficeID, Channel string
	Reason, Note          string
	Attempts              int
	ReceivedAt, HeldAt    time.Time
}

// DeadLetters lists the held submissions, oldest first, optionally of one office and
// held within [from, to) (zero times: no bound). At most limit (0: 1000). It reads
// the held index, not every record.
func (b *Broker) DeadLetters(ctx context.Context, f ReplayFilter, limit int) ([]DeadLetter, error) {
	if limit <= 0 {
		limit = 1000
	}
	ids, err := b.db.Held()
	if err != nil {
		return nil, err
	}
	slices.Sort(ids) // time-ordered ids: oldest first
	var out []DeadLetter
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if len(out) >= limit {
			break
		}
		s, err := b.db.Get(id)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since the index was listed (retention runs beside us)
		}
		if err != nil {
			return out, err
		}
		if s.State != submission.StateHeld || (f.OfficeID != "" && s.OfficeID != f.OfficeID) {
			continue // redelivered since
		}
		d := DeadLetter{ID: s.ID, OfficeID: s.OfficeID, Attempts: s.TotalAttempts, ReceivedAt: s.ReceivedAt, HeldAt: s.UpdatedAt}
		if !f.From.IsZero() && d.HeldAt.Before(f.From) || !f.To.IsZero() && !d.HeldAt.Before(f.To) {
			continue
		}
		if evs, err := b.db.Events(s.ID); err == nil {
			for i := len(evs) - 1; i >= 0; i-- {
				if evs[i].Type == submission.EventChannelFailed {
					d.Channel, d.Reason, d.Note = evs[i].Channel, evs[i].Detail, evs[i].Note
					break
				}
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// ReplayFilter selects dead letters: by ids, or by office and/or the time they were
// held.
type ReplayFilter struct {
	IDs      []string
	OfficeID string
	From, To time.Time
}

// Replay queues dead letters again from their office's first channel (the operator
// fixed the endpoint): one by id, all of an office, or those held in a time window.
// Every replay is an event with the actor; the delivery id stays the same.
func (b *Broker) Replay(ctx context.Context, f ReplayFilter, actor string) (int, error) {
	ids := f.IDs
	if len(ids) == 0 {
		dls, err := b.DeadLetters(ctx, f, 1<<30)
		if err != nil {
			return 0, err
		}
		for _, d := range dls {
			ids = append(ids, d.ID)
		}
	}
	n := 0
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if _, err := b.Redeliver(id, actor); err != nil {
			return n, fmt.Errorf("replay %s: %w", id, err)
		}
		n++
	}
	return n, nil
}
