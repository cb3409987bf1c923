package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

// TestRefusedTokensAreCountedAndLogged: nothing limits how many bearer tokens a
// client may try, so someone guessing the admin token must at least be seen.
// Until an audit (2026-12-06) a refused token was a line of the access log at
// DEBUG and a 401 among the others in amtsbote_http_requests_total: now each
// is counted by the kind of client the route is for, a request without a token
// (a misconfigured client, a browser) is not, and the log says so at WARN once
// a minute with the count, the route and the peer's address, never the token.
func TestRefusedTokensAreCountedAndLogged(t *testing.T) {
	const admin, portalTok, officeTok = "adm-0123456789abcdef", "ptl-0123456789abcdef", "ofc-0123456789abcdef"
	logs := &testenv.Buffer{}
	srv := httptest.NewServer(api.New(api.Options{
		Clients:  api.NewClients(admin, map[string]string{"amt24": portalTok}, map[string][]string{"office-a": {officeTok}}),
		Registry: prometheus.NewRegistry(),
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
	}))
	defer srv.Close()
	get := func(path, token string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET %s: %d, want 401", path, res.StatusCode)
		}
	}
	for _, guess := range []string{"guess-1", "guess-2", officeTok, portalTok} {
		get("/v1/admin/submissions", guess)
	}
	get("/v1/office/submissions", admin)
	get("/v1/submissions/x", "guess-3")
	get("/v1/admin/submissions", "") // no token: not a guess
	get("/v1/office/submissions", "")

	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`amtsbote_auth_refused_total{client="admin"} 4`,
		`amtsbote_auth_refused_total{client="office"} 1`,
		`amtsbote_auth_refused_total{client="portal"} 1`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(string(body), "amtsbote_auth_refused_total"))
		}
	}
	l := logs.String()
	if n := strings.Count(l, "bearer token refused"); n != 1 {
		t.Errorf("%d log lines of refused tokens, want 1 (once a minute):\n%s", n, l)
	}
	for _, want := range []string{"level=WARN", "client=admin", "route=/v1/admin/*", "remote=127.0.0.1", "refused_since_last_line=1"} {
		if !strings.Contains(grepLines(l, "bearer token refused"), want) {
			t.Errorf("the log line lacks %s:\n%s", want, l)
		}
	}
	for _, secret := range []string{"guess-1", admin, portalTok, officeTok} {
		if strings.Contains(l, secret) {
			t.Errorf("the log shows a token (%s):\n%s", secret, l)
		}
	}
}
