package cputime

import (
	"runtime"
	"testing"
	"time"
)

// TestProcessCountsWork: spinning for a while shows up as CPU time.
func TestProcessCountsWork(t *testing.T) {
	before, ok := Process()
	if !ok {
		if runtime.GOOS == "linux" {
			t.Fatal("no CPU time on linux")
		}
		t.Skip("CPU time not available on " + runtime.GOOS)
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
