package gateway

import (
	"bytes"
	"context"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// TestPeerReplyLongAfterTheDecisionComesAtOnce: a Bescheid that the office at the
// receiving gateway sends days after it took the case in reached the portal's
// gateway only at the decided package's turn — a tenth of the time since the
// decision, up to 12 hours — because a nudge names nothing and so asks early
// only about packages decided in the last day. The receiving gateway now names
// the package in a signed Aenderungsmeldung, and the question follows at once.
//
// Saxony asks Bavaria only every hour here, so nothing but the nudges moves;
// its record of the decision is made three days old while it is stopped.
func TestPeerReplyLongAfterTheDecisionComesAtOnce(t *testing.T) {
	sn, by := snAndByNudged(t)

	id := sn.submit(t, fedMuenchenARS)
	s := sn.waitState(t, id, submission.StateDelivered)
	by.decide(t, s.Sender, s.MessageID, wire.OutcomeAccepted)
	sn.waitState(t, id, submission.StateAccepted)

	sn.stop(t)
	db, err := store.Open(sn.cfg.DataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Update(id, func(s *submission.Submission) ([]submission.Event, error) {
		s.Decision.RecordedAt = time.Now().Add(-72 * time.Hour)
		// A store writes a change only with its events.
		return []submission.Event{{SubmissionID: id, At: time.Now().UTC(), Type: submission.EventPeerStatus, Detail: "test: the decision made three days old"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	sn.start(t)
	if d := sn.sub(t, id).Decision; time.Since(d.DecidedLocally()) < 71*time.Hour {
		t.Fatalf("the decision is recorded at %v, not three days ago", d.DecidedLocally())
	}

	// After the restart the decided package is asked about once (an empty
	// nudge starts the question), and then not for 7.2 hours.
	sn.nudgedAndAsked(t)

	by.replyAt(t, s.Sender, s.MessageID, "Bescheid", []byte("%PDF-1.7 Bescheid, drei Tage nach der Annahme"))
	waitFor(t, "the Bescheid at sn", func() bool { return len(sn.sub(t, id).Replies) == 1 })
}

// snAndByNudged is snAndBy with Saxony asking Bavaria only every hour: nothing
// but the nudges moves.
func snAndByNudged(t *testing.T) (sn, by *fedNode) {
	t.Helper()
	sn = newFedNode(t, "amtsbote-sn")
	by = newMunichPeer(t, sn)
	by.start(t)
	sn.peer(by, "", time.Hour, "09")
	sn.start(t)
	return sn, by
}

// stop shuts the gateway of n down (start starts it again).
func (n *fedNode) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// nudgedAndAsked sends sn an empty nudge and waits for the status question to
// by it makes sn ask.
func (sn *fedNode) nudgedAndAsked(t *testing.T) {
	t.Helper()
	before := answered(t, sn)
	resp, err := http.Post(sn.url()+federation.PathNudge, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("empty nudge: %d", resp.StatusCode)
	}
	waitFor(t, "sn's question", func() bool { return answered(t, sn) > before })
}

// answered is how many of sn's status questions to by were answered.
func answered(t *testing.T, sn *fedNode) int {
	return fedCount(t, sn, "questions", "answered")
}

// fedCount reads sn's amtsbote_federation_<what>_total for the peer
// amtsbote-by and the outcome.
func fedCount(t *testing.T, sn *fedNode, what, outcome string) int {
	t.Helper()
	re := regexp.MustCompile(`amtsbote_federation_` + what + `_total\{outcome="` + outcome + `",peer="amtsbote-by"\} ([0-9]+)`)
	m := re.FindStringSubmatch(scrapeMetrics(t, sn.url()))
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestPeerReplyThatCannotBeFetchedWaits: a reply whose bytes at the peer are
// not what it announces (damaged on its disk) was fetched again at every
// question, up to 64 MiB every poll interval, for as long as it failed. Its
// next try now waits (federation.FetchRetryFirst, 30 s, doubling): two more
// questions fetch nothing.
func TestPeerReplyThatCannotBeFetchedWaits(t *testing.T) {
	sn, _, id, _, _, _ := damagedRueckfrage(t)
	sn.start(t)

	sn.nudgedAndAsked(t)
	waitFor(t, "the failed fetch", func() bool { return fedCount(t, sn, "replies", "failed") == 1 })
	for range 2 {
		sn.nudgedAndAsked(t)
	}
	if n := fedCount(t, sn, "replies", "failed"); n != 1 {
		t.Errorf("%d failed fetches of the damaged reply after three questions, want 1", n)
	}
	if n := len(sn.sub(t, id).Replies); n != 0 {
		t.Errorf("the damaged reply was stored: %d replies", n)
	}
}

// damagedRueckfrage forwards a package from sn to by, stops sn, and has by's
// office answer with a Rückfrage whose stored bytes are then damaged at by
// (damageBlob; mend puts them back). sn is left stopped.
func damagedRueckfrage(t *testing.T) (sn, by *fedNode, id string, s *submission.Submission, r submission.Reply, mend func()) {
	t.Helper()
	sn, by = snAndByNudged(t)
	id = sn.submit(t, fedMuenchenARS)
	s = sn.waitState(t, id, submission.StateDelivered)
	sn.stop(t)
	content := bytes.Repeat([]byte("Rückfrage "), 30_000) // a blob file, not one kept in bbolt
	r = by.replyAt(t, s.Sender, s.MessageID, "Rueckfrage", content)
	return sn, by, id, s, r, by.damageBlob(t, r.SHA256, content)
}

// damageBlob overwrites the blob file of content (its SHA-256 sha) at n with
// as many other bytes, as a damaged disk would, and returns what mends it.
func (n *fedNode) damageBlob(t *testing.T, sha string, content []byte) (mend func()) {
	t.Helper()
	var file string
	_ = filepath.WalkDir(n.cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == sha {
			file = path
		}
		return nil
	})
	if file == "" {
		t.Fatalf("no blob file %s under %s to damage", sha, n.cfg.DataDir)
	}
	if err := os.WriteFile(file, bytes.Repeat([]byte("x"), len(content)), 0o600); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := os.WriteFile(file, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPeerReplyThatCannotBeFetchedHoldsBackNoLaterOne: the forwarding gateway
// fetched an office's replies in order and stopped at the first that failed,
// and the question asked for the replies after the number it held: a
// Rückfrage whose bytes were damaged at the peer kept the Bescheid after it
// from the portal for as long as it failed, for good if it never mended. Now
// the later reply is fetched, each reply keeps its place in the peer's list,
// and the question asks from the first missing one: after a restart (nothing
// of the failure in memory) the Rückfrage, mended at the peer, comes too.
func TestPeerReplyThatCannotBeFetchedHoldsBackNoLaterOne(t *testing.T) {
	sn, by, id, s, r1, mend := damagedRueckfrage(t)
	r2 := by.replyAt(t, s.Sender, s.MessageID, "Bescheid", []byte("%PDF-1.7 Bescheid"))
	sn.start(t)

	sn.nudgedAndAsked(t)
	waitFor(t, "the Bescheid after the damaged Rückfrage at sn", func() bool {
		rs := sn.sub(t, id).Replies
		return len(rs) == 1 && rs[0].MessageID == r2.ID
	})
	if n := fedCount(t, sn, "replies", "failed"); n != 1 {
		t.Errorf("%d failed fetches of the damaged Rückfrage, want 1", n)
	}

	sn.stop(t)
	mend()
	sn.start(t)
	sn.nudgedAndAsked(t)
	waitFor(t, "the mended Rückfrage at sn after its restart", func() bool {
		return slices.ContainsFunc(sn.sub(t, id).Replies, func(r submission.Reply) bool { return r.MessageID == r1.ID })
	})
	rs := sn.sub(t, id).Replies
	if len(rs) != 2 || rs[0].PeerSeq != 2 || rs[1].PeerSeq != 1 {
		t.Errorf("sn holds %+v, want the Bescheid at the peer's place 2, then the Rückfrage at its place 1", rs)
	}
}

// TestPeerReplyDownloadHoldsBackNoOtherState: the tracker fetched a reply's
// bytes while it went through the answer, so a Bescheid of tens of megabytes
// on a slow link held back the states of the packages after it in the same
// answer (and every later batch). Now the states are recorded first. The
// Antwortabruf is held at a proxy in front of Bavaria until the other packages'
// decisions are recorded at Saxony; the answer's order is the question's, a
// map's, so with four other packages the reply came first in most runs.
func TestPeerReplyDownloadHoldsBackNoOtherState(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn)
	by.start(t)
	release := make(chan struct{})
	var fetching atomic.Bool
	target, _ := url.Parse(by.url())
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == federation.PathReply {
			fetching.Store(true)
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	sn.peer(by, proxy.URL, time.Hour, "09")
	sn.start(t)

	withReply := sn.waitState(t, sn.submit(t, fedMuenchenARS), submission.StateDelivered)
	var others []*submission.Submission
	for range 4 {
		others = append(others, sn.waitState(t, sn.submit(t, fedMuenchenARS), submission.StateDelivered))
	}
	// Saxony stops; meanwhile Bavaria's office answers the one and decides the others.
	sn.stop(t)
	by.replyAt(t, withReply.Sender, withReply.MessageID, "Rueckfrage", []byte("%PDF-1.7 Rückfrage"))
	for _, s := range others {
		by.decide(t, s.Sender, s.MessageID, wire.OutcomeAccepted)
	}
	sn.start(t)
	resp, err := http.Post(sn.url()+federation.PathNudge, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The fetch is held at the proxy until release: both at once shows that
	// the states did not wait for the reply's bytes.
	waitFor(t, "the other packages' decisions at sn while the reply is being fetched", func() bool {
		for _, s := range others {
			if sn.sub(t, s.ID).State != submission.StateAccepted {
				return false
			}
		}
		return fetching.Load()
	})
	close(release)
	waitFor(t, "the Rückfrage at sn", func() bool { return len(sn.sub(t, withReply.ID).Replies) == 1 })
}

// TestPeerClusterNodeTakesUpAnotherNodesPackage: two gateways of Saxony on one
// JetStream store. A package is forwarded to Bavaria by one of them (whichever
// took the queue message); each gateway's tracker followed the packages it
// forwarded and those it found at its start, so while that gateway was down
// nobody asked about the package and the portal did not learn the decision.
// Now the other one follows it, in two ways, each shown without the other:
// it heard of the forwarding on NATS (forwardedSubject), and Bavaria's nudge,
// which the load balancer hands to it, names the package (Tracker.Changed).
func TestPeerClusterNodeTakesUpAnotherNodesPackage(t *testing.T) {
	t.Run("heard from the gateway that forwarded it", func(t *testing.T) { clusterTakesUp(t, false) })
	t.Run("named by the peer's nudge", func(t *testing.T) {
		forwardingsShared = false
		defer func() { forwardingsShared = true }()
		clusterTakesUp(t, true)
	})
}

// clusterTakesUp: see TestPeerClusterNodeTakesUpAnotherNodesPackage. byNudge:
// the Saxon gateways ask Bavaria every hour, and its nudges reach the one that
// did not forward; else every 100 ms, and the nudges reach nobody.
func clusterTakesUp(t *testing.T, byNudge bool) {
	sn1, sn2, by := saxonyTwiceAndBavaria(t)
	poll := 100 * time.Millisecond
	if byNudge {
		poll = time.Hour
	}

	// Saxony's address as Bavaria has it: the load balancer in front of both.
	var lbTarget atomic.Pointer[url.URL]
	lbTarget.Store(mustURL(t, sn1.url()))
	lb := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(lbTarget.Load()) }})
	defer lb.Close()
	by.peer(sn1, lb.URL, time.Hour, "14")
	by.start(t)

	// Each Saxon gateway reaches Bavaria through a proxy of its own, which
	// tells who forwarded the package.
	var forwardedBy atomic.Pointer[fedNode]
	viaProxy := func(n *fedNode) string {
		rp := httputil.NewSingleHostReverseProxy(mustURL(t, by.url()))
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == federation.PathForward {
				forwardedBy.Store(n)
			}
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	sn1.peer(by, viaProxy(sn1), poll, "09")
	sn2.secondOf(sn1)
	sn2.peer(by, viaProxy(sn2), poll, "09")
	sn1.start(t)
	sn2.start(t)

	id := sn1.submit(t, fedMuenchenARS)
	waitFor(t, "the forwarding", func() bool { return forwardedBy.Load() != nil && sn1.sub(t, id).Forward != nil })
	forwarder := forwardedBy.Load()
	other := sn1
	if forwarder == sn1 {
		other = sn2
	}
	if !byNudge {
		// The other gateway has heard of it before the forwarder goes (at
		// most once: a message sent while it listens).
		waitFor(t, "the other gateway following the package", func() bool {
			return strings.Contains(scrapeMetrics(t, other.url()), `amtsbote_federation_followed_packages{kind="open",peer="amtsbote-by"} 1`)
		})
	}
	forwarder.stop(t)
	if byNudge {
		lbTarget.Store(mustURL(t, other.url()))
	}

	s := other.sub(t, id)
	by.decide(t, s.Sender, s.MessageID, wire.OutcomeAccepted)
	waitFor(t, "the decision at the other Saxon gateway", func() bool { return other.sub(t, id).State == submission.StateAccepted })
}

// saxonyTwiceAndBavaria are two Saxon gateways to be of one cluster (sn1 on a
// JetStream store on a nats-server of its own; sn2 takes sn1's set-up with
// secondOf once sn1's peers are set) and a Bavarian gateway with a Munich
// office, trusted both ways.
func saxonyTwiceAndBavaria(t *testing.T) (sn1, sn2, by *fedNode) {
	t.Helper()
	natsURL := natstest.StartSingle(t).URLs()
	sn1 = newFedNode(t, "amtsbote-sn")
	sn1.cfg.Store.Backend, sn1.cfg.NATS.URL = config.StoreJetStream, natsURL
	sn2 = newFedNode(t, "amtsbote-sn")
	by = newFedNode(t, "amtsbote-by")
	fedTrust(t, sn1, by)
	by.office("09", "09162", "muenchen-kvr", fedHook(t))
	return sn1, sn2, by
}

// secondOf makes n the second gateway of first's cluster: first's
// configuration, keys and store, its own address and data folder, and no
// peers yet (its way to Bavaria is its own).
func (n *fedNode) secondOf(first *fedNode) {
	addr, ln, dir := n.addr, n.ln, n.dir
	*n = *first
	n.addr, n.ln, n.dir = addr, ln, dir
	n.cfg.Listen, n.cfg.DataDir = addr, filepath.Join(dir, "data")
	n.cfg.Peers, n.dirPeers = nil, nil
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestPeerClusterAsksOncePerInterval: every gateway of a cluster follows what
// any of them forwarded, and each asked the peer about all of it at every poll
// interval: Bavaria got a question per Saxon gateway and interval, each about
// the same packages. Now one gateway per interval asks on the timer (the
// interval's lease in the shared store). Two Saxon gateways follow one open
// package and poll every second; over the seconds counted Bavaria gets at most
// one question per interval begun (two more for the intervals at the ends),
// where it got two.
func TestPeerClusterAsksOncePerInterval(t *testing.T) {
	sn1, sn2, by := saxonyTwiceAndBavaria(t)
	by.peer(sn1, sn1.url(), time.Hour, "14")
	by.start(t)

	// Bavaria counts the status questions of both Saxon gateways.
	var questions atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(mustURL(t, by.url()))
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == federation.PathStatus {
			questions.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	const poll = time.Second
	sn1.peer(by, proxy.URL, poll, "09")
	sn2.secondOf(sn1)
	sn2.peer(by, proxy.URL, poll, "09")
	sn1.start(t)
	sn2.start(t)

	id := sn1.submit(t, fedMuenchenARS)
	waitFor(t, "the forwarding", func() bool { return sn1.sub(t, id).Forward != nil })
	for _, n := range []*fedNode{sn1, sn2} {
		waitFor(t, "both gateways following the package", func() bool {
			return strings.Contains(scrapeMetrics(t, n.url()), `amtsbote_federation_followed_packages{kind="open",peer="amtsbote-by"} 1`)
		})
	}
	time.Sleep(poll) // the forwarding's own question (a kick) is behind
	before, start := questions.Load(), time.Now()
	time.Sleep(6 * poll)
	asked, intervals := questions.Load()-before, int64(time.Since(start)/poll)+1
	if asked > intervals+2 {
		t.Errorf("Bavaria got %d questions in %d poll intervals of the two Saxon gateways, want at most one an interval", asked, intervals)
	}
	if asked == 0 {
		t.Error("Bavaria got no question at all")
	}
}
