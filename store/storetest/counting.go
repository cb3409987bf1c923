package storetest

import (
	"sync/atomic"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// ReadCounting is a store that counts the records read from it (Get): tests
// that a path reads no more than it must (a backlog, a closed tracker).
type ReadCounting struct {
	store.Store
	Reads atomic.Int64
}

// Get counts the read and passes it on.
func (c *ReadCounting) Get(id string) (*submission.Submission, error) {
	c.Reads.Add(1)
	return c.Store.Get(id)
}
