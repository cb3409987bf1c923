package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/internal/gatewaytest"

	"github.com/amtsbote/amtsbote/config"
)

// TestSubmitSaysWhatToDoNext: against a gateway with its own PKI and portal token
// (not a development one), submit tells a portal developer what to do: the
// candidates of an ambiguous place, the token when a status read is refused after
// the 201, and how to check the receipt without a development data folder.
func TestSubmitSaysWhatToDoNext(t *testing.T) {
	g, pki := gatewaytest.Start(t, func(c *config.Config) {
		c.Portals = map[string]config.PortalClient{"amt24": {Token: "portal-token"}}
	})
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		base := []string{"-url", g.URL(), "-data", t.TempDir(), "-key", pki.Portal.KeyFile, "-cert", pki.Portal.CertFile}
		rc := runSubmit(context.Background(), append(base, args...), &out, &errb)
		return rc, out.String(), errb.String()
	}

	rc, _, errs := run("-place", "Neustadt")
	if rc != 1 || !strings.Contains(errs, "ambiguous-place") || !strings.Contains(errs, "choose one with -place ARS") {
		t.Fatalf("ambiguous place: rc %d\n%s", rc, errs)
	}
	if !strings.Contains(errs, "073160000000") { // Neustadt an der Weinstraße
		t.Fatalf("ambiguous place: the candidates are not listed\n%s", errs)
	}

	receipt := filepath.Join(t.TempDir(), "eingang.xml")
	rc, out, errs := run("-out", receipt, "-wait", "100ms")
	if rc != 1 || !strings.Contains(out, "201 accepted") || !strings.Contains(errs, "401") || !strings.Contains(errs, "-token") {
		t.Fatalf("status read without the token: rc %d\n%s%s", rc, out, errs)
	}
	if !strings.Contains(out, "amtsbote verify -cert") || strings.Contains(out, "verify -data") {
		t.Fatalf("receipt hint for a gateway with its own PKI:\n%s", out)
	}
	if rc, out, errs := run("-token", "portal-token", "-wait", "100ms"); rc != 0 {
		t.Fatalf("with the token: rc %d\n%s%s", rc, out, errs)
	}
}

// TestSubmitTokenFromAFile: the portal's bearer token could be given only as
// -token on the command line, where every user of the machine reads it in the
// process list (ps, /proc/PID/cmdline) while submit waits. -token-file reads it
// from a file (a trailing newline is no part of it); -token still works, with a
// warning that says why not.
func TestSubmitTokenFromAFile(t *testing.T) {
	g, pki := gatewaytest.Start(t, func(c *config.Config) {
		c.Portals = map[string]config.PortalClient{"amt24": {Token: "portal-token"}}
	})
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		base := []string{"-url", g.URL(), "-data", t.TempDir(), "-key", pki.Portal.KeyFile, "-cert", pki.Portal.CertFile, "-wait", "100ms"}
		rc := runSubmit(context.Background(), append(base, args...), &out, &errb)
		return rc, out.String(), errb.String()
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("portal-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if rc, out, errs := run("-token-file", file); rc != 0 || strings.Contains(errs, "process list") {
		t.Fatalf("-token-file: rc %d\n%s%s", rc, out, errs)
	}
	if rc, out, errs := run("-token", "portal-token"); rc != 0 || !strings.Contains(errs, "-token-file") {
		t.Fatalf("-token: rc %d, want 0 and a warning naming -token-file\n%s%s", rc, out, errs)
	}
	if rc, _, errs := run("-token-file", filepath.Join(t.TempDir(), "missing")); rc != 2 || !strings.Contains(errs, "-token-file") {
		t.Fatalf("missing token file: rc %d, want 2\n%s", rc, errs)
	}
	if rc, _, errs := run("-token-file", file, "-token", "x"); rc != 2 {
		t.Fatalf("both -token and -token-file: rc %d, want 2\n%s", rc, errs)
	}
}

// TestSubmitRefusesTheTokenInTheClear: the package itself goes without a token,
// but -wait reads its status with the portal's bearer token; to another host
// over plain http that token crossed the network in the clear (the admin CLI
// refused its own token so, submit did not). Refused before the package is
// sent; on loopback, over https or without -wait nothing changes.
func TestSubmitRefusesTheTokenInTheClear(t *testing.T) {
	for _, tc := range []struct {
		url     string
		wait    bool
		refused bool
	}{
		{"http://192.0.2.1:8080", true, true},
		{"http://gateway.amt.example", true, true},
		{"http://192.0.2.1:8080", false, false},
		{"http://127.0.0.1:1", true, false},
		{"https://192.0.2.1:1", true, false},
	} {
		var out, errb bytes.Buffer
		args := []string{"-url", tc.url, "-data", t.TempDir(), "-token", "portal-token-of-the-test"}
		if tc.wait {
			args = append(args, "-wait", "1s")
		}
		// The data folder holds no portal key: what is not refused stops there,
		// before any request; only the refusal matters here.
		rc := runSubmit(context.Background(), args, &out, &errb)
		got := rc == 2 && strings.Contains(errb.String(), "refusing to send the portal token in the clear")
		if got != tc.refused {
			t.Errorf("%s (wait %v): rc %d, refused %v, want %v\n%s", tc.url, tc.wait, rc, got, tc.refused, errb.String())
		}
		if strings.Contains(errb.String()+out.String(), "portal-token-of-the-test") {
			t.Errorf("%s: the token in the output", tc.url)
		}
	}
}
