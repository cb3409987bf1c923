//go:build unix

package cputime

import (
	"testing"
	"time"
)

// TestProcessCountsWork: where getrusage exists the reading must work, and
// spinning for a while shows up as CPU time. It spins until 10 ms of CPU are
// counted, for up to 5 s: on a machine busy with other tests 50 ms of spinning
// by the clock got 8 ms of a CPU, and a fixed spell failed the test for the
// machine's load, not for the reading.
func TestProcessCountsWork(t *testing.T) {
	before, ok := Process()
	if !ok {
		t.Fatal("no CPU time from getrusage")
	}
	x := 0
	var got time.Duration
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		for range 100_000 {
			x++
		}
		after, _ := Process()
		if got = after - before; got >= 10*time.Millisecond {
			return
		}
	}
	t.Fatalf("5 s of spinning (%d rounds) counted %v of CPU", x, got)
}
