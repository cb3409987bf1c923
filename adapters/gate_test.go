package adapters

import (
	"context"
	"errors"
	"testing"
)

// TestGateBegin: the start every Deliver shares lets a call in on an open gate,
// refuses a done context under the channel's name without holding the gate,
// and refuses everything after Close.
func TestGateBegin(t *testing.T) {
	var g Gate
	if err := g.Begin(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	g.Leave()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Begin(ctx, "x"); !errors.Is(err, context.Canceled) || err.Error() != "x: context canceled" {
		t.Fatalf("done context: %v", err)
	}
	g.Close() // returns only if the refused call left the gate
	if err := g.Begin(context.Background(), "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
