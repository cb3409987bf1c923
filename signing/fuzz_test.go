package signing_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/internal/c14n"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

var sentinels = []error{signing.ErrMalformed, signing.ErrNoSignature, signing.ErrInvalidSignature, signing.ErrUntrustedSigner, signing.ErrLimit}

// FuzzVerify feeds arbitrary bytes to Verify. Seeds: valid RSA and ECDSA documents,
// a receipt and the whole attack corpus. Properties: no panic (Verify's recover
// would turn one into an "internal error", which fails here), every error wraps a
// sentinel, and a success returns a root whose canonical form is exactly the
// digested bytes.
func FuzzVerify(f *testing.F) {
	pki := signingtest.NewPKI(f)
	doc := signingtest.SampleDocument("fz-1", 5, 1, 40)
	for _, p := range []*signingtest.Party{pki.Portal, pki.PortalECDSA, pki.Pinned} {
		b, err := p.Signer.Sign(doc)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	r, err := pki.Gateway.Signer.SignReceipt(sampleReceipts()[1])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(r)
	for _, c := range signingtest.Attacks(f, pki, doc) {
		f.Add(c.Doc)
	}
	v := signing.NewVerifier(pki.Store, signing.VerifyOptions{MaxBytes: 1 << 20})
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := v.Verify(data)
		if err != nil {
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("Verify panicked: %v", err)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error without sentinel: %v", err)
		}
		var buf bytes.Buffer
		if err := c14n.Canonicalize(&buf, res.Root, c14n.Inclusive10, nil); err != nil {
			t.Fatalf("verified root does not canonicalize: %v", err)
		}
		if !bytes.Equal(buf.Bytes(), res.Canonical) {
			t.Fatalf("verified root differs from the digested bytes:\n%q\n%q", buf.Bytes(), res.Canonical)
		}
	})
}

// FuzzParseReceipt: ParseReceipt never panics and what it accepts round-trips.
func FuzzParseReceipt(f *testing.F) {
	for _, r := range sampleReceipts() {
		el, err := signing.ReceiptElement(r)
		if err != nil {
			f.Fatal(err)
		}
		d := etree.NewDocument()
		d.SetRoot(el)
		b, _ := d.WriteToBytes()
		f.Add(b)
	}
	f.Add([]byte(`<Eingangsbestaetigung xmlns="urn:amtsbote:quittung:1" ID="x"><Zeitpunkt>nope</Zeitpunkt></Eingangsbestaetigung>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := etree.NewDocument()
		if d.ReadFromBytes(data) != nil || d.Root() == nil {
			return
		}
		r, err := signing.ParseReceipt(d.Root())
		if err != nil {
			if !errors.Is(err, signing.ErrMalformed) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		el, err := signing.ReceiptElement(r)
		if err != nil {
			t.Fatalf("accepted receipt does not rebuild: %v", err)
		}
		r2, err := signing.ParseReceipt(el)
		if err != nil || !r2.Time.Equal(r.Time) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
