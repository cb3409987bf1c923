package jsstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/nats-io/nats.go/jetstream"
)

// chunkCount is how many messages the stream holds on one chunk subject.
func chunkCount(t *testing.T, bs *Blobs, nuid string) uint64 {
	t.Helper()
	subject := bs.chunkSubject(nuid)
	info, err := bs.stream.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

func mustMeta(t *testing.T, bs *Blobs, digest string) *blobMeta {
	t.Helper()
	bm, err := bs.readMeta(context.Background(), digest)
	if err != nil {
		t.Fatalf("meta of %s: %v", digest, err)
	}
	return bm
}

func readBlob(t *testing.T, bs *Blobs, digest string) []byte {
	t.Helper()
	rc, err := bs.Open(context.Background(), digest)
	if err != nil {
		t.Fatalf("Open %s: %v", digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", digest, err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != digest {
		t.Fatalf("blob %s: %d bytes with another digest", digest, len(b))
	}
	return b
}

func walked(t *testing.T, bs *Blobs) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	if err := bs.Walk(func(d string, _ int64, written time.Time) bool { out[d] = written; return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDeleteIfOlderRemovesOldBlob: an unreferenced blob stored before the cut-off is
// removed: Open says ErrNotFound, Walk does not list it, its chunks are purged from
// the stream, and nats.go's own reads see it deleted. Another blob stays.
func TestDeleteIfOlderRemovesOldBlob(t *testing.T) {
	bs := openEmbedded(t).blobs
	ctx := context.Background()
	data := bytes.Repeat([]byte("old orphan "), 30000) // 330 KB: three chunks
	d, err := bs.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	keep, err := bs.Put([]byte("kept"))
	if err != nil {
		t.Fatal(err)
	}
	bm := mustMeta(t, bs, d)
	if n := chunkCount(t, bs, bm.info.NUID); n != 3 {
		t.Fatalf("%d chunks stored, want 3", n)
	}
	// Not older than its own time: kept.
	if gone, err := bs.DeleteIfOlder(d, bm.stored); err != nil || gone {
		t.Fatalf("DeleteIfOlder(stored time) = %v, %v; want false", gone, err)
	}
	if gone, err := bs.DeleteIfOlder(d, time.Now().Add(time.Minute)); err != nil || !gone {
		t.Fatalf("DeleteIfOlder of an old blob = %v, %v; want true", gone, err)
	}
	if _, err := bs.Open(ctx, d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Open after DeleteIfOlder: %v, want ErrNotFound", err)
	}
	w := walked(t, bs)
	if _, ok := w[d]; ok {
		t.Fatal("Walk lists the deleted blob")
	}
	if _, ok := w[keep]; !ok {
		t.Fatal("Walk misses the other blob")
	}
	if n := chunkCount(t, bs, bm.info.NUID); n != 0 {
		t.Fatalf("%d chunks left after DeleteIfOlder", n)
	}
	// nats.go sees its own kind of deletion marker.
	if _, err := bs.obs.GetInfo(ctx, d); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("ObjectStore.GetInfo: %v", err)
	}
	if _, err := bs.obs.Get(ctx, d); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("ObjectStore.Get: %v", err)
	}
	info, err := bs.obs.GetInfo(ctx, d, jetstream.GetObjectInfoShowDeleted())
	if err != nil || !info.Deleted || info.NUID != bm.info.NUID || info.Size != 0 || info.Chunks != 0 || info.Digest != "" {
		t.Fatalf("ObjectStore.GetInfo(show deleted) = %+v, %v", info, err)
	}
	if list, err := bs.obs.List(ctx); err != nil || len(list) != 1 || list[0].Name != keep {
		t.Fatalf("ObjectStore.List = %v, %v; want only the kept blob", list, err)
	}
	// Gone is gone: a second sweep, Delete and digests never put say so.
	if gone, err := bs.DeleteIfOlder(d, time.Now().Add(time.Minute)); err != nil || gone {
		t.Fatalf("second DeleteIfOlder = %v, %v", gone, err)
	}
	if err := bs.Delete(d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete after DeleteIfOlder: %v", err)
	}
	never := sha256.Sum256([]byte("never put"))
	if gone, err := bs.DeleteIfOlder(hex.EncodeToString(never[:]), time.Now().Add(time.Minute)); err != nil || gone {
		t.Fatalf("DeleteIfOlder of a digest never put = %v, %v", gone, err)
	}
	if _, err := bs.DeleteIfOlder("ABC", time.Now()); !errors.Is(err, store.ErrBadDigest) {
		t.Fatalf("DeleteIfOlder of a bad digest: %v", err)
	}
	readBlob(t, bs, keep)
	// The same content can come again: a new upload.
	if _, err := bs.Put(data); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, bs, d), data) {
		t.Fatal("content put again reads back different")
	}
	if again := mustMeta(t, bs, d); again.info.NUID == bm.info.NUID || chunkCount(t, bs, again.info.NUID) != 3 {
		t.Fatalf("put again: nuid %s (was %s)", again.info.NUID, bm.info.NUID)
	}
}

// TestMarkerAndTouchAreNatsFormat: the deletion marker DeleteIfOlder writes is byte
// for byte what nats.go's ObjectStore.Delete writes (but for name and nuid), with
// the same rollup header; a touched meta message is the original one with a new
// stored time, and only one meta message per object stays in the stream.
func TestMarkerAndTouchAreNatsFormat(t *testing.T) {
	bs := openEmbedded(t).blobs
	ctx := context.Background()
	a, _ := bs.Put([]byte("deleted by the sweep"))
	b, _ := bs.Put([]byte("deleted by nats.go!!")) // same length: same meta layout
	ma, mb := mustMeta(t, bs, a), mustMeta(t, bs, b)
	if gone, err := bs.DeleteIfOlder(a, time.Now().Add(time.Minute)); err != nil || !gone {
		t.Fatalf("DeleteIfOlder = %v, %v", gone, err)
	}
	if err := bs.obs.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	ra, err := bs.stream.GetLastMsgForSubject(ctx, bs.metaSubject(a))
	if err != nil {
		t.Fatal(err)
	}
	rb, err := bs.stream.GetLastMsgForSubject(ctx, bs.metaSubject(b))
	if err != nil {
		t.Fatal(err)
	}
	norm := bytes.ReplaceAll(bytes.ReplaceAll(ra.Data, []byte(a), []byte(b)), []byte(ma.info.NUID), []byte(mb.info.NUID))
	if !bytes.Equal(norm, rb.Data) {
		t.Fatalf("marker differs from nats.go's:\n ours   %s\n nats.go %s", ra.Data, rb.Data)
	}
	if ra.Header.Get(jetstream.MsgRollup) != jetstream.MsgRollupSubject || rb.Header.Get(jetstream.MsgRollup) != jetstream.MsgRollupSubject {
		t.Fatalf("rollup headers: ours %v, nats.go %v", ra.Header, rb.Header)
	}

	// Touch: the same meta data again, later; nats.go reads it as the same object.
	c := bytes.Repeat([]byte("touched "), 40000) // 320 KB: three chunks
	d, _ := bs.Put(c)
	before := mustMeta(t, bs, d)
	infoBefore, err := bs.obs.GetInfo(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := bs.Put(c); err != nil {
		t.Fatal(err)
	}
	after := mustMeta(t, bs, d)
	if !bytes.Equal(after.data, before.data) || after.seq <= before.seq || !after.stored.After(before.stored) {
		t.Fatalf("touch: seq %d -> %d, stored %s -> %s, data equal %v", before.seq, after.seq, before.stored, after.stored, bytes.Equal(after.data, before.data))
	}
	infoAfter, err := bs.obs.GetInfo(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if !infoAfter.ModTime.Equal(after.stored) {
		t.Fatalf("ObjectStore.GetInfo ModTime %s, the touch was stored at %s", infoAfter.ModTime, after.stored)
	}
	infoAfter.ModTime = infoBefore.ModTime
	if ja, jb := mustJSON(t, infoAfter), mustJSON(t, infoBefore); ja != jb {
		t.Fatalf("ObjectStore.GetInfo after a touch:\n %s\nbefore:\n %s", ja, jb)
	}
	r, err := bs.obs.Get(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, c) {
		t.Fatalf("ObjectStore.Get after a touch: %d bytes, %v", len(got), err)
	}
	if n := chunkCount(t, bs, after.info.NUID); n != 3 {
		t.Fatalf("touch changed the chunks: %d", n)
	}
	info, err := bs.stream.Info(ctx, jetstream.WithSubjectFilter(before.subject))
	if err != nil || info.State.Subjects[before.subject] != 1 {
		t.Fatalf("meta messages of a touched object: %v %v (want one: rollup)", info.State.Subjects, err)
	}
	// nats.go's own Delete of a touched object works as on its own objects.
	if err := bs.obs.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if n := chunkCount(t, bs, after.info.NUID); n != 0 {
		t.Fatalf("nats.go Delete of a touched object left %d chunks", n)
	}
}

func mustJSON(t *testing.T, info *jetstream.ObjectInfo) string {
	t.Helper()
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPutRefreshesBlob: a Put of content that is already stored after the cut-off
// makes it young again: DeleteIfOlder with that cut-off keeps it, Walk reports the
// new time, and nothing was uploaded again.
func TestPutRefreshesBlob(t *testing.T) {
	bs := openEmbedded(t).blobs
	data := []byte("%PDF-1.4 sent again by a portal")
	d, err := bs.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	first := mustMeta(t, bs, d)
	time.Sleep(5 * time.Millisecond)
	cut := time.Now()
	time.Sleep(5 * time.Millisecond)
	if d2, err := bs.Put(data); err != nil || d2 != d {
		t.Fatalf("Put again: %s %v", d2, err)
	}
	if gone, err := bs.DeleteIfOlder(d, cut); err != nil || gone {
		t.Fatalf("DeleteIfOlder(cut before the second Put) = %v, %v; want false", gone, err)
	}
	if w := walked(t, bs)[d]; w.Before(cut) {
		t.Fatalf("Walk reports %s, before the second Put (cut %s)", w, cut)
	}
	if !bytes.Equal(readBlob(t, bs, d), data) {
		t.Fatal("content changed")
	}
	if now := mustMeta(t, bs, d); now.info.NUID != first.info.NUID {
		t.Fatal("the second Put uploaded again instead of touching")
	}
	// The first Put alone would have been swept with that cut-off: the touch is what
	// saved it. A cut-off after the touch removes it.
	if gone, err := bs.DeleteIfOlder(d, time.Now().Add(time.Second)); err != nil || !gone {
		t.Fatalf("DeleteIfOlder after the touch = %v, %v; want true", gone, err)
	}
}

// TestDeleteIfOlderLosesToTouch: a Put of the content lands between the sweep's read
// of the meta message and its deletion marker. The marker's expectation fails,
// DeleteIfOlder reports false and the blob survives.
func TestDeleteIfOlderLosesToTouch(t *testing.T) {
	bs := openEmbedded(t).blobs
	data := bytes.Repeat([]byte("committed meanwhile "), 10000)
	d, err := bs.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	nuid := mustMeta(t, bs, d).info.NUID
	cut := time.Now().Add(time.Second) // the blob is old for this sweep
	calls := 0
	bs.beforeMark = func(digest string) {
		calls++
		if calls == 1 {
			if _, err := bs.Put(data); err != nil { // intake on another node
				t.Errorf("Put between read and marker: %v", err)
			}
		}
	}
	gone, err := bs.DeleteIfOlder(d, cut)
	if err != nil || gone || calls != 1 {
		t.Fatalf("DeleteIfOlder with a touch before its marker = %v, %v (%d marks tried); want false after one", gone, err, calls)
	}
	if !bytes.Equal(readBlob(t, bs, d), data) {
		t.Fatal("content changed")
	}
	if bm := mustMeta(t, bs, d); !bm.live() || bm.info.NUID != nuid || chunkCount(t, bs, nuid) == 0 {
		t.Fatalf("after the lost race: %+v", bm.info)
	}

	// The same in single steps: the sweep reads, the touch lands, the marker fails.
	ctx := context.Background()
	sweep := mustMeta(t, bs, d)
	if _, err := bs.Put(data); err != nil {
		t.Fatal(err)
	}
	if err := bs.mark(ctx, sweep); !errors.Is(err, errConflict) {
		t.Fatalf("marker after a touch: %v, want errConflict", err)
	}
	readBlob(t, bs, d)
}

// TestPutAfterDeleteIfOlderUploadsAgain: the reverse order. Intake reads the meta
// message (the blob is there), the sweep deletes it, then the touch fails its
// expectation; Put reads again, finds the marker and uploads the bytes anew.
func TestPutAfterDeleteIfOlderUploadsAgain(t *testing.T) {
	bs := openEmbedded(t).blobs
	ctx := context.Background()
	data := bytes.Repeat([]byte("swept first "), 20000)
	d, err := bs.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	intake := mustMeta(t, bs, d)
	if gone, err := bs.DeleteIfOlder(d, time.Now().Add(time.Second)); err != nil || !gone {
		t.Fatalf("DeleteIfOlder = %v, %v", gone, err)
	}
	if err := bs.touch(ctx, intake); !errors.Is(err, errConflict) {
		t.Fatalf("touch after the marker: %v, want errConflict", err)
	}
	if _, err := bs.Open(ctx, d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Open between marker and the new upload: %v", err)
	}
	// Put's own loop: the next read sees the marker and uploads.
	if err := bs.put1(ctx, d, data); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, bs, d), data) {
		t.Fatal("content changed")
	}
	now := mustMeta(t, bs, d)
	if now.info.NUID == intake.info.NUID || chunkCount(t, bs, intake.info.NUID) != 0 || chunkCount(t, bs, now.info.NUID) == 0 {
		t.Fatalf("after the new upload: nuid %s (was %s)", now.info.NUID, intake.info.NUID)
	}
	// And through Put itself: delete, then Put, with no step in between.
	if gone, err := bs.DeleteIfOlder(d, time.Now().Add(time.Second)); err != nil || !gone {
		t.Fatalf("DeleteIfOlder = %v, %v", gone, err)
	}
	if _, err := bs.Put(data); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, bs, d), data) {
		t.Fatal("content changed")
	}
}

// TestDeleteFinishesInterruptedDelete: a marker stored without its purge (a crash in
// between) is finished by Delete (ErrNotFound: it was deleted already) and by a Put
// of the same content, which uploads anew.
func TestDeleteFinishesInterruptedDelete(t *testing.T) {
	bs := openEmbedded(t).blobs
	ctx := context.Background()
	data := bytes.Repeat([]byte("crash between marker and purge "), 10000)
	d, _ := bs.Put(data)
	bm := mustMeta(t, bs, d)
	if err := bs.mark(ctx, bm); err != nil { // the marker only, no purge
		t.Fatal(err)
	}
	if chunkCount(t, bs, bm.info.NUID) == 0 {
		t.Fatal("no chunks before the purge")
	}
	if err := bs.Delete(d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete of a marked blob: %v, want ErrNotFound", err)
	}
	if n := chunkCount(t, bs, bm.info.NUID); n != 0 {
		t.Fatalf("Delete left %d chunks of the marked blob", n)
	}

	d2, _ := bs.Put(append(data, '!'))
	bm2 := mustMeta(t, bs, d2)
	if err := bs.mark(ctx, bm2); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Put(append(data, '!')); err != nil {
		t.Fatal(err)
	}
	if n := chunkCount(t, bs, bm2.info.NUID); n != 0 {
		t.Fatalf("Put after an interrupted delete left %d old chunks", n)
	}
	readBlob(t, bs, d2)
}

// TestDeleteLostAcknowledgement: a deletion marker stored without an acknowledgement
// (a server died after storing it) is recognised by its object id on the next read:
// DeleteIfOlder reports true and Delete success, and both purge the chunks.
func TestDeleteLostAcknowledgementOfMarker(t *testing.T) {
	bs := openEmbedded(t).blobs
	lost := 0
	bs.loseAck = func() bool { lost++; return lost == 1 }
	data := bytes.Repeat([]byte("marker without ack "), 10000)
	d, _ := bs.Put(data)
	nuid := mustMeta(t, bs, d).info.NUID
	if gone, err := bs.DeleteIfOlder(d, time.Now().Add(time.Second)); err != nil || !gone || lost != 1 {
		t.Fatalf("DeleteIfOlder with a lost acknowledgement = %v, %v (%d lost)", gone, err, lost)
	}
	if n := chunkCount(t, bs, nuid); n != 0 {
		t.Fatalf("%d chunks left", n)
	}

	lost = 0
	d, _ = bs.Put(data)
	nuid = mustMeta(t, bs, d).info.NUID
	if err := bs.Delete(d); err != nil || lost != 1 {
		t.Fatalf("Delete with a lost acknowledgement: %v (%d lost)", err, lost)
	}
	if n := chunkCount(t, bs, nuid); n != 0 {
		t.Fatalf("%d chunks left", n)
	}
	if err := bs.Delete(d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
}

// TestSweepChunksPurgesOnlyLeftovers: chunks that no live object names — a deletion
// marker whose purge never ran (a node died), an upload cut off before its meta
// message — are purged once their last chunk is older than the cut-off; a live
// object's chunks never are, and an upload's chunks newer than the cut-off (one that
// may still be running) stay.
func TestSweepChunksPurgesOnlyLeftovers(t *testing.T) {
	bs := openEmbedded(t).blobs
	ctx := context.Background()
	live, err := bs.Put(bytes.Repeat([]byte("live "), 60000)) // 300 KB: three chunks
	if err != nil {
		t.Fatal(err)
	}
	dead, err := bs.Put(bytes.Repeat([]byte("dead "), 60000))
	if err != nil {
		t.Fatal(err)
	}
	deadMeta := mustMeta(t, bs, dead)
	if err := bs.mark(ctx, deadMeta); err != nil { // the marker, without the purge after it
		t.Fatal(err)
	}
	cut := "UPLOADCUTOFF0000000000" // an upload that died before its meta message
	for i := 0; i < 2; i++ {
		if _, err := bs.nc.Request(bs.chunkSubject(cut), []byte("half an upload"), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	liveNUID := mustMeta(t, bs, live).info.NUID
	if n := chunkCount(t, bs, deadMeta.info.NUID); n != 3 {
		t.Fatalf("%d chunks of the marked object before the sweep, want 3", n)
	}

	// A cut-off before every chunk: everything may still be in use.
	if sets, n, err := bs.SweepChunks(ctx, time.Now().Add(-time.Hour)); err != nil || sets != 0 || n != 0 {
		t.Fatalf("sweep with an early cut-off: %d sets, %d chunks, %v; want nothing", sets, n, err)
	}
	if chunkCount(t, bs, cut) != 2 || chunkCount(t, bs, deadMeta.info.NUID) != 3 {
		t.Fatal("an early cut-off purged chunks")
	}

	sets, n, err := bs.SweepChunks(ctx, time.Now().Add(time.Minute))
	if err != nil || sets != 2 || n != 5 {
		t.Fatalf("sweep: %d sets, %d chunks, %v; want 2 sets, 5 chunks", sets, n, err)
	}
	if chunkCount(t, bs, cut) != 0 || chunkCount(t, bs, deadMeta.info.NUID) != 0 {
		t.Fatal("leftover chunks survived the sweep")
	}
	if n := chunkCount(t, bs, liveNUID); n != 3 {
		t.Fatalf("the live object has %d chunks after the sweep, want 3", n)
	}
	readBlob(t, bs, live)
	if sets, n, err := bs.SweepChunks(ctx, time.Now().Add(time.Minute)); err != nil || sets != 0 || n != 0 {
		t.Fatalf("second sweep: %d sets, %d chunks, %v", sets, n, err)
	}
}

// TestOpenReadsSmallBlobsWithoutConsumers: a package-sized blob's chunks are read
// by message gets from the stream's leader, so the read creates no consumer; a big
// blob's are fetched through one consumer, which closing the reader removes, whether
// the office read it whole or stopped, so a gateway serving many downloads does not
// leave one per download on the server until it times out.
func TestOpenReadsSmallBlobsWithoutConsumers(t *testing.T) {
	bs := openEmbedded(t).blobs
	ctx := context.Background()
	consumers := func() int {
		t.Helper()
		n := 0
		for range bs.stream.ListConsumers(ctx).Info() {
			n++
		}
		return n
	}
	for _, c := range []struct {
		name      string
		data      []byte
		consumers int
	}{
		{"three chunks", bytes.Repeat([]byte("Bauplan "), 60000), 0},
		{"twelve chunks", bytes.Repeat([]byte("Bauplan "), 200000), 1},
	} {
		d, err := bs.Put(c.data)
		if err != nil {
			t.Fatal(err)
		}
		for _, whole := range []bool{true, false} {
			rc, err := bs.Open(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			if whole {
				var got bytes.Buffer
				if _, err = io.Copy(&got, rc); err == nil && !bytes.Equal(got.Bytes(), c.data) {
					t.Fatalf("%s: read %d bytes, not the %d put", c.name, got.Len(), len(c.data))
				}
			} else {
				_, err = rc.Read(make([]byte, 10)) // an office that stops reading
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := consumers(); n != c.consumers && !(whole && n == 0) {
				t.Fatalf("%s: %d consumers while reading (whole read %v), want %d", c.name, n, whole, c.consumers)
			}
			rc.Close()
			if n := consumers(); n != 0 {
				t.Fatalf("%s: %d consumers after Close (whole read %v)", c.name, n, whole)
			}
		}
	}
}

// emptyBatch is a fetch that came up empty: what a consumer placed on a node that
// is still catching up returns for chunks the leader holds.
type emptyBatch struct{ c chan jetstream.Msg }

func (b emptyBatch) Messages() <-chan jetstream.Msg { return b.c }
func (b emptyBatch) Error() error                   { return nil }

// TestBlobReadOutlivesItsConsumer: when the consumer of a big blob's read comes up
// empty or fails (one replica, placed on a node still catching up after a restart),
// or skips a delivery, the read goes on by gets from the leader after the last
// chunk it delivered: all bytes, each once, the digest checked; the consumer is
// removed.
func TestBlobReadOutlivesItsConsumer(t *testing.T) {
	bs := openEmbedded(t).blobs
	ctx := context.Background()
	data := make([]byte, 20*128<<10+777)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	d, err := bs.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	errSkip := errors.New("a chunk sent to a fetch that had stopped waiting")
	for _, fail := range []error{nil, errors.New("no responders"), errSkip} {
		rc, err := bs.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		r := rc.(*chunkReader)
		fetches := 0
		r.fetch = func(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
			if fetches++; fetches == 1 {
				return r.cons.Fetch(n, opts...)
			}
			if fail == errSkip {
				// The server counted the batch's first chunk as delivered; this side
				// never saw it. Without the gap check the read would miss 128 KiB.
				b, err := r.cons.Fetch(n, opts...)
				if err != nil {
					t.Fatal(err)
				}
				<-b.Messages()
				return b, nil
			}
			if fail != nil {
				return nil, fail
			}
			c := make(chan jetstream.Msg)
			close(c)
			return emptyBatch{c}, nil
		}
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("read (second fetch %v): %v", fail, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes, want the %d put", len(got), len(data))
		}
		if fetches != 2 || r.cons != nil {
			t.Fatalf("%d fetches, consumer kept %v: the read did not go on by gets", fetches, r.cons != nil)
		}
		for range bs.stream.ListConsumers(ctx).Info() {
			t.Fatal("a consumer left after the read")
		}
		rc.Close()
	}
}
