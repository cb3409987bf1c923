package gateway

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// TestPeerNudgeFloodAsksAtMostOncePerGap: the nudge (POST /federation/v1/hinweis)
// needs no credentials, so anyone can send thousands. Each one used to make the
// forwarding gateway sign a status question to every peer at once; now all the
// nudges of one federation.NudgeGap are worth one early question per peer. The
// nudge still does its job: with a poll interval of an hour, the office's decision
// at the peer reaches the portal's gateway only through the peer's nudge.
func TestPeerNudgeFloodAsksAtMostOncePerGap(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn)
	by.start(t)
	proxy := newFedProxy(t, by.url())
	sn.peer(by, proxy.srv.URL, time.Hour, "09") // asked only when kicked or nudged
	sn.start(t)

	id := sn.submit(t, fedMuenchenARS)
	// by's office took it (webhook) and by nudged sn: sn asked and knows it.
	s := sn.waitState(t, id, submission.StateDelivered)

	before := proxy.count(federation.PathStatus)
	began := time.Now()
	const workers, each = 8, 300
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			c := &http.Client{}
			for range each {
				resp, err := c.Post(sn.url()+federation.PathNudge, "", nil)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					t.Errorf("nudge: %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	// The early question a nudge within the gap scheduled comes one gap later.
	time.Sleep(federation.NudgeGap + federation.NudgeGap/2)
	asked := proxy.count(federation.PathStatus) - before
	elapsed := time.Since(began)
	// One question per gap (the first may come at once), and one that was on its way.
	allowed := int64(elapsed/federation.NudgeGap) + 2
	t.Logf("%d nudges in %s: %d status questions to the peer (at most %d allowed)", workers*each, elapsed.Round(time.Millisecond), asked, allowed)
	if asked > allowed {
		t.Fatalf("%d nudges made %d status questions to the peer within %s; at most %d (one per %s)", workers*each, asked, elapsed, allowed, federation.NudgeGap)
	}
	if asked == 0 {
		t.Fatal("the nudges made no status question at all")
	}

	// Right after a question, the office decides at by and by nudges sn: the nudge
	// is not lost in the gap, sn asks once the gap has passed.
	by.decide(t, s.Sender, s.MessageID, wire.OutcomeAccepted)
	sn.waitState(t, id, submission.StateAccepted)
}

// TestPeerThatHangsDelaysNoOtherPeer: the tracker asked its peers one after
// another, so a peer that took a status question and never answered held back the
// news of every other peer for the question's timeout (30 s) each round. Now every
// peer is asked on its own: while by holds sn's question, the decision at nw
// reaches sn at once.
func TestPeerThatHangsDelaysNoOtherPeer(t *testing.T) {
	sn, by, nw := newFedNode(t, "amtsbote-sn"), newFedNode(t, "amtsbote-by"), newFedNode(t, "amtsbote-nw")
	fedTrust(t, sn, by)
	fedTrust(t, sn, nw)
	hook := fedHook(t)
	by.office("09", "09162", "muenchen-kvr", hook)
	by.peer(sn, "", time.Hour, "14")
	nw.office("05", "05315", "koeln-amt", hook)
	nw.peer(sn, "", time.Hour, "14")
	by.start(t)
	nw.start(t)
	byProxy := newFedProxy(t, by.url())
	sn.peer(by, byProxy.srv.URL, 200*time.Millisecond, "09")
	sn.peer(nw, "", time.Hour, "05") // asked only when nw nudges
	sn.start(t)

	toBy, toNW := sn.submit(t, fedMuenchenARS), sn.submit(t, fedKoelnARS)
	sn.waitState(t, toBy, submission.StateDelivered)
	k := sn.waitState(t, toNW, submission.StateDelivered)

	// by takes the next question and keeps it.
	byProxy.hang.Store(true)
	<-byProxy.hanging
	nw.decide(t, k.Sender, k.MessageID, wire.OutcomeAccepted)
	// Within a third of the hanging question's timeout: had sn waited for by, it
	// would be stuck until the timeout ends.
	deadline := time.Now().Add(federation.QuestionTimeout / 3)
	for sn.sub(t, toNW).State != submission.StateAccepted {
		if time.Now().After(deadline) {
			t.Fatalf("nw's decision did not reach sn while by held a status question (%d held)", byProxy.count(federation.PathStatus))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := sn.sub(t, toBy); s.State != submission.StateDelivered {
		t.Errorf("by's package: %s", s.State)
	}
}

// snByNw starts three states' gateways in a row, sn → by → nw: sn reaches NRW
// through Bavaria, whose gateway forwards on to nw, where the office koeln-amt
// takes packages by webhook and decides through the office API.
func snByNw(t *testing.T) (sn, by, nw *fedNode) {
	t.Helper()
	sn, by, nw = newFedNode(t, "amtsbote-sn"), newFedNode(t, "amtsbote-by"), newFedNode(t, "amtsbote-nw")
	fedTrust(t, sn, by)
	fedTrust(t, by, nw)
	nw.office("05", "05315", "koeln-amt", fedHook(t))
	nw.peer(by, "", 200*time.Millisecond, "09")
	by.offices = "homeLands: [\"09\"]\n"
	by.peer(sn, "", 200*time.Millisecond, "14")
	by.peer(nw, "", 200*time.Millisecond, "05")
	sn.peer(by, "", 200*time.Millisecond, "05")
	nw.start(t)
	by.start(t)
	sn.start(t)
	return sn, by, nw
}

// TestPeerTwoHopsNameTheOfficesGateway: sn → by → nw. The office is at nw, but sn's
// delivered event and its Zustellbestaetigung named it "at gateway amtsbote-by",
// and the decision's actor came out as "… at amtsbote-nw at amtsbote-by". by now
// says in its status answer where the office is (Empfaenger/@Gateway), and every
// gateway on the way names the office once, at nw.
func TestPeerTwoHopsNameTheOfficesGateway(t *testing.T) {
	sn, by, nw := snByNw(t)

	id := sn.submit(t, fedKoelnARS)
	s := sn.waitState(t, id, submission.StateDelivered)
	nw.decide(t, s.Sender, s.MessageID, wire.OutcomeAccepted)
	s = sn.waitState(t, id, submission.StateAccepted)
	t.Logf("sn: receiver %q, decided by %q", s.Receiver, s.Decision.Actor)

	if !strings.HasSuffix(s.Receiver, " at gateway amtsbote-nw") || strings.Count(s.Receiver, " at gateway ") != 1 {
		t.Errorf("sn names the receiver %q", s.Receiver)
	}
	if s.Decision == nil || !strings.HasSuffix(s.Decision.Actor, " at amtsbote-nw") || strings.Contains(s.Decision.Actor, "amtsbote-by") {
		t.Errorf("sn names the deciding office %+v", s.Decision)
	}
	evs, err := sn.g.Broker.Log(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type == submission.EventDelivered && (!strings.Contains(e.Detail, "at gateway amtsbote-nw") || !strings.Contains(e.Detail, "by gateway amtsbote-by")) {
			t.Errorf("sn's delivered event: %q", e.Detail)
		}
	}
	zb, err := sn.portal(t).Receipt(t.Context(), id, "zustellung")
	if err != nil || !strings.Contains(string(zb), "at gateway amtsbote-nw</Empfaenger>") {
		t.Errorf("sn's Zustellbestaetigung: %v\n%.600s", err, zb)
	}
	// by, in between, names it so in its own record too.
	bs, err := by.g.Broker.FindMessage(s.Sender, s.MessageID)
	if err != nil || !strings.HasSuffix(bs.Receiver, " at gateway amtsbote-nw") {
		t.Errorf("by names the receiver %q (%v)", bs.Receiver, err)
	}
}

// TestPeerHeldAfterLostAnswersIsForwardedAgain: every forwarding reached the peer,
// which stored the package and gave it to its office, and every answer was lost on
// the way back. The package ended held here — the portal read "held" while the
// office at the peer worked on it, and the office's decision never came back,
// since only forwarded packages were asked about. Now the tracker asks the peer
// about packages held after their peer channel; the peer knows this one, so it is
// forwarded again, the peer answers with its first receipt, and the decision
// reaches the portal. The peer keeps one submission.
func TestPeerHeldAfterLostAnswersIsForwardedAgain(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn)
	by.start(t)
	proxy := newFedProxy(t, by.url())
	proxy.loseForwardings.Store(true)
	sn.peer(by, proxy.srv.URL, 100*time.Millisecond, "09")
	sn.cfg.Delivery.MaxAttempts = 2
	sn.start(t)

	id := sn.submit(t, fedMuenchenARS)
	s := sn.waitState(t, id, submission.StateHeld)
	bs, err := by.g.Broker.FindMessage(s.Sender, s.MessageID)
	if err != nil {
		t.Fatalf("the peer does not have the package whose answers were lost: %v", err)
	}
	proxy.loseForwardings.Store(false)

	s = sn.waitState(t, id, submission.StateDelivered)
	if s.Forward == nil || s.Forward.PeerSubmissionID != bs.ID {
		t.Fatalf("sn's record of the forwarding: %+v (the peer's submission is %s)", s.Forward, bs.ID)
	}
	if evs, ok := logSays(t, sn.g, id, submission.EventRequeued, "gateway amtsbote-by has the package"); !ok {
		t.Errorf("no requeued event says why: %+v", evs)
	}
	by.decide(t, s.Sender, s.MessageID, wire.OutcomeAccepted)
	sn.waitState(t, id, submission.StateAccepted)

	var n int
	if err := by.g.Broker.InState("", func(*submission.Submission) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("the peer has %d submissions, want 1", n)
	}
}

// TestPeerHeldThatThePeerLacksStaysHeld: a package held after its peer channel
// that the peer does not know (it never got it: the peer was down) is asked
// about and stays held for the operator; nothing forwards it on its own, and it
// is not asked about again for an hour.
func TestPeerHeldThatThePeerLacksStaysHeld(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn)
	by.start(t)
	proxy := newFedProxy(t, by.url())
	sn.peer(by, proxy.srv.URL, 100*time.Millisecond, "09")
	sn.cfg.Delivery.MaxAttempts = 2
	// No route to the peer's forwarding path: every forwarding fails before it
	// reaches the peer, and status questions still get through.
	proxy.refuseForwardings.Store(true)
	sn.start(t)

	id := sn.submit(t, fedMuenchenARS)
	sn.waitState(t, id, submission.StateHeld)
	asked := proxy.count(federation.PathStatus)
	waitFor(t, "a status question naming the held package", func() bool { return proxy.count(federation.PathStatus) >= asked+1 })
	if s := sn.sub(t, id); s.State != submission.StateHeld {
		t.Fatalf("a package the peer does not know left held: %s", s.State)
	}
	// Not named again for federation.LacksAgain: packages the peer lacks, first
	// in the held index, would otherwise fill every look and leave a newer one
	// never asked about. Three looks (every HeldEvery poll intervals) pass.
	asked = proxy.count(federation.PathStatus)
	time.Sleep(3 * federation.HeldEvery * 100 * time.Millisecond)
	if got := proxy.count(federation.PathStatus); got != asked {
		t.Errorf("a held package the peer lacks was asked about again %d times within three looks", got-asked)
	}
	if got := proxy.count(federation.PathForward); got != 2 {
		t.Errorf("%d forwardings reached the proxy, want the 2 attempts", got)
	}
}
