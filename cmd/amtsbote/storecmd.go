package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/internal/progress"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/store/migrate"
)

// runStore: `amtsbote store export -config FILE -out DIR` writes every submission of
// the configured store (records, event logs, receipts, bytes) into DIR;
// `amtsbote store import -config FILE -in DIR` writes such an export into the
// configured store — a single node's bbolt data into a cluster's replicated store
// and back (docs/cluster.md).
func runStore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func() int {
		fmt.Fprintln(stderr, "usage: amtsbote store export -config FILE -out DIR\n       amtsbote store import -config FILE -in DIR\n"+
			"       amtsbote store backup [-config FILE] [-url URL] -out FILE.tar\n       amtsbote store restore [-config FILE] [-data DIR] -in FILE.tar\n"+
			"       amtsbote store verify [-config FILE] [-data DIR]\n       amtsbote store reindex [-config FILE] [-data DIR] [-dry-run]")
		return 2
	}
	if len(args) > 0 && (args[0] == "backup" || args[0] == "restore") {
		return runBackup(ctx, args[0], args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "verify" {
		return runVerifyStore(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "reindex" {
		return runReindexStore(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "export" && args[0] != "import") {
		code := usage()
		if len(args) > 0 && isHelp(args[0]) {
			return 0
		}
		return code
	}
	verb := args[0]
	fs, loadConfig := storeFlags(verb, stderr, "the configuration whose store is read or written")
	out := fs.String("out", "", "export: the folder to create")
	in := fs.String("in", "", "import: the folder an export wrote")
	if err := fs.Parse(args[1:]); err != nil {
		return usageExit(err)
	}
	if (verb == "export" && *out == "") || (verb == "import" && *in == "") {
		return usage()
	}
	if verb == "import" {
		// Before the store is opened, which creates it: a mistyped -in left an
		// empty store in the new data folder, in the way of a later restore.
		if err := migrate.CheckExport(*in); err != nil {
			fmt.Fprintln(stderr, "amtsbote store import:", err)
			return 1
		}
		// The import writes into the local bbolt store: as another user than the
		// gateway's, its files would not be the gateway's to read.
		cfg, err := loadConfig()
		if err == nil && cfg.Store.Backend != config.StoreJetStream {
			if err := checkDataOwner(cfg.DataDir, "store import"); err != nil {
				fmt.Fprintln(stderr, "amtsbote store import:", err)
				return 1
			}
		}
	}
	// export only reads: it must not upgrade an older store for good, nor write
	// to it at all (gateway.OpenStoreToRead).
	open := gateway.OpenStoreToRead
	if verb == "import" {
		open = gateway.OpenStore
	}
	st, cfg, closeStore, code := openStore(ctx, loadConfig, open, stderr)
	if st == nil {
		return code
	}
	defer closeStore()
	progress := func(s migrate.Stats) {
		fmt.Fprintf(stderr, "  %d submissions, %d blobs, %d skipped\n", s.Submissions, s.Blobs, s.Skipped)
	}
	var stats migrate.Stats
	var err error
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

// runBackup: `amtsbote store backup` fetches an online backup from a running single
// node (GET /v1/admin/backup) into FILE, checking it as it arrives (the manifest at
// the end, every blob's digest) and renaming it into place only when it is whole;
// `amtsbote store restore` unpacks one into an empty data folder, checked the same
// way, with the gateway stopped (docs/operations.md).
func runBackup(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) int {
	fs, loadConfig := storeFlags(verb, stderr, "the gateway's configuration (admin token, public URL, data folder)")
	url := fs.String("url", "", "backup: the gateway's base URL (default: public_url of the configuration)")
	out := fs.String("out", "", "backup: the file to write")
	in := fs.String("in", "", "restore: the backup file")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if (verb == "backup" && *out == "") || (verb == "restore" && *in == "") {
		fmt.Fprintf(stderr, "amtsbote store %s: -%s is required\n", verb, map[string]string{"backup": "out", "restore": "in"}[verb])
		return 2
	}
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote store:", err)
		return 2
	}
	var received atomic.Int64
	var blobs atomic.Int64
	stop := progress.EverySecond(stderr, func() string {
		return fmt.Sprintf("  %.1f MiB, %d blob files\n", float64(received.Load())/(1<<20), blobs.Load())
	})
	onEntry := func(st store.BackupStats) { blobs.Store(int64(st.Blobs)) }
	var st store.BackupStats
	what := "backup " + *out + ", checked"
	if verb == "restore" {
		if cfg.Store.Backend == config.StoreJetStream {
			// A restore writes a single node's bbolt file, which a cluster's gateways
			// never read: it reported success and restored nothing they see.
			stop()
			fmt.Fprintln(stderr, "amtsbote store restore: this configuration's store.backend is jetstream, and a restore writes a single node's store "+
				"(amtsbote.db and blobs/ in "+cfg.DataDir+"), which the cluster's gateways never read. A cluster's store is backed up and restored by NATS "+
				"(nats stream backup, nats stream restore; docs/cluster.md, \"Backups\"). To bring a single node's backup into the cluster, restore it "+
				"into an empty folder without -config (-data DIR), then move it with store export and store import -config (docs/cluster.md)")
			return 2
		}
		if err := checkDataOwner(cfg.DataDir, "store restore"); err != nil {
			stop()
			fmt.Fprintln(stderr, "amtsbote store restore:", err)
			return 1
		}
		st, err = restoreFile(ctx, *in, cfg.DataDir, &received, onEntry)
		what = "restored into " + cfg.DataDir
	} else {
		st, err = fetchBackup(ctx, cfg, *url, *out, &received, onEntry)
	}
	stop()
	if err != nil {
		fmt.Fprintf(stderr, "amtsbote store %s: %v\n", verb, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: the store as of %s, %d bytes of database, %d blob files (%d bytes)\n",
		what, st.At.Format(time.RFC3339), st.DBBytes, st.Blobs, st.BlobBytes)
	if st.BytesRemoved > 0 {
		fmt.Fprintf(stdout, "%d submissions marked bytes removed: an erasure or the retention removed their bytes while the backup ran, so it lacks them\n", st.BytesRemoved)
	}
	return 0
}

// restoreFile restores the backup file in into the data folder dir.
func restoreFile(ctx context.Context, in, dir string, received *atomic.Int64, onEntry func(store.BackupStats)) (store.BackupStats, error) {
	f, err := os.Open(in)
	if err != nil {
		return store.BackupStats{}, err
	}
	defer f.Close()
	return store.Restore(ctx, &countingReader{r: f, n: received}, dir, onEntry)
}

// fetchBackup streams the gateway's backup into out (via out.part), checking it on
// the way; out appears only when the backup is whole.
func fetchBackup(ctx context.Context, cfg config.Config, url, out string, received *atomic.Int64, progress func(store.BackupStats)) (store.BackupStats, error) {
	var st store.BackupStats
	c, err := newAdminClient(cfg, url)
	if err != nil {
		return st, err
	}
	url = c.base
	// The file first: the gateway copies its whole database for a backup, and
	// with an -out that could not be written it did so for nothing.
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return st, fmt.Errorf("-out %s is a folder: name the file to write, e.g. %s", out, filepath.Join(out, "amtsbote-"+time.Now().Format("2006-01-02")+".tar"))
	}
	part := out + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return st, fmt.Errorf("-out: %w (the gateway was not asked)", err)
	}
	defer func() {
		f.Close()
		os.Remove(part) // gone after the rename
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/admin/backup", nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	// No overall timeout: a backup of gigabytes takes minutes.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return st, fmt.Errorf("%s: %w", url, refusal(resp.StatusCode, b))
	}
	st, err = store.CheckBackup(ctx, io.TeeReader(&countingReader{r: resp.Body, n: received}, f), progress)
	if err != nil {
		return st, fmt.Errorf("%w (nothing written to %s)", err, out)
	}
	if err := f.Sync(); err != nil {
		return st, err
	}
	if err := f.Close(); err != nil {
		return st, err
	}
	if err := os.Rename(part, out); err != nil {
		return st, err
	}
	// The rename is durable only with its folder: without, a power cut after
	// "backup written" could leave the .part name, or none.
	return st, store.SyncDir(filepath.Dir(out))
}

// countingReader counts the bytes read, for progress lines.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// storeFlags starts the flag set of a store command with what every one takes:
// -config (what it is for: configUse) and -data, which overrides the configuration's
// data folder. loadConfig reads the configuration once the flags are parsed.
func storeFlags(verb string, stderr io.Writer, configUse string) (fs *flag.FlagSet, loadConfig func() (config.Config, error)) {
	return configFlags("store "+verb, stderr, configUse)
}

// configFlags is storeFlags for any command named name.
func configFlags(name string, stderr io.Writer, configUse string) (fs *flag.FlagSet, loadConfig func() (config.Config, error)) {
	fs = flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("AMTSBOTE_CONFIG"), configUse)
	dataDir := fs.String("data", "", "data folder, overrides the configuration")
	return fs, func() (config.Config, error) {
		cfg, err := config.Load(*cfgPath, os.Environ())
		if err == nil && *dataDir != "" {
			cfg.DataDir = *dataDir
		}
		// Defaults that follow from others, as serve has them: public_url from
		// listen (store backup calls it; it failed with no public_url set).
		cfg.Resolve()
		return cfg, err
	}
}

// runVerifyStore: `amtsbote store verify` reads every package, attachment and reply
// the store's records name, checks each one's SHA-256 and names the submissions
// whose bytes cannot be read, and compares every record with the indexes its
// writes keep (migrate.Check): an index fault or an unreadable blob is exit 1.
// For a cluster store written during NATS node failures by a build before
// 2026-12-02 (docs/cluster.md, "Limits"), or after an older build wrote, where it
// runs beside the serving gateways; a single node's bbolt file must be free
// (stopped). What verify names `store reindex` repairs, on both stores — the
// entries no record accounts for included (store.StrayLister), on a cluster
// those its reindex would remove when verify looks again at each — so a store
// verify passes leaves reindex nothing to do.
func runVerifyStore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, loadConfig := storeFlags("verify", stderr, "the configuration whose store is checked")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	st, _, closeStore, code := openStore(ctx, loadConfig, gateway.OpenStoreToRead, stderr)
	if st == nil {
		return code
	}
	defer closeStore()
	stats, bad, faults, err := migrate.Check(ctx, st, func(s migrate.CheckStats) {
		fmt.Fprintf(stderr, "  %d submissions, %d blobs read, %d unreadable\n", s.Submissions, s.Blobs, s.Unreadable)
	})
	for _, u := range bad {
		fmt.Fprintf(stdout, "unreadable: submission %s, blob %s: %v\n", u.SubmissionID, u.Digest, u.Err)
	}
	for _, f := range faults {
		fmt.Fprintf(stdout, "index: %s\n", f)
	}
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote store:", err)
		return 1
	}
	fmt.Fprintf(stdout, "verify: %d submissions, %d blobs read, %d unreadable, %d index faults\n", stats.Submissions, stats.Blobs, stats.Unreadable, stats.IndexFaults)
	if len(bad) > 0 || len(faults) > 0 {
		return 1
	}
	return 0
}

// runReindexStore: `amtsbote store reindex` rebuilds the derived indexes
// (outbox, handed_over, held, undecided, by_office, replies, follow_ups,
// idempotency) from the records and says per index what it added, removed and
// rewrote: the repair of the faults `store verify` names after an older build
// wrote to the store (a way back a release and forward again, or a rolling
// upgrade of a cluster, which leaves the undecided index wrong). A second run
// finds nothing to do.
//
// A single node's bbolt store is repaired with the gateway stopped
// (store.DB.Reindex). A cluster's JetStream store is repaired beside its
// serving gateways — a cluster is not stopped for it —, each case in one batch
// that expects the case and its keys unchanged since they were read
// (jsstore.Store.Reindex); a case the gateways kept changing is passed over
// and named, and the run exits 1 so that a script runs it again. -dry-run (a
// cluster's store) decides everything and writes nothing.
func runReindexStore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, loadConfig := storeFlags("reindex", stderr, "the configuration whose store is repaired")
	dryRun := fs.Bool("dry-run", false, "a cluster's store (store.backend jetstream): say what would change, write nothing")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote store reindex:", err)
		return 2
	}
	cluster := cfg.Store.Backend == config.StoreJetStream
	if *dryRun && !cluster {
		// DB.Reindex has no dry run; verify reads the same file without writing,
		// and what it names is what reindex changes.
		fmt.Fprintln(stderr, "amtsbote store reindex: -dry-run is for a cluster's store; on a single node `amtsbote store verify` names every entry reindex would change")
		return 2
	}
	// It writes into the store file: as another user, the gateway could not open
	// what it left (a grown file, new pages). A cluster's store is the NATS
	// servers'.
	if !cluster {
		if err := checkDataOwner(cfg.DataDir, "store reindex"); err != nil {
			fmt.Fprintln(stderr, "amtsbote store reindex:", err)
			return 1
		}
	}
	// OpenExistingStore waits, on a single node, for the file lock a running
	// gateway holds and then fails with store.ErrLocked ("is a gateway running
	// on it?"): the repair runs with the gateway stopped, as gc does. An older
	// schema is upgraded (and logged). A cluster's store opens beside its
	// gateways.
	st, _, closeStore, code := openStore(ctx, func() (config.Config, error) { return cfg, nil }, gateway.OpenExistingStore, stderr)
	if st == nil {
		return code
	}
	defer closeStore()
	var p store.ReindexProgress
	switch st := st.(type) {
	case *store.DB:
		if cluster {
			break
		}
		stop := progress.EverySecond(stderr, p.Line)
		rep, err := st.Reindex(ctx, &p)
		stop()
		if err != nil {
			fmt.Fprintln(stderr, "amtsbote store reindex:", err)
			return 1
		}
		printReindex(stdout, rep, false)
		return 0
	case *jsstore.Store:
		if !cluster {
			break
		}
		stop := progress.EverySecond(stderr, p.Line)
		rep, err := st.Reindex(ctx, jsstore.ReindexOptions{DryRun: *dryRun, Progress: &p})
		stop()
		return reportClusterReindex(rep, err, *dryRun, stdout, stderr)
	}
	fmt.Fprintf(stderr, "amtsbote store reindex: store.backend is %s, but the store is %T\n", cfg.Store.Backend, st)
	return 2
}

// reportClusterReindex prints what a cluster's reindex did (rep, err) and
// returns the exit code: 1 also when cases changed meanwhile, so that a script
// runs it again.
func reportClusterReindex(rep jsstore.ReindexReport, err error, dryRun bool, stdout, stderr io.Writer) int {
	if err != nil {
		// What was repaired before stays repaired (each case's batch is whole):
		// say so, a run again finds the rest.
		printIndexChanges(stdout, rep.ReindexReport)
		fmt.Fprintln(stderr, "amtsbote store reindex:", err, "(what is counted above was done; run it again for the rest)")
		return 1
	}
	printReindex(stdout, rep.ReindexReport, dryRun)
	if len(rep.ChangedMeanwhile) > 0 {
		for _, id := range rep.ChangedMeanwhile {
			fmt.Fprintf(stdout, "changed meanwhile: submission %s (its gateways changed it between each read and write of its repair)\n", id)
		}
		fmt.Fprintf(stdout, "reindex: %d submissions passed over; run it again, it repairs them\n", len(rep.ChangedMeanwhile))
		return 1
	}
	return 0
}

// printReindex prints per index what a reindex changed (or, dryRun, would
// change), then its summary: one shape for both stores.
func printReindex(stdout io.Writer, rep store.ReindexReport, dryRun bool) {
	printIndexChanges(stdout, rep)
	switch {
	case rep.Changed() == 0:
		fmt.Fprintf(stdout, "reindex: %d submissions, every index agrees with the records: nothing to do\n", rep.Records)
	case dryRun:
		fmt.Fprintf(stdout, "reindex -dry-run: %d submissions, %d index entries would change; nothing written\n", rep.Records, rep.Changed())
	default:
		fmt.Fprintf(stdout, "reindex: %d submissions, %d index entries changed; `amtsbote store verify` checks the result\n", rep.Records, rep.Changed())
	}
}

// printIndexChanges prints a line for each index a reindex changed.
func printIndexChanges(stdout io.Writer, rep store.ReindexReport) {
	for _, ix := range rep.Indexes {
		if ix.Added+ix.Removed+ix.Rewritten > 0 {
			fmt.Fprintf(stdout, "%s: %d added, %d removed, %d rewritten\n", ix.Index, ix.Added, ix.Removed, ix.Rewritten)
		}
	}
}

// openStore loads the configuration and opens its store with open (one of
// gateway's OpenStore, OpenExistingStore, or gateway.OpenStoreToRead), which logs to stderr
// what opening does to the file. On failure st is nil and code the exit code: 2 for
// the configuration, 1 for the store.
func openStore(ctx context.Context, loadConfig func() (config.Config, error),
	open func(context.Context, config.Config, *slog.Logger) (store.Store, func(), error), stderr io.Writer,
) (st store.Store, cfg config.Config, closeStore func(), code int) {
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote store:", err)
		return nil, cfg, nil, 2
	}
	st, closeStore, err = open(ctx, cfg, newLogger(stderr, cfg.LogLevel, cfg.LogFormat))
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote store:", err)
		return nil, cfg, nil, 1
	}
	return st, cfg, closeStore, 0
}
