package gateway

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/outbound"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/submission"
)

// TestWebhookOfPrivateCA: an office's HTTPS webhook whose certificate comes from
// the state network's own CA (httptest's stands in for it). There was no setting
// for the roots that verify it: every attempt failed as "certificate signed by
// unknown authority", logged at INFO among ordinary retries, until the package
// fell back to the mailbox. tls.outbound_ca_file adds the CA; without it the
// failure is a WARN naming that setting; a wrong file stops the start.
func TestWebhookOfPrivateCA(t *testing.T) {
	var mu sync.Mutex
	var got int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "state-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	webhookAt := func(c *config.Config) {
		c.Offices[DemoOfficeID] = c.Offices[DemoOfficeID].WithChannel(channel.Webhook, config.Channel{Endpoint: srv.URL, Secret: secretA})
	}

	t.Run("without the CA", func(t *testing.T) {
		var logs testenv.Buffer
		f := startLogged(t, slog.New(slog.NewTextHandler(&logs, nil)), webhookAt)
		res, err := f.portal.Submit(context.Background(), f.example())
		if err != nil || !res.Accepted() {
			t.Fatalf("submit: %v %+v", err, res)
		}
		waitFor(t, "a warning that names "+outbound.Setting, func() bool {
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "level=WARN") && strings.Contains(l, "outbound TLS") && strings.Contains(l, outbound.Setting) &&
					strings.Contains(l, strings.TrimPrefix(srv.URL, "https://")) {
					return true
				}
			}
			return false
		})
	})

	t.Run("with tls.outbound_ca_file", func(t *testing.T) {
		f := start(t, webhookAt, func(c *config.Config) { c.TLS.OutboundCAFile = caFile })
		res, err := f.portal.Submit(context.Background(), f.example())
		if err != nil || !res.Accepted() {
			t.Fatalf("submit: %v %+v", err, res)
		}
		waitFor(t, "the delivery over the webhook", func() bool {
			s, err := f.g.Broker.Submission(res.SubmissionID)
			return err == nil && s.State == submission.StateDelivered
		})
		mu.Lock()
		defer mu.Unlock()
		if got == 0 {
			t.Fatal("delivered, but the webhook was never called")
		}
	})

	t.Run("a wrong file", func(t *testing.T) {
		cfg := config.Default()
		cfg.DataDir = t.TempDir()
		cfg.Listen = "127.0.0.1:0"
		cfg.TLS.OutboundCAFile = filepath.Join(t.TempDir(), "missing.pem")
		g, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil {
			_ = g.Shutdown(context.Background())
			t.Fatal("started with a tls.outbound_ca_file that does not exist")
		}
		if !strings.Contains(err.Error(), outbound.Setting) {
			t.Fatalf("start error %q does not name %s", err, outbound.Setting)
		}
	})
}

// TestPeerOfPrivateCA: a peer gateway reached over HTTPS with a certificate of
// the Portalverbund's own CA (httptest's, in front of the Bavarian node). The
// federation client verified peers against the system's roots only, so no
// package could be forwarded to it; with tls.outbound_ca_file the forwarding
// and the status questions go through.
func TestPeerOfPrivateCA(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn)
	by.start(t)
	target, err := url.Parse(by.url())
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	front.Config.ErrorLog = log.New(io.Discard, "", 0)
	front.StartTLS()
	defer front.Close()
	caFile := filepath.Join(t.TempDir(), "verbund-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	sn.peer(by, front.URL, 100*time.Millisecond, "09")
	sn.cfg.TLS.OutboundCAFile = caFile
	sn.start(t)
	id := sn.submit(t, fedMuenchenARS)
	sn.waitState(t, id, submission.StateDelivered)
}
