package routing

import (
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// fold makes text comparable the way people type it: lower case, umlauts and their
// transcriptions alike ("Mängel", "Maengel" and "Mangel" fold to "mangel"), ß as ss,
// accents dropped, punctuation as single spaces. Index and query go through the same
// function, and a prefix of a word folds to a prefix of the folded word, which is what
// search-as-you-type needs.
func fold(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := true // drop leading spaces
	var prev rune
	for _, r := range s {
		r = unicode.ToLower(r)
		switch r {
		case 'ä', 'à', 'á', 'â', 'ã', 'å':
			r = 'a'
		case 'ö', 'ò', 'ó', 'ô', 'õ', 'ø':
			r = 'o'
		case 'ü', 'ù', 'ú', 'û':
			r = 'u'
		case 'é', 'è', 'ê', 'ë':
			r = 'e'
		case 'í', 'ì', 'î', 'ï':
			r = 'i'
		case 'ç', 'č':
			r = 'c'
		case 'ñ', 'ń':
			r = 'n'
		case 'š', 'ś':
			r = 's'
		case 'ž', 'ź', 'ż':
			r = 'z'
		case 'ł':
			r = 'l'
		case 'ř':
			r = 'r'
		case 'ß':
			b.WriteString("ss")
			space, prev = false, 's'
			continue
		}
		if r == 'e' && (prev == 'a' || prev == 'o' || prev == 'u') {
			// "ae", "oe", "ue" are the ASCII spelling of ä, ö, ü: keep only the vowel.
			prev = 0
			continue
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if r < utf8.RuneSelf {
				b.WriteByte(byte(r))
			} else {
				b.WriteRune(r)
			}
			space, prev = false, r
			continue
		}
		if !space {
			b.WriteByte(' ')
			space = true
		}
		prev = 0
	}
	return strings.TrimRight(b.String(), " ")
}

// PlaceHit is one answer of the place search.
type PlaceHit struct {
	Area     *Area
	Postcode string // the postcode that matched, for a postcode query
	Label    string // how to show it: "01067 Dresden, Stadt" or "Neustadt in Sachsen, Stadt (Sächsische Schweiz-Osterzgebirge)"
	Score    int
}

// ServiceHit is one answer of the service search.
type ServiceHit struct {
	Service *Service
	Matched string // the name or synonym that matched
	Exact   bool   // the query is exactly the name or a synonym
	Score   int
}

type placeToken struct {
	tok  string
	area int32 // index into placeIndex.areas
	pos  int32 // token position in the name: the first word ranks higher
}

// markSet remembers which areas a search has already taken without allocating a map
// per search; a new generation number clears it.
type markSet struct {
	gen  uint32
	seen []uint32
}

type placeIndex struct {
	marks  *sync.Pool
	areas  []*Area
	full   []string // folded official name
	short  []string // folded short name
	tokens []placeToken
	kreis  []string // Kreis name shown to tell same-named places apart
}

func buildPlaceIndex(d *Directory) placeIndex {
	var ix placeIndex
	for _, a := range d.areas {
		if a.Level == LevelGemeinde {
			ix.areas = append(ix.areas, a)
		}
	}
	sort.Slice(ix.areas, func(i, j int) bool { return ix.areas[i].Key < ix.areas[j].Key })
	ix.full = make([]string, len(ix.areas))
	ix.short = make([]string, len(ix.areas))
	ix.kreis = make([]string, len(ix.areas))
	for i, a := range ix.areas {
		ix.full[i] = fold(a.Name)
		ix.short[i] = fold(a.ShortName())
		for p, t := range strings.Fields(ix.full[i]) {
			ix.tokens = append(ix.tokens, placeToken{tok: t, area: int32(i), pos: int32(p)})
		}
		if k, ok := d.areas[a.Key[:5]]; ok {
			ix.kreis[i] = k.ShortName()
		}
	}
	sort.Slice(ix.tokens, func(i, j int) bool { return ix.tokens[i].tok < ix.tokens[j].tok })
	n := len(ix.areas)
	ix.marks = &sync.Pool{New: func() any { return &markSet{seen: make([]uint32, n)} }}
	return ix
}

// prefixRange returns the tokens starting with p.
func (ix *placeIndex) prefixRange(p string) []placeToken {
	lo := sort.Search(len(ix.tokens), func(i int) bool { return ix.tokens[i].tok >= p })
	hi := lo
	for hi < len(ix.tokens) && strings.HasPrefix(ix.tokens[hi].tok, p) {
		hi++
	}
	return ix.tokens[lo:hi]
}

// SearchPlaces finds municipalities as a user types: by postcode prefix ("010") or by
// name ("dresden", "neustadt sa"), insensitive to case, umlauts and ß. Results are
// ranked (exact name, name prefix, word prefix; larger places first) and at most
// limit long (limit <= 0 means 10).
func (d *Directory) SearchPlaces(q string, limit int) []PlaceHit {
	q, limit, ok := searchQuery(q, limit)
	if !ok {
		return nil
	}
	if isDigits(q) {
		return d.searchPostcodes(q, limit)
	}
	fq := fold(q)
	words := strings.Fields(fq)
	if len(words) == 0 {
		return nil
	}
	ix := &d.places
	// The longest word narrows the candidates most.
	pivot := 0
	for i, w := range words {
		if len(w) > len(words[pivot]) {
			pivot = i
		}
	}
	type cand struct {
		i     int32
		score int
	}
	rng := ix.prefixRange(words[pivot])
	marks := ix.marks.Get().(*markSet)
	defer ix.marks.Put(marks)
	marks.gen++
	cs := make([]cand, 0, min(len(rng), limit))
	better := func(a, b cand) bool {
		if a.score != b.score {
			return a.score > b.score
		}
		pa, pb := ix.areas[a.i].Population, ix.areas[b.i].Population
		if pa != pb {
			return pa > pb
		}
		return ix.full[a.i] < ix.full[b.i]
	}
	for _, t := range rng {
		if marks.seen[t.area] == marks.gen {
			continue // the area has two words with this prefix
		}
		marks.seen[t.area] = marks.gen
		full, short := ix.full[t.area], ix.short[t.area]
		if !allWordsMatch(words, full) {
			continue
		}
		score := 100
		switch {
		case short == fq || full == fq:
			score = 1000
		case strings.HasPrefix(short, fq) || strings.HasPrefix(full, fq):
			score = 700
		case t.pos == 0:
			score = 400
		}
		c := cand{t.area, score}
		// Keep only the best limit candidates, in order: a short query ("d") has
		// hundreds of matches and sorting them all is most of the cost.
		if len(cs) == limit && !better(c, cs[len(cs)-1]) {
			continue
		}
		pos := len(cs)
		for pos > 0 && better(c, cs[pos-1]) {
			pos--
		}
		if len(cs) < limit {
			cs = append(cs, cand{})
		}
		copy(cs[pos+1:], cs[pos:len(cs)-1])
		cs[pos] = c
	}
	hits := make([]PlaceHit, len(cs))
	for n, c := range cs {
		a := ix.areas[c.i]
		label := a.Name
		if k := ix.kreis[c.i]; k != "" && k != a.ShortName() {
			label += " (" + k + ")"
		}
		hits[n] = PlaceHit{Area: a, Label: label, Score: c.score}
	}
	return hits
}

// allWordsMatch reports whether every query word is a prefix of some word of name.
func allWordsMatch(words []string, name string) bool {
	for _, w := range words {
		if !wordPrefix(name, w) {
			return false
		}
	}
	return true
}

// wordPrefix reports whether w starts a word of name (words are separated by single
// spaces after fold), without building " "+w.
func wordPrefix(name, w string) bool {
	for i := 0; i+len(w) <= len(name); {
		if name[i:i+len(w)] == w {
			return true
		}
		j := strings.IndexByte(name[i:], ' ')
		if j < 0 {
			return false
		}
		i += j + 1
	}
	return false
}

func (d *Directory) searchPostcodes(q string, limit int) []PlaceHit {
	if len(q) > 5 {
		return nil
	}
	lo := sort.SearchStrings(d.plzList, q)
	var hits []PlaceHit
	for i := lo; i < len(d.plzList) && strings.HasPrefix(d.plzList[i], q) && len(hits) < limit; i++ {
		plz := d.plzList[i]
		score := 500
		if plz == q {
			score = 1000
		}
		for _, a := range d.byPLZ[plz] {
			if len(hits) == limit {
				break
			}
			hits = append(hits, PlaceHit{Area: a, Postcode: plz, Label: plz + " " + a.Name, Score: score})
		}
	}
	return hits
}

type serviceTerm struct {
	folded string
	raw    string
	isName bool
}

type serviceIndex struct {
	services []*Service
	terms    [][]serviceTerm
}

func buildServiceIndex(list []*Service) serviceIndex {
	ix := serviceIndex{services: list, terms: make([][]serviceTerm, len(list))}
	for i, s := range list {
		ts := []serviceTerm{{folded: fold(s.Name), raw: s.Name, isName: true}}
		for _, syn := range s.Synonyms {
			ts = append(ts, serviceTerm{folded: fold(syn), raw: syn})
		}
		ix.terms[i] = ts
	}
	return ix
}

// SearchServices finds services by name and synonym as a user types ("Mängel" finds
// "Meldung von Mängeln im Stadt- oder Gemeindegebiet"), or by LeiKa key prefix. Ranked
// (exact term, term prefix, all words, word inside a compound), at most limit long
// (limit <= 0 means 10).
func (d *Directory) SearchServices(q string, limit int) []ServiceHit {
	q, limit, ok := searchQuery(q, limit)
	if !ok {
		return nil
	}
	var hits []ServiceHit
	if isDigits(q) {
		for _, s := range d.svcIdx.services {
			if strings.HasPrefix(s.Key, q) {
				hits = append(hits, ServiceHit{Service: s, Matched: s.Key, Exact: s.Key == q, Score: 900})
			}
		}
	} else {
		fq := fold(q)
		words := strings.Fields(fq)
		if len(words) == 0 {
			return nil
		}
		for i, s := range d.svcIdx.services {
			best := ServiceHit{}
			for _, t := range d.svcIdx.terms[i] {
				score := termScore(fq, words, t.folded)
				if score == 0 {
					continue
				}
				if t.isName {
					score += 10
				}
				if score > best.Score {
					best = ServiceHit{Service: s, Matched: t.raw, Exact: t.folded == fq, Score: score}
				}
			}
			if best.Score > 0 {
				hits = append(hits, best)
			}
		}
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if hits[i].Score != hits[j].Score {
			return hits[i].Score > hits[j].Score
		}
		return hits[i].Service.Name < hits[j].Service.Name
	})
	if len(hits) > limit {
		hits = hits[:limit]
	}
	return hits
}

func termScore(fq string, words []string, term string) int {
	switch {
	case term == fq:
		return 1000
	case strings.HasPrefix(term, fq):
		return 700
	case allWordsMatch(words, term):
		return 500
	}
	// A word inside a compound ("anmeldung" in "gewerbeanmeldung") still counts.
	for _, w := range words {
		if len(w) < 3 || !strings.Contains(term, w) {
			return 0
		}
	}
	return 200
}

// searchQuery normalises what a search box sends: trimmed, at most 200 bytes (longer
// input matches nothing rather than costing time), limit <= 0 meaning 10.
func searchQuery(q string, limit int) (string, int, bool) {
	if limit <= 0 {
		limit = 10
	}
	if len(q) > 200 {
		return "", 0, false
	}
	q = strings.TrimSpace(q)
	return q, limit, q != ""
}
