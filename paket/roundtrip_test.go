package paket

import (
	"bytes"
	"testing"
)

func samplePakete() map[string]*Paket {
	return map[string]*Paket{
		"example":  ExampleWith(testLeika, testMsgID, testTime),
		"full":     full(),
		"json":     jsonPaket(),
		"big-10k":  Big(120, 1),
		"big-5000": Big(5000, 100),
	}
}

// Build -> serialize -> etree -> Parse yields the values that went in, and a second
// round changes nothing.
func TestRoundTrip(t *testing.T) {
	for name, p := range samplePakete() {
		t.Run(name, func(t *testing.T) {
			got, err := reparse(t, p)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if d := diffPaket(p, got); d != "" {
				t.Fatal(d)
			}
			again, err := reparse(t, got)
			if err != nil {
				t.Fatalf("second Parse: %v", err)
			}
			if d := diffPaket(got, again); d != "" {
				t.Fatal("second round: " + d)
			}
			if !bytes.Equal(p.Marshal(), got.Marshal()) {
				t.Error("re-built package serializes differently")
			}
		})
	}
}

func TestBigSizes(t *testing.T) {
	for _, tc := range []struct {
		elements, attachments int
		minBytes, maxBytes    int
	}{
		{120, 1, 9_000, 12_000},
		{5000, 100, 200_000, 2_000_000},
	} {
		p := Big(tc.elements, tc.attachments)
		b := p.Marshal()
		if n := countElements(readRoot(t, b)); n != tc.elements {
			t.Errorf("Big(%d,%d): %d elements", tc.elements, tc.attachments, n)
		}
		if len(p.Anlagen) != tc.attachments {
			t.Errorf("Big(%d,%d): %d attachments", tc.elements, tc.attachments, len(p.Anlagen))
		}
		if len(b) < tc.minBytes || len(b) > tc.maxBytes {
			t.Errorf("Big(%d,%d): %d bytes, want %d..%d", tc.elements, tc.attachments, len(b), tc.minBytes, tc.maxBytes)
		}
	}
}

func TestExampleContent(t *testing.T) {
	p := Example("99123456789012")
	if r := checkUUID(p.Kopf.NachrichtID); r != "" {
		t.Fatalf("NachrichtID %q: %s", p.Kopf.NachrichtID, r)
	}
	if q := Example("99123456789012"); q.Kopf.NachrichtID == p.Kopf.NachrichtID {
		t.Error("two examples share a NachrichtID; a demo would submit duplicates")
	}
	got, err := reparse(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kopf.Leistung.Schluessel != "99123456789012" || got.Kopf.Absender != "amt24" ||
		got.Kopf.Ort.Query() != "Dresden" || got.Antragsteller.FamilyName != "Hübner" ||
		got.Kopf.Leistung.Bezeichnung != "Meldung von Mängeln im Stadt- oder Gemeindegebiet" {
		t.Errorf("unexpected example values: %+v %+v", got.Kopf, got.Antragsteller)
	}
	form := string(got.Fachdaten.XMLBytes())
	for _, want := range []string{`Bezeichnung="Was passt Ihnen nicht">Der Papierkorb an der Bushaltestelle ist voll.<`, `Bezeichnung="Priorität">hoch<`} {
		if !bytes.Contains([]byte(form), []byte(want)) {
			t.Errorf("form data lacks %s:\n%s", want, form)
		}
	}
	a := got.Anlagen[0]
	if a.Dateiname != "maengelanzeige-v1.0-"+p.Kopf.NachrichtID+".pdf" || a.MimeType != "application/pdf" ||
		!bytes.HasPrefix(a.Inhalt, []byte("%PDF-1.4")) {
		t.Errorf("attachment: %s %s %q", a.Dateiname, a.MimeType, a.Inhalt[:8])
	}
}

// TestExampleNachreichung: the demo's Nachreichung names the first package
// in Bezug, says the addendum in its form and carries the photo's PDF under a
// NachrichtID of its own.
func TestExampleNachreichung(t *testing.T) {
	first := Example("99123456789012")
	p := ExampleNachreichung("99123456789012", first.Kopf.NachrichtID)
	got, err := reparse(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kopf.Bezug != first.Kopf.NachrichtID || got.Kopf.NachrichtID == first.Kopf.NachrichtID || checkUUID(got.Kopf.NachrichtID) != "" {
		t.Fatalf("Bezug %q, NachrichtID %q (the first: %q)", got.Kopf.Bezug, got.Kopf.NachrichtID, first.Kopf.NachrichtID)
	}
	if form := got.Fachdaten.XMLBytes(); !bytes.Contains(form, []byte(">"+ExampleAddendum+"<")) {
		t.Errorf("form data lacks the addendum:\n%s", form)
	}
	if a := got.Anlagen; len(a) != 1 || a[0].Dateiname != "foto-papierkorb-"+got.Kopf.NachrichtID+".pdf" || !bytes.HasPrefix(a[0].Inhalt, []byte("%PDF-1.4")) {
		t.Errorf("attachments: %+v", a)
	}
}

func TestOrtQuery(t *testing.T) {
	for _, tc := range []struct {
		o    Ort
		want string
	}{
		{Ort{ARS: "146120000000", AGS: "14612000", PLZ: "01067", Name: "Dresden"}, "146120000000"},
		{Ort{AGS: "14612000", PLZ: "01067", Name: "Dresden"}, "14612000"},
		{Ort{PLZ: "01067", Name: "Dresden"}, "01067"},
		{Ort{Name: "Dresden"}, "Dresden"},
		{Ort{}, ""},
	} {
		if got := tc.o.Query(); got != tc.want {
			t.Errorf("%+v.Query() = %q, want %q", tc.o, got, tc.want)
		}
	}
}
