package jsstore_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/google/uuid"
)

// TestOfficeListHoldsTheIdsAlone: a gateway's lists of office indexes are
// bounded by their ids (officeListMaxIDs: about 32 MB at 500,000, 64 bytes an
// id, docs/cluster.md). An id is the last token of its key's
// subject, and kept as a part of it, it kept the whole subject: 96 bytes an id
// here (16 in the slice, 80 for the subject of an office of ten characters),
// more for a longer office name, against 64 for the id alone. The list holds
// copies of the ids, whether listed from the leader's subjects or caught up
// message by message.
func TestOfficeListHoldsTheIdsAlone(t *testing.T) {
	b, st := openOnEmbedded(t, jsstore.Options{})
	const n = 20_000
	publish := func(office string) {
		t.Helper()
		for i := range n {
			if _, err := b.JS.PublishAsync(jsstore.OfficeKeySubject(st, office, uuid.Must(uuid.NewV7()).String()), nil); err != nil {
				t.Fatal(err)
			}
			if i%1_000 == 999 {
				select {
				case <-b.JS.PublishAsyncComplete():
				case <-time.After(time.Minute):
					t.Fatal("publishing the keys took longer than a minute")
				}
			}
		}
	}
	settle := func(m *runtime.MemStats) {
		// Twice: what sync.Pools hold survives one collection.
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(m)
	}
	// perID is the heap the office's list takes, per id: 16 bytes in the
	// slice and 48 for an id of 36 bytes make 64, and some 250 KB besides
	// (the server's and the client's own) add 12 at 20,000 ids (66 listed,
	// 73–78 caught up: the slice grows); 88 leaves room for that, not for a
	// subject kept with each id (about 32 bytes more: 96 and 101 at 50,000).
	// 20,000 and not more: the race detector's make test runs it too.
	perID := func(t *testing.T, fresh *jsstore.Store, office string) {
		t.Helper()
		var before, after runtime.MemStats
		settle(&before)
		ids, err := jsstore.OfficeIDs(fresh, office)
		if err != nil {
			t.Fatal(err)
		}
		settle(&after)
		if len(ids) != n {
			t.Fatalf("listed %d ids, want %d", len(ids), n)
		}
		per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
		t.Logf("%.0f bytes an id", per)
		if per > 88 {
			t.Errorf("the list takes %.0f bytes an id, want at most 88", per)
		}
		runtime.KeepAlive(ids)
	}
	open := func() *jsstore.Store {
		t.Helper()
		fresh, err := jsstore.Open(context.Background(), b.JS, jsstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return fresh
	}
	t.Run("listed", func(t *testing.T) {
		const office = "amt-listed"
		publish(office)
		perID(t, open(), office)
	})
	t.Run("caught up", func(t *testing.T) {
		const office = "amt-caught"
		fresh := open()
		if ids, err := jsstore.OfficeIDs(fresh, office); err != nil || len(ids) != 0 {
			t.Fatalf("an office without cases: %v, %v", ids, err)
		}
		publish(office)
		perID(t, fresh, office)
	})
}
