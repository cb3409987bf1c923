package loadtest

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/trace"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/amtsbote/amtsbote/internal/procs"
	"github.com/amtsbote/amtsbote/internal/progress"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/submission"
)

// OpenOptions of an open-loop run: a ladder of fixed arrival rates against one
// loopback gateway.
type OpenOptions struct {
	Rates          []Rate        // one step each, in this order (ParseRates)
	Step           time.Duration // length of each step (default 20 s)
	Arrivals       string        // ArrivalConstant or ArrivalPoisson (default)
	Seed           uint64        // of the Poisson arrivals (default 1)
	MaxInFlight    int           // safety cap on requests in flight (default 4096); arrivals beyond it are dropped and reported
	Elements       int           // elements per package (~120 gives ~10 KB)
	Gateway                      // the loopback gateway's settings
	Floor          time.Duration // probe alone before the ladder (default 2 s; negative: none)
	ProbeEvery     time.Duration // write+fsync probe interval (default 10 ms; negative: no probe, to see what the probe costs)
	RequestTimeout time.Duration // per request (default 30 s); an answer later counts as "timeout"
	Drain          time.Duration // after the ladder, wait this long at most for the backlog to be delivered (default 60 s)
	// BaselinePackages bounds the packages verified for each of the two
	// baselines (default 2,000; fewer when a ladder of fixed rates sends fewer).
	// Tests set it low: signing and verifying 4,000 under the race detector took
	// a minute.
	BaselinePackages int
	Progress         io.Writer // one line per second while running; nil: silent
	// Trace, when set, receives an execution trace of the ladder (go tool trace;
	// -pprof=sched, sync, syscall show where requests waited at a given rate).
	Trace io.Writer
}

// OpenResult of an open-loop run.
type OpenResult struct {
	Arrivals     string
	Seed         uint64
	Step         time.Duration
	PackageBytes int
	// ReceiptBytes is the size of an Eingangsbestaetigung of the run (a
	// Zustellbestaetigung is the same document with one field more); the issue's
	// budget for bytes written is 3 × (package + both receipts).
	ReceiptBytes   int
	CPUs, Procs    int // procs.CPUs and GOMAXPROCS (one more: internal/procs)
	MaxInFlight    int
	Workers        int
	VerifySlots    int
	Yields         int64     // how often intake left slots to delivery (limits.yield_backlog)
	YieldOff       bool      // intake never would
	LoadBefore     string    // /proc/loadavg before signing
	LoadAfter      string    // after the ladder
	VerifyPerSec   float64   // the mean of VerifyRates
	VerifyRates    []float64 // the baseline before the ladder and after the drain
	PresignedBytes int64     // the signed packages held in memory at the start of the ladder

	Disk       string // data disk as in /proc/diskstats; empty: flushes and disk bytes not available
	FlushNote  string // why flushes are not available, or what they include
	BytesNote  string // empty when /proc/self/io write_bytes is read
	RSSNote    string // how peak RSS is to be read
	Floor      ProbeStats
	FloorFlush float64 // disk flushes/s with only the probe running (and whatever else runs on the machine)
	FloorBytes float64 // bytes/s the disk wrote meanwhile

	ProbeOff bool // run without the probe: no floor, no relative target

	Steps        []Step
	Drained      bool
	FinalBacklog int64
	DrainSeconds float64
}

// ProbeStats of the write+fsync probe over one window.
type ProbeStats struct {
	N, Errors     int
	P50, P99, Max time.Duration
}

// Step is one rate of the ladder. Latencies are of the arrivals scheduled in the
// step (answered whenever); rates, gaps and counters are of the step's window.
type Step struct {
	Rate            float64 // arrivals per second
	Share           float64 // the share of the baseline before the ladder that Rate is; 0: a fixed rate
	Seconds         float64
	latencyStats                  // Scheduled, Sent, Dropped, Created, P50…Max, Errors, MaxLag
	AcceptedPerSec  float64       // 201 answers received in the window
	DeliveredPerSec float64       // deliveries in the window
	BacklogStart    int64         // received minus delivered, at the start
	BacklogEnd      int64         // and at the end
	NoAnswerGap     time.Duration // longest time without any answer while requests were outstanding
	DeliveryGap     time.Duration // longest time without a delivery while packages waited
	Probe           ProbeStats    // the write+fsync probe in the same window
	Flushes         int64         // disk flush requests completed in the window (whole disk), -1: unknown
	FlushesPerPkg   float64       // (Flushes − floor rate × window) / accepted; NaN: unknown
	// DiskBytesPerPkg is what the data disk wrote in the window less the floor's
	// rate, per accepted package (NaN: unknown): the figure the bytes target is
	// judged by. BytesPerPkg is the process's own count, (write_bytes − the
	// probe's bytes) / accepted, which charges whole page-cache folios (sysstat.go)
	// and so overstates on kernels with large folios.
	DiskBytes       int64 // bytes the data disk wrote in the window (whole disk), -1: unknown
	DiskBytesPerPkg float64
	BytesPerPkg     float64       // NaN: unknown
	PeakRSS         int64         // VmHWM at the end of the window (reset at its start when possible)
	MaxInFlight     int           // requests in flight at once, at most
	CPU             float64       // CPU seconds of the whole process (gateway and bench) per second of the window
	CPUPerPkg       time.Duration // CPU time of the process per 201; 0: none accepted
	GCShare         float64       // the part of CPU the runtime counts as garbage collection
	CPUWait, IOWait float64       // share of the window in which some task on the machine waited for CPU, for I/O (PSI "some"); -1: unknown
	Ratio           float64       // DeliveredPerSec / VerifyPerSec
	Stages          []StageTimes  // inside the gateway over the step's window, from its own histograms (gwhist.go)
	Limit           time.Duration // the p99 the latency target allows in this step
	OK              bool          // the target holds
	Why             []string      // why not
}

// Latency target of the ladder.
const (
	targetP99        = 25 * time.Millisecond
	probeFloorP99    = 10 * time.Millisecond // above this probe p99, the target is relative to it
	probeFactor      = 2.5
	backlogTolerance = 0.05 // growth of received−delivered within a step allowed, as a share of its arrivals (at least 10)
)

// judge applies the target: p99 < 25 ms, or ≤ 2.5 × the probe's p99 when that is
// above 10 ms; no errors (dropped arrivals included); no growing backlog.
func (s *Step) judge() {
	s.Limit = targetP99
	relative := s.Probe.P99 > probeFloorP99
	if relative {
		s.Limit = time.Duration(probeFactor * float64(s.Probe.P99))
	}
	s.Why = nil
	if relative && s.P99 > s.Limit || !relative && s.P99 >= s.Limit {
		s.Why = append(s.Why, fmt.Sprintf("p99 %s > %s", fmtDur(s.P99), fmtDur(s.Limit)))
	}
	if n := errCount(s.Errors); n > 0 {
		s.Why = append(s.Why, fmt.Sprintf("%d errors", n))
	}
	if g := s.BacklogEnd - s.BacklogStart; float64(g) > max(10, backlogTolerance*float64(s.Scheduled)) {
		s.Why = append(s.Why, fmt.Sprintf("backlog +%d", g))
	}
	if s.Sent == 0 {
		s.Why = append(s.Why, "nothing sent")
	}
	s.OK = len(s.Why) == 0
}

func errCount(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// RunOpen performs one open-loop measurement: a gateway on loopback, the
// verification-only baseline, the probe alone (the floor), then each rate for
// opt.Step, then the drain.
func RunOpen(ctx context.Context, o OpenOptions) (*OpenResult, error) {
	if len(o.Rates) == 0 {
		return nil, fmt.Errorf("open loop: no rates")
	}
	if o.Step <= 0 {
		o.Step = 20 * time.Second
	}
	if o.Arrivals == "" {
		o.Arrivals = ArrivalPoisson
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 4096
	}
	if o.Elements <= 0 {
		o.Elements = 120
	}
	if o.Floor == 0 {
		o.Floor = 2 * time.Second
	}
	if o.ProbeEvery == 0 {
		o.ProbeEvery = 10 * time.Millisecond
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.Drain <= 0 {
		o.Drain = 60 * time.Second
	}
	// Refused before the gateway starts and the baseline runs: the ladder is
	// planned after the baseline.
	if err := checkArrivals(o.Arrivals); err != nil {
		return nil, err
	}
	// Packages for the baseline: as many as the ladder sends, at most 2,000 (and
	// 2,000 when a step is a share of the baseline, whose size is not known yet).
	keep := 2000
	if o.BaselinePackages > 0 {
		keep = o.BaselinePackages
	}
	if !slices.ContainsFunc(o.Rates, func(r Rate) bool { return r.Share > 0 }) {
		keep = max(1, min(keep, expectedArrivals(o.Rates, o.Step)))
	}
	if o.DataDir == "" {
		d, err := os.MkdirTemp("", "amtsbote-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		o.DataDir = d
	}
	res := &OpenResult{Arrivals: o.Arrivals, Seed: o.Seed, Step: o.Step, CPUs: procs.CPUs(), Procs: runtime.GOMAXPROCS(0), MaxInFlight: o.MaxInFlight,
		LoadBefore: loadAvg()}

	// Store batch size and delay stay the gateway's defaults unless set: an open
	// loop has no fixed number of clients to size them by.
	b, err := startBench(ctx, o.Gateway)
	if err != nil {
		return nil, err
	}
	defer b.close()
	g := b.g
	res.Workers = g.Config.Delivery.Workers
	res.VerifySlots = g.Pipeline.Slots.Size()

	// Baseline in the same run: verification alone, one goroutine per CPU, on
	// packages of the ladder's shape signed for it and off the heap like the
	// ladder's; before the ladder and again after the drain (as the closed loop
	// does: baseline). The ladder is planned after it: a step may be a share of it.
	progressf(o.Progress, "signing %d packages for the baseline...\n", keep)
	basePre, err := b.presign(keep, o.Elements, procs.CPUs())
	if err != nil {
		return nil, err
	}
	var base baseline
	err = base.measure(b, basePre.docs, procs.CPUs())
	basePre.close()
	if err != nil {
		return nil, err
	}
	// Whatever ends the run from here, its report (printed on errors too) is
	// against every baseline measured by then.
	defer res.setBaseline(&base)

	// The whole schedule: it says how many packages to sign.
	rng := rand.New(rand.NewPCG(o.Seed, 0x616d7473626f7465))
	plan := make([][]time.Duration, len(o.Rates))
	rates := make([]float64, len(o.Rates))
	total := 0
	for i, r := range o.Rates {
		rates[i] = r.perSec(base.rates[0])
		offs, err := arrivalOffsets(o.Arrivals, rates[i], o.Step, rng)
		if err != nil {
			return nil, err
		}
		plan[i] = offs
		total += len(offs)
	}
	if total == 0 {
		return nil, fmt.Errorf("open loop: no arrivals in the ladder (rates × step < 1)")
	}
	progressf(o.Progress, "signing %d packages for the ladder %s/s...\n", total, ratesLine(rates))
	pre, err := b.presign(total, o.Elements, procs.CPUs())
	if err != nil {
		return nil, err
	}
	defer pre.close()
	docs := pre.docs
	res.PackageBytes = len(docs[0])
	for _, d := range docs {
		res.PresignedBytes += int64(len(d))
	}

	clk := realClock{}
	var received, delivered atomic.Int64
	deliveryGaps := &lockedGaps{clk: clk}
	g.Broker.Observe(func(_ *submission.Submission, e submission.Event) {
		switch e.Type {
		case submission.EventReceived:
			received.Add(1)
			deliveryGaps.up()
		case submission.EventDelivered:
			delivered.Add(1)
			deliveryGaps.down()
		}
	})

	pr, err := newProbe(o.DataDir, o.ProbeEvery)
	if err != nil {
		return nil, err
	}
	defer pr.close()
	if o.ProbeEvery < 0 {
		pr = nil // start and end do nothing
		res.ProbeOff = true
	}
	res.Disk, err = dataDisk(o.DataDir)
	if err == nil {
		if _, err = diskStats(res.Disk); err != nil {
			res.Disk = ""
		}
	}
	if err != nil {
		res.FlushNote = "flushes and disk bytes unavailable (" + err.Error() + "): the process's bytes only"
	} else {
		res.FlushNote = "flush requests completed on " + res.Disk + " (/proc/diskstats): the whole disk, so other processes count too; per package after subtracting the floor's rate (the disk's flushes/s before the ladder, probe running alone)"
	}
	disk := func() diskCounters {
		if res.Disk != "" {
			if c, err := diskStats(res.Disk); err == nil {
				return c
			}
		}
		return diskCounters{-1, -1} // unknown
	}
	if _, ok := procWriteBytes(); !ok {
		res.BytesNote = "/proc/self/io unreadable: bytes written unknown"
	}
	if resetPeakRSS() {
		res.RSSNote = "peak RSS per step (VmHWM reset at each step's start)"
	} else {
		res.RSSNote = "peak RSS since the process started (VmHWM could not be reset)"
	}

	// The floor: the probe alone, before any load.
	if o.Floor > 0 {
		f0, t0 := disk(), time.Now()
		pr.start()
		clk.SleepUntil(ctx, t0.Add(o.Floor))
		lat, errs := pr.end()
		res.Floor = probeStats(lat, errs)
		if f1 := disk(); f0.Flushes >= 0 && f1.Flushes >= 0 {
			secs := time.Since(t0).Seconds()
			res.FloorFlush = float64(f1.Flushes-f0.Flushes) / secs
			res.FloorBytes = float64(f1.Bytes-f0.Bytes) / secs
		}
	}

	transport := &http.Transport{MaxIdleConnsPerHost: o.MaxInFlight, MaxConnsPerHost: 0, IdleConnTimeout: time.Minute}
	defer transport.CloseIdleConnections()
	client := &portal.Client{BaseURL: g.URL(), HTTP: &http.Client{Transport: transport}}
	var receiptBytes atomic.Int64
	rec := newRecorder(clk, o.MaxInFlight)
	disp := &dispatcher{clk: clk, rec: rec, spawn: func(f func()) { go f() }, send: func(ctx context.Context, seq int) (int, error) {
		rctx, cancel := context.WithTimeout(ctx, o.RequestTimeout)
		defer cancel()
		r, err := client.SubmitRaw(rctx, docs[seq])
		pre.sent(seq, err)
		if err != nil {
			return 0, err
		}
		if r.Status == http.StatusCreated {
			receiptBytes.CompareAndSwap(0, int64(len(r.Receipt)))
		}
		return r.Status, nil
	}}

	if o.Trace != nil {
		if err := trace.Start(o.Trace); err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
		defer trace.Stop()
	}
	for i, rate := range rates {
		if ctx.Err() != nil {
			break
		}
		step := rec.addStep(len(plan[i]))
		resetPeakRSS()
		deliveryGaps.cut()
		w0 := rec.cut()
		f0 := disk()
		b0, _ := procWriteBytes()
		c0, pc0, pi0 := processCPU(), pressureSome("cpu"), pressureSome("io")
		gc0 := gcStats().cpu
		r0, d0 := received.Load(), delivered.Load()
		h0 := snapHists(g.Metrics())
		pr.start()
		t0 := clk.Now()
		stopProgress := openProgress(o.Progress, t0, i, len(o.Rates), rate, rec, &received, &delivered)
		disp.runStep(ctx, step, t0, plan[i])
		clk.SleepUntil(ctx, t0.Add(o.Step))
		t1 := clk.Now()
		w1 := rec.cut()
		dGap := deliveryGaps.cut()
		r1, d1 := received.Load(), delivered.Load()
		plat, perrs := pr.end()
		f1 := disk()
		b1, _ := procWriteBytes()
		c1, pc1, pi1 := processCPU(), pressureSome("cpu"), pressureSome("io")
		gc1 := gcStats().cpu
		rss, _ := procStatusKB("VmHWM")
		h1 := snapHists(g.Metrics())
		stopProgress()

		secs := t1.Sub(t0).Seconds()
		s := Step{Rate: rate, Share: o.Rates[i].Share, Seconds: secs,
			AcceptedPerSec: float64(w1.created-w0.created) / secs, DeliveredPerSec: float64(d1-d0) / secs,
			BacklogStart: r0 - d0, BacklogEnd: r1 - d1, NoAnswerGap: w1.noAnswerGap, DeliveryGap: dGap,
			Probe: probeStats(plat, perrs), PeakRSS: rss, MaxInFlight: w1.maxInFlight,
			Flushes: -1, FlushesPerPkg: math.NaN(), DiskBytes: -1, DiskBytesPerPkg: math.NaN(), BytesPerPkg: math.NaN(), Stages: stageTimes(h0, h1)}
		accepted := float64(w1.created - w0.created)
		s.CPU = (c1 - c0).Seconds() / secs
		if c1 > c0 {
			s.GCShare = float64(gc1-gc0) / float64(c1-c0)
		}
		s.CPUWait, s.IOWait = psiShare(pc0, pc1, secs), psiShare(pi0, pi1, secs)
		if accepted > 0 {
			s.CPUPerPkg = time.Duration(float64(c1-c0) / accepted)
		}
		if f0.Flushes >= 0 && f1.Flushes >= 0 {
			s.Flushes, s.DiskBytes = f1.Flushes-f0.Flushes, f1.Bytes-f0.Bytes
			if accepted > 0 {
				s.FlushesPerPkg = (float64(s.Flushes) - res.FloorFlush*secs) / accepted
				s.DiskBytesPerPkg = (float64(s.DiskBytes) - res.FloorBytes*secs) / accepted
			}
		}
		if res.BytesNote == "" && accepted > 0 {
			s.BytesPerPkg = float64(b1-b0-int64(len(plat)+perrs)*probeBytes) / accepted
		}
		res.Steps = append(res.Steps, s)
	}
	disp.wait()
	if o.Trace != nil {
		trace.Stop() // the ladder only: not the drain, nor the signing and baseline after it
	}
	for i := range res.Steps {
		res.Steps[i].latencyStats = rec.stats(i)
		res.Steps[i].judge()
	}

	// The drain: every package accepted should reach the office.
	dStart := time.Now()
	for delivered.Load() < received.Load() && time.Since(dStart) < o.Drain && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	res.DrainSeconds = time.Since(dStart).Seconds()
	res.Yields, res.YieldOff = g.Yield.Times(), g.Yield == nil
	res.FinalBacklog = received.Load() - delivered.Load()
	res.Drained = res.FinalBacklog <= 0
	res.LoadAfter = loadAvg()
	res.ReceiptBytes = int(receiptBytes.Load())
	if n := b.hookErrs.Load(); n > 0 {
		return res, fmt.Errorf("%d webhooks failed the receiver's signature check", n)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	// The ladder's packages gave their pages back as they were answered (peak RSS
	// per step is the process's); the baseline after the drain verifies as many
	// packages of the same shape, signed now and off the heap like the others.
	pre2, err := b.presign(keep, o.Elements, procs.CPUs())
	if err != nil {
		return res, err
	}
	defer pre2.close()
	settle(2 * time.Second)
	if err := base.measure(b, pre2.docs, procs.CPUs()); err != nil {
		return res, err
	}
	return res, nil
}

// setBaseline sets the baseline figures and each step's delivered / verify-only
// from the measurements in bl.
func (r *OpenResult) setBaseline(bl *baseline) {
	r.VerifyRates, r.VerifyPerSec = bl.rates, bl.mean()
	for i := range r.Steps {
		r.Steps[i].Ratio = r.Steps[i].DeliveredPerSec / r.VerifyPerSec
	}
}

func psiShare(a, b int64, secs float64) float64 {
	if a < 0 || b < 0 {
		return -1
	}
	return float64(b-a) / 1e6 / secs
}

func probeStats(lat []time.Duration, errs int) ProbeStats {
	s := slices.Clone(lat)
	slices.Sort(s)
	p := ProbeStats{N: len(s), Errors: errs, P50: quantile(s, 0.5), P99: quantile(s, 0.99)}
	if len(s) > 0 {
		p.Max = s[len(s)-1]
	}
	return p
}

func progressf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}

func openProgress(w io.Writer, start time.Time, i, n int, rate float64, rec *recorder, received, delivered *atomic.Int64) (stop func()) {
	return progress.EverySecond(w, func() string {
		rec.mu.Lock()
		inFlight, created := rec.inFlight, rec.created
		rec.mu.Unlock()
		return fmt.Sprintf("  step %d/%d %g/s  %5.1fs  in flight %d  201 %d  received %d  delivered %d\n",
			i+1, n, rate, time.Since(start).Seconds(), inFlight, created, received.Load(), delivered.Load())
	})
}

// Highest is the highest rate whose step met the target (0: none), and the lower
// rates that did not.
func (r *OpenResult) Highest() (rate float64, lowerFailed []float64) {
	for _, s := range r.Steps {
		if s.OK && s.Rate > rate {
			rate = s.Rate
		}
	}
	for _, s := range r.Steps {
		if !s.OK && s.Rate < rate {
			lowerFailed = append(lowerFailed, s.Rate)
		}
	}
	return rate, lowerFailed
}

// BytesBudget is the bound on bytes written per package: three times the
// package and its two receipts; 0 when no receipt was seen.
func (r *OpenResult) BytesBudget() float64 {
	if r.ReceiptBytes == 0 {
		return 0
	}
	return 3 * float64(r.PackageBytes+2*r.ReceiptBytes)
}

// Report writes the result for people: the setup, one row per step in two tables
// (latency and flow; cost per package), and the verdict.
func (r *OpenResult) Report(w io.Writer) {
	fmt.Fprintf(w, "amtsbote bench -open: %s arrivals (seed %d), steps of %s, packages of %d bytes, GOMAXPROCS %d on %d CPUs, %d delivery workers, %s, %s, cap %d in flight\n",
		r.Arrivals, r.Seed, r.Step, r.PackageBytes, r.Procs, r.CPUs, r.Workers, slotsText(r.VerifySlots), yieldText(r.YieldOff, r.Yields), r.MaxInFlight)
	fmt.Fprintf(w, "  load average before %s, after %s; %.1f MiB of presigned packages in memory at the start (off the Go heap, released as sent)\n",
		r.LoadBefore, r.LoadAfter, float64(r.PresignedBytes)/(1<<20))
	fmt.Fprintf(w, "  baseline (same run): signature verification alone %.0f /s%s\n", r.VerifyPerSec, ratesText(r.VerifyRates))
	switch {
	case r.Floor.N > 0:
		fmt.Fprintf(w, "  floor (probe alone before the ladder): write+fsync 4 KiB p50 %s p99 %s max %s", fmtDur(r.Floor.P50), fmtDur(r.Floor.P99), fmtDur(r.Floor.Max))
		if r.Disk != "" {
			fmt.Fprintf(w, "; %s %.0f flushes/s, %.0f KiB/s", r.Disk, r.FloorFlush, r.FloorBytes/1024)
		}
		fmt.Fprintln(w)
	case r.ProbeOff:
		fmt.Fprint(w, "  probe off (-probe 0): the target is p99 < 25 ms")
		if r.Disk != "" {
			fmt.Fprintf(w, "; floor: %s %.0f flushes/s, %.0f KiB/s before the ladder", r.Disk, r.FloorFlush, r.FloorBytes/1024)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "  latency: scheduled send time to answer; 201/s and deliv/s: in the step's window; backlog: received − delivered at start→end")
	fmt.Fprintf(w, "  %7s %6s %7s %7s %8s %8s %8s %8s %13s %8s %8s %20s  %s\n",
		"rate/s", "sent", "201/s", "deliv/s", "p50", "p99", "p99.9", "max", "backlog", "no-ans", "dlv-gap", "probe p50/p99/max", "target")
	for _, s := range r.Steps {
		verdict, probe := "ok", fmt.Sprintf("%s/%s/%s", fmtDur(s.Probe.P50), fmtDur(s.Probe.P99), fmtDur(s.Probe.Max))
		if r.ProbeOff {
			probe = "off"
		}
		if !s.OK {
			verdict = "FAIL: " + strings.Join(s.Why, ", ")
		}
		fmt.Fprintf(w, "  %7g %6d %7.1f %7.1f %8s %8s %8s %8s %13s %8s %8s %20s  %s\n",
			s.Rate, s.Sent, s.AcceptedPerSec, s.DeliveredPerSec, fmtDur(s.P50), fmtDur(s.P99), fmtDur(s.P999), fmtDur(s.Max),
			fmt.Sprintf("%d→%d", s.BacklogStart, s.BacklogEnd), fmtDur(s.NoAnswerGap), fmtDur(s.DeliveryGap),
			probe, verdict)
	}
	fmt.Fprintf(w, "  %7s %8s %9s %8s %9s %6s %8s %5s %8s %8s %9s %9s %9s %10s  %s\n",
		"rate/s", "flushes", "flush/pkg", "KiB/pkg", "proc KiB", "cpu", "cpu/pkg", "gc", "cpu-wait", "io-wait", "peak RSS", "in flight", "gen. lag", "dlv/verify", "errors")
	for _, s := range r.Steps {
		fl := "n/a"
		if s.Flushes >= 0 {
			fl = fmt.Sprint(s.Flushes)
		}
		fmt.Fprintf(w, "  %7g %8s %9s %8s %9s %6.2f %8s %5s %8s %8s %9s %9d %9s %10.3f  %s\n", s.Rate, fl, fmtFloat(s.FlushesPerPkg, 2), fmtFloat(s.DiskBytesPerPkg/1024, 1), fmtFloat(s.BytesPerPkg/1024, 1),
			s.CPU, fmtDur(s.CPUPerPkg), fmtPct(s.GCShare), fmtPct(s.CPUWait), fmtPct(s.IOWait), fmt.Sprintf("%.0fM", float64(s.PeakRSS)/(1<<20)), s.MaxInFlight, fmtDur(s.MaxLag), s.Ratio, fmtErrors(s.Errors))
	}
	writeStages(w, r.Steps)
	fmt.Fprintf(w, "  flushes: %s\n", r.FlushNote)
	if r.Disk != "" {
		fmt.Fprintf(w, "  KiB/pkg: bytes written to %s (/proc/diskstats sectors written: the whole disk, journal included), per 201 after subtracting the floor's rate\n", r.Disk)
	}
	if r.BytesNote != "" {
		fmt.Fprintf(w, "  proc KiB: %s\n", r.BytesNote)
	} else {
		fmt.Fprintln(w, "  proc KiB: /proc/self/io write_bytes of the whole process minus the probe's writes, per 201; it charges a whole page-cache folio when a write dirties a clean one, so with large folios (ext4 on Linux >= 6.16) it can be many times the disk's figure")
	}
	if budget := r.BytesBudget(); budget > 0 {
		fmt.Fprintf(w, "  bytes target: KiB/pkg (the disk's; the process's where the disk's is unknown) <= 3 x (package %d B + 2 receipts of %d B) = %.1f KiB\n", r.PackageBytes, r.ReceiptBytes, budget/1024)
	}
	fmt.Fprintln(w, "  cpu: CPU seconds of the whole process (gateway and bench) per second, and per 201; gc: the runtime's share of it for garbage collection (the presigned packages are off the heap); cpu-wait, io-wait: share of the step in which some task on the machine waited for CPU, for I/O (/proc/pressure, machine-wide: how busy the machine was)")
	fmt.Fprintf(w, "  memory: %s; gen. lag: how late the bench sent at worst (counted in latency all the same)\n", r.RSSNote)
	for _, s := range r.Steps {
		if s.Dropped > 0 {
			fmt.Fprintf(w, "  CAP HIT at %g/s: %d arrivals dropped (more than %d in flight)\n", s.Rate, s.Dropped, r.MaxInFlight)
		}
	}
	if r.Drained {
		fmt.Fprintf(w, "  drain: every received package delivered %.1fs after the ladder\n", r.DrainSeconds)
	} else {
		fmt.Fprintf(w, "  drain: %d packages still undelivered %.0fs after the ladder\n", r.FinalBacklog, r.DrainSeconds)
	}
	rate, lower := r.Highest()
	crit := fmt.Sprintf("p99 < %s (or ≤ %.1f × probe p99 when that is > %s), no errors, backlog growth ≤ max(10, %.0f %% of arrivals)",
		fmtDur(targetP99), probeFactor, fmtDur(probeFloorP99), backlogTolerance*100)
	switch {
	case rate == 0:
		fmt.Fprintf(w, "highest rate meeting the target: none (%s)\n", crit)
	case len(lower) > 0:
		fmt.Fprintf(w, "highest rate meeting the target: %g/s (%s), but lower rates failed: %v\n", rate, crit, lower)
	default:
		fmt.Fprintf(w, "highest rate meeting the target: %g/s (%s)\n", rate, crit)
	}
	if line := r.targetLine(); line != "" {
		fmt.Fprintln(w, line)
	}
}

// TargetRate is issue #12's open-loop rate for this run: TargetShare of the
// baseline measured before the ladder (the one the ladder's shares are of); 0
// before that baseline exists.
func (r *OpenResult) TargetRate() float64 {
	if len(r.VerifyRates) == 0 {
		return 0
	}
	return TargetShare * r.VerifyRates[0]
}

// TargetMet says whether a step at TargetRate or above met the latency target,
// and which step the verdict is about: of the steps at or above that rate, the
// slowest that met it, else the slowest that ran there (the one nearest the
// target, whatever the ladder's order); nil when none ran there.
func (r *OpenResult) TargetMet() (bool, *Step) {
	t := r.TargetRate()
	var met, failed *Step
	for i := range r.Steps {
		s := &r.Steps[i]
		if t <= 0 || s.Rate < t {
			continue
		}
		best := &failed
		if s.OK {
			best = &met
		}
		if *best == nil || s.Rate < (*best).Rate {
			*best = s
		}
	}
	if met != nil {
		return true, met
	}
	return false, failed
}

// targetLine is the report's last line: the open-loop target, judged.
func (r *OpenResult) targetLine() string {
	t := r.TargetRate()
	if t <= 0 {
		return ""
	}
	head := fmt.Sprintf("open-loop target (issue #12) at >= %g x the baseline before the ladder (%.0f/s) = %.0f/s:", TargetShare, r.VerifyRates[0], t)
	met, s := r.TargetMet()
	switch {
	case met:
		return fmt.Sprintf("%s met at %g/s (p99 %s)", head, s.Rate, fmtDur(s.P99))
	case s != nil:
		return fmt.Sprintf("%s NOT met at %g/s (%s)", head, s.Rate, strings.Join(s.Why, ", "))
	default:
		return fmt.Sprintf("%s no step at that rate (add %gx to -rates)", head, TargetShare)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < 100*time.Microsecond: // the run queue's median is microseconds
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func fmtPct(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", v*100)
}

func fmtFloat(v float64, prec int) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func fmtErrors(m map[string]int) string {
	if errCount(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
