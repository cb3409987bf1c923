package jsstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/amtsbote/amtsbote/store"
	"github.com/nats-io/nats.go/jetstream"
)

// PutStream implements store.BlobStore for the object store.
//
// An object's name is its digest and must be known before the first chunk is sent,
// while a stream's digest is known only at its end. So:
//
//   - with want (intake always has it: the SHA-256 the signed package declares) the
//     chunks go straight to the cluster under that name, and the reader obs.Put
//     consumes checks size and digest: a mismatch is an error before the meta
//     message, so obs.Put purges the chunks and the object never becomes visible.
//     Memory stays at one chunk.
//   - without want the stream is first written to a temporary local file while it
//     is hashed (bounded memory, disk instead), then uploaded from there.
//
// Content that is already stored is read through and checked, then touched as Put
// touches it, so the retention sweep of another node cannot remove it under a
// record about to commit. Unlike Put it does not retry: a reader cannot be read
// twice. If the touch loses to a deletion marker of the sweep, the stream is gone
// and PutStream fails (the caller answers "retry"); with a staged file it uploads.
func (b *Blobs) PutStream(ctx context.Context, r io.Reader, limit int64, want string) (store.StreamPut, error) {
	if want == "" {
		return b.putStaged(ctx, r, limit)
	}
	if !store.IsHexDigest(want) {
		return store.StreamPut{}, store.ErrBadDigest
	}
	return b.putStream(ctx, r, limit, want, nil)
}

// putStaged hashes r into a temporary file, then uploads the file under its digest.
func (b *Blobs) putStaged(ctx context.Context, r io.Reader, limit int64) (store.StreamPut, error) {
	f, err := os.CreateTemp("", "amtsbote-blob-*")
	if err != nil {
		return store.StreamPut{}, fmt.Errorf("jsstore: blob stage: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	if _, err := store.CopyLimited(ctx, io.MultiWriter(f, h), r, limit); err != nil {
		return store.StreamPut{}, err
	}
	digest := hex.EncodeToString(h.Sum(nil))
	return b.putStream(ctx, nil, limit, digest, func() (io.Reader, error) {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("jsstore: blob stage: %w", err)
		}
		return f, nil
	})
}

// putStream stores the content named want, read once from r, or (reopen != nil) as
// often as needed from reopen.
func (b *Blobs) putStream(ctx context.Context, r io.Reader, limit int64, want string, reopen func() (io.Reader, error)) (store.StreamPut, error) {
	src := func() (io.Reader, error) {
		if reopen != nil {
			return reopen()
		}
		if r == nil {
			// The one-shot stream was consumed by a touch that then lost to a deletion.
			return nil, fmt.Errorf("jsstore: blob %s was deleted while it was streamed; send it again", want)
		}
		out := r
		r = nil
		return out, nil
	}
	for attempt := 0; ; attempt++ {
		c, cancel := context.WithTimeout(ctx, b.opts.RequestTimeout)
		bm, intact, err := b.readStored(c, want)
		cancel()
		switch {
		case intact:
			in, err := src()
			if err != nil {
				return store.StreamPut{}, err
			}
			// Stored already: the sender's bytes must still be the declared ones.
			n, err := drainChecked(ctx, in, limit, want)
			if err != nil {
				return store.StreamPut{}, err
			}
			for {
				c, cancel := context.WithTimeout(ctx, b.opts.RequestTimeout)
				seq, terr := b.touchSeq(c, bm)
				if terr == nil {
					if b.beforeReadBack != nil {
						b.beforeReadBack(want)
					}
					bm2, _ := b.readMeta(c, want)
					cancel()
					return store.StreamPut{Digest: want, Size: n, Written: touchedAt(bm, seq, bm2)}, nil
				}
				if !errors.Is(terr, errConflict) && !transient(terr) {
					cancel()
					return store.StreamPut{}, fmt.Errorf("jsstore: blob touch: %w", terr)
				}
				bm, err = b.readMeta(c, want)
				cancel()
				if err != nil || !bm.live() {
					break // deleted meanwhile: upload (if the bytes can be read again)
				}
				if !sleep(ctx, jitter(attempt)) {
					return store.StreamPut{}, fmt.Errorf("jsstore: blob touch: %w", terr)
				}
			}
			continue
		case err == nil && bm.live():
			// chunks missing: upload below
		case err == nil && bm.info.Deleted && bm.info.NUID != "":
			// See put1: finish a delete that stopped before its purge.
			_ = b.stream.Purge(ctx, jetstream.WithPurgeSubject(b.chunkSubject(bm.info.NUID)))
		case err == nil || errors.Is(err, jetstream.ErrMsgNotFound):
		default:
			if transient(err) && sleep(ctx, backoff(attempt)) {
				continue
			}
			return store.StreamPut{}, fmt.Errorf("jsstore: blob %s: %w", want, err)
		}
		in, err := src()
		if err != nil {
			return store.StreamPut{}, err
		}
		cr := &checkedReader{ctx: ctx, r: in, limit: limit, want: want, h: sha256.New()}
		// obs.Put gets a context the request's end does not cancel: on a failing
		// reader (including the request's end, which checkedReader reports) it purges
		// the chunks sent so far, and that purge needs a live context.
		info, err := b.obs.Put(context.WithoutCancel(ctx), jetstream.ObjectMeta{Name: want}, fullReads{cr})
		if err != nil {
			if cr.err != nil {
				return store.StreamPut{}, cr.err
			}
			return store.StreamPut{}, fmt.Errorf("jsstore: blob put %s: %w", want, err)
		}
		put := store.StreamPut{Digest: want, Size: cr.n, Created: true}
		if b.beforeReadBack != nil {
			b.beforeReadBack(want)
		}
		c, cancel = context.WithTimeout(ctx, b.opts.RequestTimeout)
		bm, err = b.readMeta(c, want)
		cancel()
		switch {
		case err != nil:
			// Written stays zero: a DiscardNew of this put removes nothing.
		case bm.touched || bm.info.NUID != info.NUID:
			// Put again (or refreshed) by another request since the upload: its
			// record may reference the bytes, and the time read is that put's, so a
			// DiscardNew with it would remove them.
			put.Created, put.Written = false, bm.stored
		default:
			put.Written = bm.stored
		}
		return put, nil
	}
}

// fullReads fills every Read's buffer unless the stream ends. nats.go's
// ObjectStore.Put publishes one chunk per Read of its 128 KiB buffer, and an HTTP
// body (a multipart part of intake) hands out a few KiB per Read: a 20 MB
// attachment became ~4,900 chunks instead of 153, a message each to acknowledge by
// the quorum and to fetch again on every download, and more than nats.go's 4,000
// unacknowledged publishes, so concurrent uploads failed with "stalled with too
// many outstanding async published messages" (503 to the portal).
type fullReads struct{ r io.Reader }

func (f fullReads) Read(p []byte) (int, error) {
	n, err := io.ReadFull(f.r, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

// checkedReader passes r through, counting and hashing. It fails instead of ending
// when r has more than limit bytes or its digest is not want, so obs.Put never
// writes the meta message of refused bytes. Its errors are kept in err.
type checkedReader struct {
	ctx   context.Context
	r     io.Reader
	limit int64
	want  string
	h     hash.Hash
	n     int64
	err   error
}

func (c *checkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if err := c.ctx.Err(); err != nil {
		c.err = fmt.Errorf("jsstore: blob stream: %w", err)
		return 0, c.err
	}
	n, err := c.r.Read(p)
	if c.limit >= 0 && c.n+int64(n) > c.limit {
		c.err = fmt.Errorf("jsstore: blob stream over %d bytes: %w", c.limit, store.ErrTooLarge)
		return 0, c.err
	}
	c.n += int64(n)
	c.h.Write(p[:n])
	switch {
	case err == io.EOF:
		if got := hex.EncodeToString(c.h.Sum(nil)); got != c.want {
			c.err = fmt.Errorf("jsstore: blob of %d bytes is %s, expected %s: %w", c.n, got, c.want, store.ErrDigestMismatch)
			return 0, c.err
		}
		return n, io.EOF
	case err != nil:
		c.err = fmt.Errorf("jsstore: blob stream: %w", err)
		return 0, c.err
	}
	return n, nil
}

// drainChecked reads r to its end through checkedReader's rules, storing nothing.
func drainChecked(ctx context.Context, r io.Reader, limit int64, want string) (int64, error) {
	cr := &checkedReader{ctx: ctx, r: r, limit: limit, want: want, h: sha256.New()}
	buf := make([]byte, 128<<10)
	for {
		_, err := cr.Read(buf)
		if err == io.EOF {
			return cr.n, nil
		}
		if err != nil {
			return cr.n, err
		}
	}
}
