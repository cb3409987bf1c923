// Package formview turns the exact signed bytes of a stored Antragspaket into a view
// for people: the header (who, what, where, when), the applicant, the form data as a
// flat list of labelled fields, and the attachment list. The web mailbox shows it on
// its detail page; the transfer channel prints it as zusammenfassung.pdf (see PDF).
//
// The package was verified at intake; Read re-parses the stored copy with the paket
// parser only to display it (never to decide anything). Read is bounded (MaxFields,
// MaxValueRunes, MaxLabelRunes, MaxDepth) and never panics, whatever the input.
package formview

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/amtsbote/amtsbote/internal/german"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/beevik/etree"
	"golang.org/x/text/unicode/norm"
)

// View is a package made readable.
type View struct {
	MessageID   string
	Created     string // Erstellt, as the mailbox shows times (german.Time): "28.11.2026, 15:04 Uhr MEZ" (MESZ in summer)
	Sender      string // portal id (Absender)
	ServiceKey  string // LeiKa key
	ServiceName string
	Place       string // as the citizen gave it, e.g. "01067 Dresden (ARS 146120000000)"
	Applicant   []Field
	Form        []Field
	FormSchema  string
	Attachments []Attachment
	// CaseID is, for a Nachreichung, the gateway's case it belongs to (the
	// submission id of the case's first package). The package names only the
	// earlier NachrichtID (Kopf/Bezug), so the caller that knows the case sets
	// it; the PDF says so at the top, as the mailbox page does.
	CaseID string
}

// NachreichungHint is what the mailbox's page and the PDF say of a
// Nachreichung beside its case.
const NachreichungHint = "die antragstellende Person reicht zu diesem Eingang etwas nach, zum Beispiel auf eine Rückfrage"

// Field is one labelled value. A group (an XML element with children, a JSON object or
// array) is a Field with an empty Value followed by its members at Depth+1.
type Field struct {
	Label, Value string
	Depth        int
}

// Attachment describes one Anlage as the package declares it.
type Attachment struct {
	ID, FileName, MimeType string
	Size                   int64
	SHA256                 string
}

// Bounds of a View. They keep a detail page and a PDF readable and cheap whatever a
// portal sends: what goes beyond is cut and marked, never an error.
const (
	MaxFields     = 2000 // Applicant and Form fields together, the truncation note included
	MaxValueRunes = 4000 // one value; longer ones end in "…"
	MaxLabelRunes = 200  // one label
	MaxDepth      = 16   // deeper groups are shown at this depth
)

// TruncatedLabel labels the note that replaces the fields beyond MaxFields.
const TruncatedLabel = "Hinweis"

// ErrNotPackage is returned (wrapped) when the bytes are not a readable Antragspaket.
var ErrNotPackage = errors.New("formview: not a readable Antragspaket")

// limits for re-reading a stored package: generous (the gateway may be configured above
// the defaults; the bytes passed intake), but still bounded.
func limits() paket.Limits {
	return paket.Limits{
		MaxBytes:           256 << 20,
		MaxDepth:           256,
		MaxElements:        1_000_000,
		MaxAttributes:      256,
		MaxAttachments:     1000,
		MaxAttachmentBytes: 256 << 20,
	}
}

// Read parses the stored package bytes (signed or not; the signature is skipped) and
// returns its view. Errors wrap ErrNotPackage.
func Read(pkg []byte) (*View, error) {
	lim := limits()
	doc, err := paket.ReadTree(pkg, lim)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotPackage, err)
	}
	p, err := paket.Parse(doc.Root(), lim)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotPackage, err)
	}
	return FromPaket(p), nil
}

// FromPaket builds the view of an already parsed package.
func FromPaket(p *paket.Paket) *View {
	k := p.Kopf
	v := &View{
		MessageID:   clean(k.NachrichtID, MaxLabelRunes),
		Sender:      clean(k.Absender, MaxLabelRunes),
		ServiceKey:  clean(k.Leistung.Schluessel, MaxLabelRunes),
		ServiceName: clean(k.Leistung.Bezeichnung, MaxValueRunes),
		Place:       clean(place(k.Ort), MaxValueRunes),
		FormSchema:  clean(p.Fachdaten.Schema, MaxValueRunes),
	}
	if !k.Erstellt.IsZero() {
		v.Created = german.Time(k.Erstellt)
	}
	b := &builder{}
	if a := p.Antragsteller; a != nil {
		b.add("Vorname", a.GivenName, 0)
		b.add("Familienname", a.FamilyName, 0)
		b.add("E-Mail", a.Email, 0)
		if ad := a.Address; ad != nil {
			b.group("Anschrift", 0)
			b.add("Straße", strings.TrimSpace(ad.Street+" "+ad.HouseNo), 1)
			b.add("PLZ und Ort", strings.TrimSpace(ad.PostalCode+" "+ad.City), 1)
			b.add("Staat", ad.Country, 1)
		}
	}
	b.add("Vertrauensniveau", k.Vertrauensniveau, 0)
	if z := k.Zahlung; z != nil {
		b.add("Zahlung", strings.TrimSpace(z.Amount+" "+z.Currency+", Referenz "+z.Reference), 0)
	}
	v.Applicant = b.fields
	b.fields = nil
	if p.Fachdaten.JSON != nil {
		b.json(p.Fachdaten.JSON)
	} else {
		for _, e := range p.Fachdaten.XML {
			b.xml(e, 0)
		}
	}
	v.Form = b.fields
	if b.cut > 0 {
		note := Field{Label: TruncatedLabel, Value: fmt.Sprintf("Weitere Angaben nicht angezeigt (mehr als %d Felder); vollständig in den Fachdaten des Antrags", MaxFields-1)}
		if len(v.Form) > 0 {
			v.Form[len(v.Form)-1] = note // the note takes the last place, the total stays MaxFields
		} else {
			v.Applicant[len(v.Applicant)-1] = note
		}
	}
	for _, a := range p.Anlagen {
		v.Attachments = append(v.Attachments, Attachment{
			ID: clean(a.ID, MaxLabelRunes), FileName: clean(a.Dateiname, MaxLabelRunes),
			MimeType: clean(a.MimeType, MaxLabelRunes), Size: a.Groesse, SHA256: clean(a.SHA256, 64),
		})
	}
	return v
}

func place(o paket.Ort) string {
	s := strings.TrimSpace(o.PLZ + " " + o.Name)
	var keys []string
	if o.ARS != "" {
		keys = append(keys, "ARS "+o.ARS)
	}
	if o.AGS != "" {
		keys = append(keys, "AGS "+o.AGS)
	}
	if len(keys) == 0 {
		return s
	}
	if s == "" {
		return strings.Join(keys, ", ")
	}
	return s + " (" + strings.Join(keys, ", ") + ")"
}

// builder collects fields up to MaxFields (both lists together) and counts the rest.
type builder struct {
	fields []Field
	total  int
	cut    int
}

func (b *builder) push(f Field) {
	if b.total >= MaxFields {
		b.cut++
		return
	}
	b.total++
	if f.Depth > MaxDepth {
		f.Depth = MaxDepth
	}
	if f.Depth < 0 {
		f.Depth = 0
	}
	b.fields = append(b.fields, f)
}

// add appends a value field; empty values are left out.
func (b *builder) add(label, value string, depth int) {
	value = clean(value, MaxValueRunes)
	if value == "" {
		return
	}
	b.push(Field{Label: clean(label, MaxLabelRunes), Value: value, Depth: depth})
}

func (b *builder) group(label string, depth int) {
	b.push(Field{Label: clean(label, MaxLabelRunes), Depth: depth})
}

// full reports whether nothing more fits; walkers stop early (counting stays
// approximate beyond the bound: the note says "at least").
func (b *builder) full() bool { return b.total >= MaxFields && b.cut > 1000 }

// xml shows an element: its Bezeichnung attribute (the form's own label) or its
// name made readable, its text, its other attributes and its children.
func (b *builder) xml(e *etree.Element, depth int) {
	if b.full() {
		return
	}
	label := ""
	var attrs []etree.Attr
	for _, a := range e.Attr {
		switch {
		case a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns"):
		case a.Space == "" && a.Key == "Bezeichnung":
			label = a.Value
		default:
			attrs = append(attrs, a)
		}
	}
	if strings.TrimSpace(label) == "" {
		label = Humanize(e.Tag)
	}
	kids := e.ChildElements()
	var txt strings.Builder
	for _, t := range e.Child {
		if cd, ok := t.(*etree.CharData); ok && txt.Len() < 4*MaxValueRunes {
			txt.WriteString(cd.Data)
		}
	}
	value := strings.TrimSpace(txt.String())
	if len(kids) == 0 && len(attrs) == 0 {
		b.push(Field{Label: clean(label, MaxLabelRunes), Value: clean(value, MaxValueRunes), Depth: depth})
		return
	}
	b.push(Field{Label: clean(label, MaxLabelRunes), Value: clean(value, MaxValueRunes), Depth: depth})
	for _, a := range attrs {
		b.add(Humanize(a.Key), a.Value, depth+1)
	}
	for _, k := range kids {
		b.xml(k, depth+1)
	}
}

// json shows JSON form data in document order (a map would lose it), streaming tokens
// so that nesting and size stay bounded by the walk, not by a decoded tree.
func (b *builder) json(data []byte) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return
	}
	switch tok.(type) {
	case json.Delim:
		_ = b.jsonValue(dec, tok, "", -1)
	default:
		b.add("Wert", scalar(tok), 0)
	}
}

// jsonValue shows the value that starts with tok. label "" with depth -1 is the top
// level: its members are shown at depth 0 without a group line.
func (b *builder) jsonValue(dec *json.Decoder, tok json.Token, label string, depth int) error {
	d, ok := tok.(json.Delim)
	if !ok {
		if depth >= 0 {
			b.push(Field{Label: clean(label, MaxLabelRunes), Value: clean(scalar(tok), MaxValueRunes), Depth: depth})
		}
		return nil
	}
	if depth >= 0 {
		b.group(label, depth)
	}
	i := 0
	for dec.More() {
		if b.full() {
			return errors.New("full")
		}
		i++
		var itemLabel string
		if d == '{' {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := kt.(string)
			itemLabel = Humanize(key)
		} else {
			itemLabel = strconv.Itoa(i) + "."
			if label != "" {
				itemLabel = label + " " + strconv.Itoa(i)
			}
		}
		vt, err := dec.Token()
		if err != nil {
			return err
		}
		next := depth + 1
		if next > 10_000 { // encoding/json refuses deeper input anyway
			return errors.New("too deep")
		}
		if err := b.jsonValue(dec, vt, itemLabel, next); err != nil {
			return err
		}
	}
	_, err := dec.Token() // the closing delimiter
	if err == io.EOF {
		return nil
	}
	return err
}

func scalar(t json.Token) string {
	switch v := t.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		if v {
			return "ja"
		}
		return "nein"
	case nil:
		return ""
	}
	return fmt.Sprint(t)
}

// Humanize makes an element name or JSON key readable: "wasPasstNicht" -> "Was passt
// nicht", "geburts_datum" -> "Geburts datum", "PLZ" -> "PLZ", "ARSCode" -> "ARS code".
// A namespace prefix ("m:Beschreibung") is dropped.
func Humanize(name string) string {
	if i := strings.LastIndexByte(name, ':'); i >= 0 && i < len(name)-1 {
		name = name[i+1:]
	}
	name = clean(name, MaxLabelRunes)
	rs := []rune(name)
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, string(cur))
			cur = cur[:0]
		}
	}
	for i, r := range rs {
		switch {
		case r == '_' || r == '-' || r == '.' || unicode.IsSpace(r):
			flush()
			continue
		case unicode.IsUpper(r) && len(cur) > 0:
			prev := cur[len(cur)-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				flush()
			}
		}
		cur = append(cur, r)
	}
	flush()
	if len(words) == 0 {
		return name
	}
	for i, w := range words {
		wr := []rune(w)
		allUpper := len(wr) > 1
		for _, r := range wr {
			if !unicode.IsUpper(r) && !unicode.IsDigit(r) {
				allUpper = false
				break
			}
		}
		switch {
		case allUpper: // an abbreviation stays as it is
		case i == 0:
			wr[0] = unicode.ToUpper(wr[0])
			words[i] = string(wr)
		default:
			words[i] = strings.ToLower(w)
		}
	}
	return strings.Join(words, " ")
}

// clean makes s safe and bounded for display: valid UTF-8, Unicode NFC, control
// characters other than newline and tab replaced by a space, at most max runes (then
// "…"). NFC because portals on macOS send umlauts decomposed ("u" + U+0308), and the
// PDF places no combining marks (it has no text shaping); every text of the view and
// the PDF passes here.
func clean(s string, max int) string {
	if len(s) > 4*max+16 {
		s = s[:4*max+16]
	}
	s = norm.NFC.String(strings.ToValidUTF8(s, "\uFFFD"))
	var sb strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			sb.WriteRune('…')
			break
		}
		switch {
		case r == '\r':
			continue
		case r == '\n' || r == '\t':
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069):
			r = ' ' // bidi overrides could reorder what a clerk reads
		}
		sb.WriteRune(r)
		n++
	}
	out := strings.TrimSpace(sb.String())
	if !utf8.ValidString(out) {
		return ""
	}
	return out
}
