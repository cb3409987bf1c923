package signing_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// goxmldsig v1.6.1 refuses documents above ~975 elements; our path must handle
// real form data: 5,000+ elements and 100 inline attachments.
func TestBigPackage(t *testing.T) {
	pki := signingtest.NewPKI(t)
	v := signing.NewVerifier(pki.Store, signing.VerifyOptions{})
	doc := signingtest.SampleDocument("gross-1", 5000, 100, 20_000)
	signed, err := pki.Portal.Signer.Sign(doc)
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.Verify(signed, signing.RolePortal)
	if err != nil {
		t.Fatalf("Verify big package (%d bytes): %v", len(signed), err)
	}
	fields := res.Root.FindElements("//Feld")
	anlagen := res.Root.FindElements("./Anlagen/Anlage")
	if len(fields) != 5000 || len(anlagen) != 100 {
		t.Fatalf("verified root has %d fields and %d attachments", len(fields), len(anlagen))
	}
	t.Logf("%d bytes, %d elements verified", len(signed), 1+len(res.Root.FindElements("//*")))

	// Tampering anywhere, first to last, is still detected.
	for _, tc := range []struct{ name, old, new string }{
		{"first-field", "Wert 0:", "Wert X:"},
		{"middle-field", "Wert 2500:", "Wert 2501:"},
		{"last-field", "Wert 4999:", "Wert 4998:"},
		{"field-attribute", `name="feld3333"`, `name="feld3334"`},
		{"last-attachment-name", "nachweis-099.pdf", "nachweis-099.exe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Contains(signed, []byte(tc.old)) {
				t.Fatalf("%q not in document", tc.old)
			}
			bad := bytes.Replace(signed, []byte(tc.old), []byte(tc.new), 1)
			if _, err := v.Verify(bad); !errors.Is(err, signing.ErrInvalidSignature) {
				t.Fatalf("tampered %s: %v, want ErrInvalidSignature", tc.name, err)
			}
		})
	}
	t.Run("attachment-content-bytes", func(t *testing.T) {
		// Flip one base64 character deep inside the last attachment's content.
		i := bytes.LastIndex(signed, []byte("<Inhalt>")) + len("<Inhalt>") + 5000
		bad := bytes.Clone(signed)
		if bad[i] == 'A' {
			bad[i] = 'B'
		} else {
			bad[i] = 'A'
		}
		if _, err := v.Verify(bad); !errors.Is(err, signing.ErrInvalidSignature) {
			t.Fatalf("tampered attachment: %v, want ErrInvalidSignature", err)
		}
	})
	t.Run("element-limit", func(t *testing.T) {
		small := signing.NewVerifier(pki.Store, signing.VerifyOptions{MaxElements: 5000})
		if _, err := small.Verify(signed); !errors.Is(err, signing.ErrLimit) {
			t.Fatalf("MaxElements 5000: %v, want ErrLimit", err)
		}
	})
}

func TestLimits(t *testing.T) {
	pki := signingtest.NewPKI(t)
	signed, err := pki.Portal.Signer.Sign(signingtest.SampleDocument("lim", 50, 1, 1000))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts signing.VerifyOptions
		want error
	}{
		{"defaults", signing.VerifyOptions{}, nil},
		{"max-bytes", signing.VerifyOptions{MaxBytes: int64(len(signed) - 1)}, signing.ErrLimit},
		{"max-depth", signing.VerifyOptions{MaxDepth: 3}, signing.ErrLimit},
		{"max-elements", signing.VerifyOptions{MaxElements: 20}, signing.ErrLimit},
		{"max-attributes", signing.VerifyOptions{MaxAttributes: 2}, signing.ErrLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := signing.NewVerifier(pki.Store, tc.opts).Verify(signed)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("attribute-bomb", func(t *testing.T) {
		var b bytes.Buffer
		b.WriteString("<r ID=\"x\"")
		for i := 0; i < 1000; i++ {
			fmt.Fprintf(&b, " a%d=\"\"", i)
		}
		b.WriteString("/>")
		if _, err := signing.NewVerifier(pki.Store, signing.VerifyOptions{}).Verify(b.Bytes()); !errors.Is(err, signing.ErrLimit) {
			t.Fatalf("err = %v, want ErrLimit", err)
		}
	})
}
