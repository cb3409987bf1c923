package formview

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/amtsbote/amtsbote/internal/pdffont"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
	"github.com/beevik/etree"
)

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "pakete", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func find(fs []Field, label string) (Field, bool) {
	for _, f := range fs {
		if f.Label == label {
			return f, true
		}
	}
	return Field{}, false
}

func wantField(t *testing.T, fs []Field, label, value string, depth int) {
	t.Helper()
	f, ok := find(fs, label)
	if !ok {
		t.Errorf("no field %q in %+v", label, fs)
		return
	}
	if f.Value != value || f.Depth != depth {
		t.Errorf("field %q = {%q depth %d}, want {%q depth %d}", label, f.Value, f.Depth, value, depth)
	}
}

func TestReadXMLFachdaten(t *testing.T) {
	v, err := Read(readSample(t, "voll-mit-cid-anlage.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if v.MessageID != "3f2b8c4e-9d1a-4c6b-8e7f-0a1b2c3d4e5f" || v.Sender != "amt24" || v.ServiceKey != "99000000000000" {
		t.Errorf("header: %+v", v)
	}
	if v.ServiceName != "Meldung von Mängeln im Stadt- oder Gemeindegebiet" {
		t.Errorf("service name %q", v.ServiceName)
	}
	if v.Created != "28.11.2026, 15:04 Uhr MEZ" {
		t.Errorf("created %q", v.Created)
	}
	if v.Place != "01067 Dresden (ARS 146120000000, AGS 14612000)" {
		t.Errorf("place %q", v.Place)
	}
	if v.FormSchema != "urn:amt24:formular:maengelanzeige:1.0" {
		t.Errorf("schema %q", v.FormSchema)
	}
	wantField(t, v.Applicant, "Vorname", "Iris", 0)
	wantField(t, v.Applicant, "Familienname", "Hübner", 0)
	wantField(t, v.Applicant, "Anschrift", "", 0)
	wantField(t, v.Applicant, "Straße", "Altmarkt 1", 1)
	wantField(t, v.Applicant, "PLZ und Ort", "01067 Dresden", 1)
	wantField(t, v.Applicant, "Zahlung", "12.50 EUR, Referenz EPAY-2026-000123", 0)
	// The form's own Bezeichnung attribute is the label; the element name otherwise.
	wantField(t, v.Form, "Maengelanzeige", "", 0)
	wantField(t, v.Form, "Was passt Ihnen nicht", "Der Papierkorb an der Bushaltestelle ist voll.", 1)
	wantField(t, v.Form, "Priorität", "hoch", 1)
	if len(v.Attachments) != 2 {
		t.Fatalf("attachments: %+v", v.Attachments)
	}
	a := v.Attachments[0]
	if a.ID != "anlage-1" || a.MimeType != "application/pdf" || a.Size != 961 || len(a.SHA256) != 64 {
		t.Errorf("attachment: %+v", a)
	}
	if v.Attachments[1].FileName != "Foto Papierkorb.jpg" {
		t.Errorf("cid attachment: %+v", v.Attachments[1])
	}
}

func TestReadJSONFachdaten(t *testing.T) {
	v, err := Read(readSample(t, "json-fachdaten.xml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{
		{"Was passt nicht", "Der Papierkorb an der Bushaltestelle ist voll.", 0},
		{"Prioritaet", "hoch", 0},
		{"N", "", 0},
		{"N 1", "1", 1},
		{"N 2", "2.5", 1},
		{"N 3", "", 1},
	}
	if fmt.Sprint(v.Form) != fmt.Sprint(want) {
		t.Errorf("form\n got %+v\nwant %+v", v.Form, want)
	}
}

func TestReadJSONNestedInOrder(t *testing.T) {
	p := paket.Example("99000000000000")
	p.Fachdaten = paket.FachdatenJSON("https://formulare.example/x.json",
		[]byte(`{"zName":"Zett","antrag":{"geburtsDatum":"1990-01-02","kinder":[{"vorname":"Jörg"},{"vorname":"Änne"}],"ok":true},"leer":null}`))
	v, err := Read(p.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{
		{"Z name", "Zett", 0},
		{"Antrag", "", 0},
		{"Geburts datum", "1990-01-02", 1},
		{"Kinder", "", 1},
		{"Kinder 1", "", 2},
		{"Vorname", "Jörg", 3},
		{"Kinder 2", "", 2},
		{"Vorname", "Änne", 3},
		{"Ok", "ja", 1},
		{"Leer", "", 0},
	}
	if fmt.Sprint(v.Form) != fmt.Sprint(want) {
		t.Errorf("form\n got %+v\nwant %+v", v.Form, want)
	}
}

func TestHumanize(t *testing.T) {
	for in, want := range map[string]string{
		"wasPasstNicht":  "Was passt nicht",
		"m:Beschreibung": "Beschreibung",
		"PLZ":            "PLZ",
		"ARSCode":        "ARS code",
		"geburts_datum":  "Geburts datum",
		"strasse-und-nr": "Strasse und nr",
		"anlage2Name":    "Anlage2 name",
		"":               "",
		"x":              "X",
		"ÜbersichtGröße": "Übersicht größe",
		"a\x00b":         "A b",
	} {
		if got := Humanize(in); got != want {
			t.Errorf("Humanize(%q) = %q, want %q", in, got, want)
		}
	}
}

// selfSigned returns a signer with a throwaway ECDSA P-256 certificate.
func selfSigned(t *testing.T) *signing.Signer {
	t.Helper()
	s, _ := signingtest.SelfSigned(t, "amt24", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	return s
}

func TestReadSignedPackage(t *testing.T) {
	p := paket.ExampleWith("99000000000000", "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f", time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC))
	signed, err := selfSigned(t).Sign(p.Element())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(signed, []byte("SignatureValue")) {
		t.Fatal("not signed")
	}
	v, err := Read(signed)
	if err != nil {
		t.Fatal(err)
	}
	if v.Created != "01.07.2026, 10:00 Uhr MESZ" {
		t.Errorf("created %q", v.Created)
	}
	wantField(t, v.Applicant, "Familienname", "Hübner", 0)
	wantField(t, v.Form, "Was passt Ihnen nicht", paket.ExampleComplaint, 1)
	if len(v.Attachments) != 1 || v.Attachments[0].FileName != "maengelanzeige-v1.0-0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f.pdf" {
		t.Errorf("attachments %+v", v.Attachments)
	}
}

func TestReadBounded(t *testing.T) {
	p := paket.Example("99000000000000")
	form := etree.NewElement("g:Formular")
	form.CreateAttr("xmlns:g", "urn:test:gross:1")
	for i := range 3000 {
		f := form.CreateElement("g:Feld")
		f.CreateAttr("Nr", fmt.Sprint(i))
		f.SetText(fmt.Sprintf("Wert %d", i))
	}
	long := form.CreateElement("g:Lang")
	long.SetText(strings.Repeat("ä", 10*MaxValueRunes))
	p.Fachdaten = paket.FachdatenXML("urn:test:gross:1", form)
	v, err := Read(p.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(v.Applicant) + len(v.Form); n != MaxFields {
		t.Errorf("%d fields, want the bound %d", n, MaxFields)
	}
	if last := v.Form[len(v.Form)-1]; last.Label != TruncatedLabel {
		t.Errorf("last field %+v, want the truncation note", last)
	}

	// A long value alone is cut to MaxValueRunes and marked.
	form2 := etree.NewElement("g:Formular")
	form2.CreateAttr("xmlns:g", "urn:test:gross:1")
	form2.CreateElement("g:Lang").SetText(strings.Repeat("ä", 10*MaxValueRunes))
	p.Fachdaten = paket.FachdatenXML("urn:test:gross:1", form2)
	v, err = Read(p.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	f, ok := find(v.Form, "Lang")
	if !ok || len([]rune(f.Value)) != MaxValueRunes+1 || !strings.HasSuffix(f.Value, "…") {
		t.Errorf("long value: %d runes", len([]rune(f.Value)))
	}
	if _, err := PDF(v); err != nil {
		t.Fatal(err)
	}
}

func TestReadRefusesGarbage(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("x"), []byte("<a/>"), []byte(`<!DOCTYPE x [<!ENTITY a "b">]><x/>`),
		readSample(t, "json-fachdaten.xml")[:500]} {
		if _, err := Read(in); !errors.Is(err, ErrNotPackage) {
			t.Errorf("Read(%.40q): err %v, want ErrNotPackage", in, err)
		}
	}
}

// pdftotext runs poppler's pdftotext on pdf. The test fails (never skips) without it:
// a summary nobody checked is not a summary.
func pdftotext(t *testing.T, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatalf("pdftotext (Debian: poppler-utils) is required for this test: %v", err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "z.pdf")
	if err := os.WriteFile(in, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-enc", "UTF-8", in, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("Syntax Error")) || bytes.Contains(out, []byte("Syntax Warning")) {
		t.Errorf("pdftotext complains:\n%s", out)
	}
	return string(out)
}

func TestPDFReadableWithUmlauts(t *testing.T) {
	v, err := Read(readSample(t, "voll-mit-cid-anlage.xml"))
	if err != nil {
		t.Fatal(err)
	}
	v.Applicant = append(v.Applicant, Field{Label: "Bemerkung", Value: "Größe „ß“ – 12 € (Klammer) \\ Backslash"})
	pdf, err := PDF(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-1.4")) || !bytes.HasSuffix(pdf, []byte("%%EOF\n")) {
		t.Fatal("not a PDF")
	}
	text := pdftotext(t, pdf)
	for _, want := range []string{
		"Meldung von Mängeln im Stadt- oder Gemeindegebiet", // title and service
		"01067 Dresden", "28.11.2026, 15:04 Uhr MEZ", "3f2b8c4e-9d1a-4c6b-8e7f-0a1b2c3d4e5f",
		"Iris", "Hübner", "iris.huebner@example.org", "Straße", "Altmarkt 1",
		"Was passt Ihnen nicht", "Der Papierkorb an der Bushaltestelle ist voll.", "Priorität",
		"Größe „ß“ – 12 € (Klammer) \\ Backslash",
		"Foto Papierkorb.jpg", "image/jpeg", "961 Byte", "Anlagen", "Antragsteller/in",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("pdftotext output lacks %q:\n%s", want, text)
		}
	}
	info, err := exec.Command("pdfinfo", "-enc", "UTF-8", writeTemp(t, pdf)).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfinfo: %v\n%s", err, info)
	}
	if norm := strings.Join(strings.Fields(string(info)), " "); !strings.Contains(norm, "Title: Antrag: Meldung von Mängeln") || !strings.Contains(norm, "Pages: 1 ") {
		t.Errorf("pdfinfo:\n%s", info)
	}
}

// Umlauts a portal on macOS sends decomposed (NFD: "u" + U+0308) print as umlauts, in
// values, labels and file names; the WinAnsi mapping once printed them as "u?".
func TestPDFDecomposedUmlauts(t *testing.T) {
	v, err := Read(readSample(t, "voll-mit-cid-anlage.xml"))
	if err != nil {
		t.Fatal(err)
	}
	v.Applicant = append(v.Applicant, Field{Label: "Gru\u0308nde", Value: "Hu\u0308bner Stra\u00dfe Go\u0308rlitz"})
	v.Attachments = append(v.Attachments, Attachment{ID: "nfd", FileName: "A\u0308nderung.pdf", MimeType: "application/pdf", Size: 1})
	pdf, err := PDF(v)
	if err != nil {
		t.Fatal(err)
	}
	text := pdftotext(t, pdf)
	for _, want := range []string{"Gründe", "Hübner Straße Görlitz", "Änderung.pdf"} {
		if !strings.Contains(text, want) {
			t.Errorf("pdftotext output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "?") {
		t.Errorf("pdftotext output has a '?' (a character the PDF could not map):\n%s", text)
	}
}

func writeTemp(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "f.pdf")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPDFManyPagesAndBounds(t *testing.T) {
	v := &View{ServiceName: "Groß", MessageID: "m-1"}
	for i := range MaxFields {
		v.Form = append(v.Form, Field{Label: fmt.Sprintf("Feld %d mit einem längeren Namen, der umbricht", i), Value: strings.Repeat("Wort ", 200), Depth: i % 30})
	}
	pdf, err := PDF(v)
	if err != nil {
		t.Fatal(err)
	}
	info, err := exec.Command("pdfinfo", writeTemp(t, pdf)).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfinfo: %v\n%s", err, info)
	}
	if !strings.Contains(strings.Join(strings.Fields(string(info)), " "), fmt.Sprintf("Pages: %d ", MaxPages)) {
		t.Errorf("pdfinfo:\n%s", info)
	}
	text := pdftotext(t, pdf)
	if !strings.Contains(text, "gekürzt") || !strings.Contains(text, fmt.Sprintf("Seite %d von %d", MaxPages, MaxPages)) {
		t.Errorf("truncation note or page numbers missing")
	}
	// A value without spaces wider than the column is broken, not lost.
	v = &View{Form: []Field{{Label: "x", Value: strings.Repeat("ABCDEFGHIJ", 40)}}}
	pdf, err = PDF(v)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(strings.Fields(pdftotext(t, pdf)), ""); !strings.Contains(got, strings.Repeat("ABCDEFGHIJ", 40)) {
		t.Errorf("long word lost: %s", got)
	}
	if _, err := PDF(nil); err == nil {
		t.Error("PDF(nil) returned no error")
	}
}

// Names in letters outside Windows-1252 print and extract as written: the standard
// fonts with WinAnsiEncoding printed "Yıldız" as "Y?ld?z" in the office's file. The
// fonts are embedded (a server has none installed) as per-document subsets.
func TestPDFNamesOutsideWinAnsi(t *testing.T) {
	names := []string{"Yıldız", "Şükrü", "Dvořák", "ulica Wrocławska 3, Łódź", "02625 Bautzen/Budyšin",
		"Παπαδόπουλος", "Иванова", "Nguyễn Thị Ánh", "Øyvind Ærø"}
	v := &View{MessageID: "0b7c2f3e-1111-4222-8333-444455556666", ServiceName: "Meldung von Mängeln", Place: names[4],
		Applicant: []Field{{Label: "Familienname", Value: names[0]}, {Label: "Vorname", Value: names[1]},
			{Label: "Geburtsname", Value: names[2]}, {Label: "Anschrift", Value: names[3]}},
		Form:        []Field{{Label: "Ansprechperson", Value: names[5] + ", " + names[6]}, {Label: "Zeugin", Value: names[7]}, {Label: "Zeuge", Value: names[8]}},
		Attachments: []Attachment{{ID: "a", FileName: "Łódź – Plan Şişli.pdf", MimeType: "application/pdf", Size: 1}},
	}
	pdf, err := PDF(v)
	if err != nil {
		t.Fatal(err)
	}
	text := pdftotext(t, pdf)
	for _, want := range append(names, "Łódź – Plan Şişli.pdf") {
		if !strings.Contains(text, want) {
			t.Errorf("pdftotext output lacks %q:\n%s", want, text)
		}
	}
	if strings.ContainsAny(text, "?\uFFFD") {
		t.Errorf("pdftotext output has a character the PDF could not map:\n%s", text)
	}
	qpdfCheck(t, pdf)
	fonts, err := exec.Command("pdffonts", writeTemp(t, pdf)).CombinedOutput()
	if err != nil {
		t.Fatalf("pdffonts: %v\n%s", err, fonts)
	}
	lines := strings.Split(strings.TrimSpace(string(fonts)), "\n")[2:]
	if len(lines) != 2 {
		t.Errorf("want the two fonts, regular and bold:\n%s", fonts)
	}
	for _, l := range lines {
		// name type… encoding emb sub uni object: every font embedded, as a subset, with a
		// ToUnicode map.
		if f := strings.Fields(l); len(f) < 6 || f[len(f)-5] != "yes" || f[len(f)-4] != "yes" || f[len(f)-3] != "yes" || !strings.Contains(f[0], "+DejaVuSans") {
			t.Errorf("font not embedded as a Unicode subset: %s", l)
		}
	}
	// A subset, not the whole font (DejaVu Sans alone is 740 KB).
	if len(pdf) > 60_000 {
		t.Errorf("a one-page summary is %d bytes", len(pdf))
	}
}

// qpdfCheck runs qpdf --check: the file structure, streams and cross references.
func qpdfCheck(t *testing.T, pdf []byte) {
	t.Helper()
	out, err := exec.Command("qpdf", "--check", writeTemp(t, pdf)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No syntax or stream encoding errors") {
		t.Errorf("qpdf --check: %v\n%s", err, out)
	}
}

// The summary is a tagged PDF (EN 301 549 clause 10, WCAG 1.3.1, 2.4.2, 3.1.1): it
// was untagged, without language and with its title hidden behind the file name, so
// a screen reader read it as one run of text in no language. pdfinfo (poppler) and
// qpdf read it independently of the writer: the catalog asks for the title and names
// the language, and the structure tree names every text exactly once.
func TestPDFTagged(t *testing.T) {
	v := &View{MessageID: "0b7c2f3e-1111-4222-8333-444455556666", ServiceName: "Meldung von Mängeln", Place: "02625 Bautzen/Budyšin",
		Applicant:   []Field{{Label: "Familienname", Value: "Yıldız"}, {Label: "Anschrift"}, {Label: "Straße", Value: "ulica Wrocławska 3", Depth: 1}, {Label: "E-Mail", Value: "s@example.org"}},
		Form:        []Field{{Label: "Beschreibung", Value: strings.Repeat("Der Papierkorb ist voll. ", 30)}},
		Attachments: []Attachment{{ID: "a", FileName: "Foto.jpg", MimeType: "image/jpeg", Size: 2048}},
	}
	pdf, err := PDF(v)
	if err != nil {
		t.Fatal(err)
	}
	qpdfCheck(t, pdf)
	file := writeTemp(t, pdf)
	info, err := exec.Command("pdfinfo", "-enc", "UTF-8", file).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfinfo: %v\n%s", err, info)
	}
	for _, want := range []string{"Tagged: yes", "Title: Antrag: Meldung von Mängeln", "Metadata Stream: yes"} {
		if !strings.Contains(strings.Join(strings.Fields(string(info)), " "), want) {
			t.Errorf("pdfinfo lacks %q:\n%s", want, info)
		}
	}
	meta, _ := exec.Command("pdfinfo", "-meta", file).CombinedOutput()
	if !strings.Contains(string(meta), "<dc:title><rdf:Alt><rdf:li xml:lang=\"x-default\">Antrag: Meldung von Mängeln</rdf:li>") {
		t.Errorf("XMP metadata without the title:\n%s", meta)
	}

	// The catalog, as qpdf parses it.
	objs, pages := qpdfObjects(t, pdf)
	cat := objs[objs["trailer"]["/Root"].(string)]
	if cat["/Lang"] != "u:de-DE" || fmt.Sprint(cat["/MarkInfo"]) != "map[/Marked:true]" || fmt.Sprint(cat["/ViewerPreferences"]) != "map[/DisplayDocTitle:true]" {
		t.Errorf("catalog: %v", cat)
	}

	// Every text shown is marked content: an artifact or an MCID, unique per page.
	type mc struct {
		page string
		id   int
	}
	shown := map[mc]int{} // MCID -> how often the structure tree references it
	for _, p := range pages {
		rest := markedContent.ReplaceAllStringFunc(p.content, func(m string) string {
			sm := markedContent.FindStringSubmatch(m)
			if strings.Contains(sm[3], "BDC") || strings.Contains(sm[3], "BMC") {
				t.Errorf("page %s: nested marked content", p.obj)
			}
			if sm[1] == "Artifact" {
				return ""
			}
			id, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sm[2]), "/MCID")))
			if err != nil {
				t.Errorf("page %s: marked content without an MCID: %s", p.obj, m)
			}
			if _, dup := shown[mc{p.obj, id}]; dup {
				t.Errorf("page %s: MCID %d twice", p.obj, id)
			}
			shown[mc{p.obj, id}] = 0
			return ""
		})
		if strings.Contains(rest, "Tj") || strings.Contains(rest, "TJ") {
			t.Errorf("page %s: text outside marked content:\n%s", p.obj, strings.TrimSpace(rest))
		}
	}
	if len(shown) == 0 {
		t.Fatal("no marked content")
	}

	// Walk the structure tree: each MCID referenced once, by an element that the parent
	// tree names for it.
	rootRef, ok := cat["/StructTreeRoot"].(string)
	if !ok {
		t.Fatalf("no structure tree: %v", cat)
	}
	root := objs[rootRef]
	nums := objs[root["/ParentTree"].(string)]["/Nums"].([]any)
	parentOf := map[mc]string{}
	for _, p := range pages {
		key := objs[p.obj]["/StructParents"].(float64)
		for i := 0; i+1 < len(nums); i += 2 {
			if nums[i].(float64) == key {
				for id, ref := range nums[i+1].([]any) {
					parentOf[mc{p.obj, id}] = ref.(string)
				}
			}
		}
	}
	types := map[string]int{}
	var walk func(ref, parent string)
	walk = func(ref, parent string) {
		e := objs[ref]
		types[e["/S"].(string)]++
		if e["/P"] != parent {
			t.Errorf("%s: /P %v, want %s", ref, e["/P"], parent)
		}
		kids, ok := e["/K"].([]any)
		if !ok {
			kids = []any{e["/K"]}
		}
		for _, k := range kids {
			var m mc
			switch k := k.(type) {
			case float64:
				m = mc{e["/Pg"].(string), int(k)}
			case map[string]any:
				m = mc{k["/Pg"].(string), int(k["/MCID"].(float64))}
			case string:
				walk(k, ref)
				continue
			}
			n, ok := shown[m]
			if !ok {
				t.Errorf("%s references %v, which is not on the page", ref, m)
			}
			shown[m] = n + 1
			if parentOf[m] != ref {
				t.Errorf("the parent tree names %s for %v, the structure tree %s", parentOf[m], m, ref)
			}
		}
	}
	walk(root["/K"].(string), rootRef)
	for m, n := range shown {
		if n != 1 {
			t.Errorf("%v is referenced %d times", m, n)
		}
	}
	for _, typ := range []string{"/Document", "/H1", "/P", "/H2", "/L", "/LI", "/Lbl", "/LBody"} {
		if types[typ] == 0 {
			t.Errorf("no %s element: %v", typ, types)
		}
	}

	// What the structure says, as poppler reads it: every label and value; not the footer.
	st, err := exec.Command("pdfinfo", "-struct-text", file).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfinfo -struct-text: %v\n%s", err, st)
	}
	var said []string
	for _, l := range strings.Split(string(st), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, `"`) {
			said = append(said, strings.Trim(l, `"`))
		}
	}
	all := strings.Join(said, " ")
	for _, want := range []string{"Meldung von Mängeln", "Familienname Yıldız", "Anschrift Straße ulica Wrocławska 3",
		strings.TrimSpace(strings.Repeat("Der Papierkorb ist voll. ", 30)), "Foto.jpg image/jpeg"} {
		if !strings.Contains(all, want) {
			t.Errorf("structure text lacks %q:\n%s", want, st)
		}
	}
	if strings.Contains(all, "Seite 1 von 1") {
		t.Errorf("the page footer is in the structure, not an artifact:\n%s", st)
	}
}

// markedContent matches one marked-content sequence: /Tag <<properties>> BDC … EMC.
var markedContent = regexp.MustCompile(`(?s)/(\w+)\s*<<(.*?)>>\s*BDC(.*?)EMC`)

type qpdfPage struct{ obj, content string }

// qpdfObjects parses pdf with qpdf --json: its objects (the trailer under "trailer")
// and its pages with their decoded content.
func qpdfObjects(t *testing.T, pdf []byte) (map[string]map[string]any, []qpdfPage) {
	t.Helper()
	out, err := exec.Command("qpdf", "--json", "--json-stream-data=inline", "--decode-level=generalized", writeTemp(t, pdf)).Output()
	if err != nil {
		t.Fatalf("qpdf --json: %v", err)
	}
	var doc struct {
		Pages []struct {
			Object   string
			Contents []string
		}
		QPDF []json.RawMessage // a header, then the objects
	}
	var all map[string]struct {
		Value  map[string]any
		Stream struct {
			Data []byte
			Dict map[string]any
		}
	}
	if err := json.Unmarshal(out, &doc); err != nil || len(doc.QPDF) < 2 {
		t.Fatalf("qpdf --json: %v", err)
	}
	if err := json.Unmarshal(doc.QPDF[1], &all); err != nil {
		t.Fatalf("qpdf --json: %v", err)
	}
	objs := map[string]map[string]any{}
	data := map[string][]byte{}
	for k, o := range all {
		ref := strings.TrimPrefix(k, "obj:")
		objs[ref] = o.Value
		if o.Stream.Dict != nil {
			objs[ref], data[ref] = o.Stream.Dict, o.Stream.Data
		}
	}
	var pages []qpdfPage
	for _, p := range doc.Pages {
		var c []byte
		for _, ref := range p.Contents {
			c = append(c, data[ref]...)
		}
		pages = append(pages, qpdfPage{p.Object, string(c)})
	}
	return objs, pages
}

// The PDF says what the mailbox detail page says, in the same words and formats: it
// printed "CET" where the page says "MEZ", "Nachricht-ID" for "Nachrichten-ID",
// "Antragsteller" for "Antragsteller/in" and "961 Bytes" for "961 Byte", so a clerk
// comparing the two could take them for different data.
func TestPDFLabelsAsOnTheMailboxPage(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("..", "mailbox", "templates", "detail.html"))
	if err != nil {
		t.Fatal(err)
	}
	// The page's words this PDF repeats; if the page changes, so must the PDF.
	for _, w := range []string{"<dt>Ort</dt>", "<dt>Portal</dt>", "<dt>Nachrichten-ID</dt>", ">Antragsteller/in</h2>", "<p>Keine Angaben.</p>",
		">Formular</h2>", "<p>Das Formular enthält keine Angaben.</p>", "Formular-Schema: {{.FormSchema}}", ">Anlagen</h2>", "<p>Keine Anlagen.</p>", "{{size .Size}}", "{{when ",
		"<dt>Nachreichung zu</dt>", ">Eingang {{.}}</a>", "(" + NachreichungHint + ")"} {
		if !strings.Contains(string(page), w) {
			t.Errorf("the mailbox page no longer says %q: change the PDF and this test with it", w)
		}
	}

	v, err := Read(readSample(t, "voll-mit-cid-anlage.xml"))
	if err != nil {
		t.Fatal(err)
	}
	v.Attachments = append(v.Attachments, Attachment{ID: "gross", FileName: "Lageplan.pdf", MimeType: "application/pdf", Size: 48213})
	pdf, err := PDF(v)
	if err != nil {
		t.Fatal(err)
	}
	text := pdftotext(t, pdf)
	for _, want := range []string{"Erstellt", "28.11.2026, 15:04 Uhr MEZ", "Portal", "Nachrichten-ID", "Antragsteller/in", "Formular",
		"Formular-Schema: urn:amt24:formular:maengelanzeige:1.0", "application/pdf, 961 Byte", "application/pdf, 47,1 KB"} {
		if !strings.Contains(text, want) {
			t.Errorf("pdftotext output lacks %q:\n%s", want, text)
		}
	}
	for _, old := range []string{"CET", "Nachricht-ID", "Antragsteller\n", "Bytes", "48.213", "Angaben im Formular", "Portal (Absender)"} {
		if strings.Contains(text, old) {
			t.Errorf("pdftotext output still says %q:\n%s", old, text)
		}
	}

	// A Nachreichung names its case at the top, in the page's words; a new
	// case names none.
	if strings.Contains(text, "Nachreichung") {
		t.Errorf("the summary of a new case speaks of a Nachreichung:\n%s", text)
	}
	v.CaseID = "01a2519f-0000-7000-8000-000000000001"
	if pdf, err = PDF(v); err != nil {
		t.Fatal(err)
	}
	text = pdftotext(t, pdf)
	flat := strings.Join(strings.Fields(text), " ")
	for _, want := range []string{"Nachreichung zu", "Eingang " + v.CaseID, "(" + NachreichungHint + ")"} {
		if !strings.Contains(flat, want) {
			t.Errorf("pdftotext output lacks %q:\n%s", want, text)
		}
	}
	if i, j := strings.Index(flat, "Nachreichung zu"), strings.Index(flat, "Leistung"); i < 0 || j < i {
		t.Errorf("the case is not named first among the Eckdaten:\n%s", text)
	}

	// Without applicant, form data and attachments: the page's sentences.
	pdf, err = PDF(&View{ServiceName: "Leer", Created: "01.07.2026, 10:00 Uhr MESZ"})
	if err != nil {
		t.Fatal(err)
	}
	text = pdftotext(t, pdf)
	for _, want := range []string{"01.07.2026, 10:00 Uhr MESZ", "Antragsteller/in", "Keine Angaben.", "Das Formular enthält keine Angaben.", "Keine Anlagen."} {
		if !strings.Contains(text, want) {
			t.Errorf("pdftotext output lacks %q:\n%s", want, text)
		}
	}
}

// wrapByPrefixes is the line breaking of the build before 2026-12-05 evening,
// which measured every longer prefix of a word anew (quadratic in a word's
// length: the largest package's summary took 33 s of CPU, now under a second,
// docs/performance.md). The sums of advances must break exactly as it did.
func wrapByPrefixes(f *pdffont.Font, s string, width, size float64) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			for f.Width(word, size) > width {
				if line != "" {
					out = append(out, line)
					line = ""
				}
				rs := []rune(word)
				k := 1
				for k < len(rs) && f.Width(string(rs[:k+1]), size) <= width {
					k++
				}
				out = append(out, string(rs[:k]))
				word = string(rs[k:])
			}
			if word == "" {
				continue
			}
			switch {
			case line == "":
				line = word
			case f.Width(line+" "+word, size) <= width:
				line += " " + word
			default:
				out = append(out, line)
				line = word
			}
		}
		out = append(out, line)
	}
	return out
}

func TestWrapBreaksAsByPrefixes(t *testing.T) {
	reg, err := pdffont.Regular()
	if err != nil {
		t.Fatal(err)
	}
	bold, err := pdffont.Bold()
	if err != nil {
		t.Fatal(err)
	}
	w := &pdfWriter{font: [2]*pdffont.Font{reg, bold}}
	inputs := []string{
		"", "a", "Grundstück", strings.Repeat("W", 400), strings.Repeat("i", 4000),
		"Sondernutzung öffentlicher Straßen " + strings.Repeat("Überlänge", 30) + " und ein Rest",
		"Zeile eins\nZeile zwei mit  zwei Leerzeichen\n\nnach einer Leerzeile",
		"Yıldız Şükrü Dvořák Łódź Budyšin Ελληνικά Кириллица Tiếng Việt 漢字 🙂",
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("abcdefghijklmnopqrstuvwxyzäöüßÄÖÜ WMil.-/\n")
	for range 200 {
		rs := make([]rune, rnd.IntN(600))
		for i := range rs {
			rs[i] = alphabet[rnd.IntN(len(alphabet))]
		}
		inputs = append(inputs, string(rs))
	}
	for _, width := range []float64{3, 40, 150, 330} {
		for _, s := range inputs {
			for b, f := range w.font {
				got, want := w.wrap(s, width, b == 1, 9), wrapByPrefixes(f, s, width, 9)
				if !slices.Equal(got, want) {
					t.Fatalf("width %v, bold %v, %.40q…: %q, want %q", width, b == 1, s, got, want)
				}
			}
		}
	}
}
