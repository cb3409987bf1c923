package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/amtsbote/amtsbote/loadtest"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 2000, "packages to submit")
	c := fs.Int("c", 16, "concurrent portal connections")
	elements := fs.Int("elements", 120, "XML elements per package (120 is about 10 KB)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	perOffice := fs.Int("per-office", 0, "concurrent delivery attempts per office (0: the default, workers/4); all packages go to one office")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fmt.Fprintf(stderr, "signing %d packages, then posting them with concurrency %d to a gateway on loopback...\n", *n, *c)
	res, err := loadtest.Run(ctx, loadtest.Options{N: *n, Concurrency: *c, Elements: *elements, PerOffice: *perOffice, Timeout: *timeout, Progress: stderr})
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote bench:", err)
		return 1
	}
	res.Report(stdout)
	return 0
}
