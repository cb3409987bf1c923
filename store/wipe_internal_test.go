package store

import (
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestFreelistOnDiskIsTheWalk: on a file with free pages of every kind (single
// pages, runs of a big value's overflow pages, pending ones of the last commit),
// the free pages read from the freelist page are exactly those the walk over
// every page finds; and each cross-check refuses a freelist that does not add
// up (planted defects), so the walk takes over rather than a page being missed.
func TestFreelistOnDiskIsTheWalk(t *testing.T) {
	db, f := withFreePages(t, 40, 700) // values up to ~28 KB: over several pages
	size := db.bolt.Info().PageSize
	errDone := os.ErrClosed
	_ = db.bolt.Update(func(tx *bolt.Tx) error {
		st := db.bolt.Stats()
		walked, err := freeByWalk(tx, size)
		if err != nil {
			t.Fatal(err)
		}
		if len(walked) < 20 {
			t.Fatalf("only %d free pages: the comparison would prove little", len(walked))
		}
		t.Logf("%d free pages, %d of them pending at the last commit", len(walked), st.PendingPageN)
		read, ok := freelistOnDisk(f, tx, st, size)
		if !ok {
			t.Fatal("the freelist page was not read")
		}
		if !slices.Equal(read, walked) {
			t.Fatalf("freelist page %v, walk %v", read, walked)
		}
		// Planted defects: each must send WipeFree to the walk.
		short := st
		short.FreePageN++ // bbolt counts a page the list does not have
		if _, ok := freelistOnDisk(f, tx, short, size); ok {
			t.Error("a freelist shorter than bbolt's count was taken")
		}
		if _, ok := freelistOnDisk(f, tx, st, size*2); ok {
			t.Error("a meta page of another page size was taken")
		}
		return errDone
	})

	// A freelist page's body: plain count, the 0xFFFF form, and bodies that lie.
	body := func(ids ...uint64) []byte {
		b := make([]byte, 8*len(ids))
		for i, id := range ids {
			binary.NativeEndian.PutUint64(b[8*i:], id)
		}
		return b
	}
	if ids, ok := parseFreelist(body(5, 9, 12), 3); !ok || !slices.Equal(ids, []int{5, 9, 12}) {
		t.Errorf("plain: %v %v", ids, ok)
	}
	if ids, ok := parseFreelist(body(2, 7, 8), 0xFFFF); !ok || !slices.Equal(ids, []int{7, 8}) {
		t.Errorf("counted in the first place: %v %v", ids, ok)
	}
	for name, c := range map[string]struct {
		b     []byte
		count int
	}{
		"count beyond the page":       {body(5, 9), 3},
		"first-place count too large": {body(4, 7, 8), 0xFFFF},
		"meta page listed free":       {body(1, 9), 2},
		"empty 0xFFFF body":           {nil, 0xFFFF},
	} {
		if _, ok := parseFreelist(c.b, c.count); ok {
			t.Errorf("%s: taken", name)
		}
	}
}

// withFreePages returns a store whose file has free pages of many runs: n blobs
// of 500 + i*step random bytes (S2 keeps them as they are) put, two of each three
// deleted again; and the file opened for reading.
func withFreePages(t *testing.T, n, step int) (*DB, *os.File) {
	t.Helper()
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var digests []string
	for i := range n {
		b := make([]byte, 500+i*step)
		_, _ = rand.Read(b)
		d, err := db.Blobs().Put(b)
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	for i, d := range digests {
		if i%3 != 0 {
			if err := db.Blobs().Delete(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, FileName), os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return db, f
}

// TestFreelistOnDiskOverflowPages: a freelist longer than one page (more than
// 510 ids on 4 KiB pages) is read over its overflow pages too.
func TestFreelistOnDiskOverflowPages(t *testing.T) {
	db, f := withFreePages(t, 60, 2000) // up to ~118 KB each: over a thousand free pages
	size := db.bolt.Info().PageSize
	_ = db.bolt.Update(func(tx *bolt.Tx) error {
		st := db.bolt.Stats()
		walked, err := freeByWalk(tx, size)
		if err != nil {
			t.Fatal(err)
		}
		if len(walked) <= (size-boltPageHeader)/8 {
			t.Fatalf("only %d free pages: the freelist fits one page", len(walked))
		}
		read, ok := freelistOnDisk(f, tx, st, size)
		if !ok || !slices.Equal(read, walked) {
			t.Fatalf("freelist over several pages: %v (%d ids), walk %d ids", ok, len(read), len(walked))
		}
		return os.ErrClosed // nothing to commit
	})
}
