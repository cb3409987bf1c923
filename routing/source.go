package routing

import (
	"fmt"
	"iter"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Source is the raw material of a Directory: what loaders produce and Build indexes.
// Overlays are merged into a copy of the base Source, and the result is built and
// validated as a whole before anyone sees it.
type Source struct {
	Areas     []*Area             // every Gebiet; Parent and Postcodes are filled by Build
	Postcodes map[string][]string // postcode -> municipality keys (12-digit ARS)

	Services         []*Service
	Offices          []*Office
	Responsibilities []Responsibility
	Groups           []ResponsibilityGroup
	Peers            []*Peer
	Rules            []Rule

	// HomeLands are the states this directory is authoritative for; a place elsewhere
	// goes to that state's peer when no local entry covers it.
	HomeLands []string
	// PeersFirst: an operator's file set HomeLands, so a place outside them goes to
	// its state's peer even where this directory holds records for it (the built-in
	// Saxon data at another state's gateway), and sample offices are no answer
	// anywhere: the operator has taken over the home lands' data.
	PeersFirst bool

	// origins remembers file:line of records for error messages.
	origins map[string]string
	// operatorWritten: the records come from a YAML file an operator writes by hand,
	// where two responsible offices for one service and area are a typo (see
	// contradiction). An XZuFi export is the state's data as it is: several
	// Bürgerämter each zustaendig for one Leistung and Gebiet is its normal shape.
	operatorWritten bool
	// areaKeys caches the keys a record's area may name (see areaKeyExists) while
	// files are merged, and cities the Kreise of kreisfreie Städte (see
	// recordAreaKey); nil until first needed, reset when Areas change, and dropped
	// after merging (dropAreaCache) so a snapshot does not keep them.
	areaKeys map[string]bool
	cities   map[string]bool
}

// ResponsibilityGroup is many Zuständigkeiten at once: the office is responsible (with
// Role) for every service of ServiceKeys in every area of AreaKeys. It is how bulk data
// looks (a municipality's Bürgeramt does the same few hundred services as every other
// one) and what keeps a nationwide directory small: groups share one ServiceKeys slice
// instead of repeating a record per service and municipality.
type ResponsibilityGroup struct {
	OfficeID    string
	AreaKeys    []string // ARS prefixes (2, 3, 5, 9 or 12 digits) or padded 12-digit ARS
	ServiceKeys []string // LeiKa keys; may be shared between groups and is never modified
	Role        string
	Origin      string // file:line, for error messages
	operator    bool   // from an operator's file, not the built-in data (see fromOperator)
}

// fromOperator marks o's records as an operator's: outside the home lands they win
// over the peer, the built-in data's records do not (see Directory.route).
func (o *Source) fromOperator() {
	for i := range o.Responsibilities {
		o.Responsibilities[i].operator = true
	}
	for i := range o.Groups {
		o.Groups[i].operator = true
	}
}

// Rule generates one sample office per area of a level and makes it responsible for
// the listed services there. It stands in for the real office records of the 400-odd
// Saxon municipalities until operators load them; explicit responsibilities win.
type Rule struct {
	Level    Level
	Land     string
	Services []string
	Channels []Channel
	Origin   string
}

// clone copies the mutable lists so an overlay never changes the base it came from.
// Areas and postcodes are shared: overlays do not change places.
func (s *Source) clone() *Source {
	c := *s
	c.Services = slices.Clone(s.Services)
	c.Offices = slices.Clone(s.Offices)
	c.Responsibilities = slices.Clone(s.Responsibilities)
	c.Groups = slices.Clone(s.Groups)
	c.Peers = slices.Clone(s.Peers)
	c.Rules = slices.Clone(s.Rules)
	c.HomeLands = slices.Clone(s.HomeLands)
	c.origins = make(map[string]string, len(s.origins))
	for k, v := range s.origins {
		c.origins[k] = v
	}
	return &c
}

func (s *Source) setOrigin(kind, id, origin string) {
	if s.origins == nil {
		s.origins = map[string]string{}
	}
	s.origins[kind+"\x00"+id] = origin
}

func (s *Source) origin(kind, id string) string { return s.origins[kind+"\x00"+id] }

// Merge lays o over s: a service, office or peer with the same key replaces the old
// one; a responsibility for the same service, area and role replaces the old one, and
// so does a group that covers it. Area keys are compared in their normal form
// (normalizeAreaKey), so "140000000000" and "14" are the same area; o itself is not
// modified.
func (s *Source) Merge(o *Source) {
	s.merge(s.prepare(o))
}

// mergeFile is Merge for the records of one file, which must not contradict each
// other (see contradiction). On error s may be half changed and is to be dropped.
func (s *Source) mergeFile(o *Source) error {
	n := s.prepare(o)
	// An XZuFi export keeps loading as before: of two responsible offices for one
	// service and area the later record in the file wins.
	if n.operatorWritten {
		if err := n.contradiction(); err != nil {
			return err
		}
	}
	s.merge(n)
	return nil
}

// prepare adds o's areas to s and returns o with its area keys in normal form.
func (s *Source) prepare(o *Source) *Source {
	if len(o.Areas) > 0 {
		s.Areas = append(slices.Clone(s.Areas), o.Areas...)
		s.dropAreaCache()
	}
	return o.withNormalAreaKeys(s.recordAreaKey)
}

// contradiction reports two records of one YAML file (o, area keys in normal form)
// that make different offices responsible (zustaendig) for the same service and area,
// naming both lines. Such a pair is a mistake in the file (a typo in a state's table);
// before, the later one silently won and half of the packages went to the wrong
// authority. Only the responsible role is checked: several offices that take part
// (mitwirkend, two Annahmestellen) are legitimate data. A role "" is zustaendig, so
// such a record and one spelt "zustaendig" share a slot. Across files a later file
// still replaces an earlier one: that is how an operator corrects data.
func (o *Source) contradiction() error {
	type slot struct{ service, area string }
	type listID struct {
		first *string
		n     int
	}
	singles := make(map[slot]*Responsibility, len(o.Responsibilities))
	for i := range o.Responsibilities {
		r := &o.Responsibilities[i]
		if !primaryRole(r.Role) {
			continue
		}
		k := slot{r.ServiceKey, r.AreaKey}
		if f, ok := singles[k]; ok {
			if f.OfficeID != r.OfficeID {
				return contradicts(r.origin, f.origin, r.ServiceKey, r.AreaKey, RoleZustaendig, f.OfficeID, r.OfficeID)
			}
			continue
		}
		singles[k] = r
	}
	if len(o.Groups) == 0 {
		return nil
	}
	sets := map[listID]map[string]bool{} // groups share service lists: one set per list
	set := func(g *ResponsibilityGroup) map[string]bool {
		if len(g.ServiceKeys) == 0 {
			return nil
		}
		id := listID{&g.ServiceKeys[0], len(g.ServiceKeys)}
		m, ok := sets[id]
		if !ok {
			m = make(map[string]bool, len(g.ServiceKeys))
			for _, k := range g.ServiceKeys {
				m[k] = true
			}
			sets[id] = m
		}
		return m
	}
	common := func(g, h *ResponsibilityGroup) string {
		hs := set(h)
		for _, k := range g.ServiceKeys {
			if hs[k] {
				return k
			}
		}
		return ""
	}
	byArea := map[string][]int{}
	for gi := range o.Groups {
		g := &o.Groups[gi]
		if !primaryRole(g.Role) {
			continue
		}
		for _, a := range g.AreaKeys {
			seen := false
			for _, hi := range byArea[a] {
				h := &o.Groups[hi]
				seen = seen || hi == gi
				if h.OfficeID == g.OfficeID {
					continue
				}
				if svc := common(g, h); svc != "" {
					return contradicts(g.Origin, h.Origin, svc, a, RoleZustaendig, h.OfficeID, g.OfficeID)
				}
			}
			if !seen {
				byArea[a] = append(byArea[a], gi)
			}
		}
	}
	for i := range o.Responsibilities {
		r := &o.Responsibilities[i]
		if !primaryRole(r.Role) {
			continue
		}
		for _, gi := range byArea[r.AreaKey] {
			g := &o.Groups[gi]
			if g.OfficeID != r.OfficeID && set(g)[r.ServiceKey] {
				return contradicts(r.origin, g.Origin, r.ServiceKey, r.AreaKey, RoleZustaendig, g.OfficeID, r.OfficeID)
			}
		}
	}
	return nil
}

// contradicts is the error of contradiction: at is the record's file:line, other the
// line of the record it contradicts.
func contradicts(at, other, service, area, role, otherOffice, office string) error {
	file, line := splitOrigin(at)
	_, otherLine := splitOrigin(other)
	return &DataError{File: file, Line: line, Msg: fmt.Sprintf(
		"service %s in area %s (rolle %s) goes to office %s here but to office %s at line %d of the same file; give one office",
		service, area, role, office, otherOffice, otherLine)}
}

// errorAt is a DataError at an origin "file:line".
func errorAt(origin, msg string, err error) *DataError {
	file, line := splitOrigin(origin)
	return &DataError{File: file, Line: line, Msg: msg, Err: err}
}

// splitOrigin splits an origin "file:line" into its parts; line 0 when there is none.
func splitOrigin(origin string) (string, int) {
	if i := strings.LastIndexByte(origin, ':'); i > 0 && isDigits(origin[i+1:]) {
		n, _ := strconv.Atoi(origin[i+1:])
		return origin[:i], n
	}
	return origin, 0
}

func (s *Source) merge(o *Source) {
	if len(o.Groups) > 0 {
		s.Responsibilities = dropCovered(s.Responsibilities, o.Groups)
		s.Groups = append(slices.Clone(s.Groups), o.Groups...)
	}
	s.Services = upsertAll(s.Services, o.Services, func(x *Service) string { return x.Key })
	s.Offices = upsertAll(s.Offices, o.Offices, func(x *Office) string { return x.ID })
	s.Responsibilities = upsertAll(s.Responsibilities, o.Responsibilities, func(x Responsibility) string {
		return x.ServiceKey + "\x00" + x.AreaKey + "\x00" + x.Role
	})
	s.Peers = upsertAll(s.Peers, o.Peers, func(x *Peer) string { return x.Land })
	s.Rules = append(s.Rules, o.Rules...)
	for _, l := range o.HomeLands {
		if !slices.Contains(s.HomeLands, l) {
			s.HomeLands = append(s.HomeLands, l)
		}
	}
	if len(o.Postcodes) > 0 {
		m := make(map[string][]string, len(s.Postcodes)+len(o.Postcodes))
		for k, v := range s.Postcodes {
			m[k] = v
		}
		for k, v := range o.Postcodes {
			m[k] = v
		}
		s.Postcodes = m
	}
	if s.origins == nil {
		s.origins = map[string]string{}
	}
	for k, v := range o.origins {
		s.origins[k] = v
	}
}

// areaKeyExists reports whether k names a node Build will number: an area, or a
// level prefix of a municipality's key (a Regierungsbezirk exists in the key even
// where the state has none).
func (s *Source) areaKeyExists(k string) bool {
	if s.areaKeys == nil {
		m := make(map[string]bool, len(s.Areas)+len(s.Areas)/2)
		for _, a := range s.Areas {
			m[a.Key] = true
			if len(a.Key) == int(LevelGemeinde) {
				for _, l := range levels[1:] {
					m[a.Key[:l]] = true
				}
			}
		}
		s.areaKeys = m
		s.cities = kreisfreieStaedte(maps.Keys(m))
	}
	return s.areaKeys[k]
}

// isCity reports whether kreis (5 digits) is the Kreis of a kreisfreie Stadt
// (kreisfreieStaedte).
func (s *Source) isCity(kreis string) bool {
	s.areaKeyExists(kreis) // fills the cache
	return s.cities[kreis]
}

// dropAreaCache forgets areaKeys and cities: Areas changed, or merging is over.
func (s *Source) dropAreaCache() { s.areaKeys, s.cities = nil, nil }

// recordAreaKey is the normal form of a record's area key (normalizeAreaKey, then
// cityKey).
func (s *Source) recordAreaKey(k string) (string, error) {
	n, err := normalizeAreaKey(k, s.areaKeyExists)
	if err != nil {
		return "", err
	}
	return cityKey(n, s.isCity), nil
}

// kreisfreieStaedte is the one reading of "this Kreis is a kreisfreie Stadt":
// the Kreis keys among keys (area keys of any level, each once) whose only
// municipality is keyed kreis+"0000000", the city. Merging (Source.isCity),
// the response table (Directory.isCity), the name index (a city's Kreis is not
// a name of its own) and the generated sample offices (the city's Kreis tasks go
// to its municipal office) all ask it. They asked in two ways: the merge and the
// table counted the municipalities, the name index and the sample offices only
// looked for kreis+"0000000"; and the merge counted an area an overlay restates
// twice, so the city was a city in the table but not while its records merged.
func kreisfreieStaedte(keys iter.Seq[string]) map[string]bool {
	perKreis := map[string]int{}
	zero := map[string]bool{}
	for k := range keys {
		if len(k) != int(LevelGemeinde) {
			continue
		}
		perKreis[k[:LevelKreis]]++
		if k[LevelKreis:] == "0000000" {
			zero[k[:LevelKreis]] = true
		}
	}
	cities := map[string]bool{}
	for k := range zero {
		if perKreis[k] == 1 {
			cities[k] = true
		}
	}
	return cities
}

// cityKey is the key a record for a kreisfreie Stadt is held under: its Kreis key,
// also where the record names the city's municipality (kreis+"0000000") or
// Gemeindeverband (kreis+"0000"). The three are one area (rule 7: the Kreis of a
// kreisfreie Stadt is the city), but a record under one of them did not replace a
// record under another: an operator's record for "14612" left the built-in Amt24
// office under 146120000000 in force, found first by the climb from the
// municipality. The Kreis is the key every query of the city climbs through (the
// municipality, "ARS 14612", the Gemeindeverband), so a record there answers all
// of them; one under the municipality was not found from the Kreis key where the
// city lies in another state (the climb from the Kreis ends at that state's peer).
// isCity says whether a Kreis key is a kreisfreie Stadt's.
func cityKey(k string, isCity func(kreis string) bool) string {
	switch {
	case len(k) == int(LevelGemeinde) && k[LevelKreis:] == "0000000",
		len(k) == int(LevelGemeindeverband) && k[LevelKreis:] == "0000":
		if isCity(k[:LevelKreis]) {
			return k[:LevelKreis]
		}
	}
	return k
}

// withNormalAreaKeys returns o with the area keys of its responsibilities and groups
// in their normal form (norm: Source.recordAreaKey), so that later records and
// groups replace earlier ones for the same area however it is written: an
// operator's group for "140000000000" (Land 14 padded, as FIT-Connect writes it)
// left the built-in record for "14" in force, and that record won; a record for a
// kreisfreie Stadt under its Kreis key left the built-in one under the
// municipality key (cityKey). A key that is not well-formed stays as it is; Build
// reports it with the record's file and line. o is not modified.
func (o *Source) withNormalAreaKeys(normalize func(string) (string, error)) *Source {
	norm := func(k string) string {
		if n, err := normalize(k); err == nil {
			return n
		}
		return k
	}
	c := *o
	if len(o.Responsibilities) > 0 {
		c.Responsibilities = slices.Clone(o.Responsibilities)
		for i := range c.Responsibilities {
			c.Responsibilities[i].AreaKey = norm(c.Responsibilities[i].AreaKey)
		}
	}
	if len(o.Groups) > 0 {
		c.Groups = slices.Clone(o.Groups)
		for i := range c.Groups {
			g := &c.Groups[i]
			shared := true // g.AreaKeys is still o's slice
			for j, k := range g.AreaKeys {
				if n := norm(k); n != k {
					if shared {
						g.AreaKeys, shared = slices.Clone(g.AreaKeys), false
					}
					g.AreaKeys[j] = n
				}
			}
		}
	}
	return &c
}

// dropCovered removes the records that a later group replaces (Build applies groups
// before single records, so without this an older record would win).
func dropCovered(rs []Responsibility, groups []ResponsibilityGroup) []Responsibility {
	if len(rs) == 0 {
		return rs
	}
	byArea := map[string][]int{}
	for i := range groups {
		for _, a := range groups[i].AreaKeys {
			byArea[a] = append(byArea[a], i)
		}
	}
	type listID struct {
		first *string
		n     int
	}
	sets := map[listID]map[string]bool{} // groups share service lists: one set per list
	covered := func(r Responsibility) bool {
		for _, i := range byArea[r.AreaKey] {
			g := &groups[i]
			if g.Role != r.Role || len(g.ServiceKeys) == 0 {
				continue
			}
			id := listID{&g.ServiceKeys[0], len(g.ServiceKeys)}
			set, ok := sets[id]
			if !ok {
				set = make(map[string]bool, len(g.ServiceKeys))
				for _, k := range g.ServiceKeys {
					set[k] = true
				}
				sets[id] = set
			}
			if set[r.ServiceKey] {
				return true
			}
		}
		return false
	}
	out := make([]Responsibility, 0, len(rs))
	for _, r := range rs {
		if !covered(r) {
			out = append(out, r)
		}
	}
	return out
}

// normalizeAreaKey accepts an ARS prefix of a level length (2, 3, 5, 9, 12 digits) and
// also a 12-digit ARS padded with zeros for a higher level ("145220000000" = Kreis
// 14522), which is how FIT-Connect writes regional keys. areaExists decides whether a
// padded key names a municipality.
func normalizeAreaKey(k string, areaExists func(string) bool) (string, error) {
	k = strings.TrimSpace(k)
	if !isDigits(k) {
		return "", fmt.Errorf("area key %q: not a number", k)
	}
	switch len(k) {
	case 2, 3, 5, 9:
		return k, nil
	case 12:
		if areaExists(k) {
			return k, nil
		}
		for _, l := range levels[1:] {
			if strings.Trim(k[l:], "0") == "" && areaExists(k[:l]) {
				return k[:l], nil
			}
		}
		return k, nil
	}
	return "", fmt.Errorf("area key %q: want 2, 3, 5, 9 or 12 digits", k)
}

// sortChannels orders channels preferred first: highest maturity first, mailbox (the
// fallback a person can always process) last, peers after that.
func sortChannels(ch []Channel) {
	rank := func(c Channel) int {
		switch c.Kind {
		case KindMailbox:
			return -1
		case KindPeer:
			return -2
		}
		return c.Level
	}
	sort.SliceStable(ch, func(i, j int) bool { return rank(ch[i]) > rank(ch[j]) })
}

// upsertAll lays add over list: an element with the key of an earlier one replaces it
// in place, others are appended in order. list is not modified.
func upsertAll[T any](list, add []T, key func(T) string) []T {
	if len(add) == 0 {
		return list
	}
	out := slices.Clone(list)
	at := make(map[string]int, len(list)+len(add))
	for i, x := range out {
		at[key(x)] = i
	}
	for _, x := range add {
		k := key(x)
		if i, ok := at[k]; ok {
			out[i] = x
			continue
		}
		at[k] = len(out)
		out = append(out, x)
	}
	return out
}
