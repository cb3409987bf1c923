// Package keylock is a mutex per key, for a check and a store that must be one
// step for requests that name the same thing (a reply's key to one case) while
// requests that name other things go on at once.
package keylock

import "sync"

// Locks holds a mutex per key only while somebody holds or waits for it: a map
// of them all would grow with every key ever locked. The zero Locks is ready
// for use; it must not be copied after first use.
type Locks struct {
	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	sync.Mutex
	n int // holders and waiters
}

// Lock takes the mutex of key, waiting for its holder, and returns its unlock.
func (k *Locks) Lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*entry{}
	}
	e := k.m[key]
	if e == nil {
		e = &entry{}
		k.m[key] = e
	}
	e.n++
	k.mu.Unlock()
	e.Lock()
	return func() {
		e.Unlock()
		k.mu.Lock()
		if e.n--; e.n == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// held is how many keys have a holder or a waiter (for the tests).
func (k *Locks) held() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}
