package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/internal/progress"
	"github.com/amtsbote/amtsbote/store"
)

// runGC: `amtsbote gc -config FILE` applies the retention once (the running gateway
// does the same every retention.every): the bytes of answered cases past
// retention.package_bytes, the records past retention.records, and the blobs nothing
// references. For a bbolt store the gateway must be stopped (the file is locked).
// Without -config it only counts (-dry-run): the built-in retention is not the
// gateway's. It prints the retention it applies.
// -dry-run only counts: "-now" alone once read as a preview but removed what a
// future date makes due.
func runGC(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("AMTSBOTE_CONFIG"), "the gateway's configuration (its store and retention)")
	dataDir := fs.String("data", "", "data folder, overrides the configuration")
	at := fs.String("now", "", "apply the retention as of this time (RFC 3339; default now); it removes what is due by then — with -dry-run it only counts it")
	dry := fs.Bool("dry-run", false, "count what the run would remove (bytes, records, blobs) and change nothing")
	compact := fs.Bool("compact", false, "rewrite the bbolt file without its free pages even when less than retention.compact_min_free is free (the background job does it by itself above that)")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if *dry && *compact {
		fmt.Fprintln(stderr, "amtsbote gc: -dry-run changes nothing, -compact rewrites the file: choose one")
		return 2
	}
	cfg, err := config.Load(*cfgPath, os.Environ())
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote gc:", err)
		return 2
	}
	if *compact && cfg.Store.Backend == config.StoreJetStream {
		// Before the run: found after it, the operator got exit 2 ("wrong
		// invocation") for a run that had removed what was due — or, with NATS
		// unreachable, the connection error instead of this.
		fmt.Fprintln(stderr, "amtsbote gc: -compact is for the bbolt store; JetStream compacts its own files")
		return 2
	}
	// Without the gateway's configuration the retention is the built-in one, and
	// a run deleted bytes and records by it, not by what the operator set.
	from := "from " + *cfgPath
	if *cfgPath == "" {
		from = "built-in defaults: no -config"
		if retentionFromEnv(os.Environ()) {
			from = "built-in defaults and AMTSBOTE_RETENTION_*: no -config"
		} else if !*dry {
			fmt.Fprintln(stderr, "amtsbote gc: no -config (or AMTSBOTE_CONFIG): the retention would be the built-in one ("+
				retentionLine(cfg.Retention)+"), not the gateway's, and gc deletes by it. Name the gateway's configuration, or see what it would remove with -dry-run")
			return 2
		}
	}
	fmt.Fprintf(stdout, "retention (%s): %s\n", from, retentionLine(cfg.Retention))
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	now := time.Now().UTC()
	if *at != "" {
		if now, err = time.Parse(time.RFC3339, *at); err != nil {
			fmt.Fprintln(stderr, "amtsbote gc: -now:", err)
			return 2
		}
	}
	if cfg.Store.Backend != config.StoreJetStream && !*dry {
		// A compaction writes a new store file: as another user than the gateway's,
		// the gateway could not open it at its next start. A dry run only reads
		// (as store verify does), so it may look at the service's folder from a
		// root shell.
		if err := checkDataOwner(cfg.DataDir, "gc"); err != nil {
			fmt.Fprintln(stderr, "amtsbote gc:", err)
			return 1
		}
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	// A dry run changes nothing, so it must not upgrade an older store either
	// (an older build refuses the upgraded file), nor write to the file at all
	// (gateway.OpenStoreToRead); a real run may upgrade, and logs it.
	open := gateway.OpenExistingStore
	if *dry {
		open = gateway.OpenStoreToRead
	}
	st, closeStore, err := open(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote gc:", err)
		return 1
	}
	defer closeStore()
	b := broker.New(broker.Config{GatewayID: cfg.GatewayID}, st, nil, nil, nil, nil, log, nil)
	// A run on a store with years of data reads millions of records: a line a
	// second on stderr says how far it got.
	var p broker.GCProgress
	stop := progress.EverySecond(stderr, p.Line)
	rep, err := b.GCWith(ctx, now, gateway.RetentionOf(cfg), broker.GCOptions{Progress: &p, DryRun: *dry})
	stop()
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote gc:", err)
		return 1
	}
	if rep.DryRun {
		fmt.Fprintf(stdout, "dry run as of %s, nothing changed: would remove the bytes of %d submissions, delete %d records and %d blobs (%d bytes)\n",
			now.Format(time.RFC3339), rep.BytesRemoved, rep.RecordsDeleted, rep.BlobsDeleted, rep.BlobBytesFreed)
		return 0
	}
	fmt.Fprintf(stdout, "bytes removed from %d submissions, %d records deleted, %d blobs deleted (%d bytes freed)\n",
		rep.BytesRemoved, rep.RecordsDeleted, rep.BlobsDeleted, rep.BlobBytesFreed)
	if rep.LeftoverChunks > 0 {
		fmt.Fprintf(stdout, "%d leftover blob chunks purged (no object named them)\n", rep.LeftoverChunks)
	}
	if rep.Compacted {
		fmt.Fprintf(stdout, "compacted the store file: %d -> %d bytes\n", rep.FileBefore, rep.FileAfter)
	} else if *compact {
		c, ok := st.(store.Compactor)
		if !ok { // refused above, before the run
			fmt.Fprintln(stderr, "amtsbote gc: -compact is for the bbolt store; JetStream compacts its own files")
			return 2
		}
		p.Phase.Store(int32(broker.GCCompact))
		stop := progress.EverySecond(stderr, p.Line)
		cr, err := c.Compact(ctx)
		stop()
		if err != nil {
			fmt.Fprintln(stderr, "amtsbote gc:", err)
			return 1
		}
		fmt.Fprintf(stdout, "compacted the store file: %d -> %d bytes\n", cr.Before, cr.After)
	}
	return 0
}

// retentionFromEnv says whether environ sets a retention.* setting: a gateway
// configured by the environment alone has its retention there.
func retentionFromEnv(environ []string) bool {
	for _, kv := range environ {
		if strings.HasPrefix(kv, "AMTSBOTE_RETENTION_") {
			return true
		}
	}
	return false
}

// retentionLine says what a retention removes when, for gc's output.
func retentionLine(r config.Retention) string {
	after := func(d time.Duration, event string) string {
		if d <= 0 {
			return "kept"
		}
		if d%(24*time.Hour) == 0 {
			return fmt.Sprintf("%d days after %s", d/(24*time.Hour), event)
		}
		return d.String() + " after " + event
	}
	return fmt.Sprintf("bytes %s, records %s, bytes of unanswered cases %s",
		after(r.PackageBytes, "the answer"), after(r.Records, "the answer"), after(r.Unanswered, "the delivery"))
}
