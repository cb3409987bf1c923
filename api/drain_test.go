package api

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/internal/testenv"
)

// TestPlainRefusalsReachClientsThatSendFirst: a plain upload refused before its
// body was read — a Content-Encoding, a content type that is no XML, no room in
// limits.body_memory — was answered and the connection closed with the rest of
// the body unread; the kernel reset it under a portal whose HTTP stack sends the
// whole request before it reads the answer, which saw "broken pipe" or
// "connection reset" instead of the problem. The multipart uploads drained
// already; the plain path now does too (at most MaxBodyBytes, within one
// UploadWindow). The bodies are larger than the loopback connection's buffers
// hold, so that an unread rest cannot hide in them.
func TestPlainRefusalsReachClientsThatSendFirst(t *testing.T) {
	const limit = 16 << 20
	const size = 12 << 20
	budget := httpbody.NewBudget(1<<20, 20*time.Millisecond)
	s := New(Options{MaxBodyBytes: limit, BodyBudget: budget, UploadWindow: time.Minute})
	base := loopback(t, s)
	addr := strings.TrimPrefix(base, "http://")
	for _, tc := range []struct {
		name, headers string
		hold          bool // the body budget is taken
		status        int
		typ           string
	}{
		{"gzip", "Content-Type: application/xml\r\nContent-Encoding: gzip\r\n", false, http.StatusUnsupportedMediaType, problem.TypeUnsupportedMedia},
		{"not XML", "Content-Type: application/json\r\n", false, http.StatusUnsupportedMediaType, problem.TypeUnsupportedMedia},
		{"no room in memory", "Content-Type: application/xml\r\n", true, http.StatusServiceUnavailable, problem.TypeUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.hold {
				lease, err := budget.Acquire(t.Context(), 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				defer lease.Release()
			}
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			head := fmt.Sprintf("POST /v1/submissions HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n", addr, tc.headers, size)
			resp, b, err := testenv.SendFirst(conn, head, io.LimitReader(strings.NewReader(strings.Repeat("<a/>", size/4+1)), size))
			if err != nil {
				t.Fatalf("a portal that sends %d bytes before it reads: %v", size, err)
			}
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.typ) {
				t.Fatalf("HTTP %d, want %d with %s:\n%.500s", resp.StatusCode, tc.status, tc.typ, b)
			}
		})
	}
}
