package federation

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// capture is a slog handler that keeps every record, for tests that count
// log lines.
type capture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.recs = append(c.recs, r.Clone())
	c.mu.Unlock()
	return nil
}
func (c *capture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *capture) WithGroup(string) slog.Handler      { return c }

// count is how many records of level begin with msg.
func (c *capture) count(level slog.Level, msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.recs {
		if r.Level == level && strings.HasPrefix(r.Message, msg) {
			n++
		}
	}
	return n
}

// attrs are the attributes of the last record of level beginning with msg.
func (c *capture) attrs(level slog.Level, msg string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]string{}
	for i := len(c.recs) - 1; i >= 0; i-- {
		if r := c.recs[i]; r.Level == level && strings.HasPrefix(r.Message, msg) {
			r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
			break
		}
	}
	return m
}

// TestPeerDownIsSaidOncePerChange: a peer that answers no question was said
// at WARN at every poll (every 10 s of a long outage). Its first failed
// question is said at once, further ones at most once a minute with how long
// it lasts, and the first answer again once at INFO; a new outage is news.
func TestPeerDownIsSaidOncePerChange(t *testing.T) {
	w := newWorld(t)
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(rw, "stopping", http.StatusServiceUnavailable)
			return
		}
		// An answer about another package: verified, and nothing recorded.
		doc, err := (&Report{From: w.b.Name, To: w.a.Name, At: time.Now().UTC(),
			Items: []Status{{Ref: Ref{"amt24", "other"}, State: StateUnknown}}}).Sign(w.b.Signer)
		if err != nil {
			t.Error(err)
		}
		rw.Header().Set("Content-Type", ContentType)
		_, _ = rw.Write(doc)
	}))
	defer srv.Close()
	peer := w.peerOfA
	peer.BaseURL = srv.URL

	db := storetest.OpenBolt(t)
	id := "01900000-0001-7000-8000-000000000001"
	s, evs := submission.New(submission.Params{ID: id, DeliveryID: "d" + id, MessageID: "m-1", Sender: "amt24", SignerID: "amt24",
		LeikaKey: "99000000000000", ServiceName: "Test", Place: "München", AreaName: "München", OfficeID: "peer-09", OfficeName: "peer-09",
		Targets: []submission.Target{{Channel: "peer"}}, PackageSHA256: fmt.Sprintf("%064x", 1), PackageSize: 10}, time.Now().UTC())
	if _, _, _, err := db.Create(context.Background(), s, evs, broker.ReceiptIntake, []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Update(id, func(c *submission.Submission) ([]submission.Event, error) {
		return c.Forwarded(time.Now().UTC(), submission.Forward{Peer: peer.ID, PeerSubmissionID: "b-1"})
	}); err != nil {
		t.Fatal(err)
	}
	logs := &capture{}
	clock := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	tr := &Tracker{Broker: broker.New(broker.Config{}, db, nil, nil, nil, nil, nil, nil), Peers: []config.Peer{peer},
		Client: &Client{Self: w.a.Name, Signer: w.a.Signer, Trust: w.trustA}, Log: slog.New(logs),
		now: func() time.Time { return clock }}
	tr.open = map[string]string{id: peer.ID}

	const warn, info = "asking peer gateway about forwarded packages failed", "peer gateway answers status questions again"
	poll := func(step time.Duration, wantWarn, wantInfo int) {
		t.Helper()
		clock = clock.Add(step)
		tr.poll(context.Background(), peer, []string{id})
		if n, m := logs.count(slog.LevelWarn, warn), logs.count(slog.LevelInfo, info); n != wantWarn || m != wantInfo {
			t.Fatalf("at %s: %d WARN and %d INFO lines about the peer, want %d and %d", clock.Format(time.TimeOnly), n, m, wantWarn, wantInfo)
		}
	}
	poll(0, 0, 0) // answered: nothing to say
	down.Store(true)
	poll(10*time.Second, 1, 0) // the outage begins: said at once
	for range 5 {
		poll(10*time.Second, 1, 0) // within the minute: not again
	}
	poll(10*time.Second, 2, 0) // a minute after the first line
	if a := logs.attrs(slog.LevelWarn, warn); a["peer"] != peer.ID || a["down_for"] != "1m0s" || a["failed_questions"] != "7" || !strings.Contains(a["err"], "503") {
		t.Errorf("the repeated line says %v, want the peer, 1m0s, 7 questions and the failure", a)
	}
	poll(10*time.Second, 2, 0)
	down.Store(false)
	poll(10*time.Second, 2, 1) // back: said once
	if a := logs.attrs(slog.LevelInfo, info); a["peer"] != peer.ID || a["down_for"] != "1m20s" || a["failed_questions"] != "8" {
		t.Errorf("the line of its return says %v, want the peer, 1m20s and 8 questions", a)
	}
	poll(10*time.Second, 2, 1)
	down.Store(true)
	poll(time.Second, 3, 1) // a new outage is news at once
}
