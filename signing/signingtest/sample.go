package signingtest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/beevik/etree"
)

// NamespaceSample is the namespace of SampleDocument's root (that of the Antragspaket).
const NamespaceSample = "urn:amtsbote:antragspaket:1"

// SampleDocument returns an unsigned Antragspaket-shaped document with root ID id,
// formFields <Feld> elements of form data (mixed namespaces, xsi:type QName content,
// characters that need escaping) and attachments inline base64 attachments of
// attachmentBytes each, bound by SHA-256 inside the document.
func SampleDocument(id string, formFields, attachments, attachmentBytes int) *etree.Element {
	root := etree.NewElement("Antragspaket")
	root.CreateAttr("xmlns", NamespaceSample)
	root.CreateAttr("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance")
	root.CreateAttr("xmlns:xs", "http://www.w3.org/2001/XMLSchema")
	root.CreateAttr("ID", id)
	root.CreateAttr("Version", "1")
	kopf := root.CreateElement("Kopf")
	kopf.CreateElement("NachrichtID").SetText("0b7e6f0c-5a5e-4c1e-9d55-" + fmt.Sprintf("%012d", len(id)))
	kopf.CreateElement("Erstellt").SetText("2026-11-28T12:00:00Z")
	kopf.CreateElement("Absender").SetText("amt24")
	l := kopf.CreateElement("Leistung")
	l.CreateElement("Schluessel").SetText("99123456789012")
	l.CreateElement("Name").SetText("Anmeldung einer Wohnung – Ä/Ö/Ü & <Sonderzeichen>")
	ort := kopf.CreateElement("Ort")
	ort.CreateElement("ARS").SetText("146120000000")
	ort.CreateElement("PLZ").SetText("01067")
	fach := root.CreateElement("Fachdaten")
	fach.CreateAttr("Schema", "urn:amtsbote:test:formular:1")
	form := fach.CreateElement("f:Formular")
	form.CreateAttr("xmlns:f", "urn:amtsbote:test:formular:1")
	for i := 0; i < formFields; i++ {
		f := form.CreateElement("f:Feld")
		f.CreateAttr("name", fmt.Sprintf("feld%04d", i))
		f.CreateAttr("xsi:type", "xs:string")
		f.SetText(fmt.Sprintf("Wert %d: a<b & c>d \"q\" 'a'", i))
	}
	anl := root.CreateElement("Anlagen")
	for i := 0; i < attachments; i++ {
		content := make([]byte, attachmentBytes)
		for j := range content {
			content[j] = byte(i*31 + j*7)
		}
		sum := sha256.Sum256(content)
		a := anl.CreateElement("Anlage")
		a.CreateAttr("id", fmt.Sprintf("anlage-%03d", i))
		a.CreateElement("Dateiname").SetText(fmt.Sprintf("nachweis-%03d.pdf", i))
		a.CreateElement("MimeType").SetText("application/pdf")
		a.CreateElement("Groesse").SetText(fmt.Sprint(len(content)))
		a.CreateElement("SHA256").SetText(hex.EncodeToString(sum[:]))
		a.CreateElement("Inhalt").SetText(base64.StdEncoding.EncodeToString(content))
	}
	return root
}

// BenchDocument is the unsigned ~10 KB (signed), ~120 element package used by the
// verify/sign benchmarks in signing and bench/xmlsec, so their numbers compare.
func BenchDocument() *etree.Element { return SampleDocument("bench-1", 85, 1, 600) }
