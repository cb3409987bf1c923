package federation

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/store/storetest"
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
