package broker

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/store"
)

// Get returns a submission.
func (b *Broker) Get(id string) (*store.Submission, error) { return b.db.Get(id) }

// Events returns a submission's event log.
func (b *Broker) Events(id string) ([]store.Event, error) { return b.db.Events(id) }

// Receipt returns a signed receipt (ReceiptIntake or ReceiptDelivery).
func (b *Broker) Receipt(id, kind string) ([]byte, error) { return b.db.Receipt(id, kind) }

// ForOffice returns the submission if it is addressed to the office, and ErrNotFound
// otherwise: an office must not even learn that another office's submission exists.
func (b *Broker) ForOffice(officeID, id string) (*store.Submission, error) {
	s, err := b.db.Get(id)
	if err != nil {
		return nil, err
	}
	if s.OfficeID != officeID {
		return nil, fmt.Errorf("submission %s: %w", id, ErrNotFound)
	}
	return s, nil
}

// OfficeInbox lists an office's submissions, oldest first, for paging.
func (b *Broker) OfficeInbox(officeID, after string, limit int) ([]*store.Submission, error) {
	return b.db.ByOffice(officeID, after, limit)
}

// OpenPackage opens the exact signed package bytes of a submission.
func (b *Broker) OpenPackage(ctx context.Context, s *store.Submission) (io.ReadCloser, error) {
	return b.db.Blobs.Open(ctx, s.PackageSHA256)
}

// OpenAttachment opens one attachment of a submission by its id.
func (b *Broker) OpenAttachment(ctx context.Context, s *store.Submission, attID string) (store.AttachmentMeta, io.ReadCloser, error) {
	for _, a := range s.Attachments {
		if a.ID == attID {
			rc, err := b.db.Blobs.Open(ctx, a.SHA256)
			return a, rc, err
		}
	}
	return store.AttachmentMeta{}, nil, fmt.Errorf("attachment %s: %w", attID, ErrNotFound)
}

// Fetched records that the office's system fetched the package by API. The first fetch
// is a delivery: the office has the package, whatever push channel was still pending.
// Like every office call it answers ErrNotFound for another office's submission.
func (b *Broker) Fetched(officeID, id string) error {
	s, err := b.ForOffice(officeID, id)
	if err != nil {
		return err
	}
	if s.DeliveredAt != nil {
		return nil
	}
	conf := adapters.Confirmation{Receiver: "office " + officeID + " (pull API)", At: time.Now().UTC()}
	return b.markDelivered(id, store.TargetRef{Channel: "api"}, conf, func(*store.Submission) bool { return true })
}

// Decision outcomes.
const (
	OutcomeAccepted = "accepted"
	OutcomeRejected = "rejected"
)

// Decide records the office's answer. Repeating the same answer is a no-op; changing
// an answer already given is ErrConflict.
func (b *Broker) Decide(officeID, id, outcome, reason string) (*store.Submission, error) {
	if outcome != OutcomeAccepted && outcome != OutcomeRejected {
		return nil, fmt.Errorf("outcome %q: %w", outcome, ErrConflict)
	}
	// An office may decide on a package it fetched before the push was confirmed.
	if err := b.Fetched(officeID, id); err != nil {
		return nil, err
	}
	var evs []store.Event
	s, err := b.db.Update(id, func(s *store.Submission) ([]store.Event, error) {
		if s.Decision != nil {
			if s.Decision.Outcome == outcome {
				return nil, nil
			}
			return nil, fmt.Errorf("already %s: %w", s.Decision.Outcome, ErrConflict)
		}
		s.Decision = &store.Decision{Outcome: outcome, Reason: reason, At: time.Now().UTC()}
		s.State = store.State(outcome)
		s.NextAttemptAt = time.Time{}
		typ := store.EventAccepted
		if outcome == OutcomeRejected {
			typ = store.EventRejected
		}
		evs = []store.Event{{Type: typ, Detail: reason}}
		return evs, nil
	})
	if err != nil {
		return nil, err
	}
	b.emit(s, evs)
	return s, nil
}

// Redeliver queues a held submission again from its first channel (the operator's
// replay after fixing an office's endpoint).
func (b *Broker) Redeliver(id string) (*store.Submission, error) {
	var evs []store.Event
	s, err := b.db.Update(id, func(s *store.Submission) ([]store.Event, error) {
		if s.State != store.StateHeld || len(s.Targets) == 0 {
			return nil, fmt.Errorf("submission is %s: %w", s.State, ErrConflict)
		}
		s.TargetIndex, s.Attempts = 0, 0
		s.Generation++
		s.State = store.StateQueued
		s.NextAttemptAt = time.Time{}
		evs = []store.Event{{Type: store.EventRequeued, Channel: s.Targets[0].Channel, Detail: "requeued by operator"}}
		return evs, nil
	})
	if err != nil {
		return nil, err
	}
	b.emit(s, evs)
	b.enqueue(s.ID)
	return s, nil
}

// Scan walks all submissions (admin listings). fn returns false to stop.
func (b *Broker) Scan(fn func(*store.Submission) bool) error { return b.db.Scan(fn) }
