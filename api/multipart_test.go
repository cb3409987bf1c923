package api

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestUploadProgressRule: a multipart upload may outlive the server's read timeout,
// but not by trickling: a body slower than the minimum rate loses its connection
// after about one window, while the client would go on for much longer.
func TestUploadProgressRule(t *testing.T) {
	s := New(Options{UploadWindow: 400 * time.Millisecond, UploadMinRate: 64 << 10})
	base := loopback(t, s)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const boundary = "b0undary"
	fmt.Fprintf(conn, "POST /v1/submissions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/related; boundary=%s\r\nTransfer-Encoding: chunked\r\n\r\n", boundary)
	head := "--" + boundary + "\r\nContent-Type: application/xml\r\n\r\n<Antragspaket"
	fmt.Fprintf(conn, "%x\r\n%s\r\n", len(head), head)
	// One byte every 100 ms: 10 B/s against a minimum of 64 KiB/s, for up to 10 s.
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = bufio.NewReader(conn).ReadString(0) // until the server closes
		closed <- time.Since(start)
	}()
	var took time.Duration
loop:
	for i := 0; i < 100; i++ {
		select {
		case took = <-closed:
			break loop
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := fmt.Fprintf(conn, "1\r\n \r\n"); err != nil {
			took = time.Since(start)
			break
		}
	}
	if took == 0 {
		t.Fatal("a trickling upload kept its connection for 10 s")
	}
	if took > 3*time.Second {
		t.Fatalf("the connection closed after %s, want about one window (400 ms)", took)
	}
}
