package signing_test

import (
	"bytes"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// fakeSign stands in for the key: deterministic, so both paths sign alike.
func fakeSign(b []byte) ([]byte, error) {
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// TestReceiptWriterMatchesCanonicalization: the receipts the gateway signs are
// written directly (receiptwriter.go); they must be byte for byte what building the
// element and canonicalizing it gives — for both kinds, with and without the
// optional fields, with every character canonical XML escapes, for RSA and ECDSA
// signers (whose SignatureMethod differs) and chains of one and two certificates.
// And the written receipt verifies with the real key.
func TestReceiptWriterMatchesCanonicalization(t *testing.T) {
	pki := signingtest.NewPKI(t)
	odd := sampleReceipts()[2]
	odd.SubmissionID = "sub-\"&<>'\t\r\n-ä€𝄞"
	odd.OfficeName = "  Amt für Bau & Umwelt <Süd>\r\n\t\"x\"  "
	odd.Receiver = "https://fv.example/hook?a=1&b=<2>"
	odd.Time = time.Date(2026, 12, 3, 4, 5, 6, 0, time.FixedZone("CET", 3600))
	noName := sampleReceipts()[0]
	noName.OfficeName = ""
	receipts := append(sampleReceipts(), odd, noName)
	for _, party := range []*signingtest.Party{pki.Gateway, pki.PortalECDSA, pki.Portal} {
		for i, r := range receipts {
			want, err := party.Signer.SignReceiptCanonicalized(r, fakeSign)
			if err != nil {
				t.Fatalf("%s receipt %d: canonicalized: %v", party.Name, i, err)
			}
			got, err := party.Signer.SignReceiptWritten(r, fakeSign)
			if err != nil {
				t.Fatalf("%s receipt %d: written: %v", party.Name, i, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s receipt %d differs:\nwritten:        %q\ncanonicalized:  %q", party.Name, i, got, want)
			}
		}
	}
	// Written and signed with the real key, each verifies and reads back.
	v := signing.NewVerifier(pki.Store, signing.VerifyOptions{})
	for i, r := range receipts {
		signed, err := pki.Gateway.Signer.SignReceipt(r)
		if err != nil {
			t.Fatal(err)
		}
		res, err := v.Verify(signed, signing.RoleGateway)
		if err != nil {
			t.Fatalf("receipt %d: %v\n%s", i, err, signed)
		}
		got, err := signing.ParseReceipt(res.Root)
		if err != nil || got.SubmissionID != r.SubmissionID || got.OfficeName != r.OfficeName || got.Receiver != r.Receiver {
			t.Fatalf("receipt %d read back as %+v: %v", i, got, err)
		}
	}
	// A bad receipt is refused by both paths alike.
	bad := sampleReceipts()[0]
	bad.PackageSHA256 = "xyz"
	if _, err := pki.Gateway.Signer.SignReceiptWritten(bad, fakeSign); err == nil {
		t.Fatal("the writer signed a receipt with a malformed digest")
	}
}

// FuzzReceiptWriter: for any field values the validator lets through, the written
// receipt equals the canonicalized one.
func FuzzReceiptWriter(f *testing.F) {
	f.Add("sub-1", "amt24", "Bürgeramt & Co", "https://x.example/?a=1&b=2", "webhook", true)
	f.Add("a\r\nb", "<x>", "\"q\"", "\t", "", false)
	pki := signingtest.NewPKI(f)
	f.Fuzz(func(t *testing.T, id, sender, officeName, receiver, channel string, delivery bool) {
		r := sampleReceipts()[0]
		if delivery {
			r = sampleReceipts()[2]
			r.Receiver = receiver
		}
		r.SubmissionID, r.Sender, r.OfficeName, r.Channel = id, sender, officeName, channel
		want, errC := pki.Gateway.Signer.SignReceiptCanonicalized(r, fakeSign)
		got, errW := pki.Gateway.Signer.SignReceiptWritten(r, fakeSign)
		if (errC == nil) != (errW == nil) {
			t.Fatalf("canonicalized: %v, written: %v", errC, errW)
		}
		if errC == nil && !bytes.Equal(got, want) {
			t.Fatalf("differs:\nwritten:        %q\ncanonicalized:  %q", got, want)
		}
	})
}
