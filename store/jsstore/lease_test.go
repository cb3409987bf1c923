package jsstore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// TestLeaseOnePerSlot: two gateways on one store ask for the same period: the
// first gets it, the second not; given back, the second gets it; the next
// period is free again. The lease subjects stay out of the records' listing.
func TestLeaseOnePerSlot(t *testing.T) {
	b, a := openOnEmbedded(t, jsstore.Options{})
	other, err := jsstore.Open(context.Background(), b.JS, jsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, _, err := a.Create(ctx, storetest.NewSubmission("lease-s1", "amt24", "m1"), []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	slot := time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)
	try := func(who interface {
		TryLease(context.Context, string, time.Time, time.Duration) (bool, func(), error)
	}, slot time.Time) (bool, func()) {
		t.Helper()
		held, release, err := who.TryLease(ctx, "retention", slot, 2*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return held, release
	}
	held, release := try(a, slot)
	if !held {
		t.Fatal("the first gateway of the period did not get it")
	}
	if held, _ := try(other, slot); held {
		t.Fatal("the second gateway got a period the first holds")
	}
	if held, _ := try(a, slot); held {
		t.Fatal("the holder got its own period twice")
	}
	release()
	held2, release2 := try(other, slot)
	if !held2 {
		t.Fatal("a period given back was not taken by the next gateway")
	}
	if held, _ := try(a, slot); held {
		t.Fatal("a period taken over was handed out again")
	}
	release() // the first holder's release, late: the period is no longer its own
	if held, _ := try(a, slot); held {
		t.Fatal("a stale release gave away the new holder's period")
	}
	release2()
	if held, _ := try(a, slot.Add(time.Hour)); !held {
		t.Fatal("the next period was not free")
	}
	n := 0
	if err := a.Scan(func(*submission.Submission) bool { n++; return true }); err != nil || n != 1 {
		t.Fatalf("scan after leases: %d records, %v; want 1", n, err)
	}
}

// TestLeaseRace: eight gateways ask for the same period at once; exactly one
// gets it.
func TestLeaseRace(t *testing.T) {
	b, first := openOnEmbedded(t, jsstore.Options{})
	stores := []*jsstore.Store{first}
	for range 7 {
		st, err := jsstore.Open(context.Background(), b.JS, jsstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, st)
	}
	slot := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	var held atomic.Int32
	for _, st := range stores {
		wg.Go(func() {
			ok, _, err := st.TryLease(context.Background(), "retention", slot, time.Hour)
			if err != nil {
				t.Error(err)
			}
			if ok {
				held.Add(1)
			}
		})
	}
	wg.Wait()
	if held.Load() != 1 {
		t.Fatalf("%d gateways got the period, want 1", held.Load())
	}
}
