package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/gatewaytest"
)

// TestAdminSaysWhenTheTokenIsNotTheGateways: a 401 names its likely cause,
// an admin token other than the gateway's (another gateway's configuration,
// a stale AMTSBOTE_ADMIN_TOKEN), and never prints the token. A mutation audit
// (2026-12-06) dropped the hint and no test failed.
func TestAdminSaysWhenTheTokenIsNotTheGateways(t *testing.T) {
	g, _ := gatewaytest.Start(t, func(c *config.Config) { c.AdminToken = "admin-token-of-the-test" })
	t.Setenv("AMTSBOTE_CONFIG", "")
	t.Setenv("AMTSBOTE_ADMIN_TOKEN", "another-gateways-admin-token")
	var out, errb bytes.Buffer
	rc := runAdmin(context.Background(), []string{"-url", g.URL(), "-data", t.TempDir(), "offices"}, &out, &errb)
	if rc != 1 || !strings.Contains(errb.String(), "the gateway answered 401") || !strings.Contains(errb.String(), "is the admin token the one this gateway has?") {
		t.Fatalf("rc %d\n%s%s", rc, out.String(), errb.String())
	}
	if strings.Contains(out.String()+errb.String(), "another-gateways-admin-token") {
		t.Fatal("the token is in the output")
	}
}
