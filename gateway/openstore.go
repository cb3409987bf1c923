package gateway

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/jsstore"
)

// ErrNoStore: a command that reads or maintains a store found none where the
// configuration (or -data) points.
var ErrNoStore = errors.New("no store there")

// ErrOldSchema: a command that only reads found a bbolt store of an older schema,
// which opening would upgrade for good (OpenStoreToRead).
var ErrOldSchema = errors.New("the store is of an older schema")

// openMode is what a command does with the store it opens.
type openMode int

const (
	openCreate   openMode = iota // create it when missing (import)
	openExisting                 // it must be there; opening may upgrade it (gc)
	openToRead                   // it must be there and is not upgraded (verify, export, gc -dry-run)
)

// OpenStore opens the store a configuration names, without the rest of the gateway
// (for `amtsbote store import`). A bbolt store is locked by a running gateway: stop
// it first. log gets what opening does to the file (an upgrade of an older schema
// takes about 7 s per 100,000 submissions: without a line, a command seemed to
// hang); nil: nothing. close releases everything OpenStore started.
func OpenStore(ctx context.Context, cfg config.Config, log *slog.Logger) (st store.Store, close func(), err error) {
	return openStore(ctx, cfg, openCreate, log)
}

// OpenExistingStore is OpenStore for commands that maintain a store (gc): a bbolt
// store that is not there is ErrNoStore, where OpenStore would create an empty
// one. A mistyped -data made `store verify` report "0 submissions" and success,
// and left an empty store in the way of a later restore.
func OpenExistingStore(ctx context.Context, cfg config.Config, log *slog.Logger) (st store.Store, close func(), err error) {
	return openStore(ctx, cfg, openExisting, log)
}

// OpenStoreToRead is OpenExistingStore for commands that only read (store verify,
// store export, gc -dry-run): a bbolt store of an older schema is ErrOldSchema.
// Opening it would upgrade it for good, and an older build refuses the upgraded
// file, so checking a store with a new binary before the upgrade took away the
// way back — from a command that says it changes nothing. A bbolt file is opened
// read-only (store.Options.ReadOnly): bbolt commits a transaction at every open
// to write, so a dry run that said "nothing changed" left the file with new bytes
// and a new time, and could not run as a user who may only read the file.
func OpenStoreToRead(ctx context.Context, cfg config.Config, log *slog.Logger) (st store.Store, close func(), err error) {
	return openStore(ctx, cfg, openToRead, log)
}

func openStore(ctx context.Context, cfg config.Config, mode openMode, log *slog.Logger) (st store.Store, close func(), err error) {
	cfg.Resolve()
	bbolt := cfg.Store.Backend != config.StoreJetStream
	if mode != openCreate && bbolt {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, store.FileName)); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w: %s holds no %s (check -data or data_dir)", ErrNoStore, cfg.DataDir, store.FileName)
		}
	}
	if mode == openToRead && bbolt {
		v, upgrade, err := store.SchemaOf(cfg.DataDir)
		if err != nil {
			return nil, nil, fmt.Errorf("store in %s: %w", cfg.DataDir, err)
		}
		if upgrade {
			return nil, nil, fmt.Errorf("%w: %s is of schema version %s; opening it with this build upgrades it for good "+
				"(about 7 s per 100,000 submissions) and an older build then refuses it, so this command, which only reads, leaves it alone. "+
				"Check it with the build that wrote it, or upgrade first: start the gateway of this build once (amtsbote serve), "+
				"after a backup if you may go back (docs/operations.md, \"Upgrading\")", ErrOldSchema, filepath.Join(cfg.DataDir, store.FileName), v)
		}
	}
	if bbolt {
		// Read-only for the commands that only read: the file's bytes and time
		// stay as they were, and no write permission is needed (store.Options).
		db, err := store.Open(cfg.DataDir, store.Options{BatchSize: cfg.Store.BatchSize, BatchDelay: cfg.Store.BatchDelay, Logger: log, ReadOnly: mode == openToRead})
		if errors.Is(err, store.ErrNeedsWrite) {
			// Of this schema version but written before one of its indexes came
			// (SchemaOf cannot tell): the way out is an older schema's. The
			// refusal's own words said what was missing, not how to add it.
			return nil, nil, fmt.Errorf("%w: %w; this command only reads and leaves it alone: start the gateway of this build "+
				"once (amtsbote serve), which adds it, after a backup if you may go back (docs/operations.md, \"Upgrading\")", ErrOldSchema, err)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("store in %s: %w", cfg.DataDir, err)
		}
		return db, func() { _ = db.Close() }, nil
	}
	if cfg.NATS.URL == "" {
		return nil, nil, fmt.Errorf("store.backend jetstream needs nats.url")
	}
	b, err := bus.Start(ctx, bus.Options{URL: cfg.NATS.URL, TLS: natsTLS(cfg)})
	if err != nil {
		return nil, nil, err
	}
	js, err := jsstore.Open(ctx, b.JS, jsstore.Options{Replicas: cfg.NATS.Replicas})
	if err != nil {
		_ = b.Close()
		return nil, nil, err
	}
	return js, func() { _ = js.Close(); _ = b.Close() }, nil
}

// natsTLS names the files of the connection to an external NATS cluster.
func natsTLS(cfg config.Config) bus.TLSFiles {
	t := cfg.NATS.TLS
	return bus.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile}
}
