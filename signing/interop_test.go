package signing_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/internal/c14n"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// The interop tests run real third-party verifiers. A missing tool is a failure,
// not a skip: CI installs xmlsec1 (Debian package) and the npm packages.

func needTool(t *testing.T, name, hint string) string {
	t.Helper()
	return testenv.Tool(t, name, hint)
}

func runTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = testenv.RepoRoot(t)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

const antragIDNode = signingtest.NamespaceSample + ":Antragspaket"

// xmlsecTemplate appends an empty signature template for xmlsec1 --sign.
func xmlsecTemplate(t *testing.T, unsigned *etree.Element, sigAlg, c14nAlg, uri string) []byte {
	t.Helper()
	root := unsigned.Copy()
	sig := root.CreateElement("ds:Signature")
	sig.CreateAttr("xmlns:ds", signing.NamespaceDSig)
	si := sig.CreateElement("ds:SignedInfo")
	si.CreateElement("ds:CanonicalizationMethod").CreateAttr("Algorithm", c14nAlg)
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", sigAlg)
	ref := si.CreateElement("ds:Reference")
	ref.CreateAttr("URI", uri)
	tr := ref.CreateElement("ds:Transforms")
	tr.CreateElement("ds:Transform").CreateAttr("Algorithm", signing.AlgEnveloped)
	tr.CreateElement("ds:Transform").CreateAttr("Algorithm", c14nAlg)
	ref.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", signing.AlgSHA256)
	ref.CreateElement("ds:DigestValue")
	sig.CreateElement("ds:SignatureValue")
	sig.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data")
	d := etree.NewDocument()
	d.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	d.SetRoot(root)
	b, err := d.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInteropXmlsec1(t *testing.T) {
	needTool(t, "xmlsec1", "apt-get install xmlsec1")
	pki := signingtest.NewPKI(t)
	v := signing.NewVerifier(pki.Store, signing.VerifyOptions{})
	doc := signingtest.SampleDocument("antrag-x", 30, 3, 500)
	dir := t.TempDir()

	for _, p := range []*signingtest.Party{pki.Portal, pki.PortalECDSA} {
		t.Run("xmlsec1-verifies-ours/"+p.Name, func(t *testing.T) {
			signed, err := p.Signer.Sign(doc)
			if err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(dir, p.Name+"-ours.xml")
			if err := os.WriteFile(f, signed, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := runTool(t, "xmlsec1", "--verify", "--trusted-pem", pki.CAFile, "--id-attr:ID", antragIDNode, f)
			if err != nil || !strings.HasPrefix(out, "OK") {
				t.Fatalf("xmlsec1 rejects our signature: %v\n%s", err, out)
			}
			// The same call must fail once the signed content changes, or the OK above proves nothing.
			bad := filepath.Join(dir, p.Name+"-bad.xml")
			tampered := strings.Replace(string(signed), "<Absender>amt24<", "<Absender>amt25<", 1)
			if err := os.WriteFile(bad, []byte(tampered), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := runTool(t, "xmlsec1", "--verify", "--trusted-pem", pki.CAFile, "--id-attr:ID", antragIDNode, bad); err == nil {
				t.Fatalf("xmlsec1 accepted a tampered document:\n%s", out)
			}
		})
	}

	for _, tc := range []struct {
		name      string
		p         *signingtest.Party
		alg, c14n string
		uri       string
	}{
		{"rsa-c14n-id", pki.Portal, signing.AlgRSASHA256, c14n.AlgInclusive10, "#antrag-x"},
		{"rsa-c14n-empty-uri", pki.Portal, signing.AlgRSASHA256, c14n.AlgInclusive10, ""},
		{"rsa-exc-c14n", pki.Portal, signing.AlgRSASHA256, c14n.AlgExclusive10, "#antrag-x"},
		{"rsa-c14n11", pki.Portal, signing.AlgRSASHA256, c14n.AlgInclusive11, "#antrag-x"},
		{"ecdsa-c14n-id", pki.PortalECDSA, signing.AlgECDSASHA256, c14n.AlgInclusive10, "#antrag-x"},
		{"ecdsa-exc-c14n-empty-uri", pki.PortalECDSA, signing.AlgECDSASHA256, c14n.AlgExclusive10, ""},
		// xml:lang on the root is inherited into the canonical SignedInfo (C14N 1.0 and 1.1 subsets).
		{"rsa-c14n-xml-lang", pki.Portal, signing.AlgRSASHA256, c14n.AlgInclusive10, "xml:lang"},
		{"rsa-c14n11-xml-lang", pki.Portal, signing.AlgRSASHA256, c14n.AlgInclusive11, "xml:lang"},
	} {
		t.Run("we-verify-xmlsec1/"+tc.name, func(t *testing.T) {
			tmpl := filepath.Join(dir, tc.name+"-tmpl.xml")
			out := filepath.Join(dir, tc.name+"-signed.xml")
			unsigned, uri := doc, tc.uri
			if uri == "xml:lang" {
				unsigned, uri = doc.Copy(), "#antrag-x"
				unsigned.CreateAttr("xml:lang", "de")
				unsigned.CreateAttr("xml:space", "preserve")
			}
			if err := os.WriteFile(tmpl, xmlsecTemplate(t, unsigned, tc.alg, tc.c14n, uri), 0o600); err != nil {
				t.Fatal(err)
			}
			msg, err := runTool(t, "xmlsec1", "--sign", "--privkey-pem", tc.p.KeyFile+","+tc.p.CertFile,
				"--id-attr:ID", antragIDNode, "--output", out, tmpl)
			if err != nil {
				t.Fatalf("xmlsec1 --sign: %v\n%s", err, msg)
			}
			signed, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			res, err := v.Verify(signed, signing.RolePortal)
			if err != nil {
				t.Fatalf("Verify(xmlsec1 output): %v\n%s", err, signed)
			}
			if res.Signer.ID != tc.p.Name || res.Root.FindElement("./Kopf/Absender").Text() != "amt24" {
				t.Fatalf("unexpected result %+v", res.Signer)
			}
			tampered := strings.Replace(string(signed), "<Absender>amt24<", "<Absender>amt25<", 1)
			if _, err := v.Verify([]byte(tampered)); err == nil {
				t.Fatal("tampered xmlsec1 document verified")
			}
		})
	}
}

func TestInteropXmlCrypto(t *testing.T) {
	needTool(t, "node", "install Node.js 20")
	root := testenv.RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "tools", "node", "node_modules", "xml-crypto")); err != nil {
		t.Fatalf("npm xml-crypto is required: run `npm ci` in tools/node (%v)", err)
	}
	pki := signingtest.NewPKI(t)
	v := signing.NewVerifier(pki.Store, signing.VerifyOptions{})
	doc := signingtest.SampleDocument("antrag-n", 30, 3, 500)
	dir := t.TempDir()

	t.Run("xml-crypto-verifies-ours", func(t *testing.T) {
		signed, err := pki.Portal.Signer.Sign(doc)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "ours.xml")
		if err := os.WriteFile(f, signed, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := runTool(t, "node", "tools/node/xmlcrypto-verify.js", f, pki.Portal.CertFile)
		if err != nil || !strings.HasPrefix(out, "OK 1") {
			t.Fatalf("xml-crypto rejects our signature: %v\n%s", err, out)
		}
		tampered := strings.Replace(string(signed), "<Absender>amt24<", "<Absender>amt25<", 1)
		if err := os.WriteFile(f, []byte(tampered), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := runTool(t, "node", "tools/node/xmlcrypto-verify.js", f, pki.Portal.CertFile); err == nil {
			t.Fatalf("xml-crypto accepted a tampered document:\n%s", out)
		}
	})
	for _, mode := range []string{"c14n", "exc-c14n"} {
		t.Run("we-verify-xml-crypto/"+mode, func(t *testing.T) {
			in := filepath.Join(dir, mode+"-in.xml")
			out := filepath.Join(dir, mode+"-out.xml")
			d := etree.NewDocument()
			d.SetRoot(doc.Copy())
			b, err := d.WriteToBytes()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(in, b, 0o600); err != nil {
				t.Fatal(err)
			}
			msg, err := runTool(t, "node", "tools/node/xmlcrypto-sign.js", in, pki.Portal.KeyFile, pki.Portal.CertFile, out, mode)
			if err != nil {
				t.Fatalf("xml-crypto sign: %v\n%s", err, msg)
			}
			signed, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			res, err := v.Verify(signed, signing.RolePortal)
			if err != nil {
				t.Fatalf("Verify(xml-crypto output): %v\n%s", err, signed)
			}
			if res.Signer.ID != "amt24" {
				t.Fatalf("signer %+v", res.Signer)
			}
		})
	}
}
