package api

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
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

// TestUploadRefusalDrainIsBounded: after a refusal the rest of an upload is read so
// that the client can read the answer, but a refusal must not hold a connection
// for what an upload may take (4 GiB at the minimum rate: days). The gateway stops
// reading after MaxBodyBytes, or one UploadWindow, whichever comes first, though
// the client keeps the progress rule and would send far more.
func TestUploadRefusalDrainIsBounded(t *testing.T) {
	t.Run("bytes", func(t *testing.T) {
		s := New(Options{MaxBodyBytes: 64 << 10, UploadWindow: time.Minute, UploadMinRate: 1})
		const total = 256 << 20
		sent, answer := refusedUpload(t, loopback(t, s), 64<<10, 0, total)
		if sent >= total {
			t.Fatalf("the gateway read all %d bytes after its refusal, want at most about 64 KiB", sent)
		}
		if answer != http.StatusUnsupportedMediaType {
			t.Fatalf("answer %d, want 415", answer)
		}
	})
	t.Run("time", func(t *testing.T) {
		s := New(Options{MaxBodyBytes: 1 << 30, UploadWindow: 300 * time.Millisecond, UploadMinRate: 1 << 10})
		// 4 KiB every 20 ms, far above the minimum rate, for up to 1000 chunks (20 s).
		const total = 1000 * 4 << 10
		sent, answer := refusedUpload(t, loopback(t, s), 4<<10, 20*time.Millisecond, total)
		if sent >= total {
			t.Fatalf("the gateway read the refused upload's %d bytes, want it to stop after one window (300 ms)", sent)
		}
		if answer != http.StatusUnsupportedMediaType {
			t.Fatalf("answer %d, want 415", answer)
		}
	})
}

// refusedUpload starts a multipart upload whose root part is refused (415, not
// XML) and goes on sending chunks of size, every pause, until total bytes are sent
// or the gateway closes the connection, reading the answer meanwhile. It returns
// the bytes sent after the root part's header and the answer's status.
func refusedUpload(t *testing.T, base string, size int, pause time.Duration, total int) (int, int) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const boundary = "b0undary"
	fmt.Fprintf(conn, "POST /v1/submissions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/related; boundary=%s\r\nTransfer-Encoding: chunked\r\n\r\n", boundary)
	head := "--" + boundary + "\r\nContent-Type: text/plain\r\n\r\n"
	fmt.Fprintf(conn, "%x\r\n%s\r\n", len(head), head)
	status := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			status <- 0
			return
		}
		status <- resp.StatusCode
		_, _ = io.Copy(io.Discard, resp.Body)
	}()
	chunk := fmt.Sprintf("%x\r\n%s\r\n", size, strings.Repeat("x", size))
	sent := 0
	for sent < total {
		if _, err := io.WriteString(conn, chunk); err != nil {
			break
		}
		sent += size
		time.Sleep(pause)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	return sent, <-status
}
