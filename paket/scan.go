package paket

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"hash/maphash"
	"unicode/utf8"
)

// Scan is the cheap pre-check of raw package bytes, run before anyone (the signature
// check included) builds a tree from them. It is a single pass over the bytes that
// allocates only its element and namespace stacks (no copy of text, so a 20 MiB
// attachment costs no memory), and refuses:
//
//   - more than lim.MaxBytes bytes, nesting deeper than lim.MaxDepth, more than
//     lim.MaxElements elements, more than lim.MaxAttributes attributes on one element
//     or AttrsPerElement × lim.MaxElements in the whole document,
//     more than lim.MaxAttachments Anlage elements, and an inline Inhalt whose base64
//     text decodes to more than lim.MaxAttachmentBytes (*LimitError, ErrLimit);
//   - DOCTYPE and every other <!...> declaration (so no entity can be defined or
//     expanded and nothing external is referenced), processing instructions other
//     than a leading XML declaration, a declared encoding other than UTF-8, and
//     everything that is not well-formed XML 1.0 with namespaces: invalid UTF-8 or
//     characters outside the XML Char range, undefined entity or invalid character
//     references, bad names, mismatched tags, duplicate attributes (also after
//     namespace expansion), undeclared prefixes, text or a second element outside
//     the root, and a root that is not {urn:amtsbote:antragspaket:1}Antragspaket
//     (ErrMalformed).
//
// Scan does not validate fields; Parse does, on the verified tree.
func Scan(raw []byte, lim Limits) error {
	_, err := ScanNormalized(raw, lim)
	return err
}

// ScanNormalized is Scan, and returns the document as every XML processor must
// read its attribute values (XML 1.0 §3.3.3): a literal tab, line feed or
// carriage return in an attribute value is a space there (CR LF one space), a
// character reference (&#10;) stays the character. Go's encoding/xml, which the
// signature check builds its tree with, keeps them as they are, so a package
// whose signer (libxml2 as in xmlsec1, Java, .NET) canonicalised such a value
// had a digest that never matched here, and one signed the Go way would fail
// at an office verifying it with those tools. The intake verifies and parses
// what this returns and stores raw unchanged: raw itself when no attribute
// value holds such a character (the rule for text is the same in both), a
// normalised copy otherwise.
func ScanNormalized(raw []byte, lim Limits) ([]byte, error) {
	lim = lim.effective()
	if over(int64(len(raw)), lim.MaxBytes) {
		return nil, limitErr("MaxBytes", lim.MaxBytes, int64(len(raw)))
	}
	s := scanner{b: raw, lim: lim}
	if err := s.document(); err != nil {
		return nil, err
	}
	if len(s.wsValues) == 0 {
		return raw, nil
	}
	out := make([]byte, 0, len(raw))
	at := 0
	for _, v := range s.wsValues {
		out = append(out, raw[at:v[0]]...)
		val := raw[v[0]:v[1]]
		for i := range val {
			out = appendLiteral(out, val, i)
		}
		at = v[1]
	}
	return append(out, raw[at:]...), nil
}

// appendLiteral appends the attribute value's byte v[i], written literally (not
// a reference), as an XML processor reads it (XML 1.0 §3.3.3): a tab, line feed
// or carriage return is a space, CR LF one line end and so one space.
func appendLiteral(out, v []byte, i int) []byte {
	switch c := v[i]; {
	case c == '\r' && i+1 < len(v) && v[i+1] == '\n':
		return out
	case c == '\t' || c == '\n' || c == '\r':
		return append(out, ' ')
	default:
		return append(out, c)
	}
}

// Reasons of Scan's ErrMalformed errors (the detail after the sentinel's text).
const (
	reasonEOF          = "unexpected end of input"
	reasonNoRoot       = "no root element"
	reasonAfterRoot    = "content after the root element"
	reasonDecl         = "DOCTYPE and other declarations are not allowed"
	reasonPI           = "processing instructions are not allowed"
	reasonXMLDecl      = "malformed XML declaration"
	reasonEncoding     = "only UTF-8 is accepted"
	reasonChar         = "invalid character"
	reasonUTF8         = "invalid UTF-8"
	reasonName         = "invalid name"
	reasonTag          = "malformed tag"
	reasonAttrSpace    = "attributes must be separated by white space"
	reasonAttr         = "malformed attribute"
	reasonLtInAttr     = "'<' in attribute value"
	reasonRef          = "invalid entity or character reference"
	reasonCDATAEnd     = "']]>' in text"
	reasonComment      = "malformed comment"
	reasonCDATA        = "unterminated CDATA section"
	reasonEndTag       = "end tag does not match start tag"
	reasonDupAttr      = "duplicate attribute"
	reasonPrefix       = "undeclared namespace prefix"
	reasonNSDecl       = "invalid namespace declaration"
	reasonRootName     = "root element is not {" + Namespace + "}" + elRoot
	reasonTextOutside  = "text outside the root element"
	reasonCDATAOutside = "CDATA section outside the root element"
)

// malformedError keeps the reason apart so tests can tell Scan's rules apart.
type malformedError struct {
	reason string
	offset int
}

func (e *malformedError) Error() string {
	return fmt.Sprintf("%v: %s at byte %d", ErrMalformed, e.reason, e.offset)
}

func (e *malformedError) Is(target error) bool { return target == ErrMalformed }

// element kinds Scan needs to recognise to count attachments and size Inhalt.
const (
	kindOther = iota
	kindRoot
	kindAnlagen
	kindAnlage
	kindInhalt
)

type openElement struct {
	name   []byte // raw QName, aliases the input
	nsMark int    // len(scanner.ns) before this element's declarations
	kind   int
}

type nsBinding struct {
	prefix []byte // empty for the default namespace
	uri    []byte // decoded value; empty undeclares the default namespace
	// sum is uri's hash: two attributes' namespaces are compared by it first, so
	// that long URIs that differ only at their end are not compared byte by byte
	// for every pair of attributes (checkAttrNames).
	sum uint64
	// shadows is the index in scanner.ns of the binding of the same prefix this
	// one hides, -1 if none; kept only while scanner.byPrefix is in use.
	shadows int32
}

// nsLinear is how many bindings in scope lookup walks one by one. Real packages
// have a handful (the package's, ds, the form's); past this many, scanner.byPrefix
// takes over, so that a document declaring thousands of prefixes (64 on each of
// 64 levels) does not make every prefixed name walk all of them.
const nsLinear = 16

// uriSeed keys the namespace URI hashes: random per process, so a sender cannot
// choose URIs whose hashes collide.
var uriSeed = maphash.MakeSeed()

// The binding index of names lookupIndex resolves without a binding.
const (
	nsNone = -1 // no prefix, or an unprefixed name without a default namespace
	nsXML  = -2 // the xml prefix, bound by definition
)

var xmlBinding = nsBinding{prefix: []byte("xml"), uri: []byte(xmlNamespace), sum: maphash.Bytes(uriSeed, []byte(xmlNamespace)), shadows: -1}

type attrSpan struct {
	name   []byte
	colon  int // index of ':' in name, -1 if none
	value  []byte
	hasRef bool
	ws     bool // a literal tab, line feed or carriage return (read as a space)
	ns     int  // the binding of its prefix (index in scanner.ns, nsXML), nsNone if unprefixed
}

type scanner struct {
	b     []byte
	i     int
	lim   Limits
	stack []openElement
	ns    []nsBinding
	// byPrefix maps a prefix ("" the default namespace) to the index in ns of
	// its binding in scope; nil while ns has at most nsLinear bindings.
	byPrefix map[string]int32
	attrs    []attrSpan
	// runes holds what encoding/xml said of a non-ASCII name character: bit
	// runeFirst/runeLater set if asked at the start of a name/further in,
	// runeFirstOK/runeLaterOK if it took the character there.
	runes map[rune]uint8

	// wsValues are the byte ranges of the attribute values that hold a literal
	// tab, line feed or carriage return (ScanNormalized).
	wsValues [][2]int

	elements    int
	attributes  int // in the whole document so far
	attachments int
	b64         int64 // non-space characters in the current Inhalt
}

func (s *scanner) fail(reason string) error { return &malformedError{reason: reason, offset: s.i} }

func (s *scanner) has(prefix string) bool {
	return len(s.b)-s.i >= len(prefix) && string(s.b[s.i:s.i+len(prefix)]) == prefix
}

func (s *scanner) document() error {
	if s.has("\xef\xbb\xbf") { // XML allows a UTF-8 byte order mark
		s.i += 3
	}
	if s.has("<?xml") && len(s.b) > s.i+5 && isSpace(s.b[s.i+5]) {
		if err := s.xmlDecl(); err != nil {
			return err
		}
	}
	if err := s.misc(); err != nil {
		return err
	}
	if s.i >= len(s.b) || s.b[s.i] != '<' {
		if s.i < len(s.b) {
			return s.fail(reasonTextOutside)
		}
		return s.fail(reasonNoRoot)
	}
	if err := s.root(); err != nil {
		return err
	}
	if err := s.misc(); err != nil {
		return err
	}
	if s.i < len(s.b) {
		if s.b[s.i] == '<' {
			return s.fail(reasonAfterRoot)
		}
		return s.fail(reasonTextOutside)
	}
	return nil
}

// misc skips white space and comments outside the root and refuses everything else
// that may appear there (DOCTYPE, PIs).
func (s *scanner) misc() error {
	for {
		s.skipSpace()
		switch {
		case s.has("<!--"):
			if err := s.comment(); err != nil {
				return err
			}
		case s.has("<?"):
			return s.fail(reasonPI)
		case s.has("<![CDATA["):
			return s.fail(reasonCDATAOutside)
		case s.has("<!"):
			return s.fail(reasonDecl)
		default:
			return nil
		}
	}
}

// xmlDecl reads <?xml version="1.0" encoding="UTF-8" standalone="yes"?> with the
// optional parts; version 1.0 and UTF-8 only, like the tree builder's decoder.
func (s *scanner) xmlDecl() error {
	s.i += len("<?xml")
	seen := 0
	for _, name := range []string{"version", "encoding", "standalone"} {
		mark := s.i
		if s.skipSpace() == 0 || !s.has(name) {
			s.i = mark
			if name == "version" {
				return s.fail(reasonXMLDecl)
			}
			continue
		}
		s.i += len(name)
		s.skipSpace()
		if !s.has("=") {
			return s.fail(reasonXMLDecl)
		}
		s.i++
		s.skipSpace()
		if s.i >= len(s.b) || (s.b[s.i] != '"' && s.b[s.i] != '\'') {
			return s.fail(reasonXMLDecl)
		}
		q := s.b[s.i]
		end := bytes.IndexByte(s.b[s.i+1:], q)
		if end < 0 {
			// The declaration is broken before the input ends: a malformed
			// declaration (encoding/xml reads <?xml version='1.0?> loosely and
			// accepts it, so the reason must be the documented stricter one).
			return s.fail(reasonXMLDecl)
		}
		v := string(s.b[s.i+1 : s.i+1+end])
		s.i += end + 2
		switch name {
		case "version":
			if v != "1.0" {
				return s.fail(reasonXMLDecl)
			}
		case "encoding":
			if !isEncName(v) {
				return s.fail(reasonXMLDecl)
			}
			if !equalFoldASCII(v, "utf-8") {
				return s.fail(reasonEncoding)
			}
		case "standalone":
			if v != "yes" && v != "no" {
				return s.fail(reasonXMLDecl)
			}
		}
		seen++
	}
	s.skipSpace()
	if !s.has("?>") {
		return s.fail(reasonXMLDecl)
	}
	s.i += 2
	return nil
}

// isEncName is the EncName production: [A-Za-z] ([A-Za-z0-9._] | '-')*.
func isEncName(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		alpha := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !alpha && (i == 0 || !('0' <= c && c <= '9' || c == '.' || c == '_' || c == '-')) {
			return false
		}
	}
	return v != ""
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// root reads the root element and everything in it, iteratively (nesting depth costs
// no Go stack).
func (s *scanner) root() error {
	for {
		if s.i >= len(s.b) {
			return s.fail(reasonEOF)
		}
		if s.b[s.i] != '<' {
			if err := s.text(); err != nil {
				return err
			}
			continue
		}
		switch {
		case s.has("</"):
			if err := s.endTag(); err != nil {
				return err
			}
			if len(s.stack) == 0 {
				return nil
			}
		case s.has("<!--"):
			if err := s.comment(); err != nil {
				return err
			}
		case s.has("<![CDATA["):
			if err := s.cdata(); err != nil {
				return err
			}
		case s.has("<!"):
			return s.fail(reasonDecl)
		case s.has("<?"):
			return s.fail(reasonPI)
		default:
			closed, err := s.startTag()
			if err != nil {
				return err
			}
			if closed && len(s.stack) == 0 {
				return nil
			}
		}
	}
}

func (s *scanner) startTag() (selfClosed bool, err error) {
	s.i++ // '<'
	name, colon, err := s.qname()
	if err != nil {
		return false, err
	}
	s.attrs = s.attrs[:0]
	for {
		sp := s.skipSpace()
		if s.i >= len(s.b) {
			return false, s.fail(reasonEOF)
		}
		if s.b[s.i] == '>' {
			s.i++
			break
		}
		if s.b[s.i] == '/' {
			if !s.has("/>") {
				return false, s.fail(reasonTag)
			}
			s.i += 2
			selfClosed = true
			break
		}
		if sp == 0 {
			return false, s.fail(reasonAttrSpace)
		}
		if err := s.attribute(); err != nil {
			return false, err
		}
		if over(len(s.attrs), s.lim.MaxAttributes) {
			return false, limitErr("MaxAttributes", s.lim.MaxAttributes, len(s.attrs))
		}
	}

	s.attributes += len(s.attrs)
	if max := attrsTotal(s.lim); over(s.attributes, max) {
		return false, limitErr("MaxAttributesTotal", max, s.attributes)
	}
	s.elements++
	if over(s.elements, s.lim.MaxElements) {
		return false, limitErr("MaxElements", s.lim.MaxElements, s.elements)
	}
	depth := len(s.stack) + 1
	if over(depth, s.lim.MaxDepth) {
		return false, limitErr("MaxDepth", s.lim.MaxDepth, depth)
	}

	nsMark := len(s.ns)
	if err := s.declare(); err != nil {
		return false, err
	}
	uri, err := s.resolveElement(name, colon)
	if err != nil {
		return false, err
	}
	if err := s.checkAttrNames(); err != nil {
		return false, err
	}

	local := name[colon+1:]
	ours := string(uri) == Namespace
	kind := kindOther
	parent := kindOther
	if depth > 1 {
		parent = s.stack[depth-2].kind
	}
	switch {
	case depth == 1:
		if !ours || string(local) != elRoot {
			return false, s.fail(reasonRootName)
		}
		kind = kindRoot
	case parent == kindRoot && ours && string(local) == elAnlagen:
		kind = kindAnlagen
	case parent == kindAnlagen && ours && string(local) == elAnlage:
		kind = kindAnlage
		s.attachments++
		if over(s.attachments, s.lim.MaxAttachments) {
			return false, limitErr("MaxAttachments", s.lim.MaxAttachments, s.attachments)
		}
	case parent == kindAnlage && ours && string(local) == elInhalt:
		kind = kindInhalt
		s.b64 = 0
	}
	if selfClosed {
		s.popNS(nsMark)
		return true, nil
	}
	s.stack = append(s.stack, openElement{name: name, nsMark: nsMark, kind: kind})
	return false, nil
}

// attribute reads Name S? = S? "value" and records it.
func (s *scanner) attribute() error {
	name, colon, err := s.qname()
	if err != nil {
		return err
	}
	s.skipSpace()
	if !s.has("=") {
		return s.fail(reasonAttr)
	}
	s.i++
	s.skipSpace()
	if s.i >= len(s.b) {
		return s.fail(reasonEOF)
	}
	q := s.b[s.i]
	if q != '"' && q != '\'' {
		return s.fail(reasonAttr)
	}
	s.i++
	start, hasRef, ws := s.i, false, false
	for {
		if s.i >= len(s.b) {
			return s.fail(reasonEOF)
		}
		c := s.b[s.i]
		switch {
		case c == q:
			s.attrs = append(s.attrs, attrSpan{name: name, colon: colon, value: s.b[start:s.i], hasRef: hasRef, ws: ws})
			if ws {
				s.wsValues = append(s.wsValues, [2]int{start, s.i})
			}
			s.i++
			return nil
		case c == '<':
			return s.fail(reasonLtInAttr)
		case c == '&':
			hasRef = true
			if _, err := s.reference(); err != nil {
				return err
			}
		case c < utf8.RuneSelf:
			if charClass[c] == ccInvalid {
				return s.fail(reasonChar)
			}
			ws = ws || c == '\t' || c == '\n' || c == '\r'
			s.i++
		default:
			if err := s.nonASCII(); err != nil {
				return err
			}
		}
	}
}

// declare pushes the namespace declarations among the current attributes.
func (s *scanner) declare() error {
	for _, a := range s.attrs {
		var prefix []byte
		switch {
		case a.colon < 0 && string(a.name) == "xmlns":
		case a.colon == 5 && string(a.name[:5]) == "xmlns":
			prefix = a.name[6:]
		default:
			continue
		}
		uri := s.attrValue(a)
		switch {
		case string(prefix) == "xmlns",
			prefix != nil && len(uri) == 0, // undeclaring a prefix is XML 1.1 only
			string(prefix) == "xml" && string(uri) != xmlNamespace,
			string(prefix) != "xml" && string(uri) == xmlNamespace,
			string(uri) == xmlnsNamespace:
			return s.fail(reasonNSDecl)
		}
		s.push(nsBinding{prefix: prefix, uri: uri, sum: maphash.Bytes(uriSeed, uri), shadows: -1})
	}
	return nil
}

// push brings b into scope.
func (s *scanner) push(b nsBinding) {
	s.ns = append(s.ns, b)
	switch {
	case s.byPrefix != nil:
		s.index(len(s.ns) - 1)
	case len(s.ns) > nsLinear:
		s.byPrefix = make(map[string]int32, 2*nsLinear)
		for i := range s.ns {
			s.index(i)
		}
	}
}

// index makes s.ns[i] the binding byPrefix finds for its prefix.
func (s *scanner) index(i int) {
	b := &s.ns[i]
	if prev, ok := s.byPrefix[string(b.prefix)]; ok {
		b.shadows = prev
	} else {
		b.shadows = -1
	}
	s.byPrefix[string(b.prefix)] = int32(i)
}

// popNS takes the bindings from mark on out of scope, giving each prefix back
// the binding it hid.
func (s *scanner) popNS(mark int) {
	if s.byPrefix != nil {
		for i := len(s.ns) - 1; i >= mark; i-- {
			if b := s.ns[i]; b.shadows >= 0 {
				s.byPrefix[string(b.prefix)] = b.shadows
			} else {
				delete(s.byPrefix, string(b.prefix))
			}
		}
	}
	s.ns = s.ns[:mark]
}

const (
	xmlNamespace   = "http://www.w3.org/XML/1998/namespace"
	xmlnsNamespace = "http://www.w3.org/2000/xmlns/"
)

// attrValue returns the value with references replaced (namespace URIs are compared
// after decoding). Values without references alias the input.
func (s *scanner) attrValue(a attrSpan) []byte {
	if !a.hasRef && !a.ws {
		return a.value
	}
	out := make([]byte, 0, len(a.value))
	for i := 0; i < len(a.value); {
		if a.value[i] != '&' {
			out = appendLiteral(out, a.value, i) // as ScanNormalized writes it
			i++
			continue
		}
		end := bytes.IndexByte(a.value[i:], ';') // checked well-formed already
		out = utf8.AppendRune(out, refValue(a.value[i+1:i+end]))
		i += end + 1
	}
	return out
}

// lookupIndex returns the binding of prefix in scope: its index in s.ns, or nsXML
// for the xml prefix; ok false if the prefix is not declared. An empty prefix
// without a default namespace in scope is nsNone and ok (the name has no namespace).
func (s *scanner) lookupIndex(prefix []byte) (int, bool) {
	if string(prefix) == "xml" {
		return nsXML, true
	}
	if s.byPrefix != nil {
		if i, ok := s.byPrefix[string(prefix)]; ok {
			return int(i), true
		}
		return nsNone, len(prefix) == 0
	}
	for i := len(s.ns) - 1; i >= 0; i-- {
		if bytes.Equal(s.ns[i].prefix, prefix) && (len(prefix) > 0) == (s.ns[i].prefix != nil) {
			return i, true
		}
	}
	return nsNone, len(prefix) == 0 // no default namespace: the element has none
}

// binding returns the binding lookupIndex returned (not nsNone).
func (s *scanner) binding(i int) *nsBinding {
	if i == nsXML {
		return &xmlBinding
	}
	return &s.ns[i]
}

func (s *scanner) lookup(prefix []byte) ([]byte, bool) {
	i, ok := s.lookupIndex(prefix)
	if !ok || i == nsNone {
		return nil, ok
	}
	return s.binding(i).uri, true
}

func (s *scanner) resolveElement(name []byte, colon int) ([]byte, error) {
	var prefix []byte
	if colon >= 0 {
		prefix = name[:colon]
		if string(prefix) == "xmlns" {
			return nil, s.fail(reasonNSDecl)
		}
	}
	uri, ok := s.lookup(prefix)
	if !ok {
		return nil, s.fail(reasonPrefix)
	}
	return uri, nil
}

// checkAttrNames refuses undeclared attribute prefixes and duplicates, both as written
// and after namespace expansion (a:x and b:x with a and b bound to the same URI).
//
// Each prefix is looked up once, and namespaces are compared by their hashes
// before their bytes: a pair of attributes then costs the comparison of their
// names, whatever the bindings in scope and the length of their URIs.
func (s *scanner) checkAttrNames() error {
	for i := range s.attrs {
		a := &s.attrs[i]
		a.ns = nsNone
		if a.colon >= 0 && string(a.name[:a.colon]) != "xmlns" {
			var ok bool
			if a.ns, ok = s.lookupIndex(a.name[:a.colon]); !ok {
				return s.fail(reasonPrefix)
			}
		}
		for _, b := range s.attrs[:i] {
			if bytes.Equal(a.name, b.name) {
				return s.fail(reasonDupAttr)
			}
			if a.ns != nsNone && b.ns != nsNone && bytes.Equal(a.name[a.colon+1:], b.name[b.colon+1:]) {
				if x, y := s.binding(a.ns), s.binding(b.ns); x.sum == y.sum && bytes.Equal(x.uri, y.uri) {
					return s.fail(reasonDupAttr)
				}
			}
		}
	}
	return nil
}

func (s *scanner) endTag() error {
	s.i += 2
	name, _, err := s.qname()
	if err != nil {
		return err
	}
	s.skipSpace()
	if !s.has(">") {
		return s.fail(reasonTag)
	}
	if len(s.stack) == 0 { // "</a>" where the root should start
		return s.fail(reasonEndTag)
	}
	top := s.stack[len(s.stack)-1]
	if !bytes.Equal(top.name, name) {
		return s.fail(reasonEndTag)
	}
	s.i++
	s.stack = s.stack[:len(s.stack)-1]
	s.popNS(top.nsMark)
	return nil
}

// text reads character data up to the next '<'.
func (s *scanner) text() error {
	nonSpace := int64(0)
	for s.i < len(s.b) {
		// The common bytes in a local loop: most of a package is text (base64 above
		// all), and with the index written to s.i per byte the loop ran at ~900
		// MB/s, ~1,500 without (BenchmarkScan/20MiB-attachment).
		b, i := s.b, s.i
		for i < len(b) {
			c := b[i]
			if c >= utf8.RuneSelf {
				break
			}
			if k := charClass[c]; k == ccPlain {
				nonSpace++
			} else if k != ccSpace {
				break
			}
			i++
		}
		if s.i = i; i == len(b) {
			break
		}
		c := b[i]
		if c >= utf8.RuneSelf {
			if err := s.nonASCII(); err != nil {
				return err
			}
			nonSpace++
			continue
		}
		switch charClass[c] { // plain bytes and space were taken above
		case ccLt:
			return s.countInhalt(nonSpace)
		case ccAmp:
			r, err := s.reference()
			if err != nil {
				return err
			}
			if r > ' ' {
				nonSpace++
			}
		case ccBracket:
			if s.has("]]>") {
				return s.fail(reasonCDATAEnd)
			}
			nonSpace++
			s.i++
		default:
			return s.fail(reasonChar)
		}
	}
	return s.countInhalt(nonSpace)
}

// countInhalt adds text to the current Inhalt's base64 length and checks the decoded
// size estimate.
func (s *scanner) countInhalt(n int64) error {
	if len(s.stack) == 0 || s.stack[len(s.stack)-1].kind != kindInhalt {
		return nil
	}
	s.b64 += n
	if est := s.b64 / 4 * 3; overEstimate(est, s.lim.MaxAttachmentBytes) {
		return limitErr("MaxAttachmentBytes", s.lim.MaxAttachmentBytes, est)
	}
	return nil
}

// nonASCII checks one multi-byte UTF-8 sequence for validity and the XML Char range.
func (s *scanner) nonASCII() error {
	r, size := utf8.DecodeRune(s.b[s.i:])
	if r == utf8.RuneError && size <= 1 {
		return s.fail(reasonUTF8)
	}
	if !isXMLChar(r) {
		return s.fail(reasonChar)
	}
	s.i += size
	return nil
}

// checkChars validates a run of bytes that needs no further parsing (comment, CDATA).
func (s *scanner) checkChars(end int) error {
	for s.i < end {
		c := s.b[s.i]
		if c >= utf8.RuneSelf {
			if err := s.nonASCII(); err != nil {
				return err
			}
			continue
		}
		if charClass[c] == ccInvalid {
			return s.fail(reasonChar)
		}
		s.i++
	}
	return nil
}

func (s *scanner) comment() error {
	start := s.i + 4
	idx := bytes.Index(s.b[start:], []byte("--"))
	if idx < 0 {
		return s.fail(reasonEOF)
	}
	end := start + idx
	if end+2 >= len(s.b) || s.b[end+2] != '>' { // "--" inside a comment, or "--->"
		s.i = end
		return s.fail(reasonComment)
	}
	s.i = start
	if err := s.checkChars(end); err != nil {
		return err
	}
	s.i = end + 3
	return nil
}

func (s *scanner) cdata() error {
	start := s.i + len("<![CDATA[")
	idx := bytes.Index(s.b[start:], []byte("]]>"))
	if idx < 0 {
		return s.fail(reasonCDATA)
	}
	end := start + idx
	s.i = start
	if err := s.checkChars(end); err != nil {
		return err
	}
	s.i = end + 3
	return s.countInhalt(int64(end-start) - int64(countSpace(s.b[start:end])))
}

// reference reads &name; or &#n; or &#xh; and returns the character it stands for.
// Without a DTD only the five predefined entities exist.
func (s *scanner) reference() (rune, error) {
	end := bytes.IndexByte(s.b[s.i:min(len(s.b), s.i+12)], ';')
	if end < 2 {
		return 0, s.fail(reasonRef)
	}
	r := refValue(s.b[s.i+1 : s.i+end])
	if r < 0 {
		return 0, s.fail(reasonRef)
	}
	s.i += end + 1
	return r, nil
}

// refValue decodes the body of a reference (between '&' and ';'); -1 if invalid.
func refValue(body []byte) rune {
	switch string(body) {
	case "lt":
		return '<'
	case "gt":
		return '>'
	case "amp":
		return '&'
	case "apos":
		return '\''
	case "quot":
		return '"'
	}
	if len(body) < 2 || body[0] != '#' {
		return -1
	}
	digits, base := body[1:], rune(10)
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	if len(digits) == 0 || len(digits) > 8 {
		return -1
	}
	var r rune
	for _, c := range digits {
		var d rune
		switch {
		case '0' <= c && c <= '9':
			d = rune(c - '0')
		case base == 16 && 'a' <= c && c <= 'f':
			d = rune(c-'a') + 10
		case base == 16 && 'A' <= c && c <= 'F':
			d = rune(c-'A') + 10
		default:
			return -1
		}
		r = r*base + d
		if r > utf8.MaxRune {
			return -1
		}
	}
	if !isXMLChar(r) {
		return -1
	}
	return r
}

// qname reads a Name that is also a QName (at most one colon, not first or last) and
// returns it with the colon's index (-1 if none).
func (s *scanner) qname() ([]byte, int, error) {
	// The fast path takes the usual name — ASCII, at most one colon, each part
	// starting with a letter or '_' — from a table; anything else goes the general
	// way below from the start again, which also gives the errors. (Names were ~40 %
	// of Scan's time, and Scan ~2 % of the gateway's CPU.)
	start, colon, i := s.i, -1, s.i
	for ; i < len(s.b); i++ {
		k := asciiName[s.b[i]]
		if k == 0 {
			break
		}
		first := i == start || i == colon+1
		if k == anColon {
			if colon >= 0 || first {
				return s.qnameGeneral()
			}
			colon = i
		} else if first && k != anStart {
			break
		}
	}
	if i < len(s.b) && s.b[i] >= utf8.RuneSelf || i == start || colon == i-1 {
		return s.qnameGeneral()
	}
	s.i = i
	if colon >= 0 {
		colon -= start
	}
	return s.b[start:i], colon, nil
}

// Classes of asciiName.
const (
	anStart = 1 + iota // NameStartChar: a letter or '_'
	anChar             // NameChar only: a digit, '-' or '.'
	anColon
)

var asciiName = func() (t [256]uint8) {
	for c := range 128 {
		switch {
		case isNameChar(rune(c), true):
			t[c] = anStart
		case isNameChar(rune(c), false):
			t[c] = anChar
		}
	}
	t[':'] = anColon
	return t
}()

// qnameGeneral is qname for every name, non-ASCII ones and errors included.
func (s *scanner) qnameGeneral() ([]byte, int, error) {
	start, colon := s.i, -1 // colon: absolute index while scanning
	nonASCII := false
	for s.i < len(s.b) {
		r, size := rune(s.b[s.i]), 1
		if r >= utf8.RuneSelf {
			nonASCII = true
			r, size = utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && size <= 1 {
				return nil, 0, s.fail(reasonUTF8)
			}
		}
		first := s.i == start || s.i == colon+1
		if r == ':' {
			if colon >= 0 || first {
				return nil, 0, s.fail(reasonName)
			}
			colon = s.i
			s.i++
			continue
		}
		if !isNameChar(r, first) {
			break
		}
		s.i += size
	}
	if s.i == start || colon == s.i-1 {
		return nil, 0, s.fail(reasonName)
	}
	if colon >= 0 {
		colon -= start
	}
	name := s.b[start:s.i]
	if nonASCII && !s.decoderAcceptsName(name) {
		return nil, 0, s.fail(reasonName)
	}
	return name, colon, nil
}

// decoderAcceptsName asks encoding/xml, which the tree builder uses, whether it takes
// a non-ASCII name: its character tables are XML 1.0 fourth edition, narrower than
// the fifth edition rules above, and Scan must not pass what the tree builder then
// refuses. Its rule is one of characters (the first of a name, and the others), so
// it is asked per character, and its answers are kept per character, not per name:
// a sender can write millions of different names, but only some 36,000 characters
// that the decoder takes (a name with any other is refused at once). Kept per name,
// a body of 32 MiB of different names cost 10 s and 1.7 GB of allocations here.
// ASCII characters never get here: Scan's own rules for them are the decoder's or
// stricter.
func (s *scanner) decoderAcceptsName(name []byte) bool {
	for i, first := 0, true; i < len(name); first = false {
		r, size := utf8.DecodeRune(name[i:])
		i += size
		if r >= utf8.RuneSelf && !s.decoderAcceptsRune(r, first) {
			return false
		}
	}
	return true
}

// Bits of scanner.runes.
const (
	runeFirst = 1 << iota
	runeFirstOK
	runeLater
	runeLaterOK
)

func (s *scanner) decoderAcceptsRune(r rune, first bool) bool {
	asked, ok := uint8(runeLater), uint8(runeLaterOK)
	if first {
		asked, ok = runeFirst, runeFirstOK
	}
	known := s.runes[r]
	if known&asked != 0 {
		return known&ok != 0
	}
	doc := make([]byte, 0, 8)
	if doc = append(doc, '<'); !first {
		doc = append(doc, 'a')
	}
	doc = append(utf8.AppendRune(doc, r), "/>"...)
	if s.runes == nil {
		s.runes = map[rune]uint8{}
	}
	known |= asked
	if _, err := xml.NewDecoder(bytes.NewReader(doc)).RawToken(); err == nil {
		known |= ok
	}
	s.runes[r] = known
	return known&ok != 0
}

func (s *scanner) skipSpace() int {
	n := 0
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
		n++
	}
	return n
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func countSpace(b []byte) int {
	n := 0
	for _, c := range b {
		if isSpace(c) {
			n++
		}
	}
	return n
}

// ASCII character classes for the text loop.
const (
	ccPlain = iota
	ccSpace
	ccLt
	ccAmp
	ccBracket
	ccInvalid
)

var charClass = func() (t [utf8.RuneSelf]byte) {
	for c := range t {
		if c < 0x20 {
			t[c] = ccInvalid
		}
	}
	t['\t'], t['\n'], t['\r'], t[' '] = ccSpace, ccSpace, ccSpace, ccSpace
	t['<'], t['&'], t[']'] = ccLt, ccAmp, ccBracket
	return t
}()

// isXMLChar is the XML 1.0 Char production.
func isXMLChar(r rune) bool {
	switch {
	case r == 0x9 || r == 0xA || r == 0xD:
		return true
	case r >= 0x20 && r <= 0xD7FF:
		return true
	case r >= 0xE000 && r <= 0xFFFD:
		return true
	case r >= 0x10000 && r <= utf8.MaxRune:
		return true
	}
	return false
}

// isNameChar is NameStartChar (first) or NameChar of XML 1.0 fifth edition, without ':'
// (handled by qname).
func isNameChar(r rune, first bool) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', r == '_':
		return true
	case r < 0x80:
		return !first && ('0' <= r && r <= '9' || r == '-' || r == '.')
	case r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF,
		r >= 0x370 && r <= 0x37D, r >= 0x37F && r <= 0x1FFF, r == 0x200C, r == 0x200D,
		r >= 0x2070 && r <= 0x218F, r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF,
		r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		return true
	}
	return !first && (r == 0xB7 || r >= 0x300 && r <= 0x36F || r == 0x203F || r == 0x2040)
}
