package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// BoltHarness runs the shared contract against the single-node store: each Open is a
// new folder, Reopen closes the bbolt file and opens the folder again.
func BoltHarness() storetest.Harness {
	dirs := map[store.Store]string{}
	return storetest.Harness{
		Open: func(t *testing.T) store.Store {
			dir := t.TempDir()
			db, err := store.Open(dir, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			dirs[db] = dir
			t.Cleanup(func() { db.Close() })
			return db
		},
		Reopen: func(t *testing.T, old store.Store) store.Store {
			dir := dirs[old]
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := store.Open(dir, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			dirs[db] = dir
			t.Cleanup(func() { db.Close() })
			return db
		},
	}
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, BoltHarness())
}

// TestBlobFilesSurviveReopen covers what only the file store has: Files().Read.
func TestBlobFilesSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	digest, err := db.Blobs().Put([]byte("%PDF-1.4 tiny"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := db.Create(context.Background(), storetest.NewSubmission("s1", "amt24", "m1"), []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r1")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if b, err := db.Files().Read(digest); err != nil || string(b) != "%PDF-1.4 tiny" {
		t.Fatalf("blob after reopen: %q %v", b, err)
	}
}

// TestSecondOpenWaitsForLock: a second process on the same folder gets an error after
// OpenTimeout instead of corrupting the file.
func TestSecondOpenWaitsForLock(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := store.Open(dir, store.Options{OpenTimeout: 50 * 1e6}); err == nil {
		t.Fatal("a second Open of a locked store succeeded")
	}
}

// TestSweepNeverRemovesContentPutAgain: a blob put again (a new record is about to
// reference the same bytes) is no longer "older than" the sweep's threshold, so the
// retention sweep leaves it.
func TestSweepNeverRemovesContentPutAgain(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bs := db.Files()
	d, err := bs.Put([]byte("%PDF-1.4 the same attachment"))
	if err != nil {
		t.Fatal(err)
	}
	threshold := time.Now().Add(time.Second)                                  // the sweep decided: written before this
	if _, err := bs.Put([]byte("%PDF-1.4 the same attachment")); err != nil { // meanwhile a portal sends it again
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	// The file's time was refreshed to "now" by the second Put; a threshold taken
	// before that Put must not remove it.
	gone, err := bs.DeleteIfOlder(d, threshold.Add(-2*time.Second))
	if err != nil || gone {
		t.Fatalf("removed content that was put again: %v %v", gone, err)
	}
	if gone, err := bs.DeleteIfOlder(d, time.Now().Add(time.Minute)); err != nil || !gone {
		t.Fatalf("an old blob is not removed: %v %v", gone, err)
	}
}

// TestPutStreamLeavesNoFiles: what only the file store has, a folder to look into.
// Every refused or failed stream must leave no temporary file there (a 2 GiB
// upload refused at its end would otherwise stay on disk for good: Walk and the
// sweep do not see temporary files).
func TestPutStreamLeavesNoFiles(t *testing.T) {
	dir := t.TempDir()
	bs, err := store.OpenBlobs(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := []byte(strings.Repeat("Anlage ", 100_000))
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	wrong := strings.Repeat("0", 64)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for name, put := range map[string]func() error{
		"mismatch":  func() error { _, err := bs.PutStream(ctx, bytes.NewReader(data), -1, wrong); return err },
		"too large": func() error { _, err := bs.PutStream(ctx, bytes.NewReader(data), 1000, ""); return err },
		"cancelled": func() error { _, err := bs.PutStream(cancelled, bytes.NewReader(data), -1, digest); return err },
		"reader fails": func() error {
			_, err := bs.PutStream(ctx, io.MultiReader(bytes.NewReader(data), iotest.ErrReader(errors.New("reset"))), -1, "")
			return err
		},
	} {
		if err := put(); err == nil {
			t.Fatalf("%s: PutStream succeeded", name)
		}
		var files []string
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		if len(files) != 0 {
			t.Fatalf("%s: files left behind: %v", name, files)
		}
	}
}
