package loadtest

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
)

// TestPresignedOffHeap: the packages move out of the Go heap unchanged; sending
// one gives back only pages it covers alone (its neighbours still read intact),
// and a failed request keeps the mapping, since net/http may still read its body.
func TestPresignedOffHeap(t *testing.T) {
	var docs, want [][]byte
	for i := range 5 {
		d := bytes.Repeat([]byte{byte('a' + i)}, 3*pageSize()+123*i+7)
		docs, want = append(docs, d), append(want, bytes.Clone(d))
	}
	p, err := newPresigned(docs)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	for i := range want {
		if !bytes.Equal(p.docs[i], want[i]) {
			t.Fatalf("doc %d changed on the way off the heap", i)
		}
		if docs[i] != nil {
			t.Fatalf("doc %d is still referenced on the heap", i)
		}
	}
	if runtime.GOOS == "linux" && p.mem == nil {
		t.Fatal("on Linux the packages should be in a mapping of their own")
	}
	p.sent(2, nil)
	for _, i := range []int{1, 3} {
		if !bytes.Equal(p.docs[i], want[i]) {
			t.Fatalf("sending doc 2 damaged its neighbour %d", i)
		}
	}
	if p.mem != nil && bytes.Count(p.docs[2], []byte{0}) < pageSize() {
		t.Error("the pages doc 2 covers alone were not given back")
	}
	p.sent(4, errors.New("timeout"))
	p.close()
	if runtime.GOOS == "linux" && p.mem == nil {
		t.Error("after a failed request the mapping must stay (the transport may still read it)")
	}
	if !bytes.Equal(p.docs[4], want[4]) {
		t.Error("a failed request's package must stay readable")
	}
}
