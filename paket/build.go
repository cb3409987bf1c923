package paket

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/beevik/etree"
)

// XML element and attribute names. They are the wire format: never rename one.
const (
	elRoot          = "Antragspaket"
	elKopf          = "Kopf"
	elNachrichtID   = "NachrichtID"
	elErstellt      = "Erstellt"
	elAbsender      = "Absender"
	elLeistung      = "Leistung"
	elSchluessel    = "Schluessel"
	elBezeichnung   = "Bezeichnung"
	elOrt           = "Ort"
	elARS           = "ARS"
	elAGS           = "AGS"
	elPLZ           = "PLZ"
	elName          = "Name"
	elNiveau        = "Vertrauensniveau"
	elRueckkanal    = "Rueckkanal"
	elZahlung       = "Zahlung"
	elBezug         = "Bezug"
	elReferenz      = "Referenz"
	elBetrag        = "Betrag"
	elWaehrung      = "Waehrung"
	elAntragsteller = "Antragsteller"
	elVorname       = "Vorname"
	elFamilienname  = "Familienname"
	elEMail         = "EMail"
	elAnschrift     = "Anschrift"
	elStrasse       = "Strasse"
	elHausnummer    = "Hausnummer"
	elStaat         = "Staat"
	elFachdaten     = "Fachdaten"
	elJSON          = "JSON"
	elAnlagen       = "Anlagen"
	elAnlage        = "Anlage"
	elDateiname     = "Dateiname"
	elMimeType      = "MimeType"
	elGroesse       = "Groesse"
	elSHA256        = "SHA256"
	elInhalt        = "Inhalt"

	atID       = "ID"
	atVersion  = "Version"
	atSchema   = "Schema"
	atFormat   = "Format"
	atReferenz = "Referenz"
)

// DSigNamespace is the XMLDSig namespace; Parse skips one Signature element in it when
// it is the root's last child.
const DSigNamespace = "http://www.w3.org/2000/09/xmldsig#"

// Format reports how the form data travels: FormatJSON when JSON is set, else FormatXML.
func (f Fachdaten) Format() string {
	if f.JSON != nil {
		return FormatJSON
	}
	return FormatXML
}

// XMLBytes serializes the inline form elements one after the other, each carrying the
// namespace declarations it needs, e.g. for a transfer folder's fachdaten.xml.
func (f Fachdaten) XMLBytes() []byte {
	var buf bytes.Buffer
	ws := etree.WriteSettings{}
	for _, e := range f.XML {
		e.WriteTo(&buf, &ws)
	}
	return buf.Bytes()
}

// FachdatenXML returns form data carried as inline XML elements. Each element should
// declare its own namespace (xmlns on itself); unqualified elements would otherwise
// land in the package namespace.
func FachdatenXML(schema string, elems ...*etree.Element) Fachdaten {
	return Fachdaten{Schema: schema, XML: elems}
}

// FachdatenJSON returns form data carried as JSON text. Large forms should use it: one
// element instead of thousands keeps signature verification cheap.
func FachdatenJSON(schema string, data []byte) Fachdaten {
	if data == nil {
		data = []byte{}
	}
	return Fachdaten{Schema: schema, JSON: data}
}

// NewAnlage returns an inline attachment with size and SHA-256 computed from content.
func NewAnlage(id, fileName, mimeType string, content []byte) Anlage {
	sum := sha256.Sum256(content)
	return Anlage{ID: id, Dateiname: fileName, MimeType: mimeType, Groesse: int64(len(content)),
		SHA256: hex.EncodeToString(sum[:]), Inhalt: content}
}

// Element builds the unsigned root element. It does not validate: use Validate (or
// Parse the result) before signing something built from untrusted values.
func (p *Paket) Element() *etree.Element {
	root := etree.NewElement(elRoot)
	root.CreateAttr("xmlns", Namespace)
	root.CreateAttr(atID, p.ID)
	root.CreateAttr(atVersion, Version)

	k := root.CreateElement(elKopf)
	leaf(k, elNachrichtID, p.Kopf.NachrichtID)
	leaf(k, elErstellt, formatTime(p.Kopf.Erstellt))
	leaf(k, elAbsender, p.Kopf.Absender)
	l := k.CreateElement(elLeistung)
	leaf(l, elSchluessel, p.Kopf.Leistung.Schluessel)
	leaf(l, elBezeichnung, p.Kopf.Leistung.Bezeichnung)
	o := k.CreateElement(elOrt)
	optLeaf(o, elARS, p.Kopf.Ort.ARS)
	optLeaf(o, elAGS, p.Kopf.Ort.AGS)
	optLeaf(o, elPLZ, p.Kopf.Ort.PLZ)
	optLeaf(o, elName, p.Kopf.Ort.Name)
	optLeaf(k, elNiveau, p.Kopf.Vertrauensniveau)
	leaf(k, elRueckkanal, p.Kopf.Rueckkanal)
	if z := p.Kopf.Zahlung; z != nil {
		ze := k.CreateElement(elZahlung)
		leaf(ze, elReferenz, z.Reference)
		leaf(ze, elBetrag, z.Amount)
		leaf(ze, elWaehrung, z.Currency)
	}
	optLeaf(k, elBezug, p.Kopf.Bezug)

	if a := p.Antragsteller; a != nil {
		ae := root.CreateElement(elAntragsteller)
		optLeaf(ae, elVorname, a.GivenName)
		leaf(ae, elFamilienname, a.FamilyName)
		optLeaf(ae, elEMail, a.Email)
		if ad := a.Address; ad != nil {
			ad2 := ae.CreateElement(elAnschrift)
			leaf(ad2, elStrasse, ad.Street)
			optLeaf(ad2, elHausnummer, ad.HouseNo)
			leaf(ad2, elPLZ, ad.PostalCode)
			leaf(ad2, elOrt, ad.City)
			optLeaf(ad2, elStaat, ad.Country)
		}
	}

	f := root.CreateElement(elFachdaten)
	f.CreateAttr(atSchema, p.Fachdaten.Schema)
	f.CreateAttr(atFormat, p.Fachdaten.Format())
	if p.Fachdaten.JSON != nil {
		leaf(f, elJSON, string(p.Fachdaten.JSON))
	} else {
		for _, e := range p.Fachdaten.XML {
			if e != nil {
				f.AddChild(e.Copy())
			}
		}
	}

	if len(p.Anlagen) > 0 {
		as := root.CreateElement(elAnlagen)
		for _, a := range p.Anlagen {
			ae := as.CreateElement(elAnlage)
			ae.CreateAttr(atID, a.ID)
			if a.Referenz != "" {
				ae.CreateAttr(atReferenz, a.Referenz)
			}
			leaf(ae, elDateiname, a.Dateiname)
			leaf(ae, elMimeType, a.MimeType)
			leaf(ae, elGroesse, strconv.FormatInt(a.Groesse, 10))
			leaf(ae, elSHA256, a.SHA256)
			if a.Referenz == "" || a.Inhalt != nil {
				leaf(ae, elInhalt, base64.StdEncoding.EncodeToString(a.Inhalt))
			}
		}
	}
	return root
}

// Marshal serializes the unsigned package as a document with an XML declaration.
func (p *Paket) Marshal() []byte {
	doc := etree.NewDocument()
	// Escape CR, TAB and LF where a parser would otherwise normalize them away, so form
	// data and JSON text survive a round trip byte for byte.
	doc.WriteSettings.CanonicalText = true
	doc.WriteSettings.CanonicalAttrVal = true
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	doc.SetRoot(p.Element())
	b, _ := doc.WriteToBytes() // writing to a bytes.Buffer cannot fail
	return b
}

// Validate applies Parse's rules to what Element would emit, so a portal or the demo
// can check a package before signing it.
func (p *Paket) Validate(lim Limits) error {
	_, err := Parse(p.Element(), lim)
	return err
}

func leaf(parent *etree.Element, tag, text string) {
	parent.CreateElement(tag).SetText(text)
}

func optLeaf(parent *etree.Element, tag, text string) {
	if text != "" {
		leaf(parent, tag, text)
	}
}

func formatTime(t time.Time) string {
	return t.Format(time.RFC3339Nano)
}
