// Package xmlscan counts the markup of an XML document with a byte scan, before
// any parser reads it: elements, attributes, declarations and processing
// instructions. A parser that builds a tree (etree: some 40 times the document's
// bytes) or decodes into structures has spent the memory before its own limits
// can refuse a document; this scan allocates nothing and can stop as soon as a
// bound is passed. Walk is the scan itself, tag by tag, for any other look at a
// document's structure that need not build a tree.
//
// It counts what a parser will find in a well-formed document: comments and
// CDATA sections are skipped from after their opener to their first end ("-->",
// "]]>"), a processing instruction to its first "?>", and in a start tag an
// attribute is a '=' outside quoted values, the tag ending at the first '>'
// outside them ('<' cannot occur in an attribute value). What is malformed it
// counts somehow and leaves to the parser to refuse.
package xmlscan

import "bytes"

// Counts is what Scan found.
type Counts struct {
	Elements      int
	Attributes    int  // in all
	MaxAttributes int  // on one element
	Declaration   bool // a <!…> other than a comment or CDATA section: DOCTYPE, ENTITY, …
	PI            bool // a processing instruction other than the XML declaration
}

// Scan counts the markup of b. After each start tag it calls stop, if set, and
// ends when stop reports true (a bound is passed: the rest need not be read).
func Scan(b []byte, stop func(Counts) bool) Counts {
	var c Counts
	Walk(b, func(t Tag) bool {
		switch t.Kind {
		case PI:
			c.PI = c.PI || string(t.Name) != "xml"
		case Declaration:
			c.Declaration = true
		case Start:
			c.Elements++
			c.Attributes += t.Attrs
			c.MaxAttributes = max(c.MaxAttributes, t.Attrs)
			return stop == nil || !stop(c)
		}
		return true
	})
	return c
}

// Kind is what a Tag is.
type Kind uint8

// The kinds of markup Walk reports (comments and CDATA sections it skips).
const (
	Start       Kind = iota // <name …> or <name …/>
	End                     // </name>
	PI                      // <?target …?>
	Declaration             // <!…> other than a comment or CDATA section
)

// Tag is one piece of markup Walk found.
type Tag struct {
	Kind   Kind
	Offset int    // of its '<' in the document
	Name   []byte // the element's name as written (prefix included), the PI's target; nil for a declaration
	Empty  bool   // a start tag that ends with "/>"
	Attrs  int    // a start tag's attributes
}

// Walk calls fn for the markup of b in order, until fn returns false, by the
// rules of the package comment: the one byte scan behind Scan's counts and any
// other look at a document's structure before (or instead of) a parser's — the
// intake's application digest finds Kopf/Leistung in canonical XML with it. A
// declaration's and an end tag's insides are read on as text (no '<' can occur
// there in a well-formed document).
func Walk(b []byte, fn func(Tag) bool) {
	skip := func(rest []byte, open, end string) ([]byte, bool) {
		if !bytes.HasPrefix(rest, []byte(open)) {
			return rest, false
		}
		j := bytes.Index(rest[len(open):], []byte(end))
		if j < 0 {
			return nil, true // unterminated: the parser refuses it
		}
		return rest[len(open)+j+len(end):], true
	}
	doc := b
	for {
		i := bytes.IndexByte(b, '<')
		if i < 0 {
			return
		}
		rest := b[i+1:]
		at := len(doc) - len(b) + i
		var ok bool
		if b, ok = skip(rest, "!--", "-->"); ok {
			continue
		}
		if b, ok = skip(rest, "![CDATA[", "]]>"); ok {
			continue
		}
		switch {
		case len(rest) == 0:
			return
		case rest[0] == '?':
			// The target ends at white space or "?>"; "xml" is the declaration.
			target := rest[1:]
			if j := bytes.IndexAny(target, " \t\r\n?"); j >= 0 {
				target = target[:j]
			}
			b, _ = skip(rest, "?", "?>")
			if !fn(Tag{Kind: PI, Offset: at, Name: target}) {
				return
			}
			continue
		case rest[0] == '!':
			if !fn(Tag{Kind: Declaration, Offset: at}) {
				return
			}
		case rest[0] == '/':
			if !fn(Tag{Kind: End, Offset: at, Name: rest[1:nameEnd(rest, 1)]}) {
				return
			}
		default:
			attrs := 0
			var quote byte
			j := 0
		tag:
			for ; j < len(rest); j++ {
				switch ch := rest[j]; {
				case quote != 0:
					if ch == quote {
						quote = 0
					}
				case ch == '"' || ch == '\'':
					quote = ch
				case ch == '=':
					attrs++
				case ch == '>':
					break tag
				}
			}
			t := Tag{Kind: Start, Offset: at, Name: rest[:nameEnd(rest, 0)], Attrs: attrs, Empty: j > 0 && j < len(rest) && rest[j-1] == '/'}
			rest = rest[j:]
			if !fn(t) {
				return
			}
		}
		b = rest
	}
}

// nameEnd is where the name starting at rest[from] ends.
func nameEnd(rest []byte, from int) int {
	j := from
	for ; j < len(rest); j++ {
		switch rest[j] {
		case ' ', '\t', '\r', '\n', '/', '>':
			return j
		}
	}
	return j
}
