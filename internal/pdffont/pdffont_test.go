package pdffont

import (
	"bytes"
	"compress/zlib"
	"io"
	"strings"
	"testing"
)

// The subset font program is itself a TrueType font: it parses, keeps the glyph
// numbering, and holds the outlines of the glyphs used and of their components
// (DejaVu builds "ş" from "s" and the cedilla; a missing component draws nothing).
func TestSubsetKeepsUsedGlyphsAndComponents(t *testing.T) {
	for _, load := range []func() (*Font, error){Regular, Bold} {
		f, err := load()
		if err != nil {
			t.Fatal(err)
		}
		s := f.NewSubset()
		text := "Şükrü Yıldız, Łódź – Dvořák"
		s.Encode(text)
		var gids []uint16
		for g := range s.uni {
			gids = append(gids, g)
		}
		prog, err := f.program(gids)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := Parse("subset", prog)
		if err != nil {
			t.Fatalf("%s: the subset does not parse: %v", f.name, err)
		}
		composites := 0
		for _, r := range text {
			g := int(f.GlyphID(r))
			if g == 0 {
				t.Fatalf("%s has no glyph for %q", f.name, r)
			}
			if !samePadded(sub.glyf(g), unhinted(f.glyf(g))) || sub.advance[g] != f.advance[g] {
				t.Errorf("%s: glyph %d (%q) differs in the subset", f.name, g, r)
			}
			comps, _ := components(f.glyf(g))
			for _, c := range comps {
				composites++
				if len(sub.glyf(c)) == 0 || !samePadded(sub.glyf(c), unhinted(f.glyf(c))) {
					t.Errorf("%s: component %d of %q missing from the subset", f.name, c, r)
				}
			}
		}
		if composites == 0 {
			t.Errorf("%s: no composite glyph among the test letters; the test proves nothing", f.name)
		}
		if g := int(f.GlyphID('X')); len(sub.glyf(g)) != 0 {
			t.Errorf("%s: an unused glyph is in the subset", f.name)
		}
		if len(prog) > len(f.tables["glyf"])/10 {
			t.Errorf("%s: subset of %d bytes", f.name, len(prog))
		}
		if checksum(prog) != 0xB1B0AFBA {
			t.Errorf("%s: the file checksum is %#x", f.name, checksum(prog))
		}
	}
}

// The ToUnicode map gives back each character a glyph was used for, and U+FFFD for
// the empty box of a character the font lacks.
func TestToUnicode(t *testing.T) {
	f, err := Regular()
	if err != nil {
		t.Fatal(err)
	}
	s := f.NewSubset()
	if got := s.Encode("ı東"); len(got) != 10 || !strings.HasSuffix(got, "0000>") || strings.HasPrefix(got, "<0000") {
		t.Errorf("Encode = %s", got)
	}
	objs, err := s.Objects(4)
	if err != nil {
		t.Fatal(err)
	}
	cm := inflate(t, objs[4])
	for _, want := range []string{"<0000> <FFFD>", "> <0131>"} {
		if !strings.Contains(cm, want) {
			t.Errorf("ToUnicode lacks %q:\n%s", want, cm)
		}
	}
	if !strings.Contains(objs[0], "/Encoding /Identity-H /DescendantFonts [5 0 R] /ToUnicode 8 0 R") {
		t.Errorf("Type0 font: %s", objs[0])
	}
}

// samePadded: the subset pads each glyph to four bytes.
func samePadded(got, want []byte) bool {
	return bytes.HasPrefix(got, want) && len(got)-len(want) < 4 && len(bytes.Trim(got[len(want):], "\x00")) == 0
}

func inflate(t *testing.T, obj string) string {
	t.Helper()
	i := strings.Index(obj, "stream\n")
	r, err := zlib.NewReader(strings.NewReader(obj[i+len("stream\n"):]))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil && err != io.ErrUnexpectedEOF {
		t.Fatal(err)
	}
	return string(b)
}
