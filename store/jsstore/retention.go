package jsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Delete removes a submission for good: its document (record, events, receipts), its
// pages of older events, its idempotency key (if it still names this submission), its
// office index key and its outbox, handed-over, held and undecided keys, in ONE atomic batch. Every
// key gets a removal marker that the server drops after MarkerTTL (a batch cannot
// purge); with one message per subject the marker replaces the document, so the data
// is gone at once.
//
// The document's marker expects the sequence that was read, and the idempotency
// key's marker the key's, so a concurrent Update or Create makes the batch fail and
// Delete read again: an Update that read the document before the delete conflicts
// on its own expectation afterwards and finds nothing, so it cannot bring the record
// back. A Create of the same message after the delete expects the marker and creates
// a new submission.
func (s *Store) Delete(id string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	op := newID()
	ambiguous := false
	var lastErr error
	for attempt := 0; ; attempt++ {
		d, seq, err := s.readDoc(ctx, id)
		if errors.Is(err, store.ErrNotFound) && ambiguous {
			// The marker carries the op id: our earlier try went through.
			if m, e := s.lastRaw(ctx, s.subKey(id)); e == nil && removed(m) && string(m.Data) == op {
				s.stats.recognised.Add(1)
				return nil
			}
		}
		if err != nil {
			return err
		}
		msgs, err := s.deleteBatch(ctx, id, d, seq, op)
		if err != nil {
			return err
		}
		err = s.write(ctx, msgs)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errConflict):
			// The submission changed (or another Delete came first): read again.
			if !sleep(ctx, jitter(attempt)) {
				return fmt.Errorf("jsstore: delete %s: %w (last: %v)", id, ctx.Err(), err)
			}
		case errors.Is(err, errAmbiguous):
			ambiguous = true
			lastErr = err
			if !sleep(ctx, backoff(attempt)) {
				return fmt.Errorf("jsstore: delete %s: %w (last: %v)", id, ctx.Err(), lastErr)
			}
		default:
			return fmt.Errorf("jsstore: delete %s: %w", id, err)
		}
	}
}

// deleteBatch returns the removal markers of everything that belongs to the
// submission d, read at sequence seq.
func (s *Store) deleteBatch(ctx context.Context, id string, d *doc, seq uint64, op string) ([]*nats.Msg, error) {
	sub := s.removal(s.subKey(id), []byte(op))
	sub.Header.Set(hdrExpectedSubSeq, strconv.FormatUint(seq, 10))
	msgs := []*nats.Msg{sub}
	idem := s.idemKey(d.Sub.Sender, d.Sub.MessageID)
	switch m, err := s.last(ctx, idem); {
	case err == nil && string(m.Data) == id:
		// Free the key for a new submission of the same message; expecting its
		// sequence keeps a racing change of the key from being overwritten.
		r := s.removal(idem, nil)
		r.Header.Set(hdrExpectedSubSeq, strconv.FormatUint(m.Sequence, 10))
		msgs = append(msgs, r)
	case err == nil || errors.Is(err, jetstream.ErrMsgNotFound):
		// The key names another submission (or none): not ours to remove.
	default:
		return nil, fmt.Errorf("jsstore: delete %s: idempotency key: %w", id, err)
	}
	if o := d.Sub.OfficeID; o != "" {
		msgs = append(msgs, s.removal(s.officeKey(o, id), nil))
	}
	for n := 1; n <= d.Pages; n++ {
		msgs = append(msgs, s.removal(s.eventsKey(id, n), nil))
	}
	for _, r := range d.Sub.Replies {
		if r.MessageID != "" {
			msgs = append(msgs, s.removal(s.replyKey(r.MessageID, id), nil))
		}
	}
	if c := d.Sub.CaseID; c != "" {
		msgs = append(msgs, s.removal(s.followUpKey(c, id), nil))
	}
	// The sets follow the state in the same batches as the document, so the state
	// read says which keys exist; a key present against it is removed as well. Any
	// change of the sets after the read also changed the document and fails the batch.
	for _, set := range []struct {
		subject string
		in      bool
	}{
		{s.outboxKey(id), d.Sub.State.Dispatchable()},
		{s.handedKey(id), d.Sub.State == submission.StateHandedOver},
		{s.heldKey(id), d.Sub.State == submission.StateHeld},
		{s.undecidedKey(id), d.Sub.AwaitsDecision()},
	} {
		in := set.in
		if !in {
			_, err := s.last(ctx, set.subject)
			switch {
			case err == nil:
				in = true
			case !errors.Is(err, jetstream.ErrMsgNotFound):
				return nil, fmt.Errorf("jsstore: delete %s: %w", id, err)
			}
		}
		if in {
			msgs = append(msgs, s.removal(set.subject, nil))
		}
	}
	return msgs, nil
}

// removal is a removal marker for subject that the server drops after MarkerTTL.
func (s *Store) removal(subject string, data []byte) *nats.Msg {
	m := s.setMember(subject, false)
	m.Data = data
	return m
}

// Delete removes a blob: ErrNotFound if there is none, ErrBadDigest for a malformed
// name. The object's meta message becomes a deletion marker as nats.go's
// ObjectStore.Delete writes it, and its chunks are purged; a delete interrupted
// between the two is finished by the next Delete of the same digest, which then
// reports ErrNotFound.
//
// The marker expects the meta message that was read (like DeleteIfOlder's), and
// finishing an interrupted delete purges only the chunks the marker names: a Put of
// the same content meanwhile (a touch or a new upload) is never marked or purged by
// a Delete that read the state before it. A Delete that meets such a Put reads
// again and deletes what is there then, as an unconditional delete should.
func (b *Blobs) Delete(digest string) error {
	if !store.IsHexDigest(digest) {
		return store.ErrBadDigest
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
	defer cancel()
	var marked string // NUID of our marker, maybe stored without an acknowledgement
	var lastErr error
	for attempt := 0; ; attempt++ {
		c, cancelAttempt := context.WithTimeout(ctx, b.opts.RequestTimeout)
		bm, err := b.readMeta(c, digest)
		cancelAttempt()
		wait := backoff(attempt)
		if err == nil && marked != "" && bm.info.NUID != marked {
			// Our unacknowledged marker was stored and the content put again since, or
			// an upload replaced the object before it: either way this Delete overlapped
			// that Put and is ordered before it, so the new object stays. No meta
			// message names the marked chunks any more (best effort: space, not data).
			_ = b.purgeChunks(ctx, marked)
			return nil
		}
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return fmt.Errorf("blob %s: %w", digest, store.ErrNotFound)
		case err == nil && bm.info.Deleted:
			// Deleted before, maybe without its chunks purged: finish that.
			if bm.info.NUID != "" {
				if err = b.purgeChunks(ctx, bm.info.NUID); err != nil {
					return fmt.Errorf("jsstore: blob delete %s: %w", digest, err)
				}
			}
			if marked != "" && bm.info.NUID == marked {
				return nil // our own earlier try marked it
			}
			return fmt.Errorf("blob %s: %w", digest, store.ErrNotFound)
		case err == nil && !bm.live():
			return fmt.Errorf("jsstore: blob delete %s: meta message without object id", digest)
		case err == nil:
			c, cancelAttempt = context.WithTimeout(ctx, b.opts.RequestTimeout)
			err = b.mark(c, bm)
			cancelAttempt()
			switch {
			case err == nil:
				if err = b.purgeChunks(ctx, bm.info.NUID); err != nil {
					return fmt.Errorf("jsstore: blob delete %s: marked deleted, chunks left: %w", digest, err)
				}
				return nil
			case errors.Is(err, errAmbiguous):
				marked = bm.info.NUID
			case errors.Is(err, errConflict):
				wait = jitter(attempt) // put or deleted meanwhile: read again
			default:
				return fmt.Errorf("jsstore: blob delete %s: %w", digest, err)
			}
		case !transient(err):
			return fmt.Errorf("jsstore: blob delete %s: %w", digest, err)
		}
		lastErr = err
		if !sleep(ctx, wait) {
			return fmt.Errorf("jsstore: blob delete %s: %w", digest, lastErr)
		}
	}
}

// Walk calls fn for every blob with its size and the time its meta message was
// stored (the server's clock), until fn returns false. Deleted objects and objects
// not named by a digest are skipped. That time may be earlier than the one
// DeleteIfOlder judges (hdrNotBefore), never later: the sweep picks candidates
// by it, and DeleteIfOlder keeps the ones that are not old after all.
func (b *Blobs) Walk(fn func(digest string, size int64, written time.Time) bool) error {
	// Like Scan, no overall deadline (a large store takes long); each fetch has one.
	return b.eachMeta(context.Background(), func(info jetstream.ObjectInfo, stored time.Time) bool {
		if info.Deleted || !store.IsHexDigest(info.Name) {
			return true
		}
		return fn(info.Name, int64(info.Size), stored)
	})
}

// eachMeta calls fn with every object's meta message (deleted ones included) and the
// time it was stored, until fn returns false.
//
// The listing consumer has one replica, which may be behind the stream's leader (a
// node that restarted and is catching up, or one a quorum acknowledged a Put
// without): it lists what it holds. So the leader is asked afterwards which meta
// subjects exist, and those the consumer did not list are read from it one by one.
// A consumer that missed objects made Walk miss a blob just written (the contract
// suite saw it under load) and, worse, could have let SweepChunks take the chunks
// of a live object for left-overs; the time condition there only covers recent ones.
func (b *Blobs) eachMeta(ctx context.Context, fn func(info jetstream.ObjectInfo, stored time.Time) bool) error {
	filter := "$O." + b.bucket + ".M.>"
	// A subject the consumer missed whose message is at most the stream's last
	// sequence before the listing was missed by a lagging replica; a later one was
	// only put while the listing ran (steady intake), which is no lag to count.
	before := ^uint64(0)
	c, cancel := context.WithTimeout(ctx, b.opts.RequestTimeout)
	if info, err := b.stream.Info(c); err == nil {
		before = info.State.LastSeq
	}
	cancel()
	listed := map[string]bool{}
	stopped := false
	err := eachIn(ctx, b.stream, b.opts, []string{filter}, false, nil, nil, func(subject string, data []byte, md *jetstream.MsgMetadata) (bool, error) {
		listed[subject] = true
		var info jetstream.ObjectInfo
		if err := json.Unmarshal(data, &info); err != nil {
			return false, fmt.Errorf("jsstore: blob meta %s: %w", subject, err)
		}
		stopped = !fn(info, md.Timestamp)
		return !stopped, nil
	})
	if err != nil || stopped {
		return err
	}
	subjects, err := b.subjectsUnder(ctx, filter)
	if err != nil {
		return err
	}
	counted := false
	for subject := range subjects {
		if listed[subject] {
			continue
		}
		c, cancel := context.WithTimeout(ctx, b.opts.RequestTimeout)
		bm, err := b.readMetaAt(c, subject)
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			continue // purged meanwhile
		case err != nil:
			return fmt.Errorf("jsstore: blob meta %s: %w", subject, unavailable(err))
		}
		if !counted && b.stale != nil && bm.seq <= before {
			b.stale.Add(1)
			counted = true
		}
		if !fn(bm.info, bm.stored) {
			return nil
		}
	}
	return nil
}

// lastOf reads the last message of subject from the stream's leader; ok is false
// when the subject has none (purged meanwhile).
func (b *Blobs) lastOf(ctx context.Context, subject string) (m *jetstream.RawStreamMsg, ok bool, err error) {
	c, cancel := context.WithTimeout(ctx, b.opts.RequestTimeout)
	defer cancel()
	m, err = b.stream.GetLastMsgForSubject(c, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, false, nil
	}
	return m, err == nil, err
}

// subjectsUnder asks the stream's leader which subjects under filter hold
// messages, and how many each.
func (b *Blobs) subjectsUnder(ctx context.Context, filter string) (map[string]uint64, error) {
	for attempt := 0; ; attempt++ {
		c, cancel := context.WithTimeout(ctx, b.opts.Timeout)
		info, err := b.stream.Info(c, jetstream.WithSubjectFilter(filter))
		cancel()
		if err == nil {
			return info.State.Subjects, nil
		}
		if !transient(err) || !sleep(ctx, backoff(attempt)) {
			return nil, fmt.Errorf("jsstore: list %s: %w", filter, unavailable(err))
		}
	}
}

// SweepChunks purges chunk subjects that no live object names and whose last chunk
// was stored before the given time; it returns how many subjects (objects' chunk
// sets) and chunks it purged.
//
// Walk lists live objects, so the blob sweep never finds what is left when a node
// dies between a deletion marker and the purge of its chunks (DeleteIfOlder, nats.go's
// Delete), between nats.go's Put of new content under an old name and its purge of
// the old chunks, or in the middle of an upload, before the meta message that would
// name its chunks. Those cost space, not data. The time condition keeps an upload in
// progress safe: its chunks are named only when its meta message is written, right
// after the last chunk, and a chunk written after the cut-off keeps the subject.
// The chunk subjects are listed before the meta messages are read, so an object
// uploaded between the two reads is either unlisted or named.
func (b *Blobs) SweepChunks(ctx context.Context, before time.Time) (sets int, chunks uint64, err error) {
	prefix := "$O." + b.bucket + ".C."
	subjects, err := b.subjectsUnder(ctx, prefix+">")
	if err != nil {
		return 0, 0, err
	}
	if len(subjects) == 0 {
		return 0, 0, nil
	}
	named := map[string]bool{}
	err = b.eachMeta(ctx, func(info jetstream.ObjectInfo, _ time.Time) bool {
		if !info.Deleted && info.NUID != "" {
			named[info.NUID] = true
		}
		return ctx.Err() == nil
	})
	if err != nil {
		return 0, 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	for subject, n := range subjects {
		nuid := strings.TrimPrefix(subject, prefix)
		if named[nuid] || nuid == subject {
			continue
		}
		m, ok, err := b.lastOf(ctx, subject)
		switch {
		case err != nil:
			return sets, chunks, fmt.Errorf("jsstore: last chunk of %s: %w", nuid, err)
		case !ok:
			continue // purged meanwhile
		case !m.Time.Before(before):
			continue
		}
		if err := b.purgeChunks(ctx, nuid); err != nil {
			return sets, chunks, err
		}
		sets++
		chunks += n
	}
	return sets, chunks, nil
}
