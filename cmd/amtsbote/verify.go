package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/amtsbote/amtsbote/signing"
)

func runVerify(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	certFile := fs.String("cert", "", "trust exactly this gateway certificate (PEM)")
	trustDir := fs.String("trust", "", "trust store folder (default: the development trust store under -data)")
	dataDir := fs.String("data", "./data", "data folder of a development gateway")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: amtsbote verify [-cert gateway.pem | -trust DIR] FILE...")
		return 2
	}
	var ts *signing.TrustStore
	var err error
	switch {
	case *certFile != "":
		var pem []byte
		if pem, err = os.ReadFile(*certFile); err == nil {
			ts, err = signing.TrustStoreFromPEM(signing.RoleGateway, pem)
		}
	default:
		dir := *trustDir
		if dir == "" {
			dir = filepath.Join(*dataDir, "pki", "trust")
		}
		ts, err = signing.LoadTrustStore(dir)
	}
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote verify: trust:", err)
		return 2
	}
	rc := 0
	for _, f := range fs.Args() {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", f, err)
			rc = 1
			continue
		}
		rep, err := signing.VerifyOffline(b, ts, signing.VerifyOptions{})
		if err != nil {
			fmt.Fprintf(stdout, "%s: NOT VERIFIED: %v\n", f, err)
			rc = 1
			continue
		}
		fmt.Fprintf(stdout, "%s: OK (%s, file SHA-256 %s)\n  %s\n", f, rep.Kind, rep.FileSHA256, rep.Statement)
	}
	return rc
}
