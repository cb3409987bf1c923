// Package c14n implements the XML canonicalization methods amtsbote signs and
// verifies with: inclusive C14N 1.0, C14N 1.1 (identical to 1.0 for the whole-subtree
// node sets we accept) and exclusive C14N 1.0 without an InclusiveNamespaces
// PrefixList, all without comments.
//
// It works on an already-parsed etree tree instead of goxmldsig's canonicalizers
// because it must handle documents of any size (goxmldsig v1.6.1 stops at ~1000
// traversed elements) and it serves both the signer and the verifier, so both
// sides agree byte for byte by construction.
package c14n

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/beevik/etree"
)

// Algorithm URIs.
const (
	AlgInclusive10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
	AlgInclusive11 = "http://www.w3.org/2006/12/xml-c14n11"
	AlgExclusive10 = "http://www.w3.org/2001/10/xml-exc-c14n#"

	// XMLNamespace is the namespace bound to the reserved prefix "xml".
	XMLNamespace = "http://www.w3.org/XML/1998/namespace"
)

// Method selects a canonicalization algorithm.
type Method int

// The supported methods.
const (
	Inclusive10 Method = iota + 1
	Inclusive11
	Exclusive10
)

// MethodFor maps an algorithm URI to a Method; comment-preserving variants and
// anything else are not supported.
func MethodFor(alg string) (Method, bool) {
	switch alg {
	case AlgInclusive10:
		return Inclusive10, true
	case AlgInclusive11:
		return Inclusive11, true
	case AlgExclusive10:
		return Exclusive10, true
	}
	return 0, false
}

// ErrUnsupported reports input this canonicalizer refuses rather than guessing
// (unbound prefixes, directives, xml:base inheritance under C14N 1.1, ...).
var ErrUnsupported = errors.New("c14n: unsupported input")

type binding struct{ prefix, uri string }

type canon struct {
	buf      *bytes.Buffer
	method   Method
	skip     *etree.Element
	scope    []binding // in-scope namespace bindings, innermost last
	rendered []binding // bindings already rendered on output ancestors, innermost last
	nsTmp    []binding
	attrTmp  []attr
}

type attr struct {
	uri, qname, local, value string
}

// Canonicalize appends the canonical form of the subtree rooted at el to buf,
// leaving out skip (the enveloped signature) with its subtree. Namespace bindings
// and, for the inclusive methods, xml:* attributes declared on el's ancestors are
// taken into account as for a document subset whose apex is el.
func Canonicalize(buf *bytes.Buffer, el *etree.Element, m Method, skip *etree.Element) error {
	if m < Inclusive10 || m > Exclusive10 {
		return fmt.Errorf("%w: method %d", ErrUnsupported, m)
	}
	c := &canon{buf: buf, method: m, skip: skip}
	// Collect ancestor bindings outermost first, so that inner ones shadow them.
	var anc []*etree.Element
	for p := el.Parent(); p != nil; p = p.Parent() {
		anc = append(anc, p)
	}
	for i := len(anc) - 1; i >= 0; i-- {
		if err := c.pushDecls(anc[i]); err != nil {
			return err
		}
	}
	var inherited []etree.Attr
	if m != Exclusive10 {
		var err error
		if inherited, err = inheritedXMLAttrs(el, anc, m); err != nil {
			return err
		}
	}
	return c.element(el, true, inherited)
}

// inheritedXMLAttrs returns the xml:* attributes an inclusive canonicalization
// copies onto the apex from its ancestors (nearest wins).
func inheritedXMLAttrs(el *etree.Element, anc []*etree.Element, m Method) ([]etree.Attr, error) {
	var out []etree.Attr
	have := map[string]bool{}
	for _, a := range el.Attr {
		if a.Space == "xml" {
			have[a.Key] = true
		}
	}
	for _, p := range anc {
		for _, a := range p.Attr {
			if a.Space != "xml" || have[a.Key] {
				continue
			}
			if m == Inclusive11 {
				switch a.Key {
				case "base":
					return nil, fmt.Errorf("%w: xml:base on an ancestor under C14N 1.1", ErrUnsupported)
				case "lang", "space":
				default:
					continue
				}
			}
			have[a.Key] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// pushDecls adds el's namespace declarations to the scope.
func (c *canon) pushDecls(el *etree.Element) error {
	for _, a := range el.Attr {
		switch {
		case a.Space == "" && a.Key == "xmlns":
			c.scope = append(c.scope, binding{"", a.Value})
		case a.Space == "xmlns":
			if a.Value == "" || a.Key == "xmlns" || a.Key == "xml" {
				return fmt.Errorf("%w: namespace declaration xmlns:%s=%q", ErrUnsupported, a.Key, a.Value)
			}
			c.scope = append(c.scope, binding{a.Key, a.Value})
		}
	}
	return nil
}

func lookup(bs []binding, prefix string) (string, bool) {
	for i := len(bs) - 1; i >= 0; i-- {
		if bs[i].prefix == prefix {
			return bs[i].uri, true
		}
	}
	return "", false
}

func (c *canon) resolve(prefix string) (string, error) {
	switch prefix {
	case "xml":
		return XMLNamespace, nil
	case "xmlns":
		return "", fmt.Errorf("%w: reserved prefix xmlns used as a name", ErrUnsupported)
	}
	uri, ok := lookup(c.scope, prefix)
	if !ok && prefix != "" {
		return "", fmt.Errorf("%w: unbound prefix %q", ErrUnsupported, prefix)
	}
	return uri, nil
}

func (c *canon) element(el *etree.Element, apex bool, inherited []etree.Attr) error {
	scopeLen, renderedLen := len(c.scope), len(c.rendered)
	defer func() { c.scope, c.rendered = c.scope[:scopeLen], c.rendered[:renderedLen] }()
	if err := c.pushDecls(el); err != nil {
		return err
	}
	if _, err := c.resolve(el.Space); err != nil {
		return err
	}

	// Namespace nodes to render on this element.
	ns := c.nsTmp[:0]
	switch {
	case c.method == Exclusive10:
		want := func(prefix string) error {
			if prefix == "xml" {
				return nil
			}
			uri, err := c.resolve(prefix)
			if err != nil {
				return err
			}
			prev, _ := lookup(c.rendered, prefix)
			if prev == uri {
				return nil
			}
			for _, b := range ns {
				if b.prefix == prefix {
					return nil
				}
			}
			ns = append(ns, binding{prefix, uri})
			return nil
		}
		if err := want(el.Space); err != nil {
			return err
		}
		for _, a := range el.Attr {
			if a.Space != "" && a.Space != "xmlns" {
				if err := want(a.Space); err != nil {
					return err
				}
			}
		}
	case apex:
		// Every binding in scope, nearest wins; an empty default is not rendered.
		for i := len(c.scope) - 1; i >= 0; i-- {
			b := c.scope[i]
			dup := false
			for _, x := range ns {
				if x.prefix == b.prefix {
					dup = true
					break
				}
			}
			if dup {
				continue
			}
			if b.prefix == "" && b.uri == "" {
				// Still shadows outer defaults: remember it so they are skipped.
				ns = append(ns, binding{"", "\x00"})
				continue
			}
			ns = append(ns, b)
		}
		// Drop the shadow marker.
		ns = slices.DeleteFunc(ns, func(b binding) bool { return b.uri == "\x00" })
	default:
		for i := scopeLen; i < len(c.scope); i++ {
			b := c.scope[i]
			prev, _ := lookup(c.rendered, b.prefix)
			if prev == b.uri {
				continue
			}
			// A later declaration of the same prefix on the same element would be a
			// duplicate attribute; the parser rejects those, so the first wins here.
			dup := false
			for _, x := range ns {
				if x.prefix == b.prefix {
					dup = true
					break
				}
			}
			if !dup {
				ns = append(ns, b)
			}
		}
	}
	slices.SortFunc(ns, func(a, b binding) int { return strings.Compare(a.prefix, b.prefix) })
	c.rendered = append(c.rendered, ns...)

	// Attributes, sorted by namespace URI then local name.
	attrs := c.attrTmp[:0]
	add := func(a etree.Attr) error {
		if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			return nil
		}
		uri, err := c.resolve(a.Space)
		if err != nil {
			return err
		}
		if a.Space == "" {
			uri = ""
		}
		q := a.Key
		if a.Space != "" {
			q = a.Space + ":" + a.Key
		}
		attrs = append(attrs, attr{uri: uri, qname: q, local: a.Key, value: a.Value})
		return nil
	}
	for _, a := range el.Attr {
		if err := add(a); err != nil {
			return err
		}
	}
	for _, a := range inherited {
		if err := add(a); err != nil {
			return err
		}
	}
	slices.SortFunc(attrs, func(a, b attr) int {
		if r := strings.Compare(a.uri, b.uri); r != 0 {
			return r
		}
		return strings.Compare(a.local, b.local)
	})
	for i := 1; i < len(attrs); i++ {
		if attrs[i].uri == attrs[i-1].uri && attrs[i].local == attrs[i-1].local {
			return fmt.Errorf("%w: duplicate attribute {%s}%s", ErrUnsupported, attrs[i].uri, attrs[i].local)
		}
	}

	b := c.buf
	b.WriteByte('<')
	writeQName(b, el.Space, el.Tag)
	for _, n := range ns {
		if n.prefix == "" {
			b.WriteString(` xmlns="`)
		} else {
			b.WriteString(" xmlns:")
			b.WriteString(n.prefix)
			b.WriteString(`="`)
		}
		escapeAttr(b, n.uri)
		b.WriteByte('"')
	}
	for _, a := range attrs {
		b.WriteByte(' ')
		b.WriteString(a.qname)
		b.WriteString(`="`)
		escapeAttr(b, a.value)
		b.WriteByte('"')
	}
	b.WriteByte('>')
	// The scratch slices are reused by children; keep nothing of them past here.
	c.nsTmp, c.attrTmp = ns[:0], attrs[:0]

	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.Element:
			if t == c.skip {
				continue
			}
			if err := c.element(t, false, nil); err != nil {
				return err
			}
		case *etree.CharData:
			escapeText(b, t.Data)
		case *etree.Comment:
			// Without-comments variants only.
		case *etree.ProcInst:
			b.WriteString("<?")
			b.WriteString(t.Target)
			if t.Inst != "" {
				b.WriteByte(' ')
				b.WriteString(t.Inst)
			}
			b.WriteString("?>")
		default:
			return fmt.Errorf("%w: token %T inside an element", ErrUnsupported, t)
		}
	}
	b.WriteString("</")
	writeQName(b, el.Space, el.Tag)
	b.WriteByte('>')
	return nil
}

func writeQName(b *bytes.Buffer, space, local string) {
	if space != "" {
		b.WriteString(space)
		b.WriteByte(':')
	}
	b.WriteString(local)
}

// Canonical XML escapes: text nodes escape & < > and CR; attribute values escape
// & < " and the whitespace characters TAB, LF and CR (C14N 1.0, section 2.3).
var (
	textEscapes = map[byte]string{'&': "&amp;", '<': "&lt;", '>': "&gt;", '\r': "&#xD;"}
	attrEscapes = map[byte]string{'&': "&amp;", '<': "&lt;", '"': "&quot;", '\t': "&#x9;", '\n': "&#xA;", '\r': "&#xD;"}
)

func escapeText(b *bytes.Buffer, s string) { escape(b, s, &textEscapeTable) }

func escapeAttr(b *bytes.Buffer, s string) { escape(b, s, &attrEscapeTable) }

// EscapeText and EscapeAttr append s escaped as canonical text or attribute value:
// for a writer that produces a canonical form directly (signing's receipts) and
// must escape exactly as Canonicalize does.
func EscapeText(b *bytes.Buffer, s string) { escapeText(b, s) }

// EscapeAttr: see EscapeText.
func EscapeAttr(b *bytes.Buffer, s string) { escapeAttr(b, s) }

// Lookup tables built from the maps above; indexing beats a map on this hot path.
var textEscapeTable, attrEscapeTable = table(textEscapes), table(attrEscapes)

func table(m map[byte]string) (t [256]string) {
	for c, rep := range m {
		t[c] = rep
	}
	return t
}

func escape(b *bytes.Buffer, s string, t *[256]string) {
	last := 0
	for i := 0; i < len(s); i++ {
		rep := t[s[i]]
		if rep == "" {
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(rep)
		last = i + 1
	}
	b.WriteString(s[last:])
}
