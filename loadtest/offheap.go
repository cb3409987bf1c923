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
	// left counts the docs of each batch of `batch` consecutive docs not yet sent
	// successfully; a batch's pages go back when it reaches zero.
	batch int
	left  []atomic.Int32
}

// releaseBatch docs (about 900 KB of the bench's packages) go back to the
// system at once. One madvise per package cost the gateway under test 1.3 % of
// its CPU in a closed loop (the bench's own work, counted as the gateway's).
const releaseBatch = 64

// newPresigned moves docs off the heap; docs itself is emptied.
func newPresigned(docs [][]byte) (*presigned, error) { return newPresignedBatch(docs, releaseBatch) }

func newPresignedBatch(docs [][]byte, batch int) (*presigned, error) {
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
	p.batch, p.left = batch, make([]atomic.Int32, (len(docs)+batch-1)/batch)
	for b := range p.left {
		p.left[b].Store(int32(min(batch, len(docs)-b*batch)))
	}
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
// back (the open loop's memory under load is the gateway's, not the bench's), once
// its whole batch is sent: the pages the batch covers alone, since neighbouring
// batches may not be sent yet. A failed doc holds its batch's pages for good.
func (p *presigned) sent(i int, err error) {
	if err != nil {
		p.kept.Store(true)
		return
	}
	if p.mem == nil {
		p.docs[i] = nil
		return
	}
	b := i / p.batch
	if p.left[b].Add(-1) != 0 {
		return
	}
	last := min((b+1)*p.batch, len(p.docs)) - 1
	page := pageSize()
	from := (p.offs[b*p.batch] + page - 1) / page * page
	to := (p.offs[last] + len(p.docs[last])) / page * page
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
