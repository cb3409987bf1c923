package paket

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

func dsSignature() *etree.Element {
	s := etree.NewElement("ds:Signature")
	s.CreateAttr("xmlns:ds", DSigNamespace)
	s.CreateElement("ds:SignedInfo")
	s.CreateElement("ds:SignatureValue").SetText("AAAA")
	return s
}

func child(root *etree.Element, tag string) *etree.Element {
	for _, c := range root.ChildElements() {
		if c.Tag == tag {
			return c
		}
	}
	panic("no " + tag)
}

// Tree-level cases: what the signer appends, and what an attacker might slip in.
func TestStructure(t *testing.T) {
	type want int
	const (
		ok want = iota
		field
		malformed
	)
	cases := []struct {
		name string
		mut  func(root *etree.Element)
		want want
		path string
	}{
		{"signature last", func(r *etree.Element) { r.AddChild(dsSignature()) }, ok, ""},
		{"signature with other prefix", func(r *etree.Element) {
			s := dsSignature()
			s.Space = "sig"
			s.Attr[0].Key = "sig"
			for _, c := range s.ChildElements() {
				c.Space = "sig"
			}
			r.AddChild(s)
		}, ok, ""},
		{"signature default namespace", func(r *etree.Element) {
			s := etree.NewElement("Signature")
			s.CreateAttr("xmlns", DSigNamespace)
			r.AddChild(s)
		}, ok, ""},
		{"comments and whitespace", func(r *etree.Element) {
			r.InsertChildAt(0, etree.NewComment(" Kommentar "))
			r.InsertChildAt(0, etree.NewText("\n  "))
			child(r, "Kopf").InsertChildAt(1, etree.NewComment("x"))
		}, ok, ""},
		{"two signatures", func(r *etree.Element) { r.AddChild(dsSignature()); r.AddChild(dsSignature()) }, field, "Antragspaket"},
		{"signature not last", func(r *etree.Element) { r.InsertChildAt(1, dsSignature()) }, field, "Antragspaket/Fachdaten"},
		{"signature in Kopf", func(r *etree.Element) { child(r, "Kopf").AddChild(dsSignature()) }, field, "Antragspaket/Kopf"},
		{"signature wrong namespace", func(r *etree.Element) {
			s := etree.NewElement("Signature")
			s.CreateAttr("xmlns", "http://www.w3.org/2000/09/xmldsig-more#")
			r.AddChild(s)
		}, field, "Antragspaket"},
		{"unknown element in Kopf", func(r *etree.Element) { child(r, "Kopf").CreateElement("Prioritaet").SetText("1") }, field, "Antragspaket/Kopf"},
		{"foreign element in Kopf", func(r *etree.Element) {
			e := child(r, "Kopf").CreateElement("x:Absender")
			e.CreateAttr("xmlns:x", "urn:evil")
		}, field, "Antragspaket/Kopf"},
		{"second Absender", func(r *etree.Element) {
			k := child(r, "Kopf")
			e := etree.NewElement("Absender")
			e.SetText("evil")
			k.InsertChildAt(3, e)
		}, field, "Antragspaket/Kopf/Leistung"},
		{"unknown root child", func(r *etree.Element) { r.CreateElement("Extra") }, field, "Antragspaket"},
		{"elements out of order", func(r *etree.Element) {
			k := child(r, "Kopf")
			r.RemoveChild(k)
			r.AddChild(k)
		}, field, "Antragspaket/Kopf"},
		{"missing Fachdaten", func(r *etree.Element) { r.RemoveChild(child(r, "Fachdaten")) }, field, "Antragspaket/Fachdaten"},
		{"text in Kopf", func(r *etree.Element) { child(r, "Kopf").InsertChildAt(0, etree.NewText("x")) }, field, "Antragspaket/Kopf"},
		{"element in leaf", func(r *etree.Element) { child(child(r, "Kopf"), "Absender").CreateElement("b") }, field, "Antragspaket/Kopf/Absender"},
		{"attribute on Kopf", func(r *etree.Element) { child(r, "Kopf").CreateAttr("Id", "x") }, field, "Antragspaket/Kopf"},
		{"attribute on leaf", func(r *etree.Element) { child(child(r, "Kopf"), "Absender").CreateAttr("xml:lang", "de") }, field, "Antragspaket/Kopf/Absender"},
		{"unknown root attribute", func(r *etree.Element) { r.CreateAttr("Typ", "x") }, field, "Antragspaket"},
		{"wrong version", func(r *etree.Element) { r.CreateAttr("Version", "2") }, field, "Antragspaket/@Version"},
		{"processing instruction", func(r *etree.Element) { child(r, "Kopf").AddChild(etree.NewProcInst("php", "x")) }, field, "Antragspaket/Kopf"},
		{"Fachdaten text", func(r *etree.Element) { child(r, "Fachdaten").AddChild(etree.NewText("x")) }, field, "Antragspaket/Fachdaten"},
		{"Fachdaten format", func(r *etree.Element) { child(r, "Fachdaten").CreateAttr("Format", "yaml") }, field, "Antragspaket/Fachdaten/@Format"},
		{"Fachdaten json with xml", func(r *etree.Element) { child(r, "Fachdaten").CreateAttr("Format", "json") }, field, "Antragspaket/Fachdaten/JSON"},
		{"Fachdaten undeclared prefix", func(r *etree.Element) {
			child(r, "Fachdaten").ChildElements()[0].CreateElement("q:Feld")
		}, field, "Antragspaket/Fachdaten"},
		{"Fachdaten package namespace", func(r *etree.Element) {
			f := child(r, "Fachdaten")
			f.InsertChildAt(0, etree.NewElement("Kopf"))
		}, field, "Antragspaket/Fachdaten"},
		{"empty Anlagen", func(r *etree.Element) {
			a := child(r, "Anlagen")
			for _, c := range a.ChildElements() {
				a.RemoveChild(c)
			}
		}, field, "Antragspaket/Anlagen/Anlage"},
		{"Anlage bad base64", func(r *etree.Element) {
			child(child(child(r, "Anlagen"), "Anlage"), "Inhalt").SetText("###")
		}, field, "Antragspaket/Anlagen/Anlage[1]/Inhalt"},
		{"Anlage without Inhalt or Referenz", func(r *etree.Element) {
			a := child(child(r, "Anlagen"), "Anlage")
			a.RemoveChild(child(a, "Inhalt"))
		}, field, "Antragspaket/Anlagen/Anlage[1]/Inhalt"},
		{"Erstellt without zone", func(r *etree.Element) { child(child(r, "Kopf"), "Erstellt").SetText("2026-11-28T12:00:00") }, field, "Antragspaket/Kopf/Erstellt"},
		{"Erstellt invalid day", func(r *etree.Element) { child(child(r, "Kopf"), "Erstellt").SetText("2026-02-30T12:00:00Z") }, field, "Antragspaket/Kopf/Erstellt"},
		{"Erstellt lower-case t", func(r *etree.Element) { child(child(r, "Kopf"), "Erstellt").SetText("2026-11-28t12:00:00Z") }, field, "Antragspaket/Kopf/Erstellt"},
		{"Groesse leading zero", func(r *etree.Element) { child(child(child(r, "Anlagen"), "Anlage"), "Groesse").SetText("0961") }, field, "Antragspaket/Anlagen/Anlage[1]/Groesse"},
		{"Groesse overflow", func(r *etree.Element) {
			child(child(child(r, "Anlagen"), "Anlage"), "Groesse").SetText("999999999999999999")
		}, malformed + 1, ""}, // a LimitError: declared size above MaxAttachmentBytes
		{"wrong root name", func(r *etree.Element) { r.Tag = "Antrag" }, malformed, ""},
		{"wrong root namespace", func(r *etree.Element) { r.CreateAttr("xmlns", "urn:amtsbote:antragspaket:2") }, malformed, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := readRoot(t, ExampleWith(testLeika, testMsgID, testTime).Marshal())
			tc.mut(root)
			// Serialize and read back so the test sees what a receiver would.
			doc := etree.NewDocumentWithRoot(root)
			b, err := doc.WriteToBytes()
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(readRoot(t, b), Limits{})
			switch tc.want {
			case ok:
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
			case field:
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("want FieldError at %s, got %v", tc.path, err)
				}
				if fe.Field != tc.path {
					t.Errorf("Field = %q, want %q (%v)", fe.Field, tc.path, err)
				}
			case malformed:
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("want ErrMalformed, got %v", err)
				}
			default:
				if !errors.Is(err, ErrLimit) {
					t.Fatalf("want ErrLimit, got %v", err)
				}
			}
		})
	}
}

func TestParseNil(t *testing.T) {
	if _, err := Parse(nil, Limits{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Parse(nil) = %v", err)
	}
}

// The error message never echoes element names an attacker chose.
func TestErrorsDoNotEchoInput(t *testing.T) {
	root := readRoot(t, ExampleWith(testLeika, testMsgID, testTime).Marshal())
	child(root, "Kopf").CreateElement("Evil_Payload-\u202e")
	_, err := Parse(root, Limits{})
	if err == nil || strings.Contains(err.Error(), "Evil") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseLimits(t *testing.T) {
	big := Big(300, 5)
	root := readRoot(t, big.Marshal())
	maxAtt := int64(len(big.Anlagen[0].Inhalt))
	for _, tc := range []struct {
		name  string
		lim   Limits
		limit string // "" = accepted
	}{
		{"defaults", Limits{}, ""},
		{"all off", Limits{MaxBytes: -1, MaxDepth: -1, MaxElements: -1, MaxAttributes: -1, MaxAttachments: -1, MaxAttachmentBytes: -1}, ""},
		{"elements", Limits{MaxElements: 299}, "MaxElements"},
		{"elements exact", Limits{MaxElements: 300}, ""},
		{"depth", Limits{MaxDepth: 3}, "MaxDepth"},
		{"depth exact", Limits{MaxDepth: 4}, ""},
		{"attributes", Limits{MaxAttributes: 1}, "MaxAttributes"},
		{"attachments", Limits{MaxAttachments: 4}, "MaxAttachments"},
		{"attachments exact", Limits{MaxAttachments: 5}, ""},
		{"attachment bytes", Limits{MaxAttachmentBytes: maxAtt - 1}, "MaxAttachmentBytes"},
		{"attachment bytes exact", Limits{MaxAttachmentBytes: maxAtt + 10}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(root.Copy(), tc.lim) // Parse takes the tree
			if tc.limit == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var le *LimitError
			if !errors.As(err, &le) || !errors.Is(err, ErrLimit) || le.Limit != tc.limit {
				t.Fatalf("want LimitError %s, got %v", tc.limit, err)
			}
			if le.Got <= le.Max {
				t.Errorf("Got %d <= Max %d", le.Got, le.Max)
			}
		})
	}
}

func TestVerifyContent(t *testing.T) {
	content := []byte("Inhalt eines multipart-Teils")
	a := NewAnlage("teil-1", "teil.txt", "text/plain", content)
	a.Inhalt, a.Referenz = nil, "cid:teil-1@portal"
	if err := a.VerifyContent(content); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	if err := a.CheckDigest(int64(len(content)), sum[:]); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"changed byte": a.VerifyContent(append([]byte("X"), content[1:]...)),
		"truncated":    a.VerifyContent(content[:5]),
		"size only":    a.CheckDigest(int64(len(content))+1, sum[:]),
		"short sum":    a.CheckDigest(int64(len(content)), sum[:5]),
		"bad declared": Anlage{ID: "x", SHA256: "zz"}.VerifyContent(nil),
	} {
		if !errors.Is(err, ErrAttachmentDigest) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A cid attachment parses without Inhalt and keeps its reference.
	p := full()
	got, err := reparse(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Anlagen[1]; c.Inhalt != nil || c.Referenz != "cid:foto-1@amt24.sachsen.de" {
		t.Fatalf("cid attachment: %+v", c)
	}
}

func TestFachdatenNamespacesDetached(t *testing.T) {
	// Prefixes declared on the root and on Fachdaten must travel with the form element;
	// a default namespace used by nested unprefixed elements too.
	src := `<Antragspaket xmlns="` + Namespace + `" xmlns:f="urn:form" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="p" Version="1">` +
		`<Kopf><NachrichtID>` + testMsgID + `</NachrichtID><Erstellt>2026-11-28T12:00:00Z</Erstellt><Absender>amt24</Absender>` +
		`<Leistung><Schluessel>` + testLeika + `</Schluessel><Bezeichnung>X</Bezeichnung></Leistung><Ort><Name>Dresden</Name></Ort>` +
		`<Rueckkanal>postfach:x</Rueckkanal></Kopf>` +
		`<Fachdaten Schema="urn:form" Format="xml" xmlns:g="urn:g"><f:Formular xsi:type="g:T"><f:A>1</f:A></f:Formular>` +
		`<h:B xmlns:h="urn:h" xmlns="urn:inner"><C/></h:B></Fachdaten></Antragspaket>`
	p, err := Parse(readRoot(t, []byte(src)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := string(p.Fachdaten.XMLBytes())
	for _, want := range []string{`xmlns:g="urn:g"`, `xmlns:f="urn:form"`, `xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"`, `xmlns="urn:inner"`} {
		if !strings.Contains(got, want) {
			t.Errorf("detached form data lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, Namespace) {
		t.Errorf("detached form data carries the package namespace:\n%s", got)
	}
	// Each detached element stands alone.
	for _, e := range p.Fachdaten.XML {
		b, _ := etree.NewDocumentWithRoot(e.Copy()).WriteToBytes()
		r := readRoot(t, b)
		if r.NamespaceURI() == "" {
			t.Errorf("detached %s lost its namespace", r.Tag)
		}
	}
	again, err := reparse(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffPaket(p, again); d != "" {
		t.Fatal(d)
	}
}

// wideForm is a package whose form has n elements side by side under Fachdaten.
func wideForm(n int) []byte {
	p := ExampleWith(testLeika, testMsgID, testTime)
	els := make([]*etree.Element, n)
	for i := range els {
		els[i] = etree.NewElement("g:F")
		els[i].CreateAttr("xmlns:g", BigFormNamespace)
	}
	p.Fachdaten = FachdatenXML(BigFormNamespace, els...)
	return p.Marshal()
}

// TestParseWideForm: a form of 150,000 elements side by side, within the default
// limits, parses whole, and Parse leaves none of them in the tree. Parse once took
// them out of the tree one by one from the front, and etree renumbers the siblings
// after each removal: 97 s for this package (minutes more under -race, past the
// test timeout), a denial of service by one signed package. Now about 40 ms.
func TestParseWideForm(t *testing.T) {
	const n = 150_000
	doc, err := ReadTree(wideForm(n), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	fach := child(doc.Root(), "Fachdaten")
	p, err := Parse(doc.Root(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Fachdaten.XML) != n {
		t.Fatalf("%d form elements, want %d", len(p.Fachdaten.XML), n)
	}
	if len(fach.Child) != 0 || p.Fachdaten.XML[0].Parent() != nil || p.Fachdaten.XML[n-1].Parent() != nil {
		t.Fatalf("form elements left in the tree: %d tokens under Fachdaten", len(fach.Child))
	}
}
