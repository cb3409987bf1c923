package signingtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/signing"
)

// SelfSigned returns a signer with a throwaway self-signed ECDSA P-256 certificate
// for cn, valid from notBefore to notAfter, and that certificate: a signer the
// test PKI does not know, or one whose validity a test chooses.
func SelfSigned(tb testing.TB, cn string, notBefore, notAfter time.Time) (*signing.Signer, *x509.Certificate) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return SelfSignedWith(tb, key, cn, notBefore, notAfter)
}

// SelfSignedWith is SelfSigned for a key of the caller's (RSA, another curve).
func SelfSignedWith(tb testing.TB, key crypto.Signer, cn string, notBefore, notAfter time.Time) (*signing.Signer, *x509.Certificate) {
	tb.Helper()
	tpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := signing.NewSigner(key, []*x509.Certificate{cert})
	if err != nil {
		tb.Fatal(err)
	}
	return s, cert
}

// IssueSigner returns a signer for key with a certificate for cn that the test
// PKI's CA issued, valid from notBefore to notAfter with key usage
// digitalSignature, its chain the certificate and the CA.
func (p *PKI) IssueSigner(tb testing.TB, key crypto.Signer, cn string, notBefore, notAfter time.Time) *signing.Signer {
	tb.Helper()
	cert := p.Issue(tb, key, cn, notBefore, notAfter, x509.KeyUsageDigitalSignature)
	s, err := signing.NewSigner(key, []*x509.Certificate{cert, p.CA})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Issue returns a certificate for key and cn that the test PKI's CA issued,
// valid from notBefore to notAfter with key usage ku.
func (p *PKI) Issue(tb testing.TB, key crypto.Signer, cn string, notBefore, notAfter time.Time, ku x509.KeyUsage) *x509.Certificate {
	tb.Helper()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter, KeyUsage: ku, BasicConstraintsValid: true},
		p.CA, key.Public(), p.CAKey)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}

// Certify makes a fresh ECDSA P-256 key and a certificate for it from tmpl,
// issued by parent with parentKey, or self-signed when parent is nil: for a
// test that needs a certificate authority, a chain or a server certificate of
// its own shape (a CA shorter-lived than its leaf, a mail server's name).
func Certify(tb testing.TB, tmpl, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, *ecdsa.PrivateKey) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert, key
}
