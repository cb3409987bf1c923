package signing

import (
	"bytes"
	"fmt"
)

// precount counts the elements of doc, and the attributes of each, before any
// tree is built, and refuses a document over the limits.
//
// The tree walk (checkTree) checks the same limits, but only after etree has
// built the whole tree, which takes some 40 times the document's bytes: a
// 45 MB body of "<a/>" repeated, posted without any signature to the federation
// endpoint (whose envelopes reach the verifier without intake's pre-scan), held
// 1.8 GB of heap until the walk refused it, two at once 3.6 GB. This is a byte
// scan with no allocation: text is skipped with IndexByte, comments, CDATA
// sections and processing instructions whole; inside a tag it counts the '='
// outside quoted values. It counts no more than a parser would (a '<' in a
// comment or CDATA is no element), so it refuses nothing the walk accepts; what
// is malformed it leaves to the parser.
func precount(doc []byte, maxElements, maxAttrs int) error {
	elements := 0
	for i := 0; i < len(doc); {
		j := bytes.IndexByte(doc[i:], '<')
		if j < 0 {
			return nil
		}
		i += j + 1
		if i >= len(doc) {
			return nil
		}
		switch c := doc[i]; {
		case c == '/':
			continue
		case c == '?':
			if k := bytes.Index(doc[i:], []byte("?>")); k >= 0 {
				i += k + 2
				continue
			}
			return nil
		case c == '!':
			// The end is looked for after the opener, as the parser does: in
			// "<!-->" the opener's own dashes are no end ("-->" from the '!' was,
			// and what followed counted as outside the comment).
			from, end := 1, []byte(">")
			switch {
			case bytes.HasPrefix(doc[i:], []byte("!--")):
				from, end = 3, []byte("-->")
			case bytes.HasPrefix(doc[i:], []byte("![CDATA[")):
				from, end = 8, []byte("]]>")
			}
			if k := bytes.Index(doc[i+from:], end); k >= 0 {
				i += from + k + len(end)
				continue
			}
			return nil
		}
		elements++
		if elements > maxElements {
			return fmt.Errorf("%w: more than %d elements", ErrLimit, maxElements)
		}
		// The tag: attributes are the '=' outside quoted values, up to its '>'.
		attrs := 0
		var quote byte
	tag:
		for ; i < len(doc); i++ {
			switch c := doc[i]; {
			case quote != 0:
				if c == quote {
					quote = 0
				}
			case c == '"' || c == '\'':
				quote = c
			case c == '=':
				if attrs++; attrs > maxAttrs {
					return fmt.Errorf("%w: an element has more than %d attributes", ErrLimit, maxAttrs)
				}
			case c == '>':
				i++
				break tag
			}
		}
	}
	return nil
}
