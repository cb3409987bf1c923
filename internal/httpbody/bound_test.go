package httpbody

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// TestReaderNeverHoldsMoreThanItsLease: every read of a body is covered by the
// lease at the moment it returns, whatever buffer the caller reads into (io.ReadAll
// and append grow theirs to far beyond a step): the budget bounds the bytes held,
// not the bytes announced.
func TestReaderNeverHoldsMoreThanItsLease(t *testing.T) {
	ctx := context.Background()
	b := NewBudget(1<<20, 20*time.Millisecond)
	l, err := b.Acquire(ctx, First(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	r := l.Reader(ctx, bytes.NewReader(make([]byte, 700<<10)), 1<<20)
	buf := make([]byte, 512<<10)
	var read int64
	for {
		n, err := r.Read(buf)
		read += int64(n)
		if u := used(b); read > u {
			t.Fatalf("%d bytes read, the lease holds %d", read, u)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if read != 700<<10 {
		t.Fatalf("read %d bytes", read)
	}
}
