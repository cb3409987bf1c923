package main

import (
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

// TestDemoQueuedLineSaysADeferral: the demos printed "queued for delivery by
// webhook" for every queued event, and a queued event that moves a waiting
// package's next attempt to the end of its office endpoint's pause (Defer)
// showed without what it says: the reader saw a package queued again and not
// when it would go. The first queued event (no detail) keeps its line.
func TestDemoQueuedLineSaysADeferral(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	s, evs := submission.New(submission.Params{ID: "s1", OfficeID: "o1",
		Targets: []submission.Target{{Channel: "webhook"}}}, t0)
	first := evs[len(evs)-1]
	if first.Type != submission.EventQueued {
		t.Fatalf("last event of New: %+v", first)
	}
	if got := queuedLine(first); got != "queued for delivery by webhook" {
		t.Fatalf("first queued event: %q", got)
	}
	deferred, err := s.Defer(t0, s.Generation, s.TotalAttempts,
		submission.Reason{Public: "the office's endpoint is failing", NextIn: 50500 * time.Millisecond}, t0.Add(time.Minute))
	if err != nil || len(deferred) != 1 || deferred[0].Type != submission.EventQueued {
		t.Fatalf("Defer: %+v, %v", deferred, err)
	}
	want := "delivery by webhook put off: the office's endpoint is failing; next attempt in 50.5s at the earliest (attempts to the office's endpoint are paused)"
	if got := queuedLine(deferred[0]); got != want {
		t.Fatalf("deferral:\n got %q\nwant %q", got, want)
	}
}
