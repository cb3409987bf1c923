package gateway

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/federation"
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
	sn, by = newFedNode(t, "amtsbote-sn"), newFedNode(t, "amtsbote-by")
	fedTrust(t, sn, by)
	by.office("09", "09162", "muenchen-kvr", fedHook(t))
	by.peer(sn, "", time.Hour, "14")
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
