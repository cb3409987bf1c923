package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFileTimeGrain: the probe reads back what it set on this machine's temporary
// folder, and the grain it reports explains what the file system kept.
func TestFileTimeGrain(t *testing.T) {
	dir := t.TempDir()
	g := fileTimeGrain(dir)
	if g != time.Nanosecond && g != coarseGrain {
		t.Fatalf("grain %v", g)
	}
	f := filepath.Join(dir, "probe")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	set := time.Now().Truncate(time.Second).Add(987654321 * time.Nanosecond)
	if err := os.Chtimes(f, set, set); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	if m := info.ModTime(); m.After(set) || !m.Add(g).After(set) {
		t.Fatalf("set %v, kept %v: the grain %v does not cover it", set, m, g)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(left) != 0 {
		t.Fatalf("the probe left %v", left)
	}
}

// TestDiscardKeepsATouchInTheSameTick: on a file system that keeps whole seconds,
// request A streams new content, request B puts the same content a moment later
// (its record is about to reference it), then A is refused and discards what it
// created. The bytes must stay. With a grain of 1ns (what the code assumed before
// it probed) they are removed: the planted defect.
func TestDiscardKeepsATouchInTheSameTick(t *testing.T) {
	for _, tc := range []struct {
		grain time.Duration
		kept  bool
	}{{coarseGrain, true}, {time.Nanosecond, false}} {
		bs, err := OpenBlobs(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		bs.grain = tc.grain
		content := []byte("the same building plan in two requests")
		sum := sha256.Sum256(content)
		want := hex.EncodeToString(sum[:])
		a, err := bs.PutStream(context.Background(), bytes.NewReader(content), -1, want)
		if err != nil || !a.Created {
			t.Fatalf("A: %+v %v", a, err)
		}
		b, err := bs.PutStream(context.Background(), bytes.NewReader(content), -1, want)
		if err != nil || b.Created {
			t.Fatalf("B: %+v %v", b, err)
		}
		// What a file system with whole seconds keeps of B's touch: the second it
		// began in, which is not after A's put when both fall into the same second.
		kept := a.Written.Truncate(time.Second)
		if err := os.Chtimes(bs.path(want), kept, kept); err != nil {
			t.Fatal(err)
		}
		if err := DiscardNew(bs, a); err != nil {
			t.Fatal(err)
		}
		_, err = os.Stat(bs.path(want))
		if got := err == nil; got != tc.kept {
			t.Fatalf("grain %v: blob kept %v, want %v (%v)", tc.grain, got, tc.kept, err)
		}
	}
}

// TestOpenRemovesStaleBlobTemps: the temporary files of blob writes that died with
// their process go when the store is opened again, blobs stay; a second process
// that cannot get the file lock removes nothing (the first one's uploads are live).
func TestOpenRemovesStaleBlobTemps(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	digest, err := db.blobs.Put(bytes.Repeat([]byte("plan "), 1000))
	if err != nil {
		t.Fatal(err)
	}
	stream := filepath.Join(dir, "blobs", ".tmp-stream-1")
	put := filepath.Join(dir, "blobs", ".tmp-2")
	for _, f := range []string{stream, put} {
		if err := os.WriteFile(f, make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(dir, Options{OpenTimeout: 50 * time.Millisecond}); err == nil {
		t.Fatal("a second Open got the lock")
	}
	if _, err := os.Stat(stream); err != nil {
		t.Fatalf("a process without the lock removed a live upload: %v", err)
	}
	db.Close()

	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, f := range []string{stream, put} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if _, err := db.blobs.Read(digest); err != nil {
		t.Fatalf("the blob went too: %v", err)
	}
}

// TestPutRepairsACutBlobFile: a blob file cut short (a `tar -x` of a cut backup,
// a disk error) was only touched when the same content came again, so the new
// record, acknowledged, named bytes that were not there. Put and PutStream
// write the content again when the file's size is not the content's (as the
// cluster store uploads an object again whose chunks are missing), and report
// it as not created: other records named it before.
func TestPutRepairsACutBlobFile(t *testing.T) {
	bs, err := OpenBlobs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("Bauplan "), 40_000)
	d, err := bs.Put(content)
	if err != nil {
		t.Fatal(err)
	}
	cut := func() {
		t.Helper()
		if err := os.Truncate(bs.path(d), 1000); err != nil {
			t.Fatal(err)
		}
	}
	whole := func(how string) {
		t.Helper()
		got, err := bs.Read(d)
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%s: the blob file holds %d of %d bytes, %v", how, len(got), len(content), err)
		}
	}
	cut()
	if again, err := bs.Put(content); err != nil || again != d {
		t.Fatalf("put again: %s, %v", again, err)
	}
	whole("Put")
	cut()
	p, err := bs.PutStream(context.Background(), bytes.NewReader(content), -1, d)
	if err != nil || p.Digest != d || p.Created {
		t.Fatalf("stream again: %+v, %v", p, err)
	}
	whole("PutStream")
}

// TestNewBlobFolderIsDurable: a blob's rename is fsynced in its subfolder, but
// the subfolder itself, when the put created it, was never fsynced in the blob
// folder: after a power cut the folder, and the acknowledged blob in it, could
// be gone. The first put into a subfolder fsyncs the blob folder too, and a
// restore into a new data folder fsyncs that folder's parent.
func TestNewBlobFolderIsDurable(t *testing.T) {
	var mu sync.Mutex
	synced := map[string]int{}
	dirSynced = func(dir string) {
		mu.Lock()
		synced[filepath.Clean(dir)]++
		mu.Unlock()
	}
	t.Cleanup(func() { dirSynced = nil })
	root := t.TempDir()
	bs, err := OpenBlobs(filepath.Join(root, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := bs.Put([]byte("a blob"))
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Dir(bs.path(d))
	mu.Lock()
	parent, own := synced[filepath.Clean(bs.dir)], synced[sub]
	mu.Unlock()
	if parent != 1 || own != 1 {
		t.Fatalf("first blob in a new subfolder: blob folder fsynced %d times, subfolder %d; want 1 and 1", parent, own)
	}
	p, err := bs.PutStream(context.Background(), strings.NewReader("a blob, streamed"), -1, "")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(bs.path(p.Digest)) != sub {
		mu.Lock()
		parent = synced[filepath.Clean(bs.dir)]
		mu.Unlock()
		if parent != 2 {
			t.Fatalf("a streamed blob in a second new subfolder: blob folder fsynced %d times in all, want 2", parent)
		}
	}

	// A restore into a data folder that does not exist yet.
	var backup bytes.Buffer
	db, err := Open(filepath.Join(root, "data"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Backup(context.Background(), &backup); err != nil {
		t.Fatal(err)
	}
	db.Close()
	into := filepath.Join(root, "new-parent", "restored")
	if err := os.MkdirAll(filepath.Dir(into), 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(context.Background(), &backup, into, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if synced[filepath.Dir(into)] == 0 || synced[into] == 0 {
		t.Fatalf("restore into a new folder: its parent fsynced %d times, the folder %d", synced[filepath.Dir(into)], synced[into])
	}
}

// TestDiscardNewKeepsAPutAfterAClockStepBack: request A's put creates a blob
// with its clock's time, NTP steps the clock back 2 s, request B puts (or
// refreshes) the same content and is acknowledged, then A fails and discards
// what it created. B's bytes must stay. With a put's time taken from the wall
// clock alone, B's put made the blob look older than A's, and A's DiscardNew
// removed it.
func TestDiscardNewKeepsAPutAfterAClockStepBack(t *testing.T) {
	for _, way := range []string{"PutStream", "Put", "Refresh"} {
		bs, err := OpenBlobs(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		// Where DiscardNew removes what it created at all.
		bs.grain = time.Nanosecond
		content := bytes.Repeat([]byte("Bauplan "+way), 100_000) // a file blob
		sum := sha256.Sum256(content)
		want := hex.EncodeToString(sum[:])
		a, err := bs.PutStream(context.Background(), bytes.NewReader(content), -1, want)
		if err != nil || !a.Created {
			t.Fatalf("A: %+v %v", a, err)
		}
		// A's put as a clock 2 s ahead of the one B reads left it.
		a.Written = a.Written.Add(2 * time.Second)
		if err := os.Chtimes(bs.path(want), a.Written, a.Written); err != nil {
			t.Fatal(err)
		}
		switch way {
		case "PutStream":
			_, err = bs.PutStream(context.Background(), bytes.NewReader(content), -1, want)
		case "Put":
			_, err = bs.Put(content)
		case "Refresh":
			_, err = bs.Refresh(context.Background(), want)
		}
		if err != nil {
			t.Fatalf("B's %s: %v", way, err)
		}
		if err := DiscardNew(bs, a); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(bs.path(want)); err != nil {
			t.Fatalf("B's %s after a 2 s clock step back: A's discard removed the acknowledged blob: %v", way, err)
		}
	}
}
