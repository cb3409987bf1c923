package jsstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestPutRepairsAnObjectWithoutChunks: nats.go's ObjectStore.Put purges the chunks
// it wrote when the meta message's acknowledgement is lost, also when the meta
// message was stored (a NATS node killed at that moment). Put and PutStream then
// found a live object and touched it: the bytes of an acknowledged package were
// gone. Now they upload it again, and it reads back whole; before that, Open says
// the bytes cannot be read instead of handing out a reader that fails later.
func TestPutRepairsAnObjectWithoutChunks(t *testing.T) {
	bs := openEmbedded(t).blobs
	ctx := context.Background()
	for _, stream := range []bool{false, true} {
		data := []byte(fmt.Sprintf("Antragspaket, stream %v: ", stream) + strings.Repeat("Bauantrag ", 30000))
		put := func() string {
			t.Helper()
			if stream {
				sum := sha256.Sum256(data)
				p, err := bs.PutStream(ctx, bytes.NewReader(data), int64(len(data)), hex.EncodeToString(sum[:]))
				if err != nil {
					t.Fatal(err)
				}
				return p.Digest
			}
			d, err := bs.Put(data)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		d := put()
		bm, err := bs.readMeta(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		// The state the lost acknowledgement leaves: the meta message, no chunks.
		if err := bs.stream.Purge(ctx, jetstream.WithPurgeSubject(bs.chunkSubject(bm.info.NUID))); err != nil {
			t.Fatal(err)
		}
		// Reading it fails at Open, before an HTTP answer promised the bytes.
		if rc, err := bs.Open(ctx, d); err == nil {
			rc.Close()
			t.Fatalf("stream %v: Open of an object without chunks succeeded", stream)
		}
		put() // the retry (or the portal's second try)
		rc, err := bs.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("stream %v: read %d bytes (%v), want the %d put", stream, len(got), err, len(data))
		}
	}
}

// smallReads hands out at most 4 KiB per Read, as an HTTP request body does.
type smallReads struct{ r io.Reader }

func (s smallReads) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 4096)]) }

// TestStreamedUploadUsesWholeChunks: nats.go's ObjectStore.Put sends one chunk per
// Read, and intake streams attachments from the request body, which reads a few
// KiB at a time. A 20 MB attachment became ~4,900 chunks instead of 153, and
// uploads of that size to three gateways at once failed with "stalled with too
// many outstanding async published messages" (an outside audit). The chunks of a
// streamed upload are now whole 128 KiB chunks, whatever the reader hands out.
func TestStreamedUploadUsesWholeChunks(t *testing.T) {
	bs := openEmbedded(t).blobs
	ctx := context.Background()
	data := bytes.Repeat([]byte("Anlage zum Bauantrag, Seite 1 von 3. "), 100000) // 3.7 MB
	sum := sha256.Sum256(data)
	p, err := bs.PutStream(ctx, smallReads{bytes.NewReader(data)}, int64(len(data)), hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	bm, err := bs.readMeta(ctx, p.Digest)
	if err != nil {
		t.Fatal(err)
	}
	const chunk = 128 << 10
	if want := (len(data) + chunk - 1) / chunk; int(bm.info.Chunks) != want {
		t.Fatalf("%d bytes stored in %d chunks, want %d of 128 KiB", len(data), bm.info.Chunks, want)
	}
	rc, err := bs.Open(ctx, p.Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (%v), want the %d put", len(got), err, len(data))
	}
}
