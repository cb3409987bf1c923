package federation

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// TestReplyFetchesStopWhenThePeerDoesNotAnswer: the replies a status answer
// announced were fetched one after the other, each given up only at its own
// time (30 s and the bytes at 64 KiB/s: up to 17 minutes for a Bescheid of 64
// MiB), and a fetch that found the peer unreachable or hanging did not stop the
// ones after it. A peer whose reply endpoint hangs, announcing 50 replies, kept
// its next status question — the decisions of every other package forwarded
// there — waiting 25 minutes and more. Now the first fetch that does not reach
// the peer (unreachable, timed out, 5xx) ends the round's fetches; the rest are
// announced again at the next question. A reply the peer refuses (404) still
// does not hold back the ones after it, of its package or another.
func TestReplyFetchesStopWhenThePeerDoesNotAnswer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  func(rw http.ResponseWriter, r *http.Request)
		fetches int32
	}{
		{"connection dropped", func(rw http.ResponseWriter, r *http.Request) {
			c, _, err := rw.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
		}, 1},
		{"busy", func(rw http.ResponseWriter, r *http.Request) {
			problem.Write(rw, r, problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, "store busy"))
		}, 1},
		// The control: a reply the peer does not have is that reply's fault.
		{"refused", func(rw http.ResponseWriter, r *http.Request) {
			problem.Write(rw, r, problem.New(http.StatusNotFound, problem.TypeNotFound, "no such reply"))
		}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			var fetches atomic.Int32
			sum := strings.Repeat("ab", 32)
			srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				if r.URL.Path == PathReply {
					fetches.Add(1)
					tc.answer(rw, r)
					return
				}
				at := time.Now().UTC()
				var items []Status
				for _, m := range []string{"m-1", "m-2"} {
					it := Status{Ref: Ref{"amt24", m}, State: "queued"}
					for _, id := range []string{"r-1", "r-2", "r-3"} {
						it.Replies = append(it.Replies, ReplyInfo{ID: m + id, Kind: "Bescheid", ContentType: "application/pdf", Size: 10, SHA256: sum, At: at})
					}
					items = append(items, it)
				}
				doc, err := (&Report{From: w.b.Name, To: w.a.Name, At: at, Items: items}).Sign(w.b.Signer)
				if err != nil {
					t.Error(err)
				}
				rw.Header().Set("Content-Type", ContentType)
				_, _ = rw.Write(doc)
			}))
			t.Cleanup(srv.Close)
			peer := w.peerOfA
			peer.BaseURL = srv.URL
			db := storetest.OpenBolt(t)
			ids := []string{forwardedTo(t, db, peer.ID, 1), forwardedTo(t, db, peer.ID, 2)}
			tr := &Tracker{Broker: broker.New(broker.Config{}, db, nil, nil, nil, nil, nil, nil), Peers: []config.Peer{peer},
				Client: &Client{Self: w.a.Name, Signer: w.a.Signer, Trust: w.trustA}, Log: slog.New(&capture{})}
			tr.open = map[string]string{ids[0]: peer.ID, ids[1]: peer.ID}
			if err := tr.poll(context.Background(), peer, ids); err != nil {
				t.Fatalf("the status question: %v", err)
			}
			if n := fetches.Load(); n != tc.fetches {
				t.Errorf("%d replies fetched in the round, want %d", n, tc.fetches)
			}
		})
	}
}

// forwardedAt is forwardedTo for a package of the peer office office.
func forwardedAt(t *testing.T, db store.Store, office, peer string, n int) string {
	t.Helper()
	id := fmt.Sprintf("01900000-0002-7000-8000-%012d", n)
	s, evs := submission.New(submission.Params{ID: id, DeliveryID: "d" + id, MessageID: fmt.Sprintf("o-%d", n), Sender: "amt24", SignerID: "amt24",
		LeikaKey: "99000000000000", ServiceName: "Test", Place: "X", AreaName: "X", OfficeID: office, OfficeName: office,
		Targets: []submission.Target{{Channel: "peer"}}, PackageSHA256: fmt.Sprintf("%064x", 1000+n), PackageSize: 10}, time.Now().UTC())
	if _, _, _, err := db.Create(context.Background(), s, evs, broker.ReceiptIntake, []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Update(id, func(c *submission.Submission) ([]submission.Event, error) {
		return c.Forwarded(time.Now().UTC(), submission.Forward{Peer: peer, PeerSubmissionID: fmt.Sprintf("x-%d", n)})
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestPackagesOfAPeerNoLongerConfiguredAreSaid: peers are read at start, so a
// peer taken out of the configuration (or renamed: a new id for the same
// state) is gone after the restart, while packages forwarded to it wait for
// its office's decision. The tracker took them among its open packages all the
// same — asked by nobody, counted in no series, said nowhere — and the portal
// read "forwarded" for good. Now the start says, per such peer, how many
// packages it leaves unfollowed (open and decided, by the peer offices of
// every Land, also one no peer serves any more), without an id or a name of
// the packages, and does not hold them.
func TestPackagesOfAPeerNoLongerConfiguredAreSaid(t *testing.T) {
	w := newWorld(t)
	peer := w.peerOfA // serves 09
	db := storetest.OpenBolt(t)
	forwardedAt(t, db, "peer-09", peer.ID, 1)
	forwardedAt(t, db, "peer-09", "amtsbote-by-alt", 2) // the same Land, a renamed peer
	forwardedAt(t, db, "peer-09", "amtsbote-by-alt", 3)
	forwardedAt(t, db, "peer-05", "amtsbote-nw", 4) // a Land no peer serves now
	decided := forwardedAt(t, db, "peer-05", "amtsbote-nw", 5)
	if _, err := db.Update(decided, func(c *submission.Submission) ([]submission.Event, error) {
		now := time.Now().UTC()
		return c.PeerUpdate(now, submission.PeerStatus{Peer: "amtsbote-nw", State: submission.StateAccepted, Receiver: "office x at gateway amtsbote-nw",
			DeliveredAt: &now, Decision: &submission.Decision{Outcome: "accepted", At: now, Actor: "clerk"}})
	}); err != nil {
		t.Fatal(err)
	}
	logs := &capture{}
	tr := &Tracker{Broker: broker.New(broker.Config{}, db, nil, nil, nil, nil, nil, nil), Peers: []config.Peer{peer},
		Offices: []string{"peer-09"}, Client: &Client{Self: w.a.Name, Signer: w.a.Signer, Trust: w.trustA}, Log: slog.New(logs)}
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	if n := tr.Open(); n != 1 {
		t.Errorf("%d packages followed, want 1 (the configured peer's)", n)
	}
	const msg = "packages forwarded to a peer gateway that is no longer configured are followed by nobody"
	if n := logs.count(slog.LevelWarn, msg); n != 2 {
		t.Fatalf("%d WARN lines about unconfigured peers, want 2 (one per peer)", n)
	}
	got := map[string]string{}
	logs.mu.Lock()
	for _, r := range logs.recs {
		if r.Level == slog.LevelWarn && strings.HasPrefix(r.Message, msg) {
			a := map[string]string{}
			r.Attrs(func(at slog.Attr) bool { a[at.Key] = at.Value.String(); return true })
			got[a["peer"]] = a["open"] + "/" + a["decided"]
		}
	}
	logs.mu.Unlock()
	if got["amtsbote-by-alt"] != "2/0" || got["amtsbote-nw"] != "1/1" {
		t.Errorf("the lines say %v (open/decided per peer), want amtsbote-by-alt 2/0 and amtsbote-nw 1/1", got)
	}
}

// TestPackagesOfAllPeersTakenOutAreSaid: a gateway whose every peer was taken
// out runs no tracker; its start says the packages forwarded before as a
// tracker's start does (gateway.setupPeers).
func TestPackagesOfAllPeersTakenOutAreSaid(t *testing.T) {
	db := storetest.OpenBolt(t)
	forwardedAt(t, db, "peer-09", "amtsbote-by", 1)
	forwardedAt(t, db, "peer-09", "amtsbote-by", 2)
	logs := &capture{}
	if err := SayUnfollowed(context.Background(), broker.New(broker.Config{}, db, nil, nil, nil, nil, nil, nil), slog.New(logs), 0); err != nil {
		t.Fatal(err)
	}
	if a := logs.attrs(slog.LevelWarn, "packages forwarded to a peer gateway that is no longer configured"); a["peer"] != "amtsbote-by" || a["open"] != "2" {
		t.Errorf("the start says %v, want amtsbote-by with 2 open", a)
	}
}

// TestReplyFetchOfAPeerThatDoesNotAnswerEnds: a fetch of a reply had the time
// of the reply's size alone (30 s and 64 KiB/s: 17 minutes for 64 MiB), also
// for a peer that took the question and never began to answer; the tracker's
// next status question to that peer waited as long. The answer must begin
// within replyAnswerWait (QuestionTimeout; shortened here).
func TestReplyFetchOfAPeerThatDoesNotAnswerEnds(t *testing.T) {
	defer func(d time.Duration) { replyAnswerWait = d }(replyAnswerWait)
	replyAnswerWait = 200 * time.Millisecond
	w := newWorld(t)
	sum := strings.Repeat("ab", 32)
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathReply {
			_, _ = io.Copy(io.Discard, r.Body) // took the question, answers nothing
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		at := time.Now().UTC()
		doc, err := (&Report{From: w.b.Name, To: w.a.Name, At: at, Items: []Status{{Ref: Ref{"amt24", "m-1"}, State: "queued",
			Replies: []ReplyInfo{{ID: "r-1", Kind: "Bescheid", Size: MaxReplyBytes, SHA256: sum, At: at}}}}}).Sign(w.b.Signer)
		if err != nil {
			t.Error(err)
		}
		rw.Header().Set("Content-Type", ContentType)
		_, _ = rw.Write(doc)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // before srv.Close: a fetch still waiting ends
	peer := w.peerOfA
	peer.BaseURL = srv.URL
	db := storetest.OpenBolt(t)
	id := forwardedTo(t, db, peer.ID, 1)
	m := NewMetrics([]config.Peer{peer})
	tr := &Tracker{Broker: broker.New(broker.Config{}, db, nil, nil, nil, nil, nil, nil), Peers: []config.Peer{peer}, Metrics: m,
		Client: &Client{Self: w.a.Name, Signer: w.a.Signer, Trust: w.trustA}, Log: slog.New(&capture{})}
	done := make(chan error, 1)
	go func() { done <- tr.poll(context.Background(), peer, []string{id}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the status question: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the fetch of a reply the peer never answers did not end: the peer's next question waits for it")
	}
	var failed dto.Metric
	if err := m.replies.WithLabelValues(peer.ID, "failed").Write(&failed); err != nil || failed.GetCounter().GetValue() != 1 {
		t.Errorf("%v failed fetches counted (%v), want 1", failed.GetCounter().GetValue(), err)
	}
}
