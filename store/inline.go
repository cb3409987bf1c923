package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Small blobs live in the bbolt file.
//
// A blob file costs two fsyncs that nothing can share (the file, then its folder for
// the rename) plus an open and a rename; counted over a closed-loop bench they were
// almost half of all flushes of the disk (docs/performance.md). A blob of at most
// InlineMax bytes — a typical application package of 10–50 KB, a small attachment —
// is written into the bucket "blobs" instead, through the store's group commit, so it
// shares its fsyncs with every other write of the moment. Bigger blobs stay files:
// bbolt would copy them through its page cache and rewrite them on every
// compaction. Both kinds are read, walked and swept alike; content that is already
// a file stays a file (a Put of it touches the file).
//
// Each value is kept alone under its digest (wbucket.PutAlone: a nested bucket, so
// it has a page of its own and is written once, not again with its neighbours) and
// is the time it was written or put again (8 bytes, Unix nanoseconds, big-endian;
// never earlier than the one before, later says why),
// the blob's size (8 bytes) and the bytes compressed when that is smaller (an XML
// package shrinks to about a quarter, and its certificates to a token, known.go).
// Builds before schema 2 stored the value plainly under the digest; getAlone reads
// both. A Put of existing content rewrites the value with the new time in a
// transaction, so DeleteIfOlder, in a transaction too, can never remove content
// that a record committed a moment later needs.
const InlineMax = 128 << 10

var bucketBlobs = []byte("blobs")

// inlineHeader: the time, the size and a flag (0: as it is, else the marker of
// how it is packed, store.go: 1 deflated, 2 zstd, 3 zstd with known certificates
// replaced, 4 S2, 5 S2 with known certificates replaced (written since 2026-12-03;
// 1–3 by earlier builds), see known.go) before an inline blob's bytes. The flag is explicit:
// unlike records and receipts, a blob may start with any byte, so pack's marker
// alone could not tell.
const inlineHeader = 17

// inlineValue is the stored value of an inline blob, its time still to be set
// (the first 8 bytes): S2 of the blob with its known certificates replaced
// (packCerts), own being the learned ones this write's transaction records.
//
// S2, not zstd as before: in the gateway zstd's fastest level took ~90 µs of CPU
// per 14 KB package (its 256 KB match table is cold between calls, and the hot
// loop of a micro-benchmark, 17 µs, hides that), about 6 % of all the CPU a
// package costs end to end; S2 takes ~15 µs. S2's output is about 60 % larger
// (~3.8 against ~2.6 KB for the bench's package): still one page of its own, so
// the bytes written do not change (docs/performance.md, "The package in S2").
// The packed bytes go into a scratch buffer, since they are copied into the value
// anyway: S2's worst-case output buffer is no garbage per package.
func (db *DB) inlineValue(b []byte, own ...learned) []byte {
	op := scratch.Get().(*[]byte)
	defer scratch.Put(op)
	p := db.packCerts(b, func(v []byte) []byte {
		p := packInto(*op, v)
		if len(p) < len(v) {
			keepScratch(op, p)
		}
		return p
	}, own...)
	v := make([]byte, inlineHeader, inlineHeader+len(p))
	binary.BigEndian.PutUint64(v[8:], uint64(len(b)))
	if len(p) < len(b) { // packCerts returns b itself when compressing does not help
		v[16] = p[0]
		p = p[1:] // pack's marker byte
	}
	return append(v, p...)
}

// inlineTime is the time an inline value was written or put again.
func inlineTime(v []byte) time.Time { return time.Unix(0, int64(binary.BigEndian.Uint64(v))) }

// inlineBytes is the blob in an inline value.
func (db *DB) inlineBytes(v []byte) ([]byte, error) {
	flag := v[16]
	if flag == 0 {
		return append([]byte{}, v[inlineHeader:]...), nil
	}
	if n := binary.BigEndian.Uint64(v[8:16]); n > InlineMax {
		return nil, fmt.Errorf("store: blob of %d bytes inline, more than an inline blob holds", n)
	}
	out, err := db.known.unpackAs(flag, v[inlineHeader:])
	if err != nil {
		return nil, fmt.Errorf("store: blob: %w", err)
	}
	if len(out) > InlineMax {
		return nil, fmt.Errorf("store: decompress blob: %d bytes, more than an inline blob holds", len(out))
	}
	return out, nil
}

// dbBlobs is DB's BlobStore: inline blobs in bbolt, bigger ones as files.
type dbBlobs struct{ db *DB }

var _ BlobStore = dbBlobs{}

// Put stores b and returns its hex SHA-256; durable when it returns.
func (bs dbBlobs) Put(b []byte) (string, error) {
	if len(b) > InlineMax {
		return bs.db.blobs.Put(b)
	}
	sum := sha256.Sum256(b)
	digest := hex.EncodeToString(sum[:])
	if _, err := os.Stat(bs.db.blobs.path(digest)); err == nil {
		return bs.db.blobs.Put(b) // a file already: touch it
	}
	v := bs.db.inlineValue(b)
	err := bs.db.batch(func(tx *wtx) error {
		b := tx.bucket(bucketBlobs)
		at := time.Now()
		if old := getAlone(b.b, []byte(digest)); len(old) >= inlineHeader {
			at = later(inlineTime(old), at) // never backwards (later says why)
		}
		binary.BigEndian.PutUint64(v, uint64(at.UnixNano()))
		return b.PutAlone([]byte(digest), v)
	})
	if err != nil {
		return "", fmt.Errorf("store: blob: %w", err)
	}
	return digest, nil
}

// inlineBlob is an inline blob opened for reading; it can seek (range requests).
type inlineBlob struct{ *bytes.Reader }

func (inlineBlob) Close() error { return nil }

// Open opens a blob for reading.
func (bs dbBlobs) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	if !IsHexDigest(digest) {
		return nil, ErrBadDigest
	}
	var data []byte
	found := false
	err := bs.db.view(func(tx *bolt.Tx) error {
		v := getAlone(tx.Bucket(bucketBlobs), []byte(digest))
		if len(v) < inlineHeader {
			return nil
		}
		var err error
		data, err = bs.db.inlineBytes(v)
		found = true // an empty blob is found too
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: blob %s: %w", digest, err)
	}
	if found {
		return inlineBlob{bytes.NewReader(data)}, nil
	}
	return bs.db.blobs.Open(ctx, digest)
}

// Delete removes a blob; ErrNotFound if there is none.
func (bs dbBlobs) Delete(digest string) error {
	if !IsHexDigest(digest) {
		return ErrBadDigest
	}
	found := false
	err := bs.db.update(func(tx *wtx) error {
		b := tx.bucket(bucketBlobs)
		found = getAlone(b.b, []byte(digest)) != nil
		if !found {
			return nil
		}
		return b.Delete([]byte(digest))
	})
	if err != nil {
		return fmt.Errorf("store: delete blob: %w", err)
	}
	if found {
		return nil
	}
	_, err = bs.db.deletions.deleting(digest, func() (bool, error) {
		err := bs.db.blobs.Delete(digest)
		return err == nil, err
	})
	return err
}

// DeleteIfOlder removes a blob only if it was last written (or put again) before
// the given time, and reports whether it did (the retention sweep).
func (bs dbBlobs) DeleteIfOlder(digest string, before time.Time) (bool, error) {
	if !IsHexDigest(digest) {
		return false, ErrBadDigest
	}
	found, gone := false, false
	// Group-committed: a retention sweep deletes many blobs at once (broker.GC),
	// and each in a commit of its own waited for two flushes of its own. fn may
	// run again after a rolled-back batch, so it starts from nothing.
	err := bs.db.batch(func(tx *wtx) error {
		found, gone = false, false
		b := tx.bucket(bucketBlobs)
		v := getAlone(b.b, []byte(digest))
		if found = v != nil; !found || len(v) < inlineHeader {
			return nil
		}
		if !inlineTime(v).Before(before) {
			return nil
		}
		gone = true
		return b.Delete([]byte(digest))
	})
	if err != nil {
		return false, fmt.Errorf("store: delete blob: %w", err)
	}
	if found {
		return gone, nil
	}
	return bs.db.deletions.deleting(digest, func() (bool, error) { return bs.db.blobs.DeleteIfOlder(digest, before) })
}

// Walk calls fn for every blob, inline ones first, until fn returns false.
// The inline ones are read scanChunk at a time, one read transaction each, for
// the reason Scan gives: the retention's sweep walks them all every hour.
func (bs dbBlobs) Walk(fn func(digest string, size int64, written time.Time) bool) error {
	stopped := false
	var after []byte
	err := bs.db.viewInChunks(func(tx *bolt.Tx) (bool, error) {
		b := tx.Bucket(bucketBlobs)
		c := b.Cursor()
		k, v := c.First()
		if after != nil {
			if k, v = c.Seek(after); bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		for n := 0; k != nil; k, v = c.Next() {
			if scanChunk > 0 && n == scanChunk {
				return true, nil
			}
			n++
			after = append(after[:0], k...)
			if v == nil {
				v = getAlone(b, k)
			}
			if len(v) < inlineHeader {
				continue
			}
			if stopped = !fn(string(k), int64(binary.BigEndian.Uint64(v[8:])), inlineTime(v)); stopped {
				return false, nil
			}
		}
		return false, nil
	})
	if err != nil || stopped {
		return err
	}
	return bs.db.blobs.Walk(fn)
}

// PutStream stores a stream as a blob file (streams are for content of any size).
// Content that is already an inline blob stays inline: its time is refreshed in a
// transaction and the file this call may just have created is removed again, so
// the put reports Created=false and a later DiscardNew can never remove the inline
// blob other records reference.
func (bs dbBlobs) PutStream(ctx context.Context, r io.Reader, limit int64, want string) (StreamPut, error) {
	p, err := bs.db.blobs.PutStream(ctx, r, limit, want)
	if err != nil {
		return p, err
	}
	inline, now, err := bs.touchInline(p.Digest)
	if err != nil {
		return StreamPut{}, fmt.Errorf("store: blob: %w", err)
	}
	if !inline {
		return p, nil
	}
	if p.Created {
		if err := bs.db.blobs.Delete(p.Digest); err != nil {
			return StreamPut{}, fmt.Errorf("store: blob: %w", err)
		}
	}
	return StreamPut{Digest: p.Digest, Size: p.Size, Created: false, Written: now}, nil
}

// Refresh implements Refresher: an inline blob's time is rewritten in a
// transaction (the one DeleteIfOlder's batch is ordered with), a file's by the
// file store.
func (bs dbBlobs) Refresh(ctx context.Context, digest string) (time.Time, error) {
	if !IsHexDigest(digest) {
		return time.Time{}, ErrBadDigest
	}
	inline, now, err := bs.touchInline(digest)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: blob refresh: %w", err)
	}
	if inline {
		return now, nil
	}
	return bs.db.blobs.Refresh(ctx, digest)
}

// touchInline moves the time of digest's inline blob to now (or just after its
// last one: later), in a transaction
// that DeleteIfOlder's batch is ordered with, and reports whether there is one.
// A read comes first: a blob kept as a file (every streamed attachment but
// content stored inline before) costs no commit, which waited for the commit
// window and two flushes per part and per refresh.
func (bs dbBlobs) touchInline(digest string) (inline bool, at time.Time, err error) {
	err = bs.db.view(func(tx *bolt.Tx) error {
		inline = len(getAlone(tx.Bucket(bucketBlobs), []byte(digest))) >= inlineHeader
		return nil
	})
	if err != nil || !inline {
		return false, at, err
	}
	err = bs.db.update(func(tx *wtx) error {
		b := tx.bucket(bucketBlobs)
		v := getAlone(b.b, []byte(digest))
		if inline = len(v) >= inlineHeader; !inline {
			return nil // deleted since the read: the file store's answer stands
		}
		at = later(inlineTime(v), time.Now())
		nv := append([]byte{}, v...)
		binary.BigEndian.PutUint64(nv, uint64(at.UnixNano()))
		return b.PutAlone([]byte(digest), nv)
	})
	return inline, at, err
}

var (
	_ CondDeleter = dbBlobs{}
	_ CondDeleter = (*Blobs)(nil)
	_ Refresher   = dbBlobs{}
	_ Refresher   = (*Blobs)(nil)
)
