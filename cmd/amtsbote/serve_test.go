package main

import (
	"bytes"
	"context"
	"errors"
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

// TestServeRefusesAConfigurationOthersMayWrite: a configuration every local
// user may change lets any of them set her own admin_token (or point the trust
// store at a folder of her own) for the next start. A file of mode 0666 without
// a token in it yet started without a word; it is now refused before the
// gateway starts, naming the file and the chmod.
func TestServeRefusesAConfigurationOthersMayWrite(t *testing.T) {
	t.Setenv("AMTSBOTE_CONFIG", "")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "amtsbote.yaml")
	if err := os.WriteFile(cfg, []byte("log_level: info\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg, 0o666); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	data := filepath.Join(dir, "data")
	var out, errb bytes.Buffer
	code := runServe(ctx, []string{"-config", cfg, "-data", data, "-listen", "127.0.0.1:0"}, &out, &errb)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, w := range []string{cfg, "writable by every user", "chmod o-w " + cfg} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("the refusal does not say %q:\n%s", w, errb.String())
		}
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the gateway started (data folder: %v)", err)
	}
}
