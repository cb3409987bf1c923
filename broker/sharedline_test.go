package broker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/submission"
)

// hangsFor blocks every attempt to the offices in slow until the attempt's
// context ends, and counts how many such attempts run at once.
type hangsFor struct {
	slow         map[string]bool
	active, peak atomic.Int64
	byOffice
}

func (h *hangsFor) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, error) {
	if h.slow[d.OfficeID] {
		n := h.active.Add(1)
		defer h.active.Add(-1)
		for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
		}
		<-ctx.Done()
		return adapters.Confirmation{}, ctx.Err()
	}
	return h.byOffice.Deliver(ctx, d)
}

// TestOfficesOfOneLineShareTheirCap: offices behind one endpoint — the peer
// offices ("peer-<Land>") of one peer gateway that serves several Länder —
// share one line and one cap (Config.Line). Each had a cap of its own, so a
// peer that hangs and serves four Länder took four caps: every worker, and
// the gateway's own offices waited until its attempts ended.
func TestOfficesOfOneLineShareTheirCap(t *testing.T) {
	slow := map[string]bool{"peer-01": true, "peer-02": true}
	rx := &hangsFor{slow: slow, byOffice: byOffice{ok: map[string]bool{}}}
	cfg := Config{Workers: 4, PerOffice: 2, MaxAttempts: 1000, BackoffBase: time.Second, AttemptTimeout: 20 * time.Second, ExclusiveConsumer: true,
		Line: func(office string) string {
			if slow[office] {
				return "peer-01"
			}
			return office
		}}
	b := startWith(t, t.TempDir(), cfg, rx).b
	for i := 0; i < 8; i++ {
		in := intake(fmt.Sprintf("slow-%d", i), "primary")
		in.OfficeID = fmt.Sprintf("peer-0%d", 1+i%2)
		if _, err := b.Receive(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	for rx.active.Load() < int64(cfg.PerOffice) { // the peer's attempts are hanging
		time.Sleep(5 * time.Millisecond)
	}
	a, err := b.Receive(context.Background(), intake("fast-1", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, b, a.Submission.ID, submission.StateDelivered)
	if rx.active.Load() == 0 {
		t.Fatal("the gateway's own office was served only after the peer's hanging attempts ended")
	}
	if p := rx.peak.Load(); p > int64(cfg.PerOffice) {
		t.Fatalf("%d attempts ran at once to one peer's offices, the cap is %d", p, cfg.PerOffice)
	}
}
