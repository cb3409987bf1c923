// Package signingtest provides test fixtures for code that verifies amtsbote
// signatures: a throw-away PKI with good and bad signers, sample documents, and a
// corpus of signature-wrapping and malformed-input attacks with the sentinel error
// each one must produce. Other packages' tests (e.g. the HTTP intake) use it to
// show that every attack maps to a clean rejection.
package signingtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/signing"
)

// Party is one key with its certificate (and chain) and a ready Signer.
type Party struct {
	Name     string // Subject CommonName = client id
	Key      crypto.Signer
	Cert     *x509.Certificate
	Chain    []*x509.Certificate // leaf first
	Signer   *signing.Signer
	KeyFile  string // PEM, PKCS#8
	CertFile string // PEM, chain leaf first
}

// PKI is a complete throw-away PKI written to a temporary trust directory:
//
//	<TrustDir>/portals/ca.pem       the CA (trust anchor for role portal)
//	<TrustDir>/portals/pinned.pem   a self-signed leaf pinned as is
//	<TrustDir>/gateways/gateway.pem the gateway certificate (pinned)
//	<TrustDir>/crl/ca.pem           CRL of the CA revoking Revoked
type PKI struct {
	TrustDir string
	Store    *signing.TrustStore
	CA       *x509.Certificate
	CAKey    crypto.Signer
	CAFile   string

	Portal             *Party // RSA-2048, CA-issued, CN=amt24
	PortalECDSA        *Party // P-256, CA-issued, CN=portal-ec
	OtherPortal        *Party // P-256, CA-issued, CN=other-portal (for key swaps)
	Pinned             *Party // RSA-2048, self-signed, pinned, CN=pinned-portal
	Gateway            *Party // RSA-2048, CA-issued, CN=gw-test, role gateway (pinned)
	Expired            *Party // CA-issued, validity in the past
	NoDigitalSignature *Party // CA-issued, key usage keyEncipherment only
	Untrusted          *Party // issued by a CA nobody trusts
	Revoked            *Party // CA-issued, listed in the CRL
}

type material struct {
	caKey                                                         crypto.Signer
	ca                                                            *x509.Certificate
	portal, portalEC, other, pinned, gateway, expired, noDS, untr *partyMaterial
	revoked                                                       *partyMaterial
	crl                                                           []byte
}

type partyMaterial struct {
	name  string
	key   crypto.Signer
	chain []*x509.Certificate
}

var (
	once   sync.Once
	shared *material
	genErr error
)

// NewPKI writes the PKI to tb.TempDir() and loads the trust store. Key material is
// generated once per test binary (RSA key generation is slow) and reused.
func NewPKI(tb testing.TB) *PKI {
	tb.Helper()
	once.Do(func() { shared, genErr = generate() })
	if genErr != nil {
		tb.Fatalf("signingtest: generating PKI: %v", genErr)
	}
	m := shared
	dir := tb.TempDir()
	p := &PKI{TrustDir: filepath.Join(dir, "trust"), CA: m.ca, CAKey: m.caKey}
	for _, sub := range []string{"portals", "gateways", "crl", "keys"} {
		target := filepath.Join(p.TrustDir, sub)
		if sub == "keys" {
			target = filepath.Join(dir, sub)
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	write := func(path string, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	p.CAFile = filepath.Join(p.TrustDir, "portals", "ca.pem")
	write(p.CAFile, signing.CertPEM(m.ca))
	write(filepath.Join(p.TrustDir, "portals", "pinned.pem"), signing.CertPEM(m.pinned.chain[0]))
	write(filepath.Join(p.TrustDir, "gateways", "gateway.pem"), signing.CertPEM(m.gateway.chain[0]))
	write(filepath.Join(p.TrustDir, "crl", "ca.pem"), m.crl)

	party := func(pm *partyMaterial) *Party {
		s, err := signing.NewSigner(pm.key, pm.chain)
		if err != nil {
			tb.Fatalf("signingtest: signer %s: %v", pm.name, err)
		}
		pt := &Party{Name: pm.name, Key: pm.key, Cert: pm.chain[0], Chain: pm.chain, Signer: s,
			KeyFile:  filepath.Join(dir, "keys", pm.name+"-key.pem"),
			CertFile: filepath.Join(dir, "keys", pm.name+".pem")}
		der, err := x509.MarshalPKCS8PrivateKey(pm.key)
		if err != nil {
			tb.Fatal(err)
		}
		write(pt.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		var chain []byte
		for _, c := range pm.chain {
			chain = append(chain, signing.CertPEM(c)...)
		}
		write(pt.CertFile, chain)
		return pt
	}
	p.Portal, p.PortalECDSA, p.OtherPortal = party(m.portal), party(m.portalEC), party(m.other)
	p.Pinned, p.Gateway, p.Expired = party(m.pinned), party(m.gateway), party(m.expired)
	p.NoDigitalSignature, p.Untrusted, p.Revoked = party(m.noDS), party(m.untr), party(m.revoked)

	ts, err := signing.LoadTrustStore(p.TrustDir)
	if err != nil {
		tb.Fatalf("signingtest: loading trust store: %v", err)
	}
	p.Store = ts
	return p
}

func generate() (*material, error) {
	m := &material{}
	now := time.Now()
	rsaKey := func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }
	ecKey := func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }
	serial := int64(1)
	create := func(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(der)
	}
	caTmpl := func(cn string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(5, 0, 0),
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true}
	}
	var err error
	if m.caKey, err = rsaKey(); err != nil {
		return nil, err
	}
	if m.ca, err = create(caTmpl("signingtest CA"), caTmpl("signingtest CA"), m.caKey.Public(), m.caKey); err != nil {
		return nil, err
	}
	evilKey, err := ecKey()
	if err != nil {
		return nil, err
	}
	evilCA, err := create(caTmpl("untrusted CA"), caTmpl("untrusted CA"), evilKey.Public(), evilKey)
	if err != nil {
		return nil, err
	}
	leaf := func(name string, gen func() (crypto.Signer, error), ku x509.KeyUsage, from, to time.Time, parent *x509.Certificate, parentKey crypto.Signer) (*partyMaterial, error) {
		k, err := gen()
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: name}, NotBefore: from, NotAfter: to, KeyUsage: ku,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, BasicConstraintsValid: true}
		if parent == nil { // self-signed
			c, err := create(tmpl, tmpl, k.Public(), k)
			if err != nil {
				return nil, err
			}
			return &partyMaterial{name, k, []*x509.Certificate{c}}, nil
		}
		c, err := create(tmpl, parent, k.Public(), parentKey)
		if err != nil {
			return nil, err
		}
		return &partyMaterial{name, k, []*x509.Certificate{c}}, nil
	}
	ds := x509.KeyUsageDigitalSignature
	valid0, valid1 := now.Add(-time.Hour), now.AddDate(2, 0, 0)
	steps := []struct {
		dst  **partyMaterial
		name string
		gen  func() (crypto.Signer, error)
		ku   x509.KeyUsage
		from time.Time
		to   time.Time
		p    *x509.Certificate
		pk   crypto.Signer
	}{
		{&m.portal, "amt24", rsaKey, ds, valid0, valid1, m.ca, m.caKey},
		{&m.portalEC, "portal-ec", ecKey, ds, valid0, valid1, m.ca, m.caKey},
		{&m.other, "other-portal", ecKey, ds, valid0, valid1, m.ca, m.caKey},
		{&m.pinned, "pinned-portal", rsaKey, ds, valid0, valid1, nil, nil},
		{&m.gateway, "gw-test", rsaKey, ds, valid0, valid1, m.ca, m.caKey},
		{&m.expired, "expired-portal", ecKey, ds, now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0), m.ca, m.caKey},
		{&m.noDS, "nods-portal", ecKey, x509.KeyUsageKeyEncipherment, valid0, valid1, m.ca, m.caKey},
		{&m.untr, "untrusted-portal", ecKey, ds, valid0, valid1, evilCA, evilKey},
		{&m.revoked, "revoked-portal", ecKey, ds, valid0, valid1, m.ca, m.caKey},
	}
	for _, s := range steps {
		if *s.dst, err = leaf(s.name, s.gen, s.ku, s.from, s.to, s.p, s.pk); err != nil {
			return nil, err
		}
	}
	crlDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: now.Add(-time.Hour),
		NextUpdate: now.AddDate(0, 1, 0),
		RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: m.revoked.chain[0].SerialNumber, RevocationTime: now.Add(-time.Minute)},
		},
	}, m.ca, m.caKey)
	if err != nil {
		return nil, err
	}
	m.crl = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crlDER})
	return m, nil
}
