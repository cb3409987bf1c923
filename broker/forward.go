package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// Forwarded lists the submissions of the given (peer-) offices that were forwarded
// and whose office has not decided yet: the ones to ask the peers about.
func (b *Broker) Forwarded(ctx context.Context, officeIDs []string) ([]*submission.Submission, error) {
	var out []*submission.Submission
	for _, office := range officeIDs {
		err := b.db.WalkOffice(office, "", func(s *submission.Submission) bool {
			if s.Forward != nil && !s.State.Final() {
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
