package paket

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// Parse reads and validates a package from its root element. Call it only with the
// element the signature check returned (never with the tree the signature was checked
// on): what Parse returns is then exactly what the portal signed.
//
// Parse takes the tree: it moves the form's elements out of it into Fachdaten.XML
// (see detach), so the tree is not the package any more afterwards. A caller that
// needs it whole parses a copy (root.Copy()).
//
// Parse refuses unknown elements and attributes everywhere except inside the form data,
// skips exactly one XMLDSig Signature element when it is the root's last child, applies
// lim (zero fields take the defaults), and checks every inline attachment's decoded size
// and SHA-256 against the declared ones. Attachments referenced by "cid:" are returned
// without Inhalt; the caller verifies their bytes with Anlage.VerifyContent.
//
// Errors: ErrMalformed when root is not an Antragspaket, a *LimitError (ErrLimit) when
// a limit trips, a *FieldError (ErrInvalidField; ErrAttachmentDigest for a digest or
// size mismatch) for everything else.
func Parse(root *etree.Element, lim Limits) (*Paket, error) {
	if root == nil {
		return nil, fmt.Errorf("%w: no root element", ErrMalformed)
	}
	lim = lim.effective()
	if err := checkShape(root, lim); err != nil {
		return nil, err
	}
	if root.Tag != elRoot || root.NamespaceURI() != Namespace {
		return nil, fmt.Errorf("%w: root element is not {%s}%s", ErrMalformed, Namespace, elRoot)
	}
	if err := checkAttrs(root, elRoot, atID, atVersion); err != nil {
		return nil, err
	}
	p := &Paket{ID: attr(root, atID)}
	if r := checkPattern(p.ID, reNCName, "an XML ID (letter or _, then letters, digits, . _ -; at most 128)"); r != "" {
		return nil, &FieldError{Field: elRoot + "/@" + atID, Reason: r}
	}
	if v := root.SelectAttr(atVersion); v == nil || v.Value != Version {
		return nil, &FieldError{Field: elRoot + "/@" + atVersion, Reason: `must be "` + Version + `"`}
	}

	c, err := children(root, elRoot, true)
	if err != nil {
		return nil, err
	}
	k, err := c.req(elKopf)
	if err != nil {
		return nil, err
	}
	if err := parseKopf(k, &p.Kopf); err != nil {
		return nil, err
	}
	if a := c.opt(elAntragsteller); a != nil {
		if p.Antragsteller, err = parseApplicant(a); err != nil {
			return nil, err
		}
	}
	f, err := c.req(elFachdaten)
	if err != nil {
		return nil, err
	}
	if p.Fachdaten, err = parseFachdaten(f); err != nil {
		return nil, err
	}
	if as := c.opt(elAnlagen); as != nil {
		if p.Anlagen, err = parseAnlagen(as, p.ID, lim); err != nil {
			return nil, err
		}
	}
	if err := c.end(); err != nil {
		return nil, err
	}
	return p, nil
}

// checkShape enforces depth, element count and attributes per element on the tree
// before anything else walks it (iteratively: the tree may come from anywhere).
func checkShape(root *etree.Element, lim Limits) error {
	type item struct {
		e     *etree.Element
		depth int
	}
	stack := make([]item, 1, 64) // a form's siblings wait here: grown once, not 7 times
	stack[0] = item{root, 1}
	count := 0
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		count++
		if over(count, lim.MaxElements) {
			return limitErr("MaxElements", lim.MaxElements, count)
		}
		if over(it.depth, lim.MaxDepth) {
			return limitErr("MaxDepth", lim.MaxDepth, it.depth)
		}
		if over(len(it.e.Attr), lim.MaxAttributes) {
			return limitErr("MaxAttributes", lim.MaxAttributes, len(it.e.Attr))
		}
		for _, t := range it.e.Child {
			if ce, ok := t.(*etree.Element); ok {
				stack = append(stack, item{ce, it.depth + 1})
			}
		}
	}
	return nil
}

// cursor walks the child elements of a package element in schema order.
type cursor struct {
	path string
	kids []*etree.Element
	i    int
}

// children collects el's child elements. Text other than white space, processing
// instructions and directives are refused: package elements have element-only content.
// With root set, a trailing ds:Signature is dropped (signing appends it there).
func children(el *etree.Element, path string, root bool) (*cursor, error) {
	c := &cursor{path: path}
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.Element:
			c.kids = append(c.kids, t)
		case *etree.CharData:
			if strings.Trim(t.Data, " \t\r\n") != "" {
				return nil, &FieldError{Field: path, Reason: "must not contain text"}
			}
		case *etree.Comment:
		default:
			return nil, &FieldError{Field: path, Reason: "must not contain processing instructions or directives"}
		}
	}
	if root && len(c.kids) > 0 {
		last := c.kids[len(c.kids)-1]
		if last.Tag == "Signature" && last.NamespaceURI() == DSigNamespace {
			c.kids = c.kids[:len(c.kids)-1]
		}
	}
	return c, nil
}

func isPkg(e *etree.Element, tag string) bool {
	return e.Tag == tag && e.NamespaceURI() == Namespace
}

// opt consumes the next child if it is the package element tag.
func (c *cursor) opt(tag string) *etree.Element {
	if c.i < len(c.kids) && isPkg(c.kids[c.i], tag) {
		c.i++
		return c.kids[c.i-1]
	}
	return nil
}

func (c *cursor) req(tag string) (*etree.Element, error) {
	if e := c.opt(tag); e != nil {
		return e, nil
	}
	if c.i < len(c.kids) {
		return nil, &FieldError{Field: c.path + "/" + tag, Reason: "is missing (found " + describe(c.kids[c.i]) + " instead)"}
	}
	return nil, &FieldError{Field: c.path + "/" + tag, Reason: "is missing"}
}

// end refuses anything left over: an unknown element, or a known one out of order.
func (c *cursor) end() error {
	if c.i < len(c.kids) {
		return &FieldError{Field: c.path, Reason: "unexpected element " + describe(c.kids[c.i])}
	}
	return nil
}

// describe names an element for an error message without echoing arbitrary input: a
// package element by name, anything else only by its namespace class.
func describe(e *etree.Element) string {
	ns := e.NamespaceURI()
	switch {
	case ns == Namespace && reSafeName.MatchString(e.Tag):
		return e.Tag
	case ns == DSigNamespace && e.Tag == "Signature":
		return "ds:Signature (only allowed as the root's last child)"
	case ns == Namespace:
		return "an unknown element"
	}
	return "an element in a foreign namespace"
}

var reSafeName = mustPattern(`^[A-Za-z][A-Za-z0-9]{0,40}$`)

// checkAttrs refuses attributes other than the allowed ones and namespace declarations.
func checkAttrs(e *etree.Element, path string, allowed ...string) error {
	for _, a := range e.Attr {
		if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		ok := false
		if a.Space == "" {
			for _, k := range allowed {
				if a.Key == k {
					ok = true
					break
				}
			}
		}
		if !ok {
			name := "an unknown attribute"
			if a.Space == "" && reSafeName.MatchString(a.Key) {
				name = "attribute " + a.Key
			}
			return &FieldError{Field: path, Reason: "unexpected " + name}
		}
	}
	return nil
}

func attr(e *etree.Element, key string) string {
	for _, a := range e.Attr {
		if a.Space == "" && a.Key == key {
			return a.Value
		}
	}
	return ""
}

// text returns a leaf's character data. Leaves have no attributes and no child
// elements; comments are ignored (c14n drops them anyway).
func text(e *etree.Element, path string) (string, error) {
	if err := checkAttrs(e, path); err != nil {
		return "", err
	}
	if len(e.Child) == 1 { // the usual case; saves copying a large Inhalt
		if cd, ok := e.Child[0].(*etree.CharData); ok {
			return cd.Data, nil
		}
	}
	var sb strings.Builder
	for _, t := range e.Child {
		switch t := t.(type) {
		case *etree.CharData:
			sb.WriteString(t.Data)
		case *etree.Comment:
		case *etree.Element:
			return "", &FieldError{Field: path, Reason: "must not contain elements"}
		default:
			return "", &FieldError{Field: path, Reason: "must not contain processing instructions or directives"}
		}
	}
	return sb.String(), nil
}

// field reads a leaf and applies rule; a leaf that is absent when required is reported
// by the cursor.
func field(e *etree.Element, path string, rule func(string) string) (string, error) {
	s, err := text(e, path)
	if err != nil {
		return "", err
	}
	if r := rule(s); r != "" {
		return "", &FieldError{Field: path, Reason: r}
	}
	return s, nil
}

func textRule(max int) func(string) string { return func(s string) string { return checkText(s, max) } }

func patternRule(re *pattern, what string) func(string) string {
	return func(s string) string { return checkPattern(s, re, what) }
}

func reqField(c *cursor, tag string, rule func(string) string) (string, error) {
	e, err := c.req(tag)
	if err != nil {
		return "", err
	}
	return field(e, c.path+"/"+tag, rule)
}

func optField(c *cursor, tag string, rule func(string) string) (string, error) {
	e := c.opt(tag)
	if e == nil {
		return "", nil
	}
	return field(e, c.path+"/"+tag, rule)
}

var reDateTime = mustPattern(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$`)

func parseKopf(k *etree.Element, out *Kopf) error {
	const path = elRoot + "/" + elKopf
	if err := checkAttrs(k, path); err != nil {
		return err
	}
	c, err := children(k, path, false)
	if err != nil {
		return err
	}
	if out.NachrichtID, err = reqField(c, elNachrichtID, checkUUID); err != nil {
		return err
	}
	out.NachrichtID = strings.ToLower(out.NachrichtID)
	created, err := reqField(c, elErstellt, patternRule(reDateTime, "an xs:dateTime with time zone"))
	if err != nil {
		return err
	}
	if out.Erstellt, err = time.Parse(time.RFC3339Nano, created); err != nil {
		return &FieldError{Field: path + "/" + elErstellt, Reason: "is not a valid date and time"}
	}
	if out.Absender, err = reqField(c, elAbsender, patternRule(rePortalID, "a portal id (lower-case letters, digits, . _ -)")); err != nil {
		return err
	}

	le, err := c.req(elLeistung)
	if err != nil {
		return err
	}
	if err := parseGroup(le, path+"/"+elLeistung, func(g *cursor) (err error) {
		if out.Leistung.Schluessel, err = reqField(g, elSchluessel, patternRule(reLeika, "a 14-digit LeiKa key starting with 99")); err != nil {
			return err
		}
		out.Leistung.Bezeichnung, err = reqField(g, elBezeichnung, textRule(500))
		return err
	}); err != nil {
		return err
	}

	oe, err := c.req(elOrt)
	if err != nil {
		return err
	}
	if err := parseGroup(oe, path+"/"+elOrt, func(g *cursor) (err error) {
		o := &out.Ort
		if o.ARS, err = optField(g, elARS, patternRule(reARS, "a 12-digit Amtlicher Regionalschlüssel")); err != nil {
			return err
		}
		if o.AGS, err = optField(g, elAGS, patternRule(reAGS, "an 8-digit Amtlicher Gemeindeschlüssel")); err != nil {
			return err
		}
		if o.PLZ, err = optField(g, elPLZ, patternRule(rePLZ, "a 5-digit postal code")); err != nil {
			return err
		}
		if o.Name, err = optField(g, elName, textRule(200)); err != nil {
			return err
		}
		if *o == (Ort{}) {
			return &FieldError{Field: g.path, Reason: "needs at least one of ARS, AGS, PLZ, Name"}
		}
		if r := checkPlaceConsistency(*o); r != "" {
			return &FieldError{Field: g.path, Reason: r}
		}
		return nil
	}); err != nil {
		return err
	}

	if out.Vertrauensniveau, err = optField(c, elNiveau, func(s string) string {
		switch s {
		case LevelLow, LevelSubstantial, LevelHigh:
			return ""
		}
		return "must be niedrig, substanziell or hoch"
	}); err != nil {
		return err
	}
	if out.Rueckkanal, err = reqField(c, elRueckkanal, checkRueckkanal); err != nil {
		return err
	}
	if ze := c.opt(elZahlung); ze != nil {
		z := &Zahlung{}
		if err := parseGroup(ze, path+"/"+elZahlung, func(g *cursor) (err error) {
			if z.Reference, err = reqField(g, elReferenz, textRule(200)); err != nil {
				return err
			}
			if z.Amount, err = reqField(g, elBetrag, patternRule(reAmount, "a decimal amount with two fraction digits, e.g. 12.50")); err != nil {
				return err
			}
			z.Currency, err = reqField(g, elWaehrung, patternRule(reCurrency, "an ISO 4217 currency code, e.g. EUR"))
			return err
		}); err != nil {
			return err
		}
		out.Zahlung = z
	}
	if out.Bezug, err = optField(c, elBezug, checkUUID); err != nil {
		return err
	}
	out.Bezug = strings.ToLower(out.Bezug)
	if out.Bezug != "" && out.Bezug == out.NachrichtID {
		return &FieldError{Field: path + "/" + elBezug, Reason: "names this package's own NachrichtID; it names the earlier application this one belongs to"}
	}
	return c.end()
}

// parseGroup checks an element-only group without attributes, lets fn consume its
// children and refuses whatever fn left.
func parseGroup(e *etree.Element, path string, fn func(*cursor) error) error {
	if err := checkAttrs(e, path); err != nil {
		return err
	}
	g, err := children(e, path, false)
	if err != nil {
		return err
	}
	if err := fn(g); err != nil {
		return err
	}
	return g.end()
}

func parseApplicant(e *etree.Element) (*Antragsteller, error) {
	const path = elRoot + "/" + elAntragsteller
	a := &Antragsteller{}
	err := parseGroup(e, path, func(g *cursor) (err error) {
		if a.GivenName, err = optField(g, elVorname, textRule(200)); err != nil {
			return err
		}
		if a.FamilyName, err = reqField(g, elFamilienname, textRule(200)); err != nil {
			return err
		}
		if a.Email, err = optField(g, elEMail, checkEmail); err != nil {
			return err
		}
		ae := g.opt(elAnschrift)
		if ae == nil {
			return nil
		}
		ad := &Address{}
		a.Address = ad
		return parseGroup(ae, path+"/"+elAnschrift, func(h *cursor) (err error) {
			if ad.Street, err = reqField(h, elStrasse, textRule(200)); err != nil {
				return err
			}
			if ad.HouseNo, err = optField(h, elHausnummer, textRule(20)); err != nil {
				return err
			}
			pcEl, err := h.req(elPLZ)
			if err != nil {
				return err
			}
			pc, err := text(pcEl, h.path+"/"+elPLZ)
			if err != nil {
				return err
			}
			if ad.City, err = reqField(h, elOrt, textRule(200)); err != nil {
				return err
			}
			if ad.Country, err = optField(h, elStaat, patternRule(reCountry, "an ISO 3166-1 alpha-2 code, e.g. DE")); err != nil {
				return err
			}
			// A German postal code has five digits; other countries vary.
			re, what := rePLZ, "a 5-digit postal code"
			if ad.Country != "" && ad.Country != "DE" {
				re, what = reForeignPC, "a postal code (letters, digits, space, -)"
			}
			if r := checkPattern(pc, re, what); r != "" {
				return &FieldError{Field: h.path + "/" + elPLZ, Reason: r}
			}
			ad.PostalCode = pc
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func parseFachdaten(e *etree.Element) (Fachdaten, error) {
	const path = elRoot + "/" + elFachdaten
	var f Fachdaten
	if err := checkAttrs(e, path, atSchema, atFormat); err != nil {
		return f, err
	}
	f.Schema = attr(e, atSchema)
	if r := checkSchemaURI(f.Schema); r != "" {
		return f, &FieldError{Field: path + "/@" + atSchema, Reason: r}
	}
	switch attr(e, atFormat) {
	case FormatJSON:
		c, err := children(e, path, false)
		if err != nil {
			return f, err
		}
		je, err := c.req(elJSON)
		if err != nil {
			return f, err
		}
		if err := c.end(); err != nil {
			return f, err
		}
		s, err := text(je, path+"/"+elJSON)
		if err != nil {
			return f, err
		}
		if !json.Valid([]byte(s)) {
			return f, &FieldError{Field: path + "/" + elJSON, Reason: "is not valid JSON"}
		}
		f.JSON = []byte(s)
	case FormatXML:
		var kids []*etree.Element
		for _, t := range e.Child {
			switch t := t.(type) {
			case *etree.Element:
				kids = append(kids, t)
			case *etree.CharData:
				if strings.Trim(t.Data, " \t\r\n") != "" {
					return f, &FieldError{Field: path, Reason: `must not contain text when Format="xml"`}
				}
			case *etree.Comment:
			default:
				return f, &FieldError{Field: path, Reason: "must not contain processing instructions or directives"}
			}
		}
		if len(kids) == 0 {
			return f, &FieldError{Field: path, Reason: `needs at least one form element when Format="xml"`}
		}
		for _, k := range kids {
			// The form's elements live in the form's own namespace: that keeps them apart
			// from package elements (and is what the XSD's xs:any ##other says).
			if ns := k.NamespaceURI(); ns == "" || ns == Namespace {
				return f, &FieldError{Field: path, Reason: "form elements must be in the form's own namespace"}
			}
			if err := checkPrefixes(k, path); err != nil {
				return f, err
			}
			f.XML = append(f.XML, detach(k))
		}
		// Out of the tree in one pass from the end: etree renumbers the siblings
		// after a removed child, so removing the form's elements one by one from the
		// front took time quadratic in their number (150,000 of them, within the
		// default limits: 97 s).
		for i := len(e.Child) - 1; i >= 0; i-- {
			e.RemoveChildAt(i)
		}
	default:
		return f, &FieldError{Field: path + "/@" + atFormat, Reason: `must be "xml" or "json"`}
	}
	return f, nil
}

// checkPrefixes refuses prefixes that no ancestor declares: a namespace-aware consumer
// (an XSD validator, the office's software) could not read such form data.
func checkPrefixes(top *etree.Element, path string) error {
	stack := make([]*etree.Element, 1, 64)
	stack[0] = top
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if e.Space != "" && e.Space != "xml" && e.NamespaceURI() == "" {
			return &FieldError{Field: path, Reason: "uses an undeclared namespace prefix"}
		}
		for _, a := range e.Attr {
			if a.Space != "" && a.Space != "xml" && a.Space != "xmlns" && a.NamespaceURI() == "" {
				return &FieldError{Field: path, Reason: "uses an undeclared namespace prefix"}
			}
		}
		for _, t := range e.Child {
			if ce, ok := t.(*etree.Element); ok {
				stack = append(stack, ce)
			} else if _, ok := t.(*etree.ProcInst); ok {
				return &FieldError{Field: path, Reason: "must not contain processing instructions"}
			} else if _, ok := t.(*etree.Directive); ok {
				return &FieldError{Field: path, Reason: "must not contain directives"}
			}
		}
	}
	return nil
}

// detach declares on a form element every namespace its ancestors had in scope, so
// it means the same on its own once parseFachdaten has taken it out of the tree
// (QNames in attribute values such as xsi:type included, which is why all in-scope
// prefixes are declared, not only used ones). The element is moved rather than
// copied: Parse owns the tree, and the copy was a sixth of intake's allocations
// outside verification (docs/performance.md).
func detach(e *etree.Element) *etree.Element {
	declared := map[string]bool{}
	for _, a := range e.Attr {
		if a.Space == "xmlns" {
			declared[a.Key] = true
		} else if a.Space == "" && a.Key == "xmlns" {
			declared[""] = true
		}
	}
	var add []etree.Attr
	usesDef := usesDefault(e) // one walk, stopping at the first unprefixed element
	for anc := e.Parent(); anc != nil; anc = anc.Parent() {
		for _, a := range anc.Attr {
			prefix, isDecl := "", false
			switch {
			case a.Space == "xmlns":
				prefix, isDecl = a.Key, true
			case a.Space == "" && a.Key == "xmlns":
				isDecl = usesDef
			}
			if !isDecl || declared[prefix] {
				continue
			}
			declared[prefix] = true
			add = append(add, a)
		}
	}
	if !declared[""] && usesDef {
		// No default namespace anywhere above: keep unprefixed elements unqualified
		// even when the element is later placed under a package element.
		add = append(add, etree.Attr{Key: "xmlns"})
	}
	for _, a := range add {
		if a.Space == "xmlns" {
			e.CreateAttr("xmlns:"+a.Key, a.Value)
		} else {
			e.CreateAttr("xmlns", a.Value)
		}
	}
	return e
}

// usesDefault reports whether any element in the subtree is unprefixed, i.e. depends
// on the default namespace in scope.
func usesDefault(e *etree.Element) bool {
	if e.Space == "" {
		return true
	}
	for _, t := range e.Child {
		if ce, ok := t.(*etree.Element); ok && usesDefault(ce) {
			return true
		}
	}
	return false
}

func parseAnlagen(e *etree.Element, rootID string, lim Limits) ([]Anlage, error) {
	const path = elRoot + "/" + elAnlagen
	if err := checkAttrs(e, path); err != nil {
		return nil, err
	}
	c, err := children(e, path, false)
	if err != nil {
		return nil, err
	}
	if over(len(c.kids), lim.MaxAttachments) {
		return nil, limitErr("MaxAttachments", lim.MaxAttachments, len(c.kids))
	}
	var out []Anlage
	seen, refs := map[string]bool{}, map[string]bool{}
	var referenced int64
	for {
		ae := c.opt(elAnlage)
		if ae == nil {
			break
		}
		p := fmt.Sprintf("%s/%s[%d]", path, elAnlage, len(out)+1)
		a, err := parseAnlage(ae, p, lim)
		if err != nil {
			return nil, err
		}
		if seen[a.ID] || a.ID == rootID {
			return nil, &FieldError{Field: p + "/@" + atID, Reason: "must be unique in the package"}
		}
		seen[a.ID] = true
		if a.Referenz != "" {
			// One part per reference: two attachments naming one part would make
			// the part's bytes count twice, and the gateway streams each part once.
			cid, err := CID(a.Referenz)
			if err != nil || refs[cid] {
				return nil, &FieldError{Field: p + "/@" + atReferenz, Reason: "must name a part no other Anlage names"}
			}
			refs[cid] = true
			if referenced += a.Groesse; over(referenced, lim.MaxReferencedTotal) {
				return nil, limitErr("MaxReferencedTotal", lim.MaxReferencedTotal, referenced)
			}
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		if _, err := c.req(elAnlage); err != nil {
			return nil, err
		}
	}
	return out, c.end()
}

func parseAnlage(e *etree.Element, path string, lim Limits) (Anlage, error) {
	var a Anlage
	if err := checkAttrs(e, path, atID, atReferenz); err != nil {
		return a, err
	}
	a.ID = attr(e, atID)
	if r := checkPattern(a.ID, reAnlageID, "an XML ID (letter or _, then letters, digits, . _ -; at most 64)"); r != "" {
		return a, &FieldError{Field: path + "/@" + atID, Reason: r}
	}
	if ref := e.SelectAttr(atReferenz); ref != nil {
		a.Referenz = ref.Value
		if r := checkPattern(a.Referenz, reCID, "a cid: URL"); r != "" {
			return a, &FieldError{Field: path + "/@" + atReferenz, Reason: r}
		}
	}
	c, err := children(e, path, false)
	if err != nil {
		return a, err
	}
	if a.Dateiname, err = reqField(c, elDateiname, checkFileName); err != nil {
		return a, err
	}
	if a.MimeType, err = reqField(c, elMimeType, patternRule(reMimeType, "a media type type/subtype without parameters")); err != nil {
		return a, err
	}
	size, err := reqField(c, elGroesse, patternRule(reSize, "a size in bytes (digits, no sign)"))
	if err != nil {
		return a, err
	}
	if a.Groesse, err = strconv.ParseInt(size, 10, 64); err != nil {
		return a, &FieldError{Field: path + "/" + elGroesse, Reason: "is out of range"}
	}
	if a.Referenz != "" {
		if over(a.Groesse, lim.MaxReferencedBytes) {
			return a, limitErr("MaxReferencedBytes", lim.MaxReferencedBytes, a.Groesse)
		}
	} else if over(a.Groesse, lim.MaxAttachmentBytes) {
		return a, limitErr("MaxAttachmentBytes", lim.MaxAttachmentBytes, a.Groesse)
	}
	digest, err := reqField(c, elSHA256, patternRule(reSHA256, "64 hex digits"))
	if err != nil {
		return a, err
	}
	a.SHA256 = strings.ToLower(digest)

	ie := c.opt(elInhalt)
	if err := c.end(); err != nil {
		return a, err
	}
	switch {
	case ie == nil && a.Referenz == "":
		return a, &FieldError{Field: path + "/" + elInhalt, Reason: "is missing (and there is no Referenz)"}
	case ie != nil && a.Referenz != "":
		return a, &FieldError{Field: path, Reason: "must have either Inhalt or Referenz, not both"}
	case ie == nil:
		return a, nil
	}
	b64, err := text(ie, path+"/"+elInhalt)
	if err != nil {
		return a, err
	}
	b64 = stripXMLSpace(b64)
	if est := int64(len(b64)) / 4 * 3; overEstimate(est, lim.MaxAttachmentBytes) {
		return a, limitErr("MaxAttachmentBytes", lim.MaxAttachmentBytes, est)
	}
	content, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return a, &FieldError{Field: path + "/" + elInhalt, Reason: "is not valid base64"}
	}
	if over(int64(len(content)), lim.MaxAttachmentBytes) {
		return a, limitErr("MaxAttachmentBytes", lim.MaxAttachmentBytes, int64(len(content)))
	}
	a.Inhalt = content
	if err := a.VerifyContent(content); err != nil {
		return a, &FieldError{Field: path + "/" + elInhalt, Reason: "does not match the declared Groesse and SHA256", Err: err}
	}
	return a, nil
}

// stripXMLSpace removes the white space xs:base64Binary allows (line breaks from
// encoders that wrap at 76 columns).
func stripXMLSpace(s string) string {
	if !strings.ContainsAny(s, " \t\r\n") {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\n':
		default:
			sb.WriteByte(s[i])
		}
	}
	return sb.String()
}

// VerifyContent checks content against the declared Groesse and SHA256. It is how the
// caller binds the bytes of a "cid:" attachment (sent as a multipart part, outside the
// signed XML) to the signature. The error wraps ErrAttachmentDigest.
func (a Anlage) VerifyContent(content []byte) error {
	sum := sha256.Sum256(content)
	return a.CheckDigest(int64(len(content)), sum[:])
}

// CheckDigest compares a size and raw SHA-256 the caller computed while streaming the
// bytes (e.g. into the blob store) with the declared ones. The error wraps
// ErrAttachmentDigest.
func (a Anlage) CheckDigest(size int64, sum []byte) error {
	want, err := hex.DecodeString(a.SHA256)
	if err != nil || len(want) != sha256.Size {
		return fmt.Errorf("%w: attachment %q declares no valid SHA-256", ErrAttachmentDigest, a.ID)
	}
	if size != a.Groesse {
		return fmt.Errorf("%w: attachment %q has %d bytes, declared %d", ErrAttachmentDigest, a.ID, size, a.Groesse)
	}
	if subtle.ConstantTimeCompare(want, sum) != 1 {
		return fmt.Errorf("%w: attachment %q: SHA-256 differs", ErrAttachmentDigest, a.ID)
	}
	return nil
}
