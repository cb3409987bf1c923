package webhook

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
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/adaptertest"
	"github.com/amtsbote/amtsbote/internal/freeport"
	"github.com/amtsbote/amtsbote/wire"
)

const testBase = "https://amtsbote.example.de"

// office is a receiving Fachverfahren on loopback: it verifies every request with
// ReadVerified (so the conformance suite also proves our signatures) and answers in
// its mode.
type office struct {
	mode    adaptertest.Mode
	secret  string
	srv     *httptest.Server
	release chan struct{}

	mu  sync.Mutex
	got []adaptertest.Received
	raw []capturedRequest
}

type capturedRequest struct {
	header http.Header
	body   []byte
}

func newOffice(t testing.TB, mode adaptertest.Mode) *office {
	return newOfficeWithSecret(t, mode, NewSecret())
}

func newOfficeWithSecret(t testing.TB, mode adaptertest.Mode, secret string) *office {
	o := &office{mode: mode, secret: secret, release: make(chan struct{})}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serve))
	// Cleanups run last-in first-out: release hanging handlers, then close the server
	// (which waits for them).
	t.Cleanup(o.srv.Close)
	t.Cleanup(func() { close(o.release) })
	return o
}

func (o *office) Target() adapters.Target {
	return adapters.Target{Channel: Channel, Endpoint: o.srv.URL + "/fachverfahren/eingang?mandant=dd", Secret: o.secret}
}

func (o *office) Received() []adaptertest.Received {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]adaptertest.Received(nil), o.got...)
}

func (o *office) requests() []capturedRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]capturedRequest(nil), o.raw...)
}

func (o *office) serve(w http.ResponseWriter, r *http.Request) {
	n, body, err := ReadVerified(r, o.secret, time.Now(), 0)
	rec := adaptertest.Received{DeliveryID: n.DeliveryID, SubmissionID: n.SubmissionID, PackageSHA256: n.Package.SHA256,
		AttachmentSHA256: map[string]string{}}
	for _, a := range n.Attachments {
		rec.AttachmentSHA256[a.ID] = a.SHA256
	}
	switch {
	case err != nil:
		rec.Problem = err.Error()
	case r.Method != http.MethodPost:
		rec.Problem = "method " + r.Method
	case r.Header.Get(HeaderWebhookID) != n.DeliveryID:
		rec.Problem = "webhook-id differs from deliveryId"
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"):
		rec.Problem = "content type " + r.Header.Get("Content-Type")
	}
	o.mu.Lock()
	o.got = append(o.got, rec)
	o.raw = append(o.raw, capturedRequest{header: r.Header.Clone(), body: body})
	o.mu.Unlock()
	if rec.Problem != "" {
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	switch o.mode {
	case adaptertest.ModeAccept:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"fv-%s"}`, n.SubmissionID)
	case adaptertest.ModeTransient:
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	case adaptertest.ModePermanent:
		http.Error(w, "mandant unknown", http.StatusGone)
	case adaptertest.ModeHang:
		select {
		case <-r.Context().Done():
		case <-o.release:
		}
	}
}

type harness struct{}

func (harness) Features() adaptertest.Features { return adaptertest.Features{} }

func (harness) NewAdapter(t testing.TB, logger *slog.Logger) adapters.Adapter {
	a, err := New(Options{PublicBaseURL: testBase, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (harness) NewReceiver(t testing.TB, mode adaptertest.Mode) adaptertest.Receiver {
	return newOffice(t, mode)
}

func TestConformance(t *testing.T) {
	adaptertest.Run(t, harness{})
}

func newAdapter(t *testing.T, o Options) *Adapter {
	t.Helper()
	if o.PublicBaseURL == "" {
		o.PublicBaseURL = testBase
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func TestStatusClassification(t *testing.T) {
	type want int
	const (
		ok want = iota
		transient
		permanent
	)
	cases := []struct {
		code int
		want want
	}{
		{200, ok}, {201, ok}, {202, ok}, {204, ok},
		{301, permanent}, {302, permanent}, {303, permanent}, {307, permanent}, {308, permanent},
		{400, permanent}, {401, permanent}, {403, permanent}, {404, permanent}, {405, permanent},
		{409, permanent}, {410, permanent}, {413, permanent}, {415, permanent}, {422, permanent},
		{408, transient}, {425, transient}, {429, transient},
		{500, transient}, {501, transient}, {502, transient}, {503, transient}, {504, transient}, {599, transient},
	}
	var redirected atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { redirected.Add(1) }))
	t.Cleanup(elsewhere.Close)
	a := newAdapter(t, Options{})
	for _, c := range cases {
		t.Run(fmt.Sprint(c.code), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if c.code >= 300 && c.code < 400 {
					w.Header().Set("Location", elsewhere.URL+"/x")
				}
				w.WriteHeader(c.code)
				_, _ = io.WriteString(w, "reason for "+fmt.Sprint(c.code))
			}))
			t.Cleanup(srv.Close)
			d := adaptertest.NewDelivery(adapters.Target{Channel: Channel, Endpoint: srv.URL, Secret: NewSecret()})
			conf, err := a.Deliver(t.Context(), d)
			switch c.want {
			case ok:
				if err != nil {
					t.Fatalf("HTTP %d: %v", c.code, err)
				}
				if conf.Receiver != srv.URL {
					t.Errorf("Receiver = %q, want %q", conf.Receiver, srv.URL)
				}
				return
			case transient:
				if err == nil || adapters.IsPermanent(err) {
					t.Fatalf("HTTP %d: err = %v, want transient", c.code, err)
				}
			case permanent:
				if !adapters.IsPermanent(err) {
					t.Fatalf("HTTP %d: err = %v, want permanent", c.code, err)
				}
			}
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != c.code {
				t.Fatalf("err = %v, want a *StatusError with code %d", err, c.code)
			}
			if !strings.Contains(se.Snippet, "reason for") {
				t.Errorf("snippet %q lacks the response body", se.Snippet)
			}
		})
	}
	if n := redirected.Load(); n != 0 {
		t.Errorf("a redirect was followed %d times; a signed notification must never go elsewhere", n)
	}
}

func TestConfigurationErrorsArePermanent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("a misconfigured delivery reached the endpoint")
	}))
	t.Cleanup(srv.Close)
	good := NewSecret()
	cases := []struct {
		name     string
		target   adapters.Target
		sentinel error
	}{
		{"empty endpoint", adapters.Target{Secret: good}, ErrEndpoint},
		{"relative endpoint", adapters.Target{Endpoint: "/callback", Secret: good}, ErrEndpoint},
		{"ftp endpoint", adapters.Target{Endpoint: "ftp://office.example/x", Secret: good}, ErrEndpoint},
		{"unparseable endpoint", adapters.Target{Endpoint: "http://[::1", Secret: good}, ErrEndpoint},
		{"credentials in endpoint", adapters.Target{Endpoint: "https://user:pw@office.example/", Secret: good}, ErrEndpoint},
		{"missing secret", adapters.Target{Endpoint: srv.URL}, ErrInvalidSecret},
		{"no whsec prefix", adapters.Target{Endpoint: srv.URL, Secret: "correct horse battery staple and more"}, ErrInvalidSecret},
		{"not base64", adapters.Target{Endpoint: srv.URL, Secret: "whsec_!!!!not-base64!!!!!!!!!!!!!!!!"}, ErrInvalidSecret},
		{"key too short", adapters.Target{Endpoint: srv.URL, Secret: "whsec_c2hvcnQ="}, ErrInvalidSecret},
		{"second secret bad", adapters.Target{Endpoint: srv.URL, Secret: good + " whsec_c2hvcnQ="}, ErrInvalidSecret},
		{"other channel", adapters.Target{Channel: "xta", Endpoint: srv.URL, Secret: good}, nil},
	}
	a := newAdapter(t, Options{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := a.Deliver(t.Context(), adaptertest.NewDelivery(c.target))
			if !adapters.IsPermanent(err) {
				t.Fatalf("err = %v, want permanent", err)
			}
			if c.sentinel != nil && !errors.Is(err, c.sentinel) {
				t.Errorf("err = %v, want it to wrap %v", err, c.sentinel)
			}
			if c.target.Secret != "" && strings.Contains(err.Error(), c.target.Secret) {
				t.Errorf("error shows the secret: %v", err)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Errorf("error shows endpoint credentials: %v", err)
			}
		})
	}
	d := adaptertest.NewDelivery(adapters.Target{Endpoint: srv.URL, Secret: good})
	d.ID = ""
	if _, err := a.Deliver(t.Context(), d); !adapters.IsPermanent(err) {
		t.Errorf("delivery without id: err = %v, want permanent", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, base := range []string{"", "amtsbote.example", "ftp://x", "https://u:p@x", "https://x/?q=1", "https://x/#f"} {
		if _, err := New(Options{PublicBaseURL: base}); !errors.Is(err, ErrConfig) {
			t.Errorf("PublicBaseURL %q: err = %v, want ErrConfig", base, err)
		}
	}
	if _, err := New(Options{PublicBaseURL: testBase, Timeout: -1}); !errors.Is(err, ErrConfig) {
		t.Errorf("negative timeout: err = %v, want ErrConfig", err)
	}
}

func TestConnectionFailuresAreTransient(t *testing.T) {
	// A port nobody listens on: connection refused.
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}

	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a client hang-up only once the body is consumed.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	// The server answers with garbage instead of HTTP.
	garbage, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = garbage.Close() })
	go func() {
		for {
			c, err := garbage.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
			_ = c.Close()
		}
	}()

	cases := []struct {
		name     string
		endpoint string
		opts     Options
	}{
		{"connection refused", "http://" + addr + "/cb", Options{}},
		{"adapter timeout", hang.URL, Options{Timeout: 50 * time.Millisecond}},
		{"not HTTP", "http://" + garbage.Addr().String() + "/cb", Options{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newAdapter(t, c.opts)
			_, err := a.Deliver(t.Context(), adaptertest.NewDelivery(adapters.Target{Endpoint: c.endpoint, Secret: NewSecret()}))
			if err == nil || adapters.IsPermanent(err) {
				t.Fatalf("err = %v, want transient", err)
			}
		})
	}
}

func TestNotificationContentAndHeaders(t *testing.T) {
	o := newOffice(t, adaptertest.ModeAccept)
	// A frozen clock, near enough to the office's real one to pass its tolerance.
	fixed := time.Now().Truncate(time.Second)
	a := newAdapter(t, Options{Now: func() time.Time { return fixed }})
	d := adaptertest.NewDelivery(o.Target())
	var opened atomic.Int64
	d.Package = adaptertest.CountingOpener(d.Package, &opened)
	for i := range d.Attachments {
		d.Attachments[i].Open = adaptertest.CountingOpener(d.Attachments[i].Open, &opened)
	}
	d.Attempt = 3
	conf, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if want := "fv-" + d.SubmissionID; conf.Reference != want {
		t.Errorf("Reference = %q, want %q", conf.Reference, want)
	}
	if !conf.At.Equal(fixed) {
		t.Errorf("At = %v, want the adapter clock %v", conf.At, fixed)
	}
	if n := opened.Load(); n != 0 {
		t.Fatalf("the webhook adapter opened payload streams %d times; it must only notify", n)
	}
	reqs := o.requests()
	if len(reqs) != 1 {
		t.Fatalf("office saw %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if err := Verify(r.header, r.body, o.secret, fixed, 0); err != nil {
		t.Fatalf("Verify at the signing time: %v", err)
	}
	for name, want := range map[string]string{
		HeaderWebhookID: d.ID, HeaderWebhookTimestamp: fmt.Sprint(fixed.Unix()), HeaderCallbackTime: fmt.Sprint(fixed.Unix()),
		"Content-Type": "application/json",
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	var n Notification
	if err := json.Unmarshal(r.body, &n); err != nil {
		t.Fatal(err)
	}
	sub := testBase + "/v1/office/submissions/" + d.SubmissionID
	want := Notification{
		Type:          TypeNewSubmissions,
		SubmissionIDs: []string{d.SubmissionID},
		Submissions:   []SubmissionForPickup{{DestinationID: wire.OfficeDestinationID(d.OfficeID), SubmissionID: d.SubmissionID, CaseID: d.SubmissionID}},
		DeliveryID:    d.ID, SubmissionID: d.SubmissionID, MessageID: d.MessageID, Sender: d.Sender,
		OfficeID: d.OfficeID, OfficeName: d.OfficeName, LeikaKey: d.LeikaKey, ServiceName: d.ServiceName,
		Attempt: 3, CreatedAt: d.CreatedAt,
		Package: PackageRef{SHA256: d.PackageSHA256, Size: d.PackageSize, Href: sub + "/package"},
		Links:   Links{Submission: sub, Package: sub + "/package", Accept: sub + "/accept", Reject: sub + "/reject", Replies: sub + "/replies"},
	}
	for _, at := range d.Attachments {
		want.Attachments = append(want.Attachments, AttachmentRef{ID: at.ID, MimeType: at.MimeType,
			Size: at.Size, SHA256: at.SHA256, Href: sub + "/attachments/" + at.ID})
	}
	gotJSON, _ := json.MarshalIndent(n, "", " ")
	wantJSON, _ := json.MarshalIndent(want, "", " ")
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("notification:\n%s\nwant:\n%s", gotJSON, wantJSON)
	}
	if bytes.Contains(r.body, []byte("PDF-1.7")) || bytes.Contains(r.body, []byte("<Antragspaket")) {
		t.Error("the notification carries payload bytes")
	}
}

func TestLinksEscapeIDs(t *testing.T) {
	d := adaptertest.NewDelivery(adapters.Target{})
	d.SubmissionID = "a/b?c"
	d.Attachments[0].ID = "x y"
	n := buildNotification(trimBase(testBase+"/"), d)
	if want := testBase + "/v1/office/submissions/a%2Fb%3Fc/package"; n.Links.Package != want {
		t.Errorf("package link %q, want %q", n.Links.Package, want)
	}
	if !strings.HasSuffix(n.Attachments[0].Href, "/attachments/x%20y") {
		t.Errorf("attachment link %q not escaped", n.Attachments[0].Href)
	}
}

func TestConfirmationReference(t *testing.T) {
	cases := []struct {
		name     string
		body     string
		location string
		param    string
		wantRef  string
	}{
		{"json id", `{"id":"AZ-2026-0042"}`, "", "", "AZ-2026-0042"},
		{"json reference wins", `{"id":"1","reference":"AZ-7"}`, "", "", "AZ-7"},
		{"numeric id", `{"id":4711}`, "", "", "4711"},
		{"location", ``, "/vorgaenge/99", "", "/vorgaenge/99"},
		{"not json", `OK`, "", "", ""},
		{"control chars dropped", `{"id":"a\u0000b"}`, "", "", ""},
		{"too long dropped", `{"id":"` + strings.Repeat("x", 300) + `"}`, "", "", ""},
		{"receiver param", `{}`, "", "Fachverfahren Bau DD", ""},
	}
	a := newAdapter(t, Options{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if c.location != "" {
					w.Header().Set("Location", c.location)
				}
				w.WriteHeader(http.StatusCreated)
				_, _ = io.WriteString(w, c.body)
			}))
			t.Cleanup(srv.Close)
			tg := adapters.Target{Endpoint: srv.URL, Secret: NewSecret()}
			if c.param != "" {
				tg.Params = map[string]string{ParamReceiver: c.param}
			}
			conf, err := a.Deliver(t.Context(), adaptertest.NewDelivery(tg))
			if err != nil {
				t.Fatal(err)
			}
			if conf.Reference != c.wantRef {
				t.Errorf("Reference = %q, want %q", conf.Reference, c.wantRef)
			}
			if c.param != "" && conf.Receiver != c.param {
				t.Errorf("Receiver = %q, want %q", conf.Receiver, c.param)
			}
		})
	}
}

func TestHugeResponseIsBounded(t *testing.T) {
	secret := NewSecret()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		// Echo the secret back to prove it is scrubbed, then flood.
		_, _ = io.WriteString(w, "bad things "+secret+" ")
		chunk := bytes.Repeat([]byte("A"), 64<<10)
		for range 160 { // 10 MiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	a := newAdapter(t, Options{})
	_, err := a.Deliver(t.Context(), adaptertest.NewDelivery(adapters.Target{Endpoint: srv.URL, Secret: secret}))
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 500 || adapters.IsPermanent(err) {
		t.Fatalf("err = %v, want transient *StatusError 500", err)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), strings.TrimPrefix(secret, SecretPrefix)) {
		t.Errorf("an echoed secret survived into the error: %v", err)
	}
	if n := len([]rune(se.Snippet)); n > maxSnippetLen+1 {
		t.Errorf("snippet has %d runes, want at most %d", n, maxSnippetLen+1)
	}
}

// TestEchoedQueryIsScrubbed: an office's endpoint may carry an API key in its
// query, which the logs never show. A receiver that echoed its own URL in an
// error page brought the key into the WARN log and the admin's event note.
func TestEchoedQueryIsScrubbed(t *testing.T) {
	const key = "WH+QUERY/SECRET=1"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "bad request to "+r.URL.String()+" (apikey "+r.URL.Query().Get("apikey")+")")
	}))
	t.Cleanup(srv.Close)
	a := newAdapter(t, Options{})
	_, err := a.Deliver(t.Context(), adaptertest.NewDelivery(adapters.Target{Endpoint: srv.URL + "/wh?tenant=a&apikey=" + url.QueryEscape(key), Secret: NewSecret()}))
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 400 {
		t.Fatalf("err = %v, want *StatusError 400", err)
	}
	if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), url.QueryEscape(key)) || !strings.Contains(se.Snippet, "bad request to /wh") {
		t.Errorf("the echoed query: %q", se.Snippet)
	}
}

func TestCallerClientIsNotMutated(t *testing.T) {
	c := &http.Client{}
	a := newAdapter(t, Options{Client: c})
	if c.CheckRedirect != nil {
		t.Error("New changed the caller's client")
	}
	if a.client == c || a.client.CheckRedirect == nil {
		t.Error("the adapter must use its own copy with redirects disabled")
	}
}

func TestDeliverHonoursCallerDeadlineOverTimeout(t *testing.T) {
	o := newOffice(t, adaptertest.ModeHang)
	a := newAdapter(t, Options{Timeout: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := a.Deliver(ctx, adaptertest.NewDelivery(o.Target()))
	if !errors.Is(err, context.DeadlineExceeded) || adapters.IsPermanent(err) {
		t.Fatalf("err = %v, want transient wrapping DeadlineExceeded", err)
	}
}

// TestReceiversWordsStayOutOfTheDebugLog: the adapter's own line for a failed
// attempt (debug level) carried the whole error, the office's answer included,
// which can quote the application. It names the status; the error itself keeps
// the words for the case's events (adapters.LogReason).
func TestReceiversWordsStayOutOfTheDebugLog(t *testing.T) {
	var logs bytes.Buffer
	a := newAdapter(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Antrag von Erika Mustermann, geb. 12.08.1964: Pflichtfeld fehlt", http.StatusUnprocessableEntity)
	}))
	t.Cleanup(srv.Close)
	_, err := a.Deliver(t.Context(), adaptertest.NewDelivery(adapters.Target{Channel: Channel, Endpoint: srv.URL, Secret: NewSecret()}))
	if err == nil || !strings.Contains(err.Error(), "Mustermann") {
		t.Fatalf("the error lacks the office's answer (the check below proves nothing): %v", err)
	}
	if out := logs.String(); strings.Contains(out, "Mustermann") || !strings.Contains(out, "HTTP 422") {
		t.Fatalf("the debug log:\n%s", out)
	}
}
