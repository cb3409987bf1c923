// Package httpbody reads HTTP bodies whole into one buffer of their declared
// size: the gateway's intake, the federation receiver, the portal client and the
// office-side webhook receiver all read bodies of known length, and io.ReadAll's
// growing from 512 bytes allocated each about three times over. It bounds the
// bytes of request bodies held at once (Budget), and it answers a request
// before its body's end without the client seeing a reset (Refusing, Drain).
package httpbody

import "io"

// presizeMax bounds the buffer ReadAll allocates before a byte has arrived: a
// client may declare the body limit and then send nothing. It is what a request
// takes from a Budget before its first byte (FirstBytes), so the buffer is
// always covered by the lease.
const presizeMax = FirstBytes

// ReadAll is io.ReadAll for an HTTP body of declared length (Content-Length,
// ≤ 0 when not declared): it reads into one buffer of that size (up to presizeMax)
// instead of growing one from 512 bytes, which allocated the body twice more for
// every package (docs/performance.md). A body longer than declared still reads
// whole; limits are the caller's reader's (http.MaxBytesReader, io.LimitReader).
func ReadAll(r io.Reader, declared int64) ([]byte, error) {
	if declared <= 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, min(declared, presizeMax)+1) // +1: room to see EOF without growing
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}
