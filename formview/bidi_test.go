package formview

import (
	"testing"

	"github.com/amtsbote/amtsbote/paket"
)

// TestBidiControlsAreShownAsSpaces: form data is the citizen's free text, which
// intake does not restrict; a bidi override or isolate in it (U+202A–U+202E,
// U+2066–U+2069) would make the mailbox page and the PDF show characters in
// another order than they were sent (an IBAN whose digits read backwards). The
// view shows each as a space, so a clerk reads what was sent.
func TestBidiControlsAreShownAsSpaces(t *testing.T) {
	p := paket.Example("99000000000000")
	p.Fachdaten = paket.FachdatenJSON("https://formulare.example/x.json",
		[]byte(`{"iban":"DE12\u202e3456","name":"A\u2066B\u2069C","zeile":"x\u202ay\u202cz"}`))
	v, err := Read(p.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	wantField(t, v.Form, "Iban", "DE12 3456", 0)
	wantField(t, v.Form, "Name", "A B C", 0)
	wantField(t, v.Form, "Zeile", "x y z", 0)
}
