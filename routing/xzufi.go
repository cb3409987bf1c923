package routing

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The XZuFi import reads the part of an XZuFi 2.2 "schreibe" message the directory
// needs: leistung, organisationseinheit and zustaendigkeit records. Elements are
// matched by local name, so any namespace prefix works; elements the directory does
// not use are skipped. docs/directory.md lists the accepted elements and
// testdata/directory/schreibe.xml is a complete example.

type xzLeistung struct {
	ID              string   `xml:"id"`
	Schluessel      string   `xml:"leistungsschluessel"`
	ReferenzLeiKa   string   `xml:"referenzLeiKa"`
	Bezeichnung     string   `xml:"bezeichnung"`
	Synonyme        []string `xml:"synonym"`
	Lebenslagen     []string `xml:"lebenslage"`
	Kurztext        string   `xml:"kurztext"`
	Voraussetzungen string   `xml:"voraussetzungen"`
	Verfahren       string   `xml:"verfahrensablauf"`
	Unterlagen      string   `xml:"erforderlicheUnterlagen"`
	Fristen         string   `xml:"fristen"`
	Kosten          string   `xml:"kosten"`
	Rechtsgrundlage string   `xml:"rechtsgrundlage"`
	Quelle          string   `xml:"quelle"`
}

type xzAnschrift struct {
	Typ        string `xml:"typ,attr"`
	Strasse    string `xml:"strasse"`
	Hausnummer string `xml:"hausnummer"`
	Postfach   string `xml:"postfach"`
	PLZ        string `xml:"postleitzahl"`
	Ort        string `xml:"ort"`
}

type xzKommunikation struct {
	Kanal   string `xml:"kanal"`
	Kennung string `xml:"kennung"`
}

type xzZustellkanal struct {
	Art       string `xml:"art"`
	Reifegrad int    `xml:"reifegrad"`
	Adresse   string `xml:"adresse"`
}

type xzOrganisationseinheit struct {
	ID            string            `xml:"id"`
	Name          string            `xml:"name"`
	Uebergeordnet string            `xml:"uebergeordneteOrganisationseinheitID"`
	Anschriften   []xzAnschrift     `xml:"anschrift"`
	Kommunikation []xzKommunikation `xml:"kommunikation"`
	Zustellkanal  []xzZustellkanal  `xml:"zustellkanal"`
	Zertifikate   []string          `xml:"zertifikat"`
	Beispiel      bool              `xml:"beispiel"`
}

type xzZustaendigkeit struct {
	LeistungID          string  `xml:"leistungID"`
	Leistungsschluessel string  `xml:"leistungsschluessel"`
	GebietID            string  `xml:"gebietID"`
	OrganisationID      string  `xml:"organisationseinheitID"`
	Rolle               xzRolle `xml:"rolle"`
}

// xzRolle is the role of a zustaendigkeit: text ("zustaendig"), a name element
// (rolle/name, as PVOG's transfer objects write it next to the code), or a code
// element (rolle/code), which is refused. Other children are collected so the reader
// can refuse them: an element it skipped would leave the text empty, which means
// "zustaendig".
type xzRolle struct {
	Text  string    `xml:",chardata"`
	Code  string    `xml:"code"`
	Name  []string  `xml:"name"`
	Other []xzOther `xml:",any"`
}

type xzOther struct {
	XMLName xml.Name
}

// ParseXZuFi reads an XZuFi 2.2 subset (see the comment above). name appears in
// errors together with the line of the offending record.
func ParseXZuFi(name string, r io.Reader) (*Source, error) {
	dec := xml.NewDecoder(io.LimitReader(r, maxFileSize))
	src := &Source{}
	leikaByID := map[string]string{} // XZuFi leistung id -> LeiKa key
	type pendingResp struct {
		x    xzZustaendigkeit
		line int
	}
	var resps []pendingResp
	sawRoot := false
	for {
		line, _ := dec.InputPos()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			l, _ := dec.InputPos()
			return nil, &DataError{File: name, Line: l, Msg: "not well-formed XML", Err: err}
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		at := func() string { return fmt.Sprintf("%s:%d", name, line) }
		bad := func(msg string, err error) error {
			var syn *xml.SyntaxError
			if errors.As(err, &syn) {
				return &DataError{File: name, Line: syn.Line, Msg: "not well-formed XML", Err: err}
			}
			return &DataError{File: name, Line: line, Msg: msg, Err: err}
		}
		switch se.Name.Local {
		case "leistung":
			var x xzLeistung
			if err := dec.DecodeElement(&x, &se); err != nil {
				return nil, bad("leistung", err)
			}
			key := strings.TrimSpace(x.Schluessel)
			if key == "" {
				key = strings.TrimSpace(x.ReferenzLeiKa)
			}
			key = strings.TrimPrefix(key, "urn:de:fim:leika:leistung:")
			if key == "" {
				return nil, bad("leistung without leistungsschluessel", nil)
			}
			if x.ID != "" {
				leikaByID[strings.TrimSpace(x.ID)] = key
			}
			s := &Service{
				Key: key, Name: strings.TrimSpace(x.Bezeichnung), Synonyms: trimAll(x.Synonyme),
				Lebenslage: trimAll(x.Lebenslagen), ShortText: strings.TrimSpace(x.Kurztext), Source: x.Quelle,
				Texts: Texts{
					Voraussetzungen: strings.TrimSpace(x.Voraussetzungen), Verfahrensablauf: strings.TrimSpace(x.Verfahren),
					ErforderlicheUnterlagen: strings.TrimSpace(x.Unterlagen), Fristen: strings.TrimSpace(x.Fristen),
					Kosten: strings.TrimSpace(x.Kosten), Rechtsgrundlage: strings.TrimSpace(x.Rechtsgrundlage),
				},
			}
			src.Services = append(src.Services, s)
			src.setOrigin("service", s.Key, at())
		case "organisationseinheit":
			var x xzOrganisationseinheit
			if err := dec.DecodeElement(&x, &se); err != nil {
				return nil, bad("organisationseinheit", err)
			}
			o := &Office{
				ID: strings.TrimSpace(x.ID), Name: strings.TrimSpace(x.Name), ParentID: strings.TrimSpace(x.Uebergeordnet),
				CertRefs: trimAll(x.Zertifikate), Sample: x.Beispiel, SourceFile: at(),
			}
			for _, a := range x.Anschriften {
				addr := Address{Street: strings.TrimSpace(strings.TrimSpace(a.Strasse) + " " + strings.TrimSpace(a.Hausnummer)),
					Postfach: strings.TrimSpace(a.Postfach), Postcode: strings.TrimSpace(a.PLZ), City: strings.TrimSpace(a.Ort)}
				switch strings.ToLower(a.Typ) {
				case "postfach", "postanschrift", "post":
					o.Postal = addr
				default:
					if addr.Street == "" && addr.Postfach != "" {
						o.Postal = addr
					} else {
						o.Street = addr
					}
				}
			}
			for _, k := range x.Kommunikation {
				v := strings.TrimSpace(k.Kennung)
				switch strings.ToLower(strings.TrimSpace(k.Kanal)) {
				case "telefon", "phone":
					o.Contact.Phone = v
				case "email", "e-mail":
					o.Contact.Email = v
				case "web", "url", "internet":
					o.Contact.Web = v
				}
			}
			for _, z := range x.Zustellkanal {
				o.Channels = append(o.Channels, Channel{Kind: strings.ToLower(strings.TrimSpace(z.Art)), Level: z.Reifegrad, Endpoint: strings.TrimSpace(z.Adresse)})
			}
			src.Offices = append(src.Offices, o)
			src.setOrigin("office", o.ID, at())
		case "zustaendigkeit":
			var x xzZustaendigkeit
			if err := dec.DecodeElement(&x, &se); err != nil {
				return nil, bad("zustaendigkeit", err)
			}
			resps = append(resps, pendingResp{x, line})
		default:
			sawRoot = true
		}
	}
	if !sawRoot && len(src.Services)+len(src.Offices)+len(resps) == 0 {
		return nil, &DataError{File: name, Msg: "empty document"}
	}
	for _, p := range resps {
		x := p.x
		key := strings.TrimPrefix(strings.TrimSpace(x.Leistungsschluessel), "urn:de:fim:leika:leistung:")
		if key == "" {
			k, ok := leikaByID[strings.TrimSpace(x.LeistungID)]
			if !ok {
				return nil, &DataError{File: name, Line: p.line, Msg: fmt.Sprintf("zustaendigkeit: leistungID %q not defined in this file and no leistungsschluessel given", x.LeistungID)}
			}
			key = k
		}
		area := strings.TrimSpace(x.GebietID)
		if i := strings.LastIndexByte(area, ':'); i >= 0 {
			area = area[i+1:] // urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs:146120000000
		}
		if c := strings.TrimSpace(x.Rolle.Code); c != "" {
			// The coded form of XZuFi 2.2 and PVOG (rolle/code, e.g. "01"): its code
			// list is not part of amtsbote's data, and taking the element's empty text
			// made every such record "zustaendig", so a contact point recorded after
			// the responsible office replaced it. Refuse rather than guess.
			return nil, &DataError{File: name, Line: p.line, Msg: fmt.Sprintf(
				"zustaendigkeit: rolle given as code %q, which amtsbote cannot map; write the role as text: %s or %s",
				c, RoleZustaendig, RoleMitwirkend)}
		}
		role, err := xzRole(x.Rolle)
		if err != nil {
			return nil, &DataError{File: name, Line: p.line, Msg: "zustaendigkeit", Err: err}
		}
		rs := Responsibility{ServiceKey: key, AreaKey: area, OfficeID: strings.TrimSpace(x.OrganisationID), Role: role,
			origin: fmt.Sprintf("%s:%d", name, p.line)}
		src.Responsibilities = append(src.Responsibilities, rs)
	}
	return src, nil
}

// xzRole reads a rolle element that has no code: its text or its name element,
// folded as the YAML roles are ("Zuständig" is zustaendig). A name such as
// "Ansprechpunkt" maps to no role and is refused; so are a child the reader does not
// know, several names, and text and name that disagree. Before, <rolle><name>
// Ansprechpunkt</name></rolle> read as the empty text, so a contact point became the
// responsible office without a word.
func xzRole(r xzRolle) (string, error) {
	if len(r.Other) > 0 {
		return "", fmt.Errorf("rolle has element <%s>, which amtsbote does not read; write the role as text or rolle/name: %s or %s",
			r.Other[0].XMLName.Local, RoleZustaendig, RoleMitwirkend)
	}
	if len(r.Name) > 1 {
		return "", fmt.Errorf("rolle has %d name elements; want one", len(r.Name))
	}
	text := strings.TrimSpace(r.Text)
	if len(r.Name) == 0 {
		return normalizeRole(text)
	}
	n := strings.TrimSpace(r.Name[0])
	if n == "" {
		return "", fmt.Errorf("rolle/name is empty; want %s or %s", RoleZustaendig, RoleMitwirkend)
	}
	role, err := normalizeRole(n)
	if err != nil {
		return "", err
	}
	if text != "" {
		if t, err := normalizeRole(text); err != nil || t != role {
			return "", fmt.Errorf("rolle text %q and name %q disagree", text, n)
		}
	}
	return role, nil
}

func trimAll(ss []string) []string {
	out := ss[:0:0]
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
