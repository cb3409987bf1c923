package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// ReceiptPeerIntake is the kind under which the peer gateway's signed
// Eingangsbestaetigung of a forwarded package is stored at the forwarding gateway.
const ReceiptPeerIntake = "PeerEingangsbestaetigung"

// ReceiveForwarded is Receive for a package a peer gateway forwarded: the same
// durable Eingang (blobs fsynced, one transaction with the events, outbox entry,
// idempotency key by the ORIGINAL sender and message id, and the signed
// Eingangsbestaetigung), with the record's Origin set in that same transaction. A
// repeated hop returns the first submission and receipt with Created=false.
func (b *Broker) ReceiveForwarded(ctx context.Context, in Intake, origin submission.Origin) (*Received, error) {
	in.Origin = &origin
	return b.Receive(ctx, in)
}

// RecordForwarded records that the peer gateway received a package (state
// forwarded), with the peer's signed Eingangsbestaetigung in the same transaction.
// The peer adapter calls it before its Deliver returns, so the broker's own
// recording of the attempt finds the submission moved on and drops it as stale.
func (b *Broker) RecordForwarded(id string, f submission.Forward, peerReceipt []byte) (*submission.Submission, error) {
	// Forwarded is never stale (an illegal forward is ErrConflict), so commit's
	// stale rule does not apply here.
	return b.commit(id, ReceiptPeerIntake, peerReceipt, func(cur *submission.Submission) ([]submission.Event, error) {
		return cur.Forwarded(time.Now().UTC(), f)
	})
}

// RecordPeerStatus applies what the peer reported about a forwarded package. When it
// says the peer's office has the package, this gateway's Zustellbestaetigung (channel
// peer, the peer's office as receiver) is signed and stored with the delivered event,
// as for any other channel.
func (b *Broker) RecordPeerStatus(id string, u submission.PeerStatus) (*submission.Submission, error) {
	cur, err := b.db.Get(id)
	if err != nil {
		return nil, err
	}
	if cur.ImpliesDelivery(u) {
		c := submission.Confirmation{Receiver: u.Receiver}
		if u.DeliveredAt != nil {
			c.At = *u.DeliveredAt
		}
		return b.confirmSub(id, nil, c, func(s *submission.Submission, now time.Time, _ submission.Confirmation) ([]submission.Event, error) {
			if !s.ImpliesDelivery(u) {
				// Someone else recorded the delivery meanwhile: no receipt from here.
				return nil, fmt.Errorf("%w: delivery recorded meanwhile", submission.ErrStale)
			}
			return s.PeerUpdate(now, u)
		})
	}
	return b.changeSub(id, func(s *submission.Submission, now time.Time) ([]submission.Event, error) {
		return s.PeerUpdate(now, u)
	})
}

// RecordPeerReply stores a reply of the office at the peer gateway to a package
// forwarded there (submission.AddPeerReply): the bytes r.Size and r.SHA256
// announce, which the peer's signed status answer named, read from body as it
// streams, fsynced, then recorded with its event in one transaction. Bytes that
// differ from what was announced store nothing (store.ErrDigestMismatch,
// store.ErrTooLarge). It returns the reply as stored; a reply recorded before
// (the same r.MessageID, the peer's id) is returned without reading body. A
// case whose bytes were removed takes none (ErrBytesRemoved), as for a reply
// of one of this gateway's offices.
func (b *Broker) RecordPeerReply(ctx context.Context, id, peer string, r submission.Reply, body io.Reader) (submission.Reply, error) {
	s, err := b.db.Get(id)
	if err != nil {
		return submission.Reply{}, err
	}
	r.ID, r.Channel = newID(), channel.Peer
	for _, have := range s.Replies {
		if have.MessageID == r.MessageID {
			return have, nil
		}
	}
	// Asked before the bytes are stored (as Reply does): a refusal stores none.
	if err := acceptsReply(s, r); err != nil {
		return submission.Reply{}, err
	}
	if _, err := s.Clone().AddPeerReply(time.Now().UTC(), peer, r); err != nil {
		return submission.Reply{}, asConflict(err)
	}
	if r.Size < 0 || r.Size > MaxReplyBytes {
		return submission.Reply{}, fmt.Errorf("%w: reply of %d bytes exceeds %d", ErrConflict, r.Size, MaxReplyBytes)
	}
	p, err := b.db.Blobs().PutStream(ctx, body, r.Size, r.SHA256)
	if err != nil {
		return submission.Reply{}, fmt.Errorf("broker: store the peer's reply: %w", err)
	}
	// Bytes this call stored and no record takes are removed at once, as intake
	// removes the parts of a refused package: a case erased while its reply was
	// fetched kept the applicant's Bescheid on disk until the retention's sweep.
	discard := func() {
		if err := store.DiscardNew(b.db.Blobs(), p); err != nil {
			b.log.Warn("could not remove the bytes of a peer's reply that was not recorded; the retention sweep will", "submission", id, "err", err)
		}
	}
	if p.Size != r.Size {
		discard()
		return submission.Reply{}, fmt.Errorf("broker: the peer's reply has %d bytes, %d announced: %w", p.Size, r.Size, store.ErrDigestMismatch)
	}
	s, err = b.changeSub(id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		if err := acceptsReply(cur, r); err != nil {
			return nil, err
		}
		return cur.AddPeerReply(now, peer, r)
	})
	if err != nil {
		// Only on a refusal, which wrote nothing: a store's error may come after
		// a commit it could not confirm (a cluster's lost ack), whose record
		// would then name removed bytes.
		if errors.Is(err, ErrBytesRemoved) || errors.Is(err, submission.ErrIllegal) || errors.Is(err, ErrConflict) {
			discard()
		}
		return submission.Reply{}, err
	}
	for _, have := range s.Replies {
		if have.MessageID == r.MessageID {
			return have, nil
		}
	}
	return r, nil
}

// OpenReplyOf opens the bytes of one reply of s: a peer gateway fetches a reply
// to a package it forwarded here (the federation checks that it did). An id s
// never had is ErrNotFound; a case whose bytes were removed, ErrBytesRemoved.
func (b *Broker) OpenReplyOf(ctx context.Context, s *submission.Submission, replyID string) (submission.Reply, io.ReadCloser, error) {
	return b.openReply(ctx, s, replyID)
}

// Forwarded lists the submissions of the given (peer-) offices that were forwarded
// and whose office has not decided yet, and those decided since `since` whose
// bytes are still kept (their office's replies may still come): the ones to ask
// the peers about.
func (b *Broker) Forwarded(ctx context.Context, officeIDs []string, since time.Time) ([]*submission.Submission, error) {
	var out []*submission.Submission
	for _, office := range officeIDs {
		err := b.db.WalkOffice(office, "", func(s *submission.Submission) bool {
			if s.Forward != nil && (!s.State.Final() || s.BytesRemovedAt == nil && s.Decision != nil && !s.Decision.DecidedLocally().Before(since)) {
				out = append(out, s)
			}
			return ctx.Err() == nil
		})
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	return out, ctx.Err()
}

// FindMessage returns the submission a sender made with a message id (the receiving
// side of the Portalverbund answers status questions by the original sender and
// NachrichtID, which both gateways know). Unlike Lookup it counts no duplicate.
func (b *Broker) FindMessage(sender, messageID string) (*submission.Submission, error) {
	return b.db.FindByMessage(sender, messageID)
}

// IntakeReceipt returns the signed Eingangsbestaetigung of a submission.
func (b *Broker) IntakeReceipt(id string) ([]byte, error) { return b.db.Receipt(id, ReceiptIntake) }
