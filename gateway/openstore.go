package gateway

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
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

// OpenStore opens the store a configuration names, without the rest of the gateway
// (for `amtsbote store export|import`). A bbolt store is locked by a running
// gateway: stop it first. close releases everything OpenStore started.
func OpenStore(ctx context.Context, cfg config.Config) (st store.Store, close func(), err error) {
	return openStore(ctx, cfg, false)
}

// OpenExistingStore is OpenStore for commands that read or maintain a store
// (verify, export, gc): a bbolt store that is not there is ErrNoStore, where
// OpenStore would create an empty one. A mistyped -data made `store verify`
// report "0 submissions" and success, and left an empty store in the way of a
// later restore.
func OpenExistingStore(ctx context.Context, cfg config.Config) (st store.Store, close func(), err error) {
	return openStore(ctx, cfg, true)
}

func openStore(ctx context.Context, cfg config.Config, existing bool) (st store.Store, close func(), err error) {
	cfg.Resolve()
	if existing && cfg.Store.Backend != config.StoreJetStream {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, store.FileName)); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w: %s holds no %s (check -data or data_dir)", ErrNoStore, cfg.DataDir, store.FileName)
		}
	}
	if cfg.Store.Backend != config.StoreJetStream {
		db, err := store.Open(cfg.DataDir, store.Options{BatchSize: cfg.Store.BatchSize, BatchDelay: cfg.Store.BatchDelay})
		if err != nil {
			return nil, nil, fmt.Errorf("store in %s (is a gateway running on it?): %w", cfg.DataDir, err)
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
