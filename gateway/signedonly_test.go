package gateway

import (
	"context"
	"testing"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// TestIntakeParsesOnlyTheVerifiedElement: intake reads the package from the
// element the verifier re-parsed from the digested bytes, never from the
// document it was given. A package whose ds:Signature is the root's first
// child is one the verifier accepts (one Signature, a direct child of the root)
// and paket.Parse refuses in an unverified tree (there a Signature is only
// skipped as the root's last child): it is accepted, because the verified
// element holds no Signature at all.
func TestIntakeParsesOnlyTheVerifiedElement(t *testing.T) {
	f := start(t)
	p := f.example()
	signed, err := f.pki.Portal.Signer.Sign(p.Element())
	if err != nil {
		t.Fatal(err)
	}
	first := signingtest.Resign(t, signed, f.pki.Portal, func(_ *etree.Document, root, sig *etree.Element) {
		root.RemoveChild(sig)
		root.InsertChildAt(0, sig)
	})
	res, err := f.portal.SubmitRaw(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 201 {
		t.Fatalf("status %d %+v, want 201", res.Status, res.Problem)
	}
	s, err := f.g.Broker.FindMessage(p.Kopf.Absender, p.Kopf.NachrichtID)
	if err != nil || s.ID != res.SubmissionID {
		t.Fatalf("record: %v %v", s, err)
	}
}
