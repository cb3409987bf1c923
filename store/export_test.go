package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// ForgetNewIndexes makes the closed store file in dir look as a build before the
// undecided and follow-up indexes wrote it: without their buckets
// (storetest.Harness.Older).
func ForgetNewIndexes(dir string) error {
	b, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		return err
	}
	defer b.Close()
	return b.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketUndecided); err != nil {
			return err
		}
		return tx.DeleteBucket(bucketFollowUps)
	})
}

// RewriteRecord hands edit the record of id in the closed store file in dir,
// as its JSON object (numbers as json.Number), and writes it back packed as
// this build packs if edit returns true (storetest.Harness.Rewrite).
func RewriteRecord(dir, id string, edit func(map[string]any) bool) error {
	return updateClosed(dir, func(cases *bolt.Bucket) error {
		v := cases.Get(recordKey(id))
		if v == nil {
			return fmt.Errorf("submission %s: %w", id, ErrNotFound)
		}
		raw, err := unpack(v)
		if err != nil {
			return err
		}
		out, changed, err := editJSON(raw, edit)
		if err != nil || !changed {
			return err
		}
		return cases.Put(recordKey(id), pack(out))
	})
}

// RewriteEvents hands edit each stored event of id in the closed store file in
// dir, oldest first, as its JSON object (numbers as json.Number), and writes
// back those edit returns true for.
func RewriteEvents(dir, id string, edit func(map[string]any) bool) error {
	return updateClosed(dir, func(cases *bolt.Bucket) error {
		prefix := caseKey(id, tagEvent)
		var keys, values [][]byte
		c := cases.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			out, changed, err := editJSON(v, edit)
			if err != nil {
				return err
			}
			if changed {
				keys, values = append(keys, copyBytes(k)), append(values, out)
			}
		}
		for i, k := range keys {
			if err := cases.Put(k, values[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// updateClosed runs fn on the cases bucket of the closed store file in dir, in
// one write transaction.
func updateClosed(dir string, fn func(cases *bolt.Bucket) error) error {
	b, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		return err
	}
	defer b.Close()
	return b.Update(func(tx *bolt.Tx) error { return fn(tx.Bucket(bucketCases)) })
}

// editJSON hands edit the JSON object raw (numbers as json.Number) and returns
// it encoded again if edit changed it.
func editJSON(raw []byte, edit func(map[string]any) bool) ([]byte, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || !edit(obj) {
		return nil, false, err
	}
	out, err := json.Marshal(obj)
	return out, err == nil, err
}

// CompactCheckSame makes every following Compact compare the old and the new file
// under the swap lock (keys, values, sequences) and fail on a difference; with
// skipDelta it plants the defect of forgetting what was written during the copy.
// It returns the function that undoes it.
func CompactCheckSame(skipDelta bool) (undo func()) {
	compactHooks.check = func(src, dst *bolt.DB) error {
		a, err := dump(src)
		if err != nil {
			return err
		}
		b, err := dump(dst)
		if err != nil {
			return err
		}
		for k, v := range a {
			if w, ok := b[k]; !ok || w != v {
				return fmt.Errorf("compacted file differs at %q (present %v)", k, ok)
			}
		}
		for k := range b {
			if _, ok := a[k]; !ok {
				return fmt.Errorf("compacted file has %q, the old one not", k)
			}
		}
		return nil
	}
	compactHooks.skipDelta = skipDelta
	return func() { compactHooks.check, compactHooks.skipDelta = nil, false }
}

func dump(db *bolt.DB) (map[string]string, error) {
	m := map[string]string{}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			m[string(name)+"#seq"] = fmt.Sprint(b.Sequence())
			return b.ForEach(func(k, v []byte) error {
				if sub := b.Bucket(k); v == nil && sub != nil { // a value kept alone
					return sub.ForEach(func(sk, sv []byte) error {
						m[string(name)+"/"+string(k)+"/"+string(sk)] = string(sv)
						return nil
					})
				}
				m[string(name)+"/"+string(k)] = string(v)
				return nil
			})
		})
	})
	return m, err
}

// WipeWalked reports whether the last WipeFree found the free pages by walking
// every page rather than from the freelist page.
func (db *DB) WipeWalked() bool { return db.wiped.walked }

// WipeByWalk makes WipeFree walk every page; it returns the function that undoes it.
func WipeByWalk() (undo func()) {
	wipeByWalk = true
	return func() { wipeByWalk = false }
}

// SetReindexChunk makes every Reindex transaction read n records or entries; it
// returns the function that undoes it.
func SetReindexChunk(n int) (undo func()) {
	was := reindexChunk
	reindexChunk = n
	return func() { reindexChunk = was }
}
