package httpbody

import (
	"bytes"
	"errors"
	"testing"
	"testing/iotest"
)

// TestReadAll: a body reads whole whatever its declared length says, and a body
// of the declared length takes one allocation (io.ReadAll takes about a dozen for
// 14 KB, and twice the bytes).
func TestReadAll(t *testing.T) {
	body := bytes.Repeat([]byte("<Antragspaket/>"), 1000)
	for _, declared := range []int64{-1, 0, 1, int64(len(body)) - 1, int64(len(body)), int64(len(body)) + 1, 100 << 20} {
		// iotest.OneByteReader: the worst case for a loop that reads until EOF.
		got, err := ReadAll(iotest.OneByteReader(bytes.NewReader(body)), declared)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("declared %d: %d bytes, %v", declared, len(got), err)
		}
	}
	boom := errors.New("connection reset")
	if _, err := ReadAll(iotest.ErrReader(boom), 10); !errors.Is(err, boom) {
		t.Fatalf("a read error came back as %v", err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := ReadAll(bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 { // the buffer, and the bytes.Reader's escape
		t.Fatalf("%.0f allocations for a body of its declared length", allocs)
	}
}
