package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// TestPeerFirstStationInTheFutureDoesNotMoveTheClock: the portal certificate of
// a forwarded package is checked as of the time the first gateway took it, but
// never later than this gateway's clock (intake.SubmitForwarded). A first
// station dated in the future would otherwise make a certificate that is not
// valid yet — here valid only from an hour on — trusted now.
func TestPeerFirstStationInTheFutureDoesNotMoveTheClock(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn)
	by.start(t)

	now := time.Now().UTC()
	portalSigner, cert := signingtest.SelfSigned(t, "amt24", now.Add(time.Hour), now.AddDate(1, 0, 0))
	p := paket.ExampleWith(fedService, paket.NewMessageID(), now.Truncate(time.Second))
	p.Kopf.Ort = paket.Ort{ARS: fedMuenchenARS}
	pkg, err := portalSigner.Sign(p.Element())
	if err != nil {
		t.Fatal(err)
	}
	future := now.Add(2 * time.Hour)
	env := &federation.Envelope{ForwardingID: "d-" + p.Kopf.NachrichtID, From: sn.id, To: by.id, At: time.Now().UTC(),
		Sender: "amt24", MessageID: p.Kopf.NachrichtID, LeikaKey: fedService, ReceiptSHA256: strings.Repeat("0", 64),
		SenderCert: cert, Package: pkg, Chain: []federation.Hop{{Gateway: sn.id, SubmissionID: "s-" + p.Kopf.NachrichtID, At: future}}}
	doc, err := env.Sign(sn.gatewaySigner(t))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(by.url()+federation.PathForward, federation.ContentType, bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var pr problem.Problem
	_ = json.Unmarshal(b, &pr)
	if resp.StatusCode != http.StatusForbidden || pr.Type != problem.TypeUntrustedSigner {
		t.Fatalf("a certificate not valid yet, first station in the future: %d %.300s, want 403 %s", resp.StatusCode, b, problem.TypeUntrustedSigner)
	}
	if s, err := by.g.Broker.FindMessage("amt24", p.Kopf.NachrichtID); err == nil {
		t.Fatalf("the package was received: %s", s.ID)
	}
}
