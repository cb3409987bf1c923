package routing

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/amtsbote/amtsbote/internal/textfold"
)

// Place names as people type them.
//
// The official names of the code lists are not what citizens write: "Kamenz / Kamjenc,
// Stadt" is "Kamenz" (or "Kamjenc"), "Frankfurt am Main, Stadt" is "Frankfurt",
// "Weißwasser/O.L., Stadt / Běła Woda" is "Weißwasser" or "Weisswasser". nameForms
// derives the everyday forms of an official name once, when a snapshot is built, and
// placeKey reduces a form and a query to the same key. Resolution (exact keys) and
// search (word prefixes) both use these forms, so what search offers is what
// resolution accepts.

// fold is textfold.Fold: lower case, umlauts and their transcriptions alike, ß as
// ss, Latin diacritics dropped, punctuation as single spaces. It lives in a package of
// its own so that the office list's search (broker) folds the way the directory does.
func fold(s string) string { return textfold.Fold(s) }

// placeKey is the exact-match key of a place name: folded, and "Sankt" written "St",
// so "Garmisch-Partenkirchen" and "garmisch partenkirchen" are one key, and so are
// "St. Ingbert" and "Sankt Ingbert". Word boundaries stay: "Burg, Stadt" is not
// "Burgstädt".
func placeKey(s string) string { return keyOfFolded(fold(s)) }

func keyOfFolded(f string) string {
	if !strings.HasPrefix(f, "sankt") && !strings.Contains(f, " sankt") {
		return f
	}
	ws := strings.Fields(f)
	for i, w := range ws {
		if w == "sankt" {
			ws[i] = "st"
		}
	}
	return strings.Join(ws, " ")
}

// strictKey is placeKey keeping the umlauts: "Burgstädt" and "Burgstaedt" are
// "burgstädt", "Bürgstadt" is "bürgstadt". Among the places a name matches
// regardless of umlauts, those spelt as typed come first (see nameIndex.lookup), so
// the citizen of Burgstädt who types "Burgstädt" is not asked whether she means
// Bürgstadt; "Burgstadt" still offers both. The name is NFC first: decomposed, the
// combining mark of "Burgsta\u0308dt" split it into "burgsta dt", which matched no form.
func strictKey(s string) string {
	s = umlautReplacer.Replace(strings.ToLower(norm.NFC.String(s)))
	ws := strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for i, w := range ws {
		if w == "sankt" {
			ws[i] = "st"
		}
	}
	return strings.Join(ws, " ")
}

var umlautReplacer = strings.NewReplacer("ß", "ss", "ae", "ä", "oe", "ö", "ue", "ü")

// qualifierWords are the regions and rivers that follow a municipality's name after a
// slash ("Fürstenwalde/Spree", "Adorf/Vogtl."), as opposed to the Sorbian second name
// of a Brandenburg municipality ("Cottbus/Chóśebuz") or the second village of a double
// name ("Petershagen/Eggersdorf"). Abbreviations (with a dot) are qualifiers too. The
// list is complete for the 2026 code list; a qualifier missing here only adds a
// harmless extra form.
var qualifierWords = map[string]bool{}

func init() {
	for _, w := range []string{
		"Anhalt", "Błota", "Dosse", "Elbe", "Elster", "Fils", "Fläming", "Harz", "Havel",
		"Helme", "Hunsrück", "Kyffhäuser", "Lausitz", "Mark", "Mulde", "Müritz", "Nordbahn",
		"Oder", "Pfalz", "Pleiße", "Rhön", "Ruhr", "Rügen", "Saale", "Saar", "Schwarzwald",
		"Sieg", "Spree", "Spreewald", "Sprjewja", "Stecknitz", "Thüringen", "Werra", "Westerwald",
	} {
		qualifierWords[fold(w)] = true
	}
}

// connectors start the geographic qualifier of a name ("Frankfurt am Main", "Neuburg
// a.d.Donau", "Sachsen b.Ansbach"); the long and the abbreviated spelling of each.
var connectors = []struct{ long, short string }{
	{"an der", "a.d."}, {"an den", "a.d."}, {"am", "a."}, {"an", "a."},
	{"in der", "i.d."}, {"im", "i."}, {"in", "i."},
	{"auf der", "a.d."}, {"auf den", "a.d."}, {"auf", "a."},
	{"bei", "b."}, {"ob der", "o.d."}, {"ob", "o."},
	{"unter der", "u.d."}, {"unter den", "u.d."}, {"unter", "u."},
	{"vor der", "v.d."}, {"vorm", "v."}, {"vor", "v."},
}

// qualifierRE splits "Base connector Rest": a connector word after at least one word,
// followed by the qualifier. Abbreviated connectors may be glued to it ("a.Inn").
var qualifierRE = regexp.MustCompile(`^(.+?)\s+(?:(an der|an den|am|an|in der|im|in|auf der|auf den|auf|bei|ob der|ob|unter der|unter den|unter|vor der|vorm|vor)\s+|([abiouv]\.\s?d\.|[abiov]\.)\s*)(\S.*)$`)

// splitQualifier splits a name into its base and geographic qualifier: "Frankfurt am
// Main" -> ("Frankfurt", "am", "Main"), "Neuburg a. d. Donau" -> ("Neuburg", "a.d.",
// "Donau"), "Halle (Saale)" -> ("Halle", "", "Saale"). ok is false when the name has
// none.
func splitQualifier(n string) (base, conn, rest string, ok bool) {
	if i := strings.IndexByte(n, '('); i > 0 {
		if j := strings.IndexByte(n[i:], ')'); j > 0 {
			base = strings.TrimSpace(n[:i] + " " + n[i+j+1:])
			rest = strings.TrimSpace(n[i+1 : i+j])
			if base != "" && rest != "" {
				return base, "", rest, true
			}
		}
	}
	m := qualifierRE.FindStringSubmatch(n)
	if m == nil || strings.TrimSpace(m[1]) == "" {
		return "", "", "", false
	}
	return strings.TrimSpace(m[1]), m[2] + strings.ReplaceAll(m[3], " ", ""), m[4], true
}

// isDesignation reports whether a part after the first comma of an official name is a
// title ("Stadt", "Hochschulstadt / Wysokošulske město", "M", "gemfr. Gebiet") rather
// than a name; the Sorbian name of Weißwasser is the one name found there ("Stadt /
// Běła Woda").
func isDesignation(p string) bool {
	f := fold(p)
	for _, w := range []string{"stadt", "mesto", "gmejna", "gemeinde", "flecken", "gebiet", "bad", "kurort"} {
		if strings.Contains(f, w) {
			return true
		}
	}
	return len(strings.Fields(f)) > 2 // "Fundort des Neanderthalers", "Stadt der ..."
}

// nameForms returns the forms an official municipality name is known by, the official
// name first:
//
//   - each name of a bilingual name ("Kamenz / Kamjenc, Stadt": "Kamenz", "Kamjenc"),
//     Sorbian after " / " or, in Brandenburg, after "/";
//   - without the designations after the comma (", Stadt", ", Hansestadt",
//     ", Lutherstadt", ", M");
//   - without the geographic qualifier: "(Saale)", "/Vogtl.", "am Main", "a.d.Donau",
//     "b.Ansbach", and with it spelt out or abbreviated ("Frankfurt a. Main",
//     "Frankfurt a.M.", "Neuburg an der Donau", "Frankfurt Main").
//
// Umlauts, ß, case, hyphens and "Sankt"/"St." need no forms: placeKey folds them.
func nameForms(official string) []string {
	forms := []string{official}
	add := func(s string) {
		s = strings.TrimSpace(s)
		if s != "" {
			forms = append(forms, s)
		}
	}
	segs := strings.Split(official, ",")
	for i := 2; i < len(segs); i++ {
		add(strings.Join(segs[:i], ",")) // "Freiberg, Stadt" of "Freiberg, Stadt, Universitätsstadt"
	}
	var names []string
	for i, seg := range segs {
		for j, piece := range splitSpaced(seg) {
			if i == 0 || (j > 0 && !isDesignation(piece)) {
				names = append(names, piece)
			}
		}
	}
	for _, n := range names {
		add(n)
		parts := strings.Split(n, "/")
		base := strings.TrimSpace(parts[0])
		bases := []string{base}
		for _, p := range parts[1:] {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if strings.Contains(p, ".") || qualifierWords[fold(p)] || qualifierWords[fold(stripParens(p))] {
				add(base + " " + p) // "Fürstenwalde Spree"
				continue
			}
			bases = append(bases, p) // a second name: "Chóśebuz", "Eggersdorf"
		}
		for _, b := range bases {
			add(b)
			qualifierForms(b, add)
		}
	}
	return dedupeForms(forms)
}

// qualifierForms adds the base name and the spellings of its qualifier.
func qualifierForms(n string, add func(string)) {
	base, conn, rest, ok := splitQualifier(n)
	if !ok {
		return
	}
	add(base)
	add(base + " " + rest) // "Frankfurt Main", "Halle Saale"
	if conn == "" {
		qualifierForms(base, add) // "Seelbach bei Hamm (Sieg)": then "bei Hamm"
		return
	}
	for _, c := range connectors {
		// A long connector names itself; an abbreviation stands for the first long one
		// it abbreviates ("a.d." = "an der").
		if c.long == conn || c.short == conn {
			add(base + " " + c.long + " " + rest)
			add(base + " " + c.short + " " + rest)
			if !strings.Contains(rest, " ") && !strings.Contains(rest, ".") {
				add(base + " " + c.short + rest[:firstRuneLen(rest)] + ".") // "Frankfurt a.M."
			}
			return
		}
	}
}

// kreisForms are the forms of a Kreis name: the official name, without a leading
// "Landkreis", "Region" and the like and without a parenthesised qualifier ("Nienburg
// (Weser)" -> "Nienburg"), and with its type in front ("Landkreis Bautzen", "Kreis
// Steinfurt"), which is how people name a Kreis that shares its name with its town.
func kreisForms(a *Area) []string {
	forms := []string{a.Name}
	core := a.Name
	for _, p := range []string{"Landkreis ", "Kreis ", "Städteregion ", "Regionalverband ", "Region "} {
		core = strings.TrimPrefix(core, p)
	}
	forms = append(forms, core)
	if i := strings.IndexByte(core, '('); i > 0 {
		forms = append(forms, stripParens(core))
	}
	if (a.Type == "Landkreis" || a.Type == "Kreis") && !strings.Contains(fold(a.Name), "kreis") {
		forms = append(forms, a.Type+" "+core) // "Landkreis Hannover" for the Region Hannover too
		if a.Type != "Kreis" {
			forms = append(forms, "Kreis "+core)
		}
	}
	return dedupeForms(forms)
}

// higherForms are the forms of a Land, Regierungsbezirk or Gemeindeverband: the official
// name, the name before its comma, and without the titles the Gemeindeverzeichnis puts
// in front ("Reg.-Bez. Stuttgart", "früher: Direktionsbezirk Dresden").
func higherForms(a *Area) []string {
	forms := []string{a.Name, shortName(a.Name)}
	core := shortName(a.Name)
	for _, p := range []string{"früher: ", "Reg.-Bez. ", "Direktionsbezirk ", "Statistische Region "} {
		core = strings.TrimPrefix(core, p)
	}
	forms = append(forms, core)
	if a.Level == LevelLand {
		forms = append(forms, "Land "+core)
	}
	return dedupeForms(forms)
}

// splitSpaced splits on " / " (a slash between spaces: the separator of bilingual
// names); "Weißwasser/O.L." and "Boizenburg/ Elbe" stay whole.
func splitSpaced(s string) []string {
	var out []string
	for _, p := range bilingualRE.Split(s, -1) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

var bilingualRE = regexp.MustCompile(`\s+/\s+`)

func stripParens(s string) string {
	for {
		i := strings.IndexByte(s, '(')
		if i < 0 {
			return strings.TrimSpace(s)
		}
		j := strings.IndexByte(s[i:], ')')
		if j < 0 {
			return strings.TrimSpace(s[:i])
		}
		s = strings.TrimSpace(s[:i]) + " " + strings.TrimSpace(s[i+j+1:])
	}
}

func firstRuneLen(s string) int {
	_, n := utf8.DecodeRuneInString(s)
	return n
}

func dedupeForms(forms []string) []string {
	out := forms[:0]
	seen := make(map[string]bool, len(forms))
	for _, f := range forms {
		k := placeKey(f)
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, f)
	}
	return out
}
