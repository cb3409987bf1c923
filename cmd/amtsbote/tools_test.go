package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// TestKeysInitReceiptKey: `keys init` makes an ECDSA receipt key by default and
// RSA-3072 with -receipt-key rsa, never replaces an existing key, and says so with
// a non-zero exit when asked for another type than the one on disk.
// TestKeysInitSaysWhereTheCredentialsComeFrom: `amtsbote help` said keys init
// creates "the development PKI and credentials", but it writes only the PKI; the
// tokens and the mailbox password (dev-credentials.yaml) come with the first
// `serve` on the folder. An operator who ran keys init looked for a file that
// was not there. The overview says what keys init makes, and its output where
// the credentials will come from.
func TestKeysInitSaysWhereTheCredentialsComeFrom(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if rc := runKeys(context.Background(), []string{"init", "-data", dir}, &out, &errb); rc != 0 {
		t.Fatalf("rc %d\n%s%s", rc, out.String(), errb.String())
	}
	creds := filepath.Join(dir, "dev-credentials.yaml")
	if _, err := os.Stat(creds); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("keys init made %s (%v): then say so, not the first serve", creds, err)
	}
	if !strings.Contains(out.String(), creds) || !strings.Contains(out.String(), "amtsbote serve") {
		t.Fatalf("the output does not say that the first serve makes %s:\n%s", creds, out.String())
	}
	var help bytes.Buffer
	usage(&help)
	for _, line := range strings.Split(help.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "keys ") && strings.Contains(line, "PKI and credentials") {
			t.Fatalf("the overview promises credentials from keys init: %q", line)
		}
	}
}

func TestKeysInitReceiptKey(t *testing.T) {
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		rc := runKeys(context.Background(), args, &out, &errb)
		return rc, out.String(), errb.String()
	}
	ecDir, rsaDir := t.TempDir(), t.TempDir()

	if rc, out, errs := run("init", "-data", ecDir); rc != 0 || !strings.Contains(out, "(created)") || !strings.Contains(out, "ECDSA P-256") {
		t.Fatalf("default: rc %d\n%s%s", rc, out, errs)
	}
	if rc, out, errs := run("init", "-data", rsaDir, "-receipt-key", "rsa"); rc != 0 || !strings.Contains(out, "RSA-3072") {
		t.Fatalf("-receipt-key rsa: rc %d\n%s%s", rc, out, errs)
	}
	keyFile := filepath.Join(ecDir, "pki", "gateway-key.pem")
	before, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	// Idempotent without the flag and with the matching type.
	for _, args := range [][]string{{"init", "-data", ecDir}, {"init", "-data", ecDir, "-receipt-key", "ecdsa"}} {
		if rc, out, errs := run(args...); rc != 0 || !strings.Contains(out, "(existing)") {
			t.Fatalf("%v: rc %d\n%s%s", args, rc, out, errs)
		}
	}
	if rc, _, errs := run("init", "-data", ecDir, "-receipt-key", "rsa"); rc != 1 || !strings.Contains(errs, "kept as it is") {
		t.Fatalf("rsa over an existing ECDSA key: rc %d, %s", rc, errs)
	}
	after, err := os.ReadFile(keyFile)
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("the existing key changed (%v)", err)
	}
	if rc, _, errs := run("init", "-data", t.TempDir(), "-receipt-key", "dsa"); rc != 2 || !strings.Contains(errs, "dsa") {
		t.Fatalf("unknown type: rc %d, %s", rc, errs)
	}
}

// TestVerifyAtTheReceiptsTime: a receipt whose gateway certificate has expired
// since it was signed is refused on today's clock, with a hint, and verifies with
// -at a time inside the certificate's validity; a tampered one never does.
func TestVerifyAtTheReceiptsTime(t *testing.T) {
	pki := signingtest.NewPKI(t)
	gw := pki.Expired // its validity ended a year ago
	signedAt := gw.Cert.NotBefore.Add(gw.Cert.NotAfter.Sub(gw.Cert.NotBefore) / 2).UTC()
	receipt, err := gw.Signer.SignReceipt(signing.Receipt{Kind: signing.KindEingang, SubmissionID: "sub-1",
		MessageID: "0b7e6f0c-5a5e-4c1e-9d55-000000000001", Sender: "amt24", LeikaKey: "99050012104000",
		OfficeID: "office-1", GatewayID: gw.Name, Time: signedAt, PackageSHA256: strings.Repeat("ab", 32)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file, tampered := filepath.Join(dir, "eingang.xml"), filepath.Join(dir, "tampered.xml")
	if err := os.WriteFile(file, receipt, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tampered, bytes.Replace(receipt, []byte("office-1"), []byte("office-2"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		rc := runVerify(context.Background(), args, &out, &errb)
		return rc, out.String() + errb.String()
	}
	if rc, out := run("-cert", gw.CertFile, file); rc != 1 || !strings.Contains(out, "not valid at") || !strings.Contains(out, "-at TIME") {
		t.Fatalf("expired certificate, today's clock: rc %d\n%s", rc, out)
	}
	at := signedAt.Format(time.RFC3339)
	if rc, out := run("-cert", gw.CertFile, "-at", at, file); rc != 0 || !strings.Contains(out, "OK (Eingangsbestaetigung") || !strings.Contains(out, "as of "+at) {
		t.Fatalf("-at %s: rc %d\n%s", at, rc, out)
	}
	if rc, out := run("-cert", gw.CertFile, "-at", at, tampered); rc != 1 || !strings.Contains(out, "NOT VERIFIED") {
		t.Fatalf("tampered receipt with -at: rc %d\n%s", rc, out)
	}
	if rc, out := run("-cert", gw.CertFile, "-at", "yesterday", file); rc != 2 || !strings.Contains(out, "RFC 3339") {
		t.Fatalf("-at yesterday: rc %d\n%s", rc, out)
	}
	// Away from a development data folder, without -cert or -trust: say what to pass.
	if rc, out := run("-data", t.TempDir(), file); rc != 2 || !strings.Contains(out, "-cert gateway.pem") || !strings.Contains(out, "-trust DIR") {
		t.Fatalf("no trust given: rc %d\n%s", rc, out)
	}
}

// TestLookupAnswersAsIntakeDoes: `lookup` says a package would be refused, with a
// non-zero exit (4, no answer), where intake refuses it (422 no-responsible-office): a place in
// another state that no configured peer gateway serves. It printed "Kanal: keiner
// … würde zur Abholung bereitgehalten" (no peer) or "Kanal: peer" (a peer for
// another Kreis of the Land), exit 0, for packages intake refuses.
func TestLookupAnswersAsIntakeDoes(t *testing.T) {
	dir := t.TempDir()
	none, muc := filepath.Join(dir, "none.yaml"), filepath.Join(dir, "muc.yaml")
	if err := os.WriteFile(none, []byte("gateway_id: amtsbote-sn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(muc, []byte("peers:\n  - id: gw-muc\n    name: München\n    areas: [\"09162\"]\n    base_url: http://127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		config, place string
		rc            int
		says          string
	}{
		{none, "80331", 4, "würde abgelehnt (422 no-responsible-office)"},
		{muc, "90402", 4, "würde abgelehnt (422 no-responsible-office)"}, // Nürnberg: the peer serves Kreis 09162 only
		{muc, "80331", 0, "Kanal:     peer"},
		{none, "01067", 0, "Kanal:     mailbox"},
	} {
		var out, errb bytes.Buffer
		rc := runLookup(context.Background(), []string{"-config", tc.config, "--service", "99050012104000", "--place", tc.place}, &out, &errb)
		if rc != tc.rc || !strings.Contains(out.String(), tc.says) || rc != 0 && strings.Contains(out.String(), "Kanal:") {
			t.Errorf("lookup -config %s --place %s: rc %d, want %d saying %q:\n%s%s", filepath.Base(tc.config), tc.place, rc, tc.rc, tc.says, out.String(), errb.String())
		}
	}
}
