package contracttest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWatchReportsPlantedAnswers: Watch, as the api and gateway tests' TestMain
// install it, names an answer with an undeclared member and one with an
// undeclared status, and a problem type docs/problems.md lacks on a path the
// contract does not have; counts the answers it held to the contract, passes
// a path beside it, and leaves the body whole for the test.
func TestWatchReportsPlantedAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"status":"ok","uptime":"3h"}`)
		case "/readyz":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTeapot)
			_, _ = io.WriteString(w, `{"status":"ready"}`)
		case "/v1/openapi.yaml":
			w.Header().Set("Content-Type", "application/yaml")
			_, _ = io.WriteString(w, "openapi: 3.0.3\n")
		case "/v1/routes":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"type":"https://amtsbote.de/problems/no-such-thing","title":"x","status":400}`)
		default:
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<p>a face beside the API</p>")
		}
	}))
	defer srv.Close()
	watch := &Watch{Next: http.DefaultTransport}
	client := &http.Client{Transport: watch}
	for _, path := range []string{"/healthz", "/readyz", "/v1/openapi.yaml", "/postfach/", "/v1/routes"} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(b) == 0 {
			t.Errorf("%s: the test got no body", path)
		}
	}
	report := watch.Report()
	for _, want := range []string{`GET /healthz → 200`, `"uptime"`, `GET /readyz → 418`, `GET /v1/routes → 400`, `no-such-thing`} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %s:\n%s", want, report)
		}
	}
	if strings.Contains(report, "openapi.yaml →") || strings.Contains(report, "postfach") {
		t.Errorf("the report names a good answer or a path beside the contract:\n%s", report)
	}
	if n := watch.Checked(); n != 3 {
		t.Errorf("%d answers held to the contract, want 3 (the face beside it is not)", n)
	}
}
