package problem_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/internal/httpmetrics"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

// TestLabelIsBoundedAndShort: every listed type has its own short name as the
// label of amtsbote_http_problems_total (the URI without Base), none of them
// "other"; anything else is "other", so what a caller puts into Type cannot
// grow the label.
func TestLabelIsBoundedAndShort(t *testing.T) {
	seen := map[string]string{}
	for _, typ := range problem.Types() {
		l := problem.Label(typ)
		if l != strings.TrimPrefix(typ, problem.Base) || l == problem.LabelOther || l == "" || strings.Contains(l, ":") {
			t.Errorf("Label(%q) = %q", typ, l)
		}
		if other, ok := seen[l]; ok {
			t.Errorf("%q and %q have the label %q", typ, other, l)
		}
		seen[l] = typ
	}
	for _, typ := range []string{"", "about:blank", problem.Base, problem.Base + "no-such-type", "https://example.org/untrusted-signer", "untrusted-signer"} {
		if l := problem.Label(typ); l != problem.LabelOther {
			t.Errorf("Label(%q) = %q, want %q", typ, l, problem.LabelOther)
		}
	}
}

// TestWriteIsCountedByRouteAndType: problem.Write notes its type on the
// counting writer of httpmetrics.Observe through wrapping writers (as the
// federation's and the downloads' wrap it), over real HTTP: a listed type by
// its short name, an unlisted one as "other"; an answer that is no problem
// document, and a problem written after the status was sent (what the client
// got is the first answer), count nothing.
func TestWriteIsCountedByRouteAndType(t *testing.T) {
	m := httpmetrics.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collectors()...)
	mux := http.NewServeMux()
	mux.HandleFunc("/signed", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(wrapped{w}, r, problem.New(http.StatusForbidden, problem.TypeUntrustedSigner, "not in the trust store"))
	})
	mux.HandleFunc("/peer", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusMisdirectedRequest, problem.TypeFederationMisdirected, "another gateway"))
	})
	mux.HandleFunc("/strange", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, &problem.Problem{Type: "https://example.org/a-type-of-its-own", Status: http.StatusTeapot})
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "fine") })
	mux.HandleFunc("/late", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		problem.Write(w, r, problem.New(http.StatusInternalServerError, problem.TypeInternal, "after the status"))
	})
	// The route is the path here; the gateway's is chi's pattern.
	srv := httptest.NewServer(m.Observe(mux, func(r *http.Request) string { return r.URL.Path }, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	for path, n := range map[string]int{"/signed": 2, "/peer": 1, "/strange": 1, "/ok": 1, "/late": 1} {
		for range n {
			res, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	got := map[string]float64{}
	for _, s := range testenv.Samples(t, reg, "amtsbote_http_problems_total") {
		got[s.Labels["route"]+" "+s.Labels["type"]] = s.Value
	}
	want := map[string]float64{"/signed untrusted-signer": 2, "/peer federation/misdirected": 1, "/strange other": 1}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// wrapped is a handler's own writer around the one it was given, with Unwrap.
type wrapped struct{ http.ResponseWriter }

func (w wrapped) Unwrap() http.ResponseWriter { return w.ResponseWriter }
