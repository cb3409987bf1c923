package paket

import (
	"errors"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// Each case breaks one field of a valid package. field is the FieldError.Field Parse
// must name; xsd says whether the XSD refuses the same document (false where the rule is
// beyond XSD 1.0, e.g. ARS/AGS consistency or digests).
var fieldCases = []struct {
	name   string
	mut    func(p *Paket)
	field  string
	xsd    bool
	digest bool
}{
	{"ID empty", func(p *Paket) { p.ID = "" }, "Antragspaket/@ID", true, false},
	{"ID starts with digit", func(p *Paket) { p.ID = "1paket" }, "Antragspaket/@ID", true, false},
	{"ID with colon", func(p *Paket) { p.ID = "paket:1" }, "Antragspaket/@ID", true, false},
	{"NachrichtID not a UUID", func(p *Paket) { p.Kopf.NachrichtID = "123" }, "Antragspaket/Kopf/NachrichtID", true, false},
	{"NachrichtID braces", func(p *Paket) { p.Kopf.NachrichtID = "{" + testMsgID + "}" }, "Antragspaket/Kopf/NachrichtID", true, false},
	{"NachrichtID nil UUID", func(p *Paket) { p.Kopf.NachrichtID = "00000000-0000-0000-0000-000000000000" }, "Antragspaket/Kopf/NachrichtID", false, false},
	{"Absender upper case", func(p *Paket) { p.Kopf.Absender = "Amt24" }, "Antragspaket/Kopf/Absender", true, false},
	{"Absender empty", func(p *Paket) { p.Kopf.Absender = "" }, "Antragspaket/Kopf/Absender", true, false},
	{"LeiKa 13 digits", func(p *Paket) { p.Kopf.Leistung.Schluessel = "9900000000000" }, "Antragspaket/Kopf/Leistung/Schluessel", true, false},
	{"LeiKa wrong prefix", func(p *Paket) { p.Kopf.Leistung.Schluessel = "98000000000000" }, "Antragspaket/Kopf/Leistung/Schluessel", true, false},
	{"LeiKa with letters", func(p *Paket) { p.Kopf.Leistung.Schluessel = "9900000000000a" }, "Antragspaket/Kopf/Leistung/Schluessel", true, false},
	{"LeiKa padded", func(p *Paket) { p.Kopf.Leistung.Schluessel = " 99000000000000" }, "Antragspaket/Kopf/Leistung/Schluessel", true, false},
	{"Bezeichnung empty", func(p *Paket) { p.Kopf.Leistung.Bezeichnung = "" }, "Antragspaket/Kopf/Leistung/Bezeichnung", true, false},
	{"Bezeichnung newline", func(p *Paket) { p.Kopf.Leistung.Bezeichnung = "a\nb" }, "Antragspaket/Kopf/Leistung/Bezeichnung", true, false},
	{"Bezeichnung bidi override", func(p *Paket) { p.Kopf.Leistung.Bezeichnung = "a\u202eb" }, "Antragspaket/Kopf/Leistung/Bezeichnung", true, false},
	{"Bezeichnung trailing space", func(p *Paket) { p.Kopf.Leistung.Bezeichnung = "Meldung " }, "Antragspaket/Kopf/Leistung/Bezeichnung", true, false},
	{"Bezeichnung too long", func(p *Paket) { p.Kopf.Leistung.Bezeichnung = strings.Repeat("ä", 501) }, "Antragspaket/Kopf/Leistung/Bezeichnung", true, false},
	{"ARS 11 digits", func(p *Paket) { p.Kopf.Ort.ARS = "14612000000" }, "Antragspaket/Kopf/Ort/ARS", true, false},
	{"AGS letters", func(p *Paket) { p.Kopf.Ort.AGS = "1461200x" }, "Antragspaket/Kopf/Ort/AGS", true, false},
	{"PLZ 4 digits", func(p *Paket) { p.Kopf.Ort.PLZ = "1067" }, "Antragspaket/Kopf/Ort/PLZ", true, false},
	{"Ort Name control char", func(p *Paket) { p.Kopf.Ort.Name = "Dres\tden" }, "Antragspaket/Kopf/Ort/Name", true, false},
	{"Ort empty", func(p *Paket) { p.Kopf.Ort = Ort{} }, "Antragspaket/Kopf/Ort", true, false},
	{"ARS and AGS disagree", func(p *Paket) { p.Kopf.Ort.AGS = "14522000" }, "Antragspaket/Kopf/Ort", false, false},
	{"Vertrauensniveau unknown", func(p *Paket) { p.Kopf.Vertrauensniveau = "mittel" }, "Antragspaket/Kopf/Vertrauensniveau", true, false},
	{"Rueckkanal http", func(p *Paket) { p.Kopf.Rueckkanal = "http://amt24.sachsen.de/a" }, "Antragspaket/Kopf/Rueckkanal", true, false},
	{"Rueckkanal credentials", func(p *Paket) { p.Kopf.Rueckkanal = "https://u:p@amt24.sachsen.de/a" }, "Antragspaket/Kopf/Rueckkanal", true, false},
	{"Rueckkanal empty mailbox", func(p *Paket) { p.Kopf.Rueckkanal = "postfach:" }, "Antragspaket/Kopf/Rueckkanal", true, false},
	{"Rueckkanal mailto", func(p *Paket) { p.Kopf.Rueckkanal = "mailto:a@b.de" }, "Antragspaket/Kopf/Rueckkanal", true, false},
	{"Bezug not a UUID", func(p *Paket) { p.Kopf.Bezug = "4711" }, "Antragspaket/Kopf/Bezug", true, false},
	{"Bezug nil UUID", func(p *Paket) { p.Kopf.Bezug = "00000000-0000-0000-0000-000000000000" }, "Antragspaket/Kopf/Bezug", false, false},
	{"Bezug is the package itself", func(p *Paket) { p.Kopf.Bezug = strings.ToUpper(p.Kopf.NachrichtID) }, "Antragspaket/Kopf/Bezug", false, false},
	{"Rueckkanal empty", func(p *Paket) { p.Kopf.Rueckkanal = "" }, "Antragspaket/Kopf/Rueckkanal", true, false},
	{"Betrag comma", func(p *Paket) { p.Kopf.Zahlung.Amount = "12,50" }, "Antragspaket/Kopf/Zahlung/Betrag", true, false},
	{"Betrag one digit", func(p *Paket) { p.Kopf.Zahlung.Amount = "12.5" }, "Antragspaket/Kopf/Zahlung/Betrag", true, false},
	{"Betrag negative", func(p *Paket) { p.Kopf.Zahlung.Amount = "-1.00" }, "Antragspaket/Kopf/Zahlung/Betrag", true, false},
	{"Waehrung lower", func(p *Paket) { p.Kopf.Zahlung.Currency = "eur" }, "Antragspaket/Kopf/Zahlung/Waehrung", true, false},
	{"Zahlung Referenz empty", func(p *Paket) { p.Kopf.Zahlung.Reference = "" }, "Antragspaket/Kopf/Zahlung/Referenz", true, false},
	{"Familienname empty", func(p *Paket) { p.Antragsteller.FamilyName = "" }, "Antragspaket/Antragsteller/Familienname", true, false},
	{"EMail display name", func(p *Paket) { p.Antragsteller.Email = "Iris <iris@example.org>" }, "Antragspaket/Antragsteller/EMail", true, false},
	{"EMail no at", func(p *Paket) { p.Antragsteller.Email = "iris.example.org" }, "Antragspaket/Antragsteller/EMail", true, false},
	{"Anschrift PLZ DE 4 digits", func(p *Paket) { p.Antragsteller.Address.PostalCode = "1067" }, "Antragspaket/Antragsteller/Anschrift/PLZ", false, false},
	{"Anschrift Staat lower", func(p *Paket) { p.Antragsteller.Address.Country = "de" }, "Antragspaket/Antragsteller/Anschrift/Staat", true, false},
	{"Schema not a URI", func(p *Paket) { p.Fachdaten.Schema = "maengel formular" }, "Antragspaket/Fachdaten/@Schema", true, false},
	{"Schema relative", func(p *Paket) { p.Fachdaten.Schema = "/schema.xsd" }, "Antragspaket/Fachdaten/@Schema", true, false},
	{"Fachdaten no elements", func(p *Paket) { p.Fachdaten.XML = nil }, "Antragspaket/Fachdaten", true, false},
	{"Fachdaten unqualified", func(p *Paket) {
		p.Fachdaten.XML = []*etree.Element{etree.NewElement("Feld")}
	}, "Antragspaket/Fachdaten", true, false},
	{"Fachdaten JSON invalid", func(p *Paket) { p.Fachdaten = FachdatenJSON("urn:x:y", []byte(`{"a":`)) }, "Antragspaket/Fachdaten/JSON", false, false},
	{"Anlage ID digit first", func(p *Paket) { p.Anlagen[0].ID = "1" }, "Antragspaket/Anlagen/Anlage[1]/@ID", true, false},
	{"Anlage ID duplicate", func(p *Paket) { p.Anlagen[1].ID = p.Anlagen[0].ID }, "Antragspaket/Anlagen/Anlage[2]/@ID", true, false},
	{"Anlage ID equals root ID", func(p *Paket) { p.Anlagen[0].ID = p.ID }, "Antragspaket/Anlagen/Anlage[1]/@ID", true, false},
	{"Dateiname slash", func(p *Paket) { p.Anlagen[0].Dateiname = "../etc/passwd" }, "Antragspaket/Anlagen/Anlage[1]/Dateiname", true, false},
	{"Dateiname backslash", func(p *Paket) { p.Anlagen[0].Dateiname = `..\boot.ini` }, "Antragspaket/Anlagen/Anlage[1]/Dateiname", true, false},
	{"Dateiname dotdot", func(p *Paket) { p.Anlagen[0].Dateiname = ".." }, "Antragspaket/Anlagen/Anlage[1]/Dateiname", true, false},
	{"Dateiname dot", func(p *Paket) { p.Anlagen[0].Dateiname = "." }, "Antragspaket/Anlagen/Anlage[1]/Dateiname", false, false},
	{"Dateiname control", func(p *Paket) { p.Anlagen[0].Dateiname = "a\x7fb.pdf" }, "Antragspaket/Anlagen/Anlage[1]/Dateiname", true, false},
	{"Dateiname RLO", func(p *Paket) { p.Anlagen[0].Dateiname = "rechnung\u202efdp.exe" }, "Antragspaket/Anlagen/Anlage[1]/Dateiname", true, false},
	{"Dateiname colon", func(p *Paket) { p.Anlagen[0].Dateiname = "c:x.pdf" }, "Antragspaket/Anlagen/Anlage[1]/Dateiname", true, false},
	{"Dateiname trailing dot", func(p *Paket) { p.Anlagen[0].Dateiname = "a.pdf." }, "Antragspaket/Anlagen/Anlage[1]/Dateiname", true, false},
	{"Dateiname device", func(p *Paket) { p.Anlagen[0].Dateiname = "con.pdf" }, "Antragspaket/Anlagen/Anlage[1]/Dateiname", false, false},
	{"Dateiname too long", func(p *Paket) { p.Anlagen[0].Dateiname = strings.Repeat("a", 252) + ".pdf" }, "Antragspaket/Anlagen/Anlage[1]/Dateiname", true, false},
	// 256 characters in 508 bytes: the limit counts characters, like the XSD.
	{"Dateiname too long in characters", func(p *Paket) { p.Anlagen[0].Dateiname = strings.Repeat("ж", 252) + ".pdf" }, "Antragspaket/Anlagen/Anlage[1]/Dateiname", true, false},
	{"Dateiname empty", func(p *Paket) { p.Anlagen[0].Dateiname = "" }, "Antragspaket/Anlagen/Anlage[1]/Dateiname", true, false},
	{"MimeType no subtype", func(p *Paket) { p.Anlagen[0].MimeType = "application" }, "Antragspaket/Anlagen/Anlage[1]/MimeType", true, false},
	{"MimeType parameters", func(p *Paket) { p.Anlagen[0].MimeType = "text/plain; charset=utf-8" }, "Antragspaket/Anlagen/Anlage[1]/MimeType", true, false},
	{"MimeType header injection", func(p *Paket) { p.Anlagen[0].MimeType = "text/plain\r\nX: y" }, "Antragspaket/Anlagen/Anlage[1]/MimeType", true, false},
	{"Groesse negative", func(p *Paket) { p.Anlagen[0].Groesse = -1 }, "Antragspaket/Anlagen/Anlage[1]/Groesse", true, false},
	{"SHA256 short", func(p *Paket) { p.Anlagen[0].SHA256 = p.Anlagen[0].SHA256[:62] }, "Antragspaket/Anlagen/Anlage[1]/SHA256", true, false},
	{"SHA256 not hex", func(p *Paket) { p.Anlagen[0].SHA256 = strings.Repeat("g", 64) }, "Antragspaket/Anlagen/Anlage[1]/SHA256", true, false},
	{"SHA256 other content", func(p *Paket) { p.Anlagen[0].SHA256 = strings.Repeat("ab", 32) }, "Antragspaket/Anlagen/Anlage[1]/Inhalt", false, true},
	{"Groesse differs", func(p *Paket) { p.Anlagen[0].Groesse++ }, "Antragspaket/Anlagen/Anlage[1]/Inhalt", false, true},
	{"Inhalt changed", func(p *Paket) {
		p.Anlagen[0].Inhalt = append([]byte{}, p.Anlagen[0].Inhalt...)
		p.Anlagen[0].Inhalt[20] ^= 1
	}, "Antragspaket/Anlagen/Anlage[1]/Inhalt", false, true},
	{"Referenz not cid", func(p *Paket) { p.Anlagen[1].Referenz = "http://x/y" }, "Antragspaket/Anlagen/Anlage[2]/@Referenz", true, false},
	{"Referenz and Inhalt", func(p *Paket) { p.Anlagen[1].Inhalt = []byte("x") }, "Antragspaket/Anlagen/Anlage[2]", false, false},
	{"Referenz names the part of another Anlage", func(p *Paket) {
		a := p.Anlagen[1]
		a.ID = "foto-2"
		p.Anlagen = append(p.Anlagen, a)
	}, "Antragspaket/Anlagen/Anlage[3]/@Referenz", false, false},
}

func TestFieldRules(t *testing.T) {
	for _, tc := range fieldCases {
		t.Run(tc.name, func(t *testing.T) {
			p := full()
			tc.mut(p)
			_, err := reparse(t, p)
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalidField) {
				t.Fatalf("want *FieldError, got %v", err)
			}
			if fe.Field != tc.field {
				t.Errorf("Field = %q, want %q (%v)", fe.Field, tc.field, err)
			}
			if got := errors.Is(err, ErrAttachmentDigest); got != tc.digest {
				t.Errorf("errors.Is(ErrAttachmentDigest) = %v, want %v", got, tc.digest)
			}
			if errors.Is(err, ErrLimit) || errors.Is(err, ErrMalformed) {
				t.Errorf("field error also matches another class: %v", err)
			}
		})
	}
}

// The XSD refuses what it can express of the same rules, and accepts every case it
// cannot express (so it never contradicts Parse on a valid package).
func TestXSDAgreesWithFieldRules(t *testing.T) {
	for _, tc := range fieldCases {
		t.Run(tc.name, func(t *testing.T) {
			p := full()
			tc.mut(p)
			ok, out := xmllint(t, p.Marshal())
			if ok == tc.xsd {
				t.Errorf("XSD valid=%v, want valid=%v:\n%s", ok, !tc.xsd, out)
			}
		})
	}
}

// Values at the edge of each rule that must pass.
func TestFieldRulesAccept(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(p *Paket)
	}{
		{"upper-case UUID", func(p *Paket) { p.Kopf.NachrichtID = strings.ToUpper(testMsgID) }},
		{"only PLZ", func(p *Paket) { p.Kopf.Ort = Ort{PLZ: "01067"} }},
		{"only AGS", func(p *Paket) { p.Kopf.Ort = Ort{AGS: "14612000"} }},
		{"no Vertrauensniveau", func(p *Paket) { p.Kopf.Vertrauensniveau = "" }},
		{"niveau hoch", func(p *Paket) { p.Kopf.Vertrauensniveau = LevelHigh }},
		{"postfach", func(p *Paket) { p.Kopf.Rueckkanal = "postfach:amt24/4711" }},
		{"https with port", func(p *Paket) { p.Kopf.Rueckkanal = "https://portal.example:8443/x" }},
		{"no Zahlung", func(p *Paket) { p.Kopf.Zahlung = nil }},
		{"no Bezug", func(p *Paket) { p.Kopf.Bezug = "" }},
		{"Bezug without Zahlung", func(p *Paket) { p.Kopf.Zahlung = nil }},
		{"upper-case Bezug", func(p *Paket) { p.Kopf.Bezug = "0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0" }},
		{"zero amount", func(p *Paket) { p.Kopf.Zahlung.Amount = "0.00" }},
		{"no Antragsteller", func(p *Paket) { p.Antragsteller = nil }},
		{"foreign postal code", func(p *Paket) { p.Antragsteller.Address.Country = "NL"; p.Antragsteller.Address.PostalCode = "1012 AB" }},
		{"no Anschrift", func(p *Paket) { p.Antragsteller.Address = nil }},
		{"no Anlagen", func(p *Paket) { p.Anlagen = nil }},
		{"empty attachment", func(p *Paket) { p.Anlagen[0] = NewAnlage("leer", "leer.txt", "text/plain", []byte{}) }},
		{"umlaut file name", func(p *Paket) { p.Anlagen[0].Dateiname = "Mängel Foto (2).pdf" }},
		// 255 characters, 506 bytes: the XSD's maxLength counts characters, and Parse
		// once refused this by counting bytes.
		{"max length file name in characters", func(p *Paket) { p.Anlagen[0].Dateiname = strings.Repeat("ж", 251) + ".pdf" }},
		{"hidden-looking file name", func(p *Paket) { p.Anlagen[0].Dateiname = ".profil.pdf" }},
		{"upper-case digest", func(p *Paket) { p.Anlagen[0].SHA256 = strings.ToUpper(p.Anlagen[0].SHA256) }},
		{"mime with plus", func(p *Paket) { p.Anlagen[0].MimeType = "application/vnd.oasis.opendocument.text+xml" }},
		{"max length name", func(p *Paket) { p.Kopf.Ort.Name = strings.Repeat("ö", 200) }},
		{"json array", func(p *Paket) { p.Fachdaten = FachdatenJSON("urn:x:y", []byte(` [1, "ä"] `)) }},
		{"erstellt UTC nanos", func(p *Paket) { p.Kopf.Erstellt = testTime.UTC().Add(7) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := full()
			tc.mut(p)
			got, err := reparse(t, p)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if ok, out := xmllint(t, p.Marshal()); !ok {
				t.Errorf("XSD refuses a package Parse accepts:\n%s", out)
			}
			if r := checkUUID(got.Kopf.NachrichtID); r != "" || got.Kopf.NachrichtID != strings.ToLower(got.Kopf.NachrichtID) {
				t.Errorf("NachrichtID not normalized: %q", got.Kopf.NachrichtID)
			}
		})
	}
}
