package api_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/internal/gatewaytest"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/wire"
)

// TestUploadAnsweredEarlyReachesAWholeSender: a multipart upload answered before
// its body's end — a repeat (its parts unread) or a refusal — reaches a client
// that sends the whole body before it reads the answer, as curl or Java's
// HttpURLConnection do. The gateway closed such a connection with the rest of the
// body unread, the kernel reset it, and the client's send failed ("connection
// reset by peer") instead of reading the 200 or the refusal. Go's client reads the
// answer while it sends and never saw it.
func TestUploadAnsweredEarlyReachesAWholeSender(t *testing.T) {
	g, pki := gatewaytest.Start(t, func(c *config.Config) {
		c.Portals = map[string]config.PortalClient{"amt24": {Token: portalToken}}
		c.Offices = map[string]config.OfficeClient{gateway.DemoOfficeID: {Token: officeToken}}
		// A refusal's rest is read up to max_body_bytes: room for the one below.
		c.Limits.MaxBodyBytes = 64 << 20
	})
	d, _ := routing.Builtin()
	svc, err := d.FindService("Gewerbe anmelden")
	if err != nil {
		t.Fatal(err)
	}
	client := &portal.Client{BaseURL: g.URL(), Signer: pki.Portal.Signer, Token: portalToken}
	// Far more than the socket buffers of both ends hold, so that the rest of the
	// body is still unsent when the answer comes.
	content := make([]byte, 48<<20)
	_, _ = rand.Read(content)
	p := paket.ExampleWith(svc.Key, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	a := paket.NewAnlage("scan", "scan.bin", "application/octet-stream", content)
	a.Inhalt, a.Referenz = nil, "cid:scan@portal.example"
	p.Anlagen = append(p.Anlagen, a)
	raw, err := client.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	ctype, body := relatedBody(t, raw, "<scan@portal.example>", content)
	resp, err := http.Post(g.URL()+wire.SubmissionsPath, ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("first upload: %d", resp.StatusCode)
	}

	addr := strings.TrimPrefix(g.URL(), "http://")
	t.Run("repeat", func(t *testing.T) {
		resp, answer := sendWholeThenRead(t, addr, ctype, body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get(wire.HeaderDuplicate) != "true" {
			t.Fatalf("repeat: %d %v %.200s", resp.StatusCode, resp.Header, answer)
		}
	})
	t.Run("refusal", func(t *testing.T) {
		// Another signed byte: the signature does not verify (403), found before
		// any attachment is read.
		forged := bytes.Replace(raw, []byte(p.Kopf.NachrichtID), []byte(paket.NewMessageID()), 1)
		ctype, body := relatedBody(t, forged, "<scan@portal.example>", content)
		resp, answer := sendWholeThenRead(t, addr, ctype, body)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("refusal: %d %.200s", resp.StatusCode, answer)
		}
		// Declared: a client that reads while it sends knows the answer whole
		// before the connection closes, and curl stops sending only then.
		if resp.ContentLength != int64(len(answer)) {
			t.Errorf("the refusal is %d bytes, declared %d (Transfer-Encoding %v)", len(answer), resp.ContentLength, resp.TransferEncoding)
		}
	})
}

// relatedBody is a multipart/related body of a signed root and one attachment part.
func relatedBody(t *testing.T, root []byte, cid string, content []byte) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/xml"}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = pw.Write(root)
	if pw, err = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/octet-stream"}, "Content-Id": {cid}}); err != nil {
		t.Fatal(err)
	}
	_, _ = pw.Write(content)
	_ = mw.Close()
	return `multipart/related; type="application/xml"; boundary=` + mw.Boundary(), buf.Bytes()
}

// sendWholeThenRead posts body over a new connection as a client does that writes
// the whole request before it reads the answer, and returns the answer.
func sendWholeThenRead(t *testing.T, addr, ctype string, body []byte) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A small send buffer: the gateway's receive buffer is all that could take
	// the rest of the body without the gateway reading it.
	_ = conn.(*net.TCPConn).SetWriteBuffer(64 << 10)
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute)) // a hang fails, not blocks, the test
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		wire.SubmissionsPath, addr, ctype, len(body))
	if _, err := io.Copy(conn, io.MultiReader(strings.NewReader(head), bytes.NewReader(body))); err != nil {
		t.Fatalf("sending the body: %v (the gateway gave up the connection before the body's end)", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	return resp, answer
}
