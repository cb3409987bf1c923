// Package gen rebuilds routing/data/places.tsv.gz, the compact place table embedded in
// the binary, from the public sources in ../shared/data: the Destatis code lists of
// 2026 (ARS, AGS, Kreise, Länder), the Gemeindeverzeichnis extract (Regierungsbezirke,
// Gemeindeverbände, population) and the OpenStreetMap postcode table.
//
// Where the sources disagree the 2026 code lists win: a municipality that no longer
// exists (e.g. Ostrau, merged into Jahnatal) is dropped, and postcodes that point at it
// are moved to its successor. Every municipality gets its population (which ranks
// same-named places) and every area its type in words ("Landkreis", "kreisfreie
// Stadt", "gemeindefreies Gebiet"; the resolver needs it to tell "Landkreis Bautzen"
// from the town and unpopulated areas from towns): from the Gemeindeverzeichnis by
// ARS, else by AGS or by name within the state where the key changed since, a merger
// as the sum of its predecessors. Run it with `go generate ./routing/...` or
// `amtsbote directory build`; Load gives the table to other generators
// (routing/internal/placequeries).
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
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
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

// Area is one row of the place table.
type Area struct {
	Key        string // ARS prefix of the area's level (2, 3, 5, 9 or 12 digits)
	AGS        string // municipalities only
	Name       string // official name as in the 2026 code lists
	Population int    // municipalities only; 0 when no source knows it
	Type       string // e.g. "Landkreis", "Kreis", "kreisfreie Stadt", "Stadt", "Gemeinde", "gemeindefreies Gebiet"
	// OtherNames are names people use for the municipality that are not its own:
	// the Bezirke and Ortsteile of the city states (the code lists' "Stadt-/Ortsteil"
	// rows, which are no municipalities) and the municipalities merged into it.
	OtherNames []string
	// OtherKeys are the 12-digit keys of those district rows: official keys of
	// the code list that name a part of the municipality, not a municipality.
	OtherKeys []string
}

// Table is the place table in memory: what Run writes and what other generators
// (routing/internal/placequeries) read instead of parsing the sources again.
type Table struct {
	Areas          []Area              // sorted by key
	Postcodes      map[string][]string // postcode -> sorted municipality keys
	Municipalities int
}

// successors maps the AGS of municipalities merged away since the OSM postcode table
// was made to the municipality that took them over (per the 2026 code list).
var successors = map[string]string{
	"14522450": "14522275", // Ostrau -> Jahnatal (2024)
	"14522620": "14522275", // Zschaitz-Ottewig -> Jahnatal (2024)
	"16076004": "16076094", // Berga/Elster -> Berga-Wünschendorf (2024)
	"16076084": "16076094", // Wünschendorf/Elster -> Berga-Wünschendorf (2024)
}

// formerNames are the names of the municipalities in successors, by the AGS of
// the municipality that took them over: a citizen still writes "Ostrau".
var formerNames = map[string][]string{
	"14522275": {"Ostrau", "Zschaitz-Ottewig"},
	"16076094": {"Berga/Elster", "Wünschendorf/Elster"},
}

// Run reads the sources and writes places.tsv.gz.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t, err := Load(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return write(cfg, t)
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.SharedData == "" || cfg.OutDir == "" {
		root, err := repoRoot()
		if err != nil {
			return cfg, err
		}
		if cfg.SharedData == "" {
			cfg.SharedData = filepath.Join(root, "..", "shared", "data")
		}
		if cfg.OutDir == "" {
			cfg.OutDir = filepath.Join(root, "routing", "data")
		}
	}
	return cfg, nil
}

// Load reads the sources into a Table without writing anything.
func Load(ctx context.Context, cfg Config) (*Table, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
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

	areas := map[string]*Area{}
	agsToKey := map[string]string{}
	for _, r := range ars {
		if r.hint != "" || len(r.code) != 12 {
			continue // Ortsteile of the city states are not municipalities
		}
		a := &Area{Key: r.code, AGS: r.code[:5] + r.code[9:], Name: r.name}
		areas[a.Key] = a
		agsToKey[a.AGS] = a.Key
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
			areas[r.code] = &Area{Key: r.code, Name: r.name, Type: "Land"}
		}
	}
	for _, r := range kreise {
		if r.hint == "" && len(r.code) == 5 && prefixes[r.code] {
			areas[r.code] = &Area{Key: r.code, Name: r.name, Type: kreisType(r.code, r.name, gv, areas)}
		}
	}
	for k, name := range gv.rb {
		if prefixes[k] {
			areas[k] = &Area{Key: k, Name: name, Type: "Regierungsbezirk"}
		}
	}
	// Gemeindeverbände: from the Gemeindeverzeichnis where it knows them; a newer
	// Einheitsgemeinde (Jahnatal) is its own Gemeindeverband and takes its name.
	for k := range prefixes {
		if len(k) != 9 {
			continue
		}
		if name, ok := gv.vb[k]; ok {
			areas[k] = &Area{Key: k, Name: name, Type: gvVerbandTypes[gv.vbType[k]]}
			continue
		}
		if g, ok := areas[k+k[6:]]; ok {
			areas[k] = &Area{Key: k, Name: g.Name, Type: gvVerbandTypes["50"]}
		}
	}
	fillMunicipalities(areas, gv, cfg.Log)
	addOtherNames(areas, ars, agsToKey)

	// A municipality that changed its key (Hanau left its Kreis in 2026) is found again
	// by its name within the same state.
	byName := map[string][]string{}
	for k, a := range areas {
		if len(k) == 12 {
			n := k[:2] + "|" + strings.ToLower(shortName(a.Name))
			byName[n] = append(byName[n], k)
		}
	}
	plz, err := readPLZ(filepath.Join(cfg.SharedData, "plz", "zuordnung_plz_ort_landkreis.csv"), agsToKey, byName, cfg.Log)
	if err != nil {
		return nil, err
	}
	t := &Table{Postcodes: plz, Municipalities: municipalities}
	keys := make([]string, 0, len(areas))
	for k := range areas {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Areas = append(t.Areas, *areas[k])
	}
	for _, ks := range plz {
		sort.Strings(ks)
	}
	return t, nil
}

// addOtherNames gives the city states their districts' names ("Spandau",
// "Berlin-Spandau", "Harburg", "Hamburg-Harburg") and the successors of merged
// municipalities the names of their predecessors. A district row's municipality is
// the one of its Kreis (Bremen, Bremerhaven) or, where the row's Kreis part is a
// Bezirk and no Kreis (Hamburg, Berlin), the one of its Land.
//
// A district's bare name that is a Kreis's and no municipality's ("Osterholz") is
// left out: the bare name means that Kreis, as it did; "Bremen-Osterholz" is kept.
// One that is also a municipality's ("Harburg", "Schönebeck") is kept, so the name
// is ambiguous and the citizen is asked.
func addOtherNames(areas map[string]*Area, ars []codeRow, agsToKey map[string]string) {
	munis, kreise := map[string]bool{}, map[string]bool{}
	for k, a := range areas {
		switch len(k) {
		case 12:
			// The name without its qualifier: "Harburg (Schwaben)" is a Harburg.
			n := shortName(a.Name)
			if i := strings.IndexAny(n, "(/"); i > 0 {
				n = strings.TrimSpace(n[:i])
			}
			munis[saintAsSt(strings.ToLower(n))] = true
			// And without its connected qualifier: "Ludwigshafen am Rhein" is a
			// Ludwigshafen, so Bodman-Ludwigshafen's part does not take the name.
			if m := qualifiedRE.FindStringSubmatch(n); m != nil {
				munis[saintAsSt(strings.ToLower(m[1]))] = true
			}
		case 5:
			n := shortName(a.Name)
			for _, p := range []string{"Landkreis ", "Kreis ", "Stadtkreis ", "Regionalverband "} {
				n = strings.TrimPrefix(n, p)
			}
			kreise[strings.ToLower(n)] = true
		}
	}
	seen := map[string]bool{}
	add := func(a *Area, name string) {
		name = strings.TrimSpace(name)
		if name == "" || seen[a.Key+"|"+name] || strings.EqualFold(name, shortName(a.Name)) {
			return
		}
		seen[a.Key+"|"+name] = true
		a.OtherNames = append(a.OtherNames, name)
	}
	for _, r := range ars {
		if r.hint == "" || len(r.code) != 12 {
			continue
		}
		a := areas[r.code[:5]+"0000000"]
		if a == nil {
			a = areas[r.code[:2]+"0000000000"]
		}
		if a == nil {
			continue
		}
		a.OtherKeys = append(a.OtherKeys, r.code)
		name := r.name
		if i := strings.LastIndex(name, ", OT "); i > 0 {
			name = name[:i]
		}
		city := shortName(a.Name)
		if l := strings.ToLower(name); !kreise[l] || munis[l] {
			add(a, name)
		}
		if !strings.HasPrefix(name, city+"-") {
			add(a, city+"-"+name)
		}
	}
	for ags, names := range formerNames {
		if a := areas[agsToKey[ags]]; a != nil {
			for _, n := range names {
				add(a, n)
			}
		}
	}
	for k, a := range areas {
		if len(k) == 12 && a.Population > 0 {
			for _, p := range doubleNameParts(shortName(a.Name)) {
				if l := saintAsSt(strings.ToLower(p)); !munis[l] && !kreise[l] {
					add(a, p)
				}
			}
		}
	}
	for _, a := range areas {
		sort.Strings(a.OtherNames)
		sort.Strings(a.OtherKeys)
		a.OtherKeys = slices.Compact(a.OtherKeys)
	}
}

// doubleNameParts returns the place names inside a double name, which are mostly
// the towns merged into it and still what their people call home: "Aue" and "Bad
// Schlema" of Aue-Bad Schlema, "Partenkirchen" of Garmisch-Partenkirchen. Without
// them "Aue" folds to "Au" and finds three Bavarian and Swabian villages, and "Bad
// Schlema" finds nothing. addOtherNames leaves out a part that is a municipality's
// or a Kreis's own name ("Walldorf" of Mörfelden-Walldorf, "Mölln" of Alt-Mölln):
// that name keeps meaning that place alone.
//
// Not parts: a leading adjective ("Alt-Mölln", "Neu-Anspach", "Groß
// Schacksdorf-Simmersdorf" keeps "Groß Schacksdorf"); and none of a name that ends
// in a landscape word, where German puts the head of a compound: "Selke-Aue" is the
// Aue of the river Selke, not a town called Aue, "Kaiser-Wilhelm-Koog" a polder and
// no towns "Kaiser" and "Wilhelm". A part needs a capital letter and three letters
// ("Bedburg-Hau" has "Hau").
func doubleNameParts(name string) []string {
	if strings.IndexByte(name, '-') < 0 || strings.ContainsAny(name, "(/") {
		return nil
	}
	parts := strings.Split(name, "-")
	if landscapeWords[strings.TrimSpace(parts[len(parts)-1])] {
		return nil // one compound: "Werra-Suhl-Tal", "Kaiser-Wilhelm-Koog"
	}
	var out []string
	for i, p := range parts {
		p = strings.TrimSpace(p)
		first, _ := utf8.DecodeRuneInString(p)
		switch {
		case utf8.RuneCountInString(p) < 3 || !unicode.IsUpper(first):
		case i < len(parts)-1 && nameAdjectives[p]:
		default:
			out = append(out, p)
		}
	}
	if len(out) < 2 {
		return nil // "Neu-Anspach" is not a town "Anspach" and one "Neu"
	}
	return out
}

// saintAsSt writes "sankt " as "st. ": "Sankt Peter" of Sankt Peter-Ording is the
// name of St. Peter (Schwarzwald).
func saintAsSt(l string) string {
	return strings.ReplaceAll(strings.ReplaceAll(" "+l, " sankt ", " st. "), " st ", " st. ")[1:]
}

// qualifiedRE finds the name before a connected qualifier: "Frankfurt am Main",
// "Neuburg a.d.Donau", "Sachsen b.Ansbach", "Auerbach i.d.OPf.".
var qualifiedRE = regexp.MustCompile(`^(.+?)\s+(?:(?:an der|an den|am|an|in der|im|in|auf der|auf den|auf|bei|ob der|ob|unter der|unter den|unter|vor der|vorm|vor)\s|[abiouv]\.\s?d\.|[abiov]\.)`)

// nameAdjectives start a name without being one: "Alt-Mölln" is the old Mölln.
var nameAdjectives = map[string]bool{
	"Alt": true, "Neu": true, "Klein": true, "Groß": true, "Gross": true, "Hohen": true,
	"Nieder": true, "Ober": true, "Unter": true, "Mittel": true, "Deutsch": true,
	"Wendisch": true, "Märkisch": true, "Frei": true, "Ost": true, "West": true,
	"Nord": true, "Süd": true, "Fränkisch": true, "Bayerisch": true, "Gau": true,
}

// landscapeWords end a compound that names a landscape, not a second town.
var landscapeWords = map[string]bool{
	"Aue": true, "Tal": true, "Land": true, "Heide": true, "Grund": true, "Höhe": true,
	"Mark": true, "Bruch": true, "Ried": true, "Urstromtal": true, "Seen": true,
	"Koog": true, "Marsch": true, "Moor": true, "Wald": true,
}

// fillMunicipalities gives every municipality its population and type. The
// Gemeindeverzeichnis extract (about 2021) is older than the 2026 code list, so a
// municipality is looked up by ARS, then by AGS (the Gemeindeverband part of the ARS
// changed, e.g. the Ämter of Schleswig-Holstein), then by name within its state (Hanau
// got a new key), and a merger is the sum of its predecessors (Jahnatal). What is
// still unknown is reported; it is the unpopulated gemeindefreie Gebiete.
func fillMunicipalities(areas map[string]*Area, gv *gvData, log io.Writer) {
	preds := map[string]int{} // successor AGS -> summed population of its predecessors
	for old, succ := range successors {
		if r, ok := gv.byAGS[old]; ok {
			preds[succ] += r.pop
		}
	}
	var missing []string
	for k, a := range areas {
		if len(k) != 12 {
			continue
		}
		r, ok := gv.gem[k]
		if !ok {
			r, ok = gv.byAGS[a.AGS]
		}
		if !ok {
			if rs := gv.byName[k[:2]+"|"+strings.ToLower(shortName(a.Name))]; len(rs) == 1 {
				r, ok = rs[0], true
			}
		}
		switch {
		case ok:
			a.Population, a.Type = r.pop, gvGemeindeTypes[r.kind]
		case preds[a.AGS] > 0:
			a.Population = preds[a.AGS]
		default:
			missing = append(missing, k+" "+a.Name)
		}
		if a.Type == "" {
			a.Type = typeFromName(a.Name, areas[k[:5]+"0000000"] == a)
		}
		// A kreisfreie Stadt of 2026 that the 2021 extract still lists in its old Kreis.
		if areas[k[:5]] != nil && k[5:] == "0000000" && (a.Type == "Stadt" || a.Type == "große Kreisstadt") {
			a.Type = "kreisfreie Stadt"
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		fmt.Fprintf(log, "note: no population for %s\n", m)
	}
}

// The Gemeindeverzeichnis' Textkennzeichen, in words.
var (
	gvKreisTypes    = map[string]string{"41": "kreisfreie Stadt", "42": "Stadtkreis", "43": "Kreis", "44": "Landkreis", "45": "Regionalverband"}
	gvGemeindeTypes = map[string]string{"60": "Markt", "61": "kreisfreie Stadt", "62": "Stadtkreis", "63": "Stadt", "64": "Gemeinde",
		"65": "gemeindefreies Gebiet", "66": "gemeindefreies Gebiet", "67": "große Kreisstadt"}
	gvVerbandTypes = map[string]string{"50": "Einheitsgemeinde", "51": "Amt", "52": "Samtgemeinde", "53": "Verbandsgemeinde",
		"54": "Verwaltungsgemeinschaft", "55": "Kirchspielslandgemeinde", "56": "Verwaltungsverband",
		"57": "Verwaltungsgemeinschaft", "58": "erfüllende Gemeinde"}
)

// kreisType names the kind of a Kreis: from the Gemeindeverzeichnis, or for a Kreis
// it does not know (Hanau, kreisfrei since 2026) from the code list.
func kreisType(key, name string, gv *gvData, areas map[string]*Area) string {
	if t, ok := gvKreisTypes[gv.kreisKind[key]]; ok {
		return t
	}
	if areas[key+"0000000"] != nil {
		return "kreisfreie Stadt"
	}
	return "Landkreis"
}

// typeFromName is the last resort for a municipality the Gemeindeverzeichnis lacks.
func typeFromName(name string, kreisfrei bool) string {
	l := strings.ToLower(name)
	switch {
	case strings.Contains(l, "gemfr.") || strings.Contains(l, "gemeindefrei"):
		return "gemeindefreies Gebiet"
	case kreisfrei:
		return "kreisfreie Stadt"
	case strings.Contains(l, "stadt") || strings.HasSuffix(l, ", st"):
		return "Stadt"
	case strings.HasSuffix(l, ", m"):
		return "Markt"
	}
	return "Gemeinde"
}

func write(cfg Config, t *Table) (*Result, error) {
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
	for _, a := range t.Areas {
		pop := ""
		if a.Population > 0 {
			pop = strconv.Itoa(a.Population)
		}
		fmt.Fprintf(bw, "A\t%s\t%s\t%s\t%s\t%s\n", a.Key, a.AGS, a.Name, pop, a.Type)
	}
	for _, a := range t.Areas {
		for _, n := range a.OtherNames {
			fmt.Fprintf(bw, "N\t%s\t%s\n", a.Key, n)
		}
	}
	for _, a := range t.Areas {
		for _, k := range a.OtherKeys {
			fmt.Fprintf(bw, "K\t%s\t%s\n", a.Key, k)
		}
	}
	codes := make([]string, 0, len(t.Postcodes))
	for p := range t.Postcodes {
		codes = append(codes, p)
	}
	sort.Strings(codes)
	for _, p := range codes {
		fmt.Fprintf(bw, "P\t%s\t%s\n", p, strings.Join(t.Postcodes[p], ","))
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
	return &Result{File: out, Areas: len(t.Areas), Municipalities: t.Municipalities, Postcodes: len(t.Postcodes)}, nil
}

const header = `# amtsbote place table, generated by routing/internal/gen - do not edit.
# Sources (see routing/data/NOTICE.md):
#   Regionalschluessel/AGS 2026-04-30, Kreis 2026-01-31, Bundesland 2010-04-01:
#     (c) Statistisches Bundesamt (Destatis), dl-de/by-2-0, via XRepository
#   Gemeindeverzeichnis extract (Regierungsbezirke, Gemeindeverbaende, population,
#     types): (c) Statistisches Bundesamt (Destatis), dl-de/by-2-0
#   Postcodes: (c) OpenStreetMap contributors, ODbL 1.0, via suche-postleitzahl.org
# A<TAB>ars-key<TAB>ags<TAB>name<TAB>population<TAB>type
# N<TAB>ars-key<TAB>another name of the municipality (a city state's district, a merged municipality)
# K<TAB>ars-key<TAB>another key of the municipality (a city state's district in the Regionalschluessel list)
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
	rb        map[string]string // Regierungsbezirk key (3) -> name
	vb        map[string]string // Gemeindeverband key (9) -> name
	vbType    map[string]string // Gemeindeverband key (9) -> Textkennzeichen
	kreisKind map[string]string // Kreis key (5) -> Textkennzeichen (41..45)
	gem       map[string]gvGemeinde
	byAGS     map[string]gvGemeinde
	byName    map[string][]gvGemeinde // land|lower-case short name
}

type gvGemeinde struct {
	pop  int
	kind string // Textkennzeichen 60..67
}

func readGV(path string) (*gvData, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	r.FieldsPerRecord = -1
	g := &gvData{rb: map[string]string{}, vb: map[string]string{}, vbType: map[string]string{}, kreisKind: map[string]string{},
		gem: map[string]gvGemeinde{}, byAGS: map[string]gvGemeinde{}, byName: map[string][]gvGemeinde{}}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(rec) < 8 {
			continue
		}
		rec = append(rec, make([]string, 10-min(len(rec), 10))...) // a row may end early (no population)
		kind, land, rb, kreis, vb, gem, name := rec[1], rec[2], rec[3], rec[4], rec[5], rec[6], rec[7]
		switch strings.TrimPrefix(rec[0], "\ufeff") {
		case "20":
			g.rb[land+rb] = name
		case "40":
			g.kreisKind[land+rb+kreis] = kind
		case "50":
			g.vb[land+rb+kreis+vb] = name
			g.vbType[land+rb+kreis+vb] = kind
		case "60":
			n, _ := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(rec[9]), " ", ""))
			x := gvGemeinde{pop: n, kind: kind}
			g.gem[land+rb+kreis+vb+gem] = x
			g.byAGS[land+rb+kreis+gem] = x
			nk := land + "|" + strings.ToLower(shortName(name))
			g.byName[nk] = append(g.byName[nk], x)
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
