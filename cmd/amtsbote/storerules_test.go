package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// Tests of rules of the store commands that a mutation audit (2026-12-06) could
// break without a failing test.

// TestStoreReindexRefusesAnotherUsersFolder: reindex writes into the store file
// (a grown file, new pages) like restore, import and gc; run as root on the
// service's folder it left a file the gateway could not open. It refuses
// another user's folder as they do (TestDataCommandsRefuseAnotherUsersFolder
// tries those three) and changes nothing.
func TestStoreReindexRefusesAnotherUsersFolder(t *testing.T) {
	t.Setenv("AMTSBOTE_CONFIG", "")
	dir, _ := indexFaultStore(t)
	before, err := os.ReadFile(filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	effectiveUID = func() int { return os.Geteuid() + 1 }
	t.Cleanup(func() { effectiveUID = os.Geteuid })
	var o, e bytes.Buffer
	if rc := runStore(context.Background(), []string{"reindex", "-data", dir}, &o, &e); rc != 1 ||
		!strings.Contains(e.String(), "belongs to user") || !strings.Contains(e.String(), "amtsbote store reindex") {
		t.Fatalf("rc %d\n%s%s", rc, o.String(), e.String())
	}
	if after, err := os.ReadFile(filepath.Join(dir, store.FileName)); err != nil || !bytes.Equal(before, after) {
		t.Fatalf("the refused reindex changed the store file (%v)", err)
	}
}

// TestStoreReindexNeedsAStore: a mistyped -data is no store to repair; reindex
// says so and creates nothing, as verify, export and gc do
// (TestStoreCommandsNeedAStore): an empty store there would be in the way of
// a later restore, and "nothing to do" would read as a healthy store.
func TestStoreReindexNeedsAStore(t *testing.T) {
	t.Setenv("AMTSBOTE_CONFIG", "")
	dir := filepath.Join(t.TempDir(), "typo")
	var o, e bytes.Buffer
	if rc := runStore(context.Background(), []string{"reindex", "-data", dir}, &o, &e); rc != 1 || !strings.Contains(e.String(), "holds no amtsbote.db") {
		t.Fatalf("rc %d\n%s%s", rc, o.String(), e.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("reindex created %s: %v", dir, err)
	}
}

// TestBackupThatFailsItsCheckWritesNothing: `store backup` checks the archive
// as it arrives and renames it into place only when it is whole. A backup cut
// off on the way (a proxy's timeout, a gateway restarted) must end in exit 1
// and no file under -out, neither the name nor its .part: a file there would
// be taken for a backup that restores.
func TestBackupThatFailsItsCheckWritesNothing(t *testing.T) {
	t.Setenv("AMTSBOTE_CONFIG", "")
	t.Setenv("AMTSBOTE_ADMIN_TOKEN", "admin-token-of-the-test")
	archive, err := os.ReadFile(backupFile(t, gcStore(t)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(archive[:len(archive)/2]) // the gateway's answer ends half-way
	}))
	defer srv.Close()
	folder := t.TempDir()
	out := filepath.Join(folder, "b.tar")
	var o, e bytes.Buffer
	if rc := runStore(context.Background(), []string{"backup", "-data", t.TempDir(), "-url", srv.URL, "-out", out}, &o, &e); rc != 1 ||
		!strings.Contains(e.String(), "nothing written to "+out) {
		t.Fatalf("rc %d\n%s%s", rc, o.String(), e.String())
	}
	if entries, _ := os.ReadDir(folder); len(entries) != 0 {
		t.Fatalf("a failed backup left %s in %s", entries[0].Name(), folder)
	}
}

// TestStoreVerifyFailsOnAnUnreadableBlob: `store verify` exits 1 on a fault
// (docs/operations.md), a blob the records name and the store cannot read
// above all: that is what it is for after a restore. Only index faults were
// tried with their exit code.
func TestStoreVerifyFailsOnAnUnreadableBlob(t *testing.T) {
	ctx := context.Background()
	t.Setenv("AMTSBOTE_CONFIG", "")
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("Bauplan "), store.InlineMax/4) // a blob file
	sum := sha256.Sum256(big)
	attachment := hex.EncodeToString(sum[:])
	if _, err := db.Blobs().Put(big); err != nil {
		t.Fatal(err)
	}
	pkg := []byte("<Antragspaket/>")
	pkgSum := sha256.Sum256(pkg)
	s := &submission.Submission{ID: "01900000-0000-7000-8000-000000000002", Sender: "amt24", MessageID: "m1", State: submission.StateDelivered,
		PackageSHA256: hex.EncodeToString(pkgSum[:]), Attachments: []submission.Attachment{{ID: "a", SHA256: attachment, Size: int64(len(big))}}}
	if _, _, _, err := db.CreateWithBlobs(ctx, s, []submission.Event{{Type: submission.EventReceived}}, "eingang", []byte("<r/>"),
		[]store.Blob{{SHA256: s.PackageSHA256, Data: pkg}}); err != nil {
		t.Fatal(err)
	}
	// The attachment's file goes; the record still names it.
	if gone, err := db.Blobs().(store.CondDeleter).DeleteIfOlder(attachment, time.Now().Add(time.Minute)); !gone || err != nil {
		t.Fatalf("removing the blob: %v %v", gone, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var o, e bytes.Buffer
	if rc := runStore(ctx, []string{"verify", "-data", dir}, &o, &e); rc != 1 ||
		!strings.Contains(o.String(), "unreadable: submission "+s.ID+", blob "+attachment) || !strings.Contains(o.String(), "1 unreadable, 0 index faults") {
		t.Fatalf("verify: rc %d\n%s%s", rc, o.String(), e.String())
	}
}

// TestGCDryRunReadsAnotherUsersFolder: `gc -dry-run` only reads (it opens the
// store as store verify and export do, and leaves an older schema alone), but it
// was refused on the service's folder from a root shell, "the files it writes
// there would not be readable", so the operator could not ask what a date would
// remove (docs/operations.md, "Retention") without runuser. The owner rule is
// for what writes: a real run still refuses (TestDataCommandsRefuseAnotherUsersFolder).
func TestGCDryRunReadsAnotherUsersFolder(t *testing.T) {
	t.Setenv("AMTSBOTE_CONFIG", "")
	src := gcStore(t)
	before, _ := os.ReadDir(src)
	effectiveUID = func() int { return os.Geteuid() + 1 }
	t.Cleanup(func() { effectiveUID = os.Geteuid })
	var o, e bytes.Buffer
	if rc := runGC(context.Background(), []string{"-config", emptyConfig(t), "-data", src, "-dry-run", "-now", "2040-01-01T00:00:00Z"}, &o, &e); rc != 0 ||
		!strings.Contains(o.String(), "dry run as of 2040-01-01T00:00:00Z, nothing changed") {
		t.Fatalf("rc %d\n%s%s", rc, o.String(), e.String())
	}
	if after, _ := os.ReadDir(src); len(after) != len(before) {
		t.Fatalf("the dry run changed the folder: %d entries before, %d after", len(before), len(after))
	}
	o.Reset()
	e.Reset()
	if rc := runGC(context.Background(), []string{"-config", emptyConfig(t), "-data", src, "-now", "2040-01-01T00:00:00Z"}, &o, &e); rc != 1 ||
		!strings.Contains(e.String(), "belongs to user") {
		t.Fatalf("a real run as another user: rc %d\n%s%s", rc, o.String(), e.String())
	}
}
