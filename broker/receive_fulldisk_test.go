package broker

import (
	"context"
	"errors"
	"testing"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// refusesCreate is a store whose file takes no new record, as bbolt's commit on
// a full disk.
type refusesCreate struct{ store.Store }

func (refusesCreate) Create(context.Context, *submission.Submission, []submission.Event, string, []byte) (*submission.Submission, []byte, bool, error) {
	return nil, nil, false, errors.New("write amtsbote.db: no space left on device")
}

// TestReceiveOnAFullDiskIsUnavailable: a package the store cannot take is
// ErrUnavailable — the portal's 503 "retry later" (docs/problems.md) — never a
// 201 and never an untyped error, which the intake answers with a 500; and
// nothing of it is recorded, so the portal's retry is a first intake.
func TestReceiveOnAFullDiskIsUnavailable(t *testing.T) {
	ctx := context.Background()
	b := startOver(t, t.TempDir(), testConfig, func(db *store.DB) store.Store { return refusesCreate{db} })
	r, err := b.Receive(ctx, intake("full-disk-intake", "primary"))
	if !errors.Is(err, ErrUnavailable) || r != nil {
		t.Fatalf("intake on a full disk: %+v %v, want ErrUnavailable", r, err)
	}
	if _, err := b.Lookup("amt24", "full-disk-intake"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused package was recorded: %v", err)
	}
}
