package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// TestGatewaySignerValidLooksAtTheChain: the running gateway checked only its
// certificate's leaf, and an intermediate of the chain that goes into every
// receipt's KeyInfo could end while receipts went on being signed that
// verifiers anchoring on the root refuse.
func TestGatewaySignerValidLooksAtTheChain(t *testing.T) {
	now := time.Now()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, leaf := signingtest.SelfSignedWith(t, key, "gw-test", now.Add(-time.Hour), now.AddDate(1, 0, 0))
	_, mid := signingtest.SelfSigned(t, "Zwischen-CA", now.AddDate(-2, 0, 0), now.Add(24*time.Hour))
	s, err := signing.NewSigner(key, []*x509.Certificate{leaf, mid})
	if err != nil {
		t.Fatal(err)
	}
	g := GatewaySigner{Signer: s, GatewayID: "gw-test", Now: func() time.Time { return now }}
	if err := g.Valid(); err != nil {
		t.Fatalf("today: %v", err)
	}
	g.Now = func() time.Time { return now.Add(48 * time.Hour) }
	if err := g.Valid(); !errors.Is(err, ErrGatewayCertificate) || !strings.Contains(err.Error(), "Zwischen-CA") {
		t.Errorf("the day after the intermediate ended: %v", err)
	}
}
