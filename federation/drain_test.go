package federation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"testing"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/internal/testenv"
)

// TestEarlyRefusalsReachPeersThatSendFirst: a refusal given before the body was
// read to its end — an unknown path, a body that is no XML, one declared over
// the limit, the store out of reach, an envelope of an untrusted gateway with
// its attachment still coming — was answered and the connection closed with
// the rest unread. The kernel reset it under a peer still sending (one that
// sends the whole request before it reads the answer), which saw "broken pipe"
// or "connection reset" instead of the problem, and took a refusal for a
// network failure to retry. Now the rest is read and discarded, bounded, before
// the connection closes. The bodies are larger than the loopback connection's
// buffers hold, so that an unread rest cannot hide in them.
func TestEarlyRefusalsReachPeersThatSendFirst(t *testing.T) {
	const big = 12 << 20
	w := newWorld(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	serve := func(h *Receiver) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	plain := serve(&Receiver{Trust: w.trustB, Signer: w.b.Signer, Log: quiet})
	small := serve(&Receiver{Trust: w.trustB, Signer: w.b.Signer, Log: quiet, MaxBytes: 8 << 20})
	down := serve(&Receiver{Trust: w.trustB, Signer: w.b.Signer, Log: quiet,
		StoreDown: func() error { return errors.New("the NATS cluster does not answer for the store") }})

	untr := w.fromUntrusted(t)
	doc, err := untr.Sign(w.pki.Untrusted.Signer)
	if err != nil {
		t.Fatal(err)
	}
	var related bytes.Buffer
	mw := multipart.NewWriter(&related)
	pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {ContentType}})
	_, _ = pw.Write(doc)
	pw, _ = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/pdf"}, "Content-Id": {"<a@x>"}})
	_, _ = pw.Write(bytes.Repeat([]byte("%PDF"), big/4))
	_ = mw.Close()
	filler := func(n int) []byte { return append([]byte("<x>"), bytes.Repeat([]byte("y"), n-3)...) }

	for _, tc := range []struct {
		name, addr, path, ctype string
		body                    []byte
		status                  int
		typ                     string
	}{
		{"unknown path", plain, PathPrefix + "/nirgends", ContentType, filler(big), http.StatusNotFound, problem.TypeNotFound},
		{"not XML", plain, PathForward, "application/octet-stream", filler(big), http.StatusUnsupportedMediaType, problem.TypeUnsupportedMedia},
		{"declared over the limit", small, PathForward, ContentType, filler(big), http.StatusRequestEntityTooLarge, problem.TypeTooLarge},
		{"store out of reach", down, PathForward, ContentType, filler(big), http.StatusServiceUnavailable, problem.TypeUnavailable},
		{"untrusted envelope with an attachment", plain, PathForward, "multipart/related; boundary=" + mw.Boundary(), related.Bytes(), http.StatusForbidden, TypeUntrustedPeer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", tc.path, tc.addr, tc.ctype, len(tc.body))
			resp, b, err := testenv.SendFirst(conn, head, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatalf("a peer that sends %d bytes before it reads: %v", len(tc.body), err)
			}
			var p problem.Problem
			if err := json.Unmarshal(b, &p); err != nil || resp.StatusCode != tc.status || p.Type != tc.typ {
				t.Fatalf("HTTP %d %+v (%v), want %d %s: %.300s", resp.StatusCode, p, err, tc.status, tc.typ, b)
			}
		})
	}
}
