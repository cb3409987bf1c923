package store_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// compactFixture fills a store with n submissions and deletes most of them, so that
// most of its file is free pages.
func compactFixture(t *testing.T, n, keep int) (*store.DB, string) {
	t.Helper()
	db, dir := openTemp(t)
	// Eight writers share fsyncs (group commit), which keeps the fixture fast.
	each := func(from, to int, fn func(i int) error) {
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := from + w; i < to; i += 8 {
					if err := fn(i); err != nil {
						t.Error(err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	each(0, n, func(i int) error {
		receipt := make([]byte, 3000) // signatures do not compress
		_, _ = rand.Read(receipt)
		s := &submission.Submission{ID: fmt.Sprintf("s%05d", i), MessageID: fmt.Sprintf("m%d", i), Sender: "amt24", OfficeID: "o", State: submission.StateAccepted, Generation: 1}
		_, _, _, err := db.Create(context.Background(), s, []submission.Event{{Type: submission.EventReceived}}, "in", receipt)
		return err
	})
	each(0, n-keep, func(i int) error { return db.Delete(fmt.Sprintf("s%05d", i)) })
	return db, dir
}

// churn writes to the store until stop is closed: creates (some dispatchable, so
// the outbox changes), updates with events and receipts, and deletes — every kind of
// write the store has. It returns the number of writes done.
func churn(t *testing.T, db *store.DB, worker int, stop <-chan struct{}, done *atomic.Int64) {
	t.Helper()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		id := fmt.Sprintf("w%d-%06d", worker, i)
		st := submission.StateQueued
		if i%2 == 0 {
			st = submission.StateAccepted
		}
		s := &submission.Submission{ID: id, MessageID: "m" + id, Sender: "amt24", OfficeID: fmt.Sprintf("o%d", i%3), State: st, Generation: 1}
		// An inline blob big enough to be kept alone in its own nested bucket.
		blob := make([]byte, 6000)
		_, _ = rand.Read(blob)
		sum := sha256.Sum256(blob)
		if _, _, _, err := db.CreateWithBlobs(context.Background(), s, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r"+id), []store.Blob{{SHA256: hex.EncodeToString(sum[:]), Data: blob}}); err != nil {
			t.Error(err)
			return
		}
		if i%7 == 6 {
			if err := db.Blobs().Delete(hex.EncodeToString(sum[:])); err != nil {
				t.Error(err)
				return
			}
		}
		if i%3 == 0 {
			if _, _, err := db.UpdateWithReceipt(id, "out", []byte("z"+id), func(s *submission.Submission) ([]submission.Event, error) {
				s.State = submission.StateDelivered
				return []submission.Event{{Type: submission.EventDelivered}}, nil
			}); err != nil {
				t.Error(err)
				return
			}
		}
		if i%5 == 4 {
			if err := db.Delete(fmt.Sprintf("w%d-%06d", worker, i-2)); err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Error(err)
				return
			}
		}
		done.Add(1)
	}
}

// TestCompactOnline: the file shrinks while writers keep writing; under the swap
// lock the new file equals the old one key by key (values and bucket sequences), so
// nothing written during the copy is lost; afterwards the store works on the new
// file and survives a reopen.
func TestCompactOnline(t *testing.T) {
	db, dir := compactFixture(t, 1200, 120)
	free, size, err := db.FreeBytes()
	if err != nil {
		t.Fatal(err)
	}
	if free*2 < size {
		t.Fatalf("fixture: %d of %d bytes free, want most", free, size)
	}
	defer store.CompactCheckSame(false)()
	writes, stopWriters := startChurn(t, db, 4)
	// Let the writers run before, during and after the compaction.
	waitWrites(writes, 200)
	rep, err := db.Compact(context.Background())
	waitWrites(writes, writes.Load()+200)
	stopWriters()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compaction: %d -> %d bytes, %d keys copied, %d rewritten under the lock, pause %s, took %s; %d writes by 4 writers meanwhile",
		rep.Before, rep.After, rep.Keys, rep.Rewritten, rep.Pause, rep.Took, writes.Load())
	if rep.After*2 > rep.Before {
		t.Errorf("the file did not shrink by half: %d -> %d", rep.Before, rep.After)
	}
	if rep.Rewritten == 0 {
		t.Error("no write landed during the copy: the test did not test the delta")
	}
	// The store keeps working on the new file, and the new file is what reopens.
	if _, err := db.Get("s01199"); err != nil {
		t.Fatalf("a kept record is gone: %v", err)
	}
	if _, err := db.Get("s00000"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a deleted record is back: %v", err)
	}
	out, err := db.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	out2, err := db2.Outbox()
	if err != nil || len(out2) != len(out) {
		t.Fatalf("outbox after reopen: %d entries (%v), before %d", len(out2), err, len(out))
	}
	evs, err := db2.Events("w0-000000")
	if err != nil || len(evs) != 2 {
		t.Fatalf("events after reopen: %v %v", evs, err)
	}
	// A second compaction of the compacted store works as well.
	if _, err := db2.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestCompactOnlineCatchesForgottenWrites is the planted-defect self-test of the
// check above: a compaction that does not copy what was written during the copy
// must be caught (and then leaves the old file in place, unchanged in use).
func TestCompactOnlineCatchesForgottenWrites(t *testing.T) {
	db, _ := compactFixture(t, 800, 80)
	defer store.CompactCheckSame(true)()
	writes, stopWriters := startChurn(t, db, 4)
	waitWrites(writes, 100)
	var err error
	for i := 0; i < 20 && err == nil; i++ { // until a write lands during the copy
		_, err = db.Compact(context.Background())
	}
	stopWriters()
	if err == nil || !strings.Contains(err.Error(), "differs") && !strings.Contains(err.Error(), "has ") {
		t.Fatalf("forgotten writes were not caught: %v", err)
	}
	if _, err := db.Get("s00799"); err != nil {
		t.Fatalf("after a failed compaction the store lost a record: %v", err)
	}
}

// startChurn runs n churn writers until stop is called (which waits for them).
func startChurn(t *testing.T, db *store.DB, n int) (writes *atomic.Int64, stop func()) {
	t.Helper()
	writes = new(atomic.Int64)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) { defer wg.Done(); churn(t, db, w, done, writes) }(w)
	}
	return writes, func() { close(done); wg.Wait() }
}

// waitWrites waits until the writers have done at least n writes.
func waitWrites(writes *atomic.Int64, n int64) {
	for writes.Load() < n {
		time.Sleep(time.Millisecond)
	}
}
