package gateway

import (
	"net/http"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
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
	code, pr, id := forwardSignedBy(t, sn, by, portalSigner, cert, now, now.Add(2*time.Hour))
	if code != http.StatusForbidden || pr.Type != problem.TypeUntrustedSigner {
		t.Fatalf("a certificate not valid yet, first station in the future: %d %+v, want 403 %s", code, pr, problem.TypeUntrustedSigner)
	}
	if s, err := by.g.Broker.FindMessage("amt24", id); err == nil {
		t.Fatalf("the package was received: %s", s.ID)
	}
}
