package xmlscan

import (
	"fmt"
	"strings"
	"testing"
)

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

// TestWalkReportsTagsInOrder: the tags Walk reports, with their offsets and names,
// past what it skips (comments, CDATA, a '>' in a quoted value).
func TestWalkReportsTagsInOrder(t *testing.T) {
	doc := `<?xml version="1.0"?><p:A xmlns:p="u:Leistung>"><!-- <B> --><p:K><![CDATA[<C>]]><L a='>' b="2"/></p:K></p:A>`
	var got []string
	Walk([]byte(doc), func(tg Tag) bool {
		got = append(got, fmt.Sprintf("%d:%d:%s:%v:%d", tg.Kind, tg.Offset, tg.Name, tg.Empty, tg.Attrs))
		return true
	})
	want := []string{"2:0:xml:false:0", "0:21:p:A:false:1", "0:60:p:K:false:0", "0:80:L:true:2", "1:96:p:K:false:0", "1:102:p:A:false:0"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Walk reported\n%v, want\n%v", got, want)
	}
}
