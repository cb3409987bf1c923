// Command placequeries writes routing/testdata/placequeries.tsv: place queries as
// citizens type them, each with the answer the resolver must give, generated from the
// official lists (the 2026 Regionalschlüssel, Kreis and Land code lists with the
// Gemeindeverzeichnis population, and the postcode table) as routing/internal/gen reads
// them.
//
// The expected answers come from this program's own reading of the official names,
// written apart from the resolver's (routing/names.go): where the two disagree, the
// test fails and one of them is wrong. The rules it applies are the ones the issue
// states: a municipality answers to each part of a bilingual name and to its name
// without designations (", Stadt") and qualifiers ("(Saale)", "am Main", "/Vogtl."),
// with or without umlauts; a name several populated municipalities bear is ambiguous
// with all of them, largest first; a bare name that is also a Kreis means the
// municipality and notes the Kreis, "Landkreis X" means the Kreis.
//
// Run it with `go generate ./routing/...` (after gendata) or
//
//	go run ./routing/internal/placequeries [-shared ../shared/data] [-out routing/testdata/placequeries.tsv]
//
// The output is sorted and reproducible byte for byte.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/amtsbote/amtsbote/routing/internal/gen"
)

func main() {
	shared := flag.String("shared", "", "folder of the official sources (default ../shared/data beside the repository)")
	out := flag.String("out", "", "output file (default routing/testdata/placequeries.tsv in the repository)")
	flag.Parse()
	if err := run(*shared, *out); err != nil {
		fmt.Fprintln(os.Stderr, "placequeries:", err)
		os.Exit(1)
	}
}

type muni struct {
	ars, ags, name, typ string
	pop                 int
	populated           bool
	names               []string // everyday names as written (German first)
	sorbian             []string // the parts of a bilingual name after the first
	qualified           []string // names with their qualifier: "Frankfurt am Main"
	others              []string // other names: a city state's districts, merged municipalities
	postcodes           []string
}

type kreis struct {
	key, name, typ, core string
	pop                  int
	self                 bool // the Kreis of a kreisfreie Stadt
}

type line struct{ category, query, expect, ars, kreis string }

func run(shared, out string) error {
	t, err := gen.Load(context.Background(), gen.Config{SharedData: shared})
	if err != nil {
		return err
	}
	if out == "" {
		root, err := repoRoot()
		if err != nil {
			return err
		}
		out = filepath.Join(root, "routing", "testdata", "placequeries.tsv")
	}
	var munis []*muni
	byARS := map[string]*muni{}
	kreise := map[string]*kreis{}
	for _, a := range t.Areas {
		switch len(a.Key) {
		case 12:
			m := &muni{ars: a.Key, ags: a.AGS, name: a.Name, typ: a.Type, pop: a.Population,
				populated: a.Type != "gemeindefreies Gebiet" && !strings.Contains(a.Name, "gemfr.")}
			m.names, m.sorbian, m.qualified = everyday(a.Name, a.Key)
			m.others = a.OtherNames
			munis = append(munis, m)
			byARS[a.Key] = m
		case 5:
			kreise[a.Key] = &kreis{key: a.Key, name: a.Name, typ: a.Type, core: kreisCore(a.Name)}
		}
	}
	for plz, keys := range t.Postcodes {
		for _, k := range keys {
			if m := byARS[k]; m != nil {
				m.postcodes = append(m.postcodes, plz)
			}
		}
	}
	for _, m := range munis {
		sort.Strings(m.postcodes)
		if k := kreise[m.ars[:5]]; k != nil {
			k.pop += m.pop
			if m.ars[5:] == "0000000" {
				k.self = true
			}
		}
	}
	// The name index of this program: key -> municipalities, Kreise.
	byName := map[string][]*muni{}
	for _, m := range munis {
		for _, n := range append(append(append(append([]string{m.name}, m.names...), m.sorbian...), m.qualified...), m.others...) {
			k := key(n)
			if !containsMuni(byName[k], m) {
				byName[k] = append(byName[k], m)
			}
		}
	}
	// The same names spelt exactly, umlauts kept: of several municipalities that match
	// regardless of umlauts, those spelt as typed win ("Burgstädt" is not Bürgstadt,
	// "Neunkirchen" is not Neuenkirchen).
	byExact := map[string][]*muni{}
	for _, m := range munis {
		for _, n := range append(append(append(append([]string{m.name}, m.names...), m.sorbian...), m.qualified...), m.others...) {
			k := exactKey(n)
			if !containsMuni(byExact[k], m) {
				byExact[k] = append(byExact[k], m)
			}
		}
	}
	for _, ms := range byName {
		sort.Slice(ms, func(i, j int) bool {
			if ms[i].pop != ms[j].pop {
				return ms[i].pop > ms[j].pop
			}
			return ms[i].ars < ms[j].ars
		})
	}
	kreisByName := map[string][]*kreis{}
	for _, k := range kreise {
		if !k.self {
			kreisByName[key(k.core)] = append(kreisByName[key(k.core)], k)
			if key(k.name) != key(k.core) {
				kreisByName[key(k.name)] = append(kreisByName[key(k.name)], k)
			}
		}
	}
	// noteKreis is the Kreis a municipality shares a name with: the one around it,
	// else the largest.
	noteKreis := func(m *muni) *kreis {
		var best *kreis
		for _, n := range append(append(append([]string{}, m.names...), m.sorbian...), m.qualified...) {
			for _, k := range kreisByName[key(n)] {
				switch {
				case best == nil:
					best = k
				case (k.key == m.ars[:5]) != (best.key == m.ars[:5]):
					if k.key == m.ars[:5] {
						best = k
					}
				case k.pop > best.pop:
					best = k
				}
			}
		}
		return best
	}
	// populatedFirst: the populated municipalities of a name, else the unpopulated
	// ones, spelt as typed where that singles some out.
	named := func(q string) (pop, unpop []*muni) {
		for _, m := range byName[key(q)] {
			if m.populated {
				pop = append(pop, m)
			} else {
				unpop = append(unpop, m)
			}
		}
		exact := func(ms []*muni) []*muni {
			var keep []*muni
			for _, m := range ms {
				if containsMuni(byExact[exactKey(q)], m) {
					keep = append(keep, m)
				}
			}
			if len(keep) > 0 {
				return keep
			}
			return ms
		}
		return exact(pop), exact(unpop)
	}
	// expect answers a name query the way the issue says.
	expect := func(q string) (string, []string, string) {
		pop, unpop := named(q)
		if len(pop) == 0 {
			if ks := kreisByName[key(q)]; len(ks) > 0 {
				sort.Slice(ks, func(i, j int) bool { return ks[i].pop > ks[j].pop })
				ars := make([]string, len(ks))
				for i, k := range ks {
					ars[i] = k.key + "0000000"
				}
				return kind(len(ars)), ars, "-"
			}
			pop = unpop
		}
		if len(pop) == 0 {
			return "unknown", nil, "-"
		}
		ars := make([]string, len(pop))
		for i, m := range pop {
			ars[i] = m.ars
		}
		note := "-"
		if len(pop) == 1 {
			if k := noteKreis(pop[0]); k != nil {
				note = k.key + "0000000"
			}
		}
		return kind(len(ars)), ars, note
	}
	seen := map[string]bool{}
	var lines []line
	add := func(cat, q string) {
		if q = strings.TrimSpace(q); q == "" || seen[q] {
			return
		}
		e, ars, note := expect(q)
		if e == "unknown" {
			fmt.Fprintf(os.Stderr, "placequeries: %q (%s) names nothing by the official lists; left out\n", q, cat)
			return
		}
		seen[q] = true
		lines = append(lines, line{cat, q, e, strings.Join(ars, ","), note})
	}
	addFixed := func(cat, q, e, ars, note string) {
		if !seen[q] {
			seen[q] = true
			lines = append(lines, line{cat, q, e, ars, note})
		}
	}

	// The examples.
	for _, q := range []string{"Bautzen", "Kamenz", "Hoyerswerda", "Weißwasser", "Weisswasser", "Goerlitz", "Halle", "Frankfurt"} {
		add("issue", q)
	}
	if k := kreise["14625"]; k != nil {
		addFixed("issue", "Landkreis Bautzen", "one", k.key+"0000000", "-")
	}
	for _, m := range byName[key("Bischofswerda")] {
		addFixed("issue", "01877 Bischofswerda", "one", m.ars, noteOf(noteKreis(m)))
	}
	sort.Slice(munis, func(i, j int) bool { return munis[i].ars < munis[j].ars })
	// 1. Every bilingual name: each of its names, and the official name.
	for _, m := range munis {
		if len(m.sorbian) == 0 {
			continue
		}
		for _, n := range append(append([]string{}, m.names...), m.sorbian...) {
			add("bilingual", n)
		}
		addFixed("bilingual", m.name, "one", m.ars, noteOf(noteKreis(m)))
	}
	// 2. Every name shared by a municipality and a Kreis: the bare name means the
	// municipality, "Landkreis X" (or "Kreis X") the Kreis.
	var ks []*kreis
	for _, k := range kreise {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].key < ks[j].key })
	for _, k := range ks {
		if k.self || len(byName[key(k.core)]) == 0 {
			continue
		}
		add("kreis", k.core)
		typed := k.name
		if k.typ == "Landkreis" || k.typ == "Kreis" {
			if !strings.Contains(strings.ToLower(k.name), "kreis") {
				typed = k.typ + " " + k.core
			}
		}
		addFixed("kreis", typed, "one", k.key+"0000000", "-")
		if k.typ == "Landkreis" && typed != k.name {
			addFixed("kreis", "LK "+k.core, "one", k.key+"0000000", "-")
		}
	}
	// 3. Every name populated municipalities in different Länder share.
	var sharedNames []string
	for k, ms := range byName {
		lands := map[string]bool{}
		for _, m := range ms {
			if m.populated {
				lands[m.ars[:2]] = true
			}
		}
		if len(lands) >= 2 {
			sharedNames = append(sharedNames, k)
		}
	}
	sort.Strings(sharedNames)
	for _, k := range sharedNames {
		// Query the name as the largest municipality writes it.
		m := byName[k][0]
		for _, n := range append(append([]string{}, m.names...), m.sorbian...) {
			if key(n) == k {
				add("shared", n)
				break
			}
		}
	}
	// 4. Umlaut and ß forms, case and hyphens: every Saxon and Brandenburg
	// municipality and every one of 20,000 people or more.
	for _, m := range munis {
		if !m.populated || !(m.ars[:2] == "14" || m.ars[:2] == "12" || m.pop >= 20000) {
			continue
		}
		for _, n := range m.names[:1] {
			if t := transliterate(n); t != n {
				add("umlaut", t)
				add("umlaut", stripUmlauts(n))
			}
			if strings.Contains(n, "-") {
				add("hyphen", strings.ReplaceAll(n, "-", " "))
			}
			if m.ars[:2] == "14" {
				add("case", strings.ToUpper(n))
				add("case", strings.ToLower(n))
			}
		}
	}
	// 4b. Every other name: a city state's district (alone and after the city's
	// name) and a municipality merged into another, which answers for it, or
	// with the municipalities of that name where they share it.
	for _, m := range munis {
		for _, n := range m.others {
			add("other", n)
		}
	}
	// 5. Postcode and name, as on an envelope: every Saxon municipality with each of
	// its postcodes.
	for _, m := range munis {
		if m.ars[:2] != "14" {
			continue
		}
		for _, plz := range m.postcodes {
			n := m.names[0]
			var in []*muni
			pop, unpop := named(n)
			if len(pop) == 0 {
				pop = unpop
			}
			for _, o := range pop {
				if containsString(o.postcodes, plz) {
					in = append(in, o)
				}
			}
			ars := make([]string, len(in))
			for i, o := range in {
				ars[i] = o.ars
			}
			note := "-"
			if len(in) == 1 {
				note = noteOf(noteKreis(in[0]))
			}
			addFixed("postcode", plz+" "+n, kind(len(in)), strings.Join(ars, ","), note)
		}
	}
	// 6. ARS and AGS in the notations people copy them in: every fifth Saxon
	// municipality and every Saxon Kreis.
	i := 0
	for _, m := range munis {
		if m.ars[:2] != "14" {
			continue
		}
		i++
		if i%5 != 0 {
			continue
		}
		a, g, note := m.ars, m.ags, noteOf(noteKreis(m))
		for _, q := range []string{
			a[:2] + " " + a[2:3] + " " + a[3:5] + " " + a[5:9] + " " + a[9:], // 14 6 25 0020 020
			a[:2] + "-" + a[2:3] + "-" + a[3:5] + "-" + a[5:9] + "-" + a[9:],
			a[:2] + "." + a[2:5] + "." + a[5:9] + "." + a[9:],
			"ARS " + a,
			g[:2] + " " + g[2:3] + " " + g[3:5] + " " + g[5:], // 14 6 25 020
			"AGS " + g,
			g,
		} {
			addFixed("key", q, "one", a, note)
		}
	}
	for _, k := range ks {
		if k.key[:2] == "14" {
			addFixed("key", k.key[:2]+" "+k.key[2:3]+" "+k.key[3:], "one", k.key+"0000000", "-")
		}
	}

	sort.SliceStable(lines, func(i, j int) bool {
		if lines[i].category != lines[j].category {
			return lines[i].category < lines[j].category
		}
		return lines[i].query < lines[j].query
	})
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprint(w, header)
	counts := map[string]int{}
	for _, l := range lines {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", l.category, l.query, l.expect, l.ars, l.kreis)
		counts[l.category]++
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	cats := make([]string, 0, len(counts))
	for c := range counts {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	fmt.Printf("wrote %s: %d queries", out, len(lines))
	for _, c := range cats {
		fmt.Printf(", %s %d", c, counts[c])
	}
	fmt.Println()
	return nil
}

const header = `# Place queries with the answers the resolver must give; generated by
# routing/internal/placequeries from the official lists - do not edit.
# Sources: Destatis code lists 2026 and Gemeindeverzeichnis (dl-de/by-2-0),
# postcodes (c) OpenStreetMap contributors (ODbL 1.0); see routing/data/NOTICE.md.
# category<TAB>query<TAB>expect (one|ambiguous)<TAB>ARS, largest first<TAB>ARS of the Kreis of the same name or -
`

func kind(n int) string {
	if n == 1 {
		return "one"
	}
	return "ambiguous"
}

func noteOf(k *kreis) string {
	if k == nil {
		return "-"
	}
	return k.key + "0000000"
}

// Lower Lusatia, where Brandenburg writes the Sorbian name after a plain "/"
// ("Cottbus/Chóśebuz"); elsewhere "/" starts a region ("Adorf/Vogtl.").
var sorbianKreise = map[string]bool{"12052": true, "12061": true, "12066": true, "12071": true}

// lusatianRegions follow "/" in Lower Lusatia without being a Sorbian name.
var lusatianRegions = map[string]bool{"Spreewald": true, "Spree": true, "Błota": true, "Sprjewja": true}

var (
	spacedSlash = regexp.MustCompile(`\s+/\s+`)
	parens      = regexp.MustCompile(`\s*\([^)]*\)`)
	// A geographic qualifier after the name: "am Main", "an der Weinstraße",
	// "a.d.Donau", "b.Ansbach", "i.d.OPf.", "v. d. Höhe", "ob der Tauber".
	qualifier = regexp.MustCompile(`\s+(am|an|auf|bei|im|in|ob|unter|vor|vorm)\s+\S.*$|\s+(a|b|i|o|v)\.(\s?d\.)?\s?\S.*$`)
)

// everyday reads an official municipality name: the names people use (the German one
// first, without designations and qualifiers) and the further names of a bilingual
// name (Sorbian, Low German).
func everyday(official, ars string) (names, others, qualified []string) {
	head, tail, _ := strings.Cut(official, ",")
	parts := spacedSlash.Split(head, -1)
	// A Sorbian name can follow the designation: "Weißwasser/O.L., Stadt / Běła Woda".
	for _, seg := range strings.Split(tail, ",") {
		for i, p := range spacedSlash.Split(seg, -1) {
			p = strings.TrimSpace(p)
			if i > 0 && !strings.Contains(strings.ToLower(p), "stadt") && !strings.Contains(p, "město") {
				parts = append(parts, p)
			}
		}
	}
	var all []string
	for i, p := range parts {
		p = strings.TrimSpace(p)
		qualified = append(qualified, p)
		if before, after, ok := strings.Cut(p, "/"); ok {
			after = strings.TrimSpace(after)
			if sorbianKreise[ars[:5]] && !lusatianRegions[strings.TrimSpace(parens.ReplaceAllString(after, ""))] {
				all = append(all, core(before), core(after))
				if i == 0 {
					names = append(names, core(before))
				}
				continue
			}
			p = before // a region or a second village: "Adorf/Vogtl.", "Petershagen/Eggersdorf"
			qualified = append(qualified, p)
		}
		all = append(all, core(p))
		if i == 0 {
			names = append(names, core(p))
		}
	}
	for _, n := range all {
		if n != "" && !containsString(names, n) && !containsString(others, n) {
			others = append(others, n)
		}
	}
	return names, others, qualified
}

// core drops a parenthesised or connected qualifier.
func core(n string) string {
	n = parens.ReplaceAllString(strings.TrimSpace(n), "")
	if loc := qualifier.FindStringIndex(n); loc != nil && loc[0] > 0 {
		n = n[:loc[0]]
	}
	return strings.TrimSpace(n)
}

// kreisCore is a Kreis name as a town name: "Nienburg (Weser)" -> "Nienburg",
// "Region Hannover" -> "Hannover".
func kreisCore(name string) string {
	for _, p := range []string{"Landkreis ", "Kreis ", "Region ", "Städteregion ", "Regionalverband "} {
		name = strings.TrimPrefix(name, p)
	}
	return strings.TrimSpace(parens.ReplaceAllString(name, ""))
}

// key is this program's comparison key: lower case, umlauts as their base letter, ß as
// ss, other accents dropped, "Sankt" as "St", words of letters and digits.
func key(s string) string {
	var b strings.Builder
	s = strings.ToLower(s)
	for i, w := range strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if w == "sankt" {
			w = "st"
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		for _, r := range w {
			switch r {
			case 'ß':
				b.WriteString("ss")
				continue
			case 'ł':
				r = 'l'
			}
			if base, ok := accents[r]; ok {
				r = base
			}
			b.WriteRune(r)
		}
	}
	// ASCII transcriptions of umlauts: "ae", "oe", "ue" mean the vowel.
	k := b.String()
	for _, t := range []string{"ae", "oe", "ue"} {
		k = strings.ReplaceAll(k, t, t[:1])
	}
	return k
}

// exactKey compares names with their umlauts: "Burgstaedt" is "burgstädt".
func exactKey(s string) string {
	s = strings.NewReplacer("ß", "ss", "ae", "ä", "oe", "ö", "ue", "ü").Replace(strings.ToLower(s))
	ws := strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for i, w := range ws {
		if w == "sankt" {
			ws[i] = "st"
		}
	}
	return strings.Join(ws, " ")
}

var accents = func() map[rune]rune {
	m := map[rune]rune{}
	for base, s := range map[rune]string{'a': "äáàâå", 'c': "čćç", 'e': "ěéèê", 'n': "ńň", 'o': "öóòôø", 'r': "řŕ", 's': "šś", 'u': "üúùû", 'z': "žźż", 'y': "ý", 'd': "ď", 't': "ť"} {
		for _, r := range s {
			m[r] = base
		}
	}
	return m
}()

func transliterate(s string) string {
	return strings.NewReplacer("ä", "ae", "ö", "oe", "ü", "ue", "Ä", "Ae", "Ö", "Oe", "Ü", "Ue", "ß", "ss").Replace(s)
}

func stripUmlauts(s string) string {
	return strings.NewReplacer("ä", "a", "ö", "o", "ü", "u", "Ä", "A", "Ö", "O", "Ü", "U", "ß", "ss").Replace(s)
}

func containsMuni(ms []*muni, m *muni) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
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
			return "", fmt.Errorf("no go.mod above %s; pass -out", dir)
		}
		dir = parent
	}
}
