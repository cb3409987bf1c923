package paket

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// addSeeds feeds every sample package (valid and broken) to the fuzzer.
func addSeeds(f *testing.F) {
	dir := samplesDir(f)
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".xml") {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil {
			f.Add(b)
		}
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(minimalHead + `<Anlagen><Anlage><Inhalt>AAAA</Inhalt></Anlage></Anlagen></Antragspaket>`))
	f.Add([]byte(`<!DOCTYPE r [<!ENTITY a "a">]><r>&a;</r>`))
	f.Add([]byte(full().Marshal()))
}

// smallLimits keep single fuzz iterations fast while still exercising every limit.
var smallLimits = Limits{MaxBytes: 1 << 20, MaxDepth: 32, MaxElements: 5000, MaxAttributes: 16, MaxAttachments: 8, MaxAttachmentBytes: 64 << 10}

// stricterReasons are the rules by which Scan refuses documents that encoding/xml
// (scanStd, and the tree builder) would accept: XML 1.0 and Namespaces in XML rules
// encoding/xml does not implement.
var stricterReasons = map[string]bool{
	reasonPrefix:    true, // encoding/xml leaves undeclared prefixes unresolved
	reasonNSDecl:    true, // xmlns:p="", binding xml/xmlns wrongly
	reasonComment:   true, // "--" inside a comment
	reasonCDATAEnd:  true, // "]]>" in text
	reasonAttrSpace: true, // <a x="1"y="2">
	reasonName:      true, // QName rules (a:b:c, :a, a:)
	reasonDupAttr:   true, // duplicates after namespace expansion are checked by both, but
	// encoding/xml resolves an undeclared prefix to itself
	reasonXMLDecl: true, // encoding/xml does not check the declaration's syntax
	reasonPI:      true, // "<?xml " after a BOM-less start that scanStd saw differently
	reasonRef:     true, // e.g. "&#x0000000041;" (more than 8 digits)
}

func FuzzScan(f *testing.F) {
	addSeeds(f)
	off := Limits{MaxBytes: -1, MaxDepth: -1, MaxElements: -1, MaxAttributes: -1, MaxAttachments: -1, MaxAttachmentBytes: -1}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Scan(b, smallLimits)
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrLimit) {
			t.Fatalf("Scan returned an unclassified error: %v", err)
		}
		if err == nil {
			// What Scan lets through, the tree builder can read.
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(b); err != nil {
				t.Fatalf("Scan accepted what etree cannot read: %v", err)
			}
		}
		// Differential check against the encoding/xml implementation, limits off.
		got, want := Scan(b, off), scanStd(b, off)
		switch {
		case got == nil && want != nil:
			t.Fatalf("Scan accepts what encoding/xml refuses: %v", want)
		case got != nil && want == nil:
			var me *malformedError
			if !errors.As(got, &me) || !stricterReasons[me.reason] {
				t.Fatalf("Scan refuses what encoding/xml accepts, by no documented stricter rule: %v", got)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(b); err != nil || doc.Root() == nil {
			return
		}
		p, err := Parse(doc.Root(), smallLimits)
		if err != nil {
			if !isOneOfOurErrors(err) {
				t.Fatalf("Parse returned an unclassified error: %v", err)
			}
			return
		}
		// Whatever Parse accepts, the builder reproduces and Parse reads back unchanged.
		again, err := Parse(readRoot(t, p.Marshal()), Limits{MaxBytes: -1, MaxDepth: -1, MaxElements: -1, MaxAttributes: -1, MaxAttachments: -1, MaxAttachmentBytes: -1})
		if err != nil {
			t.Fatalf("re-parse of the rebuilt package: %v\n%s", err, p.Marshal())
		}
		if d := diffPaket(p, again); d != "" {
			t.Fatalf("round trip changed the package: %s", d)
		}
	})
}
