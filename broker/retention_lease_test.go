package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/submission"
)

// scanFails is a cluster store whose record scan fails while fail is set: a
// gateway whose retention run fails.
type scanFails struct {
	*jsstore.Store
	fail bool
}

func (s *scanFails) Scan(fn func(*submission.Submission) bool) error {
	if s.fail {
		return errors.New("planted: the scan fails on this gateway")
	}
	return s.Store.Scan(fn)
}

// TestRetentionOnePerPeriodInACluster: three gateways share a store. Per period
// one runs the retention and the others skip it; a gateway whose run fails gives
// the period back, and the next one of the same period runs it.
func TestRetentionOnePerPeriodInACluster(t *testing.T) {
	bs, err := bus.Start(context.Background(), bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	// gateways are three gateways on one store (the stream of prefix).
	gateways := func(prefix string) ([]*Broker, []*scanFails) {
		var gws []*Broker
		var stores []*scanFails
		for range 3 {
			st, err := jsstore.Open(context.Background(), bs.JS, jsstore.Options{Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			sf := &scanFails{Store: st}
			b := New(Config{GatewayID: "gw", RetentionEvery: time.Hour}, sf, nil, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			b.ctx = context.Background()
			gws, stores = append(gws, b), append(stores, sf)
		}
		// The period is the clock's hour: keep the steps below within one.
		if now := time.Now().UTC(); now.Truncate(time.Hour).Add(time.Hour).Sub(now) < 5*time.Second {
			time.Sleep(6 * time.Second)
		}
		return gws, stores
	}
	count := func(b *Broker, outcome string) float64 {
		var m dto.Metric
		if err := b.metrics.retention.WithLabelValues(outcome).(prometheus.Metric).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	r := Retention{PackageBytes: 90 * 24 * time.Hour}

	gws, _ := gateways("one")
	for _, b := range gws {
		b.applyRetention(r)
	}
	ran, skipped := 0.0, 0.0
	for _, b := range gws {
		ran += count(b, "ok")
		skipped += count(b, "skipped")
	}
	if ran != 1 || skipped != 2 {
		t.Fatalf("one period, three gateways: %v ran, %v skipped; want 1 and 2", ran, skipped)
	}

	// The first gateway's run fails: it gives the period back and the second
	// runs it; the third skips.
	gws, stores := gateways("two")
	stores[0].fail = true
	gws[0].applyRetention(r)
	if count(gws[0], "failed") != 1 {
		t.Fatal("the planted failure did not fail the first gateway's run")
	}
	gws[1].applyRetention(r)
	if count(gws[1], "ok") != 1 {
		t.Fatal("the period the failed gateway gave back was not run by the next one")
	}
	gws[2].applyRetention(r)
	if count(gws[2], "skipped") != 1 || count(gws[2], "ok") != 0 {
		t.Fatalf("the third gateway: %v skipped, %v ran; want 1 and 0", count(gws[2], "skipped"), count(gws[2], "ok"))
	}
}
