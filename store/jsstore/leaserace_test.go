package jsstore

import (
	"context"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// TestLostLeaseRaceIsNoWriteConflict: amtsbote_store_write_conflicts_total
// (Stats.Conflicts) says how often two gateways changed one record at once and
// the loser read it again and reran its change. A lease another gateway took
// between this one's read and write counted there too, though nothing is read
// again and rerun: every poll interval and peer, and every retention period, a
// cluster could lose one. It does not count; a record's conflict does.
func TestLostLeaseRaceIsNoWriteConflict(t *testing.T) {
	b, err := bus.Start(context.Background(), bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	open := func() *Store {
		st, err := Open(context.Background(), b.JS, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	a, other := open(), open()
	ctx := context.Background()
	slot := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	a.beforeLeaseWrite = func() {
		a.beforeLeaseWrite = nil
		if held, _, err := other.TryLease(ctx, "federation-poll.by", slot, time.Minute); err != nil || !held {
			t.Fatalf("the other gateway did not take the free lease: %v %v", held, err)
		}
	}
	held, _, err := a.TryLease(ctx, "federation-poll.by", slot, time.Minute)
	if err != nil || held {
		t.Fatalf("a lease taken between the read and the write: held %v, %v; want lost", held, err)
	}
	if a.beforeLeaseWrite != nil {
		t.Fatal("the race was not run")
	}
	if n, m := a.Stats().Conflicts, other.Stats().Conflicts; n != 0 || m != 0 {
		t.Errorf("a lost lease race counted %d+%d write conflicts, want none", n, m)
	}

	// A record two gateways change at once is one.
	if _, _, _, err := a.Create(ctx, storetest.NewSubmission("s1", "amt24", "m1"), nil, "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	first := true
	if _, err := a.Update("s1", func(s *submission.Submission) ([]submission.Event, error) {
		if first {
			first = false
			RewriteRecord(t, other, "s1", func(r map[string]any) bool { r["total_attempts"] = 7; return true })
		}
		s.TotalAttempts++
		return []submission.Event{{Type: "counted"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := a.Stats().Conflicts; n != 1 {
		t.Errorf("a record changed by another gateway meanwhile counted %d write conflicts, want 1", n)
	}
}
