package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
)

// failingReader yields its data, then an error instead of io.EOF: a client that
// hangs up in the middle of an upload.
type failingReader struct{ r io.Reader }

var errHungUp = errors.New("client hung up")

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errHungUp
	}
	return n, err
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// testBlobPutStream is the contract of PutStream: what it stores is the stream's
// content under its digest; a stream that is too long, does not match the digest
// the caller expects or fails midway stores nothing, not even under another name;
// content stored before is refreshed, not reported as created; and DiscardNew
// removes only what the put created.
func (s *suite) testBlobPutStream(t *testing.T) {
	st := s.h.Open(t)
	bs := st.Blobs()
	ctx := context.Background()
	big := make([]byte, 1<<20+4321) // several chunks where blobs are chunked
	_, _ = rand.Read(big)
	digest := hexSum(big)

	listed := func() map[string]int64 {
		t.Helper()
		out := map[string]int64{}
		if err := bs.Walk(func(d string, size int64, _ time.Time) bool { out[d] = size; return true }); err != nil {
			t.Fatalf("Walk: %v", err)
		}
		return out
	}
	assertAbsent := func(what string, digests ...string) {
		t.Helper()
		all := listed()
		for _, d := range digests {
			if rc, err := bs.Open(ctx, d); !errors.Is(err, store.ErrNotFound) {
				if rc != nil {
					rc.Close()
				}
				t.Errorf("%s: Open(%s) = %v, want ErrNotFound: refused bytes were stored", what, d, err)
			}
			if _, ok := all[d]; ok {
				t.Errorf("%s: Walk lists %s", what, d)
			}
		}
	}

	// Refusals first, while the store is empty.
	other := make([]byte, len(big))
	copy(other, big)
	other[len(other)/2] ^= 1
	if _, err := bs.PutStream(ctx, bytes.NewReader(other), -1, digest); !errors.Is(err, store.ErrDigestMismatch) {
		t.Fatalf("PutStream of other bytes than the expected digest: %v, want ErrDigestMismatch", err)
	}
	assertAbsent("digest mismatch", digest, hexSum(other))
	if _, err := bs.PutStream(ctx, bytes.NewReader(big), int64(len(big))-1, digest); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("PutStream one byte over the limit: %v, want ErrTooLarge", err)
	}
	if _, err := bs.PutStream(ctx, bytes.NewReader(big), int64(len(big))-1, ""); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("PutStream (no digest) one byte over the limit: %v, want ErrTooLarge", err)
	}
	assertAbsent("over the limit", digest)
	if _, err := bs.PutStream(ctx, &failingReader{bytes.NewReader(big)}, -1, digest); !errors.Is(err, errHungUp) {
		t.Fatalf("PutStream of a failing reader: %v, want its error", err)
	}
	if _, err := bs.PutStream(ctx, &failingReader{bytes.NewReader(big)}, -1, ""); !errors.Is(err, errHungUp) {
		t.Fatalf("PutStream (no digest) of a failing reader: %v, want its error", err)
	}
	assertAbsent("failing reader", digest)
	if n := len(listed()); n != 0 {
		t.Fatalf("after refused streams Walk lists %d blobs, want 0", n)
	}

	// A new blob, exactly at the limit.
	p, err := bs.PutStream(ctx, bytes.NewReader(big), int64(len(big)), digest)
	if err != nil {
		t.Fatalf("PutStream: %v", err)
	}
	if p.Digest != digest || p.Size != int64(len(big)) || !p.Created {
		t.Fatalf("PutStream = %+v, want digest %s, size %d, created", p, digest, len(big))
	}
	if time.Since(p.Written) > time.Minute || time.Until(p.Written) > time.Minute {
		t.Errorf("PutStream: written %s, now is %s", p.Written, time.Now())
	}
	readBack := func(d string, want []byte) {
		t.Helper()
		rc, err := bs.Open(ctx, d)
		if err != nil {
			t.Fatalf("Open %s: %v", d, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read back %d of %d bytes: %v", len(got), len(want), err)
		}
	}
	readBack(digest, big)

	// The same content again, with and without the digest: refreshed, not created.
	for _, want := range []string{digest, ""} {
		p2, err := bs.PutStream(ctx, bytes.NewReader(big), -1, want)
		if err != nil || p2.Digest != digest || p2.Created || p2.Size != int64(len(big)) {
			t.Fatalf("PutStream of stored content (want %q) = %+v, %v; want the digest, not created", want, p2, err)
		}
	}
	// A wrong stream for content that is stored must fail and leave the stored blob.
	if _, err := bs.PutStream(ctx, bytes.NewReader(other), -1, digest); !errors.Is(err, store.ErrDigestMismatch) {
		t.Fatalf("PutStream of other bytes under a stored digest: %v, want ErrDigestMismatch", err)
	}
	readBack(digest, big)
	// DiscardNew of a put that did not create the blob keeps it.
	if err := store.DiscardNew(bs, store.StreamPut{Digest: digest, Size: p.Size, Written: time.Now()}); err != nil {
		t.Fatal(err)
	}
	readBack(digest, big)

	// A small blob without the digest, then DiscardNew of what it created.
	small := []byte(uid("small stream"))
	ps, err := bs.PutStream(ctx, bytes.NewReader(small), 1<<20, "")
	if err != nil || ps.Digest != hexSum(small) || !ps.Created {
		t.Fatalf("PutStream of %d bytes = %+v, %v", len(small), ps, err)
	}
	readBack(ps.Digest, small)
	if err := store.DiscardNew(bs, ps); err != nil {
		t.Fatalf("DiscardNew: %v", err)
	}
	assertAbsent("DiscardNew", ps.Digest)
	// DiscardNew of a put another put of the same content followed keeps it: that
	// other request's record may reference it.
	ps, err = bs.PutStream(ctx, bytes.NewReader(small), -1, "")
	if err != nil || !ps.Created {
		t.Fatalf("PutStream after DiscardNew = %+v, %v; want created again", ps, err)
	}
	time.Sleep(20 * time.Millisecond) // a clock with coarse steps must move on
	if _, err := bs.Put(small); err != nil {
		t.Fatal(err)
	}
	if err := store.DiscardNew(bs, ps); err != nil {
		t.Fatal(err)
	}
	readBack(ps.Digest, small)
	if _, err := bs.PutStream(ctx, bytes.NewReader(nil), -1, "zz"); !errors.Is(err, store.ErrBadDigest) {
		t.Errorf("PutStream with a malformed digest: %v, want ErrBadDigest", err)
	}
}

// testBlobClockStepBack: request A's put created a blob, the clock stepped back
// (StepBack), and request B put (or refreshed) the same content, so B's record
// references it; then A failed and discards what it created. B's bytes must
// stay. A store that gave B's put the wall clock's time made it look older than
// A's, and A's DiscardNew removed an acknowledged attachment.
func (s *suite) testBlobClockStepBack(t *testing.T) {
	st := s.h.Open(t)
	bs := st.Blobs()
	ctx := context.Background()
	ways := []struct {
		name  string
		renew func(content []byte, digest string) (time.Time, error)
	}{
		{"PutStream", func(content []byte, digest string) (time.Time, error) {
			p, err := bs.PutStream(ctx, bytes.NewReader(content), -1, digest)
			return p.Written, err
		}},
		{"Put", func(content []byte, _ string) (time.Time, error) {
			_, err := bs.Put(content)
			return time.Time{}, err
		}},
		{"Refresh", func(_ []byte, digest string) (time.Time, error) {
			ref, ok := bs.(store.Refresher)
			if !ok {
				return time.Time{}, fmt.Errorf("%T has no Refresh", bs)
			}
			return ref.Refresh(ctx, digest)
		}},
	}
	for _, way := range ways {
		content := make([]byte, 300<<10) // a file or several chunks: what PutStream creates
		_, _ = rand.Read(content)
		digest := hexSum(content)
		a, err := bs.PutStream(ctx, bytes.NewReader(content), -1, digest)
		if err != nil || !a.Created {
			t.Fatalf("%s: A's PutStream = %+v, %v; want created", way.name, a, err)
		}
		a.Written = s.h.StepBack(t, st, digest, 2*time.Second)
		at, err := way.renew(content, digest)
		if err != nil {
			t.Fatalf("%s: B's put after the step back: %v", way.name, err)
		}
		if !at.IsZero() && !at.After(a.Written) {
			t.Errorf("%s: B's put has time %s, not after A's %s: it looks older than the put before it", way.name, at, a.Written)
		}
		if err := store.DiscardNew(bs, a); err != nil {
			t.Fatalf("%s: DiscardNew: %v", way.name, err)
		}
		rc, err := bs.Open(ctx, digest)
		if err != nil {
			t.Fatalf("%s: B put the content after A, with the clock stepped back 2 s, and A's DiscardNew removed it: %v", way.name, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%s: read back %d of %d bytes: %v", way.name, len(got), len(content), err)
		}
	}
}
