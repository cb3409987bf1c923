package jsstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/amtsbote/amtsbote/store"
)

// TestPutStreamLeavesNoChunks: what the shared suite cannot see. A refused or failed
// stream must leave no chunk in the object stream (chunks without a meta message
// are invisible to Walk and the sweep, so they would stay for good), and a stream
// of existing content uploads nothing new.
func TestPutStreamLeavesNoChunks(t *testing.T) {
	bs := openEmbedded(t).blobs
	ctx := context.Background()
	msgs := func() uint64 {
		t.Helper()
		info, err := bs.stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	data := bytes.Repeat([]byte("Bauplan "), 100_000) // 800 KB: seven chunks
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	other := append(append([]byte{}, data[:len(data)-1]...), '!')
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for name, put := range map[string]func() error{
		"mismatch":  func() error { _, err := bs.PutStream(ctx, bytes.NewReader(other), -1, digest); return err },
		"too large": func() error { _, err := bs.PutStream(ctx, bytes.NewReader(data), 300_000, digest); return err },
		"reader fails": func() error {
			_, err := bs.PutStream(ctx, io.MultiReader(bytes.NewReader(data), iotest.ErrReader(errors.New("reset"))), -1, digest)
			return err
		},
		"staged, too large": func() error { _, err := bs.PutStream(ctx, bytes.NewReader(data), 300_000, ""); return err },
		"cancelled":         func() error { _, err := bs.PutStream(cancelled, bytes.NewReader(data), -1, digest); return err },
	} {
		if err := put(); err == nil {
			t.Fatalf("%s: PutStream succeeded", name)
		}
		if n := msgs(); n != 0 {
			t.Fatalf("%s: %d messages left in the object stream", name, n)
		}
	}
	p, err := bs.PutStream(ctx, bytes.NewReader(data), -1, digest)
	if err != nil || !p.Created {
		t.Fatalf("PutStream: %+v %v", p, err)
	}
	stored := msgs()
	if p2, err := bs.PutStream(ctx, bytes.NewReader(data), -1, ""); err != nil || p2.Created || p2.Digest != digest {
		t.Fatalf("PutStream again: %+v %v", p2, err)
	}
	if n := msgs(); n != stored {
		t.Fatalf("a stream of stored content changed the stream from %d to %d messages (want only the touched meta message, replacing its predecessor)", stored, n)
	}
	if b := readBlob(t, bs, digest); !bytes.Equal(b, data) {
		t.Fatal("content differs")
	}
	// The second put touched the object after the first created it: DiscardNew of
	// the first must keep it (another record may reference it now).
	if err := store.DiscardNew(bs, p); err != nil {
		t.Fatal(err)
	}
	if b := readBlob(t, bs, digest); !bytes.Equal(b, data) {
		t.Fatal("content differs after DiscardNew")
	}
}

// TestDiscardNewKeepsAPutBeforeTheReadBack: request A uploads new content (or
// refreshes what it uploaded) and then reads the meta message back for the
// time DiscardNew compares; request B's put of the same content lands in
// between and is acknowledged; A fails and discards. B's bytes must stay. An A
// that took the message read back, B's touch, for its own removed them: no
// put was newer than "its" time.
func TestDiscardNewKeepsAPutBeforeTheReadBack(t *testing.T) {
	bs := openEmbedded(t).blobs
	ctx := context.Background()
	for _, way := range []string{"upload", "refresh"} {
		data := bytes.Repeat([]byte("Bauplan "+way+" "), 50_000) // several chunks
		sum := sha256.Sum256(data)
		digest := hex.EncodeToString(sum[:])
		var bErr error
		bPut := false
		putB := func(d string) {
			if d == digest && !bPut {
				bPut = true
				_, bErr = bs.Put(data) // a touch: B's record may reference the bytes
			}
		}
		if way == "upload" {
			bs.beforeReadBack = putB
		}
		a, err := bs.PutStream(ctx, bytes.NewReader(data), -1, digest)
		if err != nil {
			t.Fatalf("%s: A's PutStream: %v", way, err)
		}
		if way == "refresh" {
			if !a.Created {
				t.Fatalf("refresh: A's PutStream = %+v, want created", a)
			}
			bs.beforeReadBack = putB
			if a.Written, err = bs.Refresh(ctx, digest); err != nil {
				t.Fatalf("refresh: A's Refresh: %v", err)
			}
		}
		bs.beforeReadBack = nil
		if !bPut || bErr != nil {
			t.Fatalf("%s: B's put did not run in the window (%v, %v)", way, bPut, bErr)
		}
		if err := store.DiscardNew(bs, a); err != nil {
			t.Fatalf("%s: DiscardNew: %v", way, err)
		}
		rc, err := bs.Open(ctx, digest)
		if err != nil {
			t.Fatalf("%s: B put the content between A's write and A's read-back, and A's DiscardNew removed it: %v", way, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d of %d bytes: %v", way, len(got), len(data), err)
		}
	}
}
