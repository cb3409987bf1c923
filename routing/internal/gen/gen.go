// Package gen rebuilds routing/data/places.tsv.gz, the compact place table embedded in
// the binary, from the public sources in ../shared/data: the Destatis code lists of
// 2026 (ARS, AGS, Kreise, Länder), the Gemeindeverzeichnis extract (Regierungsbezirke,
// Gemeindeverbände, population) and the OpenStreetMap postcode table.
//
// Where the sources disagree the 2026 code lists win: a municipality that no longer
// exists (e.g. Ostrau, merged into Jahnatal) is dropped, and postcodes that point at it
// are moved to its successor. Run it with `go generate ./routing/...` or
// `amtsbote directory build`.
package gen

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Config says where to read and write. Empty fields are found from the working
// directory: the folder holding go.mod is the repository, ../shared/data its sources.
type Config struct {
	SharedData string
	OutDir     string
	Log        io.Writer
}

// Result summarises what was written.
type Result struct {
	File           string
	Areas          int
	Municipalities int
	Postcodes      int
}

// successors maps the AGS of municipalities merged away since the OSM postcode table
// was made to the municipality that took them over (per the 2026 code list).
var successors = map[string]string{
	"14522450": "14522275", // Ostrau -> Jahnatal (2024)
	"14522620": "14522275", // Zschaitz-Ottewig -> Jahnatal (2024)
}

// Run reads the sources and writes places.tsv.gz.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.SharedData == "" || cfg.OutDir == "" {
		root, err := repoRoot()
		if err != nil {
			return nil, err
		}
		if cfg.SharedData == "" {
			cfg.SharedData = filepath.Join(root, "..", "shared", "data")
		}
		if cfg.OutDir == "" {
			cfg.OutDir = filepath.Join(root, "routing", "data")
		}
	}
	cl := filepath.Join(cfg.SharedData, "codelists")
	ars, err := readCodeList(filepath.Join(cl, "Regionalschluessel_2026-04-30.xml"))
	if err != nil {
		return nil, err
	}
	ags, err := readCodeList(filepath.Join(cl, "AGS_2026-04-30.xml"))
	if err != nil {
		return nil, err
	}
	kreise, err := readCodeList(filepath.Join(cl, "Kreis_2026-01-31.xml"))
	if err != nil {
		return nil, err
	}
	laender, err := readCodeList(filepath.Join(cl, "Bundesland_2010-04-01.xml"))
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	gv, err := readGV(filepath.Join(cfg.SharedData, "gv", "AuszugGV4QAktuell.csv"))
	if err != nil {
		return nil, err
	}

	type area struct {
		key, ags, name string
		pop            int
	}
	areas := map[string]*area{}
	agsToKey := map[string]string{}
	for _, r := range ars {
		if r.hint != "" || len(r.code) != 12 {
			continue // Ortsteile of the city states are not municipalities
		}
		a := &area{key: r.code, ags: r.code[:5] + r.code[9:], name: r.name, pop: gv.pop[r.code]}
		areas[a.key] = a
		agsToKey[a.ags] = a.key
	}
	for _, r := range ags {
		if r.hint != "" {
			continue
		}
		if _, ok := agsToKey[r.code]; !ok {
			fmt.Fprintf(cfg.Log, "warning: AGS %s (%s) has no ARS entry\n", r.code, r.name)
		}
	}
	municipalities := len(areas)
	prefixes := map[string]bool{}
	for k := range areas {
		prefixes[k[:9]], prefixes[k[:5]], prefixes[k[:3]], prefixes[k[:2]] = true, true, true, true
	}
	for _, r := range laender {
		if len(r.code) == 2 {
			areas[r.code] = &area{key: r.code, name: r.name}
		}
	}
	for _, r := range kreise {
		if r.hint == "" && len(r.code) == 5 && prefixes[r.code] {
			areas[r.code] = &area{key: r.code, name: r.name}
		}
	}
	for k, name := range gv.rb {
		if prefixes[k] {
			areas[k] = &area{key: k, name: name}
		}
	}
	// Gemeindeverbände: from the Gemeindeverzeichnis where it knows them; a newer
	// Einheitsgemeinde (Jahnatal) is its own Gemeindeverband and takes its name.
	for k := range prefixes {
		if len(k) != 9 {
			continue
		}
		if name, ok := gv.vb[k]; ok {
			areas[k] = &area{key: k, name: name}
			continue
		}
		if g, ok := areas[k+k[6:]]; ok {
			areas[k] = &area{key: k, name: g.name}
		}
	}

	// A municipality that changed its key (Hanau left its Kreis in 2026) is found again
	// by its name within the same state.
	byName := map[string][]string{}
	for k, a := range areas {
		if len(k) == 12 {
			n := k[:2] + "|" + strings.ToLower(shortName(a.name))
			byName[n] = append(byName[n], k)
		}
	}
	plz, err := readPLZ(filepath.Join(cfg.SharedData, "plz", "zuordnung_plz_ort_landkreis.csv"), agsToKey, byName, cfg.Log)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, err
	}
	out := filepath.Join(cfg.OutDir, "places.tsv.gz")
	tmp, err := os.CreateTemp(cfg.OutDir, ".places-*.tmp")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_ = tmp.Chmod(0o644)
	zw, _ := gzip.NewWriterLevel(tmp, gzip.BestCompression)
	bw := bufio.NewWriter(zw)
	fmt.Fprint(bw, header)
	keys := make([]string, 0, len(areas))
	for k := range areas {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a := areas[k]
		pop := ""
		if a.pop > 0 {
			pop = strconv.Itoa(a.pop)
		}
		fmt.Fprintf(bw, "A\t%s\t%s\t%s\t%s\n", a.key, a.ags, a.name, pop)
	}
	codes := make([]string, 0, len(plz))
	for p := range plz {
		codes = append(codes, p)
	}
	sort.Strings(codes)
	for _, p := range codes {
		ks := plz[p]
		sort.Strings(ks)
		fmt.Fprintf(bw, "P\t%s\t%s\n", p, strings.Join(ks, ","))
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return nil, err
	}
	return &Result{File: out, Areas: len(areas), Municipalities: municipalities, Postcodes: len(plz)}, nil
}

const header = `# amtsbote place table, generated by routing/internal/gen - do not edit.
# Sources (see routing/data/NOTICE.md):
#   Regionalschluessel/AGS 2026-04-30, Kreis 2026-01-31, Bundesland 2010-04-01:
#     (c) Statistisches Bundesamt (Destatis), dl-de/by-2-0, via XRepository
#   Gemeindeverzeichnis extract (Regierungsbezirke, Gemeindeverbaende, population):
#     (c) Statistisches Bundesamt (Destatis), dl-de/by-2-0
#   Postcodes: (c) OpenStreetMap contributors, ODbL 1.0, via suche-postleitzahl.org
# A<TAB>ars-key<TAB>ags<TAB>name<TAB>population
# P<TAB>postcode<TAB>ars,ars,...
`

type codeRow struct{ code, name, hint string }

// readCodeList reads the rows of a genericode 1.0 code list (columns SCHLUESSEL,
// Bezeichnung, Hinweis; Bundesland uses other column ids, taken by position).
func readCodeList(path string) ([]codeRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	var rows []codeRow
	var cur *codeRow
	var col string
	var idx int
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "Row":
				cur, idx = &codeRow{}, 0
			case "Value":
				col = ""
				for _, a := range t.Attr {
					if a.Name.Local == "ColumnRef" {
						col = a.Value
					}
				}
				idx++
			case "SimpleValue":
				var v string
				if err := dec.DecodeElement(&v, &t); err != nil {
					return nil, fmt.Errorf("%s: %w", path, err)
				}
				if cur == nil {
					continue
				}
				v = strings.TrimSpace(v)
				switch {
				case col == "Hinweis":
					cur.hint = v
				case col == "SCHLUESSEL" || (idx == 1 && cur.code == ""):
					cur.code = v
				case col == "Bezeichnung" || (idx == 2 && cur.name == ""):
					cur.name = v
				}
			}
		case xml.EndElement:
			if t.Name.Local == "Row" && cur != nil {
				rows = append(rows, *cur)
				cur = nil
			}
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	return rows, nil
}

type gvData struct {
	rb  map[string]string // Regierungsbezirk key (3) -> name
	vb  map[string]string // Gemeindeverband key (9) -> name
	pop map[string]int    // municipality ARS -> population
}

func readGV(path string) (*gvData, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	r.FieldsPerRecord = -1
	g := &gvData{rb: map[string]string{}, vb: map[string]string{}, pop: map[string]int{}}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(rec) < 10 {
			continue
		}
		land, rb, kreis, vb, gem, name := rec[2], rec[3], rec[4], rec[5], rec[6], rec[7]
		switch strings.TrimPrefix(rec[0], "\ufeff") {
		case "20":
			g.rb[land+rb] = name
		case "50":
			g.vb[land+rb+kreis+vb] = name
		case "60":
			n, _ := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(rec[9]), " ", ""))
			g.pop[land+rb+kreis+vb+gem] = n
		}
	}
	return g, nil
}

func shortName(n string) string {
	if i := strings.IndexByte(n, ','); i > 0 {
		return strings.TrimSpace(n[:i])
	}
	return n
}

func readPLZ(path string, agsToKey map[string]string, byName map[string][]string, log io.Writer) (map[string][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimPrefix(h, "\ufeff")] = i
	}
	ai, okA := col["ags"]
	pi, okP := col["plz"]
	if !okA || !okP {
		return nil, fmt.Errorf("%s: columns ags and plz required", path)
	}
	out := map[string][]string{}
	seen := map[string]bool{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		a, p := rec[ai], rec[pi]
		if len(p) != 5 {
			continue
		}
		if s, ok := successors[a]; ok {
			a = s
		}
		key, ok := agsToKey[a]
		if oi, has := col["ort"]; !ok && has && len(a) == 8 {
			if ks := byName[a[:2]+"|"+strings.ToLower(rec[oi])]; len(ks) == 1 {
				key, ok = ks[0], true
			}
		}
		if !ok {
			fmt.Fprintf(log, "warning: postcode %s: AGS %s (%s) not in the 2026 list, dropped\n", p, a, strings.Join(rec, ","))
			continue
		}
		if !seen[p+key] {
			seen[p+key] = true
			out[p] = append(out[p], key)
		}
	}
	return out, nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory; pass --shared and --out")
		}
		dir = parent
	}
}
