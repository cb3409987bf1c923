package loadtest

// What the open-loop mode reads from the machine: the process's bytes written
// (/proc/self/io), its peak RSS (/proc/self/status VmHWM, reset per step through
// /proc/self/clear_refs), the data disk's completed flush requests and bytes
// written (/proc/diskstats, kernel ≥ 5.5), the load average, and a write+fsync probe of the
// data folder as the machine's own floor. Everything is best effort: what cannot
// be read is reported as unavailable, never guessed.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/amtsbote/amtsbote/internal/cputime"
)

// procWriteBytes is write_bytes of /proc/self/io: bytes this process caused to be
// sent to the storage layer.
func procWriteBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	return procField(b, "write_bytes:")
}

// procStatusKB reads a "Vm…:  123 kB" line of /proc/self/status, in bytes.
func procStatusKB(key string) (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	v, ok := procField(b, key+":")
	return v * 1024, ok
}

func procField(b []byte, key string) (int64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			v, err := strconv.ParseInt(f[0], 10, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// resetPeakRSS makes VmHWM start again from the current RSS (clear_refs 5).
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// dataDisk finds the block device holding dir as /proc/diskstats names it (the
// whole disk when dir is on a partition, since the disk counts the flushes).
func dataDisk(dir string) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return "", err
	}
	dev := uint64(st.Dev) //nolint:unconvert // Dev's type differs between architectures
	major := (dev>>8)&0xfff | (dev>>32)&^uint64(0xfff)
	minor := dev&0xff | (dev>>12)&^uint64(0xff)
	if major == 0 {
		return "", fmt.Errorf("%s is on a file system without a block device (%d:%d: overlay, tmpfs or btrfs subvolume)", dir, major, minor)
	}
	sys := fmt.Sprintf("/sys/dev/block/%d:%d", major, minor)
	real, err := filepath.EvalSymlinks(sys)
	if err != nil {
		return "", fmt.Errorf("device %d:%d: %w", major, minor, err)
	}
	if _, err := os.Stat(filepath.Join(real, "partition")); err == nil {
		real = filepath.Dir(real)
	}
	return filepath.Base(real), nil
}

// diskCounters are two of a disk's counters in /proc/diskstats.
type diskCounters struct {
	Flushes int64 // flush requests completed (kernel ≥ 5.5)
	// Bytes written to the device (sectors written × 512). Unlike a process's
	// write_bytes in /proc/PID/io it counts what reached the disk: on kernels
	// whose page cache keeps a file in large folios (ext4 since 6.16), a write
	// that dirties a clean folio charges the process the whole folio — up to
	// 2 MiB for one 4 KiB page (docs/performance.md, "Bytes from the disk").
	Bytes int64
}

// diskStats reads disk's counters from /proc/diskstats.
func diskStats(disk string) (diskCounters, error) {
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return diskCounters{}, err
	}
	return diskStatsFrom(b, disk)
}

// diskStatsFrom parses a /proc/diskstats line: major, minor, name, then the
// counters, of which the 7th is sectors written and the 16th flushes completed.
func diskStatsFrom(b []byte, disk string) (diskCounters, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[2] != disk {
			continue
		}
		if len(f) < 20 {
			return diskCounters{}, fmt.Errorf("/proc/diskstats has no flush fields for %s (kernel < 5.5)", disk)
		}
		sectors, err := strconv.ParseInt(f[9], 10, 64)
		if err != nil {
			return diskCounters{}, fmt.Errorf("/proc/diskstats: %s: sectors written: %w", disk, err)
		}
		flushes, err := strconv.ParseInt(f[18], 10, 64)
		if err != nil {
			return diskCounters{}, fmt.Errorf("/proc/diskstats: %s: flushes: %w", disk, err)
		}
		return diskCounters{Flushes: flushes, Bytes: sectors * 512}, nil
	}
	return diskCounters{}, fmt.Errorf("%s not in /proc/diskstats", disk)
}

// probe writes 4 KiB and fsyncs them to a file in the data folder at a fixed
// interval, for as long as it runs: the latency the disk gives anyone at the
// moment, measured in the same run as the gateway.
type probe struct {
	f     *os.File
	buf   []byte
	every time.Duration

	mu   sync.Mutex
	lat  []time.Duration
	errs int
	stop chan struct{}
	wg   sync.WaitGroup
}

const probeBytes = 4 << 10

func newProbe(dir string, every time.Duration) (*probe, error) {
	f, err := os.OpenFile(filepath.Join(dir, "bench-fsync-probe.dat"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	buf := bytes.Repeat([]byte("amtsbote fsync probe\n"), probeBytes/21+1)[:probeBytes]
	return &probe{f: f, buf: buf, every: every}, nil
}

// pressureSome is the "some" total of /proc/pressure/<res> (cpu, io): microseconds
// in which at least one task on the machine waited for the resource; -1: no PSI.
func pressureSome(res string) int64 {
	b, err := os.ReadFile("/proc/pressure/" + res)
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, "some ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "total="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return -1
				}
				return n
			}
		}
	}
	return -1
}

// processCPU is the user and system CPU time of this process so far (0 where
// it cannot be read).
func processCPU() time.Duration {
	used, _ := cputime.Process()
	return used
}

// start runs the probe until end; a nil probe does nothing.
func (p *probe) start() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.lat, p.errs = nil, 0
	p.mu.Unlock()
	_ = p.f.Truncate(0) // bounded size; outside the measured window
	p.stop = make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(p.every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			t0 := time.Now()
			_, err := p.f.Write(p.buf)
			if err == nil {
				err = p.f.Sync()
			}
			d := time.Since(t0)
			p.mu.Lock()
			if err != nil {
				p.errs++
			} else {
				p.lat = append(p.lat, d)
			}
			p.mu.Unlock()
		}
	}()
}

// end stops the probe and returns the latencies of the writes since start.
func (p *probe) end() (lat []time.Duration, errs int) {
	if p == nil {
		return nil, 0
	}
	close(p.stop)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lat, p.errs
}

func (p *probe) close() {
	name := p.f.Name()
	_ = p.f.Close()
	_ = os.Remove(name)
}

// gcSample is the runtime's own accounting of garbage collection at one moment:
// CPU time spent on it (marking, assists, pauses; estimated by the runtime),
// completed cycles, and bytes allocated on the heap so far (what the collector has
// to clean up; unlike a rate or a CPU time it does not depend on how busy the
// machine is, so it shows small changes that a noisy machine's CPU figures hide).
// With the presigned packages off the heap (offheap.go) the figures are the
// gateway's.
type gcSample struct {
	cpu       time.Duration
	cycles    uint64
	allocated uint64
}

func gcStats() gcSample {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	var g gcSample
	if s[0].Value.Kind() == metrics.KindFloat64 {
		g.cpu = time.Duration(s[0].Value.Float64() * float64(time.Second))
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		g.cycles = s[1].Value.Uint64()
	}
	if s[2].Value.Kind() == metrics.KindUint64 {
		g.allocated = s[2].Value.Uint64()
	}
	return g
}

// cpuTimes is the machine's CPU time by kind, summed over its CPUs, from the
// "cpu" line of /proc/stat (in clock ticks); ok false where it cannot be read.
type cpuTimes struct {
	busy, idle, iowait, steal uint64
	ok                        bool
}

func machineCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	return parseProcStat(string(b))
}

// parseProcStat reads the first line: cpu user nice system idle iowait irq
// softirq steal (guest time is counted in user already).
func parseProcStat(s string) cpuTimes {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return cpuTimes{}
		}
		v[i] = n
	}
	return cpuTimes{busy: v[0] + v[1] + v[2] + v[5] + v[6], idle: v[3], iowait: v[4], steal: v[7], ok: true}
}

// cpuSplit is how the machine's CPU time between a and b divided: the shares
// busy, idle, waiting for I/O (idle while a flush was in flight) and stolen by
// the hypervisor.
type cpuSplit struct{ Busy, Idle, IOWait, Steal float64 }

func splitOf(a, b cpuTimes) (cpuSplit, bool) {
	if !a.ok || !b.ok {
		return cpuSplit{}, false
	}
	busy, idle, iow, steal := float64(b.busy-a.busy), float64(b.idle-a.idle), float64(b.iowait-a.iowait), float64(b.steal-a.steal)
	total := busy + idle + iow + steal
	if total <= 0 {
		return cpuSplit{}, false
	}
	return cpuSplit{busy / total, idle / total, iow / total, steal / total}, true
}
