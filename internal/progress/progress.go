// Package progress prints a status line once a second while long command-line work
// runs (a bench, a backup), so a person at the terminal sees it is alive and how far
// it got.
package progress

import (
	"io"
	"sync"
	"time"
)

// EverySecond writes line() to w once a second until stop is called (w nil: never).
// stop waits until no line is being written.
func EverySecond(w io.Writer, line func() string) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_, _ = io.WriteString(w, line())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
