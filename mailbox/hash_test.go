package mailbox

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestHashGeneratedPassword: a generated password is hashed at bcrypt's lowest
// cost and still checks; anything too short to be 80 random bits is refused, so a
// person's password cannot take this path by mistake.
func TestHashGeneratedPassword(t *testing.T) {
	const pw = "0123456789abcdef0123"
	h, err := HashGeneratedPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := bcrypt.Cost([]byte(h)); err != nil || c != bcrypt.MinCost {
		t.Errorf("cost %d, %v", c, err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(h), []byte(pw)); err != nil {
		t.Errorf("the hash does not check: %v", err)
	}
	if _, err := HashGeneratedPassword("pruefer-passwort"); err == nil {
		t.Error("a 16-character password was hashed as a generated one")
	}
}
