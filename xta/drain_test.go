package xta

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/internal/testenv"
)

// TestEarlyFaultsReachClientsThatSendFirst: a fault given before the body was
// read to its end — an unknown path, a caller without an account, a content
// type that is no SOAP, a message over the size limit — was answered and the
// connection closed with the rest of the body unread. The kernel reset it under
// a client still sending (a SOAP stack that sends the whole request before it
// reads the answer), which saw "broken pipe" or "connection reset" instead of
// the fault, and took a refusal for a network failure to retry. Now the rest is
// read and discarded (at most MaxMessageBytes more, within one window) before
// the connection closes. The bodies are larger than the loopback connection's
// buffers hold, so that an unread rest cannot hide in them.
func TestEarlyFaultsReachClientsThatSendFirst(t *testing.T) {
	const limit = 16 << 20
	const big = 12 << 20 // below the limit: a refusal drains at most that much
	e := startEnv(t, func(o *Options) { o.MaxMessageBytes = limit })
	head := string(soapUIRequest(xtaA, "", `<ns:ContentContainer><ns:Message id="m">`))
	for _, tc := range []struct {
		name, client, path, ctype string
		size                      int
		status                    int
		want                      string
	}{
		{"unknown path", "office-a", "/xta/nowhere", actionCT(portSender, "sendMessage"), big, http.StatusBadRequest, string(NotImplemented)},
		{"no certificate", "", PathSender, actionCT(portSender, "sendMessage"), big, http.StatusBadRequest, string(PermissionDenied)},
		{"unregistered certificate", "stranger", PathSender, actionCT(portSender, "sendMessage"), big, http.StatusBadRequest, string(PermissionDenied)},
		{"not SOAP", "office-a", PathSender, "application/json", big, http.StatusBadRequest, "unsupported Content-Type"},
		{"over the size limit", "office-a", PathSender, actionCT(portSender, "sendMessage"), limit + limit/2, http.StatusBadRequest, "exceeds the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", e.srv.Listener.Addr().String(), e.pki.clientTLS(tc.client))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
				tc.path, e.srv.Listener.Addr(), tc.ctype, tc.size)
			body := io.MultiReader(strings.NewReader(head), strings.NewReader(strings.Repeat("QUFB", (tc.size-len(head))/4+1)))
			resp, b, err := testenv.SendFirst(conn, req, io.LimitReader(body, int64(tc.size)))
			if err != nil {
				t.Fatalf("a client that sends %d bytes before it reads: %v", tc.size, err)
			}
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Fatalf("HTTP %d, want %d with %q:\n%.800s", resp.StatusCode, tc.status, tc.want, b)
			}
		})
	}
}
