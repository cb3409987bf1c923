package xta

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"strconv"
	"strings"
	"time"
)

// Namespaces and code lists.
const (
	NS       = "https://xoev.de/transport/xta/core/3.1.1"
	NSSoap12 = "http://www.w3.org/2003/05/soap-envelope"
	NSSoap11 = "http://schemas.xmlsoap.org/soap/envelope/"
	NSWSA    = "http://www.w3.org/2005/08/addressing"
	NSXOP    = "http://www.w3.org/2004/08/xop/include"

	// ActionBase prefixes every SOAP action: ActionBase + "<porttype>/<operation>".
	ActionBase = "https://xoev.de/transport/xta/core/"

	// Code lists named in the schema annotations (XTA-Webservice-Codes.xsd).
	ListDirectory    = "urn:xoev-de:kosit:codeliste:xta.core.directory"
	ListFehlernummer = "urn:xoev-de:kosit:codeliste:xta.core.fehlernummer"
)

// xw writes XML with the prefixes env (SOAP 1.2), xta (XTA core) and wsa. Text and
// attribute values are escaped; element names are trusted constants.
type xw struct{ bytes.Buffer }

func (w *xw) open(name string, attrs ...string) {
	w.WriteByte('<')
	w.WriteString(name)
	w.attrs(attrs)
	w.WriteByte('>')
}

func (w *xw) attrs(attrs []string) {
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] == "" && !strings.HasPrefix(attrs[i], "xmlns") {
			continue // optional attribute left out
		}
		w.WriteByte(' ')
		w.WriteString(attrs[i])
		w.WriteString(`="`)
		escapeAttr(&w.Buffer, attrs[i+1])
		w.WriteByte('"')
	}
}

func (w *xw) end(name string) {
	w.WriteString("</")
	w.WriteString(name)
	w.WriteByte('>')
}

// leaf writes <name attrs>text</name>.
func (w *xw) leaf(name, text string, attrs ...string) {
	w.open(name, attrs...)
	_ = xml.EscapeText(&w.Buffer, []byte(text))
	w.end(name)
}

// empty writes <name attrs/>.
func (w *xw) empty(name string, attrs ...string) {
	w.WriteByte('<')
	w.WriteString(name)
	w.attrs(attrs)
	w.WriteString("/>")
}

func escapeAttr(b *bytes.Buffer, s string) {
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\n':
			b.WriteString("&#xA;")
		case '\r':
			b.WriteString("&#xD;")
		case '\t':
			b.WriteString("&#x9;")
		default:
			if r < 0x20 || r == 0xFFFE || r == 0xFFFF {
				continue // not allowed in XML 1.0
			}
			b.WriteRune(r)
		}
	}
}

func xsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// ncname turns s into a valid xs:ID (an NCName): prefix plus s with every
// character outside [A-Za-z0-9._-] replaced.
func ncname(prefix, s string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Party names an XTA account: the Party header of a request, a Reader, an Author.
type Party struct {
	Identifier string // e.g. the DVDV organisation key "ags:14612000"
	Scheme     string // @identifierScheme, e.g. "xoev"
	Name       string // @name
	Category   string // @organizationCategory
	Directory  string // Directory/code, e.g. "DVDV" ("" leaves Directory out)
	// DirectoryListURI and DirectoryListVersion are the Directory's code list as a
	// request named it, echoed as given; empty: ListDirectory, DirectoryListVersion.
	DirectoryListURI     string
	DirectoryListVersion string
}

// String is the party for logs: scheme and identifier.
func (p Party) String() string {
	if p.Scheme == "" {
		return p.Identifier
	}
	return p.Scheme + ":" + p.Identifier
}

// writeParty writes the content of a PartyType (Identifier, Directory).
func (w *xw) writeParty(p Party) {
	w.leaf("xta:Identifier", p.Identifier, "identifierScheme", p.Scheme, "name", p.Name, "organizationCategory", p.Category)
	if p.Directory != "" {
		w.open("xta:Directory", "listURI", cmp.Or(p.DirectoryListURI, ListDirectory),
			"listVersionID", cmp.Or(p.DirectoryListVersion, DirectoryListVersion))
		w.leaf("code", p.Directory)
		w.end("xta:Directory")
	}
}

// DirectoryListVersion is the version of the directory code list written with
// the Directory codes of the gateway's own parties (a party a request named keeps
// the version it was named with).
const DirectoryListVersion = "1.0"
