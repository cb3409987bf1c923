package gateway

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// indexWatch follows one of the store's indexes of waiting submissions for
// /metrics: how many it names, and when the oldest of them was received. It
// lists the index at most once per every (a scrape every few seconds must not
// read the store each time); an error keeps the last figures rather than
// reporting an empty backlog.
type indexWatch struct {
	state string // the label: waiting (the outbox), handed_over, held
	list  func() ([]string, error)
	get   func(id string) (*submission.Submission, error)
	every time.Duration

	mu     sync.Mutex
	at     time.Time
	n      int
	oldest time.Time // zero while none waits
}

func (w *indexWatch) read() (n int, oldest time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if time.Since(w.at) < w.every {
		return w.n, w.oldest
	}
	w.at = time.Now()
	ids, err := w.list()
	if err != nil {
		return w.n, w.oldest
	}
	w.n = len(ids)
	if len(ids) == 0 {
		w.oldest = time.Time{}
		return w.n, w.oldest
	}
	// Ids are time-ordered (UUIDv7), so the smallest names the oldest: one
	// record read, not the index's every record. A record deleted since the
	// listing keeps the last figure until the next.
	if s, err := w.get(slices.Min(ids)); err == nil {
		w.oldest = s.ReceivedAt
	}
	return w.n, w.oldest
}

// count is the gauge function of the index's size.
func (w *indexWatch) count() float64 { n, _ := w.read(); return float64(n) }

// oldestCollector reports, per index, when its oldest submission was received.
// The count says that packages wait; only the age says that one has waited for
// days, which a handful stuck at an office that never imports its transfer
// folder or opens its mailbox would never show in a count
// (AmtsboteUnconfirmedForDays). NaN while none waits: an alert on the age
// stays silent, and the series stays there for dashboards and the rules' check.
type oldestCollector struct {
	desc    *prometheus.Desc
	watches []*indexWatch
}

func newOldestCollector(watches ...*indexWatch) *oldestCollector {
	return &oldestCollector{
		desc: prometheus.NewDesc("amtsbote_submissions_oldest_received_timestamp_seconds",
			"When the oldest submission in a waiting state was received (Unix time; NaN while none waits): state waiting = queued or retrying (the outbox), handed_over = waiting for the office's confirmation, held = waiting for a person.",
			[]string{"state"}, nil),
		watches: watches,
	}
}

func (c *oldestCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *oldestCollector) Collect(ch chan<- prometheus.Metric) {
	for _, w := range c.watches {
		v := math.NaN()
		if _, t := w.read(); !t.IsZero() {
			v = float64(t.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, w.state)
	}
}

// notErased leaves out of an index's listing the entries whose bytes an erasure
// removed. An entry an older build wrote does not say (not Known): its record
// is read. Such entries were kept, and a case erased before an upgrade stayed in
// the held or handed-over gauge for ever (an audit, 2026-12-05); they stay in the
// index as long as the case waits, but only cases from before the upgrade have
// them, so a scrape reads few records, if any.
func notErased(get func(id string) (*submission.Submission, error), list func() ([]store.Waiting, error)) func() ([]store.Waiting, error) {
	return func() ([]store.Waiting, error) {
		entries, err := list()
		return slices.DeleteFunc(entries, func(e store.Waiting) bool {
			if e.Known {
				return e.Erased
			}
			s, err := get(e.ID)
			return err == nil && s.BytesRemovedAt != nil
		}), err
	}
}
