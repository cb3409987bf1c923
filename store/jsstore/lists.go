package jsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/nats-io/nats.go/jetstream"
)

// eachIn calls fn with the subject, value and metadata (the time it was stored, its
// stream sequence) of every message under the filters (a key's last value; removed
// keys skipped), through a short-lived consumer. It ends at the messages present when
// it started (and maybe some added since).
//
// The listing consumer has one replica, and the server may place it on a node that
// has restarted and has not caught up on the stream yet (see Blobs.Open). Such a
// consumer used to be asked again and again until Timeout; now one that delivers
// nothing within RequestTimeout while messages are pending is replaced by a new
// one, placed anew. With reset nil the subjects already listed are skipped; with
// reset set, the new consumer lists everything again after reset is called, so one
// listing never mixes what two replicas held (ids relies on that). The whole
// listing gives up after Timeout without progress.
//
// first, when it points to a func (tests: Harness.MidListing), runs once
// right after the listing read its first message, and is set to nil; that
// message is fetched alone, so every later one is read after first ran.
func eachIn(ctx context.Context, stream jetstream.Stream, opts Options, filters []string, headersOnly bool, reset func(), first *func(),
	fn func(subject string, data []byte, md *jetstream.MsgMetadata) (bool, error)) error {
	seen := map[string]bool{}
	progress := time.Now()
	for round := 0; ; round++ {
		if round > 0 && reset != nil {
			clear(seen)
			reset()
		}
		done, err := eachRound(ctx, stream, opts, filters, headersOnly, seen, &progress, first, fn)
		if done || err != nil {
			return err
		}
		if time.Since(progress) > opts.Timeout || !sleep(ctx, backoff(round)) {
			return fmt.Errorf("jsstore: list %s: %w: no messages within %s from %d consumers", filters[0], store.ErrUnavailable, opts.Timeout, round+1)
		}
	}
}

// eachRound lists through one consumer. It returns done=false, nil when the
// consumer delivered nothing within RequestTimeout while messages were pending.
func eachRound(ctx context.Context, stream jetstream.Stream, opts Options, filters []string, headersOnly bool, seen map[string]bool,
	progress *time.Time, first *func(), fn func(subject string, data []byte, md *jetstream.MsgMetadata) (bool, error)) (bool, error) {
	cc := jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		HeadersOnly:       headersOnly,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	}
	if len(filters) == 1 {
		cc.FilterSubject = filters[0]
	} else {
		cc.FilterSubjects = filters
	}
	var cons jetstream.Consumer
	var err error
	for attempt := 0; ; attempt++ {
		c, cancel := context.WithTimeout(ctx, opts.RequestTimeout)
		cons, err = stream.CreateConsumer(c, cc)
		cancel()
		if err == nil {
			break
		}
		if !transient(err) || time.Since(*progress) > opts.Timeout || !sleep(ctx, backoff(attempt)) {
			return false, fmt.Errorf("jsstore: list %s: %w", filters[0], unavailable(err))
		}
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), opts.RequestTimeout)
		_ = stream.DeleteConsumer(c, cons.CachedInfo().Name)
		cancel()
	}()
	pending := cons.CachedInfo().NumPending
	for attempt := 0; pending > 0; attempt++ {
		// Ask for exactly what is pending: Fetch returns when the batch is full.
		n := min(pending, 256)
		if first != nil && *first != nil {
			n = 1
		}
		batch, err := cons.Fetch(int(n), jetstream.FetchMaxWait(opts.RequestTimeout))
		got := 0
		if err == nil {
			for m := range batch.Messages() {
				got++
				md, err := m.Metadata()
				if err != nil {
					return false, fmt.Errorf("jsstore: list %s: %w", filters[0], err)
				}
				pending = md.NumPending
				if seen[m.Subject()] {
					continue // listed already (through an earlier consumer, or since changed again)
				}
				// A removal does not count as listed: the consumer goes on past the
				// messages that were there when it started, and a key removed then
				// and written again while it lists (a case handed over before and
				// back in the outbox now) comes again, and was passed over as seen
				// — the office's waiting list lost a case that waited throughout.
				if op := m.Headers().Get(hdrKVOp); op == "DEL" || op == "PURGE" {
					continue
				}
				seen[m.Subject()] = true
				more, err := fn(m.Subject(), m.Data(), md)
				if err != nil || !more {
					return true, err
				}
			}
			err = batch.Error()
		}
		if first != nil && *first != nil && got > 0 {
			f := *first
			*first = nil
			f()
		}
		if got > 0 {
			*progress, attempt = time.Now(), 0
			continue
		}
		if err == nil || (transient(err) && attempt > 0) {
			return false, nil // nothing from this consumer: a new one
		}
		if !transient(err) || time.Since(*progress) > opts.Timeout || !sleep(ctx, backoff(attempt)) {
			return false, fmt.Errorf("jsstore: list %s: %w", filters[0], unavailable(err))
		}
	}
	return true, nil
}

// ids lists the decoded last tokens of the keys under filter, with every write
// acknowledged before the call: an index read right after the write that changed
// it (the office's listing after its webhook, the broker's outbox check) has it.
//
// A write is acknowledged once a quorum of the stream's replicas stored it, but
// the listing consumer's one replica may be the one that has not yet: its listing
// would be older than the write. So ids first writes a mark (listedKey) and lists
// it with the keys: the replica that delivers the mark at the sequence the write
// of it got has applied everything acknowledged before. An older mark, or none,
// means a lagging replica, and the listing starts again on a new consumer.
func (s *Store) ids(filter string) ([]string, error) {
	var ids []string
	err := s.keysUnder([]string{filter}, false, func() { ids = nil }, func(id string, _ []byte) {
		ids = append(ids, id)
	})
	return ids, err
}

// keysUnder is ids with the values (withValues) and under several filters: add
// gets each key's decoded last token and value, reset is called when a listing
// starts again.
func (s *Store) keysUnder(filters []string, withValues bool, reset func(), add func(id string, v []byte)) error {
	_, err := s.keysUnderAt(filters, withValues, reset, add)
	return err
}

// keysUnderAt is keysUnder that also returns the stream sequence of the
// listing's mark: the listing has every write up to it (officeIDs goes on from
// there).
func (s *Store) keysUnderAt(filters []string, withValues bool, reset func(), add func(id string, v []byte)) (uint64, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	return s.subjectsUnderAt(ctx, filters, withValues, reset, func(subject string, data []byte) error {
		tok := subject[strings.LastIndexByte(subject, '.')+1:]
		id, err := decodeKey(tok)
		if err != nil {
			return fmt.Errorf("jsstore: key %s: %w", subject, err)
		}
		s.stats.listedKeys.Add(1)
		add(id, data)
		return nil
	})
}

// subjectsUnderAt is keysUnderAt with the whole subject of each key, within
// ctx: Reindex lists every index key of the store, which takes longer than one
// call's Timeout on a large one, and needs the subject to tell an office's key
// from another's.
func (s *Store) subjectsUnderAt(ctx context.Context, filters []string, withValues bool, reset func(), add func(subject string, v []byte) error) (uint64, error) {
	mark := s.subject(listedKey)
	var first func()
	if f := s.midListing.Swap(nil); f != nil {
		first = *f
	}
	for round := 0; ; round++ {
		at, err := s.markListing(ctx, mark)
		if err != nil {
			return 0, err
		}
		fresh := false
		reset()
		err = eachIn(ctx, s.kv, s.opts, append(slices.Clone(filters), mark), !withValues, func() { reset(); fresh = false }, &first,
			func(subject string, data []byte, md *jetstream.MsgMetadata) (bool, error) {
				if subject == mark {
					fresh = md.Sequence.Stream >= at
					return true, nil
				}
				if err := add(subject, data); err != nil {
					return false, err
				}
				return true, nil
			})
		if err != nil {
			return 0, unavailable(err)
		}
		if fresh {
			return at, nil
		}
		s.stats.staleListings.Add(1)
		// A ctx without an end (Reindex's) is bounded by rounds instead: a
		// replica that never catches up must not hold the repair for good.
		_, bounded := ctx.Deadline()
		if !bounded && round+1 >= staleRounds || !sleep(ctx, backoff(round)) {
			return 0, fmt.Errorf("jsstore: list %s: %w: no replica caught up within %s", filters[0], store.ErrUnavailable, s.opts.Timeout)
		}
	}
}

// staleRounds bounds the listings subjectsUnderAt starts again, when its ctx
// has no deadline that does.
const staleRounds = 20

// listedKey is the mark ids writes before it lists (a key outside every index).
const listedKey = "meta.listed"

// markListing writes the listing mark and returns the stream sequence it got.
func (s *Store) markListing(ctx context.Context, subject string) (uint64, error) {
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		ack, err := s.js.Publish(rctx, subject, nil)
		cancel()
		if err == nil {
			return ack.Sequence, nil
		}
		if !transient(err) || !sleep(ctx, backoff(attempt)) {
			return 0, fmt.Errorf("jsstore: listing mark: %w", unavailable(err))
		}
	}
}

// Outbox lists the ids of submissions that still need a delivery attempt.
func (s *Store) Outbox() ([]string, error) { return s.ids(s.subject("outbox.*")) }

// HandedOver lists the submissions handed over to a channel whose office has not
// confirmed yet, with their keys' values (store.WaitingValue).
func (s *Store) HandedOver() ([]store.Waiting, error) {
	var out []store.Waiting
	err := s.keysUnder([]string{s.subject("handed.*")}, true, func() { out = nil }, func(id string, v []byte) {
		out = append(out, store.ParseWaiting(id, v))
	})
	return out, err
}

// Held lists the submissions that wait for a person, with each entry's value.
func (s *Store) Held() ([]store.Waiting, error) {
	var out []store.Waiting
	err := s.keysUnder([]string{s.subject("held.*")}, true, func() { out = nil }, func(id string, v []byte) {
		out = append(out, store.ParseWaiting(id, v))
	})
	return out, err
}

// Undecided lists the delivered submissions whose office's decision is still to
// come, with each entry's value.
func (s *Store) Undecided() ([]store.Waiting, error) {
	var out []store.Waiting
	err := s.keysUnder([]string{s.subject("undecided.*")}, true, func() { out = nil }, func(id string, v []byte) {
		out = append(out, store.ParseWaiting(id, v))
	})
	return out, err
}

// Waiting implements store.Store: the three sets in one listing (so one replica's
// view), with their values (store.WaitingValue).
func (s *Store) Waiting(officeID string) ([]store.Waiting, error) {
	var out []store.Waiting
	at := map[string]int{} // an id's place in out
	err := s.keysUnder([]string{s.subject("outbox.*"), s.subject("handed.*"), s.subject("held.*")}, true,
		func() { out = nil; clear(at) }, func(id string, v []byte) {
			if !store.WaitingFor(v, officeID) {
				return
			}
			// The listing goes on past the keys there when it began (eachIn): an id
			// that moved from one set to another meanwhile comes under its new key
			// too, later, and it is the newer entry.
			if i, ok := at[id]; ok {
				out[i] = store.ParseWaiting(id, v)
				return
			}
			at[id] = len(out)
			out = append(out, store.ParseWaiting(id, v))
		})
	if err != nil {
		return nil, err
	}
	// Sorted, the three lists are one.
	slices.SortFunc(out, func(a, b store.Waiting) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// WalkOffice calls fn for the submissions addressed to an office, oldest first (by
// id; ids are time-ordered), starting after the id `after`, until fn returns false.
// The office's index comes from officeIDs: a page costs the index keys changed
// since the office's page before on this store, not the office's size.
func (s *Store) WalkOffice(officeID, after string, fn func(*submission.Submission) bool) error {
	ids, created, err := s.officeIDsOf(officeID)
	if err != nil {
		return err
	}
	i, found := slices.BinarySearch(ids, after)
	if found {
		i++
	}
	ctx, cancel := s.ctx()
	defer cancel()
	var gone []string
	defer func() { s.offices.forget(officeID, created, gone) }()
	for _, id := range ids[i:] {
		d, _, err := s.readDoc(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			// Deleted since the index was listed (retention runs beside us), or
			// before, its key's removal marker still in the stream (listOffice).
			gone = append(gone, id)
			continue
		}
		if err != nil {
			return err
		}
		if d.Sub.OfficeID != officeID {
			continue // an index key is the office's own: never hand on another's case
		}
		if !fn(d.Sub) {
			return nil
		}
	}
	return nil
}

// Scan calls fn for every submission, in no particular order, until fn returns false.
// It has no overall deadline (a large store takes long); each fetch has one.
//
// Its one-replica consumer may sit on a node that restarted and has not caught up
// (see ids): such a listing lacks every record written while the node was away.
// The retention's sweep keeps only the blobs the scanned records name, so a short
// listing deleted the bytes of acknowledged, open cases; an export or `store
// verify` left them out and said all was well. Scan cannot start again (fn has
// seen what was listed), so like ids it writes the listing mark first and lists it
// with the records: a listing that ends without the mark of this call is stale,
// and Scan reports ErrStaleListing (store.ErrUnavailable) after it — callers drop
// what they gathered and try again later. A listing fn stops early is not judged.
func (s *Store) Scan(fn func(*submission.Submission) bool) error {
	return s.scan(func(sub *submission.Submission, _ uint64) bool { return fn(sub) })
}

// scan is Scan that also hands on the stream sequence of each record as listed,
// which a write derived from the record can expect (indexOnce).
func (s *Store) scan(fn func(sub *submission.Submission, seq uint64) bool) error {
	mctx, cancel := s.ctx()
	mark := s.subject(listedKey)
	at, err := s.markListing(mctx, mark)
	cancel()
	if err != nil {
		return err
	}
	// A consumer that stalls is replaced by one placed anew, which lists
	// everything again (reset): the records handed on so far may be a lagging
	// replica's older versions, and the new replica's mark would not say so. Such
	// a listing stops at once and is stale too.
	fresh, stopped, replaced := false, false, false
	err = eachIn(context.Background(), s.kv, s.opts, []string{s.subject("sub.*"), mark}, false, func() { replaced = true }, nil,
		func(subject string, data []byte, md *jetstream.MsgMetadata) (bool, error) {
			if replaced {
				return false, nil
			}
			if subject == mark {
				fresh = md.Sequence.Stream >= at
				return true, nil
			}
			var d doc
			if err := json.Unmarshal(data, &d); err != nil || d.Sub == nil {
				return false, fmt.Errorf("jsstore: decode %s: %v", subject, err)
			}
			stopped = !fn(d.Sub, md.Sequence.Stream)
			return !stopped, nil
		})
	if err != nil || stopped || fresh && !replaced {
		return unavailable(err)
	}
	s.stats.staleListings.Add(1)
	return fmt.Errorf("jsstore: scan: %w", ErrStaleListing)
}

// ErrStaleListing: a full listing came from a replica that had not caught up with
// the stream (a node restarted lately). It is store.ErrUnavailable: try again.
var ErrStaleListing = fmt.Errorf("%w: the replica that listed the records had not caught up (a NATS node restarted lately)", store.ErrUnavailable)
