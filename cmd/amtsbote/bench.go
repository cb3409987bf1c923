package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/amtsbote/amtsbote/internal/procs"
	"github.com/amtsbote/amtsbote/loadtest"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 2000, "packages to submit (closed loop)")
	c := fs.Int("c", 16, "concurrent portal connections (closed loop)")
	elements := fs.Int("elements", 120, "XML elements per package (120 is about 10 KB)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long (open loop: default the ladder plus 10 minutes)")
	perOffice := fs.Int("per-office", 0, "concurrent delivery attempts per office (0: the default, workers/4); all packages go to one office")
	open := fs.Bool("open", false, "open loop: fixed arrival rates, latency from the scheduled send time, one request per arrival")
	rates := fs.String("rates", "50,100,200,400,0.25x", "open loop: the rate ladder, comma-separated: arrivals per second, or a share of the verification-only baseline measured before the ladder (0.25x: issue #12's target rate)")
	step := fs.Duration("step", 20*time.Second, "open loop: length of each rate step")
	arrivals := fs.String("arrivals", loadtest.ArrivalPoisson, "open loop: arrival process, poisson or constant")
	seed := fs.Uint64("seed", 1, "open loop: seed of the Poisson arrivals")
	maxInFlight := fs.Int("max-inflight", 4096, "open loop: safety cap on requests in flight; arrivals beyond it are dropped and reported")
	workers := fs.Int("workers", 0, "delivery workers of the gateway (0: its default, delivery.workers)")
	yieldBacklog := fs.Int("yield-backlog", 0, "packages waiting for the office above which intake leaves half its verification slots to delivery while the CPU is full (0: its default, limits.yield_backlog; -1: never)")
	verifyParallel := fs.Int("verify-parallel", 0, "packages the gateway verifies at once (0: its default, limits.verify_parallel, one per CPU; -1: no bound, as before 2026-12-02)")
	floor := fs.Duration("floor", 2*time.Second, "open loop: run the write+fsync probe alone this long before the ladder (0: not at all)")
	probeEvery := fs.Duration("probe", 10*time.Millisecond, "open loop: interval of the write+fsync probe of the data disk (0: no probe, to see what it costs)")
	drain := fs.Duration("drain", time.Minute, "open loop: after the ladder, wait this long at most for every package to be delivered")
	batchDelay := fs.Duration("batch-delay", 0, "least time between two commits of the store (0: the gateway's default, store.batch_delay)")
	batchSize := fs.Int("batch-size", 0, "writes waiting that start a commit of the store before -batch-delay is up (0: the gateway's default, store.batch_size)")
	cpuProfile := fs.String("cpuprofile", "", "closed loop: write a CPU profile of the gateway's work (first post to last delivery) to this file")
	traceFile := fs.String("trace", "", "write an execution trace to this file (go tool trace): closed loop, of the same span as -cpuprofile; open loop, of the ladder")
	dataDir := fs.String("data", "", "run the gateway on this data folder and leave it there (e.g. one internal/scalegen filled with a history: bbolt rewrites more pages per commit as its trees grow); empty: a temporary one, removed after")
	memProfile := fs.String("memprofile", "", "closed loop: write the allocation profile after the last delivery to this file, and the one at the first post to this file + \".base\" (go tool pprof -sample_index=alloc_space -base)")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	// As serve runs the gateway (GOMAXPROCS=N in the environment measures without
	// the spare processor).
	procs.SpareForFlushes()
	gw := loadtest.Gateway{Workers: *workers, VerifyParallel: *verifyParallel, YieldBacklog: *yieldBacklog, PerOffice: *perOffice, BatchDelay: *batchDelay, BatchSize: *batchSize, DataDir: *dataDir}
	o := loadtest.Options{N: *n, Concurrency: *c, Elements: *elements, Gateway: gw, Timeout: *timeout, Progress: stderr}
	var traceOut io.Writer // both loops
	outs := []output{{*traceFile, &traceOut}}
	if !*open {
		outs = append(outs, output{*cpuProfile, &o.CPUProfile}, output{*memProfile, &o.MemProfile}, output{base(*memProfile), &o.MemProfileBase})
	}
	closeOutputs, err := createOutputs(outs)
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote bench:", err)
		return 1
	}
	defer closeOutputs()
	if *open {
		ladder, err := loadtest.ParseRates(*rates)
		if err != nil {
			fmt.Fprintln(stderr, "amtsbote bench: -rates:", err)
			return 2
		}
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "timeout" })
		if !explicit {
			*timeout = time.Duration(len(ladder))*(*step) + 10*time.Minute
		}
		fl := *floor
		if fl == 0 {
			fl = -1 // RunOpen: negative means none
		}
		pe := *probeEvery
		if pe == 0 {
			pe = -1
		}
		rctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		fmt.Fprintf(stderr, "open loop: %s arrivals at %s (per second; x: of the baseline) for %s each, against a gateway on loopback...\n", *arrivals, *rates, *step)
		res, err := loadtest.RunOpen(rctx, loadtest.OpenOptions{
			Rates: ladder, Step: *step, Arrivals: *arrivals, Seed: *seed, MaxInFlight: *maxInFlight,
			Elements: *elements, Gateway: gw, Floor: fl, ProbeEvery: pe, Drain: *drain, Progress: stderr,
			Trace: traceOut,
		})
		if res != nil {
			res.Report(stdout)
		}
		if err != nil {
			fmt.Fprintln(stderr, "amtsbote bench:", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "signing %d packages, then posting them with concurrency %d to a gateway on loopback...\n", *n, *c)
	o.Trace = traceOut
	res, err := loadtest.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote bench:", err)
		return 1
	}
	res.Report(stdout)
	return 0
}

// output is a file a flag names ("" for none) and the writer to point at it.
type output struct {
	path string
	w    *io.Writer
}

// createOutputs creates the files of outs and sets their writers; close closes them.
func createOutputs(outs []output) (close func(), err error) {
	var files []*os.File
	close = func() {
		for _, f := range files {
			f.Close()
		}
	}
	for _, out := range outs {
		if out.path == "" {
			continue
		}
		f, err := os.Create(out.path)
		if err != nil {
			close()
			return nil, err
		}
		files = append(files, f)
		*out.w = f
	}
	return close, nil
}

// base is the name of the base profile next to a memory profile ("" for none).
func base(profile string) string {
	if profile == "" {
		return ""
	}
	return profile + ".base"
}
