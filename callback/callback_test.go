package callback

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/internal/outbound"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// portalEnd is a portal's callback endpoint on loopback: it verifies both signature
// sets with the webhook package's verifier and keeps the bodies it accepted.
type portalEnd struct {
	srv    *httptest.Server
	secret string
	refuse atomic.Int32 // answer 503 this many more times
	mu     sync.Mutex
	got    []body
	raw    [][]byte // the accepted bodies as received
	bad    []string
}

func newPortalEnd(t *testing.T) *portalEnd {
	p := &portalEnd{secret: webhook.NewSecret()}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		defer p.mu.Unlock()
		if err := webhook.Verify(r.Header, raw, p.secret, time.Now(), 0); err != nil {
			p.bad = append(p.bad, err.Error())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if p.refuse.Add(-1) >= 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var b body
		if err := json.Unmarshal(raw, &b); err != nil {
			p.bad = append(p.bad, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		p.got = append(p.got, b)
		p.raw = append(p.raw, raw)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// ids returns every id received, in order, and the bodies.
func (p *portalEnd) ids() ([]string, []body, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for _, b := range p.got {
		ids = append(ids, b.SubmissionIDs...)
	}
	return ids, append([]body(nil), p.got...), append([]string(nil), p.bad...)
}

func (p *portalEnd) waitIDs(t *testing.T, n int) ([]string, []body) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		ids, bodies, bad := p.ids()
		if len(bad) > 0 {
			t.Fatalf("the portal refused callbacks: %v", bad)
		}
		if len(ids) >= n {
			return ids, bodies
		}
		if time.Now().After(deadline) {
			t.Fatalf("the portal got %v within 10 s, want %d ids", ids, n)
		}
	}
}

func sub(id, portal, office string) *submission.Submission {
	return &submission.Submission{ID: id, Sender: portal, OfficeID: office}
}

func start(t *testing.T, o Options) *Notifier {
	t.Helper()
	if o.Window == 0 {
		o.Window = 20 * time.Millisecond
	}
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	n.Start()
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// TestEventsMakeOneSignedCallback: the events of several submissions within the
// window make one callback, each id once, with its office's destinationId, signed
// so that the webhook verifier (both header sets) accepts it; another portal's
// submissions are not in it, nor a package another state's gateway forwarded here
// under the same portal id (every development PKI's portal is "amt24"; it was).
func TestEventsMakeOneSignedCallback(t *testing.T) {
	p := newPortalEnd(t)
	n := start(t, Options{Window: 200 * time.Millisecond, Portals: []Portal{{ID: "amt24", Endpoint: p.srv.URL + "/cb?token=x", Secret: p.secret}}})
	forwarded := sub("f", "amt24", "dresden")
	forwarded.Origin = &submission.Origin{Gateway: "amtsbote-by", SubmissionID: "by-1"}
	for _, s := range []*submission.Submission{sub("a", "amt24", "dresden"), sub("b", "amt24", "leipzig"), sub("x", "other-portal", "dresden"), forwarded} {
		for _, typ := range []string{submission.EventReceived, submission.EventRouted, submission.EventQueued} {
			n.Observe(s, submission.Event{Type: typ})
		}
	}
	ids, bodies := p.waitIDs(t, 2)
	time.Sleep(300 * time.Millisecond) // nothing more comes
	if ids2, _, _ := p.ids(); len(bodies) != 1 || !slices.Equal(ids, []string{"a", "b"}) || len(ids2) != 2 {
		t.Fatalf("callbacks %+v, want one with a and b", bodies)
	}
	b := bodies[0]
	if b.Type != TypeNewEvents || len(b.Submissions) != 2 || b.Submissions[1] != (subject{DestinationID: wire.OfficeDestinationID("leipzig"), SubmissionID: "b", CaseID: "b", OfficeID: "leipzig"}) {
		t.Fatalf("callback body %+v", b)
	}
}

// TestPortalsOwnReadOfAReplyIsNoNews: the portal reading a reply records
// reply_fetched; a callback for it would only send the portal to read the
// status again, and find its own read.
func TestPortalsOwnReadOfAReplyIsNoNews(t *testing.T) {
	p := newPortalEnd(t)
	n := start(t, Options{Portals: []Portal{{ID: "amt24", Endpoint: p.srv.URL + "/cb?token=x", Secret: p.secret}}})
	n.Observe(sub("read", "amt24", "dresden"), submission.Event{Type: submission.EventReplyFetched})
	n.Observe(sub("replied", "amt24", "dresden"), submission.Event{Type: submission.EventReplied})
	ids, _ := p.waitIDs(t, 1)
	time.Sleep(100 * time.Millisecond) // five windows: nothing more comes
	if ids2, _, _ := p.ids(); !slices.Equal(ids, []string{"replied"}) || len(ids2) != 1 {
		t.Fatalf("callbacks for %v, want the reply's case alone", ids2)
	}
}

// TestFailedCallbackComesAgain: a portal that answers 503 gets the same ids again,
// with what came meanwhile, until it answers 2xx; the metrics count both.
func TestFailedCallbackComesAgain(t *testing.T) {
	p := newPortalEnd(t)
	p.refuse.Store(2)
	reg := prometheus.NewRegistry()
	n := start(t, Options{Registerer: reg, Portals: []Portal{{ID: "amt24", Endpoint: p.srv.URL, Secret: p.secret}}})
	n.Observe(sub("a", "amt24", "o"), submission.Event{})
	for deadline := time.Now().Add(10 * time.Second); value(n.sent.WithLabelValues("amt24", "failed")) < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no failed callback")
		}
	}
	n.Observe(sub("b", "amt24", "o"), submission.Event{})
	n.Observe(sub("a", "amt24", "o"), submission.Event{})
	ids, _ := p.waitIDs(t, 2)
	if !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("after the failures the portal got %v, want a then b, each once", ids)
	}
	for deadline := time.Now().Add(10 * time.Second); value(n.sent.WithLabelValues("amt24", "ok")) < 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // counted once the answer is read
	}
	if f, ok := value(n.sent.WithLabelValues("amt24", "failed")), value(n.sent.WithLabelValues("amt24", "ok")); f != 2 || ok != 1 {
		t.Fatalf("metrics: %v failed, %v ok; want 2 and 1", f, ok)
	}
}

// TestTooManyWaitingAreDropped: beyond MaxPending ids the newest are left out and
// counted; the portal gets the others.
func TestTooManyWaitingAreDropped(t *testing.T) {
	p := newPortalEnd(t)
	n, err := New(Options{Window: 10 * time.Millisecond, MaxPending: 2, Portals: []Portal{{ID: "amt24", Endpoint: p.srv.URL, Secret: p.secret}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} { // before Start: all three wait
		n.Observe(sub(id, "amt24", "o"), submission.Event{})
	}
	n.Start()
	defer n.Close()
	if ids, _ := p.waitIDs(t, 2); !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("the portal got %v", ids)
	}
	if d := value(n.dropped.WithLabelValues("amt24")); d != 1 {
		t.Fatalf("dropped %v, want 1", d)
	}
}

// TestBadConfigurationIsRefused: an endpoint that is not an absolute http(s) URL, or
// a secret that is not a whsec_ key, stops the start, naming the portal and never
// the secret.
func TestBadConfigurationIsRefused(t *testing.T) {
	for _, p := range []Portal{
		{ID: "amt24", Endpoint: "ftp://portal.example/cb", Secret: webhook.NewSecret()},
		{ID: "amt24", Endpoint: "https://user:pw@portal.example/cb", Secret: webhook.NewSecret()},
		{ID: "amt24", Endpoint: "https://portal.example/cb", Secret: "geheimes-passwort"},
	} {
		_, err := New(Options{Portals: []Portal{p}})
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "portals.amt24.callback") || strings.Contains(err.Error(), "geheim") || strings.Contains(err.Error(), "pw@") {
			t.Errorf("%+v: %v", p, err)
		}
	}
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestCloseDoesNotWaitForAPortal: a portal that does not answer holds neither the
// sender nor the gateway's shutdown.
func TestCloseDoesNotWaitForAPortal(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	n, err := New(Options{Window: time.Millisecond, Timeout: time.Hour, Portals: []Portal{{ID: "amt24", Endpoint: srv.URL, Secret: webhook.NewSecret()}}})
	if err != nil {
		t.Fatal(err)
	}
	n.Start()
	n.Observe(sub("a", "amt24", "o"), submission.Event{})
	time.Sleep(100 * time.Millisecond) // the POST is in flight
	done := make(chan struct{})
	go func() { _ = n.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the portal's answer")
	}
}

// TestPutBackKeepsTheBound: a failed batch goes back in front of what came
// meanwhile, and what is beyond MaxPending then is left out and counted; the
// failed batch could push the queue past it by a whole batch.
func TestPutBackKeepsTheBound(t *testing.T) {
	q := &queue{in: map[string]bool{}}
	for _, id := range []string{"c", "d"} {
		q.waiting = append(q.waiting, subject{SubmissionID: id})
		q.in[id] = true
	}
	lost := q.putBack([]subject{{SubmissionID: "a"}, {SubmissionID: "b"}, {SubmissionID: "c"}}, 3)
	var ids []string
	for _, x := range q.waiting {
		ids = append(ids, x.SubmissionID)
	}
	if !slices.Equal(ids, []string{"a", "b", "c"}) || lost != 1 || q.in["d"] {
		t.Fatalf("after putting a, b, c back before c, d with room for 3: %v, %d left out, d still marked %v", ids, lost, q.in["d"])
	}
}

// TestRetryAfterIsHeeded: a portal that answers 503 or 429 with Retry-After (a
// maintenance window, a rate limit) said when to come back. The callback came
// again after 1 s, 2 s, 4 s … all the same, a request the portal had asked not to
// get; the wait is now at least what it asked for (at most MaxBackoff).
func TestRetryAfterIsHeeded(t *testing.T) {
	for _, tc := range []struct {
		status     int
		retryAfter string
		want       string
	}{
		{http.StatusServiceUnavailable, "120", "retry_in=2m0s"},
		{http.StatusTooManyRequests, time.Now().Add(10 * time.Minute).UTC().Format(http.TimeFormat), "retry_in=5m0s"}, // capped at MaxBackoff
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", tc.retryAfter)
			w.WriteHeader(tc.status)
		}))
		t.Cleanup(srv.Close)
		var logs testenv.Buffer
		n := start(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Portals: []Portal{{ID: "amt24", Endpoint: srv.URL, Secret: webhook.NewSecret()}}})
		n.Observe(sub("a", "amt24", "o"), submission.Event{})
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "portal callback failed"); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no failed callback logged")
			}
		}
		if line := logs.String(); !strings.Contains(line, tc.want) {
			t.Errorf("%d with Retry-After %s: %s, want %s", tc.status, tc.retryAfter, line, tc.want)
		}
		_ = n.Close()
	}
}

// TestCallbackToPortalOfPrivateCA: a portal whose HTTPS callback endpoint has a
// certificate of the state network's own CA got no callback at all (the system's
// roots only, no setting for the CA). With tls.outbound_ca_file's roots
// (Options.Outbound) it gets them.
func TestCallbackToPortalOfPrivateCA(t *testing.T) {
	p := newPortalEnd(t)
	p.srv.Close()
	p.srv = httptest.NewUnstartedServer(p.srv.Config.Handler)
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	p.srv.StartTLS()
	defer p.srv.Close()
	caFile := filepath.Join(t.TempDir(), "state-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := outbound.Load(caFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	n := start(t, Options{Outbound: out, Portals: []Portal{{ID: "amt24", Endpoint: p.srv.URL, Secret: p.secret}}})
	n.Observe(sub("a", "amt24", "o"), submission.Event{})
	if ids, _ := p.waitIDs(t, 1); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("the portal got %v, want a", ids)
	}
}
