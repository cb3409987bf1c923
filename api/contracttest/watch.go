package contracttest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Watch is a RoundTripper for a test binary's http.DefaultClient: it holds
// every answer a test gets from the gateway's REST API to the contract
// (Check), so a client generated from api/openapi.yaml meets all of them, not
// only those of the contract tests' own tables. Paths the contract does not
// have (the faces mounted beside the API, GET /v1/routes) pass
// unchecked but for a problem document's type (CheckProblem). What breaks the
// contract is collected, once per fault; Report says it at the end of the run
// (TestMain), naming the operation. It sees http.DefaultClient's requests
// only: a test with a client of its own (portal.Client, the fachverfahren
// package's, an httptest server's Client) is not held to the contract unless
// it checks its answers itself (Check).
type Watch struct {
	Next http.RoundTripper

	mu      sync.Mutex
	seen    map[string]bool
	found   []string
	checked int
}

// RoundTrip implements http.RoundTripper. Only JSON bodies are read here (small,
// and whole before the client reads them); any other answer keeps its stream
// for the test and is checked without its body, for status, content type and
// declared headers.
func (w *Watch) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := w.Next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	c, cerr := Default()
	if cerr != nil {
		w.add(cerr.Error())
		return resp, nil
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var fault error
	if mt == "application/json" || mt == "application/problem+json" {
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if rerr != nil {
			return resp, nil // the test sees the short body and judges it
		}
		fault = c.Check(req, resp.StatusCode, resp.Header, body)
		if errors.Is(fault, ErrNotInContract) && mt == "application/problem+json" && req.Method != http.MethodHead {
			// Not an operation of the contract, but a problem of the gateway:
			// its type is one of docs/problems.md all the same.
			if perr := c.CheckProblem(resp.StatusCode, resp.Header, body); perr != nil {
				w.add(fmt.Sprintf("%s %s → %d: %v", req.Method, req.URL.Path, resp.StatusCode, perr))
			}
		}
	} else {
		fault = c.CheckHead(req, resp.StatusCode, resp.Header)
	}
	if !errors.Is(fault, ErrNotInContract) {
		w.mu.Lock()
		w.checked++
		w.mu.Unlock()
		if fault != nil {
			w.add(fault.Error())
		}
	}
	return resp, nil
}

// Checked is how many answers were held to the contract.
func (w *Watch) Checked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checked
}

func (w *Watch) add(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	if !w.seen[s] {
		w.seen[s] = true
		w.found = append(w.found, s)
	}
}

// Report is what broke the contract, one line each, or "" when nothing did.
func (w *Watch) Report() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.found) == 0 {
		return ""
	}
	sort.Strings(w.found)
	return "answers that break api/openapi.yaml (contracttest.Watch):\n  " + strings.Join(w.found, "\n  ") + "\n"
}

// RunWatched runs a test binary's tests (a TestMain's m.Run) with a Watch on
// http.DefaultClient and returns the exit code: m.Run's, or 1 when an answer
// broke the contract, which is then written to stderr. It is the client's
// transport, not http.DefaultTransport itself, that is replaced: the gateway's
// outbound clients clone that one as an *http.Transport.
func RunWatched(m interface{ Run() int }) int {
	watch := &Watch{Next: http.DefaultTransport}
	http.DefaultClient.Transport = watch
	code := m.Run()
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "contracttest.Watch: %d answers held to api/openapi.yaml\n", watch.Checked())
	}
	if broken := watch.Report(); broken != "" {
		fmt.Fprint(os.Stderr, broken)
		if code == 0 {
			code = 1
		}
	}
	return code
}
