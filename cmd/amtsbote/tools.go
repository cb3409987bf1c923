package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/routing/routingcli"
	"github.com/amtsbote/amtsbote/signing"
)

func runLookup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	d, err := routing.Builtin()
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote lookup:", err)
		return 1
	}
	st := routing.NewStore(d)
	if files := os.Getenv("AMTSBOTE_DIRECTORY_FILES"); files != "" {
		cfg, err := config.Load("", []string{"AMTSBOTE_DIRECTORY_FILES=" + files})
		if err == nil {
			if err := st.ReloadFiles(cfg.Directory.Files...); err != nil {
				fmt.Fprintln(stderr, "amtsbote lookup:", err)
				return 1
			}
		}
	}
	return routingcli.Lookup(ctx, st, args, stdout, stderr)
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
