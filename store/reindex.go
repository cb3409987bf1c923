package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/amtsbote/amtsbote/submission"
	bolt "go.etcd.io/bbolt"
)

// Reindex: rebuilding the derived indexes from the records.
//
// Every write keeps a case's index entries in its own transaction (putEncoded),
// but only the entries of the indexes its build knows: a store that an older
// build wrote for a while — an operator who went back a release and forward
// again — comes back with a case that build decided still in the undecided
// index (the alert fires for it for ever) and one it delivered missing from it
// (no gauge, alert or list shows it). `amtsbote store verify` names such faults
// (store/migrate); Reindex repairs them from the records, with the same
// derivation the writes use (putIndexes, idempotencyKey), so there is no second
// set of rules to drift from the first.

// waitingSet is an index of cases that wait, with the rule that says whether a
// record belongs in it: the one table that putEncoded, Delete, the one-time fills
// at open and Reindex read.
type waitingSet struct {
	bucket []byte
	in     func(s *submission.Submission) bool
}

var (
	setOutbox    = waitingSet{bucketOutbox, func(s *submission.Submission) bool { return s.State.Dispatchable() }}
	setHanded    = waitingSet{bucketHandedOver, func(s *submission.Submission) bool { return s.State == submission.StateHandedOver }}
	setHeld      = waitingSet{bucketHeld, func(s *submission.Submission) bool { return s.State == submission.StateHeld }}
	setUndecided = waitingSet{bucketUndecided, (*submission.Submission).AwaitsDecision}
	waitingSets  = [...]waitingSet{setOutbox, setHanded, setHeld, setUndecided}
)

// change is what one index write did (index, putIndexes).
type change int8

const (
	unchanged change = iota
	added
	removed
	rewritten
)

// putIndexes writes record s's entries in the by-office, reply, follow-up and
// waiting indexes — what the record says, nothing more — and tells note (if not nil)
// each change it made. It never removes a by-office or reply entry: those of a
// record only grow (a reply is never removed, an office never changes); Reindex
// removes the ones no record accounts for.
func putIndexes(tx *wtx, s *submission.Submission, note func(bucket []byte, c change)) error {
	// A Put dirties its page even when the key is there: set members already in
	// place are left alone.
	member := func(bucket, k []byte) error {
		if keyExists(tx.Bucket(bucket).Cursor(), k) {
			return nil
		}
		if err := tx.bucket(bucket).Put(k, nil); err != nil {
			return err
		}
		if note != nil {
			note(bucket, added)
		}
		return nil
	}
	if s.OfficeID != "" {
		if err := member(bucketByOffice, officeKey(s.OfficeID, s.ID)); err != nil {
			return err
		}
	}
	for _, r := range s.Replies { // replies are never removed from a record
		if r.MessageID != "" {
			if err := member(bucketReplies, replyKey(r.MessageID, s.ID)); err != nil {
				return err
			}
		}
	}
	if s.CaseID != "" {
		if err := member(bucketFollowUps, followUpKey(s.CaseID, s.ID)); err != nil {
			return err
		}
	}
	// The value only for a record in one of the sets (index writes it only then):
	// the writes of an answered case need none.
	var in [len(waitingSets)]bool
	var wv []byte
	for i, set := range waitingSets {
		if in[i] = set.in(s); in[i] && wv == nil {
			wv = WaitingValue(s)
		}
	}
	for i, set := range waitingSets {
		c, err := index(tx.bucket(set.bucket), s.ID, in[i], wv)
		if err != nil {
			return err
		}
		if note != nil && c != unchanged {
			note(set.bucket, c)
		}
	}
	return nil
}

// IndexChanges is what Reindex changed in one index: entries added for records
// that lacked them, removed because no record accounts for them, and rewritten
// because their value disagreed with the record's.
type IndexChanges struct {
	Index                     string
	Added, Removed, Rewritten int
}

// ReindexReport is what Reindex read and changed, per index in a fixed order.
type ReindexReport struct {
	Records int
	Indexes []IndexChanges
}

// Changed is the number of entries Reindex added, removed or rewrote.
func (r ReindexReport) Changed() int {
	n := 0
	for _, ix := range r.Indexes {
		n += ix.Added + ix.Removed + ix.Rewritten
	}
	return n
}

// ReindexProgress is how far a Reindex got, for a progress line while it runs
// (read from another goroutine).
type ReindexProgress struct {
	Records atomic.Int64 // records read by the first pass
	Entries atomic.Int64 // index entries checked by the second
}

// Line is a progress line.
func (p *ReindexProgress) Line() string {
	return fmt.Sprintf("  %d submissions read, %d index entries checked\n", p.Records.Load(), p.Entries.Load())
}

// reindexed are the indexes Reindex rebuilds, in the report's order.
var reindexed = [][]byte{bucketOutbox, bucketHandedOver, bucketHeld, bucketUndecided, bucketByOffice, bucketReplies, bucketFollowUps, bucketIdempotency}

// reindexChunk is how many records (first pass) or entries (second) one
// transaction of Reindex reads: its dirty pages stay in memory until it
// commits, and a million records in one would hold every changed page of every
// index at once. A variable for the tests.
var reindexChunk = 1000

// Reindex rebuilds every index derived from the records — the outbox, the
// handed-over, held and undecided indexes with their values, the by-office,
// reply and follow-up indexes and the idempotency keys — and reports what it changed; on a
// sound store nothing. It reads the records in chunks (reindexChunk per write
// transaction) and writes each record's entries as its own writes would
// (putIndexes), then walks every index and removes the entries that no record
// accounts for (the record is gone, or says otherwise). Each transaction reads
// the records it decides by, so a write beside it cannot be undone by it; the
// command runs it with the gateway stopped all the same (`amtsbote store
// reindex`). progress may be nil.
func (db *DB) Reindex(ctx context.Context, progress *ReindexProgress) (ReindexReport, error) {
	if progress == nil {
		progress = &ReindexProgress{}
	}
	counts := map[string]*IndexChanges{}
	rep := ReindexReport{}
	for _, b := range reindexed {
		rep.Indexes = append(rep.Indexes, IndexChanges{Index: string(b)})
	}
	for i := range rep.Indexes {
		counts[rep.Indexes[i].Index] = &rep.Indexes[i]
	}
	// A transaction may be run again only by the committer; update runs once,
	// so the counts of a transaction are added when it commits.
	type pending struct {
		index string
		c     change
	}
	commitCounts := func(ps []pending) {
		for _, p := range ps {
			ix := counts[p.index]
			switch p.c {
			case added:
				ix.Added++
			case removed:
				ix.Removed++
			case rewritten:
				ix.Rewritten++
			}
		}
	}

	// First pass: every record's entries, as its writes keep them.
	var from []byte
	for first := true; first || from != nil; first = false {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		var ps []pending
		var n int
		var next []byte
		err := db.update(func(tx *wtx) error {
			ps, n = ps[:0], 0
			var err error
			next, err = forRecordsFrom(tx.Tx, from, reindexChunk, func(id string, v []byte) error {
				s, err := decodeSubmission(id, v)
				if err != nil {
					return err
				}
				n++
				note := func(b []byte, c change) { ps = append(ps, pending{string(b), c}) }
				if err := putIndexes(tx, s, note); err != nil {
					return err
				}
				// The idempotency key, as Create writes it: added when missing, and
				// pointed at this record when it names one that is gone or one of
				// another message. One that names another live record of this
				// message is left alone (two records of one message: not the
				// indexes' fault, and not one to guess at). Left alone, a key
				// naming another message's record was removed by the second pass
				// and the case kept no key until a second run (an audit,
				// 2026-12-07: TestStrayEntriesInChunks).
				k := idempotencyKey(s.Sender, s.MessageID)
				cur := tx.Bucket(bucketIdempotency).Get(k)
				switch {
				case cur == nil:
					note(bucketIdempotency, added)
				case string(cur) == id:
					return nil
				default:
					other, err := getSubmission(tx.Tx, string(cur))
					if err == nil && bytes.Equal(idempotencyKey(other.Sender, other.MessageID), k) {
						return nil
					}
					if err != nil && !errors.Is(err, ErrNotFound) {
						return err
					}
					note(bucketIdempotency, rewritten)
				}
				return tx.bucket(bucketIdempotency).Put(k, []byte(id))
			})
			return err
		})
		if err != nil {
			return rep, fmt.Errorf("store: reindex: %w", err)
		}
		commitCounts(ps)
		rep.Records += n
		progress.Records.Add(int64(n))
		from = next
	}

	// Second pass: the entries no record accounts for.
	for _, b := range reindexed {
		var from []byte
		for first := true; first || from != nil; first = false {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			var gone int
			var next []byte
			err := db.update(func(tx *wtx) error {
				var drop [][]byte
				var n int
				var err error
				drop, n, next, err = unaccounted(tx.Tx, b, from)
				if err != nil {
					return err
				}
				for _, k := range drop {
					if err := tx.bucket(b).Delete(k); err != nil {
						return err
					}
				}
				gone = len(drop)
				progress.Entries.Add(int64(n))
				return nil
			})
			if err != nil {
				return rep, fmt.Errorf("store: reindex %s: %w", b, err)
			}
			counts[string(b)].Removed += gone
			from = next
		}
	}
	return rep, nil
}

// unaccounted returns the keys of index bucket b, from the key from on (nil: the
// first) and for at most reindexChunk entries, that no record accounts for; n is
// how many it checked, next where the following call resumes (nil: done).
func unaccounted(tx *bolt.Tx, b, from []byte) (drop [][]byte, n int, next []byte, err error) {
	c := tx.Bucket(b).Cursor()
	k, v := c.First()
	if from != nil {
		k, v = c.Seek(from)
	}
	cases := tx.Bucket(bucketCases)
	record := func(id []byte) (*submission.Submission, error) {
		rv := cases.Get(recordKey(string(id)))
		if rv == nil {
			return nil, nil
		}
		return decodeSubmission(string(id), rv)
	}
	for ; k != nil; k, v = c.Next() {
		if n == reindexChunk {
			return drop, n, copyBytes(k), nil
		}
		n++
		var keep bool
		switch {
		case bytes.Equal(b, bucketByOffice), bytes.Equal(b, bucketFollowUps):
			// A name, a zero byte, the id (officeKey, followUpKey; no id holds
			// a zero byte): the record must be there and carry that name — be
			// addressed to that office, be a Nachreichung to that case.
			i := bytes.LastIndexByte(k, 0)
			if i < 0 {
				break
			}
			s, err := record(k[i+1:])
			if err != nil {
				return nil, 0, nil, err
			}
			if s == nil {
				break
			}
			name := s.OfficeID
			if bytes.Equal(b, bucketFollowUps) {
				name = s.CaseID
			}
			keep = name == string(k[:i])
		case bytes.Equal(b, bucketReplies):
			// The message id's hash, then the id (replyKey): the record must hold
			// a reply with that message id.
			if len(k) <= sha256.Size {
				break
			}
			s, err := record(k[sha256.Size:])
			if err != nil {
				return nil, 0, nil, err
			}
			if s == nil {
				break
			}
			for _, r := range s.Replies {
				if h := ReplyIndexHash(r.MessageID); r.MessageID != "" && bytes.Equal(h[:], k[:sha256.Size]) {
					keep = true
				}
			}
		case bytes.Equal(b, bucketIdempotency):
			// (sender, message id) -> id: the record must be there and be that
			// message's.
			s, err := record(v)
			if err != nil {
				return nil, 0, nil, err
			}
			keep = s != nil && bytes.Equal(idempotencyKey(s.Sender, s.MessageID), k)
		default:
			// A waiting set, keyed by id: the first pass put every record's
			// entries right, so an entry is left over only when its record is gone.
			keep = cases.Get(recordKey(string(k))) != nil
		}
		if !keep {
			drop = append(drop, copyBytes(k))
		}
	}
	return drop, n, nil, nil
}

// StrayEntry is an entry of an index keyed by a name — an office's list, the
// Nachreichungen by their case, the replies by message id, the idempotency
// keys — that no record accounts for: what Reindex's second pass removes.
type StrayEntry struct {
	Index string // "by_office", "follow_ups", "replies" or "idempotency"
	ID    string // the submission the entry names
	// Name is what the entry files the submission under: the office, the
	// case, for an idempotency key its sender and message id (a zero byte
	// between); "" for a reply, whose message id the key holds only hashed.
	Name string
	Gone bool // the record is gone; otherwise it names another office, case, reply or message
}

// namedIndexes are the indexes StrayEntries reads: those whose entries name a
// submission under something its record says. The waiting sets are keyed by
// the id alone, and `store verify` compares them with the records itself.
var namedIndexes = [][]byte{bucketByOffice, bucketFollowUps, bucketReplies, bucketIdempotency}

// StrayLister is a store that lists, without changing anything, the entries
// of its indexes keyed by a name that no record accounts for — those its
// reindex removes. Both stores are (store.DB, jsstore.Store), and the contract
// requires it (storetest: StraysAreWhatReindexRemoves): `amtsbote store
// verify` names them (migrate.Check), so that a store it finds sound leaves
// `amtsbote store reindex` nothing to do, on a single node and on a cluster.
// It is not part of Store: like the repair itself, only the store commands use
// it, and not the gateways.
type StrayLister interface {
	StrayEntries(ctx context.Context) ([]StrayEntry, error)
}

var _ StrayLister = (*DB)(nil)

// StrayEntries returns the entries of the indexes keyed by a name that no
// record accounts for, as Reindex's second pass finds them (unaccounted), in
// read transactions of reindexChunk entries and without changing anything:
// `store verify` names them, so that a store it finds sound leaves Reindex
// nothing to do. jsstore.Store.StrayEntries is the cluster's, beside its
// gateways.
func (db *DB) StrayEntries(ctx context.Context) ([]StrayEntry, error) {
	var out []StrayEntry
	for _, b := range namedIndexes {
		var from []byte
		for first := true; first || from != nil; first = false {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			err := db.view(func(tx *bolt.Tx) error {
				drop, _, next, err := unaccounted(tx, b, from)
				if err != nil {
					return err
				}
				for _, k := range drop {
					out = append(out, strayEntry(tx, b, k))
				}
				from = next
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("store: %s: %w", b, err)
			}
		}
	}
	return out, nil
}

// strayEntry says what the entry k of the named index b holds (the key forms of
// officeKey, followUpKey, replyKey and idempotencyKey).
func strayEntry(tx *bolt.Tx, b, k []byte) StrayEntry {
	e := StrayEntry{Index: string(b)}
	switch {
	case bytes.Equal(b, bucketIdempotency):
		e.ID, e.Name = string(tx.Bucket(b).Get(k)), string(k)
	case bytes.Equal(b, bucketReplies):
		if len(k) > sha256.Size {
			e.ID = string(k[sha256.Size:])
		}
	default:
		if i := bytes.LastIndexByte(k, 0); i >= 0 {
			e.ID, e.Name = string(k[i+1:]), string(k[:i])
		} else {
			e.Name = string(k)
		}
	}
	e.Gone = e.ID == "" || tx.Bucket(bucketCases).Get(recordKey(e.ID)) == nil
	return e
}
