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
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.duplicates, m.attempts, m.duration)
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
