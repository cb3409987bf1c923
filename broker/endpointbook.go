package broker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// disabledBook keeps the endpoints disabled after a 410 Gone, so that a restart
// agrees, and in cluster mode every gateway. A single gateway keeps them in a file
// beside its store (fileBook). Gateways that share a JetStream store share them in a
// key-value bucket (kvBook): the operator's enable reaches one gateway through the
// load balancer and must enable the channel on all of them, and a 410 seen by one
// gateway must not be learnt again, one package each, by every other.
//
// The contract, which bookSuite checks for each implementation:
//   - load returns every entry put and not removed since, by any process sharing
//     the book, one per office and channel;
//   - put (replacing an entry of the same office and channel) and remove (of an
//     entry that may not exist) are durable when they return nil;
//   - watch calls fn on one goroutine, until ctx ends, so that whoever applies
//     its calls to what load returned holds what the book holds, whichever process
//     changed it after load: changes to one entry come in order, though a
//     superseded one may be left out (a KV watcher that reconnects delivers the
//     latest value of each key). A book nobody else writes may return at once.
type disabledBook interface {
	load(ctx context.Context) ([]disabledEndpoint, error)
	put(ctx context.Context, d disabledEndpoint) error
	remove(ctx context.Context, office, channel string) error
	watch(ctx context.Context, fn func(d disabledEndpoint, removed bool))
}

// fileBook is the book of a single gateway: a JSON file, rewritten atomically
// (a temporary file, fsynced, renamed over the old one, the folder fsynced).
type fileBook struct {
	file string
	mu   sync.Mutex
	m    map[endpointKey]disabledEndpoint
}

func newFileBook(file string) *fileBook {
	return &fileBook{file: file, m: map[endpointKey]disabledEndpoint{}}
}

func (f *fileBook) load(context.Context) ([]disabledEndpoint, error) {
	raw, err := os.ReadFile(f.file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("broker: read disabled endpoints: %w", err)
	}
	var doc struct {
		Disabled []disabledEndpoint `json:"disabled"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("broker: read disabled endpoints %s: %w", f.file, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range doc.Disabled {
		f.m[endpointKey{d.Office, d.Channel}] = d
	}
	return doc.Disabled, nil
}

func (f *fileBook) put(_ context.Context, d disabledEndpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := endpointKey{d.Office, d.Channel}
	old, had := f.m[k]
	f.m[k] = d
	if err := f.saveLocked(); err != nil {
		if had {
			f.m[k] = old
		} else {
			delete(f.m, k)
		}
		return err
	}
	return nil
}

func (f *fileBook) remove(_ context.Context, office, channel string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := endpointKey{office, channel}
	old, had := f.m[k]
	if !had {
		return nil
	}
	delete(f.m, k)
	if err := f.saveLocked(); err != nil {
		f.m[k] = old
		return err
	}
	return nil
}

// watch returns at once: nobody else writes a gateway's own file.
func (f *fileBook) watch(context.Context, func(disabledEndpoint, bool)) {}

func (f *fileBook) saveLocked() error {
	list := make([]disabledEndpoint, 0, len(f.m))
	for _, d := range f.m {
		list = append(list, d)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Office != list[j].Office {
			return list[i].Office < list[j].Office
		}
		return list[i].Channel < list[j].Channel
	})
	raw, err := json.MarshalIndent(map[string]any{"disabled": list}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".endpoints-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing there
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.file); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// EndpointsBucket is the JetStream key-value bucket in which gateways sharing a
// JetStream store keep the disabled endpoints (`nats kv ls amtsbote_endpoints`).
const EndpointsBucket = "amtsbote_endpoints"

// kvBook is the book gateways share in a key-value bucket. A key names the office
// and channel (base64url, so any office id is a valid key and a deletion, which
// carries no value, still says what it removes); the value is the entry as JSON.
type kvBook struct {
	kv jetstream.KeyValue
	w  jetstream.KeyWatcher // from load: its initial values, then the changes
}

// openKVBook creates or opens the bucket, waiting for a cluster that is electing
// leaders as the queue's stream does.
func openKVBook(ctx context.Context, js jetstream.JetStream, replicas int) (*kvBook, error) {
	kv, err := bus.KeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      EndpointsBucket,
		Description: "amtsbote: office channels disabled after a 410 Gone, until an operator enables them",
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: disabled endpoints bucket: %w", err)
	}
	return &kvBook{kv: kv}, nil
}

func bookKey(office, channel string) string {
	return "e." + base64.RawURLEncoding.EncodeToString([]byte(office+"\x00"+channel))
}

func bookKeyOf(key string) (endpointKey, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(key, "e."))
	office, channel, ok := strings.Cut(string(raw), "\x00")
	return endpointKey{office, channel}, err == nil && ok && strings.HasPrefix(key, "e.")
}

// kvInitialWait bounds how long load waits for the bucket's current values.
const kvInitialWait = 30 * time.Second

// load starts the watcher that watch goes on with, on ctx (the broker's life), and
// reads the bucket's current values from it: no change between the two is missed.
func (b *kvBook) load(ctx context.Context) ([]disabledEndpoint, error) {
	w, err := b.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("broker: watch disabled endpoints: %w", err)
	}
	cur := map[endpointKey]disabledEndpoint{}
	timeout := time.After(kvInitialWait)
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("broker: watch disabled endpoints: the watcher ended before the current values")
			}
			if e == nil { // the current values are all there
				b.w = w
				out := make([]disabledEndpoint, 0, len(cur))
				for _, d := range cur {
					out = append(out, d)
				}
				return out, nil
			}
			if d, removed, ok := decodeBookEntry(e); ok && removed {
				delete(cur, endpointKey{d.Office, d.Channel})
			} else if ok {
				cur[endpointKey{d.Office, d.Channel}] = d
			}
		case <-timeout:
			_ = w.Stop()
			return nil, fmt.Errorf("broker: read disabled endpoints: no answer within %s", kvInitialWait)
		case <-ctx.Done():
			_ = w.Stop()
			return nil, ctx.Err()
		}
	}
}

// decodeBookEntry reads one entry of the bucket; a value that is not one (written
// by hand with `nats kv put`) is skipped.
func decodeBookEntry(e jetstream.KeyValueEntry) (d disabledEndpoint, removed, ok bool) {
	k, ok := bookKeyOf(e.Key())
	if !ok {
		return d, false, false
	}
	if e.Operation() != jetstream.KeyValuePut {
		return disabledEndpoint{Office: k.office, Channel: k.channel}, true, true
	}
	if json.Unmarshal(e.Value(), &d) != nil || d.Office != k.office || d.Channel != k.channel {
		return d, false, false
	}
	return d, false, true
}

func (b *kvBook) put(ctx context.Context, d disabledEndpoint) error {
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if _, err := b.kv.Put(ctx, bookKey(d.Office, d.Channel), raw); err != nil {
		return fmt.Errorf("broker: record disabled endpoint: %w", err)
	}
	return nil
}

func (b *kvBook) remove(ctx context.Context, office, channel string) error {
	if err := b.kv.Delete(ctx, bookKey(office, channel)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("broker: remove disabled endpoint: %w", err)
	}
	return nil
}

// watch hands on the bucket's changes (its own included: applying them again
// changes nothing) until ctx ends. The watcher is an ordered consumer, which
// nats.go re-creates after a gap (a server or leader loss, a missed heartbeat);
// it then delivers each key's latest value, so what this gateway holds catches
// up with the bucket, though a value superseded meanwhile is not seen.
func (b *kvBook) watch(ctx context.Context, fn func(disabledEndpoint, bool)) {
	if b.w == nil {
		return
	}
	defer func() { _ = b.w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-b.w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			if d, removed, ok := decodeBookEntry(e); ok {
				fn(d, removed)
			}
		}
	}
}
