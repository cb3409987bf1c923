package c14n

import (
	"bytes"
	"testing"

	"github.com/beevik/etree"
)

// FuzzCanonicalize: canonicalization never panics and is idempotent: the
// canonical form re-parses and canonicalizes to itself under every method.
// (This is what makes "the element built from the digested bytes" faithful.)
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{
		`<a xmlns="urn:x" xmlns:p="urn:p" p:b="1" c="&lt;&amp;&#9;&#10;"><p:c xmlns="">text &gt; <d/></p:c><![CDATA[<x>]]></a>`,
		`<r ID="x"><s xmlns:q="urn:q" q:x="1" xml:lang="de"><q:t xmlns:q="urn:q2"/></s><!-- c --></r>`,
		`<a xmlns:a="urn:a"><a:b xmlns:a="urn:a"><c xmlns="urn:d"><e xmlns=""/></c></a:b></a>`,
		"<a>\r\n\t</a>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := etree.NewDocument()
		d.ReadSettings.PreserveDuplicateAttrs = true
		if d.ReadFromBytes(data) != nil || d.Root() == nil {
			return
		}
		for _, m := range []Method{Inclusive10, Inclusive11, Exclusive10} {
			var a bytes.Buffer
			if Canonicalize(&a, d.Root(), m, nil) != nil {
				continue
			}
			d2 := etree.NewDocument()
			d2.ReadSettings.PreserveDuplicateAttrs = true
			if err := d2.ReadFromBytes(a.Bytes()); err != nil || d2.Root() == nil {
				t.Fatalf("method %d: canonical form does not parse: %v\n%q", m, err, a.Bytes())
			}
			var b bytes.Buffer
			if err := Canonicalize(&b, d2.Root(), m, nil); err != nil {
				t.Fatalf("method %d: canonical form does not canonicalize: %v", m, err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatalf("method %d: not idempotent:\n%q\n%q", m, a.Bytes(), b.Bytes())
			}
		}
	})
}
