package store

import (
	"bytes"
	"log/slog"

	bolt "go.etcd.io/bbolt"
)

// upgradeChunk is how many cases one transaction of the upgrade moves: the dirty
// pages of a transaction stay in memory until it commits, so a store of millions
// of cases is moved in pieces (about 10 MB each). A variable for the tests.
var upgradeChunk = 1000

// upgradeCases moves the records, events and receipts of a file written before
// schema 4 from their three buckets into bucketCases (store.go says why), before
// the store serves anything.
//
// Each transaction (upgradeStep) moves whole cases and marks the file "4" first,
// so a kill in between leaves a file that an older build refuses and this one
// finishes on its next open: the old buckets exist until every case has left
// them. Events and receipts without a record (a deleted case's, left by some old
// build) have no case to join and are dropped with the old buckets.
func upgradeCases(b *bolt.DB, log *slog.Logger) error {
	todo := -1
	if err := b.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			if err := schemaRefused(meta.Get([]byte("schema"))); err != nil {
				return err
			}
		}
		if subs := tx.Bucket(bucketSubmissions); subs != nil {
			todo = subs.Stats().KeyN
		} else if tx.Bucket(bucketReceipts) != nil {
			todo = 0
		}
		return nil
	}); err != nil {
		return err
	}
	if todo < 0 {
		return nil // schema 4 already, or a new file
	}
	if log != nil {
		log.Info("store: moving every case into one tree (schema 4), once", "cases", todo)
	}
	moved, dropped := 0, 0
	for {
		n, d, err := upgradeStep(b)
		if err != nil {
			return err
		}
		moved, dropped = moved+n, dropped+d
		if n == 0 && d == 0 {
			break
		}
		if log != nil && n > 0 && moved%100_000 < upgradeChunk {
			log.Info("store: moving cases", "moved", moved, "of", todo)
		}
	}
	if log != nil {
		log.Info("store: every case in one tree", "moved", moved, "orphan_keys_dropped", dropped)
	}
	return nil
}

// upgradeStep moves up to upgradeChunk cases in one transaction and returns how
// many; when none was left it drops up to upgradeChunk events without a case
// instead, and once those are gone it removes the old buckets, and returns how
// many keys it dropped. A step that moved and dropped nothing found nothing to do.
func upgradeStep(b *bolt.DB) (moved, dropped int, err error) {
	err = b.Update(func(tx *bolt.Tx) error {
		moved, dropped = 0, 0
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("schema"), []byte(schemaVersion)); err != nil {
			return err
		}
		cases, err := tx.CreateBucketIfNotExists(bucketCases)
		if err != nil {
			return err
		}
		cases.FillPercent = 1
		events, err := tx.CreateBucketIfNotExists(bucketEvents)
		if err != nil {
			return err
		}
		receipts, subs := tx.Bucket(bucketReceipts), tx.Bucket(bucketSubmissions)
		var ids [][]byte
		if subs != nil {
			c := subs.Cursor()
			for k, _ := c.First(); k != nil && len(ids) < upgradeChunk; k, _ = c.Next() {
				ids = append(ids, copyBytes(k))
			}
		}
		for _, k := range ids {
			id := string(k)
			if err := cases.Put(recordKey(id), copyBytes(subs.Get(k))); err != nil {
				return err
			}
			if err := moveCaseKeys(events, cases, id, tagEvent); err != nil {
				return err
			}
			if err := moveCaseKeys(receipts, cases, id, tagReceipt); err != nil {
				return err
			}
			if err := subs.Delete(k); err != nil {
				return err
			}
		}
		if moved = len(ids); moved > 0 {
			return nil
		}
		// Every record moved: what is left in the old buckets belongs to no case.
		// The events bucket stays, empty: its sequence numbers the events. Its
		// orphans go upgradeChunk per transaction too: a store with years of them
		// deleted them in one, whose dirty pages (the whole events tree) stayed in
		// memory until it committed. The old buckets go last, whole (their pages
		// are freed, not rewritten), so a kill before leaves a file that the next
		// Open upgrades on.
		var left [][]byte
		c := events.Cursor()
		for k, _ := c.First(); k != nil && len(left) <= upgradeChunk; k, _ = c.Next() {
			left = append(left, copyBytes(k))
		}
		more := len(left) > upgradeChunk
		if more {
			left = left[:upgradeChunk]
		}
		for _, k := range left {
			if err := events.Delete(k); err != nil {
				return err
			}
		}
		if dropped = len(left); more {
			return nil
		}
		for _, name := range [][]byte{bucketSubmissions, bucketReceipts} {
			if bk := tx.Bucket(name); bk != nil {
				dropped += bk.Stats().KeyN
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return moved, dropped, err
}

// moveCaseKeys moves id's keys in an old bucket (id, a zero byte, a suffix) to
// its keys in bucketCases under tag, with the same suffix.
func moveCaseKeys(from, to *bolt.Bucket, id string, tag byte) error {
	if from == nil {
		return nil
	}
	prefix := append([]byte(id), 0)
	var keys, values [][]byte
	c := from.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		keys, values = append(keys, copyBytes(k)), append(values, copyBytes(v))
	}
	for i, k := range keys {
		if err := to.Put(append(caseKey(id, tag), k[len(prefix):]...), values[i]); err != nil {
			return err
		}
		if err := from.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
