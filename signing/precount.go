package signing

import (
	"fmt"

	"github.com/amtsbote/amtsbote/internal/xmlscan"
)

// precount counts the elements of doc, and the attributes of each, before any
// tree is built, and refuses a document over the limits.
//
// The tree walk (checkTree) checks the same limits, but only after etree has
// built the whole tree, which takes some 40 times the document's bytes: a
// 45 MB body of "<a/>" repeated, posted without any signature to the federation
// endpoint (whose envelopes reach the verifier without intake's pre-scan), held
// 1.8 GB of heap until the walk refused it, two at once 3.6 GB. xmlscan counts
// what the parser will, without allocating, so this refuses nothing the walk
// accepts (FuzzPrecount).
func precount(doc []byte, maxElements, maxAttrs int) error {
	c := xmlscan.Scan(doc, func(c xmlscan.Counts) bool { return c.Elements > maxElements || c.MaxAttributes > maxAttrs })
	switch {
	case c.Elements > maxElements:
		return fmt.Errorf("%w: more than %d elements", ErrLimit, maxElements)
	case c.MaxAttributes > maxAttrs:
		return fmt.Errorf("%w: an element has more than %d attributes", ErrLimit, maxAttrs)
	}
	return nil
}
