package intake

import (
	"context"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics time the stages of intake, so that an operator whose portals see slow
// 201s can tell the CPU (waiting for a verification slot, verifying) from the
// disk and the directory (accepting: routing, attachments, the durable write
// and the receipt; amtsbote_store_write_wait_seconds splits out the disk).
// The bench found its own intake tail that way (docs/performance.md).
type Metrics struct {
	stages [3]prometheus.Observer // by stage
}

// The stages, and their label values.
type stage int

const (
	stageSlotWait stage = iota
	stageVerify
	stageAccept
)

var stageNames = [...]string{stageSlotWait: "slot_wait", stageVerify: "verify", stageAccept: "accept"}

// NewMetrics creates the series and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "amtsbote_intake_stage_seconds",
		Help: "Time of one package in each stage of intake: slot_wait (for a verification slot), verify (pre-scan, signature, parse), accept (routing, attachments, durable write, receipt).",
		// The store's: verification takes about a millisecond, acceptance waits for
		// the commit window (10 ms); slots and disks can stall for seconds.
		Buckets: store.LatencyBuckets}, []string{"stage"})
	if reg != nil {
		reg.MustRegister(v)
	}
	m := &Metrics{}
	for s, name := range stageNames {
		m.stages[s] = v.WithLabelValues(name)
	}
	return m
}

// since observes the time since t0 as stage s; a nil Metrics observes nothing.
func (m *Metrics) since(s stage, t0 time.Time) {
	if m != nil {
		m.stages[s].Observe(time.Since(t0).Seconds())
	}
}

// checkInSlot runs check (pre-scan, verification, parse) in a verification slot,
// timing the wait for the slot and the check.
func (p *Pipeline) checkInSlot(ctx context.Context, check func() error) error {
	t0 := time.Now()
	return p.Slots.run(ctx, func() error {
		p.Metrics.since(stageSlotWait, t0)
		defer p.Metrics.since(stageVerify, time.Now())
		return check()
	})
}
