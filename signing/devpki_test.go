package signing_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

const eingangIDNode = signing.NamespaceReceipt + ":" + string(signing.KindEingang)

// devReceipt signs a sample Eingangsbestaetigung with the dev PKI's gateway key and
// checks it with our offline verifier against gateway.pem (what `amtsbote verify
// -cert` does), returning the signed bytes and the signer.
func devReceipt(t *testing.T, p *signing.DevPKI, gatewayID string) ([]byte, *signing.Signer) {
	t.Helper()
	gw, err := signing.LoadSigner(p.GatewayKey, p.GatewayCert)
	if err != nil {
		t.Fatal(err)
	}
	r := sampleReceipts()[0]
	r.GatewayID = gatewayID
	signed, err := gw.SignReceipt(r)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := signing.VerifyOffline(signed, mustPEMStore(t, p.GatewayCert), signing.VerifyOptions{})
	if err != nil || rep.Signer.ID != gatewayID || rep.Receipt == nil {
		t.Fatalf("our verifier: %+v %v", rep, err)
	}
	return signed, gw
}

// xmlsec1Verify runs xmlsec1 on a receipt with the given trusted PEM and reports
// whether it printed OK; a tampered copy must fail, or the OK proves nothing.
func xmlsec1Verify(t *testing.T, signed []byte, trustedPEM string) {
	t.Helper()
	needTool(t, "xmlsec1", "apt-get install xmlsec1")
	dir := t.TempDir()
	f := filepath.Join(dir, "receipt.xml")
	if err := os.WriteFile(f, signed, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runTool(t, "xmlsec1", "--verify", "--trusted-pem", trustedPEM, "--id-attr:ID", eingangIDNode, f)
	if err != nil || !strings.HasPrefix(out, "OK") {
		t.Fatalf("xmlsec1 rejects the receipt: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.xml")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(signed), "<Absender>amt24<", "<Absender>amt25<", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, "xmlsec1", "--verify", "--trusted-pem", trustedPEM, "--id-attr:ID", eingangIDNode, bad); err == nil {
		t.Fatalf("xmlsec1 accepted a tampered receipt:\n%s", out)
	}
}

// xmlCryptoVerify runs npm xml-crypto against the leaf certificate and returns its
// output and whether it said OK.
func xmlCryptoVerify(t *testing.T, signed []byte, leafPEM string) (string, bool) {
	t.Helper()
	needTool(t, "node", "install Node.js 20")
	if _, err := os.Stat(filepath.Join(testenv.RepoRoot(t), "tools", "node", "node_modules", "xml-crypto")); err != nil {
		t.Fatalf("npm xml-crypto is required: run `npm ci` in tools/node (%v)", err)
	}
	f := filepath.Join(t.TempDir(), "receipt.xml")
	if err := os.WriteFile(f, signed, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runTool(t, "node", "tools/node/xmlcrypto-verify.js", f, leafPEM)
	return out, err == nil && strings.HasPrefix(out, "OK 1")
}

func signatureMethodOf(t *testing.T, signed []byte) string {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromBytes(signed); err != nil {
		t.Fatal(err)
	}
	el := d.FindElement("//SignedInfo/SignatureMethod")
	if el == nil {
		t.Fatal("no SignatureMethod")
	}
	return el.SelectAttrValue("Algorithm", "")
}

// TestDevPKIReceiptKeyDefaultIsECDSA: a new dev PKI signs receipts with ECDSA P-256
// (raw r||s), which our verifier and xmlsec1 accept; CA and portal stay RSA.
func TestDevPKIReceiptKeyDefaultIsECDSA(t *testing.T) {
	p, err := signing.EnsureDevPKI(filepath.Join(t.TempDir(), "pki"), "gw-dev")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Created || p.ReceiptKey != "ECDSA P-256" {
		t.Fatalf("Created %v, ReceiptKey %q", p.Created, p.ReceiptKey)
	}
	signed, gw := devReceipt(t, p, "gw-dev")
	if gw.SignatureMethod() != signing.AlgECDSASHA256 || signatureMethodOf(t, signed) != signing.AlgECDSASHA256 {
		t.Fatalf("signature method %s / %s", gw.SignatureMethod(), signatureMethodOf(t, signed))
	}
	d := etree.NewDocument()
	if err := d.ReadFromBytes(signed); err != nil {
		t.Fatal(err)
	}
	sv, err := base64.StdEncoding.DecodeString(d.FindElement("//SignatureValue").Text())
	if err != nil || len(sv) != 64 {
		t.Fatalf("SignatureValue: %d bytes (%v), want 64 (raw r||s)", len(sv), err)
	}
	for name, f := range map[string]string{"CA": p.CACert, "portal": p.PortalCert} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		certs, err := signing.ParseCertificatesPEM(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := certs[0].PublicKey.(*rsa.PublicKey); !ok {
			t.Errorf("%s key is %s, want RSA (portals may sign with xml-crypto)", name, signing.KeyDescription(certs[0].PublicKey))
		}
	}
	// xmlsec1 builds the chain from KeyInfo (ECDSA leaf, RSA CA) up to the dev CA.
	xmlsec1Verify(t, signed, p.CACert)

	// Documented, not hoped: npm xml-crypto 6.3.2 has no ECDSA, so it cannot verify
	// this receipt (docs/signing.md says to choose -receipt-key rsa for such parties).
	leaf := filepath.Join(p.TrustDir, signing.RoleGateway.Dir(), "gateway.pem")
	if out, ok := xmlCryptoVerify(t, signed, leaf); ok || !strings.HasPrefix(out, "FAIL") {
		t.Fatalf("xml-crypto on an ECDSA receipt: %q; if it verifies ECDSA now, update docs/signing.md", out)
	}
}

// TestDevPKIReceiptKeyRSA: -receipt-key rsa gives RSA-3072, which xmlsec1 and
// xml-crypto verify.
func TestDevPKIReceiptKeyRSA(t *testing.T) {
	p, err := signing.EnsureDevPKIWith(filepath.Join(t.TempDir(), "pki"), "gw-rsa", signing.DevPKIOptions{ReceiptKey: signing.KeyRSA})
	if err != nil {
		t.Fatal(err)
	}
	if p.ReceiptKey != "RSA-3072" {
		t.Fatalf("ReceiptKey %q, want RSA-3072", p.ReceiptKey)
	}
	signed, _ := devReceipt(t, p, "gw-rsa")
	if m := signatureMethodOf(t, signed); m != signing.AlgRSASHA256 {
		t.Fatalf("signature method %s", m)
	}
	xmlsec1Verify(t, signed, p.CACert)
	leaf := filepath.Join(p.TrustDir, signing.RoleGateway.Dir(), "gateway.pem")
	if out, ok := xmlCryptoVerify(t, signed, leaf); !ok {
		t.Fatalf("xml-crypto rejects the RSA-3072 receipt: %s", out)
	}
	tampered := []byte(strings.Replace(string(signed), "<Absender>amt24<", "<Absender>amt25<", 1))
	if out, ok := xmlCryptoVerify(t, tampered, leaf); ok {
		t.Fatalf("xml-crypto accepted a tampered receipt: %s", out)
	}
}

// TestDevPKIKeepsExistingKey: an existing gateway key is used as it is, whatever
// the options say now (its certificate may be trusted by portals and peers).
func TestDevPKIKeepsExistingKey(t *testing.T) {
	for _, tc := range []struct {
		name      string
		create    signing.DevPKIOptions
		want      string
		wantAlg   string
		laterWith signing.DevPKIOptions
	}{
		// An installation made before ECDSA became the default.
		{"rsa-2048-then-default", signing.DevPKIOptions{ReceiptKey: signing.KeyRSA, RSABits: 2048}, "RSA-2048", signing.AlgRSASHA256, signing.DevPKIOptions{}},
		{"rsa-2048-then-rsa", signing.DevPKIOptions{ReceiptKey: signing.KeyRSA, RSABits: 2048}, "RSA-2048", signing.AlgRSASHA256, signing.DevPKIOptions{ReceiptKey: signing.KeyRSA}},
		{"ecdsa-then-rsa", signing.DevPKIOptions{}, "ECDSA P-256", signing.AlgECDSASHA256, signing.DevPKIOptions{ReceiptKey: signing.KeyRSA}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "pki")
			first, err := signing.EnsureDevPKIWith(dir, "gw-old", tc.create)
			if err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(first.GatewayKey)
			if err != nil {
				t.Fatal(err)
			}
			again, err := signing.EnsureDevPKIWith(dir, "gw-old", tc.laterWith)
			if err != nil {
				t.Fatal(err)
			}
			after, err := os.ReadFile(again.GatewayKey)
			if err != nil {
				t.Fatal(err)
			}
			if again.Created || again.ReceiptKey != tc.want || string(before) != string(after) {
				t.Fatalf("second call: Created %v, ReceiptKey %q (want %q), key file changed %v", again.Created, again.ReceiptKey, tc.want, string(before) != string(after))
			}
			signed, gw := devReceipt(t, again, "gw-old")
			if gw.SignatureMethod() != tc.wantAlg || signatureMethodOf(t, signed) != tc.wantAlg {
				t.Fatalf("signature method %s", signatureMethodOf(t, signed))
			}
		})
	}
}

func TestDevPKIOptionsRefused(t *testing.T) {
	if _, err := signing.EnsureDevPKIWith(t.TempDir(), "gw", signing.DevPKIOptions{ReceiptKey: "dsa"}); !errors.Is(err, signing.ErrSignerConfig) {
		t.Fatalf("unknown key type: %v", err)
	}
	if _, err := signing.EnsureDevPKIWith(t.TempDir(), "gw", signing.DevPKIOptions{ReceiptKey: signing.KeyRSA, RSABits: 1024}); !errors.Is(err, signing.ErrSignerConfig) {
		t.Fatalf("RSA-1024: %v", err)
	}
	for in, want := range map[string]signing.KeyType{"": signing.KeyECDSA, "ecdsa": signing.KeyECDSA, "rsa": signing.KeyRSA} {
		if got, err := signing.ParseKeyType(in); err != nil || got != want {
			t.Errorf("ParseKeyType(%q) = %q, %v", in, got, err)
		}
	}
}

// TestOperatorECDSAKeys: an operator's own ECDSA key of any NIST curve signs with
// the matching ecdsa-shaNNN method, and xmlsec1 verifies each.
func TestOperatorECDSAKeys(t *testing.T) {
	pki := signingtest.NewPKI(t)
	for _, tc := range []struct {
		curve elliptic.Curve
		alg   string
		size  int
	}{
		{elliptic.P256(), signing.AlgECDSASHA256, 64},
		{elliptic.P384(), signing.AlgECDSASHA384, 96},
		{elliptic.P521(), signing.AlgECDSASHA512, 132},
	} {
		t.Run(tc.curve.Params().Name, func(t *testing.T) {
			key, err := ecdsa.GenerateKey(tc.curve, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			s := pki.IssueSigner(t, key, "gw-test", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
			signed, err := s.SignReceipt(sampleReceipts()[0])
			if err != nil {
				t.Fatal(err)
			}
			if m := signatureMethodOf(t, signed); m != tc.alg {
				t.Fatalf("signature method %s, want %s", m, tc.alg)
			}
			d := etree.NewDocument()
			if err := d.ReadFromBytes(signed); err != nil {
				t.Fatal(err)
			}
			if sv, err := base64.StdEncoding.DecodeString(d.FindElement("//SignatureValue").Text()); err != nil || len(sv) != tc.size {
				t.Fatalf("SignatureValue %d bytes (%v), want %d (raw r||s)", len(sv), err, tc.size)
			}
			ts := signing.NewTrustStore()
			if err := ts.Add(signing.RoleGateway, s.Certificate()); err != nil {
				t.Fatal(err)
			}
			if _, err := signing.VerifyOffline(signed, ts, signing.VerifyOptions{}); err != nil {
				t.Fatal(err)
			}
			xmlsec1Verify(t, signed, pki.CAFile)
		})
	}
}

// TestGoxmldsigNeedsDEROnECDSAReceipts pins down what docs/signing.md says about
// goxmldsig: it reads an ECDSA SignatureValue as ASN.1 DER (upstream issue #163),
// so it rejects our XMLDSig 1.1 r||s receipt as is and accepts it once the value
// is converted to DER; RSA receipts it verifies as they are.
func TestGoxmldsigNeedsDEROnECDSAReceipts(t *testing.T) {
	p, err := signing.EnsureDevPKI(filepath.Join(t.TempDir(), "pki"), "gw-dev")
	if err != nil {
		t.Fatal(err)
	}
	signed, gw := devReceipt(t, p, "gw-dev")
	validate := func(doc []byte) error {
		d := etree.NewDocument()
		if err := d.ReadFromBytes(doc); err != nil {
			t.Fatal(err)
		}
		ctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{gw.Certificate()}})
		_, err := ctx.Validate(d.Root())
		return err
	}
	if err := validate(signed); err == nil {
		t.Fatal("goxmldsig accepted a raw r||s ECDSA value; update docs/signing.md (issue #163 fixed?)")
	}
	d := etree.NewDocument()
	if err := d.ReadFromBytes(signed); err != nil {
		t.Fatal(err)
	}
	sv := d.FindElement("//SignatureValue")
	raw, err := base64.StdEncoding.DecodeString(sv.Text())
	if err != nil {
		t.Fatal(err)
	}
	derSig, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])})
	if err != nil {
		t.Fatal(err)
	}
	sv.SetText(base64.StdEncoding.EncodeToString(derSig))
	converted, err := d.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(converted); err != nil {
		t.Fatalf("goxmldsig rejects the receipt with a DER value: %v", err)
	}
}

// TestRenewDevTLS: a development TLS pair valid past renewBefore is reused as it
// is (a new client certificate at every start would break the pins of the demo
// office's Fachverfahren); one ending before it is issued again and named.
func TestRenewDevTLS(t *testing.T) {
	p, err := signing.EnsureDevPKI(filepath.Join(t.TempDir(), "pki"), "gw")
	if err != nil {
		t.Fatal(err)
	}
	first, err := signing.EnsureDevTLS(p, "office")
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(first.ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	_, renewed, err := signing.RenewDevTLS(p, "office", time.Now().Add(30*24*time.Hour))
	if err != nil || len(renewed) != 0 {
		t.Fatalf("a pair valid two years: renewed %v, %v", renewed, err)
	}
	if after, _ := os.ReadFile(first.ServerCert); !bytes.Equal(before, after) {
		t.Fatal("a pair valid two years was issued again")
	}
	_, renewed, err = signing.RenewDevTLS(p, "office", time.Now().AddDate(3, 0, 0))
	if err != nil || len(renewed) != 2 {
		t.Fatalf("a pair ending before renewBefore: renewed %v, %v", renewed, err)
	}
	if after, _ := os.ReadFile(first.ServerCert); bytes.Equal(before, after) {
		t.Fatal("the ending server certificate was kept")
	}
}

// TestDevPKIFoldersAreNotOthers: `amtsbote keys init` made the data and pki
// folders 0755, where `serve` makes the data folder 0750: every user of the
// machine could list the development CA's and the gateway's key files (an
// audit, 2026-12-06). The folders it makes are the owner's and the group's
// only, as the data folder is.
func TestDevPKIFoldersAreNotOthers(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if _, err := signing.EnsureDevPKI(filepath.Join(data, "pki"), "gw-dev"); err != nil {
		t.Fatal(err)
	}
	if err := filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if m := fi.Mode().Perm(); m&0o007 != 0 {
			t.Errorf("%s: mode %04o, others may enter it", p, m)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
