package jsstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/nats-io/nats.go/jetstream"
)

// Blobs keeps package, attachment and reply bytes in a JetStream Object Store,
// named by their hex SHA-256: chunks of 128 KiB, each a stream message, and one
// meta message written last. Put returns after every chunk and the meta message are
// acknowledged (a quorum has them); reading checks the SHA-256 of what it streams.
type Blobs struct {
	obs    jetstream.ObjectStore
	stream jetstream.Stream // OBJ_<bucket>, for Walk
	bucket string
	opts   Options
}

var _ store.BlobStore = (*Blobs)(nil)

// Put stores b and returns its hex SHA-256. Identical content is stored once.
func (b *Blobs) Put(data []byte) (string, error) {
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
	defer cancel()
	var lastErr error
	for attempt := 0; ; attempt++ {
		c, cancelAttempt := context.WithTimeout(ctx, b.opts.RequestTimeout+time.Duration(len(data)>>20)*time.Second)
		info, err := b.obs.GetInfo(c, digest)
		if err == nil && !info.Deleted && info.Size == uint64(len(data)) {
			cancelAttempt()
			return digest, nil
		}
		if err == nil || errors.Is(err, jetstream.ErrObjectNotFound) {
			_, err = b.obs.Put(c, jetstream.ObjectMeta{Name: digest}, bytes.NewReader(data))
		}
		cancelAttempt()
		if err == nil {
			return digest, nil
		}
		lastErr = err
		if !sleep(ctx, backoff(attempt)) {
			return "", fmt.Errorf("jsstore: blob put: %w", lastErr)
		}
	}
}

// Open streams a blob. Reading fails if the bytes do not match the digest.
func (b *Blobs) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	if !isHexDigest(digest) {
		return nil, store.ErrBadDigest
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		r, err := b.obs.Get(ctx, digest)
		if err == nil {
			return r, nil
		}
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, fmt.Errorf("blob %s: %w", digest, store.ErrNotFound)
		}
		lastErr = err
		if !transient(err) || attempt >= 20 || !sleep(ctx, backoff(attempt)) {
			return nil, fmt.Errorf("jsstore: blob %s: %w", digest, lastErr)
		}
	}
}

func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
