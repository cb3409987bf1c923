package federation

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// blockingLookups holds every status lookup until released, and says when the
// first has begun: a question held in flight.
type blockingLookups struct {
	store.Store
	entered chan struct{}
	release chan struct{}
	lookups atomic.Int64
}

func (b *blockingLookups) FindByMessage(sender, messageID string) (*submission.Submission, error) {
	b.lookups.Add(1)
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-b.release
	return b.Store.FindByMessage(sender, messageID)
}

// TestPeerStatusQuestionsOneAtATime: a trusted peer's status questions had no
// bound, and one that asked in parallel took as many cores as it had
// connections (a question of 500 packages: 500 store reads and a signature).
// Now a peer's question waits for the one it has in flight, and after the wait
// is answered 429 federation/too-many-questions with Retry-After, which the
// asking side takes as transient; the one in flight is answered, and the next
// after it too.
func TestPeerStatusQuestionsOneAtATime(t *testing.T) {
	w := newWorld(t)
	st := heldLookups(t)
	m := NewMetrics(nil)
	h := &Receiver{Trust: w.trustB, Signer: w.b.Signer, Broker: broker.New(broker.Config{}, st, nil, nil, nil, nil, nil, nil),
		QuestionWait: 50 * time.Millisecond, Metrics: m, Log: slog.New(slog.DiscardHandler)}
	srv := httptest.NewServer(h)
	defer srv.Close()
	release := st.releaseOnce()
	defer release() // before the server's Close, which waits for the questions
	peer, c := w.askerAt(srv)
	refs := []Ref{{Sender: "amt24", MessageID: paket.NewMessageID()}}

	first := make(chan error, 1)
	go func() {
		_, err := c.Status(context.Background(), peer, refs)
		first <- err
	}()
	<-st.entered // the first question is in flight

	// Bounded only so that, without the limit, the test fails instead of
	// waiting with the question in flight.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Status(ctx, peer, refs)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusTooManyRequests || se.Type != TypeTooManyQuestions || se.RetryAfterDelay <= 0 {
		t.Fatalf("a second question while one is in flight: %v (%#v), want 429 %s with Retry-After", err, se, TypeTooManyQuestions)
	}
	if adapters.IsPermanent(err) {
		t.Errorf("the asker took the 429 for a permanent refusal: %v", err)
	}
	if n := limitedCount(t, m, w.a.Name); n != 1 {
		t.Errorf("amtsbote_federation_questions_limited_total: %v, want 1", n)
	}

	release()
	if err := <-first; err != nil {
		t.Fatalf("the question in flight: %v", err)
	}
	if rp, err := c.Status(context.Background(), peer, refs); err != nil || len(rp.Items) != 1 || rp.Items[0].State != StateUnknown {
		t.Fatalf("the next question after it: %+v %v", rp, err)
	}

	// Not for junk: a question is counted only once its signer is known.
	resp, err := http.Post(srv.URL+PathStatus, ContentType, io.NopCloser(io.LimitReader(zeros{}, 10)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusTooManyRequests {
		t.Errorf("junk: %d", resp.StatusCode)
	}
}

// heldLookups is a bolt store whose status lookups wait for its release.
func heldLookups(t *testing.T) *blockingLookups {
	return &blockingLookups{Store: storetest.OpenBolt(t), entered: make(chan struct{}, 1), release: make(chan struct{})}
}

// releaseOnce returns what lets b's lookups go, to be called any number of times.
func (b *blockingLookups) releaseOnce() func() {
	var once sync.Once
	return func() { once.Do(func() { close(b.release) }) }
}

// askerAt is gateway A set up to ask B at srv: B as A's peer, and A's client.
func (w *world) askerAt(srv *httptest.Server) (config.Peer, *Client) {
	peer := w.peerOfA
	peer.BaseURL = srv.URL
	return peer, &Client{Self: w.a.Name, Signer: w.a.Signer, Trust: w.trustA, HTTP: srv.Client()}
}

// limitedCount is amtsbote_federation_questions_limited_total of peer.
func limitedCount(t *testing.T, m *Metrics, peer string) float64 {
	t.Helper()
	var limited dto.Metric
	if err := m.limited.WithLabelValues(peer).Write(&limited); err != nil {
		t.Fatal(err)
	}
	return limited.GetCounter().GetValue()
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) { return len(b), nil }

// TestPeerStatusQuestionOfAnAskerGoneEnds: a question of 500 packages whose
// asker gave up (its QuestionTimeout, a closed connection) went on reading the
// store for every package and held the peer's one slot meanwhile; now it ends
// at the next package.
func TestPeerStatusQuestionOfAnAskerGoneEnds(t *testing.T) {
	w := newWorld(t)
	st := heldLookups(t)
	h := &Receiver{Trust: w.trustB, Signer: w.b.Signer, Broker: broker.New(broker.Config{}, st, nil, nil, nil, nil, nil, nil),
		Log: slog.New(slog.DiscardHandler)}
	gone := make(chan struct{}, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		go func() { <-r.Context().Done(); gone <- struct{}{} }()
		h.ServeHTTP(rw, r)
	}))
	defer srv.Close()
	release := st.releaseOnce()
	defer release()
	peer, c := w.askerAt(srv)
	refs := make([]Ref, 5)
	for i := range refs {
		refs[i] = Ref{Sender: "amt24", MessageID: paket.NewMessageID()}
	}

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := c.Status(ctx, peer, refs)
		first <- err
	}()
	<-st.entered // the question is at its first package
	cancel()
	<-first
	<-gone // the server saw the asker go
	release()

	// The next question gets the slot once the first has ended; by then the
	// first has read no package after the one it was at.
	if _, err := c.Status(context.Background(), peer, refs[:1]); err != nil {
		t.Fatal(err)
	}
	if n := st.lookups.Load(); n != 2 {
		t.Errorf("%d store reads, want 2: the gone asker's question read on after it left", n)
	}
}

// TestPeerChangeNoticeWaitsForThePeersQuestion: a signed Aenderungsmeldung
// costs a store read for each of up to 100 packages it names (2 ms of CPU for
// one of 100 on this side, as much as a status question of 100), and a
// broken peer that sent them in parallel took as many cores as it had
// connections, like its questions before. Now it takes the peer's one slot the
// questions take: one that came while a question was in flight waits, and is
// answered 429 federation/too-many-questions after the wait, counted, with
// nothing looked up; the one after the question is taken.
func TestPeerChangeNoticeWaitsForThePeersQuestion(t *testing.T) {
	w := newWorld(t)
	st := heldLookups(t)
	b := broker.New(broker.Config{}, st, nil, nil, nil, nil, nil, nil)
	tr := &Tracker{Broker: b, Peers: []config.Peer{{ID: w.a.Name}}}
	m := NewMetrics(nil)
	h := &Receiver{Trust: w.trustB, Signer: w.b.Signer, Broker: b, Changed: tr.Changed,
		QuestionWait: 50 * time.Millisecond, Metrics: m, Log: slog.New(slog.DiscardHandler)}
	srv := httptest.NewServer(h)
	defer srv.Close()
	release := st.releaseOnce()
	defer release()
	peer, c := w.askerAt(srv)
	refs := []Ref{{Sender: "amt24", MessageID: paket.NewMessageID()}}

	first := make(chan error, 1)
	go func() {
		_, err := c.Status(context.Background(), peer, refs)
		first <- err
	}()
	<-st.entered // the question is in flight

	doc, err := (&Changes{From: w.a.Name, To: w.b.Name, At: time.Now().UTC(), Refs: refs}).Sign(w.a.Signer)
	if err != nil {
		t.Fatal(err)
	}
	// Bounded only so that, without the limit, the test fails instead of
	// waiting with the question in flight.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, _, p, err := c.post(ctx, peer, PathNudge, doc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusTooManyRequests || p.Type != TypeTooManyQuestions || p.retryAfter <= 0 {
		t.Fatalf("an Aenderungsmeldung while the peer's question is in flight: %d %s (Retry-After %s), want 429 %s with Retry-After",
			status, p.Type, p.retryAfter, TypeTooManyQuestions)
	}
	if n := st.lookups.Load(); n != 1 {
		t.Errorf("%d store reads, want 1 (the question's): the refused Aenderungsmeldung looked packages up", n)
	}
	if n := limitedCount(t, m, w.a.Name); n != 1 {
		t.Errorf("amtsbote_federation_questions_limited_total: %v, want 1", n)
	}

	release()
	if err := <-first; err != nil {
		t.Fatalf("the question in flight: %v", err)
	}
	if err := c.Changed(context.Background(), peer, refs); err != nil {
		t.Fatalf("the Aenderungsmeldung after the question: %v", err)
	}
}

// TestChangeNoticeWaitsOutATooManyQuestions: the nudger drops what it could
// not tell a peer (best effort), and a decided package the peer was not told
// of waited for its turn there, up to 12 hours, with its Bescheid. A 429 is
// the peer serving one at a time, not a failure: Changed waits its Retry-After
// and sends the document again.
func TestChangeNoticeWaitsOutATooManyQuestions(t *testing.T) {
	w := newWorld(t)
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if posts.Add(1) == 1 {
			rw.Header().Set("Retry-After", "1")
			problem.Write(rw, r, problem.New(http.StatusTooManyRequests, TypeTooManyQuestions, "one at a time"))
			return
		}
		rw.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	peer, c := w.askerAt(srv)
	if err := c.Changed(context.Background(), peer, []Ref{{Sender: "amt24", MessageID: paket.NewMessageID()}}); err != nil {
		t.Fatalf("a 429 and then 204: %v", err)
	}
	if n := posts.Load(); n != 2 {
		t.Errorf("%d posts, want 2: the document refused 429 was not sent again", n)
	}
}
