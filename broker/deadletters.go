package broker

import (
	"context"
	"fmt"
	"time"

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
	var out []DeadLetter
	err := b.InState(submission.StateHeld, func(s *submission.Submission) bool {
		if ctx.Err() != nil || len(out) >= limit {
			return false
		}
		if f.OfficeID != "" && s.OfficeID != f.OfficeID {
			return true
		}
		d := DeadLetter{ID: s.ID, OfficeID: s.OfficeID, Attempts: s.TotalAttempts, ReceivedAt: s.ReceivedAt, HeldAt: s.UpdatedAt}
		if !f.From.IsZero() && d.HeldAt.Before(f.From) || !f.To.IsZero() && !d.HeldAt.Before(f.To) {
			return true
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
		return true
	})
	if err == nil {
		err = ctx.Err()
	}
	return out, err
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
