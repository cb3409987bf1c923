package signing_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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

// TestXmlsec1VerificationTimeAsDocumented runs the xmlsec1 line of docs/signing.md
// ("Receipts after a key rotation or expiry") on a machine on German time. xmlsec1
// reads --verification-time in the local time zone, but the receipt's Zeitpunkt
// is UTC: the documented command without TZ=UTC checked one or two hours early and
// refused receipts signed in a fresh certificate's first hours.
func TestXmlsec1VerificationTimeAsDocumented(t *testing.T) {
	needTool(t, "xmlsec1", "apt-get install xmlsec1")
	if _, err := os.Stat("/usr/share/zoneinfo/Europe/Berlin"); err != nil {
		t.Fatalf("tzdata (Europe/Berlin) is needed to play a German machine: %v", err)
	}
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "signing.md"))
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	found, inCode := 0, false
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inCode = !inCode
			continue
		}
		if !strings.Contains(line, "--verification-time") || !strings.Contains(line, "xmlsec1 ") {
			continue
		}
		if !inCode {
			t.Fatalf("docs/signing.md: %q: an xmlsec1 --verification-time command outside a code block (give it as one, with TZ=UTC)", line)
		}
		found++
		before, _, _ := strings.Cut(strings.TrimSpace(line), "xmlsec1 ")
		vars := strings.Fields(before)
		if !slices.Contains(vars, "TZ=UTC") {
			t.Fatalf("docs/signing.md: %q runs xmlsec1 --verification-time without TZ=UTC: the receipt's UTC Zeitpunkt is read as local time", line)
		}
		for _, v := range vars {
			if !strings.Contains(v, "=") {
				t.Fatalf("docs/signing.md: %q: %q before xmlsec1 is no environment setting", line, v)
			}
		}
		env = vars
	}
	if found == 0 {
		t.Fatal("docs/signing.md has no xmlsec1 --verification-time command in a code block any more")
	}

	// A certificate issued 20 minutes ago and a receipt signed 10 minutes into it:
	// on German time (UTC+1 or +2) its Zeitpunkt read as local time is before it.
	pki := signingtest.NewPKI(t)
	start := time.Now().Add(-20 * time.Minute).Truncate(time.Second)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := pki.IssueSigner(t, key, pki.Gateway.Name, start, start.AddDate(1, 0, 0))
	r := sampleReceipts()[0]
	r.GatewayID, r.Time = pki.Gateway.Name, start.Add(10*time.Minute).UTC()
	signed, err := s.SignReceipt(r)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "receipt.xml")
	if err := os.WriteFile(f, signed, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("xmlsec1", "--verify", "--trusted-pem", pki.CAFile,
		"--verification-time", r.Time.Format("2006-01-02 15:04:05"), "--id-attr:ID", eingangIDNode, f)
	cmd.Env = append(append(os.Environ(), "TZ=Europe/Berlin"), env...) // the operator's machine, then the documented prefix
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "OK") {
		t.Fatalf("the documented xmlsec1 line on German time refuses a receipt signed at %s by a certificate valid from %s: %v\n%s",
			r.Time.Format(time.RFC3339), start.UTC().Format(time.RFC3339), err, out)
	}
}
