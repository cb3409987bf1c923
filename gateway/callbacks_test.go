package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/callback"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/signing"
)

// TestPortalCallbacks: a portal with a callback endpoint hears, with both signature
// sets valid, that its submission has news: once it is accepted, and again when
// the office decided; the status it then reads names the decision. A portal with a
// misconfigured callback stops the start with the portal's name.
func TestPortalCallbacks(t *testing.T) {
	secret := webhook.NewSecret()
	var mu sync.Mutex
	var got [][]string
	portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(r.Header, raw, secret, time.Now(), 0); err != nil {
			t.Errorf("callback signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var b struct {
			Type          string   `json:"type"`
			SubmissionIDs []string `json:"submissionIds"`
		}
		if err := json.Unmarshal(raw, &b); err != nil || b.Type != callback.TypeNewEvents {
			t.Errorf("callback body %s: %v", raw, err)
		}
		mu.Lock()
		got = append(got, b.SubmissionIDs)
		mu.Unlock()
	}))
	defer portal.Close()
	f := start(t, func(cfg *config.Config) {
		p := cfg.Portals["amt24"]
		p.Callback = &config.PortalCallback{Endpoint: portal.URL + "/amtsbote", Secret: secret}
		cfg.Portals["amt24"] = p
	})
	heard := func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, ids := range got {
			if slices.Contains(ids, id) {
				n++
			}
		}
		return n
	}
	res, err := f.portal.Submit(context.Background(), f.example())
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit: %v %+v", err, res)
	}
	id := res.SubmissionID
	waitFor(t, "a callback naming the new submission", func() bool { return heard(id) >= 1 })
	time.Sleep(1500 * time.Millisecond) // the intake's burst of events is one callback
	before := heard(id)

	office := func(method, path string, body []byte) int {
		req, _ := http.NewRequest(method, f.g.URL()+"/v1/office/submissions/"+id+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+officeToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := office(http.MethodGet, "/package", nil); c != http.StatusOK {
		t.Fatalf("office fetch: %d", c)
	}
	if c := office(http.MethodPost, "/accept", []byte(`{"reason":"vollständig"}`)); c != http.StatusOK {
		t.Fatalf("office accept: %d", c)
	}
	waitFor(t, "a callback after the office's decision", func() bool { return heard(id) > before })
	st, err := f.portal.Status(context.Background(), id)
	if err != nil || st.Decision == nil || st.Decision.Outcome != "accepted" {
		t.Fatalf("status after the callback: %+v %v", st, err)
	}

	// A callback endpoint that is not an absolute http(s) URL stops the start.
	_, err = Start(context.Background(), func() config.Config {
		cfg := f.g.Config
		cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
		cfg.Portals = map[string]config.PortalClient{"amt24": {Token: portalToken, Callback: &config.PortalCallback{Endpoint: "portal.example/cb", Secret: secret}}}
		return cfg
	}(), f.g.Log)
	if err == nil || !strings.Contains(err.Error(), "portals.amt24.callback.endpoint") || strings.Contains(err.Error(), secret) {
		t.Fatalf("start with a bad callback endpoint: %v", err)
	}
}

// TestDevCredentialsFillAPortalsToken: on the development PKI a portal the
// configuration names without a token (to give it a callback, as
// docs/webhook.md shows) gets the generated token, as the demo office does.
// Before, the configured entry replaced the development one whole: the portal
// token in dev-credentials.yaml, which `amtsbote submit -wait` sends, was
// refused with 401 from then on, and the start said nothing.
func TestDevCredentialsFillAPortalsToken(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cb := &config.PortalCallback{Endpoint: "https://amt24.example/callback", Secret: webhook.NewSecret()}
	cfg.Portals = map[string]config.PortalClient{"amt24": {Callback: cb}}
	g := &Gateway{Config: cfg, PKI: &signing.DevPKI{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := g.setupCredentials(); err != nil {
		t.Fatal(err)
	}
	dc, err := LoadDevCredentials(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	p := g.Config.Portals["amt24"]
	if p.Token == "" || p.Token != dc.Portals["amt24"].Token {
		t.Errorf("the portal's token is %q, want the development token of %s", p.Token, DevCredentialsFile)
	}
	if p.Callback != cb {
		t.Errorf("the configured callback became %+v", p.Callback)
	}
	// A token the operator configured stays.
	cfg.Portals = map[string]config.PortalClient{"amt24": {Token: "amt24-own-token-0123456789", Callback: cb}}
	g = &Gateway{Config: cfg, PKI: &signing.DevPKI{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := g.setupCredentials(); err != nil {
		t.Fatal(err)
	}
	if p := g.Config.Portals["amt24"]; p.Token != "amt24-own-token-0123456789" {
		t.Errorf("the configured token became %q", p.Token)
	}
}
