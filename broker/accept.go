package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/amtsbote/amtsbote/store"
)

// Intake is a verified, parsed and routed package, ready to be accepted.
type Intake struct {
	MessageID   string
	Sender      string
	SignerID    string
	LeikaKey    string
	ServiceName string
	Place       string
	AreaARS     string
	AreaName    string
	OfficeID    string
	OfficeName  string
	// Targets is the office's channel plan, preferred first. Empty means no push
	// channel: the package is held for the office to fetch.
	Targets []store.TargetRef
	// Package is the exact signed bytes as received; they are stored and forwarded
	// unchanged.
	Package     []byte
	Attachments []AttachmentIn
}

// AttachmentIn is an attachment whose bytes were already checked against the signed digest.
type AttachmentIn struct {
	Meta    store.AttachmentMeta
	Content []byte
}

// Accepted is the outcome of Accept.
type Accepted struct {
	Submission *store.Submission
	Receipt    []byte // the signed Eingangsbestaetigung (the first one, for a duplicate)
	Created    bool   // false: the sender had sent this message before
}

// Lookup returns an earlier submission of the same message by the same sender, so a
// retrying portal gets its first receipt back without routing again. A hit is
// counted as a duplicate submission.
func (b *Broker) Lookup(sender, messageID string) (*Accepted, error) {
	s, err := b.db.FindByMessage(sender, messageID)
	if err != nil {
		return nil, err
	}
	r, err := b.db.Receipt(s.ID, ReceiptIntake)
	if err != nil {
		return nil, err
	}
	b.metrics.duplicates.Inc()
	return &Accepted{Submission: s, Receipt: r}, nil
}

// Accept stores the package durably and queues its delivery. When it returns without
// error, the package survives any crash. A repeated (sender, message id) returns the
// first submission and receipt with Created=false and stores no record (the check is
// inside the storing transaction; callers that want to skip work for a repeat call
// Lookup first, as intake does).
func (b *Broker) Accept(ctx context.Context, in Intake) (*Accepted, error) {
	if b.stopped.Load() {
		return nil, ErrStopped
	}
	// Blobs first: the record that references them is committed only after they are
	// on disk. A crash in between leaves an unreferenced blob, never a dangling record;
	// a repeat writes nothing new, since blobs are named by their content.
	pkgDigest, err := b.db.Blobs.Put(in.Package)
	if err != nil {
		return nil, fmt.Errorf("broker: store package: %w", err)
	}
	metas := make([]store.AttachmentMeta, 0, len(in.Attachments))
	for _, a := range in.Attachments {
		d, err := b.db.Blobs.Put(a.Content)
		if err != nil {
			return nil, fmt.Errorf("broker: store attachment: %w", err)
		}
		m := a.Meta
		m.SHA256, m.Size = d, int64(len(a.Content))
		metas = append(metas, m)
	}
	now := time.Now().UTC()
	s := &store.Submission{
		ID: newID(), DeliveryID: uuid.NewString(),
		MessageID: in.MessageID, Sender: in.Sender, SignerID: in.SignerID,
		LeikaKey: in.LeikaKey, ServiceName: in.ServiceName, Place: in.Place,
		AreaARS: in.AreaARS, AreaName: in.AreaName, OfficeID: in.OfficeID, OfficeName: in.OfficeName,
		Targets: in.Targets, Generation: 1,
		PackageSHA256: pkgDigest, PackageSize: int64(len(in.Package)), Attachments: metas,
		ReceivedAt: now, UpdatedAt: now,
	}
	evs := []store.Event{
		{At: now, Type: store.EventReceived, Detail: fmt.Sprintf("signed by %s, %d bytes, sha256 %s", in.SignerID, len(in.Package), pkgDigest)},
		{At: now, Type: store.EventRouted, Detail: fmt.Sprintf("%s (%s) for %s", in.OfficeID, in.AreaName, in.LeikaKey)},
	}
	if t, ok := s.CurrentTarget(); ok {
		s.State = store.StateQueued
		evs = append(evs, store.Event{At: now, Type: store.EventQueued, Channel: t.Channel})
	} else {
		s.State = store.StateHeld
		evs = append(evs, store.Event{At: now, Type: store.EventHeld, Detail: "office has no push channel; ready for pickup"})
	}
	receipt, err := b.signer.SignIntake(s)
	if err != nil {
		return nil, fmt.Errorf("broker: sign receipt: %w", err)
	}
	stored, storedReceipt, created, err := b.db.Accept(ctx, s, evs, ReceiptIntake, receipt)
	if err != nil {
		return nil, err
	}
	if !created {
		b.metrics.duplicates.Inc()
		return &Accepted{Submission: stored, Receipt: storedReceipt}, nil
	}
	b.metrics.accepted.Inc()
	b.emit(stored, evs)
	if stored.State.Dispatchable() {
		b.enqueue(stored.ID)
	}
	return &Accepted{Submission: stored, Receipt: storedReceipt, Created: true}, nil
}

// Digest returns the hex SHA-256 the store uses to name bytes.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
