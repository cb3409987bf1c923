package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
)

// Group commit.
//
// Every bbolt commit costs two device flushes (the data pages, then the meta page),
// and nothing can share them but more writes in the same transaction. bbolt's own
// DB.Batch starts a timer at a batch's first call and hands the batch to the writer
// lock when it fires; while one commit flushes, the next batch's timer runs out
// after the same short delay, so under a steady load of a few hundred writes a
// second almost every write got a commit of its own (1.8 flushes per package at
// 200 packages/s, docs/performance.md). The committer below instead spaces commits
// out: a commit starts at once when the last one started at least Options.BatchDelay
// ago (an idle store adds no latency), otherwise when that time is up or
// Options.BatchSize writes wait, and it takes every write that came meanwhile (up
// to four times BatchSize, which bounds a transaction). Under load the flush rate
// is then bounded by 2 / BatchDelay (unless BatchSize writes come sooner), and a
// write waits at most about one BatchDelay plus one commit.
//
// Why BatchSize starts a commit early, and why 16 by default: once 16 writes
// wait, the commit's two flushes cost each of them an eighth of a flush; waiting
// out the delay for more saves little, while every client waiting for its 201 —
// a portal's few connections — waits with the CPU idle. With 64 (before
// 2026-12-03) a portal posting on 8 or 16 connections was paced by the delay
// alone: `bench -c 8` delivered 670–734/s with 64 and 1,003–1,151/s with 16,
// `-c 16` 1,080–1,308 against 1,176–1,499 (docs/performance.md, "Sixteen writes
// start a commit"); at 200 arrivals/s, where fewer than 16 writes come within a
// delay, nothing changes (0.94 flushes per package either way). Fewer than 16
// costs more in commits than it saves in waiting (8: 1,049–1,324/s at `-c 16`).
//
// The contract is bbolt's Batch's: fn may run more than once (a batch is rolled
// back and run again without a call whose fn failed; that call then runs alone and
// gets its own error), so fn must have no effects beyond the transaction.
type committer struct {
	interval time.Duration
	start    int // writes waiting that start a commit before interval is up
	most     int // writes one commit takes at most

	mu    sync.Mutex
	queue []*commitCall
	wake  chan struct{} // capacity 1: something was queued, or the queue is full
	stop  chan struct{}
	done  chan struct{}

	commits atomic.Uint64
	writes  atomic.Uint64
	failed  atomic.Uint64
	// refused is the error of the latest commit when the file refused it, nil
	// once a commit (or ProbeWrite) succeeds again: whether the store takes
	// writes now, as readiness needs to know it, without a write of its own on
	// every request.
	refused atomic.Pointer[error]
	// took is the time of each commit (its transaction and two flushes); waited
	// each write's time from queued to durable: the commit window, the commit
	// before it if one ran, and its own. What a 201 waits for the disk.
	took, waited prometheus.Histogram
}

type commitCall struct {
	fn     func(*wtx) error
	err    chan error
	queued time.Time
}

// CommitStats says how well group commit shares flushes: Commits transactions
// written by the committer for Writes group-committed writes. Failed counts the
// transactions whose commit the file refused (no space left, an I/O error, the
// size limit): their writers got the error and none of their writes is stored.
// Refused is the error of the latest commit if the file refused it, nil once a
// commit or a ProbeWrite has succeeded since (or none ever failed).
type CommitStats struct {
	Commits, Writes, Failed uint64
	Refused                 error
}

// CommitStats returns the counts since Open.
func (db *DB) CommitStats() CommitStats {
	st := CommitStats{Commits: db.commit.commits.Load(), Writes: db.commit.writes.Load(), Failed: db.commit.failed.Load()}
	if p := db.commit.refused.Load(); p != nil {
		st.Refused = *p
	}
	return st
}

// outcome records a commit's end: a refused one counts as failed and is the
// store's state until one succeeds.
func (c *committer) outcome(err error) {
	if err != nil {
		c.failed.Add(1)
		c.refused.Store(&err)
		return
	}
	c.refused.Store(nil)
}

// probeKey is the meta row ProbeWrite writes and removes again.
var probeKey = []byte("write-probe")

// ProbeWrite tries whether the data file takes writes now, for a caller that
// saw commits refused (Refused) and has no write of its own to try with — a
// gateway taken out of its load balancer gets none. It stores InlineMax bytes,
// the most one inline blob adds to an intake's commit, so that a success says a
// typical package fits and not merely that bbolt had a free page left, and
// removes them again, each in a transaction of its own. Its outcome counts like
// a commit's: a success ends Refused, a refusal is a failed commit (so
// amtsbote_store_commit_failures_total goes on rising while the disk is full).
// It runs outside the group commit on purpose: in a shared commit a probe the
// disk has no room for would fail the real writes beside it.
func (db *DB) ProbeWrite() error {
	db.sw.RLock()
	defer db.sw.RUnlock()
	for _, v := range [][]byte{make([]byte, InlineMax), nil} {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			if v == nil {
				return tx.Bucket(bucketMeta).Delete(probeKey)
			}
			return tx.Bucket(bucketMeta).Put(probeKey, v)
		})
		db.commit.outcome(err)
		if err != nil {
			return fmt.Errorf("store: probe write: %w", err)
		}
	}
	return nil
}

// LatencyBuckets resolve what the commit window (10 ms by default) and a slow
// disk's flushes do to a write: milliseconds near the window, then up to the
// seconds of a stalled device. For every store's WriteWaitMetric.
var LatencyBuckets = []float64{.0005, .001, .002, .003, .005, .0075, .01, .0125, .015, .02, .025, .03, .05, .075, .1, .25, .5, 1, 2.5, 5, 10}

// WriteWaitMetric is the histogram every store implementation keeps of its
// writes' time until durable, under one name so that one alert
// (AmtsboteStoreSlow) serves every backend; help says what durable means there.
func WriteWaitMetric(help string) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: "amtsbote_store_write_wait_seconds", Help: help, Buckets: LatencyBuckets})
}

func newCommitter(interval time.Duration, start int) *committer {
	return &committer{
		interval: interval,
		start:    start,
		most:     4 * start,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		took: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "amtsbote_store_commit_seconds",
			Help: "Time of one group commit of the bbolt store: its transaction and two device flushes.", Buckets: LatencyBuckets}),
		waited: WriteWaitMetric("Time of one write from queued to durable: the commit window (store.batch_delay), a commit still running, its own commit."),
	}
}

// Collectors are the store's Prometheus histograms of commit and write times,
// for the gateway to register.
func (db *DB) Collectors() []prometheus.Collector {
	return []prometheus.Collector{db.commit.took, db.commit.waited}
}

// errPanicked wraps a panic in a write function: it fails that write, not the
// process (bbolt's Batch does the same).
var errPanicked = errors.New("store: write function panicked")

// do queues fn and waits until the transaction that ran it is durable. The caller
// holds db.sw shared, so the file is not swapped before the commit.
func (c *committer) do(fn func(*wtx) error) error {
	call := &commitCall{fn: fn, err: make(chan error, 1), queued: time.Now()}
	c.mu.Lock()
	c.queue = append(c.queue, call)
	n := len(c.queue)
	c.mu.Unlock()
	if n == 1 || n >= c.start {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return <-call.err
}

// run is the committer's goroutine: one commit at a time, spaced by interval.
func (c *committer) run(db *DB) {
	defer close(c.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var last time.Time
	for {
		select {
		case <-c.wake:
		case <-c.stop:
			return
		}
	gather:
		for {
			c.mu.Lock()
			n := len(c.queue)
			c.mu.Unlock()
			wait := c.interval - time.Since(last)
			if n == 0 || n >= c.start || wait <= 0 {
				break
			}
			timer.Reset(wait)
			select {
			case <-timer.C:
				break gather
			case <-c.wake: // more came; look again whether the queue is full
				if !timer.Stop() {
					<-timer.C
				}
			case <-c.stop:
				return
			}
		}
		c.mu.Lock()
		calls := c.queue
		if len(calls) > c.most {
			calls, c.queue = calls[:c.most:c.most], calls[c.most:]
			select { // the rest is the next commit's
			case c.wake <- struct{}{}:
			default:
			}
		} else {
			c.queue = nil
		}
		c.mu.Unlock()
		if len(calls) == 0 {
			continue
		}
		last = time.Now()
		c.commitAll(db, calls)
	}
}

// commitAll writes calls in one transaction. A call whose fn fails is taken out
// and the rest run again; the failed ones then run alone, each in a transaction
// of its own, so each gets the error its fn returns against the committed state.
func (c *committer) commitAll(db *DB, calls []*commitCall) {
	var solo []*commitCall
	began := time.Now()
	for len(calls) > 0 {
		failed := -1
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			w := &wtx{Tx: tx, dirty: db.dirty.Load()}
			for i, call := range calls {
				if err := safely(call.fn, w); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			solo = append(solo, calls[failed])
			calls = append(calls[:failed:failed], calls[failed+1:]...)
			continue
		}
		// The commit's time is observed before its writers are told: a writer that
		// reads the metrics after its write finds the commit in them.
		now := time.Now()
		c.outcome(err)
		if err == nil {
			// (A failed one — every fn ran, so bbolt's commit itself failed —
			// wrote nothing and is no commit that shared a flush.)
			c.took.Observe(now.Sub(began).Seconds())
			c.commits.Add(1)
			c.writes.Add(uint64(len(calls)))
		}
		for _, call := range calls {
			c.waited.Observe(now.Sub(call.queued).Seconds())
			call.err <- err
		}
		break
	}
	for _, call := range solo {
		fnFailed := false
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			err := safely(call.fn, &wtx{Tx: tx, dirty: db.dirty.Load()})
			fnFailed = err != nil
			return err
		})
		if !fnFailed {
			c.outcome(err)
		}
		c.waited.Observe(time.Since(call.queued).Seconds())
		call.err <- err
	}
}

func safely(fn func(*wtx) error, w *wtx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errPanicked, p)
		}
	}()
	return fn(w)
}
