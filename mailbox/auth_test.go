package mailbox

import (
	"testing"

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
