package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/amtsbote/amtsbote/signing"
)

func runVerify(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	certFile := fs.String("cert", "", "trust exactly this gateway certificate (PEM)")
	trustDir := fs.String("trust", "", "trust store folder (default: the development trust store under -data)")
	dataDir := fs.String("data", "./data", "data folder of a development gateway")
	at := fs.String("at", "", "check the certificates' validity at this time (RFC 3339, e.g. the receipt's Zeitpunkt) instead of now: for a receipt signed before its gateway certificate expired")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: amtsbote verify [-cert gateway.pem | -trust DIR] [-at TIME] FILE...")
		return 2
	}
	var opts signing.VerifyOptions
	if *at != "" {
		// A receipt proves what the gateway said when it signed; a certificate that
		// expired since does not undo that, but only the relying party may decide to
		// look at that time, so it is asked for, never taken from the unverified file.
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			fmt.Fprintf(stderr, "amtsbote verify: -at: %v (want RFC 3339, e.g. 2026-11-28T09:30:00Z)\n", err)
			return 2
		}
		opts.Now = func() time.Time { return t }
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
		if err != nil && *trustDir == "" {
			// No flag named the trust: the development default was tried. On a
			// production host (or away from the gateway) there is none, and the
			// folder's name alone did not say what to pass instead.
			err = fmt.Errorf("%w\n  no -cert or -trust given, and no development trust store under -data %s: pass the gateway's certificate (-cert gateway.pem) or the trust store folder (-trust DIR)", err, *dataDir)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote verify: trust:", err)
		return 2
	}
	rc := 0
	for _, f := range fs.Args() {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(stderr, "amtsbote verify: %v\n", err) // err names the file
			rc = 1
			continue
		}
		rep, err := signing.VerifyOffline(b, ts, opts)
		if err != nil {
			fmt.Fprintf(stdout, "%s: NOT VERIFIED: %v\n", f, err)
			if errors.Is(err, signing.ErrUntrustedSigner) && *at == "" {
				fmt.Fprintln(stdout, "  (signed with an earlier gateway key? trust its certificate too: -trust DIR with it in gateways/, or -cert FILE holding every gateway certificate;"+
					" expired since? check at the receipt's Zeitpunkt: -at TIME; docs/signing.md, \"Receipts after a key rotation\")")
			}
			rc = 1
			continue
		}
		fmt.Fprintf(stdout, "%s: OK (%s, file SHA-256 %s)\n  %s\n", f, rep.Kind, rep.FileSHA256, rep.Statement)
		if *at != "" {
			fmt.Fprintf(stdout, "  (certificates checked as of %s, as asked by -at, not now)\n", *at)
		}
	}
	return rc
}
