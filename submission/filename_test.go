package submission

import (
	"errors"
	"strings"
	"testing"
)

// TestFileNameKeepsTheLastElement: a reply's file name as the gateway keeps
// it is the name's last path element, whichever system wrote the path (XTA's
// own test, TestReplyFileNamesLoseTheirPaths, sends more such names through
// the face).
func TestFileNameKeepsTheLastElement(t *testing.T) {
	for _, tc := range []struct{ sent, want string }{
		{"Bescheid.pdf", "Bescheid.pdf"},
		{`E:\Akten\2026\B-17 Widerspruch.docx`, "B-17 Widerspruch.docx"},
		{"/srv/fv/out/../bescheid.xml", "bescheid.xml"},
		{`Ordner/`, "Ordner"},
		{"  Bescheid Müller.pdf ", "Bescheid Müller.pdf"},
		{".", ""},
		{`\`, ""},
		{"", ""},
		{"z:Bescheid.pdf", "Bescheid.pdf"},
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
		"a\uffffb.pdf",
		"a\xffb.pdf",
		strings.Repeat("a", MaxFileNameBytes+1),
		strings.Repeat("ä", 128) + ".pdf",
	} {
		if got, err := FileName(sent); !errors.Is(err, ErrFileName) {
			t.Errorf("FileName(%q) = %q, %v; want ErrFileName", sent, got, err)
		}
	}
}
