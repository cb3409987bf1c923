package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// SettleFor bounds how long Settle waits for a NATS cluster that is electing
// leaders (a node just restarted): its requests time out meanwhile.
const SettleFor = 90 * time.Second

// Settle runs op until it succeeds, fails for another reason than a timeout, or
// SettleFor has passed: a gateway started while its cluster settles waits for it
// instead of refusing to start. Each run of op gets 10 s.
func Settle(ctx context.Context, op func(context.Context) error) error {
	deadline := time.Now().Add(SettleFor)
	wait := 200 * time.Millisecond
	for {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := op(c)
		cancel()
		timedOut := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrNoResponders)
		if err == nil || !timedOut || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// KeyValue creates or opens a key-value bucket (one value per key, file storage,
// at least one replica), under Settle: the shared state of a cluster's gateways
// (disabled endpoints, mailbox sessions).
func KeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.History, cfg.Storage, cfg.Replicas = 1, jetstream.FileStorage, max(cfg.Replicas, 1)
	var kv jetstream.KeyValue
	err := Settle(ctx, func(c context.Context) (err error) {
		kv, err = js.CreateOrUpdateKeyValue(c, cfg)
		return err
	})
	return kv, err
}
