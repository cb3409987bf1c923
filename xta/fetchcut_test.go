package xta

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
