package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/store/migrate"
)

// runStore: `amtsbote store export -config FILE -out DIR` writes every submission of
// the configured store (records, event logs, receipts, bytes) into DIR;
// `amtsbote store import -config FILE -in DIR` writes such an export into the
// configured store — a single node's bbolt data into a cluster's replicated store
// and back (docs/cluster.md).
func runStore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func() int {
		fmt.Fprintln(stderr, "usage: amtsbote store export -config FILE -out DIR\n       amtsbote store import -config FILE -in DIR")
		return 2
	}
	if len(args) == 0 || (args[0] != "export" && args[0] != "import") {
		return usage()
	}
	verb := args[0]
	fs := flag.NewFlagSet("store "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("AMTSBOTE_CONFIG"), "the configuration whose store is read or written")
	dataDir := fs.String("data", "", "data folder, overrides the configuration")
	out := fs.String("out", "", "export: the folder to create")
	in := fs.String("in", "", "import: the folder an export wrote")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if (verb == "export" && *out == "") || (verb == "import" && *in == "") {
		return usage()
	}
	cfg, err := config.Load(*cfgPath, os.Environ())
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote store:", err)
		return 2
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	st, closeStore, err := gateway.OpenStore(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote store:", err)
		return 1
	}
	defer closeStore()
	progress := func(s migrate.Stats) {
		fmt.Fprintf(stderr, "  %d submissions, %d blobs, %d skipped\n", s.Submissions, s.Blobs, s.Skipped)
	}
	var stats migrate.Stats
	if verb == "export" {
		stats, err = migrate.Export(ctx, st, *out, progress)
	} else {
		stats, err = migrate.Import(ctx, st, *in, cfg.Store.Backend+" export "+*in, progress)
	}
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote store:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d submissions, %d blobs, %d already there (skipped)\n", verb, stats.Submissions, stats.Blobs, stats.Skipped)
	return 0
}
