package loadtest

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
)

// TestPresignedOffHeap: the packages move out of the Go heap unchanged; once a
// batch of them (here: two) is sent, the pages the batch covers alone go back
// (its neighbours still read intact, as does a batch half sent), and a failed
// request keeps the mapping, since net/http may still read its body.
func TestPresignedOffHeap(t *testing.T) {
	var docs, want [][]byte
	for i := range 7 {
		d := bytes.Repeat([]byte{byte('a' + i)}, 3*pageSize()+123*i+7)
		docs, want = append(docs, d), append(want, bytes.Clone(d))
	}
	p, err := newPresignedBatch(docs, 2)
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
	if !bytes.Equal(p.docs[2], want[2]) {
		t.Fatal("doc 2 went back before the rest of its batch (doc 3) was sent")
	}
	p.sent(3, nil)
	for _, i := range []int{1, 4} {
		if !bytes.Equal(p.docs[i], want[i]) {
			t.Fatalf("sending docs 2 and 3 damaged their neighbour %d", i)
		}
	}
	for _, i := range []int{2, 3} {
		if p.mem != nil && bytes.Count(p.docs[i], []byte{0}) < pageSize() {
			t.Errorf("the pages of doc %d were not given back with its batch", i)
		}
	}
	p.sent(6, nil) // the last batch, of one
	if p.mem != nil && bytes.Count(p.docs[6], []byte{0}) < pageSize() {
		t.Error("the pages of the last, short batch were not given back")
	}
	p.sent(4, errors.New("timeout"))
	p.sent(5, nil)
	if !bytes.Equal(p.docs[5], want[5]) {
		t.Error("a batch with a failed request gave its pages back")
	}
	p.close()
	if runtime.GOOS == "linux" && p.mem == nil {
		t.Error("after a failed request the mapping must stay (the transport may still read it)")
	}
	if !bytes.Equal(p.docs[4], want[4]) {
		t.Error("a failed request's package must stay readable")
	}
}
