package broker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/adapters"
)

// Metrics are the broker's Prometheus series.
type Metrics struct {
	accepted   prometheus.Counter
	duplicates prometheus.Counter
	attempts   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	// lineFull counts messages sent back to the queue with a delay because their
	// office's line was full.
	lineFull prometheus.Counter
	// unrecorded counts successful attempts whose outcome the store did not take:
	// their packages go to the office again later.
	unrecorded prometheus.Counter
	// restored counts outbox entries the queue check found without a queue message
	// and put back (queuecheck.go): each one is a package that would have waited.
	restored prometheus.Counter
	// checks counts queue checks by outcome (ok, failed).
	checks *prometheus.CounterVec
}

// NewMetrics creates the series and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amtsbote_submissions_accepted_total", Help: "Packages accepted durably (201)."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amtsbote_submissions_duplicate_total", Help: "Repeated (sender, NachrichtID) answered with the first receipt."}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtsbote_delivery_attempts_total", Help: "Delivery attempts by channel and outcome."}, []string{"channel", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "amtsbote_delivery_attempt_seconds", Help: "Duration of one delivery attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"channel"}),
		lineFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amtsbote_delivery_line_full_total", Help: "Packages sent back to the queue with a delay because their office's line of waiting packages was full."}),
		unrecorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amtsbote_delivery_unrecorded_total", Help: "Successful delivery attempts whose outcome the store did not take after several tries; the package goes to the office again later."}),
		restored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amtsbote_queue_restored_total", Help: "Accepted packages the periodic queue check found in the outbox without a queue message and put back on the queue."}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtsbote_queue_checks_total", Help: "Queue checks (outbox against the work queue) by outcome: ok, failed."}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.duplicates, m.attempts, m.duration, m.lineFull, m.unrecorded, m.restored, m.checks)
	}
	return m
}

func (m *Metrics) observeAttempt(channel string, err error, d time.Duration) {
	outcome := "ok"
	switch {
	case err == nil:
	case adapters.IsPermanent(err):
		outcome = "permanent"
	default:
		outcome = "transient"
	}
	m.attempts.WithLabelValues(channel, outcome).Inc()
	m.duration.WithLabelValues(channel).Observe(d.Seconds())
}
