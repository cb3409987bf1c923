package formview

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/amtsbote/amtsbote/internal/pdffile"
	"github.com/amtsbote/amtsbote/paket"
)

// PDF renders v as a PDF 1.4 summary on A4 pages: title, service, place, date, message
// id, applicant, form fields and the attachment list. It uses the standard fonts
// Helvetica and Helvetica-Bold with WinAnsiEncoding, which every viewer has (nothing
// is embedded): German umlauts (composed or decomposed), ß, € and typographic quotes
// print correctly; characters outside Windows-1252 print as '?'. The output is bounded (MaxPages);
// a summary that does not fit ends with a note pointing at the signed package.
//
// The summary is for reading only: the signed antrag.xml is what counts.
func PDF(v *View) ([]byte, error) {
	if v == nil {
		return nil, errors.New("formview: nil view")
	}
	w := &pdfWriter{}
	w.newPage()
	title := clean(v.ServiceName, MaxValueRunes)
	if title == "" {
		title = "Antrag"
	}
	w.paragraph(title, true, 15, 19)
	w.paragraph("Zusammenfassung zur Ansicht – maßgeblich ist das signierte Antragspaket (antrag.xml).", false, 8.5, 14)
	w.gap(6)

	w.heading("Eckdaten")
	w.row("Leistung", v.ServiceName, 0)
	w.row("LeiKa-Schlüssel", v.ServiceKey, 0)
	w.row("Ort", v.Place, 0)
	w.row("Erstellt", v.Created, 0)
	w.row("Portal (Absender)", v.Sender, 0)
	w.row("Nachricht-ID", v.MessageID, 0)
	w.row("Formular-Schema", v.FormSchema, 0)

	if len(v.Applicant) > 0 {
		w.heading("Antragsteller")
		for i, f := range v.Applicant {
			if i >= MaxFields {
				break
			}
			w.field(f)
		}
	}
	w.heading("Angaben im Formular")
	if len(v.Form) == 0 {
		w.row("", "(keine Angaben)", 0)
	}
	for i, f := range v.Form {
		if i >= MaxFields {
			break
		}
		w.field(f)
	}
	w.heading("Anlagen")
	if len(v.Attachments) == 0 {
		w.row("", "(keine Anlagen)", 0)
	}
	for i, a := range v.Attachments {
		if i >= MaxFields {
			break
		}
		name := clean(a.FileName, MaxLabelRunes)
		if name == "" {
			name = clean(a.ID, MaxLabelRunes)
		}
		sum := clean(a.SHA256, 64)
		if len(sum) == 64 { // two halves wrap cleanly in the value column
			sum = sum[:32] + " " + sum[32:]
		}
		w.row(name, fmt.Sprintf("%s, %s\nSHA-256 %s", clean(a.MimeType, MaxLabelRunes), sizeText(a.Size), sum), 0)
	}
	return w.finish(clean(v.ServiceName, 200), clean(v.MessageID, 100)), nil
}

// MaxPages bounds the PDF; what does not fit is replaced by a note.
const MaxPages = 200

func sizeText(n int64) string {
	s := strconv.FormatInt(n, 10)
	// German thousands separator.
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[0] != '-' {
			out = append(out, '.')
		}
		out = append(out, s[i])
	}
	return string(out) + " Bytes"
}

const (
	pageW, pageH = 595.0, 842.0
	marginL      = 50.0
	marginR      = 50.0
	marginTop    = 60.0
	marginBottom = 60.0
	bodySize     = 9.5
	lineH        = 12.0
	labelCol     = 175.0 // label column width, indentation included
	colGap       = 10.0
	indentStep   = 10.0
	maxIndent    = 8 // depth beyond this is not indented further
)

type pdfWriter struct {
	pages     []*bytes.Buffer
	y         float64
	truncated bool
}

func (w *pdfWriter) cur() *bytes.Buffer { return w.pages[len(w.pages)-1] }

func (w *pdfWriter) newPage() bool {
	if len(w.pages) >= MaxPages {
		w.truncated = true
		return false
	}
	w.pages = append(w.pages, &bytes.Buffer{})
	w.y = pageH - marginTop
	return true
}

// need makes room for h points, starting a new page if necessary; false when the page
// budget is spent.
func (w *pdfWriter) need(h float64) bool {
	if w.truncated {
		return false
	}
	if w.y-h < marginBottom {
		return w.newPage()
	}
	return true
}

func (w *pdfWriter) text(x, y float64, s string, bold bool, size float64) {
	if s == "" {
		return
	}
	font := "F1"
	if bold {
		font = "F2"
	}
	fmt.Fprintf(w.cur(), "BT /%s %.1f Tf %.2f %.2f Td (%s) Tj ET\n", font, size, x, y, paket.PDFString(s))
}

func (w *pdfWriter) gap(h float64) {
	if w.need(h) {
		w.y -= h
	}
}

func (w *pdfWriter) paragraph(s string, bold bool, size, lh float64) {
	for _, l := range wrap(s, pageW-marginL-marginR, bold, size) {
		if !w.need(lh) {
			return
		}
		w.y -= lh
		w.text(marginL, w.y+3, l, bold, size)
	}
}

func (w *pdfWriter) heading(s string) {
	// keep a heading together with at least two lines of what follows
	if !w.need(18 + 2*lineH) {
		return
	}
	w.y -= 10
	w.y -= 14
	w.text(marginL, w.y+3, s, true, 12)
	fmt.Fprintf(w.cur(), "0.6 G 0.5 w %.2f %.2f m %.2f %.2f l S 0 G\n", marginL, w.y, pageW-marginR, w.y)
	w.y -= 4
}

func (w *pdfWriter) field(f Field) {
	label := clean(f.Label, MaxLabelRunes)
	value := clean(f.Value, MaxValueRunes)
	if value == "" && label != "" {
		w.group(label, f.Depth)
		return
	}
	w.row(label, value, f.Depth)
}

func indent(depth int) float64 {
	if depth < 0 {
		depth = 0
	}
	if depth > maxIndent {
		depth = maxIndent
	}
	return float64(depth) * indentStep
}

func (w *pdfWriter) group(label string, depth int) {
	x := marginL + indent(depth)
	for _, l := range wrap(label, pageW-marginR-x, true, bodySize) {
		if !w.need(lineH) {
			return
		}
		w.y -= lineH
		w.text(x, w.y+3, l, true, bodySize)
	}
}

// row prints label and value side by side; a row taller than the rest of the page
// continues on the next one.
func (w *pdfWriter) row(label, value string, depth int) {
	label = clean(label, MaxLabelRunes)
	value = clean(value, MaxValueRunes)
	x := marginL + indent(depth)
	lw := labelCol - indent(depth)
	vx := marginL + labelCol + colGap
	vw := pageW - marginR - vx
	ll := wrap(label, lw, true, bodySize)
	vl := wrap(value, vw, false, bodySize)
	n := max(len(ll), len(vl))
	for i := range n {
		if !w.need(lineH) {
			return
		}
		w.y -= lineH
		if i < len(ll) {
			w.text(x, w.y+3, ll[i], true, bodySize)
		}
		if i < len(vl) {
			w.text(vx, w.y+3, vl[i], false, bodySize)
		}
	}
	w.y -= 3
}

func (w *pdfWriter) finish(title, messageID string) []byte {
	if w.truncated {
		// The last page gets the note at its foot, above the page number.
		fmt.Fprintf(w.cur(), "BT /F2 %.1f Tf %.2f %.2f Td (%s) Tj ET\n", bodySize, marginL, marginBottom-14,
			paket.PDFString(fmt.Sprintf("Zusammenfassung nach %d Seiten gekürzt – vollständige Angaben in antrag.xml.", MaxPages)))
	}
	n := len(w.pages)
	for i, p := range w.pages {
		foot := fmt.Sprintf("Seite %d von %d", i+1, n)
		if messageID != "" {
			foot = "Nachricht " + messageID + " – " + foot
		}
		fmt.Fprintf(p, "BT /F1 8 Tf %.2f %.2f Td (%s) Tj ET\n", marginL, 30.0, paket.PDFString(foot))
	}

	// Objects: 1 catalog, 2 pages, 3 F1, 4 F2, 5 info, then per page: page, content.
	var objs []string
	kids := make([]string, n)
	for i := range n {
		kids[i] = fmt.Sprintf("%d 0 R", 6+2*i)
	}
	objs = append(objs,
		"<< /Type /Catalog /Pages 2 0 R >>",
		fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), n),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
		fmt.Sprintf("<< /Title %s /Producer (amtsbote formview) >>", pdfTextString("Antrag: "+title)),
	)
	for i, p := range w.pages {
		objs = append(objs,
			fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.0f %.0f] /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents %d 0 R >>", pageW, pageH, 7+2*i),
			fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", p.Len(), p.String()),
		)
	}
	return pdffile.Assemble(objs, "/Info 5 0 R")
}

// pdfTextString encodes s as a UTF-16BE text string (hex) for the document info.
func pdfTextString(s string) string {
	var sb strings.Builder
	sb.WriteString("<FEFF")
	for _, u := range utf16.Encode([]rune(s)) {
		fmt.Fprintf(&sb, "%04X", u)
	}
	sb.WriteString(">")
	return sb.String()
}

// wrap splits s at newlines and wraps each paragraph into lines of at most width
// points; words longer than a line are broken.
func wrap(s string, width float64, bold bool, size float64) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			for textWidth(word, bold, size) > width {
				if line != "" {
					out = append(out, line)
					line = ""
				}
				rs := []rune(word)
				k := 1
				for k < len(rs) && textWidth(string(rs[:k+1]), bold, size) <= width {
					k++
				}
				out = append(out, string(rs[:k]))
				word = string(rs[k:])
			}
			if word == "" {
				continue
			}
			switch {
			case line == "":
				line = word
			case textWidth(line+" "+word, bold, size) <= width:
				line += " " + word
			default:
				out = append(out, line)
				line = word
			}
		}
		out = append(out, line)
	}
	return out
}

// helvetica holds the advance widths (1/1000 em) of Helvetica for ASCII 32..126.
var helvetica = [95]uint16{
	278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // space .. /
	556, 556, 556, 556, 556, 556, 556, 556, 556, 556, // 0-9
	278, 278, 584, 584, 584, 556, 1015, // : ; < = > ? @
	667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, // A-M
	722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, // N-Z
	278, 278, 278, 469, 556, 333, // [ \ ] ^ _ `
	556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, // a-m
	556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, // n-z
	334, 260, 334, 584, // { | } ~
}

// textWidth estimates the width in points. Outside ASCII it uses 600/1000 em (wider
// than any Latin-1 letter of Helvetica but Æ, Œ and a few symbols), bold adds 8 %:
// an estimate on the safe side keeps the columns apart.
func textWidth(s string, bold bool, size float64) float64 {
	var w float64
	for _, r := range s {
		switch {
		case r >= 32 && r <= 126:
			w += float64(helvetica[r-32])
		case r == 'Ä' || r == 'Ö' || r == 'Ü' || r == '€':
			w += 778
		case r == 'Æ' || r == 'Œ' || r == '‰' || r == '—' || r == '…':
			w += 1000
		default:
			w += 600
		}
	}
	if bold {
		w *= 1.08
	}
	return w * size / 1000
}
