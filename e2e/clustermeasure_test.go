//go:build measure

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/signing"
)

// TestMeasureClusterVsSingle prints accepted/s and delivered/s of one gateway on its
// defaults (bbolt, embedded NATS) and of three gateways on a three-node NATS cluster
// (replicated store, R3), the same load on the same machine, and how long a dead
// gateway's in-flight delivery takes to be taken over by another. It is a
// measurement (docs/performance.md), built only with -tags measure (make
// cluster-measure); it asserts only that nothing is lost and the delivery id stays.
func TestMeasureClusterVsSingle(t *testing.T) {
	const n, conc = 400, 8
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	ctx := context.Background()
	if out, err := run(t, ctx, dir, "keys", "init", "-data", shared, "-gateway-id", "amtsbote-sn"); err != nil {
		t.Fatalf("keys init: %v\n%s", err, out)
	}
	pki := filepath.Join(shared, "pki")
	signer, err := signing.LoadSigner(filepath.Join(pki, "portal-amt24-key.pem"), filepath.Join(pki, "portal-amt24.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key := serviceKey(t, "Gewerbe anmelden")

	load := func(name string, urls []string, office *fachverfahren.Office) {
		t.Helper()
		var next atomic.Int64
		var mu sync.Mutex
		ids := map[string]bool{}
		start := time.Now()
		var wg sync.WaitGroup
		for w := 0; w < conc; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				c := &portal.Client{BaseURL: urls[w%len(urls)], Signer: signer, Token: clusterPortalToken}
				for next.Add(1) <= n {
					p := paket.ExampleWith(key, paket.NewMessageID(), time.Now())
					p.Kopf.Ort = paket.Ort{PLZ: "01067"}
					res, err := c.Submit(ctx, p)
					if err != nil || res.Status != 201 {
						t.Errorf("%s: %v %+v", name, err, res)
						return
					}
					mu.Lock()
					ids[res.SubmissionID] = true
					mu.Unlock()
				}
			}(w)
		}
		wg.Wait()
		accepted := time.Since(start)
		for {
			done := office.Processed()
			missing := 0
			for id := range ids {
				if o, ok := done[id]; !ok || !o.Accepted {
					missing++
				}
			}
			if missing == 0 {
				break
			}
			if time.Since(start) > 5*time.Minute {
				t.Fatalf("%s: %d never delivered", name, missing)
			}
			time.Sleep(20 * time.Millisecond)
		}
		delivered := time.Since(start)
		t.Logf("MEASURE %s: %d packages, %d portal connections: %.0f accepted/s, %.0f delivered and accepted by the office/s",
			name, n, conc, float64(n)/accepted.Seconds(), float64(n)/delivered.Seconds())
	}
	cfgFor := func(i int, port int, nats, backend string, hook string, replicas int) string {
		natsLine := ""
		if nats != "" {
			natsLine = fmt.Sprintf("nats: {url: %q, replicas: %d}\n", nats, replicas)
		}
		return writeClusterGatewayConfig(t, filepath.Join(dir, fmt.Sprintf("%s-gw%d", backend, i)), port, natsLine, backend, pki, hook)
	}
	trust, err := signing.LoadTrustStore(filepath.Join(pki, "trust"))
	if err != nil {
		t.Fatal(err)
	}
	newOffice := func(opt fachverfahren.Options) *fachverfahren.Office {
		o, err := fachverfahren.Start(opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		o.SetCredentials(clusterOfficeToken, clusterSecret)
		o.SetVerifier(signing.NewVerifier(trust, signing.VerifyOptions{}))
		return o
	}

	// One node on its defaults.
	single := newOffice(fachverfahren.Options{})
	p := serve(t, dir, nil, "-config", cfgFor(0, natstest.FreePorts(t, 1)[0], "", "bbolt", single.URL(), 1))
	load("one gateway (bbolt, embedded NATS)", []string{p.url}, single)
	_ = p.terminate(t, 30*time.Second)

	// Three gateways on three NATS nodes, R3.
	nodes := natstest.StartCluster(t, 3)
	three := newOffice(fachverfahren.Options{})
	ports := natstest.FreePorts(t, 3)
	var urls []string
	var gws []*proc
	for i := 0; i < 3; i++ {
		gws = append(gws, serve(t, dir, nil, "-config", cfgFor(i, ports[i], nodes.URLs(), "jetstream", three.URL(), 3)))
		urls = append(urls, gws[i].url)
	}
	load("three gateways (replicated store R3, three NATS nodes)", urls, three)

	// Take-over: the office holds gateway 0's notification; gateway 0 dies with the
	// delivery in flight; another gateway delivers it with the same delivery id.
	release := make(chan struct{})
	hook := newHoldingHook(t, release)
	for _, g := range gws {
		_ = g.terminate(t, 30*time.Second)
	}
	gws = gws[:0]
	for i := 0; i < 3; i++ {
		gws = append(gws, serve(t, dir, nil, "-config", cfgFor(i, ports[i], nodes.URLs(), "jetstream", hook.url(), 3)))
	}
	c := &portal.Client{BaseURL: gws[0].url, Signer: signer, Token: clusterPortalToken}
	pk := paket.ExampleWith(key, paket.NewMessageID(), time.Now())
	pk.Kopf.Ort = paket.Ort{PLZ: "01067"}
	res, err := c.Submit(ctx, pk)
	if err != nil || res.Status != 201 {
		t.Fatalf("submit: %v %+v", err, res)
	}
	first := hook.waitFirst(t)
	// Kill whichever gateway holds the attempt.
	for _, g := range gws {
		if g.url[len("http://"):] == first.gateway {
			g.kill9(t)
		}
	}
	killed := time.Now()
	close(release)
	second := hook.waitOther(t, first.gateway)
	t.Logf("MEASURE take-over: a delivery in flight on a killed gateway was attempted again by another gateway after %s (same delivery id: %v)",
		second.at.Sub(killed).Round(100*time.Millisecond), second.deliveryID == first.deliveryID)
	if second.deliveryID != first.deliveryID {
		t.Fatalf("delivery id changed on take-over: %s -> %s", first.deliveryID, second.deliveryID)
	}
}

// seenAttempt is one notification the holding hook got.
type seenAttempt struct {
	gateway, deliveryID string
	at                  time.Time
}

// holdingHook holds the first notification until released (the gateway that sent it
// is killed meanwhile) and records every other one.
type holdingHook struct {
	srv     *httptest.Server
	mu      sync.Mutex
	seen    []seenAttempt
	release chan struct{}
}

func newHoldingHook(t *testing.T, release chan struct{}) *holdingHook {
	h := &holdingHook{release: release}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if webhook.Verify(r.Header, body, clusterSecret, time.Now(), 5*time.Minute) != nil {
			http.Error(w, "signature", 401)
			return
		}
		var n webhook.Notification
		_ = json.Unmarshal(body, &n)
		u, _ := url.Parse(n.Package.Href)
		h.mu.Lock()
		first := len(h.seen) == 0
		h.seen = append(h.seen, seenAttempt{gateway: u.Host, deliveryID: n.DeliveryID, at: time.Now()})
		h.mu.Unlock()
		if first {
			<-h.release
			http.Error(w, "gone", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(200)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *holdingHook) url() string { return h.srv.URL }

func (h *holdingHook) waitFirst(t *testing.T) seenAttempt {
	t.Helper()
	for i := 0; i < 600; i++ {
		h.mu.Lock()
		if len(h.seen) > 0 {
			s := h.seen[0]
			h.mu.Unlock()
			return s
		}
		h.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no notification")
	return seenAttempt{}
}

func (h *holdingHook) waitOther(t *testing.T, gw string) seenAttempt {
	t.Helper()
	for i := 0; i < 1200; i++ {
		h.mu.Lock()
		for _, s := range h.seen[1:] {
			if s.gateway != gw {
				h.mu.Unlock()
				return s
			}
		}
		h.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no other gateway took the delivery over")
	return seenAttempt{}
}
