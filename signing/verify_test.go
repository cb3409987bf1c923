package signing_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	pki := signingtest.NewPKI(t)
	v := signing.NewVerifier(pki.Store, signing.VerifyOptions{})
	doc := signingtest.SampleDocument("antrag-1", 20, 2, 300)
	for _, tc := range []struct {
		name  string
		party *signingtest.Party
		uri   string // "" keeps the signer's "#ID"
	}{
		{"rsa-ca-issued", pki.Portal, ""},
		{"ecdsa-ca-issued", pki.PortalECDSA, ""},
		{"rsa-pinned-self-signed", pki.Pinned, ""},
		{"reference-uri-empty", pki.Portal, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signed, err := tc.party.Signer.Sign(doc)
			if err != nil {
				t.Fatal(err)
			}
			if tc.uri == "empty" {
				signed = signingtest.Resign(t, signed, tc.party, func(_ *etree.Document, _, sig *etree.Element) {
					ref := sig.FindElement("./SignedInfo/Reference")
					ref.RemoveAttr("URI")
					ref.CreateAttr("URI", "")
				})
			}
			res, err := v.Verify(signed, signing.RolePortal)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if res.Signer.ID != tc.party.Name || res.Signer.Role != signing.RolePortal {
				t.Errorf("signer = %+v, want %s as portal", res.Signer, tc.party.Name)
			}
			if res.Root.Tag != "Antragspaket" || res.Root.SelectAttrValue("ID", "") != "antrag-1" {
				t.Errorf("root = <%s ID=%q>", res.Root.Tag, res.Root.SelectAttrValue("ID", ""))
			}
			if res.Root.FindElement("//Signature") != nil {
				t.Error("returned root still contains the signature")
			}
			if got := res.Root.FindElement("./Kopf/Absender").Text(); got != "amt24" {
				t.Errorf("Absender = %q", got)
			}
			if _, err := v.Verify(signed, signing.RoleOffice); !errors.Is(err, signing.ErrUntrustedSigner) {
				t.Errorf("Verify for role office: %v, want ErrUntrustedSigner", err)
			}
		})
	}
	if doc.FindElement("//Signature") != nil {
		t.Error("Sign modified its input")
	}
}

func TestAttacks(t *testing.T) {
	pki := signingtest.NewPKI(t)
	v := signing.NewVerifier(pki.Store, signing.VerifyOptions{})
	cases := signingtest.Attacks(t, pki, signingtest.SampleDocument("antrag-1", 20, 2, 300))
	if len(cases) < 15 {
		t.Fatalf("only %d attack cases", len(cases))
	}
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.Name] {
			t.Fatalf("duplicate case name %s", c.Name)
		}
		names[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			res, err := v.Verify(c.Doc)
			if !errors.Is(err, c.Want) {
				t.Fatalf("Verify = %v, %v; want %v", res, err, c.Want)
			}
		})
	}
}

func TestCommentInjectionDoesNotTruncateText(t *testing.T) {
	pki := signingtest.NewPKI(t)
	v := signing.NewVerifier(pki.Store, signing.VerifyOptions{})
	doc, path, want := signingtest.CommentInjected(t, pki, signingtest.SampleDocument("antrag-1", 3, 0, 0))
	if !strings.Contains(string(doc), "<!--injected-->") {
		t.Fatal("comment not injected")
	}
	res, err := v.Verify(doc)
	if err != nil {
		t.Fatalf("Verify: %v (comments are outside the signed node set and must not break it)", err)
	}
	if got := res.Root.FindElement(path).Text(); got != want {
		t.Fatalf("text at %s = %q, want %q: the comment split the signed text", path, got, want)
	}
}

// An element taken out of a larger document keeps the namespaces it inherits.
func TestSignNestedElement(t *testing.T) {
	pki := signingtest.NewPKI(t)
	d := etree.NewDocument()
	if err := d.ReadFromString(`<outer xmlns="urn:outer" xmlns:p="urn:p"><p:inner ID="i1"><leaf>x</leaf></p:inner></outer>`); err != nil {
		t.Fatal(err)
	}
	inner := d.FindElement("//inner")
	signed, err := pki.Portal.Signer.Sign(inner)
	if err != nil {
		t.Fatal(err)
	}
	res, err := signing.NewVerifier(pki.Store, signing.VerifyOptions{}).Verify(signed)
	if err != nil {
		t.Fatal(err)
	}
	if res.Root.NamespaceURI() != "urn:p" || res.Root.SelectElement("leaf").NamespaceURI() != "urn:outer" {
		t.Fatalf("namespaces lost: %s", res.Canonical)
	}
}

// A leading UTF-8 byte order mark does not break verification.
func TestVerifyWithBOM(t *testing.T) {
	pki := signingtest.NewPKI(t)
	signed, err := pki.Portal.Signer.Sign(signingtest.SampleDocument("bom-1", 3, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signing.NewVerifier(pki.Store, signing.VerifyOptions{}).Verify(append([]byte("\xEF\xBB\xBF"), signed...)); err != nil {
		t.Fatal(err)
	}
}
