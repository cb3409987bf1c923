// Package gatewaytest starts a whole gateway on loopback for the tests of the
// packages around it (api, portal, the CLI): the test PKI's keys, a temporary data
// folder, a free port, no log, and a shutdown when the test ends. The gateway's own
// tests cannot use it (it imports package gateway) and have their own fixture.
package gatewaytest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// Start runs a gateway with the defaults, the test PKI and edit's changes (the
// clients and their tokens, limits).
func Start(t testing.TB, edit func(*config.Config)) (*gateway.Gateway, *signingtest.PKI) {
	t.Helper()
	pki := signingtest.NewPKI(t)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.PKI = config.PKI{GatewayKey: pki.Gateway.KeyFile, GatewayCert: pki.Gateway.CertFile, TrustDir: pki.TrustDir}
	cfg.GatewayID = pki.Gateway.Name
	if edit != nil {
		edit(&cfg)
	}
	g, err := gateway.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	return g, pki
}
