package signing_test

import (
	"bytes"
	"crypto/x509"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// Differential test against goxmldsig, an independent implementation: it must
// accept what we sign (within its element budget), and we must accept what it
// signs and extract exactly the same signed bytes.
func TestGoxmldsigDifferential(t *testing.T) {
	pki := signingtest.NewPKI(t)
	v := signing.NewVerifier(pki.Store, signing.VerifyOptions{})
	doc := signingtest.SampleDocument("diff-1", 40, 2, 200)

	vctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{pki.Portal.Cert}})
	vctx.Clock = dsig.NewFakeClockAt(time.Now())

	t.Run("goxmldsig-verifies-ours", func(t *testing.T) {
		signed, err := pki.Portal.Signer.Sign(doc)
		if err != nil {
			t.Fatal(err)
		}
		d := etree.NewDocument()
		if err := d.ReadFromBytes(signed); err != nil {
			t.Fatal(err)
		}
		theirs, err := vctx.Validate(d.Root())
		if err != nil {
			t.Fatalf("goxmldsig rejects our signature: %v", err)
		}
		ours, err := v.Verify(signed)
		if err != nil {
			t.Fatal(err)
		}
		canon, err := dsig.MakeC14N10RecCanonicalizer().Canonicalize(theirs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(canon, ours.Canonical) {
			t.Fatalf("signed bytes differ:\ngoxmldsig: %.300s\nours:      %.300s", canon, ours.Canonical)
		}
	})

	for _, tc := range []struct {
		name string
		c    dsig.Canonicalizer
	}{
		{"c14n10", dsig.MakeC14N10RecCanonicalizer()},
		{"c14n11", dsig.MakeC14N11Canonicalizer()},
		{"exc-c14n", dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")},
	} {
		t.Run("we-verify-goxmldsig/"+tc.name, func(t *testing.T) {
			ctx, err := dsig.NewSigningContext(pki.Portal.Key, [][]byte{pki.Portal.Cert.Raw})
			if err != nil {
				t.Fatal(err)
			}
			ctx.Canonicalizer = tc.c
			ctx.IdAttribute = "ID"
			// Sign a copy: SignEnveloped with exc-c14n rewrites namespaces in place.
			el := doc.Copy()
			sig, err := ctx.ConstructSignature(el.Copy(), true)
			if err != nil {
				t.Fatal(err)
			}
			el.AddChild(sig)
			d := etree.NewDocument()
			d.SetRoot(el)
			signed, err := d.WriteToBytes()
			if err != nil {
				t.Fatal(err)
			}
			res, err := v.Verify(signed)
			if err != nil {
				t.Fatalf("we reject goxmldsig's signature: %v\n%.600s", err, signed)
			}
			theirs, err := vctx.Validate(d.Root())
			if err != nil {
				t.Fatalf("goxmldsig rejects its own signature: %v", err)
			}
			canon, err := tc.c.Canonicalize(theirs)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name != "exc-c14n" && !bytes.Equal(canon, res.Canonical) {
				t.Fatalf("signed bytes differ:\ngoxmldsig: %.300s\nours:      %.300s", canon, res.Canonical)
			}
		})
	}

	t.Run("goxmldsig-budget", func(t *testing.T) {
		// Documents why we have our own verification path (docs/signing.md).
		signed, err := pki.Portal.Signer.Sign(signingtest.SampleDocument("big", 5000, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		d := etree.NewDocument()
		if err := d.ReadFromBytes(signed); err != nil {
			t.Fatal(err)
		}
		_, gerr := vctx.Validate(d.Root())
		t.Logf("goxmldsig v1.6.1 on 5,000 fields: %v", gerr)
		if _, err := v.Verify(signed); err != nil {
			t.Fatalf("our verifier: %v", err)
		}
	})
}
