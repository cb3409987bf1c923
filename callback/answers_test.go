package callback

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/submission"
)

// TestRedirectIsNoDelivery: only a 2xx answer means the portal has the ids. The
// client follows no redirect (webhook.NewClient: the signed body would go to an
// address nobody configured), so a portal that moved its endpoint answers 3xx and
// has nothing; were that counted as sent, the ids would be dropped and the portal
// would learn of the events only by polling. The batch comes again and, once the
// endpoint answers 2xx, arrives.
func TestRedirectIsNoDelivery(t *testing.T) {
	p := newPortalEnd(t)
	var moved atomic.Int32
	moved.Store(1)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if moved.Add(-1) >= 0 {
			http.Redirect(w, r, p.srv.URL+"/elsewhere", http.StatusPermanentRedirect)
			return
		}
		p.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	n := start(t, Options{Portals: []Portal{{ID: "amt24", Endpoint: front.URL, Secret: p.secret}}})
	n.Observe(sub("a", "amt24", "o"), submission.Event{})
	ids, _ := p.waitIDs(t, 1)
	if !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("the portal got %v, want a", ids)
	}
	if f := value(n.sent.WithLabelValues("amt24", "failed")); f != 1 {
		t.Errorf("the redirected callback counted %v times as failed, want 1", f)
	}
}

// TestFailureLogHasNoEndpoint: a portal's callback endpoint may carry its token in
// the query (portals.<id>.callback.endpoint), and secrets are never logged. A
// transport error is a *url.Error, which quotes the whole URL; the log line of
// the failure must give the cause without it.
func TestFailureLogHasNoEndpoint(t *testing.T) {
	// A port that refuses connections: listen, note the address, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	const token = "geheim-token-4711"
	var logs testenv.Buffer
	n := start(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Portals: []Portal{{ID: "amt24", Endpoint: "http://" + addr + "/cb?token=" + token, Secret: webhook.NewSecret()}}})
	n.Observe(sub("a", "amt24", "o"), submission.Event{})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "portal callback failed"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no failed callback logged")
		}
	}
	_ = n.Close()
	line := logs.String()
	if strings.Contains(line, token) || strings.Contains(line, "/cb") {
		t.Errorf("the log quotes the endpoint:\n%s", line)
	}
	if !strings.Contains(line, "refused") {
		t.Errorf("the log lost the cause:\n%s", line)
	}
}
