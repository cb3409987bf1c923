package jsstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkCreateUpdate measures one Create (atomic batch of 4 keys) plus one
// Update that moves the outbox (a batch of 3), from 16 goroutines.
func BenchmarkCreateUpdate(b *testing.B) {
	b.Run("R1-embedded", func(b *testing.B) {
		_, st := openOnBus(b, bus.Options{StoreDir: b.TempDir()}, jsstore.Options{})
		benchCreateUpdate(b, st)
	})
	b.Run("R3-three-processes", func(b *testing.B) {
		c := natstest.StartCluster(b, 3)
		js, _ := jetstream.New(c.Connect(b))
		st, err := jsstore.Open(context.Background(), js, jsstore.Options{Replicas: 3})
		if err != nil {
			b.Fatal(err)
		}
		benchCreateUpdate(b, st)
	})
}

func benchCreateUpdate(b *testing.B, st *jsstore.Store) {
	var n atomic.Int64
	b.SetParallelism(8) // 16 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("b%d-%d", b.N, n.Add(1))
			if _, _, _, err := st.Create(context.Background(), storetest.NewSubmission(id, "amt24", id), threeEvents(), "in", make([]byte, 4000)); err != nil {
				b.Error(err)
				return
			}
			if _, err := st.Update(id, handOver); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "submissions/s")
}
