package gateway

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// TestReceiptKeyOfTheDevPKI: a gateway on a new development PKI signs its receipts
// with ECDSA P-256, which `amtsbote verify` (VerifyOffline) and xmlsec1 accept; a
// PKI made with `keys init -receipt-key rsa` signs with RSA-3072, which xml-crypto
// verifies too; and an existing RSA-2048 key (an installation from before ECDSA was
// the default) keeps being used as it is.
func TestReceiptKeyOfTheDevPKI(t *testing.T) {
	testenv.Tool(t, "xmlsec1", "apt-get install -y xmlsec1")
	for _, tc := range []struct {
		name      string
		existing  *signing.DevPKIOptions // nil: no PKI before the gateway starts
		wantKey   string
		wantAlg   string
		xmlCrypto bool // npm xml-crypto verifies RSA only
	}{
		{"new-default", nil, "ECDSA P-256", signing.AlgECDSASHA256, false},
		{"keys-init-rsa", &signing.DevPKIOptions{ReceiptKey: signing.KeyRSA}, "RSA-3072", signing.AlgRSASHA256, true},
		{"existing-rsa-2048", &signing.DevPKIOptions{ReceiptKey: signing.KeyRSA, RSABits: 2048}, "RSA-2048", signing.AlgRSASHA256, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkiDir := filepath.Join(t.TempDir(), "pki")
			var before []byte
			if tc.existing != nil {
				p, err := signing.EnsureDevPKIWith(pkiDir, "gw-test", *tc.existing)
				if err != nil {
					t.Fatal(err)
				}
				if before, err = os.ReadFile(p.GatewayCert); err != nil {
					t.Fatal(err)
				}
			}
			// Everything comes from the dev PKI, the portal's key too (an operator's
			// trust_dir without a gateway key is refused: TestDevPKIOnlyWithoutTrustDir).
			f := start(t, func(c *config.Config) { c.PKI = config.PKI{Dir: pkiDir} })
			if f.g.PKI != nil {
				ps, err := signing.LoadSigner(f.g.PKI.PortalKey, f.g.PKI.PortalCert)
				if err != nil {
					t.Fatal(err)
				}
				f.portal.Signer = ps
			}
			if f.g.PKI == nil || f.g.PKI.ReceiptKey != tc.wantKey || f.g.Signer.KeyDescription() != tc.wantKey {
				t.Fatalf("gateway key %q (dev PKI %+v), want %s", f.g.Signer.KeyDescription(), f.g.PKI, tc.wantKey)
			}
			gwPEM, err := os.ReadFile(f.g.PKI.GatewayCert)
			if err != nil {
				t.Fatal(err)
			}
			if before != nil && string(before) != string(gwPEM) {
				t.Fatal("the existing gateway certificate was replaced")
			}
			res, err := f.portal.Submit(context.Background(), f.example())
			if err != nil || res.Status != 201 {
				t.Fatalf("submit: %v %+v", err, res)
			}
			receipt := res.Receipt
			d := etree.NewDocument()
			if err := d.ReadFromBytes(receipt); err != nil {
				t.Fatal(err)
			}
			if m := d.FindElement("//SignedInfo/SignatureMethod").SelectAttrValue("Algorithm", ""); m != tc.wantAlg {
				t.Fatalf("SignatureMethod %s, want %s", m, tc.wantAlg)
			}
			// (a) our verifier, trusting exactly the gateway certificate (amtsbote verify -cert).
			ts, err := signing.TrustStoreFromPEM(signing.RoleGateway, gwPEM)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := signing.VerifyOffline(receipt, ts, signing.VerifyOptions{})
			if err != nil || rep.Signer.ID != "gw-test" || rep.Receipt.Kind != signing.KindEingang {
				t.Fatalf("VerifyOffline: %+v %v", rep, err)
			}
			// (b) xmlsec1, trusting the dev CA (it builds the chain from KeyInfo).
			dir := t.TempDir()
			file := filepath.Join(dir, "eingang.xml")
			if err := os.WriteFile(file, receipt, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("xmlsec1", "--verify", "--trusted-pem", f.g.PKI.CACert,
				"--id-attr:ID", signing.NamespaceReceipt+":"+string(signing.KindEingang), file).CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), "OK") {
				t.Fatalf("xmlsec1 does not verify the %s receipt: %v\n%s", tc.wantKey, err, out)
			}
			if !tc.xmlCrypto {
				return
			}
			testenv.Tool(t, "node", "install Node.js 20")
			root := testenv.RepoRoot(t)
			leaf := filepath.Join(f.g.PKI.TrustDir, signing.RoleGateway.Dir(), "gateway.pem")
			cmd := exec.Command("node", filepath.Join(root, "tools", "node", "xmlcrypto-verify.js"), file, leaf)
			if out, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "OK 1") {
				t.Fatalf("xml-crypto does not verify the %s receipt (npm ci in tools/node?): %v\n%s", tc.wantKey, err, out)
			}
		})
	}
}

// TestDevPKIOnlyWithoutTrustDir: an operator's trust store without the gateway's
// own key and certificate is a production set-up missing two settings, not a
// development one: the start is refused and says which, instead of making a
// development key (and credentials, and a mailbox login) next to the
// operator's trust.
func TestDevPKIOnlyWithoutTrustDir(t *testing.T) {
	pki := signingtest.NewPKI(t)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.PKI = config.PKI{TrustDir: pki.TrustDir}
	g, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		_ = g.Shutdown(context.Background())
		t.Fatal("started with an operator's trust_dir and a development gateway key")
	}
	if !strings.Contains(err.Error(), "pki.gateway_key and pki.gateway_cert") {
		t.Fatalf("the error does not name the settings: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "pki")); !os.IsNotExist(err) {
		t.Fatalf("a development PKI was made anyway: %v", err)
	}
}
