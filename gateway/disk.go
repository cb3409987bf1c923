package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/internal/diskspace"
	"github.com/amtsbote/amtsbote/store"
)

// writeProbeEvery is how often watchWrites tries a write while the node is out
// for a refused write: soon enough that a load balancer takes the node back
// within seconds of the disk having room, rare enough that 128 KiB written and
// removed again costs nothing.
const writeProbeEvery = 2 * time.Second

// probesToReady is how many probe writes in a row must succeed before a node
// that a refused write took out is ready again: an I/O error that comes and goes
// would otherwise bring it back at its first success and take it out again at
// the next failure.
const probesToReady = 3

// refusing is the single node's store as readiness sees it.
type refusing interface {
	CommitStats() store.CommitStats
	ProbeWrite() error
}

// diskGate is readiness's memory of a refused write: once the data file refused
// a commit, the node stays not ready until it may be trusted with writes again,
// whatever single commits do in between.
//
// Why not the latest commit, as before: on a nearly full disk a small commit
// fits where a larger one does not, and /readyz followed every commit, 503 and
// 200 in turn; a load balancer took the node out and back with each, and portals
// sent there between got intake's 503. So the node comes back only when the probe
// write has succeeded probesToReady times in a row and, when the refusal was for
// want of space, the file system has more room than when it refused by the
// margin (headroom): room that has come back, not a page freed here and there.
type diskGate struct {
	mu     sync.Mutex
	out    error  // the refusal that took the node out; nil while in
	point  uint64 // the bytes available when writes were refused last
	known  bool   // point and size could be read
	size   uint64 // of the file system
	streak int    // probe writes in a row that succeeded since
	noted  bool   // logged that writes succeed but room is short
}

// spaceCause reports whether err is a refusal for want of space that statfs can
// see come back: a quota (EDQUOT) is not in the file system's free bytes.
func spaceCause(err error) bool { return errors.Is(err, syscall.ENOSPC) }

// headroom is the room above the refusal point a node needs to be ready again:
// a package of the largest size (limits.max_body_bytes), or a twentieth of the
// file system where that is less (the 5 % of AmtsboteDataDiskAlmostFull), so
// that a small disk can come back at all.
func headroom(maxBody int64, size uint64) uint64 {
	return min(uint64(max(maxBody, 0)), size/20)
}

// writesRefused is why the single node is not ready for its data disk, or nil:
// a commit was refused and the disk has not proved since that it takes writes
// again (diskGate). Always nil in cluster mode, where storeUnreachable speaks
// for the store.
func (g *Gateway) writesRefused() error {
	db, ok := g.db.(refusing)
	if !ok {
		return nil
	}
	if err := db.CommitStats().Refused; err != nil {
		g.diskRefused(err, false)
	}
	g.disk.mu.Lock()
	out, known, size := g.disk.out, g.disk.known, g.disk.size
	g.disk.mu.Unlock()
	if out == nil {
		return nil
	}
	// /readyz answers anyone: the cause in a word, not the error with the data
	// file's path (the log has that).
	cause := "its last commit failed"
	switch {
	case errors.Is(out, syscall.ENOSPC):
		cause = "no space left on device"
	case errors.Is(out, syscall.EDQUOT):
		cause = "disk quota exceeded"
	case errors.Is(out, syscall.EROFS):
		cause = "read-only file system"
	case errors.Is(out, syscall.EIO):
		cause = "I/O error"
	}
	room := ""
	if spaceCause(out) && known {
		room = fmt.Sprintf(" and with %d bytes more room than when it refused", headroom(g.Config.Limits.MaxBodyBytes, size))
	}
	return fmt.Errorf("the data disk (data_dir) refuses writes: %s; not ready until a test write has succeeded %d times in a row (tried every %s)%s",
		cause, probesToReady, writeProbeEvery, room)
}

// diskRefused records a refused write, a commit's or (probe) the gateway's own
// probe's: the node goes out; a probe refused while it is out starts the count
// of successes again and moves the refusal point to where the disk refuses now.
func (g *Gateway) diskRefused(err error, probe bool) {
	g.disk.mu.Lock()
	defer g.disk.mu.Unlock()
	if g.disk.out != nil && !probe && g.disk.streak == 0 {
		// Readiness sees the same refusal on every call until a write succeeds:
		// no statfs for each (on a network file system it can take a while).
		// With a streak of probes begun it is a new refusal: a successful probe
		// clears the store's Refused, so a commit has failed since, and the
		// count starts again — else an I/O error that comes and goes in the
		// commits between the probes brought the node back all the same.
		return
	}
	first := g.disk.out == nil
	g.disk.out, g.disk.streak, g.disk.noted = err, 0, false
	if sp, serr := diskspace.Of(g.Config.DataDir); serr == nil {
		g.disk.point, g.disk.size, g.disk.known = sp.Available, sp.Size, true
	} else {
		g.disk.known = false
	}
	if first {
		g.Log.Error("the data disk refuses writes: not ready until it takes writes again with room to spare", "err", err)
	}
}

// diskProbed records a probe write that succeeded: the node is ready again at
// the probesToReady-th in a row if the room has come back.
func (g *Gateway) diskProbed() {
	g.disk.mu.Lock()
	defer g.disk.mu.Unlock()
	d := &g.disk
	if d.out == nil {
		return
	}
	if d.streak++; d.streak < probesToReady {
		return
	}
	if spaceCause(d.out) && d.known {
		sp, err := diskspace.Of(g.Config.DataDir)
		need := d.point + headroom(g.Config.Limits.MaxBodyBytes, d.size)
		if err == nil && sp.Available < need {
			if !d.noted {
				d.noted = true
				g.Log.Warn("the data disk takes writes again but has little room: not ready until it has more",
					slog.Uint64("available_bytes", sp.Available), slog.Uint64("needed_bytes", need))
			}
			return
		}
	}
	d.out, d.streak, d.noted = nil, 0, false
	g.Log.Info("the data disk takes writes again: ready")
}

// watchWrites tries a write every writeProbeEvery while the node is out for a
// refused write (diskGate), until the gateway drains. Without it a node that
// readiness took out of its load balancer got no write to find out that the
// disk has room again, and stayed out. Nothing is written while the node is in:
// real writes say so at no cost.
func (g *Gateway) watchWrites(db refusing, done chan<- struct{}) {
	defer close(done)
	g.untilDrained(writeProbeEvery, func() { g.probeDisk(db) })
}

// probeDisk is one round of watchWrites: a refusal of the commits since the
// last round takes the node out (or, while it is out, starts the count of
// probes again), and while it is out one probe write is tried.
func (g *Gateway) probeDisk(db refusing) {
	// A refusal nobody asked /readyz about takes the node out all the same.
	if err := db.CommitStats().Refused; err != nil {
		g.diskRefused(err, false)
	}
	g.disk.mu.Lock()
	out := g.disk.out != nil
	g.disk.mu.Unlock()
	if !out {
		return
	}
	if err := db.ProbeWrite(); err != nil {
		g.diskRefused(err, true)
		return
	}
	g.diskProbed()
}

// diskEvery: the data folder's file system is read at most this often, however
// often /metrics is scraped (a statfs on a network file system can take a while).
const diskEvery = 5 * time.Second

// diskCollector exposes the room left on the file system of data_dir: the early
// warning before the store's commits are refused (AmtsboteDataDiskFilling).
// Nothing when it cannot be read.
type diskCollector struct {
	dir         string
	avail, size *prometheus.Desc

	mu    sync.Mutex
	at    time.Time // of the last read
	space diskspace.Space
	err   error
}

func newDiskCollector(dir string) *diskCollector {
	return &diskCollector{
		dir: dir,
		avail: prometheus.NewDesc("amtsbote_data_disk_available_bytes",
			"Bytes the gateway may still write to the file system holding data_dir (free less root's reserve), read at most every 5 s.", nil, nil),
		size: prometheus.NewDesc("amtsbote_data_disk_size_bytes",
			"Size of the file system holding data_dir.", nil, nil),
	}
}

func (c *diskCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.avail; ch <- c.size }

func (c *diskCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if c.at.IsZero() || time.Since(c.at) >= diskEvery {
		c.space, c.err = diskspace.Of(c.dir)
		c.at = time.Now()
	}
	space, err := c.space, c.err
	c.mu.Unlock()
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.avail, prometheus.GaugeValue, float64(space.Available))
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(space.Size))
}
