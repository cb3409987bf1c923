package paket

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/beevik/etree"
)

// testLeika is a syntactically valid LeiKa key for tests and samples; the real key of
// the example service is the routing directory's business.
const testLeika = "99000000000000"

const testMsgID = "3f2b8c4e-9d1a-4c6b-8e7f-0a1b2c3d4e5f"

var testTime = time.Date(2026, 11, 28, 15, 4, 5, 123_000_000, time.FixedZone("", 3600))

// full returns a package that uses every field, so that field tests can break one
// at a time.
func full() *Paket {
	p := ExampleWith(testLeika, testMsgID, testTime)
	p.Kopf.Ort = Ort{ARS: "146120000000", AGS: "14612000", PLZ: "01067", Name: "Dresden"}
	p.Kopf.Vertrauensniveau = LevelSubstantial
	p.Kopf.Rueckkanal = "https://amt24.sachsen.de/antwort/3f2b8c4e?kanal=1"
	p.Kopf.Zahlung = &Zahlung{Reference: "EPAY-2026-000123", Amount: "12.50", Currency: "EUR"}
	p.Kopf.Bezug = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
	ref := NewAnlage("foto-1", "Foto Papierkorb.jpg", "image/jpeg", []byte("\xff\xd8\xff\xe0 not really a jpeg"))
	ref.Inhalt = nil
	ref.Referenz = "cid:foto-1@amt24.sachsen.de"
	p.Anlagen = append(p.Anlagen, ref)
	return p
}

// jsonPaket carries its form data as JSON text.
func jsonPaket() *Paket {
	p := ExampleWith(testLeika, testMsgID, testTime)
	p.Fachdaten = FachdatenJSON("https://formulare.amt24.sachsen.de/maengelanzeige/v1.0/schema.json",
		[]byte(`{"wasPasstNicht":"Der Papierkorb an der Bushaltestelle ist voll.","prioritaet":"hoch","n":[1,2.5,null]}`))
	return p
}

// readRoot parses bytes the way the gateway does after Scan.
func readRoot(t testing.TB, b []byte) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(b); err != nil {
		t.Fatalf("etree: %v", err)
	}
	if doc.Root() == nil {
		t.Fatal("no root")
	}
	return doc.Root()
}

// reparse serializes the builder's element and parses it back.
func reparse(t testing.TB, p *Paket) (*Paket, error) {
	t.Helper()
	return Parse(readRoot(t, p.Marshal()), Limits{})
}

// diffPaket returns "" when a and b carry the same values.
func diffPaket(a, b *Paket) string {
	if a == nil || b == nil {
		return fmt.Sprintf("nil package: %v %v", a == nil, b == nil)
	}
	if !a.Kopf.Erstellt.Equal(b.Kopf.Erstellt) {
		return fmt.Sprintf("Erstellt: %v != %v", a.Kopf.Erstellt, b.Kopf.Erstellt)
	}
	if x, y := sortedXML(a.Fachdaten), sortedXML(b.Fachdaten); !bytes.Equal(x, y) {
		return fmt.Sprintf("Fachdaten XML:\n%s\n!=\n%s", clip(x), clip(y))
	}
	ca, cb := *a, *b
	ca.Kopf.Erstellt, cb.Kopf.Erstellt = time.Time{}, time.Time{}
	ca.Fachdaten.XML, cb.Fachdaten.XML = nil, nil
	if !reflect.DeepEqual(ca, cb) {
		return fmt.Sprintf("values differ:\n%+v\n%+v", ca, cb)
	}
	return ""
}

// needTool fails (never skips) when an external tool is missing: CI must install it.
func needTool(t testing.TB, name, debPkg string) string {
	t.Helper()
	return testenv.Tool(t, name, "apt-get install -y "+debPkg)
}

// xmllint validates doc against the package XSD and returns xmllint's verdict.
func xmllint(t testing.TB, doc []byte) (bool, string) {
	t.Helper()
	bin := needTool(t, "xmllint", "libxml2-utils")
	dir := t.TempDir()
	xsd := filepath.Join(dir, XSDFileName)
	xml := filepath.Join(dir, "paket.xml")
	if err := os.WriteFile(xsd, XSD, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(xml, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--noout", "--nonet", "--schema", xsd, xml).CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("xmllint: %v", err)
		}
	}
	return err == nil && strings.Contains(string(out), "validates"), string(out)
}

func isOneOfOurErrors(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrLimit) || errors.Is(err, ErrInvalidField)
}

func marshalRoot(t testing.TB, root *etree.Element) []byte {
	t.Helper()
	b, err := etree.NewDocumentWithRoot(root).WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sortedXML serializes form data with attributes sorted: attribute order carries no
// meaning, and canonicalization (the verified element) reorders them.
func sortedXML(f Fachdaten) []byte {
	g := f
	g.XML = nil
	for _, e := range f.XML {
		c := e.Copy()
		stack := []*etree.Element{c}
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			x.SortAttrs()
			stack = append(stack, x.ChildElements()...)
		}
		g.XML = append(g.XML, c)
	}
	return g.XMLBytes()
}

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
