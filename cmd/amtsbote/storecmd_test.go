package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/store"
)

// TestStoreCommandsNeedAStore: verify, export and gc read or maintain a store; on
// a folder without one (a mistyped -data) they fail and create nothing. verify
// reported "0 submissions" and success and left an empty store behind, in the way
// of a later restore (an operator audit, 2026-12-04). import creates the store.
func TestStoreCommandsNeedAStore(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func(dir string, stdout, stderr *bytes.Buffer) int
	}{
		{"store verify", func(dir string, o, e *bytes.Buffer) int { return runStore(ctx, []string{"verify", "-data", dir}, o, e) }},
		{"store export", func(dir string, o, e *bytes.Buffer) int {
			return runStore(ctx, []string{"export", "-data", dir, "-out", filepath.Join(t.TempDir(), "x")}, o, e)
		}},
		{"gc", func(dir string, o, e *bytes.Buffer) int { return runGC(ctx, []string{"-data", dir}, o, e) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "typo")
			var out, errb bytes.Buffer
			if rc := tc.run(dir, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "holds no amtsbote.db") {
				t.Fatalf("rc %d\n%s%s", rc, out.String(), errb.String())
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("the command created %s: %v", dir, err)
			}
		})
	}
}

// TestStoreCommandsResolveTheConfiguration: `store backup` calls public_url,
// which defaults to http://<listen>; the store commands read the configuration
// without that default, so a backup without public_url failed with
// `Get "/v1/admin/backup": unsupported protocol scheme ""`.
func TestStoreCommandsResolveTheConfiguration(t *testing.T) {
	t.Setenv("AMTSBOTE_CONFIG", "")
	fs, load := storeFlags("backup", &bytes.Buffer{}, "")
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := load()
	if err != nil || cfg.PublicURL != "http://"+cfg.Listen {
		t.Fatalf("public_url %q (listen %q), %v", cfg.PublicURL, cfg.Listen, err)
	}
}

// TestDataCommandsRefuseAnotherUsersFolder: under systemd the data folder belongs
// to the service user, and an operator restoring from a root shell left a store
// file owned by root with mode 0600, which the service then could not open
// ("permission denied" at the start after the restore). restore, import and gc
// now refuse a folder of another user and say whom to run as; the folder stays as
// it was.
func TestDataCommandsRefuseAnotherUsersFolder(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	db, err := store.Open(src, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if _, err := db.Backup(ctx, &archive); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	tarFile := filepath.Join(t.TempDir(), "backup.tar")
	if err := os.WriteFile(tarFile, archive.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	exportDir := filepath.Join(t.TempDir(), "export")
	var o, e bytes.Buffer
	if rc := runStore(ctx, []string{"export", "-data", src, "-out", exportDir}, &o, &e); rc != 0 {
		t.Fatalf("export: rc %d %s", rc, e.String())
	}

	// The command runs as someone other than the folders' owner (as root does on
	// the service's folder).
	effectiveUID = func() int { return os.Geteuid() + 1 }
	t.Cleanup(func() { effectiveUID = os.Geteuid })
	restoreDir := t.TempDir()
	for _, tc := range []struct {
		name, dir string
		run       func(stdout, stderr *bytes.Buffer) int
	}{
		{"store restore", restoreDir, func(o, e *bytes.Buffer) int {
			return runStore(ctx, []string{"restore", "-data", restoreDir, "-in", tarFile}, o, e)
		}},
		{"store import", restoreDir, func(o, e *bytes.Buffer) int {
			return runStore(ctx, []string{"import", "-data", restoreDir, "-in", exportDir}, o, e)
		}},
		{"gc", src, func(o, e *bytes.Buffer) int { return runGC(ctx, []string{"-data", src, "-compact"}, o, e) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadDir(tc.dir)
			var out, errb bytes.Buffer
			rc := tc.run(&out, &errb)
			if rc != 1 || !strings.Contains(errb.String(), "belongs to user") || !strings.Contains(errb.String(), "runuser -u") ||
				!strings.Contains(errb.String(), "amtsbote "+tc.name) {
				t.Fatalf("rc %d\n%s%s", rc, out.String(), errb.String())
			}
			if after, _ := os.ReadDir(tc.dir); len(after) != len(before) {
				t.Fatalf("the folder changed: %d entries before, %d after", len(before), len(after))
			}
		})
	}

	// As the folder's owner, the same restore goes through.
	effectiveUID = os.Geteuid
	o.Reset()
	e.Reset()
	if rc := runStore(ctx, []string{"restore", "-data", restoreDir, "-in", tarFile}, &o, &e); rc != 0 {
		t.Fatalf("restore as the owner: rc %d %s", rc, e.String())
	}
}
