//go:build unix

// Package cputime reads the CPU time this process has used. Intake's yield
// compares it with the wall clock to tell whether the CPUs are full; the bench
// reports it per package.
package cputime

import (
	"syscall"
	"time"
)

// Process is the CPU time (user and system) this process has used so far; ok is
// false where it cannot be read.
func Process() (used time.Duration, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
