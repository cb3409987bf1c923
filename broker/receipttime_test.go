package broker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// timeSigner writes the confirmation time it is given into the receipt, as
// GatewaySigner does (r.Time = c.At).
type timeSigner struct{ fakeSigner }

func (timeSigner) SignDelivery(s *submission.Submission, channel string, c submission.Confirmation) ([]byte, error) {
	return []byte(c.At.UTC().Format(time.RFC3339Nano)), nil
}

func startTimeEnv(t *testing.T, a adapters.Adapter, sg ReceiptSigner) (*env, *Broker) {
	t.Helper()
	e := startEnvWith(t, t.TempDir(), testConfig, testChannels, nil, sg, nil, a)
	return e, e.b
}

func receiptTimeIsRecords(t *testing.T, db *store.DB, b *Broker, id string) {
	t.Helper()
	cur, _ := b.Submission(id)
	rc, err := db.Receipt(id, ReceiptDelivery)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(rc), cur.DeliveredAt.UTC().Format(time.RFC3339Nano); got != want {
		t.Errorf("the Zustellbestaetigung names %s, the record's DeliveredAt is %s (received %s, handed over %v)",
			got, want, cur.ReceivedAt.Format(time.RFC3339Nano), cur.HandedOverAt)
	}
}

// TestReceiptNamesTheRecordsDeliveryTime: a peer whose clock runs 100 days
// behind reports the delivery. The record's DeliveredAt is clamped to not
// before the intake; the signed Zustellbestaetigung named the unclamped time,
// "delivered" before it was received (an audit, 2026-12-05).
func TestReceiptNamesTheRecordsDeliveryTime(t *testing.T) {
	e, b := startTimeEnv(t, &scripted{channel: "primary", block: make(chan struct{})}, timeSigner{})
	a, err := b.Receive(context.Background(), intake("peer-clock-receipt", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	if _, err := b.RecordForwarded(id, submission.Forward{Peer: "amtsbote-by", PeerSubmissionID: "p-1", At: time.Now().UTC()}, []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	past := time.Now().UTC().Add(-100 * 24 * time.Hour)
	if _, err := b.RecordPeerStatus(id, submission.PeerStatus{Peer: "amtsbote-by", State: submission.StateDelivered, Receiver: "office x", DeliveredAt: &past}); err != nil {
		t.Fatal(err)
	}
	receiptTimeIsRecords(t, e.db, b, id)
}

// handOverAdapter hands over (Pending) once released.
type handOverAdapter struct{ release chan struct{} }

func (p *handOverAdapter) Channel() string { return "api" }
func (p *handOverAdapter) Close() error    { return nil }
func (p *handOverAdapter) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, error) {
	select {
	case <-p.release:
	case <-ctx.Done():
		return adapters.Confirmation{}, ctx.Err()
	}
	return adapters.Confirmation{Pending: true, Receiver: "pull API", At: time.Now().UTC()}, nil
}

// handOverWhileSigning is timeSigner that, on its first delivery receipt, lets
// the dispatcher hand the package over and waits until the record says so.
type handOverWhileSigning struct {
	timeSigner
	release    chan struct{}
	handedOver func() bool
	once       sync.Once
}

func (s *handOverWhileSigning) SignDelivery(sub *submission.Submission, ch string, c submission.Confirmation) ([]byte, error) {
	s.once.Do(func() {
		close(s.release)
		for !s.handedOver() {
			time.Sleep(5 * time.Millisecond)
		}
	})
	return s.timeSigner.SignDelivery(sub, ch, c)
}

// TestPickupRacingTheHandOverSignsTheRecordsTime: the office's system fetches
// a package it listed as queued while the dispatcher hands it over. The
// record's delivery time is raised to the hand-over; the Zustellbestaetigung
// kept the earlier time it had been signed with, and the delivered event stood
// before the hand-over (an audit, 2026-12-05). The receipt is signed again.
func TestPickupRacingTheHandOverSignsTheRecordsTime(t *testing.T) {
	pa := &handOverAdapter{release: make(chan struct{})}
	var b *Broker
	var id string
	sg := &handOverWhileSigning{release: pa.release, handedOver: func() bool {
		s, err := b.Submission(id)
		return err == nil && s.HandedOverAt != nil
	}}
	e, br := startTimeEnv(t, pa, sg)
	b = br
	a, err := b.Receive(context.Background(), intake("race-handover", "api"))
	if err != nil {
		t.Fatal(err)
	}
	id = a.Submission.ID
	if _, err := b.Confirm(context.Background(), "office-a", id, Pickup{Channel: "api", Receiver: "office-a (pull API)"}); err != nil {
		t.Fatal(err)
	}
	receiptTimeIsRecords(t, e.db, b, id)
	evs, err := e.db.Events(id)
	if err != nil {
		t.Fatal(err)
	}
	var handed, delivered time.Time
	for _, ev := range evs {
		switch ev.Type {
		case submission.EventHandedOver:
			handed = ev.At
		case submission.EventDelivered:
			delivered = ev.At
		}
	}
	if handed.IsZero() || delivered.Before(handed) {
		t.Errorf("events: handed over %v, delivered %v: the delivery stands before the hand-over", handed, delivered)
	}
}

// movingSigner is timeSigner that, while moving is set, has the record handed
// over again a microsecond later each time it signs a delivery receipt, so the
// time the record would keep differs from the signed one on every try.
type movingSigner struct {
	timeSigner
	db     *store.DB
	moving atomic.Bool
	moves  atomic.Int64
}

func (s *movingSigner) SignDelivery(sub *submission.Submission, ch string, c submission.Confirmation) ([]byte, error) {
	if s.moving.Load() {
		s.moves.Add(1)
		if _, err := s.db.Update(sub.ID, func(cur *submission.Submission) ([]submission.Event, error) {
			// Later, as a dispatcher handing the package over again would (a
			// reoffer, then the hand-over), which raises the delivery time's lower
			// bound past the signed one; the test needs only the time to move.
			at := cur.HandedOverAt.Add(time.Microsecond)
			cur.HandedOverAt = &at
			return []submission.Event{{At: at, Type: submission.EventHandedOver, Channel: ch, Detail: "handed over again (test)"}}, nil
		}); err != nil {
			return nil, err
		}
	}
	return s.timeSigner.SignDelivery(sub, ch, c)
}

// TestRecordMovingWhileSigningRecordsNoOtherTime: confirmSub signs the
// Zustellbestaetigung again when the record moved while it was signed, but
// after three re-signs it committed anyway, with a receipt naming another time
// than the record's deliveredAt (docs/signing.md says they are the same; a
// review). A record that keeps moving now gets no delivery and no receipt, and
// the error is a transient one (ErrUnavailable: an office's pickup gets 503 and
// asks again); once it holds still the confirmation is recorded as signed.
func TestRecordMovingWhileSigningRecordsNoOtherTime(t *testing.T) {
	dir := t.TempDir()
	handedOver(t, dir, handed{"office-a", "transfer", 1})
	id := "01900000-0000-7000-8000-000000000000"
	cfg := testConfig
	cfg.ConfirmEvery = time.Hour
	sg := &movingSigner{}
	e := startEnvWith(t, dir, cfg, testChannels, nil, sg, nil, &scripted{channel: "transfer"})
	sg.db = e.db
	b := e.b
	// An office system's clock far behind: the record keeps the hand-over time,
	// which the signer moves each time.
	c := submission.Confirmation{Receiver: "office-a (import)", At: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}
	confirm := func() error {
		return b.confirm(id, c, func(cur *submission.Submission, now time.Time, sc submission.Confirmation) ([]submission.Event, error) {
			return cur.Confirm(now, "transfer", sc)
		})
	}
	sg.moving.Store(true)
	err := confirm()
	cur, _ := b.Submission(id)
	if cur.DeliveredAt != nil {
		if _, rerr := e.db.Receipt(id, ReceiptDelivery); rerr == nil {
			receiptTimeIsRecords(t, e.db, b, id)
		}
		t.Fatalf("a record that moved at each of %d signings was recorded delivered (err %v)", sg.moves.Load(), err)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a record that kept moving: err %v, want one wrapping ErrUnavailable (the callers retry it)", err)
	}
	if _, err := e.db.Receipt(id, ReceiptDelivery); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a Zustellbestaetigung was stored for an unrecorded delivery (err %v)", err)
	}
	sg.moving.Store(false)
	if err := confirm(); err != nil {
		t.Fatal(err)
	}
	if cur, _ := b.Submission(id); cur.DeliveredAt == nil {
		t.Fatal("the record held still and was not recorded delivered")
	}
	receiptTimeIsRecords(t, e.db, b, id)
}
