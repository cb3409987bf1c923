package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/submission"
)

// TestPeerHeldAgainAfterItsRequeueIsNotRequeuedForever: a package held here
// after every forwarding's answer was lost is forwarded again once the peer
// says it has it (TestPeerHeldAfterLostAnswersIsForwardedAgain). When that
// repeat fails for good too — the peer answers a repeat with its first
// receipt, signed with the certificate it had then, and that certificate was
// replaced in peers/ or has ended since — the package was held again, named
// again at the next look at held packages, forwarded again, held again: every
// HeldEvery poll intervals (100 s at the default), for good, with a requeued,
// an attempt and a held event each time. Now a package comes back from its
// peer once per run of the gateway; after that it stays held for the operator,
// with its reason, and the log says so once.
func TestPeerHeldAgainAfterItsRequeueIsNotRequeuedForever(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn)
	by.start(t)
	u, err := url.Parse(by.url())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	var lose, spoil atomic.Bool
	var forwardings atomic.Int64
	lose.Store(true)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, federation.PathForward) {
			rp.ServeHTTP(w, r)
			return
		}
		forwardings.Add(1)
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		switch {
		case lose.Load():
			http.Error(w, "the peer's answer was lost", http.StatusBadGateway)
		case spoil.Load():
			// The receipt does not verify here, as one signed with a
			// certificate no longer trusted does not.
			w.WriteHeader(rec.Code)
			_, _ = w.Write(bytes.Replace(rec.Body.Bytes(), []byte("<"), []byte("<x"), 3))
		default:
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		}
	}))
	t.Cleanup(proxy.Close)
	sn.peer(by, proxy.URL, 100*time.Millisecond, "09")
	sn.cfg.Delivery.MaxAttempts = 2
	sn.start(t)

	id := sn.submit(t, fedMuenchenARS)
	sn.waitState(t, id, submission.StateHeld)
	lose.Store(false)
	spoil.Store(true)
	before := forwardings.Load()
	waitFor(t, "the requeued forwarding", func() bool { return forwardings.Load() > before })
	sn.waitState(t, id, submission.StateHeld) // the forwarding's answer did not verify
	after := forwardings.Load()
	// Three looks at the held packages (every HeldEvery poll intervals) pass.
	time.Sleep(3 * federation.HeldEvery * 100 * time.Millisecond)
	if got := forwardings.Load(); got != after {
		t.Errorf("the package was forwarded %d times more within three looks, want none: it comes back once", got-after)
	}
	if s := sn.sub(t, id); s.State != submission.StateHeld {
		t.Errorf("the package is %s, want held for the operator", s.State)
	}
}
