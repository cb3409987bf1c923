package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// loopback serves h with a real http.Server configured as the gateway configures it.
func loopback(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: ServerMaxHeaderBytes}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

func decodeProblem(t *testing.T, res *http.Response) problem.Problem {
	t.Helper()
	body, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("status %d, content type %q: %s", res.StatusCode, ct, body)
	}
	var p problem.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHeadersTooLarge: request line plus headers over 64 KiB get a 431 problem
// document over real HTTP, not net/http's plain-text answer; just under passes.
func TestHeadersTooLarge(t *testing.T) {
	s, _ := directoryServer(t)
	base := loopback(t, s)
	do := func(path string, pad int) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if pad > 0 {
			req.Header.Set("X-Pad", strings.Repeat("a", pad))
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	if res := do("/healthz", MaxHeaderBytes-1024); res.StatusCode != 200 {
		t.Fatalf("just under the limit: %d", res.StatusCode)
	}
	for name, res := range map[string]*http.Response{
		"one big header":     do("/healthz", MaxHeaderBytes+1),
		"long request URI":   do("/v1/places?q="+strings.Repeat("x", MaxHeaderBytes), 0),
		"far over (512 KiB)": do("/v1/submissions/x", 512<<10),
	} {
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s: status %d", name, res.StatusCode)
			continue
		}
		if p := decodeProblem(t, res); p.Type != problem.TypeHeadersTooLarge || p.Status != 431 || p.Title == "" {
			t.Errorf("%s: %+v", name, p)
		}
	}
}

func TestRequestHeaderBytes(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/x?y=1", nil)
	r.RequestURI = "/v1/x?y=1"
	r.Header.Set("A", "bc")
	// "GET /v1/x?y=1 HTTP/1.1\r\n" + "Host: example.com\r\n" + "A: bc\r\n" + "\r\n"
	if got, want := requestHeaderBytes(r), 24+19+7+2; got != want {
		t.Errorf("got %d, want %d", got, want)
	}
}

// TestMethodNotAllowed: a known path with a method it does not serve is 405 with its
// own type and an Allow header, also inside the office and admin sub-routers (after
// authentication: without a token those answer 401 first).
func TestMethodNotAllowed(t *testing.T) {
	s, _ := directoryServer(t)
	srv := httptest.NewServer(s)
	defer srv.Close()
	tests := []struct{ method, path, token, allow string }{
		{"DELETE", "/v1/submissions", "", "POST"},
		{"POST", "/v1/submissions/x", "", "GET, HEAD"}, // HEAD wherever GET is (headAsGet)
		{"PUT", "/healthz", "", "GET, HEAD"},
		{"GET", "/v1/office/submissions/x/accept", testOfficeToken, "POST"},
		{"DELETE", "/v1/admin/submissions/x", testAdminToken, "GET, HEAD"},
		{"POST", "/v1/routes", "", "GET, HEAD"},
		{"PUT", "/v1/submissions/a%2Fb", "", "GET, HEAD"},   // chi routes on the escaped path: Allow was empty
		{"HEAD", "/v1/admin/backup", testAdminToken, "GET"}, // not made to be thrown away
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 405 {
			t.Errorf("%s %s: %d", tc.method, tc.path, res.StatusCode)
		} else if tc.method == http.MethodHead {
			// no content to read a problem from
		} else if p := decodeProblem(t, res); p.Type != problem.TypeMethodNotAllowed {
			t.Errorf("%s %s: type %s", tc.method, tc.path, p.Type)
		}
		if got := res.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
		res.Body.Close()
	}
}

// TestQueriesAreReadWholeOrRefused: url.Values drops the pairs it cannot read, so
// "state=accepted;held" listed every state and "office=x;y" every office's dead
// letters: a filter vanished and the client got a 200 with more than it asked
// for. A query that cannot be read is 400; a single-valued parameter given twice
// is 422 (the second value had been dropped); a limit out of range is 422
// invalid-field on every listing (the directory's was 400); a LeiKa key that
// cannot be one is 422 invalid-field on every route (was 400 in /v1/services/{key}
// and unknown-service in /v1/resolve); a method on a path that does not exist is
// 404 (was 405 with an empty Allow).
func TestQueriesAreReadWholeOrRefused(t *testing.T) {
	s, _ := directoryServer(t)
	srv := httptest.NewServer(s)
	defer srv.Close()
	for _, tc := range []struct {
		method, path, token string
		status              int
		typ, field          string
	}{
		{"GET", "/v1/office/submissions?state=accepted;held", testOfficeToken, 400, problem.TypeMalformed, ""},
		{"GET", "/v1/office/submissions?state=accepted%zz", testOfficeToken, 400, problem.TypeMalformed, ""},
		{"GET", "/v1/admin/submissions?state=accepted;x", testAdminToken, 400, problem.TypeMalformed, ""},
		{"GET", "/v1/admin/dead-letters?office=x;y", testAdminToken, 400, problem.TypeMalformed, ""},
		{"GET", "/v1/admin/dead-letters?limit=%zz", testAdminToken, 400, problem.TypeMalformed, ""},
		{"GET", "/v1/places?q=Dresden;x", "", 400, problem.TypeMalformed, ""},
		{"GET", "/v1/admin/submissions?state=held&state=queued", testAdminToken, 422, problem.TypeInvalidField, "state"},
		{"GET", "/v1/admin/dead-letters?office=a&office=b", testAdminToken, 422, problem.TypeInvalidField, "office"},
		{"GET", "/v1/admin/messages?sender=amt24", testAdminToken, 422, problem.TypeInvalidField, "messageId"},
		{"GET", "/v1/admin/messages?messageId=m-1", testAdminToken, 422, problem.TypeInvalidField, "sender"},
		{"GET", "/v1/admin/messages?sender=amt24&messageId=" + strings.Repeat("x", 1025), testAdminToken, 422, problem.TypeInvalidField, "messageId"},
		{"GET", "/v1/admin/messages?sender=a&sender=b&messageId=m-1", testAdminToken, 422, problem.TypeInvalidField, "sender"},
		{"GET", "/v1/office/submissions?limit=5&limit=6", testOfficeToken, 422, problem.TypeInvalidField, "limit"},
		{"GET", "/v1/resolve?place=Dresden&place=Leipzig&leikaKey=99050012104000", "", 422, problem.TypeInvalidField, "place"},
		{"GET", "/v1/places?q=Dresden&limit=0", "", 422, problem.TypeInvalidField, "limit"},
		{"GET", "/v1/places?q=Dresden&limit=99999", "", 422, problem.TypeInvalidField, "limit"},
		{"GET", "/v1/services?limit=zwei", "", 422, problem.TypeInvalidField, "limit"},
		{"GET", "/v1/office/submissions?limit=0", testOfficeToken, 422, problem.TypeInvalidField, "limit"},
		{"GET", "/v1/services/123", "", 422, problem.TypeInvalidField, ""},
		{"GET", "/v1/resolve?leikaKey=123&place=01067", "", 422, problem.TypeInvalidField, ""},
		{"FOO", "/nope", "", 404, problem.TypeNotFound, ""},
		{"PROPFIND", "/v1/whatever", "", 404, problem.TypeNotFound, ""},
		{"FOO", "/v1/office/nope", testOfficeToken, 404, problem.TypeNotFound, ""},
		{"FOO", "/healthz", "", 405, problem.TypeMethodNotAllowed, ""}, // the path exists
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != tc.status {
			body, _ := io.ReadAll(res.Body)
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, res.StatusCode, body, tc.status)
			res.Body.Close()
			continue
		}
		var p map[string]any
		if ct := res.Header.Get("Content-Type"); ct != problem.ContentType || json.NewDecoder(res.Body).Decode(&p) != nil {
			t.Errorf("%s %s: %d %s is no problem document", tc.method, tc.path, res.StatusCode, ct)
		}
		res.Body.Close()
		if p["type"] != tc.typ || tc.field != "" && p["field"] != tc.field {
			t.Errorf("%s %s: %v field %v, want %s field %q", tc.method, tc.path, p["type"], p["field"], tc.typ, tc.field)
		}
	}
	// A well-formed query still works (the control).
	if res, body := get(t, srv, "/v1/places?q=Dresden&limit=3"); res.StatusCode != 200 {
		t.Fatalf("a readable query: %d %s", res.StatusCode, body)
	}
}

// TestReadyzUnavailableSaysWhenToComeBack: a 503 unavailable comes with
// Retry-After, also from /readyz (docs/problems.md; load balancers read it).
func TestReadyzUnavailableSaysWhenToComeBack(t *testing.T) {
	s := New(Options{Clients: NewClients(testAdminToken, nil, nil), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready: func() (Readiness, error) { return Readiness{}, fmt.Errorf("draining") }})
	srv := httptest.NewServer(s)
	defer srv.Close()
	res, _ := get(t, srv, "/readyz")
	if res.StatusCode != 503 || res.Header.Get("Retry-After") != RetryAfterSeconds {
		t.Fatalf("/readyz while not ready: %d Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
}

// TestInvalidQueryIsOneProblem: routing.ErrInvalidQuery is the same status and type
// whether intake meets it (a package's place) or the directory API does (a query
// parameter): both go through ProblemFor.
func TestInvalidQueryIsOneProblem(t *testing.T) {
	srv, _ := newServer(t)
	res, err := http.Get(srv.URL + "/v1/resolve?leikaKey=99050012104000&place=1234")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	dir := decodeProblem(t, res)
	// What intake returns for a package whose place the directory cannot read.
	d, _ := routing.Builtin()
	_, ierr := d.Resolve("99050012104000", "1234")
	if ierr == nil {
		t.Fatal("the directory accepts place 1234")
	}
	in := ProblemFor(fmt.Errorf("intake: %w", ierr))
	if dir.Status != in.Status || dir.Type != in.Type {
		t.Fatalf("directory %d %s, intake %d %s", dir.Status, dir.Type, in.Status, in.Type)
	}
	if in.Status != 422 || in.Type != problem.TypeInvalidField {
		t.Fatalf("ErrInvalidQuery maps to %d %s, want 422 invalid-field", in.Status, in.Type)
	}
}

// TestProblemTypesDocumented: docs/problems.md has a row for every type, with the
// status the type is used with.
func TestProblemTypesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/problems.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z/-]+)` \\| ([0-9]{3})[^|]*\\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented[problem.Base+m[1]] = m[2]
	}
	for _, typ := range problem.Types() {
		if _, ok := documented[typ]; !ok {
			t.Errorf("%s is not in docs/problems.md", typ)
			continue
		}
		if want := problem.New(0, typ, "").Title; want == "" {
			t.Errorf("%s has no title", typ)
		}
	}
	for typ := range documented {
		if problem.New(0, typ, "").Title == "" {
			t.Errorf("docs/problems.md lists %s, which api/problem does not define", typ)
		}
	}
}

// TestOneBackupAtATime: while a backup runs, another is refused with a 409 problem
// (each takes a copy of the database on disk); afterwards the next one runs.
func TestOneBackupAtATime(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	reg := prometheus.NewRegistry()
	s := New(Options{Registry: reg, Clients: NewClients(testAdminToken, nil, nil), Backup: func(ctx context.Context, w io.Writer) error {
		started <- struct{}{}
		<-release
		_, err := w.Write([]byte("archive"))
		return err
	}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	get := func() *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/admin/backup", nil)
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := make(chan *http.Response)
	go func() { first <- get() }()
	<-started
	second := get()
	second.Body.Close()
	if second.StatusCode != http.StatusConflict || second.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("a second backup meanwhile: %d %s, want a 409 problem", second.StatusCode, second.Header.Get("Content-Type"))
	}
	close(release)
	resp := <-first
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "archive" {
		t.Fatalf("the first backup: %d %q", resp.StatusCode, body)
	}
	third := get()
	third.Body.Close()
	if third.StatusCode != http.StatusOK {
		t.Fatalf("a backup after the first ended: %d", third.StatusCode)
	}
	// The last whole backup is a metric, for an alert when the nightly one is missing.
	value := func(g prometheus.Gauge) float64 {
		var m dto.Metric
		_ = g.Write(&m)
		return m.GetGauge().GetValue()
	}
	if at := value(s.lastBackup); at < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Fatalf("last backup at %v", at)
	}
	if n := value(s.lastBackupBytes); n != float64(len("archive")) {
		t.Fatalf("last backup size %v", n)
	}
}

// TestReceiptLengthDeclared: the 201's receipt is sent with its length, not
// chunked, whatever its size (net/http declares bodies under 2 KB by itself; a
// receipt with a certificate chain is larger), so a portal reads it into one
// buffer (internal/httpbody).
func TestReceiptLengthDeclared(t *testing.T) {
	receipt := bytes.Repeat([]byte("<Eingangsbestaetigung/>"), 300)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeIntake(w, &broker.Received{Submission: &submission.Submission{ID: "x"}, Receipt: receipt, Created: true})
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || !bytes.Equal(body, receipt) || resp.ContentLength != int64(len(receipt)) || len(resp.TransferEncoding) != 0 {
		t.Fatalf("%d, Content-Length %d for %d bytes, Transfer-Encoding %v", resp.StatusCode, resp.ContentLength, len(receipt), resp.TransferEncoding)
	}
}

// TestBodyBudgetBoundsPackagesInMemory: a package is read whole before anyone
// can tell who sent it, so the bytes held at once are bounded (limits.body_memory).
// While one upload holds the budget (its body still coming), another is refused
// with 503 and Retry-After after the wait, reading nothing — it was read into
// memory however many came at once until 2026-12-04.
func TestBodyBudgetBoundsPackagesInMemory(t *testing.T) {
	budget := httpbody.NewBudget(1<<20, 50*time.Millisecond)
	s := New(Options{MaxBodyBytes: 1 << 20, BodyBudget: budget})
	base := loopback(t, s)

	pr, pw := io.Pipe()
	defer pw.Close()
	first, _ := http.NewRequest(http.MethodPost, base+"/v1/submissions", pr)
	first.ContentLength = 1 << 20
	first.Header.Set("Content-Type", "application/xml")
	go func() {
		if res, err := http.DefaultClient.Do(first); err == nil {
			res.Body.Close()
		}
	}()
	// All but its last byte: in memory now, the whole budget (a body takes what
	// has arrived, not what it declares: TestTricklingBodiesDoNotHoldTheBudget).
	if _, err := pw.Write(append([]byte("<"), make([]byte, 1<<20-2)...)); err != nil {
		t.Fatal(err)
	}
	// Until the first request holds the budget, asked of the budget itself: a
	// probe package that got through before reached a server without an intake
	// pipeline (a recovered panic in the log).
	for i := 0; ; i++ {
		l, err := budget.Acquire(context.Background(), 1)
		if errors.Is(err, httpbody.ErrBusy) {
			break
		}
		if err != nil || i == 200 {
			t.Fatalf("the first request never held the budget: %v", err)
		}
		l.Release()
		time.Sleep(5 * time.Millisecond)
	}
	res, err := http.Post(base+"/v1/submissions", "application/xml", strings.NewReader("<Antragspaket/>"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("a second package while the first holds the budget: %d", res.StatusCode)
	}
	if p := decodeProblem(t, res); p.Type != problem.TypeUnavailable || !strings.Contains(p.Detail, "limits.body_memory") {
		t.Fatalf("%+v", p)
	}
}

// TestTricklingBodiesDoNotHoldTheBudget: a body took its declared length from
// the budget before its first byte, so a few clients declaring the limit and then
// sending a byte now and then held all of it for the server's read timeout, and
// every portal's package got a 503 (an endpoint anyone may post to). A body now
// holds what has arrived, plus one step.
func TestTricklingBodiesDoNotHoldTheBudget(t *testing.T) {
	budget := httpbody.NewBudget(1<<20, 50*time.Millisecond)
	s := New(Options{MaxBodyBytes: 1 << 20, BodyBudget: budget})
	base := loopback(t, s)
	for range 4 { // four times the budget, declared
		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.Close() })
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/submissions", pr)
		req.ContentLength = 1 << 20
		req.Header.Set("Content-Type", "application/xml")
		go func() {
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
			}
		}()
		if _, err := pw.Write([]byte("<")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // all four are reading
	l, err := budget.Acquire(context.Background(), 512<<10)
	if err != nil {
		t.Fatalf("half the budget while four bodies of one byte are read: %v", err)
	}
	l.Release()
}

// TestPanicLogNamesTheRoute: a handler's panic is logged with the route
// pattern, as every other request log is, not with the path: a path names the
// submission, office or reply it was about.
func TestPanicLogNamesTheRoute(t *testing.T) {
	var logs bytes.Buffer
	s := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Clients: NewClients("", nil, map[string][]string{"dd": {testOfficeToken}})})
	base := loopback(t, s) // no broker: the office's handler panics
	// A case's id as the gateway gives them (a UUID): another is refused before the handler (pathIDs).
	const secret = "01a24db7-5ec2-7e7c-a5e0-5ec2e7ca5e00"
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/office/submissions/"+secret, nil)
	req.Header.Set("Authorization", "Bearer "+testOfficeToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want the 500 of a panic", res.StatusCode)
	}
	out := logs.String()
	if !strings.Contains(out, "panic in handler") || strings.Contains(out, secret) || !strings.Contains(out, "/v1/office/submissions/{id}") {
		t.Fatalf("panic log:\n%s", out)
	}
}

// TestPanicIsCountedAsServerError: the recoverer ran outside the request counter,
// so a handler's panic answered 500 and counted nothing: AmtsboteServerErrors
// could not see handlers that crash.
func TestPanicIsCountedAsServerError(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Options{Registry: reg, Clients: NewClients(testAdminToken, nil, nil), Logger: slog.New(slog.DiscardHandler),
		Mounts: map[string]http.Handler{"/kaputt": http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("a bug") })}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	if res, _ := get(t, srv, "/kaputt/x"); res.StatusCode != 500 {
		t.Fatalf("a panicking handler: %d", res.StatusCode)
	}
	for _, s := range testenv.Samples(t, reg, "amtsbote_http_requests_total") {
		if s.Labels["status"] == "500" && s.Value == 1 {
			return
		}
	}
	t.Fatal("the panic's 500 is not in amtsbote_http_requests_total")
}

// TestBusyRefusalsLogOnceAMinute: every 503 of an overloaded or stopping gateway
// was an ERROR line, hundreds a second under load, exactly when the log is read;
// the overload is the answer, not a fault. A store that cannot take writes is a
// fault: a WARN, also at most once a minute while it lasts. A real 500 stays an
// ERROR each time.
func TestBusyRefusalsLogOnceAMinute(t *testing.T) {
	var logs bytes.Buffer
	s := New(Options{Clients: NewClients(testAdminToken, nil, nil), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	fail := func(err error) {
		req := httptest.NewRequest(http.MethodPost, "/v1/submissions", nil)
		s.fail(httptest.NewRecorder(), req, err)
	}
	for range 5 {
		fail(intake.ErrBusy)
		fail(broker.ErrUnavailable)
		fail(errors.New("a bug"))
	}
	out := logs.String()
	if n := strings.Count(out, "level=ERROR"); n != 5 {
		t.Errorf("%d ERROR lines for 5 real failures:\n%s", n, out)
	}
	if n := strings.Count(out, "busy or stopping"); n != 1 {
		t.Errorf("%d lines for 5 busy refusals, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "level=WARN"); n != 1 {
		t.Errorf("%d WARN lines for 5 refusals of a failing store, want 1:\n%s", n, out)
	}
}
