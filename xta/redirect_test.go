package xta

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/adaptertest"
)

// TestPushFollowsNoRedirect: an office's deliverMessage endpoint that answers with
// a redirect has not taken the message. The adapter's HTTP client followed 301,
// 302 and 303 as a GET without body — with the gateway's client certificate, to
// whatever address the Location named — and took a 2xx SOAP answer there for the
// reader's confirmation: the package counted as delivered, with a
// Zustellbestaetigung, though no deliverMessage ever reached the reader. A
// redirect is now the endpoint's answer (HTTP 3xx: permanent, the office's next
// channel), as for the webhook channel, and nothing else is called.
func TestPushFollowsNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
		io.WriteString(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:x="`+NS+`"><s:Body><x:ContentContainerReply/></s:Body></s:Envelope>`)
	}))
	other.TLS = newPKI(t).serverTLS()
	other.StartTLS()
	defer other.Close()
	a, err := NewAdapter(AdapterOptions{AuthorID: gatewayID, TLS: newPKI(t).clientTLS("gateway"), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		office := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			http.Redirect(w, r, other.URL+"/elsewhere", status)
		}))
		cfg := newPKI(t).serverTLS()
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		office.TLS = cfg
		office.StartTLS()
		tg := adapters.Target{Endpoint: office.URL + "/services/XTACore/Reader", Params: map[string]string{ParamMode: ModePush}}
		c, err := a.Deliver(t.Context(), adaptertest.NewDelivery(tg))
		office.Close()
		if err == nil || !adapters.IsPermanent(err) {
			t.Errorf("HTTP %d from the endpoint: %+v, %v; want a permanent failure", status, c, err)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirects' target was called %d times", n)
	}
}
