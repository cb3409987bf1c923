package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// SendFirst sends a request whole on conn — head (the request line and headers,
// up to and with the blank line) and then body — before it reads a byte, as
// clients do that read the answer only once they have sent the request (Java's
// HttpURLConnection, many SOAP stacks), and then reads the answer and its body.
// A server that answers early and closes the connection with the rest of the
// body unread resets it under such a client: the write or the read fails, and
// SendFirst returns that error. conn gets a deadline of a minute, so that a
// server that neither reads nor answers fails the test instead of hanging it.
func SendFirst(conn net.Conn, head string, body io.Reader) (*http.Response, []byte, error) {
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(conn, head); err != nil {
		return nil, nil, fmt.Errorf("writing the head: %w", err)
	}
	if n, err := io.Copy(conn, body); err != nil {
		return nil, nil, fmt.Errorf("writing the body (%d bytes written): %w", n, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the answer: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, b, fmt.Errorf("reading the answer's body: %w", err)
	}
	return resp, b, nil
}
