package xta

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
)

// TestGetMessageCutOffStaysNew: getMessage recorded the office system's fetch
// before it wrote the answer; one that never arrived whole (a time-out, a broken
// connection during a large message) took the package out of the office's "new"
// polls for good, and a Fachverfahren polling with the schema's default never
// saw the application again (an audit, 2026-12-05). The fetch is recorded once
// the whole answer is written.
func TestGetMessageCutOffStaysNew(t *testing.T) {
	e := startEnv(t, nil)
	rec := &answeredStatus{h: e.xta, done: make(chan struct{})}
	srv := httptest.NewUnstartedServer(rec)
	srv.TLS = e.pki.serverTLS()
	srv.StartTLS()
	defer srv.Close()
	sub := e.submit(t, officeA, pkgBytes(24<<20))
	req, err := http.NewRequest(http.MethodPost, srv.URL+PathRecipient, strings.NewReader(string(soapUIRequest(xtaA, "", fetchBody(MessageID("amtsbote", sub.ID))))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", actionCT(portRecipient, "getMessage"))
	resp, err := e.client("office-a").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // the Fachverfahren's connection breaks
	select {
	case <-rec.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not finish the request")
	}
	if s, _ := e.b.Submission(sub.ID); s.FetchedAt != nil {
		t.Fatalf("a getMessage cut off after 64 KiB of 24 MiB was recorded as the fetch at %v", s.FetchedAt)
	}
	// The control: a whole getMessage is the fetch.
	mustOK(t, "getMessage", post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "getMessage"),
		soapUIRequest(xtaA, "", fetchBody(MessageID("amtsbote", sub.ID)))))
	if s, _ := e.b.Submission(sub.ID); s.FetchedAt == nil {
		t.Fatal("a whole getMessage was not recorded as the fetch: the check above proves nothing")
	}
}

// goneDesk answers Waiting only once the request's context has ended: the
// Fachverfahren gave up while getMessage was being prepared.
type goneDesk struct {
	broker.OfficeDesk
	entered chan struct{}
}

func (d goneDesk) Waiting(ctx context.Context, office string) ([]broker.WaitingEntry, error) {
	close(d.entered)
	<-ctx.Done()
	return d.OfficeDesk.Waiting(context.WithoutCancel(ctx), office)
}

// TestGetMessageToACallerGoneIsNoFetch: a small answer is "written" into buffers
// whether or not anyone reads it; a Fachverfahren that gave up (its time-out
// closed the connection) had its fetch recorded all the same, and the message
// left the office's "new" polls (a review, 2026-12-05). The request's context
// says the caller went away: no fetch is recorded.
func TestGetMessageToACallerGoneIsNoFetch(t *testing.T) {
	entered := make(chan struct{})
	e := startEnv(t, func(o *Options) { o.Desk = goneDesk{OfficeDesk: o.Desk, entered: entered} })
	rec := &answeredStatus{h: e.xta, done: make(chan struct{})}
	srv := httptest.NewUnstartedServer(rec)
	srv.TLS = e.pki.serverTLS()
	srv.StartTLS()
	defer srv.Close()
	sub := e.submit(t, officeA, pkgBytes(300))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-entered; cancel() }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+PathRecipient, strings.NewReader(string(soapUIRequest(xtaA, "", fetchBody(MessageID("amtsbote", sub.ID))))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", actionCT(portRecipient, "getMessage"))
	if resp, err := e.client("office-a").Do(req); err == nil {
		resp.Body.Close()
	}
	select {
	case <-rec.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not finish the request")
	}
	if s, _ := e.b.Submission(sub.ID); s.FetchedAt != nil {
		t.Fatalf("a getMessage whose caller had gone was recorded as the fetch at %v", s.FetchedAt)
	}
}
