package pdffile

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// TestOffsetsPointAtObjects: every cross-reference entry and startxref name the
// byte where their object or table begins — what a strict reader checks.
func TestOffsetsPointAtObjects(t *testing.T) {
	objs := []string{"<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [] /Count 0 >>", "<< /Producer (ä) >>"}
	b := Assemble(objs, "/Info 3 0 R")
	s := string(b)
	x := strings.Index(s, "xref\n")
	sx := strings.Index(s, "startxref\n")
	if n, err := strconv.Atoi(strings.Fields(s[sx+len("startxref\n"):])[0]); err != nil || n != x {
		t.Fatalf("startxref %d, xref table at %d (%v)", n, x, err)
	}
	entries := strings.Split(s[x:], "\n")[3 : 3+len(objs)]
	for i, e := range entries {
		if len(e)+1 != 20 {
			t.Errorf("entry %d is %d bytes, want 20", i+1, len(e)+1)
		}
		off, _ := strconv.Atoi(e[:10])
		if want := strconv.Itoa(i+1) + " 0 obj\n" + objs[i]; !bytes.HasPrefix(b[off:], []byte(want)) {
			t.Errorf("entry %d points at %q", i+1, s[off:min(len(s), off+30)])
		}
	}
	if !strings.Contains(s, "<< /Size 4 /Root 1 0 R /Info 3 0 R >>") || !strings.HasSuffix(s, "%%EOF\n") {
		t.Errorf("trailer:\n%s", s[sx-60:])
	}
	if strings.Contains(string(Assemble(objs, "")), "R  >>") {
		t.Error("an empty trailer leaves a double space")
	}
}
