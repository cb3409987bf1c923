package store

import (
	"bytes"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/amtsbote/amtsbote/submission"
)

// recent keeps the records this store read last, decoded, with the bytes they
// were stored as. A record is read more than once between two writes — the
// broker's attempt reads it, and the update that records the delivery reads it
// again before it writes — and decoding its JSON each time was 2.5 % of the
// gateway's CPU per package (docs/performance.md, "A processor held by the
// flush"). An entry is used only while the stored value is byte for byte the
// one it was decoded from, so a write never leaves it stale: the next read
// decodes. Every read gets its own clone.
//
// Only decoded records are kept, not the structs a write stored: those are
// not what decoding their bytes gives back (times keep their monotonic reading
// and zone, empty lists stay empty where the JSON omits them, invalid UTF-8
// stays as it came), and a reader must see the record as stored.
type recent struct {
	mu   sync.Mutex
	byID map[string]recentRecord
	ring []string // ids in the order they came, for eviction
	next int
}

type recentRecord struct {
	stored []byte
	s      *submission.Submission
	newer  bool // stored holds keys of a newer build (decodeRecord)
}

// recentRecords bounds the cache: more than the records a busy gateway has in
// flight between intake and delivery (its delivery line holds up to 1,024), a
// few MB of heap.
const recentRecords = 1024

func newRecent(n int) *recent {
	return &recent{byID: make(map[string]recentRecord, n), ring: make([]string, n)}
}

// put remembers s as decoded from the stored bytes v, which the caller no
// longer changes, and whether v holds keys of a newer build. s is cloned: the
// caller goes on using its own.
func (r *recent) put(id string, v []byte, s *submission.Submission, newer bool) {
	c := s.Clone()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byID[id]; !ok {
		if old := r.ring[r.next]; old != "" {
			delete(r.byID, old)
		}
		r.ring[r.next] = id
		r.next = (r.next + 1) % len(r.ring)
	}
	r.byID[id] = recentRecord{stored: v, s: c, newer: newer}
}

// get returns a clone of the record stored as v, or nil when it has none made
// from those bytes, and whether v holds keys of a newer build.
func (r *recent) get(id string, v []byte) (*submission.Submission, bool) {
	r.mu.Lock()
	e, ok := r.byID[id]
	r.mu.Unlock()
	if !ok || !bytes.Equal(e.stored, v) {
		return nil, false
	}
	return e.s.Clone(), e.newer
}

// forget drops id's entry: its record was written or deleted. Not needed for
// correctness (a stale entry never matches), but an erased or deleted case's
// personal data should not wait in memory for eviction.
func (r *recent) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byID, id) // its ring slot is reused in turn
}

// record is getSubmission through the cache of recent reads.
func (db *DB) record(tx *bolt.Tx, id string) (*submission.Submission, error) {
	s, _, _, err := db.recordAsStored(tx, id)
	return s, err
}

// recordAsStored is record that also returns the stored bytes (valid as long as
// tx) and whether they hold keys of a newer build.
func (db *DB) recordAsStored(tx *bolt.Tx, id string) (*submission.Submission, []byte, bool, error) {
	v := tx.Bucket(bucketCases).Get(recordKey(id))
	if v == nil {
		return nil, nil, false, fmt.Errorf("submission %s: %w", id, ErrNotFound)
	}
	if s, newer := db.recent.get(id, v); s != nil {
		return s, v, newer, nil
	}
	s, newer, err := decodeRecord(id, v)
	if err != nil {
		return nil, nil, false, err
	}
	db.recent.put(id, copyBytes(v), s, newer) // v lives as long as the transaction
	return s, v, newer, nil
}
