package signing_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// BenchDocument is the ~10 KB, ~120 element package the numbers in
// docs/signing.md refer to (bench/xmlsec uses the same shape).
func benchDoc(b *testing.B) ([]byte, *signingtest.PKI) {
	pki := signingtest.NewPKI(b)
	signed, err := pki.Portal.Signer.Sign(signingtest.BenchDocument())
	if err != nil {
		b.Fatal(err)
	}
	return signed, pki
}

func BenchmarkVerify10KB(b *testing.B) {
	signed, pki := benchDoc(b)
	v := signing.NewVerifier(pki.Store, signing.VerifyOptions{})
	if _, err := v.Verify(signed); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(signed)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(signed); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkSign10KB(b *testing.B) {
	pki := signingtest.NewPKI(b)
	doc := signingtest.BenchDocument()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := pki.Portal.Signer.Sign(doc); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// receiptKeys are the gateway's receipt key types the receipt benchmarks compare:
// ECDSA P-256 (the dev PKI's default), RSA-2048 (older installations) and RSA-3072
// (`keys init -receipt-key rsa`, BSI TR-02102's minimum for new systems).
var receiptKeys = []struct {
	name string
	gen  func() (crypto.Signer, error)
}{
	{"ecdsa-p256", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }},
	{"rsa-2048", func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }},
	{"rsa-3072", func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 3072) }},
}

// receiptSigner makes a signer with a self-signed certificate (CN = the sample
// receipt's gateway id) for one of receiptKeys, and the sample receipt it signed.
func receiptSigner(b *testing.B, gen func() (crypto.Signer, error)) (*signing.Signer, []byte) {
	b.Helper()
	key, err := gen()
	if err != nil {
		b.Fatal(err)
	}
	s, _ := signingtest.SelfSignedWith(b, key, sampleReceipts()[0].GatewayID, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	signed, err := s.SignReceipt(sampleReceipts()[0])
	if err != nil {
		b.Fatal(err)
	}
	return s, signed
}

// BenchmarkSignReceipt: what the gateway pays per receipt (two per package) on the
// same Eingangsbestaetigung, by key type. Also reports the signed receipt's size,
// which the store keeps twice per submission.
func BenchmarkSignReceipt(b *testing.B) {
	r := sampleReceipts()[0]
	for _, tc := range receiptKeys {
		b.Run(tc.name, func(b *testing.B) {
			s, signed := receiptSigner(b, tc.gen)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.SignReceipt(r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(signed)), "receipt-bytes")
		})
	}
}

// BenchmarkVerifyReceipt: what a portal or peer pays to verify one receipt with our
// verifier, by key type (ECDSA verification costs more than RSA's; signing is
// where ECDSA wins).
func BenchmarkVerifyReceipt(b *testing.B) {
	for _, tc := range receiptKeys {
		b.Run(tc.name, func(b *testing.B) {
			s, signed := receiptSigner(b, tc.gen)
			ts := signing.NewTrustStore()
			if err := ts.Add(signing.RoleGateway, s.Certificate()); err != nil {
				b.Fatal(err)
			}
			v := signing.NewVerifier(ts, signing.VerifyOptions{})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(signed, signing.RoleGateway); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
