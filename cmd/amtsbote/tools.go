package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/routing/routingcli"
	"github.com/amtsbote/amtsbote/signing"
)

func runLookup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// routingcli exits 1 for whatever the loader returns; a configuration that
	// does not load is 2 here, as in every other command (docs/operations.md,
	// "Exit codes"); the directory files it names stay 1, as for serve.
	var badConfig bool
	load := func(path string) (*routing.Store, routingcli.Usable, routingcli.Admit, error) {
		st, usable, admit, err := lookupLoader(path)
		badConfig = errors.As(err, new(configError))
		return st, usable, admit, err
	}
	code := routingcli.Lookup(ctx, load, args, stdout, stderr)
	if badConfig && code == routingcli.ExitFailed {
		return routingcli.ExitUsage
	}
	return helpExit(args, code)
}

// configError is lookupLoader's error of a configuration that did not load,
// worded as config.Load words it.
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

// helpExit is 0 for the usage exit of a routingcli command (which prints its
// usage on -h) that was asked for help, as every other command exits on -h.
func helpExit(args []string, code int) int {
	if code != routingcli.ExitUsage {
		return code
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if isHelp(a) {
			return 0
		}
	}
	return code
}

// lookupLoader loads the directory, the channel configuration and the peers the way
// `serve` does (defaults, the configuration file, AMTSBOTE_* variables), so lookup
// and the running gateway give the same answer.
func lookupLoader(path string) (*routing.Store, routingcli.Usable, routingcli.Admit, error) {
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		return nil, nil, nil, configError{err}
	}
	cfg.Resolve()
	d, err := routing.Builtin()
	if err != nil {
		return nil, nil, nil, err
	}
	st := routing.NewStore(d)
	if len(cfg.Directory.Files) > 0 {
		if err := st.ReloadFiles(cfg.Directory.Files...); err != nil {
			return nil, nil, nil, err
		}
	}
	usable := func(officeID string, kinds []string) []string { return gateway.Usable(cfg, officeID, kinds) }
	return st, usable, gateway.Admit(cfg), nil
}

func runDirectory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return helpExit(args, routingcli.Directory(ctx, args, stdout, stderr))
}

func runKeys(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", "./data", "data folder")
	gatewayID := fs.String("gateway-id", config.Default().GatewayID, "gateway id (CN of its certificate)")
	receiptKey := fs.String("receipt-key", string(signing.DefaultReceiptKey),
		"type of a NEW gateway (receipt) key: ecdsa (P-256) or rsa (RSA-3072, for verifiers without ECDSA such as npm xml-crypto); an existing key is kept")
	const usage = "usage: amtsbote keys init [-data DIR] [-gateway-id ID] [-receipt-key ecdsa|rsa]"
	if len(args) == 0 || args[0] != "init" {
		fmt.Fprintln(stderr, usage)
		if len(args) > 0 && isHelp(args[0]) {
			return 0
		}
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return usageExit(err)
	}
	kt, err := signing.ParseKeyType(*receiptKey)
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote keys:", err)
		fmt.Fprintln(stderr, usage)
		return 2
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "receipt-key" })
	p, err := signing.EnsureDevPKIWith(*dataDir+"/pki", *gatewayID, signing.DevPKIOptions{ReceiptKey: kt})
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote keys:", err)
		return 1
	}
	what := "existing"
	if p.Created {
		what = "created"
	}
	fmt.Fprintf(stdout, "development PKI (%s) in %s\n  CA:           %s\n  gateway:      %s (key %s, %s: signs the receipts)\n  demo portal:  %s (key %s)\n  trust store:  %s\n",
		what, p.Dir, p.CACert, p.GatewayCert, p.GatewayKey, p.ReceiptKey, p.PortalCert, p.PortalKey, p.TrustDir)
	// The tokens and the mailbox password are the gateway's to make, from the
	// offices and portals it serves; keys init makes none, so say where they
	// will be, or the operator looks for them here.
	creds := filepath.Join(*dataDir, gateway.DevCredentialsFile)
	if _, err := os.Stat(creds); err == nil {
		fmt.Fprintf(stdout, "  credentials:  %s\n", creds)
	} else {
		fmt.Fprintf(stdout, "  credentials:  %s, made by the first 'amtsbote serve' on this folder's development PKI (tokens, demo mailbox password)\n", creds)
	}
	if p.Created || !explicit {
		return 0
	}
	// An existing key is never replaced: portals and peers may already trust its
	// certificate. Asking for another type is answered with an error, so a script
	// does not go on believing it got what it asked for.
	if got := keyTypeOf(p.ReceiptKey); got != kt {
		fmt.Fprintf(stderr, "amtsbote keys: -receipt-key %s, but the existing gateway key is %s; it was kept as it is. "+
			"To get a new key, move %s away and run keys init again (everyone who trusts the old gateway certificate must then trust the new one).\n",
			kt, p.ReceiptKey, p.Dir)
		return 1
	}
	if p.ReceiptKey == "RSA-2048" {
		fmt.Fprintf(stderr, "amtsbote keys: note: the existing gateway key is RSA-2048, kept as it is; BSI TR-02102 asks for RSA >= 3000 bits in new systems (a new -receipt-key rsa is RSA-%d).\n", signing.DefaultRSABits)
	}
	return 0
}

// keyTypeOf maps a signing.KeyDescription back to the -receipt-key type.
func keyTypeOf(desc string) signing.KeyType {
	if strings.HasPrefix(desc, "ECDSA") {
		return signing.KeyECDSA
	}
	if strings.HasPrefix(desc, "RSA") {
		return signing.KeyRSA
	}
	return ""
}
