package formview

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/amtsbote/amtsbote/internal/german"
	"github.com/amtsbote/amtsbote/internal/pdffile"
	"github.com/amtsbote/amtsbote/internal/pdffont"
)

// PDF renders v as a PDF 1.4 summary on A4 pages: title, service, place, date, message
// id, applicant, form fields and the attachment list. It embeds the subset of DejaVu
// Sans and DejaVu Sans Bold it uses (internal/pdffont), with a ToUnicode map: names
// in Turkish, Polish, Czech, Sorbian, Greek or Cyrillic letters print and extract as
// written (the standard fonts printed what Windows-1252 lacks as '?').
//
// The PDF is tagged for screen readers and reflow (EN 301 549 clause 10, WCAG 1.3.1,
// 2.4.2, 3.1.1): a structure tree Document > H1, P, H2 and, per section, a list L >
// LI > Lbl (the label) and LBody (the value), nested for the form's groups as the
// mailbox page indents them; every text is marked content of one structure element,
// rules and page footers are artifacts. The document language is de-DE and viewers
// are asked to show the title ("Antrag: " and the service), which is in the document
// info and the XMP metadata.
//
// The output is bounded (MaxPages); a summary that does not fit ends with a note
// pointing at the signed package.
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
	w := &pdfWriter{font: [2]*pdffont.Font{reg, bold}, sub: [2]*pdffont.Subset{reg.NewSubset(), bold.NewSubset()},
		root: &node{typ: "Document"}}
	w.newPage()
	title := clean(v.ServiceName, MaxValueRunes)
	if title == "" {
		title = "Antrag"
	}
	w.paragraph("H1", title, true, 15, 19)
	w.paragraph("P", "Zusammenfassung zur Ansicht – maßgeblich ist das signierte Antragspaket (antrag.xml).", false, 8.5, 14)
	w.gap(6)

	// Labels, headings and formats are the mailbox detail page's
	// (mailbox/templates/detail.html, internal/german): a clerk who has both in front
	// of her must not wonder whether "Nachricht-ID" and "Nachrichten-ID" differ.
	w.heading("Eckdaten")
	if c := clean(v.CaseID, MaxLabelRunes); c != "" {
		w.row("Nachreichung zu", "Eingang "+c+"\n("+NachreichungHint+")", 0)
	}
	w.row("Leistung", v.ServiceName, 0)
	w.row("LeiKa-Schlüssel", v.ServiceKey, 0)
	w.row("Ort", v.Place, 0)
	w.row("Erstellt", v.Created, 0)
	w.row("Portal", v.Sender, 0)
	w.row("Nachrichten-ID", v.MessageID, 0)

	w.fields("Antragsteller/in", v.Applicant, "Keine Angaben.")
	w.fields("Formular", v.Form, "Das Formular enthält keine Angaben.")
	if v.FormSchema != "" {
		w.note("Formular-Schema: " + v.FormSchema)
	}
	w.heading("Anlagen")
	if len(v.Attachments) == 0 {
		w.note("Keine Anlagen.")
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
		w.row(name, fmt.Sprintf("%s, %s\nSHA-256 %s", clean(a.MimeType, MaxLabelRunes), german.Size(a.Size), sum), 0)
	}
	return w.finish(clean(v.ServiceName, 200), clean(v.MessageID, 100))
}

// MaxPages bounds the PDF; what does not fit is replaced by a note.
const MaxPages = 200

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

	root  *node     // the Document element
	marks [][]*node // per page, per MCID: the element the marked content belongs to
	lists []*node   // the open lists of the current section, outermost first
	items []*node   // the last item of each open list
}

// node is an element of the structure tree (PDF 14.7). Its kids are elements or
// marked content (mcr) in reading order.
type node struct {
	typ  string
	kids []any
	obj  int // object number, set when written
}

// mcr references marked content: the MCIDth sequence on a page.
type mcr struct{ page, mcid int }

func (n *node) add(typ string) *node {
	k := &node{typ: typ}
	n.kids = append(n.kids, k)
	return k
}

// prune drops the elements without text under n (an empty value, a row cut by the
// page budget) and reports whether n itself is left empty.
func (n *node) prune() bool {
	n.kids = slices.DeleteFunc(n.kids, func(k any) bool {
		c, ok := k.(*node)
		return ok && c.prune()
	})
	return len(n.kids) == 0
}

func (w *pdfWriter) cur() *bytes.Buffer { return w.pages[len(w.pages)-1] }

func (w *pdfWriter) newPage() bool {
	if len(w.pages) >= MaxPages {
		w.truncated = true
		return false
	}
	w.pages = append(w.pages, &bytes.Buffer{})
	w.marks = append(w.marks, nil)
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

// text shows s on the current page as marked content of the structure element n.
func (w *pdfWriter) text(n *node, x, y float64, s string, bold bool, size float64) {
	if s == "" {
		return
	}
	pg := len(w.pages) - 1
	id := len(w.marks[pg])
	w.marks[pg] = append(w.marks[pg], n)
	n.kids = append(n.kids, mcr{pg, id})
	fmt.Fprintf(w.cur(), "/%s <</MCID %d>> BDC ", n.typ, id)
	w.show(w.cur(), x, y, s, bold, size)
	w.cur().WriteString("EMC\n")
}

func (w *pdfWriter) show(p *bytes.Buffer, x, y float64, s string, bold bool, size float64) {
	fmt.Fprintf(p, "BT /F%d %.1f Tf %.2f %.2f Td %s Tj ET\n", 1+b2i(bold), size, x, y, w.sub[b2i(bold)].Encode(s))
}

func (w *pdfWriter) gap(h float64) {
	if w.need(h) {
		w.y -= h
	}
}

// paragraph shows s across the page as a structure element of type typ (H1, P).
func (w *pdfWriter) paragraph(typ, s string, bold bool, size, lh float64) {
	n := w.root.add(typ)
	for _, l := range w.wrap(s, pageW-marginL-marginR, bold, size) {
		if !w.need(lh) {
			return
		}
		w.y -= lh
		w.text(n, marginL, w.y+3, l, bold, size)
	}
}

// note is a paragraph of body text in a section, across the page.
func (w *pdfWriter) note(s string) {
	w.paragraph("P", clean(s, MaxValueRunes), false, bodySize, lineH)
	w.gap(3)
}

// heading starts a section: an H2 over a rule (an artifact: decoration only).
func (w *pdfWriter) heading(s string) {
	w.lists, w.items = nil, nil
	// keep a heading together with at least two lines of what follows
	if !w.need(18 + 2*lineH) {
		return
	}
	w.y -= 10
	w.y -= 14
	w.text(w.root.add("H2"), marginL, w.y+3, s, true, 12)
	fmt.Fprintf(w.cur(), "/Artifact <</Type /Layout>> BDC 0.6 G 0.5 w %.2f %.2f m %.2f %.2f l S 0 G EMC\n", marginL, w.y, pageW-marginR, w.y)
	w.y -= 4
}

// item starts a list item at depth in the section's list. A deeper item opens a list
// in the body of the item before it (a group's members); depth jumps by more than one
// fields writes a section: its heading, the fields (at most MaxFields), or the
// sentence the mailbox page shows when there are none.
func (w *pdfWriter) fields(heading string, fs []Field, none string) {
	w.heading(heading)
	if len(fs) == 0 {
		w.note(none)
	}
	for i, f := range fs {
		if i >= MaxFields {
			break
		}
		w.field(f)
	}
}

// are taken as one, as there is no item to hang the list between on.
func (w *pdfWriter) item(depth int) *node {
	if len(w.lists) == 0 {
		w.lists, w.items = []*node{w.root.add("L")}, []*node{nil}
	}
	for depth > len(w.lists)-1 {
		last := w.items[len(w.items)-1]
		if last == nil {
			break
		}
		var body *node
		if k := last.kids[len(last.kids)-1].(*node); k.typ == "LBody" {
			body = k
		} else {
			body = last.add("LBody")
		}
		w.lists, w.items = append(w.lists, body.add("L")), append(w.items, nil)
	}
	for depth < len(w.lists)-1 {
		w.lists, w.items = w.lists[:len(w.lists)-1], w.items[:len(w.items)-1]
	}
	li := w.lists[len(w.lists)-1].add("LI")
	w.items[len(w.items)-1] = li
	return li
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

// group shows the label of a group of fields: an item whose members follow.
func (w *pdfWriter) group(label string, depth int) {
	lbl := w.item(depth).add("Lbl")
	x := marginL + indent(depth)
	for _, l := range w.wrap(label, pageW-marginR-x, true, bodySize) {
		if !w.need(lineH) {
			return
		}
		w.y -= lineH
		w.text(lbl, x, w.y+3, l, true, bodySize)
	}
}

// row prints label and value side by side, a list item with Lbl and LBody (a value
// without a label is a paragraph); a row taller than the rest of the page continues on
// the next one.
func (w *pdfWriter) row(label, value string, depth int) {
	if w.truncated {
		return // the page budget is spent: nothing more is laid out
	}
	label = clean(label, MaxLabelRunes)
	value = clean(value, MaxValueRunes)
	x := marginL + indent(depth)
	lw := labelCol - indent(depth)
	vx := marginL + labelCol + colGap
	vw := pageW - marginR - vx
	ll := w.wrap(label, lw, true, bodySize)
	vl := w.wrap(value, vw, false, bodySize)
	var lbl, body *node
	if label == "" {
		body = w.root.add("P")
	} else {
		li := w.item(depth)
		lbl, body = li.add("Lbl"), li.add("LBody")
	}
	n := max(len(ll), len(vl))
	for i := range n {
		if !w.need(lineH) {
			return
		}
		w.y -= lineH
		if i < len(ll) {
			w.text(lbl, x, w.y+3, ll[i], true, bodySize)
		}
		if i < len(vl) {
			w.text(body, vx, w.y+3, vl[i], false, bodySize)
		}
	}
	w.y -= 3
}

func (w *pdfWriter) finish(title, messageID string) ([]byte, error) {
	if w.truncated {
		// The last page gets the note at its foot, above the page number.
		w.text(w.root.add("P"), marginL, marginBottom-14, fmt.Sprintf("Zusammenfassung nach %d Seiten gekürzt – vollständige Angaben in antrag.xml.", MaxPages), true, bodySize)
	}
	n := len(w.pages)
	for i, p := range w.pages {
		foot := fmt.Sprintf("Seite %d von %d", i+1, n)
		if messageID != "" {
			foot = "Nachricht " + messageID + " – " + foot
		}
		// The footer repeats what the document says once: an artifact, not read aloud
		// on every page.
		p.WriteString("/Artifact <</Type /Pagination /Subtype /Footer>> BDC ")
		w.show(p, marginL, 30, foot, false, 8)
		p.WriteString("EMC\n")
	}

	// Objects: 1 catalog, 2 pages, 3 info, 4-8 F1 (regular), 9-13 F2 (bold), 14 the
	// structure tree root, 15 its parent tree, 16 the XMP metadata, then per page: page,
	// content; then the structure elements.
	const firstPage = 17
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
	title = "Antrag: " + title
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R /StructTreeRoot 14 0 R /MarkInfo << /Marked true >> /Lang (de-DE) " +
			"/ViewerPreferences << /DisplayDocTitle true >> /Metadata 16 0 R >>",
		fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), n),
		fmt.Sprintf("<< /Title %s /Producer (amtsbote formview) >>", pdfTextString(title)),
	}
	objs = append(append(objs, f1...), f2...)

	// The structure elements, numbered depth-first after the pages.
	next := firstPage + 2*n
	var number func(e *node)
	number = func(e *node) {
		e.obj = next
		next++
		for _, k := range e.kids {
			if c, ok := k.(*node); ok {
				number(c)
			}
		}
	}
	w.root.prune()
	number(w.root)
	var elems []string
	var write func(e *node, parent int)
	write = func(e *node, parent int) {
		var kb strings.Builder
		pg := -1 // the element's /Pg: the page of its first text, given as a bare MCID
		for _, k := range e.kids {
			switch k := k.(type) {
			case mcr:
				if pg < 0 {
					pg = k.page
				}
				if k.page == pg {
					fmt.Fprintf(&kb, " %d", k.mcid)
				} else {
					fmt.Fprintf(&kb, " << /Type /MCR /Pg %d 0 R /MCID %d >>", firstPage+2*k.page, k.mcid)
				}
			case *node:
				fmt.Fprintf(&kb, " %d 0 R", k.obj)
			}
		}
		pgRef := ""
		if pg >= 0 {
			pgRef = fmt.Sprintf(" /Pg %d 0 R", firstPage+2*pg)
		}
		elems = append(elems, fmt.Sprintf("<< /Type /StructElem /S /%s /P %d 0 R%s /K [%s ] >>", e.typ, parent, pgRef, kb.String()))
		for _, k := range e.kids {
			if c, ok := k.(*node); ok {
				write(c, e.obj)
			}
		}
	}
	write(w.root, 14)

	var pt strings.Builder // the parent tree: page i's marked content i -> element
	for i, ms := range w.marks {
		fmt.Fprintf(&pt, " %d [", i)
		for _, e := range ms {
			fmt.Fprintf(&pt, " %d 0 R", e.obj)
		}
		pt.WriteString(" ]")
	}
	objs = append(objs,
		fmt.Sprintf("<< /Type /StructTreeRoot /K %d 0 R /ParentTree 15 0 R /ParentTreeNextKey %d >>", w.root.obj, n),
		fmt.Sprintf("<< /Nums [%s ] >>", pt.String()),
		xmp(title),
	)
	for i, p := range w.pages {
		objs = append(objs,
			fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.0f %.0f] /Resources << /Font << /F1 4 0 R /F2 9 0 R >> >> /Contents %d 0 R /StructParents %d >>", pageW, pageH, firstPage+1+2*i, i),
			pdffile.FlateStream("", p.Bytes()),
		)
	}
	return pdffile.Assemble(append(objs, elems...), "/Info 3 0 R"), nil
}

// xmp is the metadata stream with the title and language (PDF/UA asks for the title
// there); uncompressed, as readers of metadata expect.
func xmp(title string) string {
	var t bytes.Buffer
	_ = xml.EscapeText(&t, []byte(title)) // a bytes.Buffer does not fail
	m := `<?xpacket begin="` + "\uFEFF" + `" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:pdf="http://ns.adobe.com/pdf/1.3/">
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">` + t.String() + `</rdf:li></rdf:Alt></dc:title>
<dc:language><rdf:Bag><rdf:li>de-DE</rdf:li></rdf:Bag></dc:language>
<pdf:Producer>amtsbote formview</pdf:Producer>
</rdf:Description>
</rdf:RDF>
</x:xmpmeta>
<?xpacket end="r"?>`
	return fmt.Sprintf("<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n%s\nendstream", len(m), m)
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
	// Widths are kept as sums of the characters' advances while a line grows:
	// measured anew for every longer prefix, a value of 4,000 characters without
	// a space cost quadratic time, and the largest package's summary took 33 s
	// of CPU on every attempt (a review).
	fits := func(units int) bool { return f.Points(units, size) <= width }
	wordUnits := func(word string) int {
		n := 0
		for _, r := range word {
			n += f.Units(r)
		}
		return n
	}
	space := f.Units(' ')
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line, lineUnits := "", 0
		for _, word := range strings.Fields(para) {
			wu := wordUnits(word)
			if !fits(wu) {
				// Too long for a line of its own: break it into pieces that fit,
				// at least one character each.
				if line != "" {
					out = append(out, line)
					line, lineUnits = "", 0
				}
				rs := []rune(word)
				for len(rs) > 0 {
					k, u := 1, f.Units(rs[0])
					for k < len(rs) && fits(u+f.Units(rs[k])) {
						u += f.Units(rs[k])
						k++
					}
					if k == len(rs) && fits(u) {
						word, wu = string(rs), u // the rest fits: it goes on as a word
						break
					}
					out = append(out, string(rs[:k]))
					rs = rs[k:]
					word, wu = "", 0
				}
			}
			if word == "" {
				continue
			}
			switch {
			case line == "":
				line, lineUnits = word, wu
			case fits(lineUnits + space + wu):
				line += " " + word
				lineUnits += space + wu
			default:
				out = append(out, line)
				line, lineUnits = word, wu
			}
		}
		out = append(out, line)
	}
	return out
}
