package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeWarnsOfAWorldReadableConfiguration: the configuration holds the admin
// token and every client's token. A file every local user could read started
// without a word; the start now says which file and which settings (never their
// values), and how to restrict it.
func TestServeWarnsOfAWorldReadableConfiguration(t *testing.T) {
	t.Setenv("AMTSBOTE_CONFIG", "")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "amtsbote.yaml")
	if err := os.WriteFile(cfg, []byte("admin_token: adm-0123456789abcdef\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	// Started and stopped at once: the warning comes before the gateway starts.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	runServe(ctx, []string{"-config", cfg, "-data", filepath.Join(dir, "data"), "-listen", "127.0.0.1:0"}, &out, &errb)
	logs := errb.String()
	for _, w := range []string{"configuration file " + cfg, "readable by every user", "admin_token", "chmod 0640"} {
		if !strings.Contains(logs, w) {
			t.Errorf("the start does not say %q:\n%s", w, logs)
		}
	}
	if strings.Contains(logs, "adm-0123456789abcdef") {
		t.Errorf("the log shows the token:\n%s", logs)
	}
}
