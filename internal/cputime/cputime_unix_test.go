//go:build unix

package cputime

import (
	"testing"
	"time"
)

// TestProcessCountsWork: where getrusage exists the reading must work, and
// spinning for a while shows up as CPU time.
func TestProcessCountsWork(t *testing.T) {
	before, ok := Process()
	if !ok {
		t.Fatal("no CPU time from getrusage")
	}
	x := 0
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
		x++
	}
	after, _ := Process()
	if after-before < 10*time.Millisecond {
		t.Fatalf("50 ms of spinning (%d rounds) counted %v of CPU", x, after-before)
	}
}
