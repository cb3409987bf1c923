package signing

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// TestPrecountRefusesBeforeTheTree: a document of more elements than allowed is
// refused before etree builds a tree of it. A 45 MB body of "<a/>" posted to the
// federation endpoint (no signature needed: its envelopes reach the verifier
// without intake's pre-scan) held 1.8 GB of heap until the tree walk refused it.
func TestPrecountRefusesBeforeTheTree(t *testing.T) {
	v := NewVerifier(NewTrustStore(), VerifyOptions{MaxBytes: 64 << 20})
	for name, unit := range map[string]string{"elements": "<a/>", "with an attribute": "<a b=''/>"} {
		doc := []byte("<?xml version=\"1.0\"?><r>" + strings.Repeat(unit, 45<<20/len(unit)) + "</r>")
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := v.Verify(doc)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrLimit) {
			t.Fatalf("%s: %v, want ErrLimit", name, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
			t.Fatalf("%s: %d MiB allocated to refuse the document: a tree was built", name, grew>>20)
		}
	}
}

// treeCounts is what the tree walk sees: the elements, and the largest number
// of attributes on one, or ok false where the verifier refuses the document
// whatever its counts: etree cannot read it, or it holds a directive ("<!…>"
// other than a comment or CDATA; the parser reads one across nested brackets,
// and parse and the walk refuse it as malformed).
func treeCounts(doc []byte) (elements, maxAttrs int, ok bool) {
	d := etree.NewDocument()
	d.ReadSettings = etree.ReadSettings{PreserveDuplicateAttrs: true}
	if d.ReadFromBytes(doc) != nil {
		return 0, 0, false
	}
	ok = true
	var walk func(tokens []etree.Token)
	walk = func(tokens []etree.Token) {
		for _, t := range tokens {
			switch t := t.(type) {
			case *etree.Directive:
				ok = false
			case *etree.Element:
				elements++
				maxAttrs = max(maxAttrs, len(t.Attr))
				walk(t.Child)
			}
		}
	}
	walk(d.Child)
	return elements, maxAttrs, ok
}

// precountAgrees fails when precount refuses a document the tree walk would
// accept under the same limits (it may refuse less: malformed input is the
// parser's to refuse).
func precountAgrees(t *testing.T, doc []byte, maxElements, maxAttrs int) {
	t.Helper()
	err := precount(doc, maxElements, maxAttrs)
	elements, attrs, ok := treeCounts(doc)
	if err != nil && ok && elements <= maxElements && attrs <= maxAttrs {
		t.Fatalf("precount refuses %q (%v), the tree has %d elements and at most %d attributes", doc, err, elements, attrs)
	}
	if err == nil && ok && (elements > maxElements || attrs > maxAttrs) {
		t.Fatalf("precount passes %q, the tree has %d elements and at most %d attributes", doc, elements, attrs)
	}
}

var precountSeeds = []string{
	`<r><a/><b x="1" y='2'/></r>`,
	`<r a="x>y" b='=>=' c="'"/>`,
	`<r><!-- <a><b><c> = = --><d/></r>`,
	`<r><![CDATA[<a><b>x=y</b></a>]]><e/></r>`,
	`<?xml version="1.0"?><?pi <a><b>?><r xmlns="urn:x" xmlns:p="urn:p" p:a="1"/>`,
	`<r>text = more > text<a   b =  "1"   /></r>`,
	`<r><a b="1" b="1"/></r>`,
	"\n<r>\n<a\nb\n=\n'1'\n/>\n</r>",
	`<r><a/><a/><a/><a/><a/><a/><a/><a/><a/></r>`,
	`<r a="1" b="2" c="3" d="4"/>`,
	`<r><!--><a/><a/><a/><a/><a/><a/><a/><a/><a/>--><x/></r>`, // a comment of "><a/>…": its opener is no end
	`<r><!---><b c="1" d="2" e="3" f="4"/>--></r>`,
	`<r><![CDATA[]]><a/></r>`,
}

func TestPrecountCountsWhatTheTreeHas(t *testing.T) {
	for _, s := range precountSeeds {
		for _, lim := range [][2]int{{8, 3}, {1, 1}, {100, 100}} {
			precountAgrees(t, []byte(s), lim[0], lim[1])
		}
	}
}

func FuzzPrecount(f *testing.F) {
	for _, s := range precountSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if bytes.Contains(doc, []byte("<!DOCTYPE")) || bytes.Contains(doc, []byte("<!ENTITY")) {
			return // refused before either
		}
		precountAgrees(t, doc, 8, 3)
	})
}
