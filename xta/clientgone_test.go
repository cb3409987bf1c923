package xta

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/internal/clientgone"
	"github.com/amtsbote/amtsbote/internal/testenv"
)

// slowDesk is the real desk whose List waits until the request's context ends,
// as a store busy beyond the client's patience does.
type slowDesk struct {
	broker.OfficeDesk
	entered chan struct{}
}

func (d slowDesk) List(ctx context.Context, officeID string, q broker.ListQuery) (broker.Page, error) {
	close(d.entered)
	<-ctx.Done()
	return broker.Page{}, ctx.Err()
}

// Waiting waits as List does: the status list reads the index with it.
func (d slowDesk) Waiting(ctx context.Context, officeID string) ([]broker.WaitingEntry, error) {
	close(d.entered)
	<-ctx.Done()
	return nil, ctx.Err()
}

// answeredStatus records the status a handler answered with, as the API's metrics
// do; code is read after done is closed.
type answeredStatus struct {
	h    http.Handler
	code int
	done chan struct{}
}

func (s *answeredStatus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &codeWriter{ResponseWriter: w, code: http.StatusOK}
	s.h.ServeHTTP(rec, r)
	s.code = rec.code
	close(s.done)
}

type codeWriter struct {
	http.ResponseWriter
	code int
}

func (c *codeWriter) WriteHeader(code int) { c.code = code; c.ResponseWriter.WriteHeader(code) }

// TestClientGoneIsNoTechnicalProblem: a Fachverfahren that gives up while its
// request waits (its own timeout, a closed connection) is answered as the REST
// face answers a portal that does: status 499 for the metrics, logged at info —
// not a TechnicalProblemException with HTTP 500, which counted as a server
// error and fired the AmtsboteServerErrors alert.
func TestClientGoneIsNoTechnicalProblem(t *testing.T) {
	entered := make(chan struct{})
	var logs testenv.Buffer
	e := startEnv(t, func(o *Options) {
		o.Desk = slowDesk{OfficeDesk: o.Desk, entered: entered}
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	rec := &answeredStatus{h: e.xta, done: make(chan struct{})}
	srv := httptest.NewUnstartedServer(rec)
	srv.TLS = e.pki.serverTLS()
	srv.StartTLS()
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-entered
		cancel() // the request waits in the desk: the Fachverfahren gives up
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+PathRecipient, strings.NewReader(string(soapUIRequest(xtaA, "", statusListBody(false, 10, time.Time{}, time.Time{})))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", actionCT(portRecipient, "getStatusList"))
	// The client's transport closes the connection when its context ends; the
	// server's 499 may still race that close and be read (seen under -race), so a
	// response is allowed here as long as it is that 499 — what must not happen is
	// any other answer, and rec.code below checks what the server wrote.
	resp, err := e.client("office-a").Do(req)
	switch {
	case err == nil:
		resp.Body.Close()
		if resp.StatusCode != clientgone.Status {
			t.Fatalf("request with the client giving up: answered %d, want an error or %d", resp.StatusCode, clientgone.Status)
		}
	case !errors.Is(err, context.Canceled):
		t.Fatalf("request with the client giving up: %v", err)
	}
	select {
	case <-rec.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not finish the request")
	}
	if rec.code != clientgone.Status {
		t.Errorf("a client that went away is answered with %d, want %d", rec.code, clientgone.Status)
	}
	if out := logs.String(); !strings.Contains(out, "client went away") || strings.Contains(out, "level=ERROR") {
		t.Errorf("log:\n%s", out)
	}
}
