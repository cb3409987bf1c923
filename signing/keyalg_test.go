package signing_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// The SignatureMethod must name the algorithm of the certificate's key: a value
// made with an ECDSA key under "rsa-sha256" (or the other way round) is not the
// accepted shape, and every other XMLDSig verifier refuses it (docs/signing.md,
// "Accepted when verifying").
func TestSignatureMethodMustMatchTheKey(t *testing.T) {
	pki := signingtest.NewPKI(t)
	v := signing.NewVerifier(pki.Store, signing.VerifyOptions{})
	for _, c := range []struct {
		name   string
		party  *signingtest.Party
		method string
	}{
		{"ecdsa-key-under-rsa-sha256", pki.PortalECDSA, signing.AlgRSASHA256},
		{"rsa-key-under-ecdsa-sha256", pki.Portal, signing.AlgECDSASHA256},
	} {
		t.Run(c.name, func(t *testing.T) {
			signed, err := c.party.Signer.Sign(signingtest.SampleDocument("alg-1", 3, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			doc := signingtest.Resign(t, signed, c.party, func(_ *etree.Document, _, sig *etree.Element) {
				sig.FindElement("./SignedInfo/SignatureMethod").CreateAttr("Algorithm", c.method)
			})
			if _, err := v.Verify(doc, signing.RolePortal); !errors.Is(err, signing.ErrInvalidSignature) {
				t.Fatalf("Verify = %v, want ErrInvalidSignature", err)
			}
		})
	}
}

// An RSA key below 2048 bits is refused even where its certificate is trusted
// (pinned): the signature itself proves nothing then.
func TestWeakRSAKeyRefused(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "weak-portal"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ts := signing.NewTrustStore()
	if err := ts.Add(signing.RolePortal, cert); err != nil {
		t.Fatal(err)
	}
	pki := signingtest.NewPKI(t)
	signed, err := pki.Pinned.Signer.Sign(signingtest.SampleDocument("weak-1", 3, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	// The same document, its KeyInfo naming the weak certificate and signed with its key.
	doc := signingtest.Resign(t, signed, &signingtest.Party{Key: key}, func(_ *etree.Document, _, sig *etree.Element) {
		sig.FindElement("./KeyInfo/X509Data/X509Certificate").SetText(base64.StdEncoding.EncodeToString(cert.Raw))
	})
	_, err = signing.NewVerifier(ts, signing.VerifyOptions{}).Verify(doc, signing.RolePortal)
	if !errors.Is(err, signing.ErrUntrustedSigner) {
		t.Fatalf("Verify = %v, want ErrUntrustedSigner (RSA key of 1024 bits)", err)
	}
}
