package httpbody

import (
	"io"
	"net/http"
	"time"
)

// An answer given before the request's body has been read to its end — a
// refusal for the caller's certificate, the content type, the declared length,
// an unknown path; a repeat whose parts are not needed — leaves the rest of the
// body on the connection. net/http then closes the connection with those bytes
// unread (after reading at most 256 KiB of them), the kernel resets it, and a
// client that sends its whole body before it reads the answer (Java's
// HttpURLConnection, most SOAP stacks, curl on a slow link) got "connection
// reset" or "broken pipe" on its write instead of the problem or SOAP fault,
// and took a refusal for a network failure to retry. So the faces answer such
// a request in two steps: Refusing before the answer's header, Drain after the
// answer. The REST intake's uploads, the XTA face and the Portalverbund face
// share them.

// Refusing readies w for an answer given before r's body has been read to its
// end; call it before the answer's header is written, and Drain after the
// answer. On HTTP/1 it lets the handler read the body after its answer (full
// duplex: without it net/http would read up to 256 KiB of the body before the
// answer's header, and refuse reads after it), and closes the connection with
// the answer (Connection: close), as the drain may stop before the body's end
// and the next request could then not be told from the rest. HTTP/2 ends the
// stream instead, and forbids the header: there Go's server shut the whole
// connection down while the client still uploaded, and curl got a 400 without
// its body (XTA, 2026-12-05). A request without a body needs nothing.
func Refusing(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 1 || r.ContentLength == 0 {
		return
	}
	// Not every ResponseWriter has it (tests' recorders).
	_ = http.NewResponseController(w).EnableFullDuplex()
	w.Header().Set("Connection", "close")
}

// Drain sends the answer written so far (readied by Refusing) and then reads
// and discards the rest of r's body from body — r.Body, or the reader the
// handler reads it through — at most max bytes and, unless until is zero,
// until then (else body's own rule, such as an upload's progress rule, bounds
// the time). It reports whether the body's end was reached. Cut short (the
// cap, the deadline, the client gone), the connection is closed at once
// rather than after net/http waited for more of the body.
//
// The answer must carry its Content-Length: a client that reads it while it
// still sends, and stops sending then (curl), must be able to tell its end
// before the drain ends. Never unbounded: a refusal costs at most max bytes of
// reading, none of them held, within the deadline.
//
// On HTTP/2 it only flushes the answer: the server then resets the stream (its
// body unread) but not the connection, and its write scheduler would send the
// reset ahead of DATA frames still queued, so that a client got the header
// without the body (curl, 2 of 20 runs under -race).
func Drain(w http.ResponseWriter, r *http.Request, body io.Reader, max int64, until time.Time) bool {
	rc := http.NewResponseController(w)
	if r.ProtoMajor != 1 {
		_ = rc.Flush()
		return false
	}
	if r.ContentLength == 0 {
		return true
	}
	if r.Context().Err() != nil {
		return false // the client is gone: nothing to read, nobody to answer
	}
	if err := rc.Flush(); err != nil {
		return false
	}
	if !until.IsZero() {
		_ = rc.SetReadDeadline(until)
	}
	if _, err := io.CopyN(io.Discard, body, max); err != io.EOF {
		_ = rc.SetReadDeadline(time.Now())
		return false
	}
	return true
}
