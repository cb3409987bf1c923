// Package paket is the application package format of amtsbote (Antragspaket v1):
// the Go types, a builder producing the unsigned XML root, a validating parser for the
// signature-verified element, a cheap streaming pre-check of raw bytes, and the XSD.
//
// The XML uses German element names (XÖV custom, ASCII-transliterated); the Go names
// are English or keep the German word where the integrator's API fixes it. docs/paket.md
// holds the glossary.
//
// Trust model: Parse must only ever see the element that the signature check returned
// (signing.Verify). Everything Parse reads is then covered by the signature, including
// each attachment's SHA-256, which is how attachments are bound to the signature.
package paket

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// Namespace is the XML namespace of every element of an Antragspaket v1.
const Namespace = "urn:amtsbote:antragspaket:1"

// Version is the value of the root's Version attribute this package writes and accepts.
const Version = "1"

// Paket is one application package (Antragspaket).
type Paket struct {
	ID            string // root ID attribute, the signature's reference target
	Kopf          Kopf
	Antragsteller *Antragsteller // nil when the portal sent none
	Fachdaten     Fachdaten
	Anlagen       []Anlage
}

// Kopf is the package header: everything routing, idempotency and answers need.
type Kopf struct {
	NachrichtID      string // UUID; idempotency key together with Absender
	Erstellt         time.Time
	Absender         string // portal id, e.g. "amt24"
	Leistung         Leistung
	Ort              Ort
	Vertrauensniveau string // eIDAS level: "", niedrig, substanziell, hoch
	Rueckkanal       string // https URL or portal mailbox reference
	Zahlung          *Zahlung
	// Bezug is the NachrichtID of an earlier application of the same
	// Absender that this one belongs to (a Nachreichung: the applicant's
	// answer to a Rückfrage, documents sent later); "" for a new case. The
	// gateway delivers it to the office that has that case, under its case id.
	Bezug string
}

// Leistung names the administrative service by its LeiKa key.
type Leistung struct{ Schluessel, Bezeichnung string }

// Ort is the place as the citizen gave it; at least one field is set.
type Ort struct{ ARS, AGS, PLZ, Name string }

// Query returns the most precise place the citizen gave: ARS, else AGS, else PLZ, else
// Name. Routing resolves it against the directory.
func (o Ort) Query() string {
	switch {
	case o.ARS != "":
		return o.ARS
	case o.AGS != "":
		return o.AGS
	case o.PLZ != "":
		return o.PLZ
	}
	return o.Name
}

// Zahlung is the reference to a payment the portal already collected.
type Zahlung struct {
	Reference string // Referenz: the payment provider's transaction reference
	Amount    string // Betrag: decimal with two fraction digits, e.g. "12.50"
	Currency  string // Waehrung: ISO 4217, e.g. "EUR"
}

// Antragsteller is the applicant as the portal identified them.
type Antragsteller struct {
	GivenName  string   // Vorname
	FamilyName string   // Familienname
	Email      string   // EMail
	Address    *Address // Anschrift
}

// Address is a postal address (Anschrift).
type Address struct {
	Street     string // Strasse
	HouseNo    string // Hausnummer
	PostalCode string // PLZ
	City       string // Ort
	Country    string // Staat, ISO 3166-1 alpha-2, default DE
}

// Fachdaten is the form data: inline XML elements or JSON text, never both. Format
// tells which (JSON != nil means JSON).
type Fachdaten struct {
	Schema string // schema URI of the form; receivers dispatch on it
	// XML holds the form's own elements. Parse returns detached copies that declare
	// every namespace they had in scope, so each one can be written out on its own.
	XML []*etree.Element
	// JSON holds the form data as JSON text, exactly as sent.
	JSON []byte
}

// Anlage is one attachment. Inhalt is nil when the content travels outside the XML
// (Referenz "cid:..."); the caller then checks it with VerifyContent.
type Anlage struct {
	ID, Dateiname, MimeType string
	Groesse                 int64
	SHA256                  string // lowercase hex
	Inhalt                  []byte
	Referenz                string
}

// CID is the Content-ID a "cid:" URL names (RFC 2392): the URL without its scheme,
// URL-unescaped ("cid:foo4%25foo1@bar.net" names Content-ID <foo4%foo1@bar.net>).
func CID(ref string) (string, error) {
	rest, ok := strings.CutPrefix(ref, "cid:")
	if !ok {
		// RFC 2392 schemes are case-insensitive.
		if len(ref) < 4 || !strings.EqualFold(ref[:4], "cid:") {
			return "", fmt.Errorf("%q is not a cid: URL", ref)
		}
		rest = ref[4:]
	}
	id, err := url.PathUnescape(rest)
	if err != nil || id == "" {
		return "", fmt.Errorf("%q is not a valid cid: URL", ref)
	}
	return id, nil
}

// ContentID is the id of a MIME part's Content-ID header value: "<foo@bar>" →
// "foo@bar" (RFC 2045 msg-id form; surrounding white space is ignored). "" if the
// value is not in angle brackets.
func ContentID(header string) string {
	h := strings.TrimSpace(header)
	if len(h) < 3 || h[0] != '<' || h[len(h)-1] != '>' {
		return ""
	}
	return h[1 : len(h)-1]
}
