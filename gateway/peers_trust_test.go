package gateway

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/submission"
)

// TestPeerRevokedIsSentNothing: a peer whose certificate this gateway revoked got
// the whole package posted before its answer was refused; the package then sat
// with a gateway that is no longer trusted, and the portal read only that the
// answer did not verify. Now the peer's certificate is checked before anything is
// sent: the forwarding fails for good at once (held here, as for other refusals),
// and the peer receives nothing.
func TestPeerRevokedIsSentNothing(t *testing.T) {
	sn, by, proxy := trustedPair(t)
	first := sn.submit(t, fedMuenchenARS)
	sn.waitState(t, first, submission.StateDelivered)

	data, err := os.ReadFile(sn.peerCertFile(by))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := signing.ParseCertificatesPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := sn.g.Trust.Revoke(certs[0]); err != nil {
		t.Fatal(err)
	}
	sentBefore := proxy.count(federation.PathForward)
	second := sn.submit(t, fedMuenchenARS)
	heldWithoutSending(t, sn, by, proxy, second, sentBefore)
}

// trustedPair is sn forwarding packages for München to by through a proxy that
// counts what it is sent; by's office takes them by webhook.
func trustedPair(t *testing.T) (sn, by *fedNode, proxy *fedProxy) {
	t.Helper()
	sn = newFedNode(t, "amtsbote-sn")
	by = newMunichPeer(t, sn)
	by.start(t)
	proxy = newFedProxy(t, by.url())
	sn.peer(by, proxy.srv.URL, time.Hour, "09")
	sn.start(t)
	return sn, by, proxy
}

// heldWithoutSending: the package id at sn is held because by is not trusted, and
// by was sent no forwarding after sentBefore.
func heldWithoutSending(t *testing.T, sn, by *fedNode, proxy *fedProxy, id string, sentBefore int64) {
	t.Helper()
	s := sn.waitState(t, id, submission.StateHeld)
	if n := proxy.count(federation.PathForward) - sentBefore; n != 0 {
		t.Errorf("the untrusted peer was sent %d forwardings", n)
	}
	if _, err := by.g.Broker.FindMessage(s.Sender, s.MessageID); err == nil {
		t.Error("the untrusted peer has the package")
	}
	evs, err := sn.g.Broker.Log(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type == submission.EventChannelFailed && strings.Contains(e.Detail, "not a trusted peer") && strings.Contains(e.Detail, "not sent") {
			return
		}
	}
	t.Errorf("the portal does not read why: %+v", evs)
}

// TestPeerRemovedAndReloadedIsRefused: docs/federation.md told operators to revoke
// a peer with a CRL in trust/crl/, but also to install only the peer's leaf, never
// its CA; the trust store takes only CRLs of CAs it trusts, so such a CRL failed the
// whole reload and the peer stayed trusted. For a peer pinned by its leaf,
// revoking is removing the file and reloading: then its envelopes are refused with
// federation/untrusted-peer, and nothing is sent to it.
func TestPeerRemovedAndReloadedIsRefused(t *testing.T) {
	sn, by, proxy := trustedPair(t)
	first := sn.submit(t, fedMuenchenARS)
	sn.waitState(t, first, submission.StateDelivered)
	fromBy := func() (int, string) {
		msg := paket.NewMessageID()
		code, body := by.forwardRaw(t, sn, msg, by.signedPackage(t, msg, paket.Ort{ARS: "145220275275"}))
		var p problem.Problem
		_ = json.Unmarshal(body, &p)
		return code, p.Type
	}

	// The CRL of by's CA (which sn does not hold): the reload fails, by stays.
	crl := peerCRL(t, by)
	crlFile := filepath.Join(sn.dir, "pki", "trust", signing.CRLDir, "amtsbote-by.pem")
	if err := os.WriteFile(crlFile, crl, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := sn.reload(t); code == http.StatusOK {
		t.Error("a CRL of a CA the trust store does not hold was taken")
	}
	if code, typ := fromBy(); code == http.StatusForbidden {
		t.Errorf("after the failed reload, by's envelope: %d %s (the old trust stays)", code, typ)
	}
	if err := os.Remove(crlFile); err != nil {
		t.Fatal(err)
	}

	// Removing by's certificate and reloading revokes it.
	if err := os.Remove(sn.peerCertFile(by)); err != nil {
		t.Fatal(err)
	}
	if code := sn.reload(t); code != http.StatusOK {
		t.Fatalf("reload: %d", code)
	}
	if code, typ := fromBy(); code != http.StatusForbidden || typ != federation.TypeUntrustedPeer {
		t.Errorf("by's envelope after its certificate was removed: %d %s", code, typ)
	}
	sentBefore := proxy.count(federation.PathForward)
	second := sn.submit(t, fedMuenchenARS)
	heldWithoutSending(t, sn, by, proxy, second, sentBefore)
}

// reload is the operator's POST /v1/admin/directory/reload (what SIGHUP does).
func (n *fedNode) reload(t *testing.T) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.url()+"/v1/admin/directory/reload", nil)
	req.Header.Set("Authorization", "Bearer "+n.g.Config.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// peerCRL is a CRL of n's development CA that revokes n's gateway certificate.
func peerCRL(t *testing.T, n *fedNode) []byte {
	t.Helper()
	pki := filepath.Join(n.dir, "pki")
	keyPEM, err := os.ReadFile(filepath.Join(pki, "dev-ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := signing.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) *x509.Certificate {
		data, err := os.ReadFile(filepath.Join(pki, name))
		if err != nil {
			t.Fatal(err)
		}
		certs, err := signing.ParseCertificatesPEM(data)
		if err != nil {
			t.Fatal(err)
		}
		return certs[0]
	}
	ca, leaf := read("dev-ca.pem"), read("gateway.pem")
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: leaf.SerialNumber, RevocationTime: time.Now()}}}, ca, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}
