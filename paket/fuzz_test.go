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
	// white-space-only CDATA outside the root is text outside the root too
	reasonCDATAOutside: true,
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

// FuzzFields puts arbitrary strings into the leaves of a valid package, so the fuzzer
// spends its time on the field rules instead of on XML syntax.
func FuzzFields(f *testing.F) {
	f.Add("paket-1", testMsgID, "2026-11-28T12:00:00Z", "amt24", testLeika, "146120000000", "14612000", "01067", "Dresden",
		"hoch", "postfach:amt24/1", "a.pdf", "application/pdf", "961", "urn:x:y", "iris@example.org", "12.50", "cid:a@b")
	f.Add("_", strings.ToUpper(testMsgID), "2026-11-28T12:00:00.123456789+14:00", "a", "99999999999999", "", "", "", "ä",
		"", "https://x/", "CON", "a/b", "0", "https://x", "a@b", "0.00", "")
	f.Fuzz(func(t *testing.T, id, msgID, created, sender, leika, ars, ags, plz, name, level, back,
		fileName, mime, size, schema, email, amount, ref string) {
		root := ExampleWith(testLeika, testMsgID, testTime).Element()
		root.CreateAttr("ID", id)
		kopf := child(root, "Kopf")
		set := func(parent *etree.Element, tag, v string) {
			if e := parent.SelectElement(tag); e != nil {
				e.SetText(v)
				return
			}
			parent.CreateElement(tag).SetText(v)
		}
		set(kopf, "NachrichtID", msgID)
		set(kopf, "Erstellt", created)
		set(kopf, "Absender", sender)
		set(child(kopf, "Leistung"), "Schluessel", leika)
		ort := child(kopf, "Ort")
		ort.RemoveChild(ort.SelectElement("Name"))
		for _, kv := range [][2]string{{"ARS", ars}, {"AGS", ags}, {"PLZ", plz}, {"Name", name}} {
			if kv[1] != "" {
				set(ort, kv[0], kv[1])
			}
		}
		if level != "" {
			e := etree.NewElement("Vertrauensniveau")
			e.SetText(level)
			kopf.InsertChildAt(child(kopf, "Rueckkanal").Index(), e)
		}
		set(kopf, "Rueckkanal", back)
		z := kopf.CreateElement("Zahlung")
		set(z, "Referenz", "R-1")
		set(z, "Betrag", amount)
		set(z, "Waehrung", "EUR")
		set(child(root, "Antragsteller"), "EMail", email)
		child(root, "Fachdaten").CreateAttr("Schema", schema)
		a := child(child(root, "Anlagen"), "Anlage")
		set(a, "Dateiname", fileName)
		set(a, "MimeType", mime)
		set(a, "Groesse", size)
		if ref != "" {
			a.CreateAttr("Referenz", ref)
			a.RemoveChild(a.SelectElement("Inhalt"))
		}
		doc := etree.NewDocumentWithRoot(root)
		doc.WriteSettings.CanonicalText = true
		doc.WriteSettings.CanonicalAttrVal = true
		b, err := doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		d2 := etree.NewDocument()
		if d2.ReadFromBytes(b) != nil || d2.Root() == nil {
			return // a fuzz string with characters XML cannot carry
		}
		p, err := Parse(d2.Root(), Limits{})
		if err != nil {
			if !isOneOfOurErrors(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		// Accepted values obey the documented rules.
		for _, r := range []string{
			checkPattern(p.Kopf.Leistung.Schluessel, reLeika, ""), checkUUID(p.Kopf.NachrichtID),
			checkFileName(p.Anlagen[0].Dateiname), checkRueckkanal(p.Kopf.Rueckkanal),
		} {
			if r != "" {
				t.Fatalf("accepted a value that breaks a rule: %s", r)
			}
		}
		if strings.ContainsAny(p.Anlagen[0].Dateiname, "/\\\x00") || p.Anlagen[0].Dateiname == ".." {
			t.Fatalf("unsafe file name accepted: %q", p.Anlagen[0].Dateiname)
		}
		again, err := Parse(readRoot(t, p.Marshal()), Limits{})
		if err != nil {
			t.Fatalf("rebuilt package refused: %v", err)
		}
		if d := diffPaket(p, again); d != "" {
			t.Fatal(d)
		}
	})
}
