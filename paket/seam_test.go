package paket

import (
	"crypto/x509"
	"testing"
	"time"

	dsig "github.com/russellhaering/goxmldsig"
)

// The seam with signing: a package signed and verified with goxmldsig (the library
// signing/ builds on) parses from the element Validate returns, with the same values
// as before signing. Exclusive C14N on a copy, as LIBRARY-NOTES advises.
func TestParseVerifiedElement(t *testing.T) {
	ks := dsig.RandomKeyStoreForTest()
	_, certDER, err := ks.GetKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*Paket{
		"example": ExampleWith(testLeika, testMsgID, testTime),
		"full":    full(),
		"json":    jsonPaket(),
		"big-10k": Big(120, 1),
		"big-900": Big(900, 3), // below goxmldsig v1.6.1's ~975 element traversal limit
	} {
		t.Run(name, func(t *testing.T) {
			sctx := dsig.NewDefaultSigningContext(ks)
			sctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
			root := p.Element()
			sig, err := sctx.ConstructSignature(root.Copy(), true)
			if err != nil {
				t.Fatal(err)
			}
			root.AddChild(sig)
			raw := marshalRoot(t, root)

			doc, err := ReadTree(raw, Limits{})
			if err != nil {
				t.Fatalf("ReadTree of a signed package: %v", err)
			}
			vctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}})
			vctx.Clock = dsig.NewFakeClockAt(time.Now())
			verified, err := vctx.Validate(doc.Root())
			if err != nil {
				t.Fatalf("goxmldsig Validate: %v", err)
			}
			got, err := Parse(verified, Limits{})
			if err != nil {
				t.Fatalf("Parse(verified): %v", err)
			}
			if d := diffPaket(p, got); d != "" {
				t.Fatal(d)
			}
			// And the signed tree itself (signature as last child) parses the same.
			got2, err := Parse(doc.Root(), Limits{})
			if err != nil {
				t.Fatalf("Parse(signed tree): %v", err)
			}
			if d := diffPaket(p, got2); d != "" {
				t.Fatal(d)
			}
		})
	}
}
