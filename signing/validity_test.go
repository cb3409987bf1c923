package signing_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// A pinned leaf is trusted as it is, but only within its validity: no chain
// check (x509.Verify) looks at its dates, so the trust store's own check is the
// only one (docs/signing.md, "Pinned leaves").
func TestPinnedLeafOnlyWithinItsValidity(t *testing.T) {
	now := time.Now()
	signer, cert := signingtest.SelfSigned(t, "pinned-short", now.Add(-time.Hour), now.Add(time.Hour))
	ts := signing.NewTrustStore()
	if err := ts.Add(signing.RolePortal, cert); err != nil {
		t.Fatal(err)
	}
	doc, err := signer.Sign(signingtest.SampleDocument("pinned-1", 3, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	v := signing.NewVerifier(ts, signing.VerifyOptions{})
	if _, err := v.At(now).Verify(doc, signing.RolePortal); err != nil {
		t.Fatalf("within its validity: %v", err)
	}
	for name, at := range map[string]time.Time{"after its end": now.Add(2 * time.Hour), "before its start": now.Add(-2 * time.Hour)} {
		if _, err := v.At(at).Verify(doc, signing.RolePortal); !errors.Is(err, signing.ErrUntrustedSigner) {
			t.Errorf("%s: Verify = %v, want ErrUntrustedSigner", name, err)
		}
	}
}

// A chain is only as valid as its shortest-lived certificate, also once it is
// cached: a leaf that outlives its CA is refused after the CA ended, although
// the same leaf was trusted (and its chain cached) before.
func TestCachedChainEndsWithItsCA(t *testing.T) {
	now := time.Now()
	ca, caKey := signingtest.Certify(t, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "short-lived CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}, nil, nil)
	leaf, leafKey := signingtest.Certify(t, &x509.Certificate{SerialNumber: big.NewInt(2),
		Subject: pkix.Name{CommonName: "long-lived-portal"}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}, ca, caKey)
	signer, err := signing.NewSigner(leafKey, []*x509.Certificate{leaf, ca})
	if err != nil {
		t.Fatal(err)
	}
	ts := signing.NewTrustStore()
	if err := ts.Add(signing.RolePortal, ca); err != nil {
		t.Fatal(err)
	}
	doc, err := signer.Sign(signingtest.SampleDocument("chain-1", 3, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	v := signing.NewVerifier(ts, signing.VerifyOptions{})
	if _, err := v.At(now).Verify(doc, signing.RolePortal); err != nil {
		t.Fatalf("while the CA is valid: %v", err)
	}
	if _, err := v.At(now.Add(2*time.Hour)).Verify(doc, signing.RolePortal); !errors.Is(err, signing.ErrUntrustedSigner) {
		t.Fatalf("after the CA ended (leaf still valid, chain cached): Verify = %v, want ErrUntrustedSigner", err)
	}
}
