package signing_test

import (
	"testing"

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
