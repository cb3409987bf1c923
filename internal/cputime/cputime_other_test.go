//go:build !unix

package cputime

import "testing"

// TestProcessSaysItIsUnavailable: without getrusage the reading says so, and
// the yield then goes by its backlog alone.
func TestProcessSaysItIsUnavailable(t *testing.T) {
	if used, ok := Process(); ok || used != 0 {
		t.Fatalf("Process() = %v, %v; want 0, false", used, ok)
	}
}
