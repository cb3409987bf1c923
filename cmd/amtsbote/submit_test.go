package main

import (
	"bytes"
	"context"
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
