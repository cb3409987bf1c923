package store

import (
	"errors"
	"fmt"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// ErrNeedsWrite: Options.ReadOnly refused a file that an open to write would
// bring up to date first (a bucket of this schema missing, which an earlier
// build of the same schema version did not have). The caller says how: start
// the gateway of this build once (gateway.ErrOldSchema).
var ErrNeedsWrite = errors.New("the store must be opened to write once to be brought up to date")

// buckets are the buckets of the current schema: Open creates those missing,
// openReadOnly refuses a file without one (the reads assume every one is there).
var buckets = [][]byte{bucketCases, bucketEvents, bucketOutbox, bucketIdempotency, bucketByOffice, bucketMeta, bucketHandedOver, bucketHeld, bucketReplies, bucketUndecided, bucketFollowUps, bucketBlobs}

// openReadOnly is Open with Options.ReadOnly. Open commits a transaction even
// when the file is up to date (bbolt writes a new meta page with every commit),
// probes the blob folder's file system with a temporary file and removes what
// an earlier process left: a `gc -dry-run` that said "nothing changed" had
// changed the file's bytes and time, and needed write permission on it. Here
// bbolt opens the file read-only (a shared lock: a gateway on it still keeps it
// out, ErrLocked) and nothing is written; what Open would have to write before
// reading is refused instead.
func openReadOnly(dir string, opts Options) (*DB, error) {
	file := filepath.Join(dir, FileName)
	b, err := bolt.Open(file, 0o600, &bolt.Options{ReadOnly: true, Timeout: opts.OpenTimeout})
	if err != nil {
		return nil, fmt.Errorf("store: open bbolt read-only: %w", lockErr(err))
	}
	var known *knownSet
	err = b.View(func(tx *bolt.Tx) error {
		var v []byte
		if meta := tx.Bucket(bucketMeta); meta != nil {
			v = meta.Get([]byte("schema"))
		}
		if err := schemaRefused(v); err != nil {
			return err
		}
		if string(v) != schemaVersion {
			return fmt.Errorf("%w: schema version %q, this build's is %q", ErrNeedsWrite, v, schemaVersion)
		}
		for _, name := range buckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%w: no bucket %q (an index this build adds)", ErrNeedsWrite, name)
			}
		}
		var err error
		known, err = loadKnown(tx, nil) // nil: reads nothing into the file
		return err
	})
	if err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("store: open %s read-only: %w", file, err)
	}
	// The grain matters only to deleting blobs, which a read-only store does
	// not; coarse is the safe side without the probe's temporary file.
	blobs := &Blobs{dir: filepath.Join(dir, "blobs"), grain: coarseGrain}
	db := &DB{dir: dir, opts: opts, bolt: b, blobs: blobs, known: known, commit: newCommitter(opts.BatchDelay, opts.BatchSize), recent: newRecent(recentRecords)}
	go db.commit.run(db)
	return db, nil
}
