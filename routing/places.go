package routing

import (
	"slices"
	"sort"
	"strings"
	"sync"
)

// placeClass orders the kinds of area a name may mean. A bare name means the first
// class that has it: a populated municipality before a Kreis ("Bautzen" is the town,
// not Landkreis Bautzen), a Kreis before a Land, an unpopulated gemeindefreies Gebiet
// or a Gemeindeverband only when nothing else has the name ("Harz" is Landkreis Harz,
// not the forest "Harz (Landkreis Goslar)").
type placeClass uint8

const (
	classMunicipality placeClass = iota
	classKreis
	classLand
	classRegierungsbezirk
	classUnpopulated
	classVerband
	classNone // not in the name index: the Kreis of a kreisfreie Stadt is the city itself
)

// classMask selects classes for a lookup restricted by a word like "Landkreis".
type classMask uint8

const (
	anyClass          classMask = 0xff
	municipalityClass           = classMask(1<<classMunicipality | 1<<classUnpopulated)
)

func (m classMask) has(c placeClass) bool { return m&(1<<c) != 0 }

// nameIndex is the one index of place names: exact keys for resolution and word
// prefixes for search, both built from nameForms.
type nameIndex struct {
	byKey  map[string][]*Area // placeKey of every form -> areas, ordered by class, population, key
	strict map[string][]*Area // strictKey of every form -> areas

	// Search covers municipalities and Kreise.
	areas  []*Area
	forms  [][]string // folded forms of each area, official name first
	keys   [][]string // placeKey of each form
	skeys  [][]string // strictKey of each form
	words  []string   // every word of every form of an area, space-separated
	tokens []placeToken
	marks  *sync.Pool
}

type placeToken struct {
	tok  string
	area int32 // index into nameIndex.areas
	pos  int32 // token position in its form: a first word ranks higher
}

// markSet remembers which areas a search has already taken without allocating a map
// per search; a new generation number clears it.
type markSet struct {
	gen  uint32
	seen []uint32
}

func (d *placeSet) classify(a *Area) placeClass {
	switch a.Level {
	case LevelGemeinde:
		f := fold(a.Name)
		if a.Type == "gemeindefreies Gebiet" || strings.Contains(f, "gemfr") || strings.Contains(f, "gemeindefrei") {
			return classUnpopulated
		}
		return classMunicipality
	case LevelKreis:
		if d.cities[a.Key] {
			return classNone
		}
		return classKreis
	case LevelLand:
		return classLand
	case LevelRegierungsbezirk:
		return classRegierungsbezirk
	}
	return classVerband
}

// buildNameIndex indexes the areas (keys: all area keys, sorted).
func (d *placeSet) buildNameIndex(keys []string) {
	ix := &d.names
	ix.byKey = make(map[string][]*Area, len(d.areas)*4)
	ix.strict = make(map[string][]*Area, len(d.areas)*4)
	for _, k := range keys {
		a := d.areas[k]
		a.class = d.classify(a)
		if a.class == classNone {
			continue
		}
		var forms []string
		switch a.Level {
		case LevelGemeinde:
			forms = nameForms(a.Name)
			for _, n := range a.OtherNames {
				forms = append(forms, nameForms(n)...)
			}
		case LevelKreis:
			forms = kreisForms(a)
		default:
			forms = higherForms(a)
		}
		fk := make([]string, len(forms))
		sk := make([]string, len(forms))
		folded := make([]string, len(forms))
		for i, f := range forms {
			folded[i] = fold(f)
			fk[i] = keyOfFolded(folded[i])
			// Two forms of one area can share a key ("Neukirchen b.Sulzbach" and its
			// other name "Neukirchen b. Sulzbach"): the area is one candidate.
			if l := ix.byKey[fk[i]]; len(l) == 0 || l[len(l)-1] != a {
				ix.byKey[fk[i]] = append(l, a)
			}
			sk[i] = strictKey(f)
			if l := ix.strict[sk[i]]; len(l) == 0 || l[len(l)-1] != a {
				ix.strict[sk[i]] = append(l, a)
			}
		}
		if a.class == classMunicipality || a.class == classUnpopulated || a.class == classKreis {
			ix.areas = append(ix.areas, a)
			ix.forms = append(ix.forms, folded)
			ix.keys = append(ix.keys, fk)
			ix.skeys = append(ix.skeys, sk)
		}
	}
	for _, as := range ix.byKey {
		sortCandidates(as)
	}
	// Search tokens: every distinct word of every form.
	ix.words = make([]string, len(ix.areas))
	for i := range ix.areas {
		seen := map[string]bool{}
		var all []string
		for _, f := range ix.forms[i] {
			for p, w := range strings.Fields(f) {
				for _, w := range []string{w, stAlias[w]} {
					if w != "" && !seen[w] {
						seen[w] = true
						all = append(all, w)
						if len(w) > 1 || p == 0 {
							// Letters of abbreviations ("a.d.", "a.M.") are no search entry
							// points; a query word still matches them through words.
							ix.tokens = append(ix.tokens, placeToken{tok: w, area: int32(i), pos: int32(p)})
						}
					}
				}
			}
		}
		ix.words[i] = strings.Join(all, " ")
	}
	sort.Slice(ix.tokens, func(i, j int) bool {
		if ix.tokens[i].tok != ix.tokens[j].tok {
			return ix.tokens[i].tok < ix.tokens[j].tok
		}
		return ix.tokens[i].area < ix.tokens[j].area
	})
	n := len(ix.areas)
	ix.marks = &sync.Pool{New: func() any { return &markSet{seen: make([]uint32, n)} }}

	// Same names across levels, for the notes on routes: the Kreis or Land that also
	// bears a municipality's name.
	for _, a := range ix.areas {
		if a.Level != LevelGemeinde {
			continue
		}
		// Only its own name: a district's name that is a Kreis's (Hamburg's
		// Bezirk Harburg) says nothing about the city.
		for _, f := range nameForms(a.Name) {
			for _, o := range ix.byKey[keyOfFolded(fold(f))] {
				switch {
				case o.class == classKreis && betterKreis(a, o, a.alsoKreis):
					a.alsoKreis = o
				case o.class == classLand && a.alsoLand == nil && o.Key != a.Land():
					a.alsoLand = o // not for Berlin, Hamburg or Bremen in their own Land
				}
			}
		}
		a.note = sameNameNote(a)
	}
}

// stAlias lets search find "St. Ingbert" by "Sankt" and "Sankt Augustin" by "St".
var stAlias = map[string]string{"st": "sankt", "sankt": "st"}

// betterKreis prefers the Kreis around a municipality (Landkreis Bautzen for Bautzen),
// then the larger one.
func betterKreis(a, k, old *Area) bool {
	if old == nil {
		return true
	}
	if in, oldIn := a.Key[:5] == k.Key, a.Key[:5] == old.Key; in != oldIn {
		return in
	}
	return k.Population > old.Population
}

// sortCandidates orders the areas of one name: by class, then the way a person
// expects them listed, larger places first.
func sortCandidates(as []*Area) {
	sort.SliceStable(as, func(i, j int) bool {
		if as[i].class != as[j].class {
			return as[i].class < as[j].class
		}
		if as[i].Population != as[j].Population {
			return as[i].Population > as[j].Population
		}
		return as[i].Key < as[j].Key
	})
}

// sortAreas orders candidates the way a person expects them listed: larger places first.
func sortAreas(as []*Area) {
	sort.Slice(as, func(i, j int) bool {
		if as[i].Population != as[j].Population {
			return as[i].Population > as[j].Population
		}
		return as[i].Key < as[j].Key
	})
}

// lookupName is lookup for a name as typed: of several candidates, those spelt with
// the umlauts as typed win (strictKey).
func (ix *nameIndex) lookupName(name string, allow classMask) (cands, also []*Area) {
	cands, also = ix.lookup(placeKey(name), allow)
	if len(cands) > 1 {
		exact := ix.strict[strictKey(name)]
		var keep []*Area
		for _, a := range cands {
			if slices.Contains(exact, a) {
				keep = append(keep, a)
			}
		}
		if len(keep) > 0 && len(keep) < len(cands) {
			cands = keep
		}
	}
	return cands, also
}

// lookup returns the areas a key names within the allowed classes: all areas of the
// first class that has the key. also lists the Kreise and Länder of the same name when
// municipalities won.
func (ix *nameIndex) lookup(key string, allow classMask) (cands, also []*Area) {
	as := ix.byKey[key]
	i := 0
	for i < len(as) && !allow.has(as[i].class) {
		i++
	}
	if i == len(as) {
		return nil, nil
	}
	j := i
	for j < len(as) && as[j].class == as[i].class {
		j++
	}
	cands = as[i:j:j]
	if as[i].class == classMunicipality || as[i].class == classUnpopulated {
		for _, o := range as {
			if o.class == classKreis || o.class == classLand && o.Key != cands[0].Land() {
				also = append(also, o)
			}
		}
	}
	return cands, also
}

// placeLabel is how a search hit is shown: "Neustadt in Sachsen, Stadt (Sächsische
// Schweiz-Osterzgebirge)" tells same-named municipalities apart; a Kreis is shown
// with its type ("Landkreis Bautzen").
func (d *placeSet) placeLabel(a *Area) string {
	if a.Level == LevelKreis {
		return kreisLabel(a)
	}
	for k := a.Parent; k != nil && a.Level == LevelGemeinde; k = k.Parent {
		if k.Level == LevelKreis {
			if ks := k.ShortName(); ks != a.ShortName() {
				return a.Name + " (" + ks + ")"
			}
			break
		}
	}
	return a.Name
}

// kreisLabel names a Kreis with its type unless the name already says it.
func kreisLabel(k *Area) string {
	f := fold(k.Name)
	if k.Type == "" || strings.Contains(f, "kreis") || strings.HasPrefix(f, "region") || strings.Contains(fold(k.Type), "stadt") {
		return k.Name
	}
	return k.Type + " " + k.Name
}

// sameNameNote is the Route's Note for a municipality that shares its name with a
// Kreis or a Land.
func sameNameNote(a *Area) string {
	switch {
	case a.alsoKreis != nil:
		l := kreisLabel(a.alsoKreis)
		return "Gleichnamiger Kreis: " + l + " (ARS " + a.alsoKreis.ARS + "); für den Kreis „" + l + "“ angeben."
	case a.alsoLand != nil:
		return "Gleichnamiges Land: " + a.alsoLand.Name + " (ARS " + a.alsoLand.ARS + "); für das Land „Land " + a.alsoLand.Name + "“ angeben."
	}
	return ""
}
