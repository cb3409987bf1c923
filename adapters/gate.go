package adapters

import (
	"context"
	"fmt"
	"sync"
)

// Gate is the part of the Adapter contract every adapter shares: after Close a
// Deliver fails with ErrClosed, and Close returns only when the calls that got in
// have finished. The zero value is open.
type Gate struct {
	mu     sync.RWMutex
	closed bool
	inside sync.WaitGroup
}

// Enter lets a call in, or reports false after Close. A true must be followed by
// Leave.
func (g *Gate) Enter() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return false
	}
	g.inside.Add(1)
	return true
}

// Begin is how every Deliver starts: after Close it fails with ErrClosed, with
// a context that is done already with the context's error under the channel's
// name (no attempt is made). A nil error must be followed by Leave.
func (g *Gate) Begin(ctx context.Context, channel string) error {
	if !g.Enter() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		g.Leave()
		return fmt.Errorf("%s: %w", channel, err)
	}
	return nil
}

// Leave ends a call that Enter let in.
func (g *Gate) Leave() { g.inside.Done() }

// Closed reports whether Close was called (for loops that should stop).
func (g *Gate) Closed() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.closed
}

// Close shuts the gate and waits for the calls inside. It may be called again.
func (g *Gate) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.inside.Wait()
}
