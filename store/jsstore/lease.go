package jsstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A lease is one message on its own subject of the store's stream, "lease.<name>.<slot>",
// written with an expected last subject sequence: 0 for the first taker of a slot,
// or the sequence of a "released" value left by a holder whose run failed. The
// stream keeps one message per subject and the server drops each lease message
// after its TTL, so the subjects of past slots do not pile up. The record listings
// read "sub.*", "outbox.*" and such, never "lease.*".

// leaseReleased is the value a holder leaves when it gives its slot back.
const leaseReleased = "released"

var _ store.Leaser = (*Store)(nil)

// TryLease implements store.Leaser.
func (s *Store) TryLease(ctx context.Context, name string, slot time.Time, ttl time.Duration) (bool, func(), error) {
	// Bounded like every other operation of the store: the caller's context may
	// have no end (the broker's), and a cluster without quorum must not hold the
	// periodic job for good.
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	subject := s.subject("lease." + encodeKey(name) + "." + strconv.FormatInt(slot.Unix(), 10))
	var last uint64
	m, err := s.lastRaw(ctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return false, nil, fmt.Errorf("jsstore: lease %s: %w", name, err)
	case string(m.Data) != leaseReleased:
		return false, nil, nil // another gateway holds it
	default:
		last = m.Sequence
	}
	holder := newID()
	if s.beforeLeaseWrite != nil {
		s.beforeLeaseWrite()
	}
	// send, not write: a lease another gateway took first is no write
	// conflict (amtsbote_store_write_conflicts_total counts the writes read
	// again and rerun), and the release's neither.
	if err := s.send(ctx, []*nats.Msg{leaseMsg(subject, holder, last, ttl)}); err != nil {
		if errors.Is(err, errConflict) {
			return false, nil, nil // another gateway came first
		}
		// Ambiguous or refused: not taken as held. If it was stored after all,
		// nobody runs this slot, and the next one is free again.
		return false, nil, fmt.Errorf("jsstore: lease %s: %w", name, err)
	}
	release := func() {
		ctx, cancel := s.ctx()
		defer cancel()
		m, err := s.lastRaw(ctx, subject)
		if err != nil || string(m.Data) != holder {
			return // expired meanwhile, or no longer ours
		}
		_ = s.send(ctx, []*nats.Msg{leaseMsg(subject, leaseReleased, m.Sequence, ttl)})
	}
	return true, release, nil
}

func leaseMsg(subject, value string, lastSeq uint64, ttl time.Duration) *nats.Msg {
	m := expect(subject, []byte(value), lastSeq)
	m.Header.Set(hdrTTL, max(ttl, time.Second).Round(time.Second).String())
	return m
}
