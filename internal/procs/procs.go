// Package procs owns how many Go processors (GOMAXPROCS) a gateway runs on, and
// says how many CPUs it has for what counts work per CPU (verification slots,
// intake's yield, the bench).
//
// A gateway runs on one processor more than it has CPUs. Why: every commit of
// the store ends in fdatasync, a blocking system call of 0.3–2 ms (longer on a
// busy disk), and a goroutine in a system call keeps its processor. The
// runtime's monitor (sysmon) gives such a processor to another thread only once
// it has seen the same call on two of its ticks, and it ticks every 20 µs only
// while it keeps finding something to do: after a millisecond without, its
// sleep doubles up to 10 ms. Commits come every few milliseconds, so the
// monitor is mostly asleep when one starts, and the flush keeps its processor
// to the end. On two CPUs one CPU then idled through every commit while
// goroutines waited to run: an execution trace of `amtsbote bench -n 5000`
// had one processor running and others runnable 23 % of the time, and the
// machine was 10 % in iowait (docs/performance.md, "A processor held by the
// flush"). With a spare processor the other two keep both CPUs busy; while
// nothing blocks, the kernel shares two CPUs among three threads.
//
// GOMAXPROCS set in the environment is the operator's choice and is kept as it
// is (GOMAXPROCS=2 on two CPUs turns the spare off). Setting the count stops
// the runtime from following a container's CPU limit when it changes while the
// process runs (Go 1.25 and later); a gateway is restarted for that.
package procs

import (
	"os"
	"runtime"
)

// cpus is GOMAXPROCS as the runtime chose it at start: the CPUs this process
// may use (a container's CPU limit counts) or the environment's GOMAXPROCS.
var cpus = runtime.GOMAXPROCS(0)

// CPUs is the number of CPUs the process may use: what work that is counted
// per CPU is sized by, not GOMAXPROCS, which may be one more (SpareForFlushes).
func CPUs() int { return cpus }

// SpareForFlushes sets GOMAXPROCS to one more than CPUs, unless GOMAXPROCS is
// set in the environment, and returns what it is now. For a process that runs
// a gateway; call it before the gateway starts.
func SpareForFlushes() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	runtime.GOMAXPROCS(cpus + 1)
	return cpus + 1
}
