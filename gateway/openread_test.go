package gateway

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/store"
	bolt "go.etcd.io/bbolt"
)

// TestOpenStoreToReadOfAStoreLackingAnIndex: a file of this schema version
// that an earlier build wrote before one of its indexes came (the undecided
// cases', 2026-12-05, came without a new version) is brought up to date by an
// open to write, which the commands that only read do not do. They said "no
// bucket "undecided": only opening it to write adds it", and not how; the
// refusal is an older schema's (ErrOldSchema), with its way out.
func TestOpenStoreToReadOfAStoreLackingAnIndex(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("undecided")) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = dir
	_, _, err = OpenStoreToRead(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if !errors.Is(err, ErrOldSchema) || !strings.Contains(err.Error(), "amtsbote serve") {
		t.Fatalf("a store lacking an index opened to read: %v", err)
	}
	t.Log(err)
}
