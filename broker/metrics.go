package broker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/channel"
)

// Metrics are the broker's Prometheus series.
type Metrics struct {
	accepted   prometheus.Counter
	duplicates prometheus.Counter
	attempts   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	// deferred counts messages kept from their endpoint without an attempt, by
	// channel and reason (the receiver's Retry-After, an open breaker, another
	// message's probe): a dispatcher that is working but may not call the office.
	deferred *prometheus.CounterVec
	// lineFull counts messages sent back to the queue with a delay because their
	// office's line was full.
	lineFull prometheus.Counter
	// unrecorded counts successful attempts whose outcome the store did not take:
	// their packages go to the office again later.
	unrecorded prometheus.Counter
	// lateHandOvers counts hand-overs a clerk's takeover came too late to stop,
	// or that the gateway found only after it (Broker.tellLateHandOver), once
	// their case folder's withdrawal has answered (or not within the attempt
	// timeout), by whether it was withdrawn: the alert reads only the folders
	// that stayed. A label, not a second counter: summed over withdrawn it is
	// the count of every late hand-over as before (2026-12-07, when the label
	// came), and one series per outcome cannot count a folder twice or race
	// the other's increment in the alert's window.
	lateHandOvers *prometheus.CounterVec
	// withdrawals counts the answers of withdrawals of a copy waiting for the
	// office outside the gateway (withdraw.go), and withdrawalsOwed the cases
	// this gateway knows to owe one (owed.go): an erasure is not done until
	// that is zero.
	withdrawals     *prometheus.CounterVec
	withdrawalsOwed prometheus.Gauge
	// restored counts outbox entries the queue check found without a queue message
	// and put back (queuecheck.go): each one is a package that would have waited.
	restored prometheus.Counter
	// checks counts queue checks by outcome (ok, failed).
	checks *prometheus.CounterVec
	// retention counts runs of the background retention job by outcome (ok,
	// failed), and retentionOK is when the last one succeeded: a job that fails
	// every hour only logged it, and personal data outlived its period unseen.
	retention   *prometheus.CounterVec
	retentionOK prometheus.Gauge
	// retentionTook and retentionRecords are the last successful run's length and
	// the records it read: the run reads every record, so both grow with the
	// store's history (a million submissions: about two minutes from a cold disk),
	// and an operator sees that coming before the job overlaps itself.
	retentionTook    prometheus.Gauge
	retentionRecords prometheus.Gauge
	// clockStep is how far the wall clock ran ahead of the monotonic one since
	// the last retention run that agreed with it, while the retention is paused
	// for it (retention.go clockGuard); 0 otherwise. A clock set a year ahead
	// stripped every answered case's bytes at the next run.
	clockStep prometheus.Gauge
	// stopMessages counts the takeover stop messages (clusterstop.go) by
	// outcome: sent, unsent (the publish failed: an attempt on another gateway
	// was not stopped), received (from another broker), ignored (no
	// submission id in it).
	stopMessages *prometheus.CounterVec
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
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtsbote_delivery_deferred_total", Help: "Packages due for an attempt that were kept from their endpoint and sent back to the queue with a delay, by channel and reason: retry_after (the receiver asked to be called later), breaker (its circuit breaker is open), probe (another attempt probes it)."}, []string{"channel", "reason"}),
		lineFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amtsbote_delivery_line_full_total", Help: "Packages sent back to the queue with a delay because their office's line of waiting packages was full."}),
		lateHandOvers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtsbote_delivery_handed_over_after_takeover_total", Help: "Hand-overs (a case folder put into an office's transfer folder) recorded on a case a clerk had taken over in the web mailbox, by channel, by whether the case had been erased meanwhile (erased=\"true\": the folder holds what the erasure removed here) and by whether the gateway withdrew the folder before the office's import took it (withdrawn=\"false\": the import took it first, or the share did not answer; the import may process the application beside the clerk). The attempt ended after the takeover, or the gateway found its hand-over only then (a crash after the rename); counted once the withdrawal answered, at most the attempt timeout after."}, []string{"channel", "erased", "withdrawn"}),
		withdrawals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtsbote_withdrawals_total", Help: "Withdrawals of a case's copy waiting for the office outside the gateway (a case folder in a transfer folder), by channel, by copy (erased: of an erased case; late: a case folder that reached the share after a clerk's takeover) and by outcome: removed, removedBefore, taken (the office had it first), none, unreachable (the share did not answer in time or failed: the gateway asks again, amtsbote_withdrawals_owed)."}, []string{"channel", "copy", "outcome"}),
		withdrawalsOwed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "amtsbote_withdrawals_owed", Help: "Cases this gateway knows to owe a withdrawal of their copy waiting for the office outside the gateway (an erased case's case folder, a late one after a clerk's takeover) that has not been done yet; it asks their shares again, up to once an hour. After a start, the cases of before it count from the retention's first run, or, on a gateway without the background retention, from its own look at every record half a minute after the start."}),
		unrecorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amtsbote_delivery_unrecorded_total", Help: "Successful delivery attempts whose outcome the store did not take after several tries; the package goes to the office again later."}),
		restored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amtsbote_queue_restored_total", Help: "Accepted packages the periodic queue check found in the outbox without a queue message and put back on the queue."}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtsbote_queue_checks_total", Help: "Queue checks (outbox against the work queue) by outcome: ok, failed."}, []string{"outcome"}),
		retention: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtsbote_retention_runs_total", Help: "Runs of the background retention job (retention.every) by outcome: ok, failed, skipped (cluster: another gateway ran this period), paused (the wall clock jumped ahead, amtsbote_retention_clock_step_seconds)."}, []string{"outcome"}),
		retentionOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "amtsbote_retention_last_success_timestamp_seconds", Help: "When the background retention job last finished a run (Unix time; 0: none since start)."}),
		retentionTook: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "amtsbote_retention_last_duration_seconds", Help: "How long the background retention job's last successful run took."}),
		retentionRecords: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "amtsbote_retention_last_records_scanned", Help: "Records the background retention job's last successful run read (it reads every record)."}),
		clockStep: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "amtsbote_retention_clock_step_seconds", Help: "How far the wall clock jumped ahead of the monotonic clock since the last retention run; above 0 the background retention is paused until the clocks agree again or the gateway is restarted."}),
		stopMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtsbote_takeover_stop_messages_total", Help: "Messages by which a clerk's takeover stops the delivery attempt under way on the other gateways, by outcome: sent, unsent (the publish failed: an attempt under way on another gateway was not stopped), received (from another gateway), ignored (named no submission id)."}, []string{"outcome"}),
	}
	// At 0 from the start: a series first seen at 1 has no increase for
	// Prometheus, and the first unsent message would go unseen.
	for _, outcome := range []string{"sent", "unsent", "received", "ignored"} {
		m.stopMessages.WithLabelValues(outcome)
	}
	// Both outcomes from the start, so that a job that never succeeds shows a
	// series at 0 for "ok" (an alert cannot compare with a series that is absent).
	m.retention.WithLabelValues("ok")
	m.retention.WithLabelValues("failed")
	m.retention.WithLabelValues("skipped")
	m.retention.WithLabelValues("paused")
	// Every channel's outcomes from the start, at 0: a series first seen at 1
	// has no increase for Prometheus, so after a restart at night the first
	// delivery attempt went uncounted while the first package was counted, and
	// AmtsboteDeliveriesStalled paged for a package delivered at once.
	for _, ch := range channel.All() {
		for _, outcome := range []string{"ok", "transient", "permanent"} {
			m.attempts.WithLabelValues(ch, outcome)
		}
	}
	// Likewise the deferrals, which AmtsboteDeliveriesStalled adds to the attempts.
	for _, ch := range channel.All() {
		for _, why := range deferReasons {
			m.deferred.WithLabelValues(ch, why)
		}
	}
	// And the one channel whose hand-over can land after a takeover, for
	// AmtsboteHandedOverAfterTakeover.
	for _, erased := range []string{"false", "true"} {
		for _, withdrawn := range []string{"false", "true"} {
			m.lateHandOvers.WithLabelValues(channel.Transfer, erased, withdrawn)
		}
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.duplicates, m.attempts, m.deferred, m.duration, m.lineFull, m.unrecorded, m.lateHandOvers, m.withdrawals, m.withdrawalsOwed, m.restored, m.checks, m.retention, m.retentionOK, m.retentionTook, m.retentionRecords, m.clockStep, m.stopMessages)
	}
	return m
}

// observeRetention counts one run of the background retention job, which
// began at began, read records records and ended at end.
func (m *Metrics) observeRetention(err error, began, end time.Time, records int64) {
	if err != nil {
		m.retention.WithLabelValues("failed").Inc()
		return
	}
	m.retention.WithLabelValues("ok").Inc()
	m.retentionOK.Set(float64(end.Unix()))
	m.retentionTook.Set(end.Sub(began).Seconds())
	m.retentionRecords.Set(float64(records))
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
