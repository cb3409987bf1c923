package mailbox

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestWrongPasswordCostsAsMuchAsAnUnknownName: the check for an unknown name runs
// against a hash at the highest of the users' costs; a wrong password of a user
// whose hash is cheaper (the development login at cost 4 beside hashes at 12)
// was answered some 200 times faster, which named the users that exist (an
// audit, 2026-12-05). Such a failure also runs the dearest check; counted here
// by the calls for that hash, not timed.
func TestWrongPasswordCostsAsMuchAsAnUnknownName(t *testing.T) {
	cheap, _ := bcrypt.GenerateFromPassword([]byte("anna-passwort"), bcrypt.MinCost)
	dear, _ := bcrypt.GenerateFromPassword([]byte("bernd-passwort"), bcrypt.MinCost+2)
	m, err := New(Options{Desk: newMemDesk(), DataDir: t.TempDir(), Users: []User{
		{Name: "anna", Office: "amt-a", PasswordHash: string(cheap)},
		{Name: "bernd", Office: "amt-a", PasswordHash: string(dear)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	dearest, calls := m.unknownHash, 0
	m.unknownHash = func() []byte { calls++; return dearest() }
	for _, c := range []struct {
		name, pw string
		ok       bool
		dearest  int
	}{
		{"anna", "falsch", false, 1},         // cheaper hash: the dearest check too
		{"bernd", "falsch", false, 0},        // already the dearest
		{"niemand", "falsch", false, 1},      // unknown: the dearest check
		{"anna", "anna-passwort", true, 0},   // right: nothing more
		{"bernd", "bernd-passwort", true, 0}, // right: nothing more
	} {
		calls = 0
		if _, ok := m.checkPassword(c.name, c.pw); ok != c.ok || calls != c.dearest {
			t.Errorf("%s/%s: ok %v, %d checks of the dearest hash; want %v, %d", c.name, c.pw, ok, calls, c.ok, c.dearest)
		}
	}
}

// TestLimiterForgetsOnceAMinute: old entries were looked for on every attempt,
// so an anonymous guesser's tens of thousands of names and addresses (two
// entries per guess) made every clerk's login scan them all under the lock. They
// are forgotten once a minute now, and still forgotten.
func TestLimiterForgetsOnceAMinute(t *testing.T) {
	l := newLimiter()
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for i := range 1000 {
		l.attempt(t0, limit{key: fmt.Sprintf("u:guess-%d", i), free: freeFailuresUser}, limit{key: fmt.Sprintf("a:10.0.%d.%d", i/256, i%256), free: freeFailuresAddr})
	}
	if len(l.m) != 2000 {
		t.Fatalf("%d entries after 1000 guesses, want 2000", len(l.m))
	}
	// A sweep just before the guesses are an hour old keeps them.
	swept := t0.Add(failureMemory - 10*time.Second)
	l.attempt(swept, limit{key: "u:anna", free: freeFailuresUser})
	if len(l.m) != 2001 {
		t.Fatalf("%d entries, want 2001", len(l.m))
	}
	// Twenty seconds later they are past the memory, and the attempt does not
	// look for them: the next sweep is a minute after the last.
	l.attempt(swept.Add(20*time.Second), limit{key: "u:bert", free: freeFailuresUser})
	if len(l.m) != 2002 {
		t.Fatalf("an attempt within a minute of the last sweep swept: %d entries, want 2002", len(l.m))
	}
	l.attempt(swept.Add(limiterSweep+time.Second), limit{key: "u:carl", free: freeFailuresUser})
	if len(l.m) != 3 {
		t.Fatalf("%d entries after the next sweep, want the 3 of the last minutes", len(l.m))
	}
}
