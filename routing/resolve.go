package routing

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Resolve finds the office responsible for a service at a place.
//
// place is read by its form (see Place): an ARS, AGS or postcode in any common
// notation, "01067 Dresden", or a name as people write it. The resolver climbs the ARS
// hierarchy (Gemeinde, Gemeindeverband, Kreis, Regierungsbezirk, Land) until it finds a
// responsibility. A place in another state goes to that state's peer.
//
// A place that means several areas (a shared postcode, a name several municipalities
// bear) is routed when every one of them has the same office and role in this
// directory; the Route's Area is then the smallest area that holds them all. Candidates
// that go to a peer stay ambiguous (see sameRouteFor).
//
// A LeiKa key this directory does not know is refused (ErrUnknownService) unless
// the place lies in a state it is not authoritative for and has a peer: then the
// route goes to that peer (Route.ServiceUnknown), whose directory must know the
// service (see unknownService).
//
// Errors: ErrInvalidQuery (malformed input), ErrUnknownService, ErrUnknownPlace,
// *AmbiguousPlaceError (errors.Is ErrAmbiguousPlace; lists the candidates) and
// ErrNoResponsibleOffice.
func (d *Directory) Resolve(leikaKey, place string) (*Route, error) {
	return d.ResolveWith(leikaKey, place, nil)
}

// ResolveWith is Resolve where taken says whether a package may go on a route
// (intake.Pipeline.Destination: the configuration's peer gateways), nil for every
// route. The directory alone cannot know that, and one answer needs it: a key
// this directory does not know, at a name or postcode of several places in other
// states, is the citizen's choice only where a package could go to one of them;
// where none can, whichever the citizen chose the key would be refused, so the
// answer is ErrUnknownService, the key before the place (docs/problems.md).
// Intake, /v1/resolve and lookup ask it with their intake decision.
func (d *Directory) ResolveWith(leikaKey, place string, taken func(*Route) error) (*Route, error) {
	leikaKey, err := leikaKeyOf(leikaKey)
	if err != nil {
		return nil, err
	}
	si, ok := d.svcIndex[leikaKey]
	if !ok {
		return d.unknownService(leikaKey, place, taken)
	}
	area, err := d.Place(place)
	var amb *AmbiguousPlaceError
	if errors.As(err, &amb) {
		// A postcode several municipalities share, each with the same office for
		// the service (a Kreis task), needs no choice: asking the citizen to pick a
		// municipality that changes nothing only loses the package.
		if rt := d.sameRouteFor(si, amb.Candidates); rt != nil {
			return rt, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return d.route(si, area)
}

// leikaKeyOf is a LeiKa key as Resolve reads it: trimmed, 14 digits, else
// ErrInvalidQuery.
func leikaKeyOf(k string) (string, error) {
	k = strings.TrimSpace(k)
	if len(k) != 14 || !isDigits(k) {
		return "", fmt.Errorf("%w: LeiKa key %s must have 14 digits", ErrInvalidQuery, quote(k))
	}
	return k, nil
}

// sameRouteFor is the route of a place that means several areas (the candidates of
// an *AmbiguousPlaceError) when every candidate has the same office and role here,
// with Area the smallest area that holds them all; nil when they differ, one has
// none or goes to a peer, or they lie in different Länder. Resolve calls it.
func (d *Directory) sameRouteFor(si int32, cands []*Area) *Route {
	if len(cands) < 2 {
		return nil
	}
	var first *Route
	for _, c := range cands {
		rt, err := d.route(si, c)
		if err != nil {
			return nil
		}
		if rt.Peer != nil {
			// "To the peer" only says that this directory does not know the office:
			// the peer's directory may give each candidate its own office (the
			// municipalities of 82064 in Bavaria) and refuse the package for the
			// merged area, held after intake said 201. Only the peer knows whether
			// the candidates agree, so the citizen chooses.
			return nil
		}
		if first == nil {
			first = rt
			continue
		}
		if rt.Office != first.Office || rt.Role != first.Role {
			return nil
		}
	}
	// The route names the place it was given for: not one of the candidates (that
	// would be a guess in the record and the receipt) but the area around them all,
	// the Kreis for a postcode within one.
	common := cands[0]
	for ; common != nil; common = common.Parent {
		all := true
		for _, c := range cands {
			all = all && c.Within(common)
		}
		if all {
			break
		}
	}
	if common == nil {
		return nil
	}
	rt := *first
	rt.Area, rt.AlsoKreis, rt.Note = common, nil, ""
	return &rt
}

// ResolveArea is Resolve for an area already chosen (e.g. from an ambiguity list).
func (d *Directory) ResolveArea(svc *Service, area *Area) (*Route, error) {
	if svc == nil || area == nil {
		return nil, fmt.Errorf("%w: service and area are required", ErrInvalidQuery)
	}
	si, ok := d.svcIndex[svc.Key]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownService, svc.Key)
	}
	return d.route(si, area)
}

// ResolveAreaKey is ResolveArea for a service given by its LeiKa key, which this
// directory may not know: such a key goes to the peer of another state's area, as
// in Resolve (the FIT-Connect route lookup names areas by key).
func (d *Directory) ResolveAreaKey(leikaKey string, area *Area) (*Route, error) {
	leikaKey, err := leikaKeyOf(leikaKey)
	if err != nil {
		return nil, err
	}
	if svc, ok := d.services[leikaKey]; ok {
		return d.ResolveArea(svc, area)
	}
	if area == nil {
		return nil, fmt.Errorf("%w: service and area are required", ErrInvalidQuery)
	}
	if rt := d.unknownAt(leikaKey, area); rt != nil {
		return rt, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownService, leikaKey)
}

// ResolveServiceWith is ResolveWith for a service as a person or portal names it:
// a LeiKa key (also one this directory does not know, as at intake) or a name or
// synonym (FindService; *AmbiguousServiceError when several services bear it).
// /v1/resolve and lookup ask it with intake's decision, so that they answer a key
// as intake does.
func (d *Directory) ResolveServiceWith(service, place string, taken func(*Route) error) (*Route, error) {
	key := strings.TrimSpace(service)
	if !isDigits(key) {
		svc, err := d.FindService(service)
		if err != nil {
			return nil, err
		}
		key = svc.Key
	}
	return d.ResolveWith(key, place, taken)
}

// unknownService is Resolve for a LeiKa key this directory does not know (rule 1).
// A place in a state this directory is not authoritative for goes to that state's
// peer, whose directory must know the service: the Länder have service keys and
// catalogue entries of their own that this directory may lack, and the peer
// refuses a key it does not know either (docs/federation.md, "Faults", row "peer
// refuses").
// Sample peers too: the peer's entry says only that the place is another state's;
// whether and to which gateway the package goes is the configuration's peers[]
// (intake.Pipeline.Destination), which answers ErrUnknownService where it has no
// peer gateway for the place. Rule 8's sample rule orders a sample peer behind
// real records, and a service unknown here has none.
//
// Any other place keeps rule 1's answer and order, ErrUnknownService before the
// place is judged: a home-land place, and a place that is none (unknown,
// malformed). A name or postcode of several places is the citizen's choice only
// where every candidate goes to a peer (a known service's candidates that go to
// a peer stay ambiguous too, rule 6); with a candidate here the key is unknown for
// it, so it is refused as unknown. And only where taken (ResolveWith) takes the
// route of one of them: with no peer gateway for any, every choice would end in
// ErrUnknownService, and the portal asked the citizen to choose for nothing.
func (d *Directory) unknownService(key, place string, taken func(*Route) error) (*Route, error) {
	unknown := fmt.Errorf("%w: %s", ErrUnknownService, key)
	area, err := d.Place(place)
	var amb *AmbiguousPlaceError
	if errors.As(err, &amb) {
		some := taken == nil
		for _, c := range amb.Candidates {
			rt := d.unknownAt(key, c)
			if rt == nil {
				return nil, unknown
			}
			some = some || taken(rt) == nil
		}
		if !some {
			return nil, unknown
		}
		return nil, err
	}
	if err != nil {
		return nil, unknown
	}
	if rt := d.unknownAt(key, area); rt != nil {
		return rt, nil
	}
	return nil, unknown
}

// unknownAt is the route of a service this directory does not know at area: to the
// peer of the area's state when this directory is not authoritative for it, nil
// otherwise. The service has no records here, so neither rule 8's exceptions nor
// rule 7's "too coarse" apply: a Kreis or Land of that state goes to its peer.
func (d *Directory) unknownAt(key string, area *Area) *Route {
	if a, ok := d.areas[area.Key]; ok {
		area = a // ours, also for an area of another snapshot
	}
	if len(area.Key) < 2 {
		return nil
	}
	land := area.Key[:2]
	p, ok := d.peers[land]
	if d.home[land] || !ok {
		return nil
	}
	rt := d.peerRoute(&Service{Key: key}, area, p)
	rt.ServiceUnknown = true
	return rt
}

// peerRoute is the route of svc at area to p, the peer of the area's state: the
// one shape of a peer route, whichever rule sends the place there (rule 8 with
// or without homeLands, rule 1 for a service this directory does not know). It
// was written out three times, and a member added to one (ServiceUnknown, the
// Note of a same-named Kreis) had to be remembered in the others.
func (d *Directory) peerRoute(svc *Service, area *Area, p *Peer) *Route {
	return &Route{
		Service:     svc,
		Area:        area,
		Peer:        p,
		Channels:    []Channel{{Kind: KindPeer, Endpoint: p.BaseURL}},
		Role:        "peer",
		MatchedArea: d.areas[area.Key[:2]],
		AlsoKreis:   area.alsoKreis,
		Note:        area.note,
	}
}

func (d *Directory) route(si int32, area *Area) (*Route, error) {
	if area.owner != d.placeSet {
		// An area of another snapshot, or one the caller made: use ours.
		if a, ok := d.areas[area.Key]; ok {
			area = a
		} else if len(area.Key) < 2 || !isDigits(area.Key) {
			return nil, fmt.Errorf("%w: area %s", ErrUnknownPlace, quote(area.Key))
		}
	}
	chain := &area.chain
	if area.owner != d.placeSet {
		c := d.nodes.chainOf(area.Key)
		chain = &c
	}
	svc := d.svcList[si]
	land := area.Key[:2]
	// peer is the peer of the place's state where this directory is not
	// authoritative for it (rule 8); nil in the home lands.
	var peer *Peer
	if !d.home[land] {
		peer = d.peers[land]
	}
	// Once an operator's file named the home lands, the operator runs this gateway
	// on real data: sample offices (the generated Saxon offices, the sample
	// Landesdirektion) are no answer anywhere, in the home lands too. A 201 for a
	// package that lands in a generated mailbox nobody reads would be a broken
	// promise; a (service, place) the operator's data does not cover is
	// ErrNoResponsibleOffice.
	only := anyOffice
	if d.peersFirst {
		only = realOffices
		if !d.home[land] {
			// Outside the home lands only the operator's own records answer: the
			// built-in data is the built-in home land's (Saxony's), and at a gateway
			// of another state its real records (the Amt24 office in Dresden) took
			// packages into a mailbox of that gateway no Saxon office reads.
			only = operatorRecords
			if peer != nil && !peer.Sample {
				// Outside the home lands the peer of that state decides, even where
				// this directory holds records (the built-in Saxon data at another
				// state's gateway), unless an operator's file names a real office
				// responsible (zustaendig) there: by a state treaty one state's
				// office serves a neighbour's area. A sample peer does not win over
				// any real record of an operator's file.
				only = operatorOffices
			}
		}
	}
	li, node, v := d.climb(si, chain, only)
	if area.Level != LevelGemeinde {
		// An area above the municipalities is routed only when every municipality
		// in it has its answer (rule 7), also where that answer is the peer (v 0
		// in another state): a Kreis where some municipalities have records of
		// their own is too coarse, and the citizen says which municipality. Only
		// the homeLands path checked this; without homeLands such a Kreis went to
		// the peer as a whole, and the municipalities with their own records lost
		// the packages of everyone who named the Kreis.
		one, err := d.sameBelow(si, area, v, only)
		if err != nil {
			return nil, err
		}
		if one != nil {
			// A kreisfreie Stadt's Kreis is the city itself: nothing to choose.
			return d.route(si, one)
		}
	}
	if v != 0 {
		as := &d.rt.assign[v&^generatedBit-1]
		return &Route{
			Service:     svc,
			Area:        area,
			Office:      as.office,
			Channels:    as.channels,
			Role:        as.role,
			MatchedArea: d.nodes.areas[li][node],
			AlsoKreis:   area.alsoKreis,
			Note:        area.note,
		}, nil
	}
	if peer != nil {
		return d.peerRoute(svc, area, peer), nil
	}
	return nil, fmt.Errorf("%w: %s (%s) in %s %s", ErrNoResponsibleOffice, svc.Name, svc.Key, area.Name, area.ARS)
}

// recordFilter says which records climb counts.
type recordFilter uint8

const (
	anyOffice       recordFilter = iota
	realOffices                  // not those of offices marked as sample data
	operatorRecords              // real offices, only records from an operator's file
	operatorOffices              // real offices, only records from an operator's file, only zustaendig
)

// climb finds the first responsibility for service si along chain (the area's level,
// then up to the Land): its level index, node and table element, v 0 when there is
// none. A responsible office ("zustaendig") wins over one that only takes part, also
// when it is recorded higher up (the Landratsamt at the Kreis over a municipality's
// Annahmestelle); the first other record is the answer only when no responsible
// office is found, or only a generated one. only says which records count.
func (d *Directory) climb(si int32, chain *[len(levels)]int32, only recordFilter) (li int, node int32, v uint32) {
	tabs := &d.rt.tabs[si]
	for l, n := range chain {
		if n < 0 || tabs[l] == nil {
			continue
		}
		x := tabs[l][n]
		if x == 0 {
			continue
		}
		as := &d.rt.assign[x&^generatedBit-1]
		if only != anyOffice && (as.office.Sample || only >= operatorRecords && !as.operator) {
			continue
		}
		if only == operatorOffices && !primaryRole(as.role) {
			// Outside the home lands the peer's state holds the responsible office;
			// an operator's office that only takes part there (an Annahmestelle) is
			// no reason to keep the package from it.
			continue
		}
		if primaryRole(as.role) {
			if v != 0 && x&generatedBit != 0 {
				// A generated sample office is no responsible office to prefer over
				// the operator's own record below it.
				return li, node, v
			}
			return l, n, x
		}
		if v == 0 {
			li, node, v = l, n, x
		}
	}
	return li, node, v
}

// sameBelow checks that an area above the municipalities (a Kreis, a Land, a
// Gemeindeverband) has one answer for service si: every municipality in it must climb
// to the same office and role as the area itself (v, 0 for none). Otherwise the place
// is too coarse to route ("Landkreis Bautzen" for Wohnsitz anmelden, or a Kreis where
// one town does the Kreis's task itself), and the error lists the municipalities to
// choose from, so the portal asks the citizen instead of the gateway guessing.
// A Kreis with a single municipality (a kreisfreie Stadt) returns that municipality.
func (d *Directory) sameBelow(si int32, area *Area, v uint32, only recordFilter) (*Area, error) {
	gi := levelIndex(LevelGemeinde)
	keys := d.nodes.keys[gi] // sorted: nodes are numbered in key order
	lo := sort.SearchStrings(keys, area.Key)
	differs := false
	var ms []*Area
	for n := lo; n < len(keys) && strings.HasPrefix(keys[n], area.Key); n++ {
		m := d.nodes.areas[gi][n]
		if m == nil {
			continue
		}
		ms = append(ms, m)
		if !differs {
			_, _, vm := d.climb(si, &m.chain, only)
			differs = !d.sameAnswer(vm, v)
		}
	}
	if !differs {
		return nil, nil
	}
	if len(ms) == 1 {
		return ms[0], nil
	}
	sortAreas(ms)
	return nil, &AmbiguousPlaceError{Query: d.placeLabel(area), Candidates: ms}
}

// sameAnswer reports whether table elements a and b (0 for none) name the same office
// with the same role. The assignment numbers alone are not that: one office and role
// from the built-in data and from an operator's file are two assignments (operator
// is part of assignKey), and comparing them made a Land where an operator restated
// the built-in office for one Kreis ambiguous.
func (d *Directory) sameAnswer(a, b uint32) bool {
	a, b = a&^generatedBit, b&^generatedBit
	if a == b || a == 0 || b == 0 {
		return a == b
	}
	x, y := &d.rt.assign[a-1], &d.rt.assign[b-1]
	return x.office == y.office && primaryRole(x.role) == primaryRole(y.role)
}

// Place turns what a citizen or portal gave as a place into one area, or explains why
// it cannot (ErrUnknownPlace, *AmbiguousPlaceError, ErrInvalidQuery).
//
// The place is read by its form: 12 digits = ARS (a municipality, or a higher area
// padded with zeros), 8 = AGS, 5 = postcode, 2/3/9 = ARS prefix, each also with spaces,
// dots or dashes between the groups ("14 6 25 020 020", "14-625-020"; "14 6 25" is the
// Kreis) and after a label ("ARS 146250020020", "AGS: 14625020", the XRepository URN);
// "01877 Bischofswerda" or "Bischofswerda 01877" = postcode narrowed by a name;
// anything else a name. A name matches the official name and its everyday forms
// (nameForms), insensitive to case, umlauts, ß, hyphens and "Sankt"/"St.". A bare name
// means the municipalities of that name before a Kreis, a Land or a
// Regierungsbezirk ("Bautzen" is the town; the Route then notes Landkreis Bautzen),
// "Landkreis X", "Stadt X", "Land X" say which is meant. A name several municipalities
// bear is ambiguous, with all of them listed largest first; it is never guessed.
func (d *Directory) Place(place string) (*Area, error) {
	// Fast path for the keys portals send, without building a candidate list.
	switch len(place) {
	case 12:
		if a, ok := d.areas[place]; ok {
			return a, nil
		}
	case 8:
		if a, ok := d.byAGS[place]; ok {
			return a, nil
		}
	}
	cs, also, q, err := d.lookupPlace(place)
	if err != nil {
		return nil, err
	}
	if len(cs) > 1 {
		return nil, &AmbiguousPlaceError{Query: q.original, Candidates: cs, Also: also}
	}
	return cs[0], nil
}

// Places returns every area the input could mean, best first. It returns
// ErrUnknownPlace when there is none.
func (d *Directory) Places(place string) ([]*Area, error) {
	cs, _, _, err := d.lookupPlace(place)
	return cs, err
}

func (d *Directory) lookupPlace(place string) (cands, also []*Area, q placeQuery, err error) {
	q, err = parsePlaceQuery(place)
	if err != nil {
		return nil, nil, q, err
	}
	switch q.kind {
	case qKey:
		if a, ok := d.Area(q.digits); ok {
			cands = []*Area{a}
		}
	case qAGS:
		if a, ok := d.byAGS[q.digits]; ok {
			cands = []*Area{a}
		}
	case qPostcode:
		cands = d.byPLZ[q.digits]
	case qPostcodeName:
		cands = d.postcodeAndName(q.digits, q.name)
	case qName:
		cands, also = d.nameLookup(q.name, anyClass)
	}
	if len(cands) == 0 {
		return nil, nil, q, fmt.Errorf("%w: %s", ErrUnknownPlace, quote(q.original))
	}
	return cands, also, q, nil
}

// nameLookup finds the areas a name means within the allowed classes: the exact forms
// first, then the name after a designation ("Landkreis Bautzen"), then the name with
// its qualifier as a filter ("Halle an der Saale", "Frankfurt a.M.", "Neustadt
// Sachsen": the base name's candidates whose name, Kreis or Land has those words).
func (d *Directory) nameLookup(name string, allow classMask) (cands, also []*Area) {
	f := fold(name)
	if f == "" {
		return nil, nil
	}
	if cands, also = d.names.lookupName(name, allow); len(cands) > 0 {
		return cands, also
	}
	words := strings.Fields(f)
	if cls, n := designation(words); n > 0 && allow == anyClass {
		// The designation is the first n folded words; the rest of the name as typed.
		rest := strings.Join(words[n:], " ")
		if raw := strings.Fields(name); len(raw) > n {
			rest = strings.Join(raw[n:], " ")
		}
		if cands, also = d.names.lookupName(rest, cls); len(cands) > 0 {
			return cands, also
		}
		words, allow = words[n:], cls
		name = strings.Join(words, " ")
	}
	if base, _, rest, ok := splitQualifier(name); ok {
		if bc, _ := d.names.lookup(placeKey(base), allow); len(bc) > 0 {
			if cands = d.narrow(bc, strings.Fields(fold(rest))); len(cands) > 0 {
				return cands, nil
			}
		}
	}
	for n := len(words) - 1; n >= 1; n-- {
		bc, _ := d.names.lookup(keyOfFolded(strings.Join(words[:n], " ")), allow)
		if len(bc) == 0 {
			continue
		}
		if cands = d.narrow(bc, words[n:]); len(cands) > 0 {
			return cands, nil
		}
	}
	return nil, nil
}

// narrow keeps the candidates whose own name, Kreis or Land has every word of quals
// (as a word prefix, or abbreviated: "westf" for "Westfalen"). Candidates whose own
// name has the words win over those whose Kreis has them, and those over the ones
// whose Land has them: "Neustadt/Sa." is Neustadt in Sachsen, not also Neustadt/Vogtl.
// (in Sachsen) and Neustadt an der Orla (Saale-Orla-Kreis).
func (d *Directory) narrow(cands []*Area, quals []string) []*Area {
	var ws []string
	for _, w := range quals {
		if !stopWords[w] {
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 {
		return nil
	}
	var out []*Area
	best := len(levels) // the rank of out: 0 own name, 1 Kreis, 2 Land
	for _, a := range cands {
		// names[r] are the words of the rank-r name: the place's own, its Kreis, its Land.
		var names [3][]string
		for x := a; x != nil; x = x.Parent {
			switch {
			case x == a:
				names[0] = nameWords(x.Name)
			case x.Level == LevelKreis:
				names[1] = append(names[1], nameWords(x.Name)...)
			case x.Level == LevelLand:
				names[2] = append(names[2], nameWords(x.Name)...)
			}
		}
		rank := 0 // the worst rank any word needed
		for _, w := range ws {
			r := 0
			for r < len(names) && !hasWord(names[r], w) {
				r++
			}
			rank = max(rank, r)
			if rank == len(names) {
				break
			}
		}
		switch {
		case rank == len(names) || rank > best:
		case rank < best:
			out, best = []*Area{a}, rank
		default:
			out = append(out, a)
		}
	}
	return out
}

// regionAbbrevs are the regions that official names abbreviate in a way that is no
// prefix of the word ("Weiden i.d.OPf.", "Hofheim i.UFr.", "Reichenbach/O.L."), so
// hasWord alone did not match the names people write out ("Weiden in der
// Oberpfalz", "Reichenbach (Oberlausitz)").
var regionAbbrevs = map[string]string{"opf": "oberpfalz", "ofr": "oberfranken", "ufr": "unterfranken",
	"mfr": "mittelfranken", "obb": "oberbayern", "ndb": "niederbayern", "ol": "oberlausitz"}

// nameWords are the folded words of a name for narrow, with its region abbreviations
// also spelt out; "O.L." folds to two one-letter words, so adjacent ones are joined.
func nameWords(name string) []string {
	ws := strings.Fields(fold(name))
	n := len(ws)
	for i := 0; i < n; i++ {
		if e, ok := regionAbbrevs[ws[i]]; ok {
			ws = append(ws, e)
		}
		if i+1 < n && len(ws[i]) == 1 && len(ws[i+1]) == 1 {
			if e, ok := regionAbbrevs[ws[i]+ws[i+1]]; ok {
				ws = append(ws, ws[i]+ws[i+1], e)
			}
		}
	}
	return ws
}

// hasWord: one of names starts with w, or w starts with a name of three letters or
// more ("westfalen" has "westf").
func hasWord(names []string, w string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, w) || len(n) >= 3 && strings.HasPrefix(w, n) {
			return true
		}
	}
	return false
}

// postcodeAndName narrows a postcode's municipalities by a name ("01877 Bischofswerda").
// The name may also be the municipality's name followed by a district ("01099 Dresden
// Neustadt"). A postcode the table does not have (a Postfach postcode, "01001 Dresden")
// narrows the name's municipalities to those with a postcode in the same region.
func (d *Directory) postcodeAndName(plz, name string) []*Area {
	inPLZ := d.byPLZ[plz]
	named, _ := d.nameLookup(name, municipalityClass)
	var found []*Area
	for _, a := range named {
		if slices.Contains(inPLZ, a) {
			found = append(found, a)
		}
	}
	if len(found) > 0 {
		return found
	}
	f := fold(name)
	for _, a := range inPLZ {
	forms:
		for _, n := range append([]string{a.Name}, a.OtherNames...) {
			for _, form := range nameForms(n) {
				if ff := fold(form); strings.HasPrefix(f, ff+" ") {
					found = append(found, a)
					break forms
				}
			}
		}
	}
	if len(found) > 0 || len(inPLZ) > 0 {
		return found
	}
	for _, n := range []int{3, 2} {
		for _, a := range named {
			for _, p := range a.Postcodes {
				if p[:n] == plz[:n] {
					found = append(found, a)
					break
				}
			}
		}
		if len(found) > 0 {
			return found
		}
	}
	return nil
}

// FindService identifies a service from a LeiKa key or from a name or synonym as a
// person types it. Several equally good matches give *AmbiguousServiceError.
func (d *Directory) FindService(q string) (*Service, error) {
	q = strings.TrimSpace(q)
	if q == "" {
		return nil, fmt.Errorf("%w: service is empty", ErrInvalidQuery)
	}
	if isDigits(q) {
		// A number is a LeiKa key; one that cannot be one is a malformed query, as
		// in Resolve and at intake, not an unknown service.
		if len(q) != 14 {
			return nil, fmt.Errorf("%w: LeiKa key %s must have 14 digits", ErrInvalidQuery, quote(q))
		}
		if s, ok := d.services[q]; ok {
			return s, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrUnknownService, quote(q))
	}
	hits := d.SearchServices(q, 10)
	if len(hits) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrUnknownService, quote(q))
	}
	// An exact name or synonym identifies the service only if no other service has it
	// as well ("Sterbeurkunde" is a synonym of two services): hits are sorted by score
	// and then by name, so taking the first of a tie would be a guess by the alphabet.
	exactTie := len(hits) > 1 && hits[1].Exact && hits[1].Score == hits[0].Score
	if hits[0].Exact && !exactTie || len(hits) == 1 {
		return hits[0].Service, nil
	}
	cs := make([]*Service, len(hits))
	for i, h := range hits {
		cs[i] = h.Service
	}
	return nil, &AmbiguousServiceError{Query: q, Candidates: cs}
}
