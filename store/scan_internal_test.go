package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

// TestScanInChunks: Scan and WalkOffice read their cases in read transactions
// of scanChunk cases, and between two of them no reader is open, so a commit that grows the
// file (and bbolt's memory map with it) goes through in the middle of a scan
// instead of waiting for its end. Every case is seen once, in id order, and a
// stop ends the scan. With one transaction for the whole scan (the build before,
// scanChunk 0) the hook below never runs and the test fails.
func TestScanInChunks(t *testing.T) {
	db := chunkedStore(t)
	ctx := context.Background()
	const cases = 20
	for i := range cases {
		id := fmt.Sprintf("01900000-%04d-7000-8000-000000000000", i)
		s, evs := submission.New(submission.Params{ID: id, DeliveryID: "d" + id, MessageID: "m" + id, Sender: "amt24", SignerID: "amt24",
			OfficeID: "o", OfficeName: "o", PackageSHA256: fmt.Sprintf("%064x", i), PackageSize: 10}, time.Now().UTC())
		if _, _, _, err := db.Create(ctx, s, evs, "Eingangsbestaetigung", []byte("<r/>")); err != nil {
			t.Fatal(err)
		}
	}
	for name, walk := range map[string]func(func(*submission.Submission) bool) error{
		"Scan":       db.Scan,
		"WalkOffice": func(fn func(*submission.Submission) bool) error { return db.WalkOffice("o", "", fn) },
	} {
		between, grown := 0, 0 // pauses between chunks; those in which the file grew
		scanBetween = func() {
			between++
			if n := db.bolt.Stats().OpenTxN; n != 0 {
				t.Errorf("%s: %d read transactions open between two chunks", name, n)
			}
			// A commit that grows the file by a few MiB: bbolt maps it anew, which
			// waits for every open reader.
			before := fileSize(t, db)
			for range 8 {
				b := make([]byte, 120<<10)
				_, _ = rand.Read(b)
				if _, err := db.Blobs().Put(b); err != nil {
					t.Error(err)
				}
			}
			if fileSize(t, db) > before {
				grown++
			}
		}
		var seen []string
		if err := walk(func(s *submission.Submission) bool { seen = append(seen, s.ID); return true }); err != nil {
			t.Fatal(err)
		}
		if len(seen) != cases {
			t.Fatalf("%s saw %d cases, want %d", name, len(seen), cases)
		}
		for i, id := range seen {
			if want := fmt.Sprintf("01900000-%04d-7000-8000-000000000000", i); id != want {
				t.Fatalf("%s: case %d is %s, want %s", name, i, id, want)
			}
		}
		if want := (cases - 1) / scanChunk; between != want {
			t.Fatalf("%s: %d pauses between chunks, want %d", name, between, want)
		}
		if grown == 0 {
			t.Fatalf("%s: the writes between chunks never grew the file: they prove nothing", name)
		}
		t.Logf("%s: the file grew (and bbolt mapped it anew) in %d of %d pauses", name, grown, between)
		scanBetween = nil
		n := 0
		if err := walk(func(*submission.Submission) bool { n++; return n < 5 }); err != nil || n != 5 {
			t.Fatalf("%s stopped at the 5th case called fn %d times (%v)", name, n, err)
		}
	}
}

func fileSize(t *testing.T, db *DB) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(db.dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestLongReaderDoesNotHoldBackWriters: while one read transaction stays open
// for good (a backup's, a compaction's copy), writes that grow the file by
// megabytes still commit: the map has room (initialMap), so bbolt need not map
// the file anew, which would wait for the reader. With bbolt's default map (a
// planted defect: initialMap returning 0) the writes wait until the reader ends.
// (The files of the store's other tests are below mapRoomFrom and keep bbolt's
// default map.)
func TestLongReaderDoesNotHoldBackWriters(t *testing.T) {
	defer func(n int64) { mapRoomFrom = n }(mapRoomFrom)
	mapRoomFrom = 0 // the test's file is small; a big one's would get the room
	db, err := Open(t.TempDir(), Options{BatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before := fileSize(t, db)
	reader, err := db.bolt.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for range 200 { // 24 MB: past the 16 MB bbolt grows the file by at once
			b := make([]byte, 120<<10)
			_, _ = rand.Read(b)
			if _, err := db.Blobs().Put(b); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		_ = reader.Rollback()
		<-done
		t.Fatal("the writes waited for the open reader")
	}
	_ = reader.Rollback()
	if after := fileSize(t, db); after < before+8<<20 {
		t.Fatalf("the file grew from %d to %d bytes only: the writes prove nothing", before, after)
	}
}

// TestBlobWalkInChunks: the blob walk of the retention's sweep reads the inline
// blobs scanChunk at a time, with no reader open in between, and sees each blob
// that was there before it once, whatever is put meanwhile. With one read
// transaction (a planted defect) there is no pause and the test fails.
func TestBlobWalkInChunks(t *testing.T) {
	db := chunkedStore(t)
	before := map[string]bool{}
	for range 20 {
		b := make([]byte, 3000)
		_, _ = rand.Read(b)
		d, err := db.Blobs().Put(b)
		if err != nil {
			t.Fatal(err)
		}
		before[d] = true
	}
	pauses := 0
	scanBetween = func() {
		pauses++
		if n := db.bolt.Stats().OpenTxN; n != 0 {
			t.Errorf("%d read transactions open between two chunks", n)
		}
		b := make([]byte, 3000) // a put meanwhile: seen or not, never twice
		_, _ = rand.Read(b)
		if _, err := db.Blobs().Put(b); err != nil {
			t.Error(err)
		}
	}
	seen := map[string]int{}
	if err := db.Blobs().Walk(func(d string, _ int64, _ time.Time) bool { seen[d]++; return true }); err != nil {
		t.Fatal(err)
	}
	for d := range before {
		if seen[d] != 1 {
			t.Errorf("blob %s seen %d times", d, seen[d])
		}
	}
	for d, n := range seen {
		if n != 1 {
			t.Errorf("blob %s seen %d times", d, n)
		}
	}
	if pauses < (len(before)-1)/scanChunk {
		t.Fatalf("%d pauses between chunks for %d blobs in chunks of %d", pauses, len(before), scanChunk)
	}
	scanBetween = nil
	n := 0
	if err := db.Blobs().Walk(func(string, int64, time.Time) bool { n++; return n < 5 }); err != nil || n != 5 {
		t.Fatalf("a walk stopped at the 5th blob called fn %d times (%v)", n, err)
	}
}

// chunkedStore opens a store in a temporary folder whose passes read three
// cases (or blobs) per read transaction, and undoes that and the hook after the test.
func chunkedStore(t *testing.T) *DB {
	t.Helper()
	n := scanChunk
	scanChunk = 3
	t.Cleanup(func() { scanChunk, scanBetween = n, nil })
	db, err := Open(t.TempDir(), Options{BatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
