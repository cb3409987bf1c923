package paket

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ExamplePDF output is a valid PDF (qpdf --check) whose text a PDF reader extracts
// unchanged (pdftotext), umlauts, euro sign and PDF delimiters included.
func TestExamplePDFIsValid(t *testing.T) {
	qpdf := needTool(t, "qpdf", "qpdf")
	pdftotext := needTool(t, "pdftotext", "poppler-utils")
	dir := t.TempDir()
	for name, tc := range map[string]struct{ in, want string }{
		"example":  {"Mängelanzeige\nWas passt Ihnen nicht: Der Papierkorb an der Bushaltestelle ist voll.\nPriorität: hoch", "Mängelanzeige\nWas passt Ihnen nicht: Der Papierkorb an der Bushaltestelle ist voll.\nPriorität: hoch"},
		"escapes":  {`Klammern (a) \ und „Anführung“ – 12 € ß`, `Klammern (a) \ und „Anführung“ – 12 € ß`},
		"unmapped": {"Emoji 🙂 und Łódź", "Emoji ? und ?ód?"},
		"empty":    {"", ""},
	} {
		t.Run(name, func(t *testing.T) {
			pdf := ExamplePDF(tc.in)
			if !bytes.HasPrefix(pdf, []byte("%PDF-1.4\n")) || !bytes.HasSuffix(pdf, []byte("%%EOF\n")) {
				t.Fatalf("not a PDF: %q", pdf[:min(len(pdf), 20)])
			}
			f := filepath.Join(dir, name+".pdf")
			if err := os.WriteFile(f, pdf, 0o600); err != nil {
				t.Fatal(err)
			}
			// qpdf exits 0 only when there are neither errors nor warnings (3 = warnings).
			if out, err := exec.Command(qpdf, "--check", f).CombinedOutput(); err != nil {
				t.Fatalf("qpdf --check: %v\n%s", err, out)
			}
			out, err := exec.Command(pdftotext, "-layout", f, "-").Output()
			if err != nil {
				t.Fatalf("pdftotext: %v", err)
			}
			got := strings.TrimRight(string(out), "\n\f ")
			var lines []string
			for _, l := range strings.Split(got, "\n") {
				lines = append(lines, strings.TrimSpace(l))
			}
			if strings.Join(lines, "\n") != tc.want {
				t.Errorf("pdftotext = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestExamplePDFSizeAndWrap(t *testing.T) {
	if n := len(ExamplePDF("Mängelanzeige")); n > 800 {
		t.Errorf("a one-line PDF has %d bytes, want a few hundred", n)
	}
	lines := wrapLines(strings.Repeat("wort ", 100)+"\n"+strings.Repeat("x", 200), 90, 52)
	for _, l := range lines {
		if len([]rune(l)) > 90 {
			t.Errorf("line longer than 90: %q", l)
		}
	}
	if len(wrapLines(strings.Repeat("a\n", 100), 90, 52)) != 52 {
		t.Error("more lines than fit on a page")
	}
}

func TestXSDValidatesBuilderOutput(t *testing.T) {
	for name, p := range samplePakete() {
		t.Run(name, func(t *testing.T) {
			if ok, out := xmllint(t, p.Marshal()); !ok {
				t.Fatalf("xmllint --schema refuses the builder's output:\n%s", out)
			}
		})
	}
	t.Run("signed shape", func(t *testing.T) {
		root := full().Element()
		root.AddChild(dsSignature())
		if ok, out := xmllint(t, marshalRoot(t, root)); !ok {
			t.Fatalf("xmllint refuses a package with a trailing ds:Signature:\n%s", out)
		}
	})
}
