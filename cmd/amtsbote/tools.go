package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/routing/routingcli"
	"github.com/amtsbote/amtsbote/signing"
)

func runLookup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return routingcli.Lookup(ctx, lookupLoader, args, stdout, stderr)
}

// lookupLoader loads the directory and the channel configuration the way `serve` does
// (defaults, the configuration file, AMTSBOTE_* variables), so lookup and the running
// gateway give the same answer.
func lookupLoader(path string) (*routing.Store, routingcli.Usable, error) {
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		return nil, nil, err
	}
	cfg.Resolve()
	d, err := routing.Builtin()
	if err != nil {
		return nil, nil, err
	}
	st := routing.NewStore(d)
	if len(cfg.Directory.Files) > 0 {
		if err := st.ReloadFiles(cfg.Directory.Files...); err != nil {
			return nil, nil, err
		}
	}
	usable := func(officeID string, kinds []string) []string { return gateway.Usable(cfg, officeID, kinds) }
	return st, usable, nil
}

func runDirectory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return routingcli.Directory(ctx, args, stdout, stderr)
}

func runKeys(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", "./data", "data folder")
	gatewayID := fs.String("gateway-id", config.Default().GatewayID, "gateway id (CN of its certificate)")
	if len(args) == 0 || args[0] != "init" {
		fmt.Fprintln(stderr, "usage: amtsbote keys init [-data DIR] [-gateway-id ID]")
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	p, err := signing.EnsureDevPKI(*dataDir+"/pki", *gatewayID)
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote keys:", err)
		return 1
	}
	what := "existing"
	if p.Created {
		what = "created"
	}
	fmt.Fprintf(stdout, "development PKI (%s) in %s\n  CA:           %s\n  gateway:      %s (key %s)\n  demo portal:  %s (key %s)\n  trust store:  %s\n",
		what, p.Dir, p.CACert, p.GatewayCert, p.GatewayKey, p.PortalCert, p.PortalKey, p.TrustDir)
	return 0
}
