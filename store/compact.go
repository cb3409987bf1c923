package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Online compaction.
//
// bbolt never gives pages back to the file system: after a retention run the freed
// pages are reused, so the file stops growing, but it only shrinks when it is
// rewritten. Compact rewrites it while the gateway runs, without closing intake:
//
//  1. Under the swap lock (held exclusively for an instant) it starts noting every
//     key a write transaction changes, and opens a read transaction on the file.
//  2. Without any lock it copies that snapshot into a new file (bbolt lets a read
//     transaction run beside the writers) and fsyncs it.
//  3. Under the swap lock again — now every operation waits — it copies the noted
//     keys again (their value now, or their absence) and the buckets' sequences,
//     commits that small delta with an fsync, renames the new file over the old one,
//     fsyncs the folder and switches the handle. The pause is proportional to what
//     was written during the copy, not to the size of the store.
//
// Why not bolt.Compact: it needs the file for itself, so the gateway would have to
// stop (the first version of `amtsbote gc -compact` worked that way).
// Why note keys rather than diff the files: a diff under the lock reads the whole
// store (a second for a million keys), the noted keys are what changed.
//
// A crash at any point leaves either the old file (the rename is the commit point;
// a leftover amtsbote.db.compact is removed by the next open or compaction) or the
// new one, which holds everything committed before the swap.

// compactSuffix names the new file beside the store while a compaction writes it.
const compactSuffix = ".compact"

// compactHooks are for the tests only: check compares the two files under the swap
// lock, skipDelta plants the defect the check must catch.
var compactHooks struct {
	check     func(src, dst *bolt.DB) error
	skipDelta bool
}

// Compactor is a store whose file can be rewritten while it is in use (DB; the
// JetStream store compacts its own files).
type Compactor interface {
	FreeBytes() (free, size int64, err error)
	Compact(ctx context.Context) (CompactReport, error)
}

var _ Compactor = (*DB)(nil)

// FreeWiper is a store whose file keeps removed data in its free pages until
// they are reused, and can overwrite them (wipe.go). The retention calls it
// after a run that removed data and did not compact.
type FreeWiper interface {
	WipeFree() (pages int, err error)
}

var _ FreeWiper = (*DB)(nil)

// CompactReport says what a compaction did.
type CompactReport struct {
	Before, After int64         // file size before and after
	Keys          int           // keys copied from the snapshot
	Rewritten     int           // keys written during the copy, copied again under the lock
	Pause         time.Duration // how long every operation waited for the swap
	Took          time.Duration
}

// FreeBytes is how much of the bbolt file a compaction would give back (free pages
// and the preallocated tail), and the file's size.
func (db *DB) FreeBytes() (free, size int64, err error) {
	db.sw.RLock()
	defer db.sw.RUnlock()
	info, err := os.Stat(filepath.Join(db.dir, FileName))
	if err != nil {
		return 0, 0, fmt.Errorf("store: %w", err)
	}
	var used int64
	err = db.bolt.View(func(tx *bolt.Tx) error {
		st := db.bolt.Stats()
		used = tx.Size() - int64(st.FreePageN+st.PendingPageN)*int64(db.bolt.Info().PageSize)
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store: %w", err)
	}
	return max(info.Size()-used, 0), info.Size(), nil
}

// Compact rewrites the bbolt file without its free pages while the store is in use
// (see above).
func (db *DB) Compact(ctx context.Context) (rep CompactReport, err error) {
	db.compacting.Lock()
	defer db.compacting.Unlock()
	start := time.Now()
	path := filepath.Join(db.dir, FileName)
	tmp := path + compactSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, fmt.Errorf("store: compact: %w", err)
	}
	// The new file becomes the store: its map has the old file's room (initialMap).
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: db.opts.OpenTimeout, NoSync: true, InitialMmapSize: initialMap(path)})
	if err != nil {
		return rep, fmt.Errorf("store: compact: %w", err)
	}
	swapped := false
	defer func() {
		if !swapped {
			db.dirty.Store(nil)
			_ = dst.Close()
			_ = os.Remove(tmp)
		}
	}()

	// 1. Note changes from now on; snapshot.
	d := &dirtyKeys{m: map[string]map[string]struct{}{}}
	db.sw.Lock()
	if info, e := os.Stat(path); e == nil {
		rep.Before = info.Size()
	}
	db.dirty.Store(d)
	src := db.bolt
	snap, err := src.Begin(false)
	db.sw.Unlock()
	if err != nil {
		return rep, fmt.Errorf("store: compact: snapshot: %w", err)
	}
	// 2. Copy the snapshot and make it durable.
	rep.Keys, err = copySnapshot(ctx, snap, dst)
	_ = snap.Rollback()
	if err != nil {
		return rep, err
	}
	dst.NoSync = false
	if err := dst.Sync(); err != nil {
		return rep, fmt.Errorf("store: compact: sync: %w", err)
	}

	// 3. Under the lock: the delta, the rename, the switch.
	db.sw.Lock()
	defer db.sw.Unlock()
	paused := time.Now()
	defer func() { rep.Pause = time.Since(paused) }()
	if db.bolt != src {
		return rep, errors.New("store: compact: the store was closed meanwhile")
	}
	rep.Rewritten, err = d.copyTo(src, dst)
	if err != nil {
		return rep, err
	}
	if compactHooks.check != nil {
		if err := compactHooks.check(src, dst); err != nil {
			return rep, err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return rep, fmt.Errorf("store: compact: %w", err)
	}
	// Renamed: the new file is the store from here on, whatever follows.
	swapped = true
	db.bolt = dst
	db.dirty.Store(nil)
	_ = src.Close()
	if err := syncDir(db.dir); err != nil {
		return rep, fmt.Errorf("store: compact: %w", err)
	}
	if info, e := os.Stat(path); e == nil {
		rep.After = info.Size()
	}
	rep.Took = time.Since(start)
	return rep, nil
}

// copySnapshot copies every bucket of snap into dst in transactions of at most
// 8 MiB (one huge transaction would hold the whole store in memory twice).
func copySnapshot(ctx context.Context, snap *bolt.Tx, dst *bolt.DB) (int, error) {
	const txMax = 8 << 20
	keys := 0
	var names [][]byte
	if err := snap.ForEach(func(name []byte, _ *bolt.Bucket) error {
		names = append(names, copyBytes(name))
		return nil
	}); err != nil {
		return 0, fmt.Errorf("store: compact: %w", err)
	}
	for _, name := range names {
		src := snap.Bucket(name)
		var from []byte // the next key to copy; nil: the first
		for done := false; !done; {
			if err := ctx.Err(); err != nil {
				return keys, err
			}
			err := dst.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists(name)
				if err != nil {
					return err
				}
				// Keys are mostly ascending (ids are UUIDv7): fill pages.
				b.FillPercent = 0.9
				if err := b.SetSequence(src.Sequence()); err != nil {
					return err
				}
				c := src.Cursor()
				k, v := c.First()
				if from != nil {
					k, v = c.Seek(from)
				}
				size := 0
				for ; k != nil; k, v = c.Next() {
					if size >= txMax {
						from = copyBytes(k)
						return nil
					}
					if err := copyKey(src, b, k, v); err != nil {
						return err
					}
					size += len(k) + len(v)
					keys++
				}
				done = true
				return nil
			})
			if err != nil {
				return keys, fmt.Errorf("store: compact: copy %s: %w", name, err)
			}
		}
	}
	return keys, nil
}

// copyKey copies key k of src, with value v from src's cursor (nil for a nested
// bucket), into dst: a value kept alone (PutAlone) stays alone.
func copyKey(src, dst *bolt.Bucket, k, v []byte) error {
	if v != nil {
		return dst.Put(copyBytes(k), copyBytes(v))
	}
	sub := src.Bucket(k)
	if sub == nil {
		return dst.Put(copyBytes(k), []byte{})
	}
	nd, err := dst.CreateBucket(copyBytes(k))
	if err != nil {
		return err
	}
	return sub.ForEach(func(sk, sv []byte) error {
		if sv == nil {
			return fmt.Errorf("bucket nested twice under %q: this store has none", k)
		}
		return nd.Put(copyBytes(sk), copyBytes(sv))
	})
}

// dirtyKeys is the set of keys written while a compaction copies the file.
type dirtyKeys struct {
	mu sync.Mutex
	m  map[string]map[string]struct{} // bucket -> key
}

func (d *dirtyKeys) note(bucket, key []byte) {
	d.mu.Lock()
	ks := d.m[string(bucket)]
	if ks == nil {
		ks = map[string]struct{}{}
		d.m[string(bucket)] = ks
	}
	ks[string(key)] = struct{}{}
	d.mu.Unlock()
}

// copyTo writes the noted keys as they are in src now (or deletes them in dst when
// src no longer has them), and every bucket's sequence, in one transaction of dst.
// The caller holds the swap lock: no write runs on src meanwhile.
func (d *dirtyKeys) copyTo(src, dst *bolt.DB) (int, error) {
	n := 0
	err := src.View(func(stx *bolt.Tx) error {
		return dst.Update(func(dtx *bolt.Tx) error {
			err := stx.ForEach(func(name []byte, sb *bolt.Bucket) error {
				db, err := dtx.CreateBucketIfNotExists(name)
				if err != nil {
					return err
				}
				return db.SetSequence(sb.Sequence())
			})
			if err != nil {
				return err
			}
			if compactHooks.skipDelta {
				return nil
			}
			for name, keys := range d.m {
				sb, db := stx.Bucket([]byte(name)), dtx.Bucket([]byte(name))
				if sb == nil || db == nil {
					return fmt.Errorf("bucket %q vanished", name)
				}
				c := sb.Cursor()
				for k := range keys {
					key := []byte(k)
					// Seek, not Get: an empty value (a set member) and a missing key
					// must not look alike.
					if sub := db.Bucket(key); sub != nil {
						err = db.DeleteBucket(key)
					} else {
						err = db.Delete(key)
					}
					if ck, v := c.Seek(key); err == nil && ck != nil && bytes.Equal(ck, key) {
						err = copyKey(sb, db, key, v)
					}
					if err != nil {
						return err
					}
					n++
				}
			}
			return nil
		})
	})
	if err != nil {
		return n, fmt.Errorf("store: compact: delta: %w", err)
	}
	return n, nil
}

// wtx is a write transaction whose bucket writes are noted while a compaction runs.
type wtx struct {
	*bolt.Tx
	dirty *dirtyKeys // nil: no compaction
}

func (tx *wtx) bucket(name []byte) wbucket {
	b := tx.Tx.Bucket(name)
	if appendOrdered[string(name)] {
		b.FillPercent = 1
	}
	return wbucket{b: b, name: name, dirty: tx.dirty}
}

// appendOrdered are the buckets whose keys start with a submission id (in
// bucketCases after its length), a UUIDv7 that
// grows with time: new keys land at the end. Their pages are split full, not half
// full (bbolt's default, right for random keys): a page left behind is not written
// again, and full pages keep the trees a level lower — bbolt rewrites every level
// of a changed path on every commit.
var appendOrdered = map[string]bool{
	string(bucketCases): true, string(bucketSubmissions): true, string(bucketEvents): true, string(bucketReceipts): true,
	string(bucketOutbox): true, string(bucketHandedOver): true, string(bucketHeld): true, string(bucketUndecided): true,
	string(bucketByOffice): true, // office, then id: at the end of each office's range
}

// wbucket is a bucket of a wtx. Every write goes through Put and Delete here, so a
// compaction sees every key that changed (store.go has no other write path; the
// buckets' sequences are copied whole).
type wbucket struct {
	b     *bolt.Bucket
	name  []byte
	dirty *dirtyKeys
}

func (w wbucket) Put(k, v []byte) error {
	if w.dirty != nil {
		w.dirty.note(w.name, k)
	}
	return w.b.Put(k, v)
}

// Delete removes key k, a value or a value kept alone (PutAlone).
func (w wbucket) Delete(k []byte) error {
	if w.dirty != nil {
		w.dirty.note(w.name, k)
	}
	err := w.b.Delete(k)
	if errors.Is(err, berrors.ErrIncompatibleValue) {
		return w.b.DeleteBucket(k)
	}
	return err
}

// PutAlone stores v under k in a bucket of its own (see aloneKey), replacing what
// k held, a plain value or one kept alone.
func (w wbucket) PutAlone(k, v []byte) error {
	if w.dirty != nil {
		w.dirty.note(w.name, k)
	}
	sub := w.b.Bucket(k)
	if sub == nil {
		if w.b.Get(k) != nil {
			if err := w.b.Delete(k); err != nil {
				return err
			}
		}
		var err error
		if sub, err = w.b.CreateBucket(k); err != nil {
			return err
		}
	}
	return sub.Put(aloneKey, v)
}

// A value kept alone is the one key (aloneKey) of a bucket nested under its key.
//
// Why: bbolt writes whole nodes, and a node is split only when it has more than
// four keys, so a leaf of big values holds up to four of them. Inline blobs are
// keyed by digest, at random places in their bucket: every new package rewrote a
// leaf of three to five compressed packages — 37 of the ~88 KB bbolt wrote per
// package at 200 packages/s (docs/performance.md). A nested bucket with one big
// value gets a page of its own (bbolt inlines a bucket only up to a quarter
// page), written once; its parent's leaf holds only 16-byte bucket headers.
var aloneKey = []byte{0}

// getAlone is the value under k: kept alone or (as builds before wrote it) plain.
func getAlone(b *bolt.Bucket, k []byte) []byte {
	if sub := b.Bucket(k); sub != nil {
		return sub.Get(aloneKey)
	}
	return b.Get(k)
}

func (w wbucket) NextSequence() (uint64, error) { return w.b.NextSequence() }
