package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
	bolt "go.etcd.io/bbolt"
)

// TestOpenReadOnlyWritesNothing: Options.ReadOnly reads a store and leaves its
// file byte for byte (Open commits a transaction even on an up-to-date file);
// a write fails; a file Open would have to write first is refused, unchanged.
func TestOpenReadOnlyWritesNothing(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := storetest.NewSubmission("ro-1", "amt24", "m1")
	if _, _, _, err := db.Create(context.Background(), s, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, store.FileName)
	before, _ := os.ReadFile(file)

	ro, err := store.Open(dir, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ro.Get("ro-1"); err != nil || got.ID != "ro-1" {
		t.Fatalf("read: %v %v", got, err)
	}
	if err := ro.Delete("ro-1"); err == nil {
		t.Fatal("a delete on a read-only store succeeded")
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(file); !bytes.Equal(before, after) {
		t.Fatal("the read-only open changed the file")
	}

	// A bucket of this schema missing (Open would add it): refused, not added.
	b, err := bolt.Open(file, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("replies")) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	before, _ = os.ReadFile(file)
	if ro, err := store.Open(dir, store.Options{ReadOnly: true}); err == nil {
		ro.Close()
		t.Fatal("a file without the replies bucket opened read-only")
	}
	if after, _ := os.ReadFile(file); !bytes.Equal(before, after) {
		t.Fatal("the refused read-only open changed the file")
	}
}
