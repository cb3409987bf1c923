package federation

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/signing"
)

// TestPinnedCertificateOutranksAPeerCA: a peer with peers[].certificate signs
// with that certificate and no other, even where the trust store also holds a
// CA of the peer role (docs/federation.md advises against one, but allows it)
// that issued another certificate in the peer's name: whoever got that one from
// the CA could otherwise forward packages as the peer. The store alone accepts
// it; the pin is what refuses it.
func TestPinnedCertificateOutranksAPeerCA(t *testing.T) {
	w := newWorld(t)
	store := signing.NewTrustStore()
	if err := store.Add(signing.RolePeer, w.pki.CA); err != nil {
		t.Fatal(err)
	}
	peer := config.Peer{ID: w.a.Name, Lands: []string{"14"}, BaseURL: "http://a.invalid", Certificate: w.a.CertFile}
	tr, err := NewTrust(TrustOptions{Self: w.b.Name, Store: store, Peers: []config.Peer{peer}})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	namesake := w.pki.IssueSigner(t, key, w.a.Name, now.Add(-time.Hour), now.Add(time.Hour))
	sign := func(s *signing.Signer) []byte {
		doc, err := w.envelope(t).Sign(s)
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	if _, err := store.VerifyCertificate(namesake.Certificate(), nil, now, signing.RolePeer); err != nil {
		t.Fatalf("the CA's other certificate is not trusted by the store, so this test proves nothing: %v", err)
	}
	if _, _, err := tr.Verify(sign(w.a.Signer), w.a.Name); err != nil {
		t.Fatalf("the pinned certificate: %v", err)
	}
	if _, _, err := tr.Verify(sign(namesake), w.a.Name); !errors.Is(err, ErrUntrustedPeer) || !strings.Contains(err.Error(), "another certificate") {
		t.Errorf("another certificate of the peer's name from a trusted CA: %v", err)
	}
}
