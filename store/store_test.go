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
	open := func(t *testing.T, dir string) store.Store {
		db, err := store.Open(dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		dirs[db] = dir
		t.Cleanup(func() { db.Close() })
		return db
	}
	closeOld := func(t *testing.T, old store.Store) string {
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		return dirs[old]
	}
	return storetest.Harness{
		Open: func(t *testing.T) store.Store { return open(t, t.TempDir()) },
		Reindex: func(t *testing.T, st store.Store) store.ReindexReport {
			rep, err := st.(*store.DB).Reindex(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			return rep
		},
		Reopen: func(t *testing.T, old store.Store) store.Store { return open(t, closeOld(t, old)) },
		StepBack: func(t *testing.T, st store.Store, digest string, d time.Duration) time.Time {
			return storetest.StepBackFile(t, filepath.Join(dirs[st], "blobs"), digest, d)
		},
		// As the build before wrote the file: without the undecided bucket.
		Older: func(t *testing.T, old store.Store) store.Store {
			dir := closeOld(t, old)
			if err := store.ForgetNewIndexes(dir); err != nil {
				t.Fatal(err)
			}
			return open(t, dir)
		},
		Rewrite: func(t *testing.T, st store.Store, id string, edit func(map[string]any) bool) store.Store {
			dir := closeOld(t, st)
			if err := store.RewriteRecord(dir, id, edit); err != nil {
				t.Fatal(err)
			}
			return open(t, dir)
		},
		// A listing is one read transaction: a change lands before it or after.
		MidListing: func(t *testing.T, st store.Store, fn func()) { fn() },
		MidRead:    func(t *testing.T, st store.Store, fn func()) { fn() },
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
	rc, err := db.Blobs().Open(context.Background(), digest)
	if err != nil {
		t.Fatalf("blob after reopen: %v", err)
	}
	defer rc.Close()
	if b, err := io.ReadAll(rc); err != nil || string(b) != "%PDF-1.4 tiny" {
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
// reference the same bytes) is no longer "older than" a sweep threshold taken before,
// so the retention sweep leaves it — for inline blobs (in the bbolt file) and blob
// files alike.
func TestSweepNeverRemovesContentPutAgain(t *testing.T) {
	db, _ := openTemp(t)
	type conditional interface {
		store.BlobStore
		DeleteIfOlder(digest string, before time.Time) (bool, error)
	}
	for _, c := range []struct {
		name string
		bs   conditional
		data []byte
	}{
		{"inline", db.Blobs().(conditional), []byte("%PDF-1.4 the same small attachment")},
		{"file", db.Blobs().(conditional), append([]byte("%PDF-1.4 a big one"), make([]byte, store.InlineMax)...)},
		{"file store", db.Files(), []byte("%PDF-1.4 the same attachment")},
	} {
		d, err := c.bs.Put(c.data)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		threshold := time.Now() // the sweep decided: written before this
		time.Sleep(5 * time.Millisecond)
		if _, err := c.bs.Put(c.data); err != nil { // meanwhile a portal sends it again
			t.Fatal(err)
		}
		if gone, err := c.bs.DeleteIfOlder(d, threshold); err != nil || gone {
			t.Fatalf("%s: removed content that was put again: %v %v", c.name, gone, err)
		}
		if gone, err := c.bs.DeleteIfOlder(d, time.Now().Add(time.Minute)); err != nil || !gone {
			t.Fatalf("%s: an old blob is not removed: %v %v", c.name, gone, err)
		}
		if _, err := c.bs.Open(context.Background(), d); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: open after the sweep: %v", c.name, err)
		}
	}
}

// TestSmallBlobsInline: a blob up to InlineMax lives in the bbolt file (no file, no
// fsync of its own), a bigger one as a file; both read back, seek (range requests),
// walk and delete alike.
func TestSmallBlobsInline(t *testing.T) {
	db, dir := openTemp(t)
	small := []byte("<Antragspaket>small</Antragspaket>")
	// Blobs are any bytes: one that starts with pack's deflate marker and one that
	// deflates well both come back as they were.
	marker := append([]byte{0x01}, []byte("binary attachment")...)
	xml := bytes.Repeat([]byte("<Feld>Wert</Feld>"), 500)
	for _, b := range [][]byte{marker, xml, {}} {
		d, err := db.Blobs().Put(b)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := db.Blobs().Open(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, b) {
			t.Fatalf("inline blob of %d bytes came back as %d bytes", len(b), len(got))
		}
		if err := db.Blobs().Delete(d); err != nil {
			t.Fatal(err)
		}
	}
	big := append([]byte("%PDF-1.4 "), make([]byte, store.InlineMax)...)
	ds, err := db.Blobs().Put(small)
	if err != nil {
		t.Fatal(err)
	}
	db2, err := db.Blobs().Put(big)
	if err != nil {
		t.Fatal(err)
	}
	if files := filesUnder(t, filepath.Join(dir, "blobs")); len(files) != 1 {
		t.Fatalf("%d blob files, want 1 (the big one)", len(files))
	}
	for d, want := range map[string][]byte{ds: small, db2: big} {
		rc, err := db.Blobs().Open(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := rc.(io.Seeker); !ok {
			t.Errorf("blob %s cannot seek", d[:8])
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read back %s: %d bytes, %v", d[:8], len(got), err)
		}
	}
	seen := map[string]int64{}
	if err := db.Blobs().Walk(func(d string, size int64, _ time.Time) bool { seen[d] = size; return true }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[ds] != int64(len(small)) || seen[db2] != int64(len(big)) {
		t.Fatalf("walk: %v", seen)
	}
	for _, d := range []string{ds, db2} {
		if err := db.Blobs().Delete(d); err != nil {
			t.Fatal(err)
		}
		if err := db.Blobs().Delete(d); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
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
		if files := filesUnder(t, dir); len(files) != 0 {
			t.Fatalf("%s: files left behind: %v", name, files)
		}
	}
}

// TestPutStreamOfInlineContent: a stream whose content is an inline blob already
// (a small attachment sent inline before, now by reference) leaves no second copy
// as a file and reports Created=false, so a DiscardNew after a failed request can
// never remove the inline blob that records reference.
func TestPutStreamOfInlineContent(t *testing.T) {
	db, dir := openTemp(t)
	data := []byte("%PDF-1.4 a small attachment, inline first")
	d, err := db.Blobs().Put(data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.Blobs().PutStream(context.Background(), bytes.NewReader(data), -1, d)
	if err != nil {
		t.Fatal(err)
	}
	if p.Created || p.Digest != d || p.Size != int64(len(data)) {
		t.Fatalf("stream of inline content: %+v", p)
	}
	if files := filesUnder(t, filepath.Join(dir, "blobs")); len(files) != 0 {
		t.Fatalf("%d blob files beside the inline blob", len(files))
	}
	// The failed request's DiscardNew of this put keeps the inline blob.
	if err := store.DiscardNew(db.Blobs(), p); err != nil {
		t.Fatal(err)
	}
	rc, err := db.Blobs().Open(context.Background(), d)
	if err != nil {
		t.Fatalf("inline blob gone after DiscardNew: %v", err)
	}
	rc.Close()
}

// filesUnder lists the files (not folders) under dir.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return files
}

// openTemp opens a store in a new temporary folder, closed when the test ends.
func openTemp(t *testing.T) (*store.DB, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dir
}
