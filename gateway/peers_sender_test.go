package gateway

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/paket"
)

// TestPeerVouchedSenderMustBeTheAbsender: a forwarding gateway vouches for the
// portal that signed the package (the envelope's Absender); a package whose
// Absender and signer are another portal than the one vouched for is refused
// (403 sender-mismatch) and not received — the forwarding gateway would track
// it under a sender that did not send it (intake.Forwarded, SubmitForwarded).
func TestPeerVouchedSenderMustBeTheAbsender(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn)
	by.start(t) // sn does not run: it only signs envelopes here
	id := paket.NewMessageID()
	pkg := sn.signedPackage(t, id, paket.Ort{ARS: fedMuenchenARS})
	code, body := sn.forwardRaw(t, by, id, pkg, func(e *federation.Envelope) { e.Sender = "other-portal" })
	var p problem.Problem
	_ = json.Unmarshal(body, &p)
	if code != http.StatusForbidden || p.Type != problem.TypeSenderMismatch {
		t.Fatalf("%d %.300s, want 403 %s", code, body, problem.TypeSenderMismatch)
	}
	for _, sender := range []string{"amt24", "other-portal"} {
		if s, err := by.g.Broker.FindMessage(sender, id); err == nil {
			t.Fatalf("the package vouched for another sender was received under %s: %s", sender, s.ID)
		}
	}
}
