package formview

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/amtsbote/amtsbote/internal/pdffile"
	"github.com/amtsbote/amtsbote/internal/pdffont"
)

// PDF renders v as a PDF 1.4 summary on A4 pages: title, service, place, date, message
// id, applicant, form fields and the attachment list. It embeds the subset of DejaVu
// Sans and DejaVu Sans Bold it uses (internal/pdffont), with a ToUnicode map: names
// in Turkish, Polish, Czech, Sorbian, Greek or Cyrillic letters print and extract as
// written (the standard fonts printed what Windows-1252 lacks as '?'). The output is
// bounded (MaxPages); a summary that does not fit ends with a note pointing at the
// signed package.
//
// The summary is for reading only: the signed antrag.xml is what counts.
func PDF(v *View) ([]byte, error) {
	if v == nil {
		return nil, errors.New("formview: nil view")
	}
	reg, err := pdffont.Regular()
	if err != nil {
		return nil, fmt.Errorf("formview: %w", err)
	}
	bold, err := pdffont.Bold()
	if err != nil {
		return nil, fmt.Errorf("formview: %w", err)
	}
	w := &pdfWriter{font: [2]*pdffont.Font{reg, bold}, sub: [2]*pdffont.Subset{reg.NewSubset(), bold.NewSubset()}}
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
	return w.finish(clean(v.ServiceName, 200), clean(v.MessageID, 100))
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
	font      [2]*pdffont.Font   // regular, bold
	sub       [2]*pdffont.Subset // the glyphs this document uses of each
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

func b2i(bold bool) int {
	if bold {
		return 1
	}
	return 0
}

func (w *pdfWriter) text(x, y float64, s string, bold bool, size float64) {
	w.textOn(w.cur(), x, y, s, bold, size)
}

func (w *pdfWriter) textOn(p *bytes.Buffer, x, y float64, s string, bold bool, size float64) {
	if s == "" {
		return
	}
	fmt.Fprintf(p, "BT /F%d %.1f Tf %.2f %.2f Td %s Tj ET\n", 1+b2i(bold), size, x, y, w.sub[b2i(bold)].Encode(s))
}

func (w *pdfWriter) gap(h float64) {
	if w.need(h) {
		w.y -= h
	}
}

func (w *pdfWriter) paragraph(s string, bold bool, size, lh float64) {
	for _, l := range w.wrap(s, pageW-marginL-marginR, bold, size) {
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
	for _, l := range w.wrap(label, pageW-marginR-x, true, bodySize) {
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
	ll := w.wrap(label, lw, true, bodySize)
	vl := w.wrap(value, vw, false, bodySize)
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

func (w *pdfWriter) finish(title, messageID string) ([]byte, error) {
	if w.truncated {
		// The last page gets the note at its foot, above the page number.
		w.text(marginL, marginBottom-14, fmt.Sprintf("Zusammenfassung nach %d Seiten gekürzt – vollständige Angaben in antrag.xml.", MaxPages), true, bodySize)
	}
	n := len(w.pages)
	for i, p := range w.pages {
		foot := fmt.Sprintf("Seite %d von %d", i+1, n)
		if messageID != "" {
			foot = "Nachricht " + messageID + " – " + foot
		}
		w.textOn(p, marginL, 30, foot, false, 8)
	}

	// Objects: 1 catalog, 2 pages, 3 info, 4-8 F1 (regular), 9-13 F2 (bold), then per
	// page: page, content.
	const firstPage = 14
	f1, err := w.sub[0].Objects(4)
	if err != nil {
		return nil, fmt.Errorf("formview: %w", err)
	}
	f2, err := w.sub[1].Objects(9)
	if err != nil {
		return nil, fmt.Errorf("formview: %w", err)
	}
	kids := make([]string, n)
	for i := range n {
		kids[i] = fmt.Sprintf("%d 0 R", firstPage+2*i)
	}
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), n),
		fmt.Sprintf("<< /Title %s /Producer (amtsbote formview) >>", pdfTextString("Antrag: "+title)),
	}
	objs = append(append(objs, f1...), f2...)
	for i, p := range w.pages {
		objs = append(objs,
			fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.0f %.0f] /Resources << /Font << /F1 4 0 R /F2 9 0 R >> >> /Contents %d 0 R >>", pageW, pageH, firstPage+1+2*i),
			pdffile.FlateStream("", p.Bytes()),
		)
	}
	return pdffile.Assemble(objs, "/Info 3 0 R"), nil
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
func (w *pdfWriter) wrap(s string, width float64, bold bool, size float64) []string {
	f := w.font[b2i(bold)]
	if s == "" {
		return nil
	}
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			for f.Width(word, size) > width {
				if line != "" {
					out = append(out, line)
					line = ""
				}
				rs := []rune(word)
				k := 1
				for k < len(rs) && f.Width(string(rs[:k+1]), size) <= width {
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
			case f.Width(line+" "+word, size) <= width:
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
