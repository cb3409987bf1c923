// Package pdffont gives the PDFs the gateway writes a Unicode font that travels with
// the binary: DejaVu Sans and DejaVu Sans Bold, embedded with go:embed (licence in
// LICENSE), so a server without installed fonts writes the same file as a desktop.
// The PDF standard fonts know only Windows-1252 and printed "Yıldız" as "Y?ld?z".
//
// A Font maps text to glyphs and measures it. A Subset collects the glyphs one
// document uses and writes them as a Type0 font (CIDFontType2, Identity-H encoding)
// whose embedded TrueType program holds only those glyphs (a few kilobytes instead of
// 700), with a ToUnicode CMap so that copying, searching and screen readers get the
// characters back. There is no shaping: scripts that need it (Arabic, Indic) print
// letter by letter; characters DejaVu Sans lacks (CJK) print as an empty box and
// extract as U+FFFD.
package pdffont

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf16"

	"github.com/amtsbote/amtsbote/internal/pdffile"
)

var (
	//go:embed DejaVuSans.ttf
	regularTTF []byte
	//go:embed DejaVuSans-Bold.ttf
	boldTTF []byte
)

var (
	regular = sync.OnceValues(func() (*Font, error) { return Parse("DejaVuSans", regularTTF) })
	bold    = sync.OnceValues(func() (*Font, error) { return Parse("DejaVuSans-Bold", boldTTF) })
)

// Regular returns DejaVu Sans, parsed once.
func Regular() (*Font, error) { return regular() }

// Bold returns DejaVu Sans Bold, parsed once.
func Bold() (*Font, error) { return bold() }

// Font is a parsed TrueType font. It is read-only and safe for concurrent use.
type Font struct {
	name       string // PostScript name
	tables     map[string][]byte
	unitsPerEm float64
	numGlyphs  int
	advance    []uint16 // per glyph, font units
	lsb        []int16
	loca       []uint32 // numGlyphs+1 offsets into glyf
	cmap       map[rune]uint16
	bmp        []uint16 // cmap for the Basic Multilingual Plane, by rune: the look-up of every width
	bbox       [4]int16
	ascent     int16
	descent    int16
	capHeight  int16
}

var errShort = errors.New("table too short")

// Parse reads the tables of a TrueType font (glyf outlines) that a subset needs.
func Parse(name string, b []byte) (*Font, error) {
	f, err := parse(name, b)
	if err != nil {
		return nil, fmt.Errorf("pdffont: %s: %w", name, err)
	}
	return f, nil
}

func parse(name string, b []byte) (*Font, error) {
	if len(b) < 12 {
		return nil, errShort
	}
	if v := binary.BigEndian.Uint32(b); v != 0x00010000 && v != 0x74727565 { // 1.0, "true"
		return nil, fmt.Errorf("not a TrueType font (version %#x)", v)
	}
	f := &Font{name: name, tables: map[string][]byte{}}
	n := int(binary.BigEndian.Uint16(b[4:]))
	if len(b) < 12+16*n {
		return nil, errShort
	}
	for i := range n {
		r := b[12+16*i:]
		off, l := uint64(binary.BigEndian.Uint32(r[8:])), uint64(binary.BigEndian.Uint32(r[12:]))
		if off+l > uint64(len(b)) {
			return nil, fmt.Errorf("table %q beyond the end of the file", r[:4])
		}
		f.tables[string(r[:4])] = b[off : off+l]
	}
	for _, t := range []string{"head", "hhea", "maxp", "hmtx", "loca", "glyf"} {
		if f.tables[t] == nil {
			return nil, fmt.Errorf("no %q table", t)
		}
	}
	head, hhea, maxp := f.tables["head"], f.tables["hhea"], f.tables["maxp"]
	if len(head) < 54 || len(hhea) < 36 || len(maxp) < 6 {
		return nil, errShort
	}
	f.unitsPerEm = float64(binary.BigEndian.Uint16(head[18:]))
	if f.unitsPerEm == 0 {
		return nil, errors.New("unitsPerEm is 0")
	}
	for i := range 4 {
		f.bbox[i] = int16(binary.BigEndian.Uint16(head[36+2*i:]))
	}
	longLoca := binary.BigEndian.Uint16(head[50:]) == 1
	f.ascent = int16(binary.BigEndian.Uint16(hhea[4:]))
	f.descent = int16(binary.BigEndian.Uint16(hhea[6:]))
	nh := int(binary.BigEndian.Uint16(hhea[34:]))
	f.numGlyphs = int(binary.BigEndian.Uint16(maxp[4:]))
	if nh == 0 || nh > f.numGlyphs {
		return nil, fmt.Errorf("%d horizontal metrics for %d glyphs", nh, f.numGlyphs)
	}

	hmtx := f.tables["hmtx"]
	if len(hmtx) < 4*nh+2*(f.numGlyphs-nh) {
		return nil, fmt.Errorf("hmtx: %w", errShort)
	}
	f.advance = make([]uint16, f.numGlyphs)
	f.lsb = make([]int16, f.numGlyphs)
	for g := range f.numGlyphs {
		if g < nh {
			f.advance[g] = binary.BigEndian.Uint16(hmtx[4*g:])
			f.lsb[g] = int16(binary.BigEndian.Uint16(hmtx[4*g+2:]))
		} else {
			f.advance[g] = f.advance[nh-1]
			f.lsb[g] = int16(binary.BigEndian.Uint16(hmtx[4*nh+2*(g-nh):]))
		}
	}

	loca, glyf := f.tables["loca"], f.tables["glyf"]
	f.loca = make([]uint32, f.numGlyphs+1)
	for g := range f.numGlyphs + 1 {
		switch {
		case longLoca && len(loca) >= 4*g+4:
			f.loca[g] = binary.BigEndian.Uint32(loca[4*g:])
		case !longLoca && len(loca) >= 2*g+2:
			f.loca[g] = 2 * uint32(binary.BigEndian.Uint16(loca[2*g:]))
		default:
			return nil, fmt.Errorf("loca: %w", errShort)
		}
		if f.loca[g] > uint32(len(glyf)) || (g > 0 && f.loca[g] < f.loca[g-1]) {
			return nil, fmt.Errorf("loca: glyph %d at %d, glyf has %d bytes", g, f.loca[g], len(glyf))
		}
	}

	f.cmap = map[rune]uint16{}
	if t := f.tables["cmap"]; t != nil { // a font made for a PDF (a subset) may lack it
		cm, err := parseCmap(t)
		if err != nil {
			return nil, fmt.Errorf("cmap: %w", err)
		}
		f.cmap = cm
	}
	f.bmp = make([]uint16, 0x10000)
	for r, g := range f.cmap {
		if r >= 0 && r < 0x10000 {
			f.bmp[r] = g
		}
	}

	// Cap height: OS/2 has it from version 2 on; DejaVu's is version 1, so measure H.
	if os2 := f.tables["OS/2"]; len(os2) >= 90 && binary.BigEndian.Uint16(os2) >= 2 {
		f.capHeight = int16(binary.BigEndian.Uint16(os2[88:]))
	} else if g := f.glyph('H'); len(g) >= 10 {
		f.capHeight = int16(binary.BigEndian.Uint16(g[8:]))
	} else {
		f.capHeight = f.ascent
	}
	return f, nil
}

// parseCmap reads the Unicode mapping: a full-repertoire subtable (format 12) if the
// font has one, the BMP one (format 4) otherwise.
func parseCmap(t []byte) (map[rune]uint16, error) {
	if len(t) < 4 {
		return nil, errShort
	}
	n := int(binary.BigEndian.Uint16(t[2:]))
	if len(t) < 4+8*n {
		return nil, errShort
	}
	var f4, f12 []byte
	for i := range n {
		r := t[4+8*i:]
		pid, eid, off := binary.BigEndian.Uint16(r), binary.BigEndian.Uint16(r[2:]), binary.BigEndian.Uint32(r[4:])
		if uint64(off)+4 > uint64(len(t)) || !(pid == 0 || (pid == 3 && (eid == 1 || eid == 10))) {
			continue
		}
		sub := t[off:]
		switch binary.BigEndian.Uint16(sub) {
		case 4:
			f4 = sub
		case 12:
			f12 = sub
		}
	}
	m := map[rune]uint16{}
	switch {
	case f12 != nil:
		if len(f12) < 16 {
			return nil, errShort
		}
		groups := int(binary.BigEndian.Uint32(f12[12:]))
		if uint64(len(f12)) < 16+12*uint64(groups) {
			return nil, errShort
		}
		for i := range groups {
			g := f12[16+12*i:]
			start, end, gid := binary.BigEndian.Uint32(g), binary.BigEndian.Uint32(g[4:]), binary.BigEndian.Uint32(g[8:])
			if end > 0x10FFFF || start > end {
				continue
			}
			for c := start; c <= end; c++ {
				m[rune(c)] = uint16(gid + c - start)
			}
		}
	case f4 != nil:
		if len(f4) < 14 {
			return nil, errShort
		}
		seg := int(binary.BigEndian.Uint16(f4[6:])) / 2
		if len(f4) < 16+8*seg {
			return nil, errShort
		}
		ends, starts, deltas, ranges := 14, 16+2*seg, 16+4*seg, 16+6*seg
		for i := range seg {
			end := binary.BigEndian.Uint16(f4[ends+2*i:])
			start := binary.BigEndian.Uint16(f4[starts+2*i:])
			delta := binary.BigEndian.Uint16(f4[deltas+2*i:])
			ro := int(binary.BigEndian.Uint16(f4[ranges+2*i:]))
			for c := int(start); c <= int(end) && c != 0xFFFF; c++ {
				var gid uint16
				if ro == 0 {
					gid = uint16(c) + delta
				} else {
					at := ranges + 2*i + ro + 2*(c-int(start))
					if at+2 > len(f4) {
						return nil, errShort
					}
					if gid = binary.BigEndian.Uint16(f4[at:]); gid != 0 {
						gid += delta
					}
				}
				if gid != 0 {
					m[rune(c)] = gid
				}
			}
		}
	default:
		return nil, errors.New("no Unicode subtable of format 4 or 12")
	}
	return m, nil
}

// glyph returns the outline bytes of the glyph for r (nil for none or an empty one).
func (f *Font) glyph(r rune) []byte { return f.glyf(int(f.GlyphID(r))) }

func (f *Font) glyf(g int) []byte {
	if g < 0 || g >= f.numGlyphs {
		return nil
	}
	return f.tables["glyf"][f.loca[g]:f.loca[g+1]]
}

// GlyphID returns the glyph that shows r; 0 (the .notdef box) when the font has none.
func (f *Font) GlyphID(r rune) uint16 {
	var g uint16
	if r >= 0 && r < rune(len(f.bmp)) {
		g = f.bmp[r]
	} else {
		g = f.cmap[r]
	}
	if int(g) >= f.numGlyphs {
		return 0
	}
	return g
}

// Has reports whether the font has a glyph for r.
func (f *Font) Has(r rune) bool { return f.GlyphID(r) != 0 }

// width1000 is the advance of glyph g in thousandths of the font size (PDF's unit).
func (f *Font) width1000(g uint16) int {
	return int(float64(f.advance[g])*1000/f.unitsPerEm + 0.5)
}

// Width returns the advance width of s in points at the given font size.
func (f *Font) Width(s string, size float64) float64 {
	var w int
	for _, r := range s {
		w += f.Units(r)
	}
	return f.Points(w, size)
}

// Units is the advance of r in font units; widths add up (no kerning), so a
// line's width can be kept as a sum while it grows (Points makes it points).
func (f *Font) Units(r rune) int { return int(f.advance[f.GlyphID(r)]) }

// Points is a width in font units as points at the given font size.
func (f *Font) Points(units int, size float64) float64 { return float64(units) * size / f.unitsPerEm }

// Subset collects the glyphs one document shows in one font. It is not safe for
// concurrent use.
type Subset struct {
	f    *Font
	uni  map[uint16]rune // glyph → the character it was used for first
	hexb []byte
}

// NewSubset starts an empty subset of f.
func (f *Font) NewSubset() *Subset { return &Subset{f: f, uni: map[uint16]rune{0: 0xFFFD}} }

// Encode returns s as a PDF hex string of two-byte glyph ids (for Tj under the
// Identity-H encoding) and records its glyphs for the subset.
func (s *Subset) Encode(text string) string {
	const hx = "0123456789ABCDEF"
	b := append(s.hexb[:0], '<')
	for _, r := range text {
		g := s.f.GlyphID(r)
		if _, ok := s.uni[g]; !ok {
			s.uni[g] = r
		}
		b = append(b, hx[g>>12], hx[g>>8&15], hx[g>>4&15], hx[g&15])
	}
	b = append(b, '>')
	s.hexb = b
	return string(b)
}

// Objects returns the PDF objects of the font, to be numbered first, first+1, …,
// first+4; the font resource is object first (a Type0 font).
func (s *Subset) Objects(first int) ([]string, error) {
	f := s.f
	gids := make([]uint16, 0, len(s.uni))
	for g := range s.uni {
		gids = append(gids, g)
	}
	slices.Sort(gids)
	prog, err := f.program(gids)
	if err != nil {
		return nil, fmt.Errorf("pdffont: subset %s: %w", f.name, err)
	}
	// The tag names this subset (PDF 9.6.4): six capitals from a digest of the glyphs.
	h := sha256.New()
	h.Write([]byte(f.name))
	for _, g := range gids {
		h.Write([]byte{byte(g >> 8), byte(g)})
	}
	var tag [6]byte
	for i, c := range h.Sum(nil)[:6] {
		tag[i] = 'A' + c%26
	}
	base := "/" + string(tag[:]) + "+" + f.name

	var wb strings.Builder // runs of consecutive glyphs: g [w1 w2 …]
	for i := 0; i < len(gids); {
		j := i + 1
		for j < len(gids) && gids[j] == gids[j-1]+1 {
			j++
		}
		fmt.Fprintf(&wb, " %d [", gids[i])
		for k := i; k < j; k++ {
			if k > i {
				wb.WriteByte(' ')
			}
			wb.WriteString(fmt.Sprint(f.width1000(gids[k])))
		}
		wb.WriteByte(']')
		i = j
	}
	sc := func(v int16) int { return int(float64(v) * 1000 / f.unitsPerEm) }
	stemV := 80
	if strings.Contains(f.name, "Bold") {
		stemV = 140
	}
	return []string{
		fmt.Sprintf("<< /Type /Font /Subtype /Type0 /BaseFont %s /Encoding /Identity-H /DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>",
			base, first+1, first+4),
		fmt.Sprintf("<< /Type /Font /Subtype /CIDFontType2 /BaseFont %s /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /FontDescriptor %d 0 R /CIDToGIDMap /Identity /DW %d /W [%s ] >>",
			base, first+2, f.width1000(0), wb.String()),
		fmt.Sprintf("<< /Type /FontDescriptor /FontName %s /Flags 32 /FontBBox [%d %d %d %d] /ItalicAngle 0 /Ascent %d /Descent %d /CapHeight %d /StemV %d /FontFile2 %d 0 R >>",
			base, sc(f.bbox[0]), sc(f.bbox[1]), sc(f.bbox[2]), sc(f.bbox[3]), sc(f.ascent), sc(f.descent), sc(f.capHeight), stemV, first+3),
		pdffile.FlateStream(fmt.Sprintf("/Length1 %d", len(prog)), prog),
		pdffile.FlateStream("", s.toUnicode(gids)),
	}, nil
}

// toUnicode writes the CMap from glyph ids back to characters.
func (s *Subset) toUnicode(gids []uint16) []byte {
	var b bytes.Buffer
	b.WriteString("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n" +
		"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n" +
		"/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n" +
		"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n")
	for i := 0; i < len(gids); i += 100 { // at most 100 entries per block
		chunk := gids[i:min(i+100, len(gids))]
		fmt.Fprintf(&b, "%d beginbfchar\n", len(chunk))
		for _, g := range chunk {
			fmt.Fprintf(&b, "<%04X> <", g)
			for _, u := range utf16.Encode([]rune{s.uni[g]}) {
				fmt.Fprintf(&b, "%04X", u)
			}
			b.WriteString(">\n")
		}
		b.WriteString("endbfchar\n")
	}
	b.WriteString("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n")
	return b.Bytes()
}

// program writes a TrueType font that keeps the glyph numbering of f but has outlines
// only for gids and the components of composite glyphs among them (accented
// letters are composites in DejaVu). Glyphs above the highest one used are dropped;
// the others below it are empty. Only the tables a PDF viewer uses for an embedded
// CIDFontType2 font are written (PDF 9.9: glyf, head, hhea, hmtx, loca, maxp), without
// hinting (see unhinted; then cvt, fpgm and prep are not needed).
func (f *Font) program(gids []uint16) ([]byte, error) {
	keep := map[int]bool{0: true}
	var walk func(g int) error // the visited set also ends a cycle of components
	walk = func(g int) error {
		if keep[g] {
			return nil
		}
		keep[g] = true
		comps, err := components(f.glyf(g))
		if err != nil {
			return fmt.Errorf("glyph %d: %w", g, err)
		}
		for _, c := range comps {
			if c >= f.numGlyphs {
				return fmt.Errorf("glyph %d: component %d out of range", g, c)
			}
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	for _, g := range gids {
		if err := walk(int(g)); err != nil {
			return nil, err
		}
	}
	n := 0
	for g := range keep {
		n = max(n, g+1)
	}

	var glyf, loca, hmtx bytes.Buffer
	for g := range n {
		binary.Write(&loca, binary.BigEndian, uint32(glyf.Len()))
		if keep[g] {
			glyf.Write(unhinted(f.glyf(g)))
			for glyf.Len()%4 != 0 {
				glyf.WriteByte(0)
			}
		}
		binary.Write(&hmtx, binary.BigEndian, f.advance[g])
		binary.Write(&hmtx, binary.BigEndian, f.lsb[g])
	}
	binary.Write(&loca, binary.BigEndian, uint32(glyf.Len()))

	head := bytes.Clone(f.tables["head"])
	binary.BigEndian.PutUint32(head[8:], 0)  // checkSumAdjustment, set below
	binary.BigEndian.PutUint16(head[50:], 1) // long loca offsets
	hhea := bytes.Clone(f.tables["hhea"])
	binary.BigEndian.PutUint16(hhea[34:], uint16(n))
	maxp := bytes.Clone(f.tables["maxp"])
	binary.BigEndian.PutUint16(maxp[4:], uint16(n))

	return assemble(map[string][]byte{"glyf": glyf.Bytes(), "head": head, "hhea": hhea, "hmtx": hmtx.Bytes(), "loca": loca.Bytes(), "maxp": maxp}), nil
}

// unhinted returns glyph g without its TrueType instructions. Hinting fits outlines
// to a screen's pixel grid; PDF viewers scale and anti-alias on their own, and
// DejaVu's instructions are about half of each glyph's bytes.
func unhinted(g []byte) []byte {
	if len(g) < 10 {
		return g
	}
	nc := int(int16(binary.BigEndian.Uint16(g)))
	if nc >= 0 { // simple: endPtsOfContours, instructionLength, instructions, the rest
		at := 10 + 2*nc
		if at+2 > len(g) {
			return g
		}
		il := int(binary.BigEndian.Uint16(g[at:]))
		if at+2+il > len(g) {
			return g
		}
		return slices.Concat(g[:at], []byte{0, 0}, g[at+2+il:])
	}
	// composite: the instructions follow the last component if it says so
	for p := 10; p+4 <= len(g); {
		flags := binary.BigEndian.Uint16(g[p:])
		next := p + 4 + componentArgs(flags)
		if flags&0x0020 != 0 { // MORE_COMPONENTS
			p = next
			continue
		}
		if flags&0x0100 == 0 || next > len(g) { // no WE_HAVE_INSTRUCTIONS
			return g
		}
		out := bytes.Clone(g[:next])
		binary.BigEndian.PutUint16(out[p:], flags&^0x0100)
		return out
	}
	return g
}

// componentArgs is the length of a composite glyph component's arguments and
// transformation after its flags and glyph index.
func componentArgs(flags uint16) int {
	n := 2
	if flags&0x0001 != 0 { // ARG_1_AND_2_ARE_WORDS
		n = 4
	}
	switch {
	case flags&0x0008 != 0: // WE_HAVE_A_SCALE
		n += 2
	case flags&0x0040 != 0: // WE_HAVE_AN_X_AND_Y_SCALE
		n += 4
	case flags&0x0080 != 0: // WE_HAVE_A_TWO_BY_TWO
		n += 8
	}
	return n
}

// components lists the glyphs a composite glyph is made of (none for a simple one).
func components(g []byte) ([]int, error) {
	if len(g) < 10 || int16(binary.BigEndian.Uint16(g)) >= 0 {
		return nil, nil
	}
	var out []int
	for p := 10; ; {
		if p+4 > len(g) {
			return nil, errShort
		}
		flags := binary.BigEndian.Uint16(g[p:])
		out = append(out, int(binary.BigEndian.Uint16(g[p+2:])))
		p += 4 + componentArgs(flags)
		if flags&0x0020 == 0 { // MORE_COMPONENTS
			return out, nil
		}
	}
}

// assemble writes an sfnt file: the table directory (sorted tags, checksums) and the
// tables, each padded to four bytes, with head's checkSumAdjustment set.
func assemble(tables map[string][]byte) []byte {
	tags := make([]string, 0, len(tables))
	for t := range tables {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	n := len(tags)
	es, sr := 0, 1
	for sr*2 <= n {
		sr *= 2
		es++
	}
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, []uint16{1, 0, uint16(n), uint16(sr * 16), uint16(es), uint16(n*16 - sr*16)})
	off := 12 + 16*n
	headAt := 0
	for _, t := range tags {
		d := tables[t]
		if t == "head" {
			headAt = off
		}
		b.WriteString(t)
		binary.Write(&b, binary.BigEndian, []uint32{checksum(d), uint32(off), uint32(len(d))})
		off += (len(d) + 3) &^ 3
	}
	for _, t := range tags {
		b.Write(tables[t])
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	out := b.Bytes()
	binary.BigEndian.PutUint32(out[headAt+8:], 0xB1B0AFBA-checksum(out))
	return out
}

func checksum(d []byte) uint32 {
	var s uint32
	for i := 0; i < len(d); i += 4 {
		var w [4]byte
		copy(w[:], d[i:])
		s += binary.BigEndian.Uint32(w[:])
	}
	return s
}
