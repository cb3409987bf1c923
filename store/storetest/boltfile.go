package storetest

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amtsbote/amtsbote/store"
)

// EditFile runs fn in one write transaction on the closed store.DB file in dir
// and closes the file again: how a test plants what an older build (or a fault)
// left in the buckets before it opens the store. Any error fails the test.
func EditFile(t testing.TB, dir string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	b, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(fn); err != nil {
		b.Close()
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// OpenBolt opens a bbolt store in a test's own folder, closed when the test
// ends; commits wait at most a millisecond for company, so a test's lone writes
// do not wait for the default batch delay.
func OpenBolt(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{BatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
