// Package xmlscan counts the markup of an XML document with a byte scan, before
// any parser reads it: elements, attributes, declarations and processing
// instructions. A parser that builds a tree (etree: some 40 times the document's
// bytes) or decodes into structures has spent the memory before its own limits
// can refuse a document; this scan allocates nothing and can stop as soon as a
// bound is passed.
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
	for {
		i := bytes.IndexByte(b, '<')
		if i < 0 {
			return c
		}
		rest := b[i+1:]
		var ok bool
		if b, ok = skip(rest, "!--", "-->"); ok {
			continue
		}
		if b, ok = skip(rest, "![CDATA[", "]]>"); ok {
			continue
		}
		if bytes.HasPrefix(rest, []byte("?")) {
			// The target ends at white space or "?>"; "xml" is the declaration.
			target := rest[1:]
			if j := bytes.IndexAny(target, " \t\r\n?"); j >= 0 {
				target = target[:j]
			}
			c.PI = c.PI || string(target) != "xml"
			b, _ = skip(rest, "?", "?>")
			continue
		}
		if bytes.HasPrefix(rest, []byte("!")) {
			c.Declaration = true
		}
		if len(rest) > 0 && rest[0] != '!' && rest[0] != '/' {
			c.Elements++
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
			c.Attributes += attrs
			c.MaxAttributes = max(c.MaxAttributes, attrs)
			rest = rest[j:]
			if stop != nil && stop(c) {
				return c
			}
		}
		b = rest
	}
}
