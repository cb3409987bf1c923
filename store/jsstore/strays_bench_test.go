package jsstore_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/store/migrate"
)

// BenchmarkStrayEntries times StrayEntries — `store verify`'s listing of the
// keys no record accounts for on a cluster — on a sound store of N cases (an
// office key and an idempotency key each) on a nats-server process of its own
// (so that the test's heap is the client's alone: GODEBUG=gctrace=1 shows it),
// beside the whole of migrate.Check on the same store (check-s), which
// includes it. Filling takes a while (about 200 Creates a second on two cores):
//
//	STRAY_N=50000 go test ./store/jsstore -run '^$' -bench StrayEntries -benchtime 1x
//
// Its memory is the accounting's map of hashes (accounting), beside the
// listing's buffers: measured apart, 37 to 56 bytes a listed key.
func BenchmarkStrayEntries(b *testing.B) {
	n := 20000
	if v := os.Getenv("STRAY_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("STRAY_N=%q: %v", v, err)
		}
	}
	_, st := openOnBus(b, bus.Options{URL: natstest.StartSingle(b).URLs()}, jsstore.Options{})
	t0 := time.Now()
	fillOffice(b, n, st)
	b.Logf("filled %d cases in %s", n, time.Since(t0).Round(time.Millisecond))
	b.ResetTimer()
	for range b.N {
		if es, err := st.StrayEntries(context.Background()); err != nil || len(es) != 0 {
			b.Fatalf("%v %v", es, err)
		}
	}
	b.StopTimer()
	t1 := time.Now()
	if _, _, faults, err := migrate.Check(context.Background(), st, nil); err != nil || len(faults) != 0 {
		b.Fatalf("check: %v %v", faults, err)
	}
	b.ReportMetric(time.Since(t1).Seconds(), "check-s")
}
