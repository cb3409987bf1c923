package paket

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/amtsbote/amtsbote/internal/pdffile"
)

// ExamplePDF returns a small, valid one-page PDF 1.4 showing text in Helvetica (a base
// font every viewer has, so nothing is embedded and the file stays a few hundred
// bytes). Lines are split at '\n' and wrapped at 90 characters; what does not fit on
// one A4 page is cut off. Characters outside Windows-1252 print as '?'.
func ExamplePDF(text string) []byte {
	// One page holds 52 lines of 90 characters; cut long input early so wrapping it
	// stays cheap (a cut rune prints as '?').
	if max := 52 * 90 * 4; len(text) > max {
		text = text[:max]
	}
	var content bytes.Buffer
	content.WriteString("BT /F1 11 Tf 14 TL 56 786 Td")
	lines := wrapLines(text, 90, 52)
	for i, l := range lines {
		if i > 0 {
			content.WriteString(" T*")
		}
		content.WriteString(" (")
		content.WriteString(PDFString(l))
		content.WriteString(") Tj")
	}
	content.WriteString(" ET\n")

	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", content.Len(), content.String()),
	}
	return pdffile.Assemble(objs, "")
}

// wrapLines splits at newlines and wraps long lines at word boundaries.
func wrapLines(text string, width, maxLines int) []string {
	var out []string
	for _, para := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			for utf8.RuneCountInString(w) > width { // a word longer than a line
				r := []rune(w)
				if line != "" {
					out = append(out, line)
					line = ""
				}
				out = append(out, string(r[:width]))
				w = string(r[width:])
			}
			switch {
			case line == "":
				line = w
			case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) <= width:
				line += " " + w
			default:
				out = append(out, line)
				line = w
			}
		}
		out = append(out, line)
	}
	if len(out) > maxLines {
		out = out[:maxLines]
	}
	return out
}

// winAnsiHigh maps the Windows-1252 characters of 0x80..0x9F to their codes.
var winAnsiHigh = map[rune]byte{
	'€': 0x80, '‚': 0x82, 'ƒ': 0x83, '„': 0x84, '…': 0x85, '†': 0x86, '‡': 0x87, 'ˆ': 0x88,
	'‰': 0x89, 'Š': 0x8A, '‹': 0x8B, 'Œ': 0x8C, 'Ž': 0x8E, '‘': 0x91, '’': 0x92, '“': 0x93,
	'”': 0x94, '•': 0x95, '–': 0x96, '—': 0x97, '˜': 0x98, '™': 0x99, 'š': 0x9A, '›': 0x9B,
	'œ': 0x9C, 'ž': 0x9E, 'Ÿ': 0x9F,
}

// PDFString encodes s for a literal PDF string in WinAnsiEncoding, escaping the
// delimiters and writing every non-ASCII byte as an octal escape so the content
// stream stays 7-bit.
func PDFString(s string) string {
	var sb strings.Builder
	for _, r := range s {
		var c byte
		switch {
		case r == '(' || r == ')' || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
			continue
		case r >= 0x20 && r < 0x7F:
			sb.WriteRune(r)
			continue
		case r >= 0xA0 && r <= 0xFF:
			c = byte(r)
		case r == '\t':
			sb.WriteByte(' ')
			continue
		default:
			var ok bool
			if c, ok = winAnsiHigh[r]; !ok {
				sb.WriteByte('?')
				continue
			}
		}
		fmt.Fprintf(&sb, "\\%03o", c)
	}
	return sb.String()
}
