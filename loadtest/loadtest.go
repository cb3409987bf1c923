// Package loadtest measures the whole gateway on loopback: signed ~10 KB packages
// posted concurrently to a real gateway (HTTP, bbolt fsync, embedded JetStream,
// webhook delivery to a receiver that checks the signatures). It reports intake and
// delivery rates and latencies next to a baseline measured in the same run —
// signature verification alone on the same packages — because absolute numbers on
// shared machines vary too much to compare across runs.
//
// Run is the closed loop: a fixed number of clients, each waiting for its answer.
// RunOpen is the open loop (open.go): fixed arrival rates in a ladder of steps,
// latency from the scheduled send time, a write+fsync probe of the data disk as the
// same-run floor, and the cost per package in flushes, bytes, CPU and memory.
package loadtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/internal/procs"
	"github.com/amtsbote/amtsbote/internal/progress"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/submission"
)

// Options of one run.
type Options struct {
	N           int           // packages to submit
	Concurrency int           // concurrent portal connections
	Elements    int           // elements per package (~120 gives ~10 KB)
	Gateway                   // the loopback gateway's settings
	Timeout     time.Duration // for the whole run
	Progress    io.Writer     // one line per second while running; nil: silent
	// CPUProfile, when set, receives a CPU profile of the gateway's work: from the
	// first post to the last delivery (the portal's signing before is left out).
	CPUProfile io.Writer
	// Trace, when set, receives an execution trace of the same span (go tool trace:
	// where requests wait when the CPU is not the limit).
	Trace io.Writer
	// MemProfileBase and MemProfile, when set, receive the allocation profile at
	// the first post and after the last delivery: `go tool pprof -sample_index=
	// alloc_space -base BASE BINARY PROFILE` shows what the gateway's work allocated
	// (what drives garbage collection), without the portal's signing before.
	MemProfileBase, MemProfile io.Writer
}

// Result of one run.
type Result struct {
	N, Concurrency  int
	PackageBytes    int
	Accepted        int
	Delivered       int
	IntakeSeconds   float64 // first post to last 201
	DeliverSeconds  float64 // first post to last delivery
	AcceptedPerSec  float64
	DeliveredPerSec float64
	P50, P99, Max   time.Duration // intake latency (post to 201)
	VerifyPerSec    float64       // baseline: signature verification alone, same packages, same concurrency (mean of VerifyRates)
	VerifyRates     []float64     // the baseline before the gateway's run and after it
	Ratio           float64       // AcceptedPerSec / VerifyPerSec
	// DeliveredRatio is DeliveredPerSec / VerifyPerSec: the end-to-end
	// target (≥ 0.5 with ≥ 5,000 packages).
	DeliveredRatio float64
	CPUs, Procs    int // procs.CPUs and GOMAXPROCS (one more: internal/procs)
	Workers        int // the gateway's delivery workers
	VerifySlots    int // the gateway's verification slots (limits.verify_parallel)
	// Yields counts how often intake left slots to delivery (limits.yield_backlog);
	// YieldOff: it never would.
	Yields   int64
	YieldOff bool
	// CPUPerPkg is the process's CPU time (gateway, bench client and office) from
	// the first post to the last delivery, per delivered package. Steadier than a
	// rate on a shared machine: other tenants slow a run down more than they add
	// to its CPU time.
	CPUPerPkg time.Duration
	// VerifyCPUPerPkg is the baseline's CPU time per verified package.
	VerifyCPUPerPkg time.Duration
	// GCCPUPerPkg is the part of CPUPerPkg that the runtime counts as garbage
	// collection, and GCCycles the collections in the same span.
	GCCPUPerPkg time.Duration
	GCCycles    uint64
	// CPUsUsed is the process's CPU time over the same span's wall time: how
	// many of its CPUs it kept busy. Machine is how the machine's CPU time
	// divided meanwhile (/proc/stat; MachineOK false where unreadable): iowait
	// is CPU idle while a flush was in flight (docs/performance.md, "A
	// processor held by the flush").
	CPUsUsed  float64
	Machine   cpuSplit
	MachineOK bool
	// Stages: inside the gateway from the first post to the last delivery, from
	// its own histograms (gwhist.go).
	Stages []StageTimes
	// AllocPerPkg is what the whole process allocated on the heap per delivered
	// package in the same span, VerifyAllocPerPkg the baseline's per verification.
	AllocPerPkg, VerifyAllocPerPkg uint64
}

// Run performs one measurement.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.N <= 0 {
		o.N = 1000
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Elements <= 0 {
		o.Elements = 120
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if o.DataDir == "" {
		d, err := os.MkdirTemp("", "amtsbote-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		o.DataDir = d
	}

	// The gateway on its defaults (issue #12: measured as operators run it); a
	// closed loop sized its store batch and workers by the concurrency until
	// 2026-12-02, with no gain measured for it (docs/performance.md).
	b, err := startBench(ctx, o.Gateway)
	if err != nil {
		return nil, err
	}
	defer b.close()
	g, hookErrs := b.g, &b.hookErrs
	// Sign every package up front: the portal's signing cost is not the gateway's.
	pre, err := b.presign(o.N, o.Elements, procs.CPUs())
	if err != nil {
		return nil, err
	}
	defer pre.close()
	docs := pre.docs
	var base baseline
	res := &Result{N: o.N, Concurrency: o.Concurrency, PackageBytes: len(docs[0]), CPUs: procs.CPUs(), Procs: runtime.GOMAXPROCS(0), Workers: g.Config.Delivery.Workers, VerifySlots: g.Pipeline.Slots.Size()}

	// Baseline in the same run: verification alone, same packages, same concurrency;
	// measured before the gateway's run and again after it (baseline below).
	if err := base.measure(b, docs, o.Concurrency); err != nil {
		return nil, err
	}

	var delivered atomic.Int64
	lastDelivery := atomic.Int64{}
	g.Broker.Observe(func(_ *submission.Submission, e submission.Event) {
		if e.Type == submission.EventDelivered {
			delivered.Add(1)
			lastDelivery.Store(time.Now().UnixNano())
		}
	})

	client := &portal.Client{BaseURL: g.URL(), HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency}, Timeout: time.Minute}}
	lat := make([]time.Duration, o.N)
	var accepted atomic.Int64
	var firstErr atomic.Value
	var next atomic.Int64
	if o.CPUProfile != nil {
		if err := pprof.StartCPUProfile(o.CPUProfile); err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if o.Trace != nil {
		if err := trace.Start(o.Trace); err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
		defer trace.Stop()
	}
	if o.MemProfileBase != nil {
		if err := pprof.Lookup("allocs").WriteTo(o.MemProfileBase, 0); err != nil {
			return nil, fmt.Errorf("memory profile: %w", err)
		}
	}
	h0 := snapHists(g.Metrics())
	start, cpu0, m0 := time.Now(), processCPU(), machineCPU()
	gc0 := gcStats()
	stopProgress := closedProgress(o.Progress, start, o.N, &accepted, &delivered)
	parallel(o.Concurrency, func() {
		for ctx.Err() == nil {
			i := int(next.Add(1)) - 1
			if i >= len(docs) {
				return
			}
			t0 := time.Now()
			r, err := client.SubmitRaw(ctx, docs[i])
			lat[i] = time.Since(t0)
			// The packages stay mapped (not pre.sent): the baseline after the run
			// verifies them again.
			if err != nil || r.Status != http.StatusCreated {
				if err == nil {
					err = fmt.Errorf("status %d: %+v", r.Status, r.Problem)
				}
				firstErr.CompareAndSwap(nil, err)
				continue
			}
			accepted.Add(1)
		}
	})
	intakeEnd := time.Now()
	if err, _ := firstErr.Load().(error); err != nil {
		stopProgress()
		return nil, fmt.Errorf("submit: %w", err)
	}
	for delivered.Load() < accepted.Load() && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	cpu1, m1, end := processCPU(), machineCPU(), time.Now()
	gc1 := gcStats()
	h1 := snapHists(g.Metrics())
	stopProgress()
	// The profile and trace end here, at the last delivery, as -cpuprofile
	// promises: the deferred stops would let the baseline after the run into them
	// (half of a profile's samples were the bench's own verification).
	if o.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if o.Trace != nil {
		trace.Stop()
	}
	if o.MemProfile != nil {
		if err := pprof.Lookup("allocs").WriteTo(o.MemProfile, 0); err != nil {
			return nil, fmt.Errorf("memory profile: %w", err)
		}
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("timed out with %d of %d delivered", delivered.Load(), accepted.Load())
	}
	if n := hookErrs.Load(); n > 0 {
		return nil, fmt.Errorf("%d webhooks failed the receiver's signature check", n)
	}
	settle(2 * time.Second) // the gateway's last commits and acks are not the baseline's
	if err := base.measure(b, docs, o.Concurrency); err != nil {
		return nil, err
	}
	res.Accepted, res.Delivered = int(accepted.Load()), int(delivered.Load())
	res.Yields, res.YieldOff = g.Yield.Times(), g.Yield == nil
	res.IntakeSeconds = intakeEnd.Sub(start).Seconds()
	res.DeliverSeconds = time.Unix(0, lastDelivery.Load()).Sub(start).Seconds()
	res.AcceptedPerSec = float64(res.Accepted) / res.IntakeSeconds
	res.DeliveredPerSec = float64(res.Delivered) / res.DeliverSeconds
	slices.Sort(lat)
	res.P50, res.P99, res.Max = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]
	base.into(res)
	if res.Delivered > 0 {
		res.CPUPerPkg = (cpu1 - cpu0) / time.Duration(res.Delivered)
		res.GCCPUPerPkg = (gc1.cpu - gc0.cpu) / time.Duration(res.Delivered)
		res.AllocPerPkg = (gc1.allocated - gc0.allocated) / uint64(res.Delivered)
	}
	res.GCCycles = gc1.cycles - gc0.cycles
	if wall := end.Sub(start); wall > 0 {
		res.CPUsUsed = float64(cpu1-cpu0) / float64(wall)
	}
	res.Machine, res.MachineOK = splitOf(m0, m1)
	res.Stages = stageTimes(h0, h1)
	return res, nil
}

// Gateway is how the loopback gateway of a run (closed or open loop) is set up;
// zero values leave the gateway's defaults, as operators run it.
type Gateway struct {
	DataDir        string        // empty: a temporary folder
	BatchDelay     time.Duration // least time between two store commits (store.batch_delay)
	BatchSize      int           // writes that start a commit before BatchDelay is up (store.batch_size)
	Workers        int           // delivery workers (delivery.workers)
	PerOffice      int           // attempts per office at once (delivery.per_office)
	VerifyParallel int           // packages verified at once (limits.verify_parallel; negative: no bound, as before 2026-12-02)
	YieldBacklog   int           // limits.yield_backlog (negative: intake never yields to delivery)
}

// bench is a running loopback gateway with its office: a webhook receiver that
// verifies both signature header sets on every delivery and answers 200.
type bench struct {
	g        *gateway.Gateway
	hookErrs atomic.Int64 // webhooks that failed the receiver's check
	svcKey   string
	signer   *signing.Signer
	closers  []func()
}

func startBench(ctx context.Context, c Gateway) (_ *bench, err error) {
	b := &bench{}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	var secret atomic.Value
	secret.Store("")
	recv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := webhook.ReadVerified(r, secret.Load().(string), time.Now(), 5*time.Minute); err != nil {
			b.hookErrs.Add(1)
			http.Error(w, "bad", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() { _ = recv.Serve(ln) }()
	b.closers = append(b.closers, func() { _ = recv.Close() })

	cfg := config.Default()
	cfg.DataDir = c.DataDir
	cfg.Listen = "127.0.0.1:0"
	if c.BatchDelay > 0 {
		cfg.Store.BatchDelay = c.BatchDelay
	}
	if c.BatchSize > 0 {
		cfg.Store.BatchSize = c.BatchSize
	}
	if c.Workers > 0 {
		cfg.Delivery.Workers = c.Workers
	}
	cfg.Delivery.PerOffice = c.PerOffice
	cfg.Limits.VerifyParallel = c.VerifyParallel
	cfg.Limits.YieldBacklog = c.YieldBacklog
	cfg.Delivery.BackoffBase = 100 * time.Millisecond
	cfg.Offices = map[string]config.OfficeClient{gateway.DemoOfficeID: {Channels: map[string]config.Channel{channel.Webhook: {Endpoint: "http://" + ln.Addr().String() + "/hook"}}}}
	g, err := gateway.Start(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, err
	}
	b.g = g
	b.closers = append(b.closers, func() {
		sctx, c := context.WithTimeout(context.Background(), 20*time.Second)
		defer c()
		_ = g.Shutdown(sctx)
	})
	secret.Store(g.Config.Offices[gateway.DemoOfficeID].Channels[channel.Webhook].Secret)

	svc, err := g.Directory.Current().FindService("Meldung von Mängeln im Stadt- oder Gemeindegebiet")
	if err != nil {
		return nil, err
	}
	b.svcKey = svc.Key
	if b.signer, err = signing.LoadSigner(g.PKI.PortalKey, g.PKI.PortalCert); err != nil {
		return nil, err
	}
	return b, nil
}

// close stops the gateway, then the office, in that order.
func (b *bench) close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
	b.closers = nil
}

// sign makes n distinct signed packages of the given size, using `workers` goroutines.
func (b *bench) sign(n, elements, workers int) ([][]byte, error) {
	docs := make([][]byte, n)
	var next atomic.Int64
	var firstErr atomic.Value
	parallel(max(1, workers), func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= n {
				return
			}
			p := paket.Big(elements, 1)
			id := paket.NewMessageID()
			p.ID, p.Kopf.NachrichtID = "paket-"+id, id
			p.Kopf.Leistung.Schluessel = b.svcKey
			d, err := b.signer.Sign(p.Element())
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			docs[i] = d
		}
	})
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, err
	}
	return docs, nil
}

// presign signs n packages with workers goroutines and moves them off the heap
// (offheap.go), so that they do not change how often the gateway collects.
func (b *bench) presign(n, elements, workers int) (*presigned, error) {
	docs, err := b.sign(n, elements, workers)
	if err != nil {
		return nil, err
	}
	return newPresigned(docs)
}

// baseline is verification alone measured before the gateway's run and again
// after it. This VM's speed drifts by ±15 % within minutes (noisy neighbours): a
// single measurement before the run made the ratio swing with whatever the
// machine did in those few seconds; the mean of one on each side of the run is
// the same measure of the same code with half that exposure, and the report
// shows both, so a run whose machine changed under it can be seen as such.
type baseline struct {
	rates      []float64
	cpu        time.Duration
	alloc, pkg uint64
}

func (bl *baseline) measure(b *bench, docs [][]byte, concurrency int) error {
	c0, a0 := processCPU(), gcStats().allocated
	r, err := b.verifyRate(docs, concurrency)
	if err != nil {
		return err
	}
	bl.rates = append(bl.rates, r)
	bl.cpu += processCPU() - c0
	bl.alloc += gcStats().allocated - a0
	bl.pkg += uint64(len(docs))
	return nil
}

func (bl *baseline) mean() float64 {
	m := 0.0
	for _, r := range bl.rates {
		m += r / float64(len(bl.rates))
	}
	return m
}

// into sets the result's baseline figures: rates and CPU per verification as
// the mean of both measurements.
func (bl *baseline) into(res *Result) {
	res.VerifyRates, res.VerifyPerSec = bl.rates, bl.mean()
	res.VerifyCPUPerPkg = bl.cpu / time.Duration(bl.pkg)
	res.VerifyAllocPerPkg = bl.alloc / bl.pkg
	res.Ratio = res.AcceptedPerSec / res.VerifyPerSec
	res.DeliveredRatio = res.DeliveredPerSec / res.VerifyPerSec
}

// settle waits until the process is nearly idle (under 5 % of one CPU for 100 ms),
// at most max.
func settle(max time.Duration) {
	for end := time.Now().Add(max); time.Now().Before(end); {
		c0 := processCPU()
		time.Sleep(100 * time.Millisecond)
		if processCPU()-c0 < 5*time.Millisecond {
			return
		}
	}
}

// verifyRate is the baseline measured in the same run: signature verification
// alone of docs at the given concurrency, in packages per second.
func (b *bench) verifyRate(docs [][]byte, concurrency int) (float64, error) {
	verifier := signing.NewVerifier(b.g.Trust, signing.VerifyOptions{})
	vStart := time.Now()
	var next atomic.Int64
	var vErr atomic.Value
	parallel(concurrency, func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(docs) {
				return
			}
			if _, err := verifier.Verify(docs[i], signing.RolePortal); err != nil {
				vErr.Store(err)
			}
		}
	})
	if err, _ := vErr.Load().(error); err != nil {
		return 0, fmt.Errorf("baseline verify: %w", err)
	}
	return float64(len(docs)) / time.Since(vStart).Seconds(), nil
}

// ratesText shows the baseline's measurements before and after the run.
func ratesText(rates []float64) string {
	if len(rates) != 2 {
		return ""
	}
	return fmt.Sprintf("   (mean of %.0f before the run and %.0f after it)", rates[0], rates[1])
}

// slotsText names the gateway's verification slots for the report.
func slotsText(n int) string {
	if n == 0 {
		return "verification not bounded"
	}
	return fmt.Sprintf("%d verification slots", n)
}

// yieldText says whether intake left verification slots to delivery in the run.
func yieldText(off bool, n int64) string {
	if off {
		return "intake never yields to delivery"
	}
	return fmt.Sprintf("intake yielded to delivery %d times", n)
}

func parallel(n int, fn func()) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	wg.Wait()
}

func closedProgress(w io.Writer, start time.Time, n int, accepted, delivered *atomic.Int64) (stop func()) {
	return progress.EverySecond(w, func() string {
		return fmt.Sprintf("  %5.1fs  accepted %d/%d  delivered %d\n", time.Since(start).Seconds(), accepted.Load(), n, delivered.Load())
	})
}

// Report writes the result for people.
func (r *Result) Report(w io.Writer) {
	fmt.Fprintf(w, "amtsbote bench: %d packages of %d bytes, concurrency %d, GOMAXPROCS %d on %d CPUs, %d delivery workers, %s, %s\n", r.N, r.PackageBytes, r.Concurrency, r.Procs, r.CPUs, r.Workers, slotsText(r.VerifySlots), yieldText(r.YieldOff, r.Yields))
	fmt.Fprintf(w, "  accepted   %6d   %8.0f /s   (201 = fsynced in bbolt, receipt signed)\n", r.Accepted, r.AcceptedPerSec)
	fmt.Fprintf(w, "  delivered  %6d   %8.0f /s   (webhook confirmed, Zustellbestaetigung signed)\n", r.Delivered, r.DeliveredPerSec)
	fmt.Fprintf(w, "  intake latency   p50 %s   p99 %s   max %s\n", r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond))
	fmt.Fprintf(w, "  baseline (same run): signature verification alone %8.0f /s%s\n", r.VerifyPerSec, ratesText(r.VerifyRates))
	fmt.Fprintf(w, "  ratio accepted/verify-only: %.2f\n", r.Ratio)
	fmt.Fprintf(w, "  ratio delivered/verify-only: %.2f   (target >= 0.50 with >= 5000 packages)\n", r.DeliveredRatio)
	if r.CPUPerPkg > 0 && r.VerifyCPUPerPkg > 0 {
		fmt.Fprintf(w, "  CPU per package: %s end to end (gateway, client, office) against %s to verify one: %.2f verifications' worth\n",
			r.CPUPerPkg.Round(time.Microsecond), r.VerifyCPUPerPkg.Round(time.Microsecond), float64(r.CPUPerPkg)/float64(r.VerifyCPUPerPkg))
		fmt.Fprintf(w, "    of which garbage collection: %s (%.0f %%), %d collections (GOGC %s; the presigned packages are off the heap)\n",
			r.GCCPUPerPkg.Round(time.Microsecond), 100*float64(r.GCCPUPerPkg)/float64(r.CPUPerPkg), r.GCCycles, gogc())
	}
	if r.CPUsUsed > 0 {
		fmt.Fprintf(w, "  CPUs kept busy by the process: %.2f of %d", r.CPUsUsed, r.CPUs)
		if r.MachineOK {
			m := r.Machine
			fmt.Fprintf(w, "; the machine meanwhile %.0f %% busy, %.0f %% idle, %.0f %% idle in iowait (a flush in flight), %.0f %% stolen (/proc/stat)",
				100*m.Busy, 100*m.Idle, 100*m.IOWait, 100*m.Steal)
		}
		fmt.Fprintln(w)
	}
	if len(r.Stages) > 0 {
		fmt.Fprint(w, "  inside the gateway, p50/p99:")
		for _, st := range r.Stages {
			fmt.Fprintf(w, "  %s %s/%s", st.Name, st.fmt(st.P50), st.fmt(st.P99))
		}
		fmt.Fprintln(w, "   (its histograms: amtsbote_intake_stage_seconds, amtsbote_store_write_wait_seconds; run queue: the process's goroutines' wait for a CPU, /sched/latencies)")
	}
	if r.AllocPerPkg > 0 && r.VerifyAllocPerPkg > 0 {
		fmt.Fprintf(w, "  allocated per package: %d KiB end to end against %d KiB to verify one (steady from run to run, unlike the CPU figures)\n",
			r.AllocPerPkg>>10, r.VerifyAllocPerPkg>>10)
	}
}

// gogc is the collector's setting as the environment gives it.
func gogc() string {
	if v := os.Getenv("GOGC"); v != "" {
		return v
	}
	return "100"
}
