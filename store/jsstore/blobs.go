package jsstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Blobs keeps package, attachment and reply bytes in a JetStream Object Store,
// named by their hex SHA-256: chunks of 128 KiB, each a stream message, and one
// meta message written last. Put returns after every chunk and the meta message are
// acknowledged (a quorum has them); reading checks the SHA-256 of what it streams.
//
// The meta message of an object is also its clock for the retention sweep: its
// stored time is when the object was last put, and both a Put of existing content
// (the touch) and DeleteIfOlder change it only on condition that it is still the
// message they read (Nats-Expected-Last-Subject-Sequence), so the two cannot
// overtake each other unseen on any pair of nodes. A touch never moves that time
// backwards (hdrNotBefore), whichever node's clock stored it.
type Blobs struct {
	obs    jetstream.ObjectStore
	nc     *nats.Conn       // conditional publishes of meta messages
	stream jetstream.Stream // OBJ_<bucket>: Walk, meta reads, chunk purges
	bucket string
	opts   Options
	stale  *atomic.Int64 // the store's StaleListings
	// beforeMark, set by tests, runs in DeleteIfOlder between reading the meta
	// message and publishing the deletion marker: the window a racing Put hits.
	beforeMark func(digest string)
	// loseAck, set by tests, turns a stored deletion marker into a lost
	// acknowledgement.
	loseAck func() bool
	// beforeReadBack, set by tests, runs after an upload or a touch and before
	// the meta message is read back for its time: the window another request's
	// put of the same content hits.
	beforeReadBack func(digest string)
}

var _ store.BlobStore = (*Blobs)(nil)

// Put stores b and returns its hex SHA-256. Identical content is stored once.
//
// Content that is already stored is touched instead of uploaded again: its meta
// message is published again unchanged, on condition that it is still the last one
// (expected last subject sequence), so its stored time becomes now. Why: the caller
// is about to commit a record that references the digest, and the retention sweep
// of another node may have scanned the records before that commit and found the
// blob unreferenced and old. Its DeleteIfOlder expects the meta message it read; a
// touch that lands first makes that expectation fail, and a deletion marker that
// lands first makes the touch fail, after which Put reads the marker and uploads the
// bytes again. Either way the blob exists, with a fresh time, when Put returns.
func (b *Blobs) Put(data []byte) (string, error) {
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
	defer cancel()
	var lastErr error
	for attempt := 0; ; attempt++ {
		c, cancelAttempt := context.WithTimeout(ctx, b.opts.RequestTimeout+time.Duration(len(data)>>20)*time.Second)
		err := b.put1(c, digest, data)
		cancelAttempt()
		if err == nil {
			return digest, nil
		}
		lastErr = err
		wait := backoff(attempt)
		if errors.Is(err, errConflict) {
			// The meta message changed between read and touch (another touch, a new
			// upload, a deletion marker): read it again at once.
			wait = jitter(attempt)
		}
		if !sleep(ctx, wait) {
			return "", fmt.Errorf("jsstore: blob put: %w", lastErr)
		}
	}
}

// put1 is one attempt of Put: touch the stored object, or upload it.
func (b *Blobs) put1(ctx context.Context, digest string, data []byte) error {
	bm, intact, err := b.readStored(ctx, digest)
	switch {
	case intact && bm.info.Size == uint64(len(data)):
		return b.touch(ctx, bm)
	case err == nil && bm.info.Deleted && bm.info.NUID != "":
		// A delete may have stopped between its marker and the purge of the chunks,
		// and the upload below does not purge the chunks of a deleted object: finish
		// it. That chunk subject can never be live again (a new upload takes a new
		// NUID, and a touch expects the live meta message it read), so this purges
		// nothing anyone reads. Best effort: the upload is what Put is about.
		_ = b.stream.Purge(ctx, jetstream.WithPurgeSubject(b.chunkSubject(bm.info.NUID)))
	case err == nil || errors.Is(err, jetstream.ErrMsgNotFound):
	default:
		return err
	}
	// Missing, deleted, of another size or without its chunks: upload. A new NUID
	// and a meta message written last (with rollup), so a DeleteIfOlder that read the
	// earlier state fails its expectation against it.
	_, err = b.obs.Put(ctx, jetstream.ObjectMeta{Name: digest}, bytes.NewReader(data))
	return err
}

// readStored reads a digest's meta message (readMeta) and reports whether it is a
// live object with its chunks: only such an object may be touched instead of
// uploaded. nats.go's ObjectStore.Put purges the chunks it wrote when the meta
// message's acknowledgement is lost — also when the meta message was stored (a
// NATS node killed at that moment). A retry then found a live object, touched it
// and reported the blob stored: a 201 for a package whose bytes were gone
// (e2e.TestClusterKillsLoseNothing: the office's download failed for good). Such
// an object is uploaded again, and the new meta message replaces the broken one.
// The last chunk is looked for: a purge removes them all.
func (b *Blobs) readStored(ctx context.Context, digest string) (bm *blobMeta, intact bool, err error) {
	bm, err = b.readMeta(ctx, digest)
	if err != nil || !bm.live() || bm.info.Size == 0 {
		return bm, err == nil && bm.live(), err
	}
	_, err = b.stream.GetLastMsgForSubject(ctx, b.chunkSubject(bm.info.NUID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return bm, false, nil
	}
	return bm, err == nil, err
}

// blobMeta is the last message of an object's meta subject, read from the stream
// leader.
type blobMeta struct {
	subject string
	seq     uint64
	// stored is the object's time for the sweep and DiscardNew: the server's time
	// of storing the message, or its hdrNotBefore if that is later.
	stored  time.Time
	touched bool   // a touch stored it (it has hdrNotBefore), not an upload
	data    []byte // the meta JSON as stored
	info    jetstream.ObjectInfo
}

// hdrNotBefore is what a touch sets on the meta message it publishes: the time
// (Unix nanoseconds) just after the one of the message it replaces, which the
// new message's time is never earlier than (metaTime). Each message is timed by
// the clock of the stream leader that stores it, and leadership moves: a touch
// stored by a leader whose clock was behind the one that stored the upload made
// the object look older than the upload, and the uploading request's DiscardNew
// (DeleteIfOlder with its own time) removed the bytes the touching request had
// been acknowledged with. An NTP step back on one leader did the same.
const hdrNotBefore = "Amtsbote-Not-Before"

// metaTime is a meta message's time: the server's, or its hdrNotBefore if later.
func metaTime(stored time.Time, h nats.Header) (at time.Time, touched bool) {
	v := h.Get(hdrNotBefore)
	if v == "" {
		return stored, false
	}
	ns, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return stored, true
	}
	if nb := time.Unix(0, ns); nb.After(stored) {
		return nb, true
	}
	return stored, true
}

// live reports whether the message describes an object that Get would stream.
func (bm *blobMeta) live() bool { return !bm.info.Deleted && bm.info.NUID != "" }

// metaSubject is the subject of an object's meta message, named as nats.go's object
// store names it: $O.<bucket>.M.<base64url of the name, padded>.
func (b *Blobs) metaSubject(name string) string {
	return "$O." + b.bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(name))
}

// chunkSubject is the subject of an object's chunks: $O.<bucket>.C.<nuid>.
func (b *Blobs) chunkSubject(nuid string) string { return "$O." + b.bucket + ".C." + nuid }

// readMeta reads the last meta message of a digest (one request, no retries).
// jetstream.ErrMsgNotFound: never stored (or purged).
func (b *Blobs) readMeta(ctx context.Context, digest string) (*blobMeta, error) {
	return b.readMetaAt(ctx, b.metaSubject(digest))
}

// readMetaAt is readMeta by the meta subject (a listing's, which names no digest).
func (b *Blobs) readMetaAt(ctx context.Context, subject string) (*blobMeta, error) {
	m, err := b.stream.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return nil, err
	}
	bm := &blobMeta{subject: subject, seq: m.Sequence, data: m.Data}
	bm.stored, bm.touched = metaTime(m.Time, m.Header)
	if err := json.Unmarshal(m.Data, &bm.info); err != nil {
		return nil, fmt.Errorf("jsstore: blob meta %s: %w", subject, err)
	}
	return bm, nil
}

// metaMsg is a meta message as nats.go's object store publishes one (rollup of the
// subject, so only the last meta message stays), on condition that bm is still the
// last message of its subject.
func metaMsg(bm *blobMeta, data []byte) *nats.Msg {
	m := nats.NewMsg(bm.subject)
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Header.Set(hdrExpectedSubSeq, strconv.FormatUint(bm.seq, 10))
	m.Data = data
	return m
}

// touch publishes bm's meta message again, byte for byte, so its stored time becomes
// now (or just after bm's: hdrNotBefore); errConflict if bm is no longer the last
// message of its subject.
func (b *Blobs) touch(ctx context.Context, bm *blobMeta) error {
	_, err := b.touchSeq(ctx, bm)
	return err
}

// touchSeq is touch that also returns the touch's sequence.
func (b *Blobs) touchSeq(ctx context.Context, bm *blobMeta) (uint64, error) {
	m := metaMsg(bm, bm.data)
	m.Header.Set(hdrNotBefore, strconv.FormatInt(bm.stored.Add(time.Nanosecond).UnixNano(), 10))
	return requestSeq(ctx, b.nc, m)
}

// touchedAt is the time of the touch of bm stored under seq, read as after: its
// own if after is that message, else (touched again meanwhile, by another
// request) the earliest it can have had, just after bm's. That later touch's
// time is not this one's to report: a DiscardNew that took it removed the bytes
// that other request references.
func touchedAt(bm *blobMeta, seq uint64, after *blobMeta) time.Time {
	if after != nil && after.seq == seq {
		return after.stored
	}
	return bm.stored.Add(time.Nanosecond)
}

// Refresh implements store.Refresher: the meta message is touched as a Put of
// stored content touches it (on condition that it is still the last one), so a
// DeleteIfOlder on any node that read the older time fails its expectation, and
// one that comes later sees the new time. A blob that is gone, or whose chunks
// are, is store.ErrNotFound: the caller's bytes are not there to refresh.
func (b *Blobs) Refresh(ctx context.Context, digest string) (time.Time, error) {
	if !store.IsHexDigest(digest) {
		return time.Time{}, store.ErrBadDigest
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	var lastErr error
	for attempt := 0; ; attempt++ {
		c, cancelAttempt := context.WithTimeout(ctx, b.opts.RequestTimeout)
		bm, intact, err := b.readStored(c, digest)
		if err == nil && intact {
			var seq uint64
			if seq, err = b.touchSeq(c, bm); err == nil {
				if b.beforeReadBack != nil {
					b.beforeReadBack(digest)
				}
				var bm2 *blobMeta
				if bm2, err = b.readMeta(c, digest); err == nil {
					cancelAttempt()
					return touchedAt(bm, seq, bm2), nil
				}
			}
		}
		cancelAttempt()
		switch {
		case err == nil || errors.Is(err, jetstream.ErrMsgNotFound):
			return time.Time{}, fmt.Errorf("jsstore: blob %s: %w", digest, store.ErrNotFound)
		case errors.Is(err, errConflict):
			lastErr = err // touched or deleted meanwhile: read again at once
			if !sleep(ctx, jitter(attempt)) {
				return time.Time{}, fmt.Errorf("jsstore: blob refresh %s: %w", digest, lastErr)
			}
		case transient(err):
			lastErr = err
			if !sleep(ctx, backoff(attempt)) {
				return time.Time{}, fmt.Errorf("jsstore: blob refresh %s: %w", digest, lastErr)
			}
		default:
			return time.Time{}, fmt.Errorf("jsstore: blob refresh %s: %w", digest, err)
		}
	}
}

// mark replaces bm by a deletion marker as nats.go's ObjectStore.Delete writes it
// (the same info with Deleted set, size, chunks and digest cleared and no time);
// errConflict if bm is no longer the last message of its subject. The chunks stay
// until purgeChunks.
func (b *Blobs) mark(ctx context.Context, bm *blobMeta) error {
	info := bm.info
	info.Deleted = true
	info.Size, info.Chunks, info.Digest = 0, 0, ""
	info.ModTime = time.Time{}
	data, err := json.Marshal(&info)
	if err != nil {
		return err
	}
	err = request(ctx, b.nc, metaMsg(bm, data))
	if err == nil && b.loseAck != nil && b.loseAck() {
		err = fmt.Errorf("%w: acknowledgement dropped by test", errAmbiguous)
	}
	return err
}

// purgeChunks removes the chunks of a marked object, retrying transient failures.
func (b *Blobs) purgeChunks(ctx context.Context, nuid string) error {
	var lastErr error
	for attempt := 0; ; attempt++ {
		c, cancel := context.WithTimeout(ctx, b.opts.RequestTimeout)
		err := b.stream.Purge(c, jetstream.WithPurgeSubject(b.chunkSubject(nuid)))
		cancel()
		if err == nil {
			return nil
		}
		lastErr = err
		if !transient(err) || !sleep(ctx, backoff(attempt)) {
			return fmt.Errorf("jsstore: purge chunks %s: %w", nuid, lastErr)
		}
	}
}

// DeleteIfOlder removes a blob only if its meta message was stored (by the upload or
// the last touch) before the given time; it reports whether it did.
//
// Why it is safe beside intake on other nodes: the retention sweep calls it for
// blobs no record referenced when it scanned, but a record committed after the scan
// may reference the digest, its intake having put the same content again. That Put
// touched the meta message (a newer time) or uploaded the content anew. The
// deletion marker is published on condition that the meta message read here, the
// one found old, is still the last one (Nats-Expected-Last-Subject-Sequence), so a
// touch or upload in between makes it fail, and DeleteIfOlder returns false (the
// next sweep looks again). A marker that lands first makes the touch fail, and that
// Put uploads again. Only then are the chunks purged; a crash before the purge
// leaves a marker whose chunks a later Delete (or Put) of the digest purges.
func (b *Blobs) DeleteIfOlder(digest string, before time.Time) (bool, error) {
	if !store.IsHexDigest(digest) {
		return false, store.ErrBadDigest
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
	defer cancel()
	// marked is the NUID of a marker sent without an acknowledgement: it may be
	// stored, so a conflict afterwards may be our own marker.
	var marked string
	var lastErr error
	for attempt := 0; ; attempt++ {
		c, cancelAttempt := context.WithTimeout(ctx, b.opts.RequestTimeout)
		bm, err := b.readMeta(c, digest)
		cancelAttempt()
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			lastErr = err
			if !transient(err) || !sleep(ctx, backoff(attempt)) {
				return false, fmt.Errorf("jsstore: blob %s: %w", digest, lastErr)
			}
			continue
		}
		if marked != "" && (bm == nil || bm.info.NUID != marked) {
			// Our marker was stored and the content uploaded again since, or it was not
			// and an upload replaced the object: no meta message names these chunks
			// any more. Best effort; a leftover costs space, not data.
			_ = b.purgeChunks(ctx, marked)
			marked = ""
		}
		switch {
		case bm == nil:
			return false, nil
		case bm.info.Deleted:
			if marked != "" {
				// Our unacknowledged marker (or another deleter's of the same object).
				return true, b.finishDelete(ctx, digest, marked)
			}
			return false, nil
		case !bm.live() || !bm.stored.Before(before):
			return false, nil
		}
		if b.beforeMark != nil {
			b.beforeMark(digest)
		}
		c, cancelAttempt = context.WithTimeout(ctx, b.opts.RequestTimeout)
		err = b.mark(c, bm)
		cancelAttempt()
		switch {
		case err == nil:
			return true, b.finishDelete(ctx, digest, bm.info.NUID)
		case errors.Is(err, errConflict) && marked == "":
			// Touched, uploaded again or deleted since the read: not ours to remove now.
			return false, nil
		case errors.Is(err, errAmbiguous):
			marked = bm.info.NUID
		case !errors.Is(err, errConflict):
			return false, fmt.Errorf("jsstore: blob %s: mark deleted: %w", digest, err)
		}
		// No acknowledgement (or a conflict after one that may be our own marker):
		// read again.
		lastErr = err
		if !sleep(ctx, backoff(attempt)) {
			return false, fmt.Errorf("jsstore: blob %s: %w", digest, lastErr)
		}
	}
}

// finishDelete purges the chunks of an object whose marker is stored. The blob is
// gone either way; an error means its chunks stay until a later Delete or Put.
func (b *Blobs) finishDelete(ctx context.Context, digest, nuid string) error {
	if err := b.purgeChunks(ctx, nuid); err != nil {
		return fmt.Errorf("jsstore: blob %s marked deleted, chunks left: %w", digest, err)
	}
	return nil
}

// Open streams a blob. Reading fails if the bytes do not match the digest.
//
// Why not ObjectStore.Get: it reads with a push consumer whose callback writes
// into a pipe. While the reader is slower than the cluster (an office's download
// over its link), the callback blocks and the client library buffers the chunks
// the server keeps pushing — up to 64 MB per open blob, which made the gateway's
// peak memory grow with every download (e2e.TestBigAttachmentBoundedMemoryJetStream:
// VmHWM 152 MB for 512 MiB). Here chunks (128 KiB each) are read when the reader
// has used up the last ones, two ways:
//   - by message gets from the stream's leader, one chunk each: for small blobs
//     (every package) one request instead of creating, fetching from and deleting
//     a consumer, and always right — the leader holds every chunk the meta message,
//     itself read from the leader, promises;
//   - for big blobs, by one pull consumer that fetches chunksAhead chunks at a
//     time (~95 MB/s on loopback against 10 MB/s for gets). That consumer has one
//     replica, and the server may place it on a node that restarted and has not
//     caught up on the stream yet (it prefers caught-up nodes by the cluster's meta
//     state, not the stream's). So the first fetch that fails, comes up empty or
//     skips a delivery ends the consumer and the rest is read by gets from the
//     leader.
//
// Why not the client's ordered consumer for that: in fetch mode it makes a new
// consumer on the server for every Fetch and deletes the last one from a goroutine
// of its own — a create per MiB read, and consumers the reader cannot account for
// after Close (TestOpenReadsSmallBlobsWithoutConsumers saw them in one run of 25
// under load). The consumer here is made once, checked for gaps by its delivery
// sequence (what the ordered consumer would check), and deleted when the read
// ends.
//
// (The empty reads seen in e2e.TestClusterKillsLoseNothing were chunks that a
// failed upload had purged under a stored meta message; put1 explains and repairs
// that. The consumer's placement above is a risk by the server's rules, not one
// seen.)
func (b *Blobs) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	if !store.IsHexDigest(digest) {
		return nil, store.ErrBadDigest
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		c, cancel := context.WithTimeout(ctx, b.opts.RequestTimeout)
		bm, err := b.readMeta(c, digest)
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && !bm.live()) {
			return nil, fmt.Errorf("blob %s: %w", digest, store.ErrNotFound)
		}
		if err == nil {
			r := &chunkReader{ctx: ctx, stream: b.stream, subject: b.chunkSubject(bm.info.NUID), digest: digest,
				left: int64(bm.info.Size), h: sha256.New(), wait: b.opts.RequestTimeout}
			if r.left > consumerAbove {
				c, cancel := context.WithTimeout(ctx, b.opts.RequestTimeout)
				// Without a consumer (none could be made now) the gets read it all.
				r.cons, _ = b.stream.CreateConsumer(c, jetstream.ConsumerConfig{
					FilterSubject: r.subject,
					DeliverPolicy: jetstream.DeliverAllPolicy,
					AckPolicy:     jetstream.AckNonePolicy,
					MemoryStorage: true,
					Replicas:      1,
					// A reader that stops without Close (a crashed gateway) leaves it
					// to the server for this long; one slower than this between
					// fetches finds it gone and reads on by gets.
					InactiveThreshold: consumerIdle,
				})
				cancel()
			}
			// The first chunk now: a blob that cannot be read fails here, before an
			// HTTP answer has promised its bytes with a 200 and a length.
			if err := r.fill(); err != nil && err != io.EOF {
				r.Close()
				return nil, err
			}
			return r, nil
		}
		lastErr = err
		if !transient(err) || attempt >= 20 || !sleep(ctx, backoff(attempt)) {
			return nil, fmt.Errorf("jsstore: blob %s: %w", digest, lastErr)
		}
	}
}

const (
	// consumerAbove is the blob size above which chunks are fetched by a consumer.
	consumerAbove = 1 << 20
	// chunksAhead is how many chunks (128 KiB each) one fetch asks for: few round
	// trips, bounded memory.
	chunksAhead = 8
	// consumerIdle is how long the server keeps a blob read's consumer unused.
	consumerIdle = 2 * time.Minute
)

// chunkReader reads an object's chunks one by one and checks the SHA-256 of all
// of them against the digest at the end.
type chunkReader struct {
	ctx     context.Context
	stream  jetstream.Stream
	subject string // the object's chunk subject
	seq     uint64 // the stream sequence after the last chunk read
	cons    jetstream.Consumer
	dseq    uint64                                                           // the consumer's delivery sequence of the last chunk it delivered
	fetch   func(int, ...jetstream.FetchOpt) (jetstream.MessageBatch, error) // tests: instead of cons.Fetch
	batch   jetstream.MessageBatch                                           // chunks fetched, not read yet
	got     int                                                              // chunks of batch read
	digest  string
	left    int64 // bytes still to come, by the object's meta message
	buf     []byte
	h       hash.Hash
	wait    time.Duration
	err     error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if err := r.fill(); err != nil {
		return 0, err
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// fill reads the next chunk into buf when buf is used up; it returns the reader's
// error, io.EOF after the last chunk (whose digest then matched).
func (r *chunkReader) fill() error {
	for len(r.buf) == 0 {
		if r.err != nil {
			return r.err
		}
		if r.left == 0 {
			if hex.EncodeToString(r.h.Sum(nil)) != r.digest {
				r.err = fmt.Errorf("jsstore: blob %s: the bytes read do not match the digest", r.digest)
			} else {
				r.err = io.EOF
			}
			continue
		}
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		d, err := r.next()
		if err != nil {
			r.err = fmt.Errorf("jsstore: blob %s: read a chunk: %w", r.digest, err)
			continue
		}
		if int64(len(d)) > r.left {
			r.err = fmt.Errorf("jsstore: blob %s: more bytes than its size", r.digest)
			continue
		}
		r.h.Write(d)
		r.left -= int64(len(d))
		r.buf = d
	}
	return nil
}

// next returns the next chunk: from the consumer's batch while it delivers,
// otherwise the first message on the chunk subject after the last chunk read, from
// the leader. "Not found" for a chunk the meta message promised, and a leader being
// chosen (a node went down during a long read), are retried, as every request of
// this store is.
func (r *chunkReader) next() ([]byte, error) {
	if d, ok := r.fetched(); ok {
		return d, nil
	}
	for attempt := 0; ; attempt++ {
		c, cancel := context.WithTimeout(r.ctx, r.wait)
		m, err := r.stream.GetMsg(c, r.seq, jetstream.WithGetMsgSubject(r.subject))
		cancel()
		if err == nil {
			r.seq = m.Sequence + 1
			return m.Data, nil
		}
		// A chunk the meta message promised and the leader does not have: a leader
		// still applying its log has it in a moment; chunks a failed upload purged
		// never come (see put1), so "not found" gets a few tries only.
		missing := errors.Is(err, jetstream.ErrMsgNotFound)
		if !(missing || transient(err)) || (missing && attempt >= 5) || attempt >= 20 || !sleep(r.ctx, backoff(attempt)) {
			return nil, err
		}
	}
}

// fetched returns the next chunk through the consumer; false when there is no
// consumer, or it failed, came up empty or skipped a delivery (then it is ended:
// the gets go on from the last chunk it delivered).
//
// A skipped delivery: with no acks the server counts a chunk as delivered once it
// sent it, also to a fetch whose wait had just run out on this side; the next
// fetch then starts after it. The delivery sequence shows the hole.
func (r *chunkReader) fetched() ([]byte, bool) {
	for r.cons != nil {
		if r.batch != nil {
			if m, ok := <-r.batch.Messages(); ok {
				md, err := m.Metadata()
				if err != nil || md.Sequence.Consumer != r.dseq+1 {
					break
				}
				r.got++
				r.dseq = md.Sequence.Consumer
				r.seq = md.Sequence.Stream + 1
				return m.Data(), true
			}
			empty := r.got == 0
			r.batch, r.got = nil, 0
			if empty {
				break
			}
		}
		fetch := r.cons.Fetch
		if r.fetch != nil {
			fetch = r.fetch
		}
		b, err := fetch(chunksAhead, jetstream.FetchMaxWait(r.wait))
		if err != nil {
			break
		}
		r.batch = b
	}
	r.endConsumer()
	return nil, false
}

// endConsumer removes the consumer: left alone, the server would keep it for its
// inactivity threshold (consumerIdle), one per download.
func (r *chunkReader) endConsumer() {
	if r.cons == nil {
		return
	}
	if info := r.cons.CachedInfo(); info != nil {
		ctx, cancel := context.WithTimeout(context.Background(), r.wait)
		_ = r.stream.DeleteConsumer(ctx, info.Name) // best effort: it times out anyway
		cancel()
	}
	r.cons, r.batch = nil, nil
}

// Close ends the read.
func (r *chunkReader) Close() error {
	if r.err == nil {
		r.err = errors.New("jsstore: blob read after Close")
	}
	r.endConsumer()
	return nil
}

// The retention, an erasure and DiscardNew delete blobs only through it.
var _ store.Refresher = (*Blobs)(nil)

var _ store.CondDeleter = (*Blobs)(nil)
