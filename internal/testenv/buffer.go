package testenv

import (
	"bytes"
	"sync"
)

// Buffer collects what a process, a server or a logger writes from its own
// goroutines while the test reads it. Past Limit bytes (if set) it drops what
// comes: the start is what explains a failure, and a chatty server must not fill
// the memory.
type Buffer struct {
	Limit int
	mu    sync.Mutex
	b     bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Limit > 0 && s.b.Len() > s.Limit {
		return len(p), nil
	}
	return s.b.Write(p)
}

// String is everything kept so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
