package gateway

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/internal/diskspace"
	"github.com/amtsbote/amtsbote/store"
)

// writeProbeEvery is how often watchWrites tries a write while the data file
// refuses them: soon enough that a load balancer takes the node back within
// seconds of the disk having room, rare enough that 128 KiB written and removed
// again costs nothing.
const writeProbeEvery = 2 * time.Second

// refusing is the single node's store as readiness sees it.
type refusing interface {
	CommitStats() store.CommitStats
	ProbeWrite() error
}

// writesRefused is why the single node's data file refuses writes now, or nil:
// its latest commit failed and none has succeeded since. Always nil in cluster
// mode, where storeUnreachable speaks for the store.
func (g *Gateway) writesRefused() error {
	db, ok := g.db.(refusing)
	if !ok {
		return nil
	}
	err := db.CommitStats().Refused
	if err == nil {
		return nil
	}
	// /readyz answers anyone: the cause in a word, not the error with the data
	// file's path (the log has that).
	cause := "its last commit failed"
	switch {
	case errors.Is(err, syscall.ENOSPC):
		cause = "no space left on device"
	case errors.Is(err, syscall.EDQUOT):
		cause = "disk quota exceeded"
	case errors.Is(err, syscall.EROFS):
		cause = "read-only file system"
	case errors.Is(err, syscall.EIO):
		cause = "I/O error"
	}
	return fmt.Errorf("the data disk (data_dir) refuses writes: %s; no package is taken and no delivery recorded until a write succeeds again (tried every %s)", cause, writeProbeEvery)
}

// watchWrites tries a write every writeProbeEvery while the data file refuses
// them, until the gateway drains, and logs when that begins and ends. Without
// it a node that readiness took out of its load balancer got no write to find
// out that the disk has room again, and stayed out. Nothing is written while
// commits succeed: real writes say so at no cost.
func (g *Gateway) watchWrites(db refusing, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(writeProbeEvery)
	defer t.Stop()
	var was error
	for {
		select {
		case <-g.draining:
			return
		case <-t.C:
		}
		err := db.CommitStats().Refused
		if err != nil {
			if was == nil {
				g.Log.Error("the data disk refuses writes: not ready until a write succeeds", "err", err)
			}
			if db.ProbeWrite() == nil {
				err = nil
			}
		}
		if err == nil && was != nil {
			g.Log.Info("the data disk takes writes again: ready")
		}
		was = err
	}
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
