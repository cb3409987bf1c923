package xmlscan

import "testing"

// TestMaxAttributesIsTheMostOnOneElement: MaxAttributes is the most any one
// element has, wherever it stands, not the last element's: a caller that scans
// the whole document (stop nil) and checks the bound afterwards would otherwise
// let an element with thousands of attributes through when a plain one follows.
func TestMaxAttributesIsTheMostOnOneElement(t *testing.T) {
	doc := `<r a="1" b="2" c="3" d="4"><x e="5"/><y/></r>`
	if got := Scan([]byte(doc), nil); got.MaxAttributes != 4 || got.Attributes != 5 || got.Elements != 3 {
		t.Fatalf("%+v, want MaxAttributes 4 of 5 attributes on 3 elements", got)
	}
}
