package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
