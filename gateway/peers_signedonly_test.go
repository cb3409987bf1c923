package gateway

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// TestForwardedPackageParsesOnlyTheVerifiedElement is
// TestIntakeParsesOnlyTheVerifiedElement for a package a peer forwards
// (intake.SubmitForwarded): its ds:Signature as the root's first child is a
// shape the verifier accepts and paket.Parse refuses in an unverified tree, so
// it is received only because intake reads the element the verifier re-parsed
// from the digested bytes.
func TestForwardedPackageParsesOnlyTheVerifiedElement(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn)
	by.start(t) // sn does not run: it only signs the package and the envelope
	id := paket.NewMessageID()
	pkg := sn.signedPackage(t, id, paket.Ort{ARS: fedMuenchenARS})
	first := signingtest.Resign(t, pkg, &signingtest.Party{Key: portalKey(t, sn)}, func(_ *etree.Document, root, sig *etree.Element) {
		root.RemoveChild(sig)
		root.InsertChildAt(0, sig)
	})
	if code, body := sn.forwardRaw(t, by, id, first); code != http.StatusCreated {
		t.Fatalf("%d %.300s, want 201", code, body)
	}
	if _, err := by.g.Broker.FindMessage("amt24", id); err != nil {
		t.Fatalf("the forwarded package was not received: %v", err)
	}
}

// portalKey is the private key of n's development portal (signedPackage's signer).
func portalKey(t *testing.T, n *fedNode) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.dir, "pki", "portal-amt24-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("portal key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}
