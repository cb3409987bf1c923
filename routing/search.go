package routing

import (
	"slices"
	"sort"
	"strings"
)

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

// SearchPlaces finds municipalities and Kreise as a user types: by postcode prefix
// ("010") or by name ("dresden", "neustadt sa", "kamj", "landkreis bau"), insensitive to
// case, umlauts, ß and hyphens. It searches the same name forms that resolution
// accepts, so an exact name ranks first exactly when Place would take it. Results are
// ranked (exact name, name prefix, first word, other word; then municipalities before
// Kreise, larger places first) and at most limit long (limit <= 0 means 10).
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
	words = uniqueWords(words)
	if len(words) > maxQueryWords {
		return nil // no place name has that many different words
	}
	if len(words) > 1 && landkreisAbbrev[words[0]] {
		// "LK Bautzen" is how people abbreviate the Landkreis of its typed form.
		words[0] = "landkreis"
		fq = strings.Join(words, " ")
	}
	key := keyOfFolded(fq)
	ix := &d.names
	// The longest word narrows the candidates most.
	pivot := 0
	for i, w := range words {
		if len(w) > len(words[pivot]) {
			pivot = i
		}
	}
	type cand struct {
		i      int32
		score  int
		strict bool // spelt as typed, umlauts included
	}
	skey := strictKey(q)
	rng := ix.prefixRange(words[pivot])
	marks := ix.marks.Get().(*markSet)
	defer ix.marks.Put(marks)
	marks.gen++
	cs := make([]cand, 0, min(len(rng), limit))
	better := func(a, b cand) bool {
		if a.score != b.score {
			return a.score > b.score
		}
		aa, ab := ix.areas[a.i], ix.areas[b.i]
		if aa.class != ab.class {
			return aa.class < ab.class
		}
		if a.strict != b.strict {
			return a.strict
		}
		if aa.Population != ab.Population {
			return aa.Population > ab.Population
		}
		return aa.Key < ab.Key
	}
	for _, t := range rng {
		if marks.seen[t.area] == marks.gen {
			continue // the area has two words with this prefix
		}
		marks.seen[t.area] = marks.gen
		if !allWordsMatch(words, ix.words[t.area]) {
			continue
		}
		score := 100
		if t.pos == 0 {
			score = 400
		}
		for fi, f := range ix.forms[t.area] {
			switch {
			case ix.keys[t.area][fi] == key:
				score = 1000
			case score < 700 && len(f) >= len(fq) && f[0] == fq[0] && strings.HasPrefix(f, fq):
				score = 700
			}
		}
		c := cand{t.area, score, score == 1000 && slices.Contains(ix.skeys[t.area], skey)}
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
		hits[n] = PlaceHit{Area: ix.areas[c.i], Label: d.placeLabel(ix.areas[c.i]), Score: c.score}
	}
	return hits
}

// maxQueryWords bounds a place search; the longest official names have about ten.
const maxQueryWords = 16

// uniqueWords drops repeated words ("a a a" is "a"); every word must match anyway.
func uniqueWords(ws []string) []string {
	out := ws[:0]
	for i, w := range ws {
		if !slices.Contains(ws[:i], w) {
			out = append(out, w)
		}
	}
	return out
}

var landkreisAbbrev = map[string]bool{"lk": true, "lkr": true, "lkrs": true, "landkr": true}

// prefixRange returns the tokens starting with p.
func (ix *nameIndex) prefixRange(p string) []placeToken {
	lo := sort.Search(len(ix.tokens), func(i int) bool { return ix.tokens[i].tok >= p })
	hi := lo
	for hi < len(ix.tokens) && strings.HasPrefix(ix.tokens[hi].tok, p) {
		hi++
	}
	return ix.tokens[lo:hi]
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
