package mailbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// SessionsBucket is the JetStream key-value bucket of the login sessions when the
// gateways of a cluster share them (`nats kv ls amtsbote_mailbox_sessions` lists
// token digests, never tokens).
const SessionsBucket = "amtsbote_mailbox_sessions"

// sessionOpTimeout bounds one request to the bucket.
const sessionOpTimeout = 5 * time.Second

// kvSessions is the sessionBook of a cluster. Entries expire in the bucket after
// sessionMax (the longest any session lives), so no sweep is needed; the idle rule
// is Mailbox.session's, as with mailbox.db.
type kvSessions struct{ kv jetstream.KeyValue }

// openKVSessions creates or opens the bucket, waiting for a cluster that is
// electing leaders (bus.Settle).
func openKVSessions(js jetstream.JetStream, replicas int) (*kvSessions, error) {
	kv, err := bus.KeyValue(context.Background(), js, jetstream.KeyValueConfig{
		Bucket:      SessionsBucket,
		Description: "amtsbote web mailbox: login sessions by token digest",
		TTL:         sessionMax,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("mailbox: sessions bucket: %w", err)
	}
	return &kvSessions{kv: kv}, nil
}

func (k *kvSessions) putSession(key string, ss session) error {
	raw, err := json.Marshal(ss)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), sessionOpTimeout)
	defer cancel()
	if _, err := k.kv.Put(ctx, key, raw); err != nil {
		return fmt.Errorf("mailbox: store session: %w", err)
	}
	return nil
}

func (k *kvSessions) getSession(key string) (session, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sessionOpTimeout)
	defer cancel()
	e, err := k.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return session{}, false, nil
	}
	if err != nil {
		return session{}, false, fmt.Errorf("mailbox: read session: %w", err)
	}
	var ss session
	if err := json.Unmarshal(e.Value(), &ss); err != nil {
		return session{}, false, fmt.Errorf("mailbox: read session: %w", err)
	}
	return ss, true, nil
}

// touchSession writes ss only over the entry it finds, by its revision: a
// logout (a delete) or another refresh in between makes the write fail, and the
// session stays as the other left it.
func (k *kvSessions) touchSession(key string, ss session) error {
	raw, err := json.Marshal(ss)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), sessionOpTimeout)
	defer cancel()
	e, err := k.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil // logged out meanwhile
	}
	if err != nil {
		return fmt.Errorf("mailbox: refresh session: %w", err)
	}
	if _, err := k.kv.Update(ctx, key, raw, e.Revision()); err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("mailbox: refresh session: %w", err)
	}
	return nil
}

func (k *kvSessions) removeSession(key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), sessionOpTimeout)
	defer cancel()
	if err := k.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("mailbox: remove session: %w", err)
	}
	return nil
}

// sweepSessions leaves expiry to the bucket's TTL.
func (k *kvSessions) sweepSessions(func() time.Time) error { return nil }
