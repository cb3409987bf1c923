package procs

import (
	"runtime"
	"testing"
)

// TestSpareForFlushes: one processor more than CPUs unless GOMAXPROCS is set
// in the environment, and CPUs stays what the runtime chose at start.
func TestSpareForFlushes(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })

	t.Setenv("GOMAXPROCS", "")
	if got := SpareForFlushes(); got != CPUs()+1 || runtime.GOMAXPROCS(0) != CPUs()+1 {
		t.Fatalf("SpareForFlushes() = %d, GOMAXPROCS %d; want %d", got, runtime.GOMAXPROCS(0), CPUs()+1)
	}
	if CPUs() != cpus {
		t.Fatalf("CPUs() = %d after the spare, want the count at start %d", CPUs(), cpus)
	}

	// The operator's choice stands.
	runtime.GOMAXPROCS(1)
	t.Setenv("GOMAXPROCS", "1")
	if got := SpareForFlushes(); got != 1 || runtime.GOMAXPROCS(0) != 1 {
		t.Fatalf("with GOMAXPROCS=1 in the environment: SpareForFlushes() = %d, GOMAXPROCS %d; want 1", got, runtime.GOMAXPROCS(0))
	}
}
