//go:build !unix

// Package cputime reads the CPU time this process has used. Intake's yield
// compares it with the wall clock to tell whether the CPUs are full; the bench
// reports it per package.
package cputime

import "time"

// Process is not available here (ok false).
func Process() (used time.Duration, ok bool) { return 0, false }
