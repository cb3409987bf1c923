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

// indexWait is how long a scrape waits for the listings it started before it
// reports the last figures. A store that does not answer (a cluster without
// quorum: the JetStream store's calls wait 30 s) held every scrape past
// Prometheus's 10 s scrape timeout, so every node looked down (up == 0,
// AmtsboteDown) and its other series went blind exactly then.
const indexWait = 2 * time.Second

// indexWatch is one of the store's indexes of waiting submissions as /metrics
// shows it: how many it names, and when the oldest of them was received. Its
// figures change only in its indexWatches' listing.
type indexWatch struct {
	state string // the label: waiting (the outbox), handed_over, held, delivered_undecided
	list  func() ([]string, error)
	get   func(id string) (*submission.Submission, error)
	// current, if set, says whether a record still belongs in the index. An
	// entry whose record says otherwise is stale — the undecided index keeps a
	// case an older build decided (docs/operations.md) — and is passed over
	// when the oldest is looked for, as the admin's list passes over it:
	// otherwise the age alert fires for a case decided long ago and sends the
	// operator to a list without it. The stale entries passed over are not
	// counted; those after the oldest current one are (reading every record
	// at every listing would cost a read per case the offices are deciding).
	current func(*submission.Submission) bool
	of      *indexWatches

	n      int
	oldest time.Time // zero while none waits
	listed time.Time // when the figures came from a listing; zero before the first
}

// indexWatches lists its indexes at most once per every (a scrape every few
// seconds must not read the store each time), in a goroutine of its own, one
// listing of all at a time. A scrape that finds the figures older waits for the
// listing until indexWait after it began, not longer, and otherwise reports the
// last figures; a failed listing keeps them too, rather than reporting an empty
// backlog. While down says the store is out of reach, nothing is listed.
type indexWatches struct {
	every   time.Duration
	down    func() error // nil: the store is never known down
	watches []*indexWatch

	mu      sync.Mutex
	at      time.Time     // when the last listing began
	running chan struct{} // closed when the listing in flight ends; nil while none runs
	stopped bool          // the gateway stops: no more listings
}

// newIndexWatches makes the watches of one store, listed together.
func newIndexWatches(every time.Duration, down func() error, watches ...*indexWatch) *indexWatches {
	ws := &indexWatches{every: every, down: down, watches: watches}
	for _, w := range watches {
		w.of = ws
	}
	return ws
}

// fresh lists the indexes when their figures are older than every, and waits
// for a listing in flight until indexWait after it began.
func (ws *indexWatches) fresh() {
	ws.mu.Lock()
	if ws.running == nil && !ws.stopped && time.Since(ws.at) >= ws.every && (ws.down == nil || ws.down() == nil) {
		ws.at = time.Now()
		ws.running = make(chan struct{})
		go ws.refresh(ws.running)
	}
	running, until := ws.running, ws.at.Add(indexWait)
	ws.mu.Unlock()
	if running == nil {
		return
	}
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-running:
	case <-t.C:
	}
}

// refresh lists every index and puts its figures in force; a failed listing
// keeps the last ones. It closes done when it ends.
func (ws *indexWatches) refresh(done chan struct{}) {
	defer func() {
		ws.mu.Lock()
		ws.running = nil
		ws.mu.Unlock()
		close(done)
	}()
	for _, w := range ws.watches {
		ids, err := w.list()
		if err != nil {
			continue
		}
		n, oldest, known, stale := len(ids), time.Time{}, true, 0
		if w.current != nil {
			ids = slices.Clone(ids)
			slices.Sort(ids)
		} else if len(ids) > 0 {
			ids = []string{slices.Min(ids)}
		}
		// Ids are time-ordered (UUIDv7), so the smallest names the oldest: one
		// record read, not the index's every record (and one more for each
		// stale entry before it). A record deleted since the listing keeps the
		// last figure until the next.
		for _, id := range ids {
			s, err := w.get(id)
			if known = err == nil; !known {
				break
			}
			if w.current == nil || w.current(s) {
				oldest = s.ReceivedAt
				break
			}
			stale++
		}
		ws.mu.Lock()
		w.n, w.listed = n-stale, time.Now()
		if known {
			w.oldest = oldest
		}
		ws.mu.Unlock()
	}
}

// stop starts no more listings and waits for the one in flight, so that none
// reads the store after the gateway closed it.
func (ws *indexWatches) stop() {
	ws.mu.Lock()
	ws.stopped = true
	running := ws.running
	ws.mu.Unlock()
	if running != nil {
		<-running
	}
}

// read is the index's figures, listed again if they are due.
func (w *indexWatch) read() (n int, oldest time.Time) {
	w.of.fresh()
	w.of.mu.Lock()
	defer w.of.mu.Unlock()
	return w.n, w.oldest
}

// lastListed is when the figures came from a listing (zero before the first).
func (w *indexWatch) lastListed() time.Time {
	w.of.mu.Lock()
	defer w.of.mu.Unlock()
	return w.listed
}

// count is the gauge function of the index's size.
func (w *indexWatch) count() float64 { n, _ := w.read(); return float64(n) }

// oldestCollector reports, per index, when its oldest submission was received.
// The count says that packages wait; only the age says that one has waited for
// days, which a handful stuck at an office that never imports its transfer
// folder or opens its mailbox would never show in a count
// (AmtsboteUnconfirmedForDays). NaN while none waits: an alert on the age
// stays silent, and the series stays there for dashboards and the rules' check.
// Beside it, when the figures were listed: while the store does not answer, the
// gauges keep their last figures, and this says since when.
type oldestCollector struct {
	desc, listed *prometheus.Desc
	watches      []*indexWatch
}

func newOldestCollector(watches ...*indexWatch) *oldestCollector {
	return &oldestCollector{
		desc: prometheus.NewDesc("amtsbote_submissions_oldest_received_timestamp_seconds",
			"When the oldest submission in a waiting state was received (Unix time; NaN while none waits): state waiting = queued or retrying (the outbox), handed_over = waiting for the office's confirmation, held = waiting for a person, delivered_undecided = taken by the office API or the mailbox and waiting for the office's decision.",
			[]string{"state"}, nil),
		listed: prometheus.NewDesc("amtsbote_submissions_listed_timestamp_seconds",
			"When the figures of amtsbote_submissions_waiting, _handed_over, _held, _delivered_undecided and _oldest_received_timestamp_seconds were last listed from the store's index (Unix time; 0 before the first listing). While the store does not answer, those keep their last figures.",
			[]string{"state"}, nil),
		watches: watches,
	}
}

func (c *oldestCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.listed }

func (c *oldestCollector) Collect(ch chan<- prometheus.Metric) {
	for _, w := range c.watches {
		v := math.NaN()
		if _, t := w.read(); !t.IsZero() {
			v = float64(t.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, w.state)
		listed := 0.0
		if t := w.lastListed(); !t.IsZero() {
			listed = float64(t.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(c.listed, prometheus.GaugeValue, listed, w.state)
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
