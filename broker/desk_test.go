package broker

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/amtsbote/amtsbote/store"
)

// brokenBlobs is a store whose blobs cannot be opened: a cluster without quorum.
type brokenBlobs struct{ store.Store }

func (s brokenBlobs) Blobs() store.BlobStore { return brokenBlobStore{s.Store.Blobs()} }

type brokenBlobStore struct{ store.BlobStore }

func (brokenBlobStore) Open(context.Context, string) (io.ReadCloser, error) {
	return nil, errors.New("jsstore: blob: no chunk after 5 fetches")
}

// TestUnreadableBytesAreUnavailable: bytes the store cannot read now are
// ErrUnreadable (the faces answer 503 and "retry later"), not an internal error,
// and such a fetch does not record the office's pickup; bytes that are not there
// stay ErrNotFound.
func TestUnreadableBytesAreUnavailable(t *testing.T) {
	ctx := context.Background()
	b := startOver(t, t.TempDir(), testConfig, func(db *store.DB) store.Store { return brokenBlobs{db} }, &scripted{channel: "primary", block: make(chan struct{})})
	in := intake("unreadable", "primary")
	in.Attachments = nil
	a, err := b.Receive(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.OpenPackage(ctx, "office-a", a.Submission.ID, Pickup{Channel: "api"}); !errors.Is(err, ErrUnreadable) {
		t.Fatalf("OpenPackage: %v, want ErrUnreadable", err)
	}
	// A fetch that could not read the bytes is no pickup.
	if s, err := b.Submission(a.Submission.ID); err != nil || s.DeliveredAt != nil {
		t.Fatalf("after a failed fetch: delivered at %v (%v), want not delivered", s.DeliveredAt, err)
	}
	if _, _, err := b.OpenAttachment(ctx, "office-a", a.Submission.ID, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenAttachment of no such attachment: %v, want ErrNotFound", err)
	}
}
