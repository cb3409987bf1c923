package loadtest

import (
	"runtime"
	"sync/atomic"
)

// presigned holds the bench's signed packages outside the Go heap where the
// platform allows (offheap_linux.go), else on it.
//
// Why: the packages are the bench's, not the gateway's, but on the heap they
// raised the garbage collector's goal. A closed loop of 5,000 holds 70 MB of
// them, an open-loop ladder several hundred; with them the gateway under test
// collected far less often than a real gateway, whose own live heap is tens of
// MB, and the bench reported less CPU per package than a gateway serving the same
// load spends (docs/performance.md, "The bench's packages off the heap").
type presigned struct {
	docs [][]byte
	mem  []byte // the mapping; nil: docs are on the heap
	offs []int  // where each doc starts in mem
	// kept is set when a request failed: net/http may still read a failed
	// request's body in its own goroutine, so the mapping is never unmapped then.
	kept atomic.Bool
}

// newPresigned moves docs off the heap; docs itself is emptied.
func newPresigned(docs [][]byte) (*presigned, error) {
	size := 0
	for _, d := range docs {
		size += len(d)
	}
	p := &presigned{docs: docs}
	mem, err := mapAnon(size)
	if err != nil || mem == nil {
		return p, err
	}
	p.mem, p.offs, p.docs = mem, make([]int, len(docs)), make([][]byte, len(docs))
	off := 0
	for i, d := range docs {
		p.docs[i] = mem[off : off+len(d) : off+len(d)]
		copy(p.docs[i], d)
		docs[i], p.offs[i] = nil, off
		off += len(d)
	}
	runtime.GC() // the heap copies are garbage now: the run starts without them
	return p, nil
}

// sent says that the request with doc i is over. After a success its memory goes
// back (the open loop's memory under load is the gateway's, not the bench's).
func (p *presigned) sent(i int, err error) {
	if err != nil {
		p.kept.Store(true)
		return
	}
	if p.mem == nil {
		p.docs[i] = nil
		return
	}
	// Only the pages doc i covers alone: its neighbours may not be sent yet.
	page := pageSize()
	from := (p.offs[i] + page - 1) / page * page
	to := (p.offs[i] + len(p.docs[i])) / page * page
	if to > from {
		dontNeed(p.mem[from:to])
	}
}

// close unmaps the packages, unless a request failed (see kept).
func (p *presigned) close() {
	if p.mem != nil && !p.kept.Load() {
		unmap(p.mem)
		p.mem = nil
	}
}
