package submission

import (
	"errors"
	"strings"
	"testing"
)

// TestFileNameKeepsTheLastElement: a reply's file name as the gateway keeps
// it is the name's last path element, whichever system wrote the path (the
// faces' own tests send these names through XTA, the REST API and the web
// mailbox).
func TestFileNameKeepsTheLastElement(t *testing.T) {
	for _, tc := range []struct{ sent, want string }{
		{"Bescheid.pdf", "Bescheid.pdf"},
		{`C:\Users\max.mustermann\Desktop\Bescheid.pdf`, "Bescheid.pdf"},
		{"/home/x/a.pdf", "a.pdf"},
		{`..\a.pdf`, "a.pdf"},
		{"../../etc/passwd", "passwd"},
		{`\\fileserver\bauamt$\Anlage 1.pdf`, "Anlage 1.pdf"},
		{`Anlage\`, "Anlage"},
		{"  Bescheid Müller.pdf ", "Bescheid Müller.pdf"},
		{"..", ""},
		{"/", ""},
		{"", ""},
		{"C:a.pdf", "a.pdf"},
		{`D:..\a.pdf`, "a.pdf"},
		{"C:", ""},
		{strings.Repeat("ä", 126) + ".pd", strings.Repeat("ä", 126) + ".pd"}, // 255 bytes, the most
		{"x/" + strings.Repeat("a", MaxFileNameBytes), strings.Repeat("a", MaxFileNameBytes)},
	} {
		got, err := FileName(tc.sent)
		if err != nil || got != tc.want {
			t.Errorf("FileName(%q) = %q, %v; want %q", tc.sent, got, err, tc.want)
		}
	}
}

// TestFileNameRefusesWhatNoFileIsNamed: control and format characters (a
// line break, a tab, a bidi override that turns "fdp.exe" around), bytes
// that are not UTF-8, and names no file system holds are errors, not names
// to clean up: the face tells the sender.
func TestFileNameRefusesWhatNoFileIsNamed(t *testing.T) {
	for _, sent := range []string{
		"a.pdf\r\nContent-Type: text/html",
		"a\tb.pdf",
		"a\u0085b.pdf",
		"Bescheid\u202efdp.exe",
		"a\u200bb.pdf",
		"a\xffb.pdf",
		strings.Repeat("a", MaxFileNameBytes+1),
		strings.Repeat("ä", 128) + ".pdf",
	} {
		if got, err := FileName(sent); !errors.Is(err, ErrFileName) {
			t.Errorf("FileName(%q) = %q, %v; want ErrFileName", sent, got, err)
		}
	}
}
