package xmlscan

import "testing"

func TestScanCountsWhatTheParserFinds(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want Counts
	}{
		{`<?xml version="1.0"?><r a="1"><b c='x>y' d="2"/></r>`, Counts{Elements: 2, Attributes: 3, MaxAttributes: 2}},
		{`<r><!--><a b="1"/>--><![CDATA[<c d="1"/>]]></r>`, Counts{Elements: 1}},
		{`<r><?pi <a/>?></r>`, Counts{Elements: 1, PI: true}},
		{`<!DOCTYPE r><r/>`, Counts{Elements: 1, Declaration: true}},
		{`<r>text = more > text</r>`, Counts{Elements: 1}},
	} {
		if got := Scan([]byte(tc.doc), nil); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.doc, got, tc.want)
		}
	}
	// stop ends the scan at the first element that passes the bound.
	if got := Scan([]byte(`<r><a/><a/><a/><a/></r>`), func(c Counts) bool { return c.Elements > 2 }); got.Elements != 3 {
		t.Errorf("stopped at %d elements, want 3", got.Elements)
	}
}
