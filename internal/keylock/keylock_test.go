package keylock

import (
	"sync"
	"testing"
)

// TestLockSerialisesOneKeyAndForgetsIt: the holders of one key run one after
// another (a counter without its own lock counts every increment), and once
// all unlocked no key is kept.
func TestLockSerialisesOneKeyAndForgetsIt(t *testing.T) {
	var k Locks
	var a, b int
	n := map[string]*int{"a": &a, "b": &b} // only read at once
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []string{"a", "b"}[i%2]
			unlock := k.Lock(key)
			defer unlock()
			*n[key]++ // the race detector sees two holders of one key at once
		}()
	}
	wg.Wait()
	if a != 32 || b != 32 {
		t.Errorf("counted %d and %d, want 32 each", a, b)
	}
	if h := k.held(); h != 0 {
		t.Errorf("%d keys kept after every unlock", h)
	}
}
