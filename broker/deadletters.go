package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// DeadLetters lists the held submissions, oldest first, optionally of one office,
// held within [from, to) (zero times: no bound) and after an id. At most limit (0:
// 1000). It reads the held index, not every record.
func (b *Broker) DeadLetters(ctx context.Context, f ReplayFilter, limit int) ([]DeadLetter, error) {
	if limit <= 0 {
		limit = 1000
	}
	var out []DeadLetter
	err := b.InState(submission.StateHeld, func(s *submission.Submission) bool {
		if ctx.Err() != nil || len(out) >= limit {
			return false
		}
		if f.OfficeID != "" && s.OfficeID != f.OfficeID || f.After != "" && s.ID <= f.After {
			return true
		}
		if s.BytesRemovedAt != nil {
			return true // erased while held: nothing left to replay, nobody to wait for
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
	// After pages a listing: only ids after it (ids are time-ordered). Replay
	// ignores it.
	After string
}

// Replay queues dead letters again from their office's first channel (the operator
// fixed the endpoint): listed by id, all of an office, or those held in a time
// window. Every replay is an event with the actor; the delivery id stays the same.
//
// Replaying is idempotent, because operators repeat what did not seem to work: an
// id that is no longer a dead letter (a colleague replayed it, its office fetched
// it from the mailbox) is skipped and named with its state, not an error that
// stops the rest of the list. A replay by office or window also skips, with a
// Reason, the held packages it cannot queue again (an office without a channel
// on this gateway, bytes that were erased); a list of ids that names one stops
// there with ErrConflict, since the operator asked for it. Ids are checked before anything is queued, so a
// mistyped id in a list is a *ReplayError wrapping ErrNotFound with nothing
// queued. Any other failure (the store, a shutdown) is a *ReplayError that says
// how many were queued before it.
func (b *Broker) Replay(ctx context.Context, f ReplayFilter, actor string) (ReplayResult, error) {
	var res ReplayResult
	ids := f.IDs
	byFilter := len(ids) == 0
	if byFilter {
		dls, err := b.DeadLetters(ctx, f, 1<<30)
		if err != nil {
			return res, err
		}
		for _, d := range dls {
			ids = append(ids, d.ID)
		}
	} else {
		ids = slices.Compact(slices.Sorted(slices.Values(ids))) // time-ordered ids: oldest first
		for _, id := range ids {
			if _, err := b.db.Get(id); err != nil {
				return res, &ReplayError{ID: id, Err: err}
			}
		}
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return res, &ReplayError{ID: id, Replayed: res.Replayed, Err: err}
		}
		_, err := b.Redeliver(id, actor)
		if errors.Is(err, ErrConflict) {
			if s, gerr := b.db.Get(id); gerr == nil && s.State != submission.StateHeld {
				res.Skipped = append(res.Skipped, Skipped{ID: id, State: s.State})
				continue
			} else if gerr == nil && byFilter {
				// Held, and nothing to replay it to: an office that only pulls (no
				// channel), or bytes an operator erased. The window or office did not
				// name it; stopping here stopped every later dead letter at every
				// repeat of the request, so it is named and passed over.
				res.Skipped = append(res.Skipped, Skipped{ID: id, State: s.State, Reason: unreplayable(s)})
				continue
			}
		}
		if err != nil {
			return res, &ReplayError{ID: id, Replayed: res.Replayed, Err: err}
		}
		res.Replayed++
	}
	return res, nil
}

// unreplayable says why a held submission cannot be queued again.
func unreplayable(s *submission.Submission) string {
	switch {
	case len(s.Targets) == 0:
		return "the office has no channel on this gateway; the package waits for its pickup"
	case s.BytesRemovedAt != nil:
		return "its package bytes were removed; there is nothing to deliver"
	}
	return "it cannot be queued again"
}

// ReplayResult is what a replay did: how many dead letters it queued again, and
// which of the named ones it left because they were no longer dead letters.
type ReplayResult struct {
	Replayed int
	Skipped  []Skipped
}

// Skipped is a submission a replay left alone, with the state it was in, and
// Reason when that state is still held (see Replay).
type Skipped struct {
	ID     string
	State  submission.State
	Reason string
}

// ReplayError is a replay that stopped at submission ID after queuing Replayed
// others; Err says why (ErrNotFound: no such id, and then nothing was queued).
type ReplayError struct {
	ID       string
	Replayed int
	Err      error
}

func (e *ReplayError) Error() string {
	return fmt.Sprintf("replay %s (after %d queued again): %v", e.ID, e.Replayed, e.Err)
}

func (e *ReplayError) Unwrap() error { return e.Err }
