package signing_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/signing"
)

// A receipt that names a field twice says two things: one tool reads the first
// PaketSHA256, another the last. ParseReceipt refuses it, as it refuses any
// element it does not understand.
func TestReceiptWithAFieldTwiceIsRefused(t *testing.T) {
	el, err := signing.ReceiptElement(sampleReceipts()[0])
	if err != nil {
		t.Fatal(err)
	}
	el.CreateElement("PaketSHA256").SetText(strings.Repeat("cd", 32))
	if r, err := signing.ParseReceipt(el); !errors.Is(err, signing.ErrMalformed) {
		t.Fatalf("ParseReceipt = %+v, %v; want ErrMalformed", r, err)
	}
}
