package formview

import (
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// FuzzRead: Read never panics, and whatever it returns stays within the bounds and
// renders as a PDF.
func FuzzRead(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "pakete", "*.xml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	f.Add([]byte(`<?xml version="1.0"?><Antragspaket xmlns="urn:amtsbote:antragspaket:1" ID="p" Version="1"/>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Read(b)
		if err != nil {
			return
		}
		if n := len(v.Applicant) + len(v.Form); n > MaxFields {
			t.Fatalf("%d fields", n)
		}
		for _, fs := range [][]Field{v.Applicant, v.Form} {
			for _, fl := range fs {
				if utf8.RuneCountInString(fl.Value) > MaxValueRunes+1 || utf8.RuneCountInString(fl.Label) > MaxLabelRunes+1 ||
					fl.Depth < 0 || fl.Depth > MaxDepth || !utf8.ValidString(fl.Value) || !utf8.ValidString(fl.Label) {
					t.Fatalf("field out of bounds: %+v", fl)
				}
			}
		}
		if _, err := PDF(v); err != nil {
			t.Fatal(err)
		}
	})
}
