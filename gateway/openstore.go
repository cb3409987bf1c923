package gateway

import (
	"context"
	"fmt"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/jsstore"
)

// OpenStore opens the store a configuration names, without the rest of the gateway
// (for `amtsbote store export|import`). A bbolt store is locked by a running
// gateway: stop it first. close releases everything OpenStore started.
func OpenStore(ctx context.Context, cfg config.Config) (st store.Store, close func(), err error) {
	cfg.Resolve()
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
	b, err := bus.Start(ctx, bus.Options{URL: cfg.NATS.URL})
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
