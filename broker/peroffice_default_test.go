package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

// TestDefaultPerOfficeCapLeavesWorkersForOthers: without a PerOffice setting
// an office gets a quarter of the workers (at least one), so an office whose
// endpoint hangs cannot take every worker with the default configuration
// either (docs/operations.md, delivery.per_office). Here 4 workers: one for
// the hanging office.
func TestDefaultPerOfficeCapLeavesWorkersForOthers(t *testing.T) {
	rx := &hangs{slow: "office-slow", byOffice: byOffice{ok: map[string]bool{}}}
	cfg := Config{Workers: 4, MaxAttempts: 1000, BackoffBase: time.Second, AttemptTimeout: 20 * time.Second, ExclusiveConsumer: true}
	b := startWith(t, t.TempDir(), cfg, rx).b
	for i := 0; i < 8; i++ {
		in := intake(fmt.Sprintf("slow-default-%d", i), "primary")
		in.OfficeID = "office-slow"
		if _, err := b.Receive(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	for rx.active.Load() < 1 { // the slow office's attempts are hanging
		time.Sleep(5 * time.Millisecond)
	}
	a, err := b.Receive(context.Background(), intake("fast-default", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, b, a.Submission.ID, submission.StateDelivered)
	if p := rx.peak.Load(); p > 1 {
		t.Fatalf("%d attempts ran at once for one office with 4 workers; the default cap is 1", p)
	}
}
