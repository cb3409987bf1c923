package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"time"

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
// The pause is kept short: a free page that is already zero is not written. Every
// free page is read at every wipe: a page wiped at one call and free at the next
// may have been taken by a write and freed again in between (bbolt reuses free
// pages first), so remembering the pages of the last call, as this did, left the
// erased content of such a page in the file. Reading them is the cheap part (the
// free pages of the million-submission file, out of the page cache: 2.4 ms). Which
// pages are free is read from the freelist page that bbolt's last commit wrote
// (freelistOnDisk), not found by asking bbolt about every page of the file:
// the walk read a header from each page, and with the exclusive lock held that
// stopped intake and delivery for 1 min 43 s on a file of a million submissions
// (6.6 GB) whose pages were not in memory, 1.1 s when they were — every hour,
// since the retention sweeps package bytes hourly (docs/performance.md, "Wiping
// free pages of a big file"). The walk stays as the fallback for a freelist this
// code cannot read or that does not add up.

// WipeFree overwrites the bbolt file's free pages with zeros and flushes them,
// and returns how many it wrote.
func (db *DB) WipeFree() (int, error) {
	db.compacting.Lock()
	defer db.compacting.Unlock()
	db.sw.Lock()
	defer db.sw.Unlock()
	wrote, walked, err := wipeFree(db.bolt, filepath.Join(db.dir, FileName))
	db.wiped.walked = walked
	return wrote, err
}

// wipeFree is WipeFree on the bbolt file name, open as b, in which no
// transaction is open; walked says the free pages were found by the walk.
func wipeFree(b *bolt.DB, name string) (wrote int, walked bool, err error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return 0, false, fmt.Errorf("store: wipe free pages: %w", err)
	}
	defer f.Close()
	size := b.Info().PageSize
	page, zero := make([]byte, size), make([]byte, size)
	errDone := errors.New("rolled back: nothing to commit")
	err = b.Update(func(tx *bolt.Tx) error {
		// bbolt stores a writer's free-page counts only after it has released
		// the write lock, so the counts of the commit just before this one can
		// arrive a moment late: look again, briefly, before walking.
		ids, ok := freelistOnDisk(f, tx, b.Stats(), size)
		for try := 0; !ok && !wipeByWalk && try < 3; try++ {
			time.Sleep(time.Millisecond)
			ids, ok = freelistOnDisk(f, tx, b.Stats(), size)
		}
		walked = !ok
		if !ok {
			var err error
			if ids, err = freeByWalk(tx, size); err != nil {
				return err
			}
		}
		for _, id := range ids {
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
		return errDone // nothing of this transaction is to be committed
	})
	if err != nil && !errors.Is(err, errDone) {
		return wrote, walked, fmt.Errorf("store: wipe free pages: %w", err)
	}
	return wrote, walked, nil
}

// wipeByWalk makes WipeFree find the free pages by the walk even where the
// freelist page would do (a test's switch: both ways must wipe the same).
var wipeByWalk bool

// freeByWalk asks bbolt about every page of the file and returns the free ones:
// the fallback of freelistOnDisk, reading a header from each page.
func freeByWalk(tx *bolt.Tx, size int) ([]int, error) {
	var ids []int
	for id := 2; int64(id)*int64(size) < tx.Size(); id++ {
		info, err := tx.Page(id)
		if err != nil {
			return nil, err
		}
		if info == nil {
			break
		}
		if info.Type != "free" {
			id += info.OverflowCount // a live value's overflow pages have no header
			continue
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// bbolt's file format (version 2), as far as freelistOnDisk reads it: a page
// begins with a 16-byte header (id u64, flags u16, count u16, overflow u32), a
// meta page's body is magic, version, page size, flags (u32 each), the root
// bucket (u64 page, u64 sequence), the freelist's page, the high-water page and
// the transaction id (u64 each) and an FNV-64a checksum of what precedes it; a
// freelist page's body is its count page ids, the count in the first id's place
// when it is 0xFFFF or more. Integers in the machine's byte order: bbolt maps
// its structs onto the file.
const (
	boltPageHeader   = 16
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltFreelistFlag = 0x10
	boltNoFreelist   = ^uint64(0)
	boltMetaSum      = 56 // bytes of the meta body the checksum covers
)

// freelistOnDisk returns the free pages as listed by the freelist page of the
// last commit, inside WipeFree's write transaction tx, in which no reader is
// open, so bbolt has released every pending page and its free set is exactly
// what that commit wrote (free and pending pages alike). It reports false, for
// the walk to take over, unless everything adds up: the current meta page is
// valid and is tx's predecessor, the freelist page is one, the ids are strictly
// increasing, as many as bbolt counts free and pending (st, taken inside tx),
// and bbolt calls each of them free. A subset of the free pages that bbolt
// confirms one by one and that is as large as the whole is the whole, so no
// free page can be missed, and none that is not free be written.
func freelistOnDisk(f *os.File, tx *bolt.Tx, st bolt.Stats, size int) ([]int, bool) {
	if wipeByWalk || size < boltPageHeader+boltMetaSum+8 {
		return nil, false
	}
	var freelist uint64
	found := false
	page := make([]byte, boltPageHeader+boltMetaSum+8)
	for meta := range int64(2) {
		if _, err := f.ReadAt(page, meta*int64(size)); err != nil {
			return nil, false
		}
		m := page[boltPageHeader:]
		h := fnv.New64a()
		h.Write(m[:boltMetaSum])
		if binary.NativeEndian.Uint32(m[0:]) != boltMagic || binary.NativeEndian.Uint32(m[4:]) != boltVersion ||
			binary.NativeEndian.Uint64(m[boltMetaSum:]) != h.Sum64() {
			continue
		}
		if binary.NativeEndian.Uint32(m[8:]) != uint32(size) || binary.NativeEndian.Uint64(m[48:]) != uint64(tx.ID()-1) {
			continue
		}
		freelist, found = binary.NativeEndian.Uint64(m[32:]), true
	}
	if !found || freelist == boltNoFreelist || freelist < 2 || freelist > uint64(tx.Size())/uint64(size) {
		return nil, false
	}
	// The first page, and the overflow pages only if the header names any.
	off := int64(freelist) * int64(size)
	body := make([]byte, size)
	if _, err := f.ReadAt(body, off); err != nil {
		return nil, false
	}
	flags, count := binary.NativeEndian.Uint16(body[8:]), int(binary.NativeEndian.Uint16(body[10:]))
	span := (int64(binary.NativeEndian.Uint32(body[12:])) + 1) * int64(size)
	if flags != boltFreelistFlag || off+span > tx.Size() {
		return nil, false
	}
	if span > int64(size) {
		body = append(body, make([]byte, span-int64(size))...)
		if _, err := f.ReadAt(body[size:], off+int64(size)); err != nil {
			return nil, false
		}
	}
	ids, ok := parseFreelist(body[boltPageHeader:], count)
	if !ok || len(ids) != st.FreePageN+st.PendingPageN {
		return nil, false
	}
	for i, id := range ids {
		if i > 0 && id <= ids[i-1] {
			return nil, false
		}
		info, err := tx.Page(id)
		if err != nil || info == nil || info.Type != "free" {
			return nil, false
		}
	}
	return ids, true
}

// parseFreelist reads the page ids of a freelist page's body whose header
// counted count (0xFFFF: the count is the first id's place).
func parseFreelist(body []byte, count int) ([]int, bool) {
	if count == 0xFFFF {
		if len(body) < 8 {
			return nil, false
		}
		n := binary.NativeEndian.Uint64(body)
		if n > uint64(len(body)/8) {
			return nil, false
		}
		count, body = int(n), body[8:]
	}
	if count > len(body)/8 {
		return nil, false
	}
	ids := make([]int, count)
	for i := range ids {
		id := binary.NativeEndian.Uint64(body[8*i:])
		if id < 2 || id > 1<<62 {
			return nil, false
		}
		ids[i] = int(id)
	}
	return ids, true
}
