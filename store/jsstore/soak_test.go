//go:build soak

package jsstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClusterSoak is the long variant of TestClusterSurvivesKill: writers create and
// update submissions without pause while servers are SIGKILLed and restarted one at
// a time, for SOAK_DURATION (default 2m; built only with -tags soak: make cluster-soak). At the end every
// acknowledged Create exists, and each record's counter and event log agree with the
// acknowledged updates (an update whose acknowledgement was lost may or may not be
// there, but never twice, and never the record without its event).
func TestClusterSoak(t *testing.T) {
	d := 2 * time.Minute
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			t.Fatalf("SOAK_DURATION=%q: %v", v, err)
		}
	}
	c := natstest.StartCluster(t, 3)
	nc := c.Connect(t)
	js, _ := jetstream.New(nc)
	st, err := jsstore.Open(context.Background(), js, jsstore.Options{Replicas: 3, Prefix: "soak"})
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		id            string
		acked, failed int
	}
	var (
		mu        sync.Mutex
		recs      []*rec
		createErr atomic.Int64
		updates   atomic.Int64
		updErr    atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%05d", w, i)
				if _, _, _, err := st.Create(context.Background(), storetest.NewSubmission(id, "amt24", id), threeEvents(), "in", []byte("r")); err != nil {
					createErr.Add(1)
					continue
				}
				r := &rec{id: id}
				mu.Lock()
				recs = append(recs, r)
				mu.Unlock()
				for range 1 + rand.IntN(4) {
					_, err := st.Update(id, func(s *submission.Submission) ([]submission.Event, error) {
						s.TotalAttempts++
						return []submission.Event{{Type: "counted", Attempt: s.TotalAttempts}}, nil
					})
					mu.Lock()
					if err != nil {
						r.failed++
						updErr.Add(1)
					} else {
						r.acked++
						updates.Add(1)
					}
					mu.Unlock()
				}
			}
		}()
	}
	start := time.Now()
	kills := 0
	for time.Since(start) < d {
		time.Sleep(2 * time.Second)
		i := rand.IntN(len(c.Servers))
		c.Kill(t, i)
		kills++
		time.Sleep(3 * time.Second)
		c.Restart(t, i)
		c.WaitCurrent(t, js, "KV_soak", 90*time.Second)
	}
	close(stop)
	wg.Wait()
	c.WaitCurrent(t, js, "KV_soak", 90*time.Second)
	t.Logf("%s: %d kills, %d creates acknowledged (%d failed), %d updates acknowledged (%d failed)", time.Since(start).Round(time.Second), kills, len(recs), createErr.Load(), updates.Load(), updErr.Load())
	t.Logf("retry loops: %+v", st.Stats())
	if len(recs) == 0 {
		t.Fatal("no create succeeded")
	}
	for _, r := range recs {
		s, err := st.Get(r.id)
		if err != nil {
			t.Fatalf("acknowledged %s lost: %v", r.id, err)
		}
		evs, err := st.Events(r.id)
		if err != nil {
			t.Fatal(err)
		}
		if s.TotalAttempts < r.acked || s.TotalAttempts > r.acked+r.failed || len(evs) != 3+s.TotalAttempts {
			t.Fatalf("%s: counter %d with %d events; %d updates acknowledged, %d failed", r.id, s.TotalAttempts, len(evs), r.acked, r.failed)
		}
	}
}
