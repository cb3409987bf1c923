package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/submission"
)

// TestPeerHeldComesBackAfterThePeerRotatedItsCertificate: every answer to a
// forwarding was lost, so the package was held here while the peer had it.
// The peer then rotated its key: its new certificate beside the old one in
// this gateway's peers/ (as docs/federation.md says), the old one ended. The
// tracker found the package at the peer and forwarded it again, and the peer
// answered the repeat with its first receipt, signed with the old certificate:
// verified as of now it did not verify, and the package stayed held for good,
// the portal reading "held" while the office at the peer worked on it. Now a
// repeat's receipt that was valid when the peer signed it is taken, and the
// package is forwarded.
func TestPeerHeldComesBackAfterThePeerRotatedItsCertificate(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn)
	byPKI := filepath.Join(by.dir, "pki")
	// by's old certificate ends in a few seconds; its clock is held before
	// that end, so it takes the package and signs its receipt with it however
	// slow this machine is. Its next certificate waits in a folder of its own.
	oldEnd := time.Now().Add(4 * time.Second)
	shortLivedCert(t, byPKI, by.id, oldEnd)
	nextDir := t.TempDir()
	nextKey, nextCert := shortLivedCert(t, nextDir, by.id, time.Now().AddDate(1, 0, 0))
	// sn trusts both, each leaf in a file of its own in peers/.
	copyFile(t, filepath.Join(byPKI, "gateway.pem"), sn.peerCertFile(by))
	copyFile(t, nextCert, filepath.Join(filepath.Dir(sn.peerCertFile(by)), by.id+"-next.pem"))
	by.start(t)
	held := time.Now()
	clock := func() time.Time { return held }
	by.g.clock.Store(&clock)

	// Between them: at first every forwarding reaches by and its answer is
	// lost, and no status question gets through (the tracker would forward
	// the held package again while answers are still lost: once per run).
	u, err := url.Parse(by.url())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	var lose atomic.Bool
	lose.Store(true)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !lose.Load():
			rp.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, federation.PathForward):
			rp.ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, "the peer's answer was lost", http.StatusBadGateway)
		default:
			http.Error(w, "not now", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(proxy.Close)
	sn.peer(by, proxy.URL, 100*time.Millisecond, "09")
	sn.cfg.Delivery.MaxAttempts = 2
	sn.start(t)

	id := sn.submit(t, fedMuenchenARS)
	s := sn.waitState(t, id, submission.StateHeld)
	bs, err := by.g.Broker.FindMessage(s.Sender, s.MessageID)
	if err != nil {
		t.Fatalf("the peer does not have the package whose answers were lost: %v", err)
	}

	// The old certificate ends; by restarts with its next one.
	waitFor(t, "the end of by's old certificate", func() bool { return time.Now().After(oldEnd.Add(time.Second)) })
	by.stop(t)
	copyFile(t, nextKey, filepath.Join(byPKI, "gateway-key.pem"))
	copyFile(t, nextCert, filepath.Join(byPKI, "gateway.pem"))
	by.start(t)
	lose.Store(false)

	waitFor(t, "the package forwarded again, or held again", func() bool {
		s = sn.sub(t, id)
		_, requeued := logSays(t, sn.g, id, submission.EventRequeued, "gateway amtsbote-by has the package")
		return s.State == submission.StateForwarded || s.State == submission.StateDelivered || requeued && s.State == submission.StateHeld
	})
	if s.State == submission.StateHeld {
		evs, _ := sn.g.Broker.Log(id)
		t.Fatalf("held again after the peer answered the repeat with its first receipt: %+v", evs[len(evs)-1])
	}
	if s.Forward == nil || s.Forward.PeerSubmissionID != bs.ID {
		t.Fatalf("sn's record of the forwarding: %+v (the peer's submission is %s)", s.Forward, bs.ID)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
