package broker

import (
	"context"
	"errors"
	"testing"
)

// TestAReadBetweenErasureAndBlobsIs410: an erasure writes the record first and
// deletes the bytes after it, so a read that found the record whole a moment
// before and then opened the bytes met no blob and answered 404 for a
// package, attachment or reply the status lists. The record read again says
// what happened: 410, its bytes removed.
func TestAReadBetweenErasureAndBlobsIs410(t *testing.T) {
	noEraseGrace(t)
	e := start(t, t.TempDir())
	ctx := context.Background()
	s := receiveHeld(t, e.b, "antrag", "", true) // as read by a request just before the erasure
	if _, _, err := e.b.EraseCase(ctx, s.ID, "m.meier (admin API)", "Az. DS-2026-19"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.openBytes(ctx, s); !errors.Is(err, ErrBytesRemoved) {
		t.Errorf("the package: %v, want ErrBytesRemoved", err)
	}
	if _, err := e.b.openBlob(ctx, s, s.Attachments[0].SHA256); !errors.Is(err, ErrBytesRemoved) {
		t.Errorf("the attachment: %v, want ErrBytesRemoved", err)
	}
}
