package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

// TestCreateWithABlobFileThatFailsRecordsNothing: a package bigger than
// InlineMax is a blob file written before the record's transaction. When that
// file cannot be written, the intake must fail with nothing committed: a record
// committed anyway was a 201 for a package whose bytes are nowhere, and every
// delivery attempt of it failed on the missing blob. The blob's subfolder is
// made impossible to create (a file in its place), which fails for root too.
func TestCreateWithABlobFileThatFailsRecordsNothing(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	big := bytes.Repeat([]byte("Anlage "), InlineMax/7+1)
	sum := sha256.Sum256(big)
	d := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(dir, "blobs", d[:2]), []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	sub, evs := submission.New(submission.Params{ID: "s-blobfail", DeliveryID: "d1", MessageID: "m-blobfail", Sender: "amt24",
		OfficeID: "o1", PackageSHA256: d, PackageSize: int64(len(big)), Targets: []submission.Target{{Channel: "webhook"}}}, now)
	_, _, created, err := db.CreateWithBlobs(context.Background(), sub, evs, "Eingangsbestaetigung", []byte("<r/>"), []Blob{{SHA256: d, Data: big}})
	if err == nil || created {
		t.Fatalf("create with a blob file that could not be written: created=%v err=%v; want an error", created, err)
	}
	if _, err := db.Get(sub.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the record was committed without its package: %v", err)
	}
	if _, err := db.FindByMessage("amt24", "m-blobfail"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the idempotency key was committed without the package: %v", err)
	}
	if ids, _ := db.Outbox(); len(ids) != 0 {
		t.Fatalf("outbox %v, want empty", ids)
	}
}
