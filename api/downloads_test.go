package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/internal/gatewaytest"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/wire"
)

// TestLongDownloadsOutliveWriteTimeout: the package an office pulls (up to
// max_body_bytes, 32 MiB) and a reply a portal reads (up to 64 MiB) may take
// longer than http.write_timeout over a slow link, as an attachment or an XTA
// message may. They were sent under the server's fixed write deadline, so a
// download slower than write_timeout was cut off every time — and, having no
// Range, began again from its first byte. Here the write timeout is 300 ms and
// the client reads for about a second, well above the minimum rate.
func TestLongDownloadsOutliveWriteTimeout(t *testing.T) {
	g, pki := gatewaytest.Start(t, func(c *config.Config) {
		c.Portals = map[string]config.PortalClient{"amt24": {Token: portalToken}}
		c.Offices = map[string]config.OfficeClient{gateway.DemoOfficeID: {Token: officeToken}}
		c.HTTP.WriteTimeout = 300 * time.Millisecond
	})
	d, _ := routing.Builtin()
	svc, err := d.FindService("Gewerbe anmelden")
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 12<<20)
	_, _ = rand.Read(big)
	p := paket.ExampleWith(svc.Key, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	p.Anlagen = []paket.Anlage{paket.NewAnlage("anlage-1", "scan.bin", "application/octet-stream", big)}
	raw, err := (&portal.Client{Signer: pki.Portal.Signer}).Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	a, err := g.Pipeline.Submit(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID

	// A client with a small receive buffer that reads 256 KiB every 20 ms:
	// 12.5 MiB/s, far above the minimum rate, but longer than the write timeout.
	slow := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(32 << 10)
		}
		return c, err
	}}}
	fetch := func(path, token string) []byte {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, g.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := slow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, res.StatusCode)
		}
		var got bytes.Buffer
		for {
			n, err := io.CopyN(&got, res.Body, 256<<10)
			if err == io.EOF && n < 256<<10 {
				break
			}
			if err != nil {
				t.Fatalf("GET %s: cut off after %d of %s bytes: %v", path, got.Len(), res.Header.Get("Content-Length"), err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return got.Bytes()
	}
	if got := fetch(wire.OfficePackagePath(id), officeToken); !bytes.Equal(got, raw) {
		t.Errorf("the package: %d bytes, want %d", len(got), len(raw))
	}
	// The office has the package now and answers with a reply as large.
	rep, err := g.Broker.Reply(context.Background(), a.Submission.OfficeID, id, broker.ReplyIn{
		Kind: "Bescheid", ContentType: "application/pdf", Content: big, Actor: "test", Channel: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fetch(wire.ReplyPath(id, rep.ID), portalToken); !bytes.Equal(got, big) {
		t.Errorf("the reply: %d bytes, want %d", len(got), len(big))
	}
}
