package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/amtsbote/amtsbote/store"
)

// TestWipeFreeUnderLoad: WipeFree zeroes the pages of deleted values while
// writers put and delete blobs and readers read them, and never a page anyone
// still reads: every blob that was not deleted reads back whole, and bbolt's own
// consistency check passes on the file afterwards. Deleted content is gone from
// the file. Both ways of finding the free pages run it: from the freelist page
// (which every call must have used, or the walk would have passed it) and by
// the walk over every page.
func TestWipeFreeUnderLoad(t *testing.T) {
	for _, walk := range []bool{false, true} {
		name := map[bool]string{false: "freelist", true: "walk"}[walk]
		t.Run(name, func(t *testing.T) {
			if walk {
				defer store.WipeByWalk()()
			}
			wipeUnderLoad(t, walk)
		})
	}
}

func wipeUnderLoad(t *testing.T, walk bool) {
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A marker and random bytes: S2 keeps both as they are, so the marker is in
	// the file while the blob is.
	blob := func(w, i int) []byte {
		b := make([]byte, 6000)
		_, _ = rand.Read(b)
		return append([]byte(fmt.Sprintf("personal-data-of-writer-%02d-item-%03d;", w, i)), b...)
	}
	var (
		mu   sync.Mutex
		kept = map[string][]byte{}
		gone [][]byte
		wg   sync.WaitGroup
		fail = make(chan error, 16)
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				b := blob(w, i)
				d, err := db.Blobs().Put(b)
				if err != nil {
					fail <- err
					return
				}
				// Every other one is deleted again, freeing its page.
				if i%2 == 1 {
					if err := db.Blobs().Delete(d); err != nil {
						fail <- err
						return
					}
					mu.Lock()
					gone = append(gone, b)
					mu.Unlock()
					continue
				}
				mu.Lock()
				kept[d] = b
				mu.Unlock()
				// Read one back while the wipes run.
				rc, err := db.Blobs().Open(ctx, d)
				if err != nil {
					fail <- err
					return
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, b) {
					fail <- fmt.Errorf("blob %s read back wrong during the wipes: %v", d, err)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	wiped := make(chan int)
	calls, walked := 0, 0 // WipeFree calls under load, and those that walked every page
	go func() {
		total := 0
		for {
			select {
			case <-stop:
				wiped <- total
				return
			default:
			}
			n, err := db.WipeFree()
			if err != nil {
				fail <- err
			}
			calls++
			if db.WipeWalked() {
				walked++
			}
			total += n
		}
	}()
	wg.Wait()
	close(stop)
	t.Logf("pages wiped while writing: %d", <-wiped)
	close(fail)
	for err := range fail {
		t.Fatal(err)
	}
	if _, err := db.WipeFree(); err != nil {
		t.Fatal(err)
	}
	// Under load a call may find bbolt's counts not yet matching the freelist
	// page and walk (safe, only slower); the fast way must carry most calls, and
	// the call after the writers have stopped always.
	t.Logf("WipeFree calls under load: %d, of them walked: %d", calls, walked)
	if walk && walked != calls || !walk && walked*2 > calls {
		t.Fatalf("%d of %d calls under load walked every page (walk mode: %v)", walked, calls, walk)
	}
	if db.WipeWalked() != walk {
		t.Fatalf("the last WipeFree walked every page: %v, want %v", db.WipeWalked(), walk)
	}
	for d, b := range kept {
		rc, err := db.Blobs().Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, b) {
			t.Fatalf("blob %s changed", d)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for d, b := range kept {
		if !bytes.Contains(raw, b[:38]) {
			t.Fatalf("kept blob %s's marker is not in the file: the check below would prove nothing", d)
		}
	}
	for _, b := range gone {
		if bytes.Contains(raw, b[:38]) {
			t.Fatalf("deleted content %q is still in the file", b[:38])
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if err := bdb.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("bbolt check after the wipes: %v", err)
	}
}

// TestWipeFreeAgainAfterReuse: a page wiped and free at one wipe can be taken by
// a later write and freed again before the next; that wipe must overwrite it
// again. WipeFree remembered the pages of its last call and skipped those still
// free, so from the second round on the erased content of the round stayed in
// the file (and in every backup after it). Each round here puts a value with a
// marker, deletes it and wipes; the marker must be gone after every round.
func TestWipeFreeAgainAfterReuse(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.WipeFree(); err != nil {
		t.Fatal(err)
	}
	for round := range 4 {
		b := make([]byte, 6000)
		_, _ = rand.Read(b)
		marker := []byte(fmt.Sprintf("erased-applicant-data-round-%d;", round))
		d, err := db.Blobs().Put(append(marker, b...))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(filepath.Join(dir, store.FileName))
		if !bytes.Contains(raw, marker) {
			t.Fatalf("round %d: the marker is not in the file after the put: the check below proves nothing", round)
		}
		if err := db.Blobs().Delete(d); err != nil {
			t.Fatal(err)
		}
		if _, err := db.WipeFree(); err != nil {
			t.Fatal(err)
		}
		raw, _ = os.ReadFile(filepath.Join(dir, store.FileName))
		if bytes.Contains(raw, marker) {
			t.Fatalf("round %d: the deleted value's marker is still in the file after the wipe", round)
		}
	}
}
