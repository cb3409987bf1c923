package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Wiping free pages.
//
// bbolt frees the pages of a deleted or rewritten value but never overwrites
// them: until a later write happens to reuse a page, the file still holds what
// was there. For this store that is personal data — an inline package or
// attachment whose bytes the retention or an erasure removed, a deleted record's
// rejection reason — readable with `strings amtsbote.db` and copied into every
// backup (tx.WriteTo copies free pages too) long after the retention said it was
// gone. WipeFree overwrites every free page with zeros.
//
// Which pages are safe: a page bbolt lists as free may still be "pending", freed
// by a recent transaction but part of the snapshot of a read transaction that
// began before it. Overwriting such a page would corrupt that reader. So WipeFree
// holds the swap lock exclusively (every operation of this store holds it shared
// for its whole transaction, so none is open) and the compaction lock (whose
// snapshot runs without the swap lock), and begins a write transaction: with no
// reader open, bbolt releases every pending page at its start, and each page it
// then reports free is referenced by nothing. bbolt writes pages through the file
// too (not through its read-only mapping), so a plain write at the page's offset
// is what bbolt itself would do.
//
// The pause is kept short: pages wiped before and still free are remembered and
// not read again, and a free page that is already zero is not written.

// WipeFree overwrites the bbolt file's free pages with zeros and flushes them,
// and returns how many it wrote.
func (db *DB) WipeFree() (int, error) {
	db.compacting.Lock()
	defer db.compacting.Unlock()
	db.sw.Lock()
	defer db.sw.Unlock()
	f, err := os.OpenFile(filepath.Join(db.dir, FileName), os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("store: wipe free pages: %w", err)
	}
	defer f.Close()
	if db.wiped.of != db.bolt {
		// A new handle (open, compaction): its file's free pages are unknown.
		db.wiped.of, db.wiped.pages = db.bolt, map[int]bool{}
	}
	size := db.bolt.Info().PageSize
	page, zero := make([]byte, size), make([]byte, size)
	wrote := 0
	errDone := errors.New("rolled back: nothing to commit")
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		now := map[int]bool{}
		for id := 2; int64(id)*int64(size) < tx.Size(); id++ {
			info, err := tx.Page(id)
			if err != nil {
				return err
			}
			if info == nil {
				break
			}
			if info.Type != "free" {
				id += info.OverflowCount // a live value's overflow pages have no header
				continue
			}
			now[id] = true
			if db.wiped.pages[id] {
				continue
			}
			off := int64(id) * int64(size)
			if _, err := f.ReadAt(page, off); err != nil {
				return err
			}
			if bytes.Equal(page, zero) {
				continue
			}
			if _, err := f.WriteAt(zero, off); err != nil {
				return err
			}
			wrote++
		}
		if wrote > 0 {
			if err := f.Sync(); err != nil {
				return err
			}
		}
		db.wiped.pages = now
		return errDone // nothing of this transaction is to be committed
	})
	if err != nil && !errors.Is(err, errDone) {
		db.wiped.pages = map[int]bool{}
		return wrote, fmt.Errorf("store: wipe free pages: %w", err)
	}
	return wrote, nil
}
