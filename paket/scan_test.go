package paket

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestScanAcceptsBuilderOutput(t *testing.T) {
	for name, p := range samplePakete() {
		b := p.Marshal()
		if err := Scan(b, Limits{}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		// Without the XML declaration, with a signature and with line-wrapped base64.
		b = bytes.TrimPrefix(b, []byte(`<?xml version="1.0" encoding="UTF-8"?>`))
		if err := Scan(b, DefaultLimits()); err != nil {
			t.Errorf("%s without declaration: %v", name, err)
		}
	}
	bom := append([]byte("\xef\xbb\xbf"), full().Marshal()...)
	if _, err := ReadUnverified(bom, Limits{}); err != nil {
		t.Errorf("with byte order mark: %v", err)
	}
	root := readRoot(t, full().Marshal())
	root.AddChild(dsSignature())
	inh := child(child(root, "Anlagen"), "Anlage").SelectElement("Inhalt")
	inh.SetText(wrap76(inh.Text()))
	b := marshalRoot(t, root)
	if err := Scan(b, Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(readRoot(t, b), Limits{}); err != nil {
		t.Fatalf("Parse of wrapped base64: %v", err)
	}
}

func wrap76(s string) string {
	var sb strings.Builder
	for len(s) > 76 {
		sb.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return sb.String() + s
}

const minimalHead = `<Antragspaket xmlns="urn:amtsbote:antragspaket:1" ID="p" Version="1">`

func TestScanRefuses(t *testing.T) {
	valid := string(ExampleWith(testLeika, testMsgID, testTime).Marshal())
	noDecl := strings.TrimPrefix(valid, `<?xml version="1.0" encoding="UTF-8"?>`)
	deep := minimalHead + strings.Repeat("<a>", 70) + strings.Repeat("</a>", 70) + "</Antragspaket>"
	many := minimalHead + strings.Repeat("<a/>", 1001) + "</Antragspaket>"
	var attrs strings.Builder
	for i := range 65 {
		fmt.Fprintf(&attrs, ` a%d="x"`, i)
	}
	manyAttrs := minimalHead + "<a" + attrs.String() + "/></Antragspaket>"
	attrsDoc := minimalHead + strings.Repeat(`<a b="1" c="2" d="3"/>`, 10) + "</Antragspaket>"
	anlagen := minimalHead + "<Anlagen>" + strings.Repeat("<Anlage/>", 101) + "</Anlagen></Antragspaket>"
	// 1 KiB of base64 decodes to 768 bytes.
	bigInhalt := minimalHead + "<Anlagen><Anlage><Inhalt>" + wrap76(base64.StdEncoding.EncodeToString(make([]byte, 800))) + "</Inhalt></Anlage></Anlagen></Antragspaket>"
	nestedInhalt := minimalHead + "<Fachdaten><Anlagen><Anlage><Inhalt>" + base64.StdEncoding.EncodeToString(make([]byte, 800)) + "</Inhalt></Anlage></Anlagen></Fachdaten></Antragspaket>"

	for _, tc := range []struct {
		name  string
		doc   string
		lim   Limits
		limit string // LimitError name; "" means ErrMalformed; "ok" means accepted
	}{
		{"valid", valid, Limits{}, "ok"},
		{"doctype", `<?xml version="1.0"?><!DOCTYPE Antragspaket>` + noDecl, Limits{}, ""},
		{"billion laughs", `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>` + minimalHead + `&b;</Antragspaket>`, Limits{}, ""},
		{"external entity", `<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>` + minimalHead + `&x;</Antragspaket>`, Limits{}, ""},
		{"undefined entity", minimalHead + `&x;</Antragspaket>`, Limits{}, ""},
		{"processing instruction", `<?xml version="1.0"?><?xml-stylesheet href="x"?>` + noDecl, Limits{}, ""},
		{"pi inside", minimalHead + `<?php echo 1; ?></Antragspaket>`, Limits{}, ""},
		{"declaration after comment", `<!-- x --><?xml version="1.0"?>` + noDecl, Limits{}, ""},
		{"latin-1", `<?xml version="1.0" encoding="ISO-8859-1"?>` + noDecl, Limits{}, ""},
		{"invalid utf-8", minimalHead + "<a>\xff\xfe</a></Antragspaket>", Limits{}, ""},
		{"duplicate attribute", `<Antragspaket xmlns="urn:amtsbote:antragspaket:1" ID="p" ID="q" Version="1"/>`, Limits{}, ""},
		{"duplicate attribute via prefixes", minimalHead + `<a xmlns:x="urn:u" xmlns:y="urn:u" x:k="1" y:k="2"/></Antragspaket>`, Limits{}, ""},
		{"two roots", noDecl + noDecl, Limits{}, ""},
		{"text after root", noDecl + "x", Limits{}, ""},
		{"text before root", "x" + noDecl, Limits{}, ""},
		{"wrong root", `<Antrag xmlns="urn:amtsbote:antragspaket:1"/>`, Limits{}, ""},
		{"no namespace", `<Antragspaket ID="p" Version="1"/>`, Limits{}, ""},
		{"truncated", noDecl[:len(noDecl)/2], Limits{}, ""},
		{"mismatched end", minimalHead + "<a></b></Antragspaket>", Limits{}, ""},
		{"empty", "", Limits{}, ""},
		{"cdata outside", noDecl + "<![CDATA[x]]>", Limits{}, ""},
		{"blank cdata outside", noDecl + "<![CDATA[ ]]>", Limits{}, ""},
		{"end tag first", "</Antragspaket>", Limits{}, ""},
		{"double hyphen in comment", minimalHead + "<!-- a -- b --></Antragspaket>", Limits{}, ""},
		{"comment ending --->", minimalHead + "<!-- a ---></Antragspaket>", Limits{}, ""},
		{"unterminated comment", minimalHead + "<!-- a </Antragspaket>", Limits{}, ""},
		{"cdata end in text", minimalHead + "a ]]> b</Antragspaket>", Limits{}, ""},
		{"undeclared element prefix", minimalHead + "<q:a/></Antragspaket>", Limits{}, ""},
		{"undeclared attribute prefix", minimalHead + `<a q:b="1"/></Antragspaket>`, Limits{}, ""},
		{"undeclaring a prefix", minimalHead + `<a xmlns:q=""/></Antragspaket>`, Limits{}, ""},
		{"binding xmlns", minimalHead + `<a xmlns:xmlns="urn:x"/></Antragspaket>`, Limits{}, ""},
		{"attributes without space", minimalHead + `<a x="1"y="2"/></Antragspaket>`, Limits{}, ""},
		{"two colons", minimalHead + `<a:b:c xmlns:a="urn:a"/></Antragspaket>`, Limits{}, ""},
		{"name starts with digit", minimalHead + `<1a/></Antragspaket>`, Limits{}, ""},
		{"nul reference", minimalHead + `&#0;</Antragspaket>`, Limits{}, ""},
		{"control character", minimalHead + "\x01</Antragspaket>", Limits{}, ""},
		{"surrogate reference", minimalHead + `&#xD800;</Antragspaket>`, Limits{}, ""},
		{"nbsp entity", minimalHead + `&nbsp;</Antragspaket>`, Limits{}, ""},
		{"lt in attribute", minimalHead + `<a b="<"/></Antragspaket>`, Limits{}, ""},
		{"version 1.1", `<?xml version="1.1"?>` + noDecl, Limits{}, ""},
		{"root namespace via char refs", `<Antragspaket xmlns="urn:amtsbote:antragspaket&#x3A;1" ID="p" Version="1"/>`, Limits{}, "ok"},
		{"root with prefix", `<ap:Antragspaket xmlns:ap="urn:amtsbote:antragspaket:1" ID="p" Version="1"/>`, Limits{}, "ok"},
		{"references and cdata", minimalHead + `<a b="&lt;&#x41;&#65;&quot;">&amp;<![CDATA[<x>]]></a></Antragspaket>`, Limits{}, "ok"},
		{"utf-8 names and text", minimalHead + `<f:Größe xmlns:f="urn:f" f:Maß="ü">€ 𝄞</f:Größe></Antragspaket>`, Limits{}, "ok"},
		{"bytes", valid, Limits{MaxBytes: int64(len(valid)) - 1}, "MaxBytes"},
		{"bytes exact", valid, Limits{MaxBytes: int64(len(valid))}, "ok"},
		{"depth", deep, Limits{}, "MaxDepth"},
		{"depth off", deep, Limits{MaxDepth: -1}, "ok"},
		{"elements", many, Limits{MaxElements: 1000}, "MaxElements"},
		{"elements exact", many, Limits{MaxElements: 1002}, "ok"},
		{"attributes", manyAttrs, Limits{}, "MaxAttributes"},
		// The root's 3 and 10 × 3: 33 attributes in 11 elements.
		{"attributes in the whole document", attrsDoc, Limits{MaxElements: 16}, "MaxAttributesTotal"},
		{"attributes in the whole document within", attrsDoc, Limits{MaxElements: 17}, "ok"},
		{"attachments", anlagen, Limits{}, "MaxAttachments"},
		{"attachments exact", anlagen, Limits{MaxAttachments: 101}, "ok"},
		{"attachment bytes", bigInhalt, Limits{MaxAttachmentBytes: 700}, "MaxAttachmentBytes"},
		{"attachment bytes exact", bigInhalt, Limits{MaxAttachmentBytes: 800}, "ok"},
		{"inhalt outside Anlagen not counted", nestedInhalt, Limits{MaxAttachmentBytes: 10}, "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Scan([]byte(tc.doc), tc.lim)
			if tc.limit == "ok" && err == nil {
				if _, err := ReadTree([]byte(tc.doc), tc.lim); err != nil {
					t.Fatalf("Scan accepts, the tree builder refuses: %v", err)
				}
			}
			switch tc.limit {
			case "ok":
				if err != nil {
					t.Fatal(err)
				}
			case "":
				if !errors.Is(err, ErrMalformed) || errors.Is(err, ErrLimit) {
					t.Fatalf("want ErrMalformed, got %v", err)
				}
			default:
				var le *LimitError
				if !errors.As(err, &le) || !errors.Is(err, ErrLimit) || le.Limit != tc.limit {
					t.Fatalf("want LimitError %s, got %v", tc.limit, err)
				}
			}
		})
	}
}

func TestDefaultLimits(t *testing.T) {
	want := Limits{MaxBytes: 32 << 20, MaxDepth: 64, MaxElements: 200_000, MaxAttributes: 64, MaxAttachments: 100, MaxAttachmentBytes: 20 << 20,
		MaxReferencedBytes: 2 << 30, MaxReferencedTotal: 4 << 30}
	if got := DefaultLimits(); got != want {
		t.Fatalf("DefaultLimits() = %+v", got)
	}
	if got := (Limits{}).effective(); got != want {
		t.Fatalf("zero Limits do not take the defaults: %+v", got)
	}
	// 33 MiB of whitespace inside the root: refused by size before any parsing.
	huge := make([]byte, 33<<20)
	copy(huge, minimalHead)
	if err := Scan(huge, Limits{}); !errors.Is(err, ErrLimit) {
		t.Fatalf("33 MiB body: %v", err)
	}
}

// TestScanNamespaceCost: what namespaces cost Scan must not depend on where a
// prefix was declared or how long its URI is. Each attack document is compared
// with a twin of the same size and shape that differs only there; before, Scan
// walked every binding in scope for each prefixed name (64 declarations on each of
// 64 levels) and compared the URIs of every pair of same-named attributes byte by
// byte, so that one 32 MiB body held a verification slot for minutes.
func TestScanNamespaceCost(t *testing.T) {
	attrs := func(format string) string {
		var b strings.Builder
		b.WriteString("<a")
		for i := range 62 {
			fmt.Fprintf(&b, format, i)
		}
		return b.String() + "/>"
	}
	// Long URIs that differ at their end (attack) or at their start (twin):
	// 62 attributes p0:x … p61:x in 62 namespaces, 1,891 pairs per element.
	longURIs := func(differAtEnd bool) []byte {
		var b strings.Builder
		b.WriteString(`<Antragspaket xmlns="urn:amtsbote:antragspaket:1"`)
		pad := strings.Repeat("a", 64<<10)
		for i := range 62 {
			if differAtEnd {
				fmt.Fprintf(&b, ` xmlns:p%d="urn:%s%02d"`, i, pad, i)
			} else {
				fmt.Fprintf(&b, ` xmlns:p%d="urn:%02d%s"`, i, i, pad)
			}
		}
		b.WriteString(">" + strings.Repeat(attrs(` p%d:x=""`), 200) + "</Antragspaket>")
		return []byte(b.String())
	}
	// 62 levels of 63 declarations each; the prefix the elements use is declared
	// at the root, under all of them (attack), or on the innermost level (twin).
	deep := func(atRoot bool) []byte {
		outer, inner := `xmlns:p="urn:p"`, `xmlns:z="urn:z"`
		if !atRoot {
			outer, inner = inner, outer
		}
		var b strings.Builder
		b.WriteString(`<Antragspaket xmlns="urn:amtsbote:antragspaket:1" ` + outer + ">")
		for d := range 62 {
			b.WriteString("<e")
			for k := range 63 {
				fmt.Fprintf(&b, ` xmlns:q%02d%02d="urn:q"`, d, k)
			}
			if d == 61 {
				b.WriteString(" " + inner)
			}
			b.WriteString(">")
		}
		b.WriteString(strings.Repeat(strings.Replace(attrs(` p:a%02d=""`), "<a", "<p:a", 1), 1000))
		b.WriteString(strings.Repeat("</e>", 62) + "</Antragspaket>")
		return []byte(b.String())
	}
	fastest := func(doc []byte) time.Duration {
		best := time.Duration(math.MaxInt64)
		for range 3 {
			t0 := time.Now()
			if err := Scan(doc, Limits{}); err != nil {
				t.Fatal(err)
			}
			best = min(best, time.Since(t0))
		}
		return best
	}
	for _, tc := range []struct {
		name         string
		attack, twin []byte
	}{
		{"long URIs differing at their end", longURIs(true), longURIs(false)},
		{"prefix declared under 3,906 others", deep(true), deep(false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.attack) != len(tc.twin) {
				t.Fatalf("the twins differ in size: %d, %d", len(tc.attack), len(tc.twin))
			}
			attack, twin := fastest(tc.attack), fastest(tc.twin)
			t.Logf("%d bytes: %v, twin %v", len(tc.attack), attack, twin)
			if attack > 4*twin+5*time.Millisecond {
				t.Errorf("Scan took %v, its twin of the same size %v: the cost depends on the namespaces' declarations", attack, twin)
			}
		})
	}
}

// TestScanManyBindings runs the namespace rules with more bindings in scope than
// Scan walks one by one, where it looks prefixes up in a map.
func TestScanManyBindings(t *testing.T) {
	var pad strings.Builder
	for i := range 40 {
		fmt.Fprintf(&pad, ` xmlns:n%d="urn:n%d"`, i, i)
	}
	head := `<Antragspaket xmlns="urn:amtsbote:antragspaket:1"` + pad.String() + ">"
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"prefixes bound", `<n3:a n7:k="1" n39:k="2"/>`, true},
		{"duplicate via prefixes", `<a xmlns:x="urn:u" xmlns:y="urn:u" x:k="1" y:k="2"/>`, false},
		{"duplicate via an outer prefix", `<a xmlns:x="urn:n5" x:k="1" n5:k="2"/>`, false},
		{"shadowed, then given back", `<a xmlns:n1="urn:other" n1:k="1" n2:k="2"><b xmlns:n2="urn:x"/></a><c n1:k="1" n2:k="2"/>`, true},
		{"given back, then duplicate", `<a xmlns:n1="urn:n2"><b n1:k="1" n2:k="2" xmlns:n2="urn:x"/></a><c xmlns:n1="urn:n2" n1:k="1" n2:k="2"/>`, false},
		{"out of scope after its element", `<a xmlns:q="urn:q"/><q:b/>`, false},
		{"default namespace undeclared and back", `<a xmlns=""><b/></a><Kopf/>`, true},
		{"undeclared prefix", `<a q:k="1"/>`, false},
		{"xml prefix", `<a xml:lang="de" n1:lang="x"/>`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := []byte(head + tc.body + "</Antragspaket>")
			err := Scan(doc, Limits{})
			_, std := ReadTree(doc, Limits{MaxAttributes: -1})
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && !errors.Is(err, ErrMalformed):
				t.Fatalf("want ErrMalformed, got %v", err)
			case tc.ok && std != nil:
				t.Fatalf("Scan accepts, the tree builder refuses: %v", std)
			}
		})
	}
}

// TestScanNonASCIINamesCost: Scan asks encoding/xml about non-ASCII names, and
// what it asks must not grow with the number of different names. Asked per
// name, a body of 32 MiB of different names (é0, é1, …) cost 10 s and 1.7 GB
// of allocations before any signature was looked at.
func TestScanNonASCIINamesCost(t *testing.T) {
	var b strings.Builder
	b.WriteString(minimalHead)
	n := 0
	for range 100 {
		b.WriteString("<Größe")
		for range 60 {
			fmt.Fprintf(&b, ` é%x="ü"`, n)
			n++
		}
		b.WriteString("/>")
	}
	b.WriteString("</Antragspaket>")
	doc := []byte(b.String())
	if _, err := ReadTree(doc, Limits{}); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(3, func() {
		if err := Scan(doc, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 50 {
		t.Errorf("Scan of %d different non-ASCII names: %.0f allocations", n+1, allocs)
	}
	// Per character, at the start of a name and further in: encoding/xml takes
	// é (U+00E9) in both places, the combining acute (U+0301) only further in,
	// and not 𐀀 (U+10000), which XML 1.0 fifth edition allows.
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"é", true}, {"aé", true}, {"é\u0301", true}, {"\u0301", false}, {"a𐀀", false}, {"𐀀", false}} {
		doc := []byte(minimalHead + "<" + tc.name + "/></Antragspaket>")
		err := Scan(doc, Limits{})
		_, std := ReadTree(doc, Limits{})
		if (err == nil) != tc.ok || (err == nil && std != nil) {
			t.Errorf("<%s/>: Scan %v, tree builder %v; want accepted %v", tc.name, err, std, tc.ok)
		}
	}
}

// TestScanNormalizedAttributeWhitespace: ScanNormalized gives the document as
// XML processors read attribute values — literal tab, line feed and carriage
// return are spaces there, CR LF one space, references stay — and raw itself
// when no value needs it; text is left alone (its line ends are Go's business
// and the same as everyone's).
func TestScanNormalizedAttributeWhitespace(t *testing.T) {
	plain := []byte(minimalHead + "<a>x\r\ny\tz</a></Antragspaket>")
	got, err := ScanNormalized(plain, Limits{})
	if err != nil || &got[0] != &plain[0] || len(got) != len(plain) {
		t.Fatalf("a document without such values: %v, a copy: %v", err, err == nil && &got[0] != &plain[0])
	}
	raw := []byte(`<Antragspaket xmlns="urn:amtsbote:antragspaket:1" ID="p" Version="1" x="a` + "\r\n" + `b` + "\t" + `c` + "\n\r" + `d&#10;e&#9;f">` +
		"<a y='1\r\n2'>t\r\n\tu</a></Antragspaket>")
	want := `<Antragspaket xmlns="urn:amtsbote:antragspaket:1" ID="p" Version="1" x="a b c  d&#10;e&#9;f">` +
		"<a y='1 2'>t\r\n\tu</a></Antragspaket>"
	got, err = ScanNormalized(raw, Limits{})
	if err != nil || string(got) != want {
		t.Fatalf("normalised:\n%q, %v\nwant\n%q", got, err, want)
	}
	if !strings.Contains(string(raw), "\r\n") {
		t.Fatal("raw was changed")
	}
	// Two prefixes whose namespace names differ only by a literal tab and a
	// space are one namespace: an attribute under both is a duplicate.
	dup := []byte(`<Antragspaket xmlns="urn:amtsbote:antragspaket:1" ID="p" Version="1" xmlns:p="urn:x y" xmlns:q="urn:x` + "\t" + `y" p:a="1" q:a="2"/>`)
	if _, err := ScanNormalized(dup, Limits{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("duplicate attribute after normalisation: %v, want ErrMalformed", err)
	}
}
