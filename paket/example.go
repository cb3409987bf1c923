package paket

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// Example values; the demo and tests refer to them.
const (
	ExampleServiceName = "Meldung von Mängeln im Stadt- oder Gemeindegebiet"
	ExampleSender      = "amt24"
	ExamplePlace       = "Dresden"
	// ExampleFormNamespace is the namespace (and Schema URI) of the example's form data.
	ExampleFormNamespace = "urn:amt24:formular:maengelanzeige:1.0"
	ExampleComplaint     = "Der Papierkorb an der Bushaltestelle ist voll."
	ExamplePriority      = "hoch"
	// ExampleAddendum is what the example's Nachreichung (ExampleNachreichung)
	// says in its form.
	ExampleAddendum = "Der Papierkorb quillt inzwischen über; ein Foto liegt bei."
)

// NewMessageID returns a random (version 4) UUID for Kopf.NachrichtID.
func NewMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Example returns the Amt24 example package (a report of a full litter bin in Dresden
// by Iris Hübner, with a PDF of the form) with a fresh NachrichtID and the current time.
// leikaKey is the LeiKa key of ExampleServiceName; the caller looks it up in the
// directory, so the example routes exactly like a real package.
func Example(leikaKey string) *Paket {
	return ExampleWith(leikaKey, NewMessageID(), time.Now().UTC().Truncate(time.Second))
}

// ExampleWith is Example with a fixed NachrichtID and creation time, for reproducible
// samples and tests.
func ExampleWith(leikaKey, messageID string, created time.Time) *Paket {
	return example(leikaKey, messageID, created, ExampleComplaint)
}

// ExampleNachreichung returns Iris Hübner's Nachreichung to the example package
// whose NachrichtID is bezug: the same form saying ExampleAddendum, a PDF of
// the photo as its attachment, a fresh NachrichtID and the current time.
func ExampleNachreichung(leikaKey, bezug string) *Paket {
	id := NewMessageID()
	p := example(leikaKey, id, time.Now().UTC().Truncate(time.Second), ExampleAddendum)
	p.Kopf.Bezug = bezug
	p.Anlagen = []Anlage{NewAnlage("anlage-1", "foto-papierkorb-"+id+".pdf", "application/pdf", ExamplePDF(strings.Join([]string{
		"Nachreichung (Amt24)",
		"",
		"Foto des Papierkorbs an der Bushaltestelle",
		"Antragstellerin: Iris Hübner",
		"",
		"zu Nachricht: " + bezug,
		"Nachricht: " + id,
	}, "\n")))}
	return p
}

// example is the Amt24 example package whose form says complaint.
func example(leikaKey, messageID string, created time.Time, complaint string) *Paket {
	form := etree.NewElement("m:Maengelanzeige")
	form.CreateAttr("xmlns:m", ExampleFormNamespace)
	desc := form.CreateElement("m:Beschreibung")
	desc.CreateAttr("Bezeichnung", "Was passt Ihnen nicht")
	desc.SetText(complaint)
	prio := form.CreateElement("m:Prioritaet")
	prio.CreateAttr("Bezeichnung", "Priorität")
	prio.SetText(ExamplePriority)

	pdf := ExamplePDF(strings.Join([]string{
		"Mängelanzeige (Amt24)",
		"",
		"Leistung: " + ExampleServiceName,
		"Ort: " + ExamplePlace,
		"Antragstellerin: Iris Hübner",
		"",
		"Was passt Ihnen nicht: " + complaint,
		"Priorität: " + ExamplePriority,
		"",
		"Nachricht: " + messageID,
	}, "\n"))

	return &Paket{
		ID: "paket-" + messageID,
		Kopf: Kopf{
			NachrichtID: messageID,
			Erstellt:    created,
			Absender:    ExampleSender,
			Leistung:    Leistung{Schluessel: leikaKey, Bezeichnung: ExampleServiceName},
			Ort:         Ort{Name: ExamplePlace},
			Rueckkanal:  "postfach:amt24/" + messageID,
		},
		Antragsteller: &Antragsteller{
			GivenName: "Iris", FamilyName: "Hübner", Email: "iris.huebner@example.org",
			Address: &Address{Street: "Altmarkt", HouseNo: "1", PostalCode: "01067", City: "Dresden", Country: "DE"},
		},
		Fachdaten: FachdatenXML(ExampleFormNamespace, form),
		Anlagen: []Anlage{
			NewAnlage("anlage-1", "maengelanzeige-v1.0-"+messageID+".pdf", "application/pdf", pdf),
		},
	}
}

// BigFormNamespace is the namespace of the form data Big generates.
const BigFormNamespace = "urn:amtsbote:test:grossformular:1"

// Big returns a deterministic test package with about `elements` elements in the whole
// document (exactly, when elements is at least the fixed part plus 6 per attachment)
// and `attachments` small PDF attachments. Big(120, 1) is the ~10 KB package the
// benchmarks use; Big(5000, 100) the large one.
func Big(elements, attachments int) *Paket {
	const id = "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f"
	p := ExampleWith("99000000000000", id, time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	p.Kopf.Ort = Ort{ARS: "146120000000", PLZ: "01067", Name: "Dresden"}
	p.Kopf.Vertrauensniveau = LevelSubstantial
	p.Anlagen = nil
	for i := range attachments {
		name := fmt.Sprintf("anlage-%03d.pdf", i+1)
		p.Anlagen = append(p.Anlagen, NewAnlage(fmt.Sprintf("anlage-%d", i+1), name, "application/pdf",
			ExamplePDF(fmt.Sprintf("Anlage %d von %d\nTestpaket %s", i+1, attachments, id))))
	}
	form := etree.NewElement("g:Formular")
	form.CreateAttr("xmlns:g", BigFormNamespace)
	p.Fachdaten = FachdatenXML(BigFormNamespace, form)
	fixed := countElements(p.Element())
	for i := 1; i <= elements-fixed; i++ {
		f := form.CreateElement("g:Feld")
		f.CreateAttr("Nr", fmt.Sprint(i))
		f.CreateAttr("Bezeichnung", fmt.Sprintf("Angabe %d im Formular", i))
		f.SetText(fmt.Sprintf("Wert der Angabe %d, frei formuliert", i))
	}
	return p
}

func countElements(e *etree.Element) int {
	n := 1
	for _, c := range e.ChildElements() {
		n += countElements(c)
	}
	return n
}
