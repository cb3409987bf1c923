package routing

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// Directory is an immutable snapshot of the jurisdiction directory. All methods are
// safe for concurrent use; returned pointers and slices are shared and must not be
// modified.
type Directory struct {
	src *Source

	*placeSet // areas, postcodes and the name index; shared by snapshots with the same places

	services map[string]*Service
	svcIndex map[string]int32 // LeiKa key -> position in svcList, the row of the table
	svcList  []*Service       // by name
	offices  map[string]*Office
	rt       respTable
	peers    map[string]*Peer
	home     map[string]bool
	// peersFirst: see Source.PeersFirst.
	peersFirst bool

	svcIdx serviceIndex
	counts Counts
}

// Counts describes the size of a snapshot (for logs, the admin endpoint and the docs).
type Counts struct {
	Areas            int `json:"areas"`
	Municipalities   int `json:"municipalities"`
	Postcodes        int `json:"postcodes"`
	Services         int `json:"services"`
	Offices          int `json:"offices"`
	Responsibilities int `json:"responsibilities"`
	Peers            int `json:"peers"`
}

// Counts returns the size of the snapshot.
func (d *Directory) Counts() Counts { return d.counts }

// Build indexes and validates src. Every reference must resolve (service, office,
// area), keys must be well-formed and unique; the first problem is returned as a
// *DataError naming the file and line the record came from.
func Build(src *Source) (*Directory, error) { return buildReusing(src, nil) }

// buildReusing is Build with the places of an earlier snapshot whose areas and
// postcodes src shares.
func buildReusing(src *Source, places *placeSet) (*Directory, error) {
	d, err := build(src, places)
	var de *DataError
	if errors.As(err, &de) && de.Line == 0 {
		// Origins are recorded as "file:line"; split them so callers get both.
		de.File, de.Line = splitOrigin(de.File)
	}
	return d, err
}

func build(src *Source, places *placeSet) (*Directory, error) {
	d := &Directory{
		src:      src,
		placeSet: places,
		services: make(map[string]*Service, len(src.Services)),
		offices:  make(map[string]*Office, len(src.Offices)),
		peers:    make(map[string]*Peer, len(src.Peers)),
		home:     map[string]bool{},
	}
	if d.placeSet == nil {
		ps, err := buildPlaces(src)
		if err != nil {
			return nil, err
		}
		d.placeSet = ps
	}
	if err := d.buildServices(src); err != nil {
		return nil, err
	}
	if err := d.buildOffices(src.Offices, src); err != nil {
		return nil, err
	}
	if err := d.buildPeers(src); err != nil {
		return nil, err
	}
	for _, l := range src.HomeLands {
		// A typo ("4" for Bremen, "41") would silently send the state's own places
		// to a peer or leave them unrouted; say so when the file is loaded.
		if a, ok := d.areas[l]; !ok || a.Level != LevelLand {
			return nil, &DataError{File: src.origin("homeLand", l), Msg: fmt.Sprintf("homeLands: %q is not a Land key (2 digits, 01 to 16)", l)}
		}
		d.home[l] = true
	}
	d.peersFirst = src.PeersFirst
	if err := d.buildResponsibilities(src); err != nil {
		return nil, err
	}
	d.svcIdx = buildServiceIndex(d.svcList)
	d.counts = Counts{
		Areas:            len(d.areas),
		Municipalities:   len(d.byAGS),
		Postcodes:        len(d.plzList),
		Services:         len(d.services),
		Offices:          len(d.offices),
		Responsibilities: d.rt.count,
		Peers:            len(d.peers),
	}
	return d, nil
}

// placeSet is what a snapshot derives from its areas and postcodes. Overlays do not
// change places, so a snapshot built from a base plus overlay files shares the base's
// placeSet (see BuildWithFiles): a reload only rebuilds services, offices and
// responsibilities.
type placeSet struct {
	areas   map[string]*Area   // by Key (2, 3, 5, 9 or 12 digits)
	nodes   nodeTable          // every area key and level prefix, numbered per level
	byAGS   map[string]*Area   // municipalities by AGS
	byPLZ   map[string][]*Area // municipalities by postcode
	plzList []string           // sorted postcodes, for prefix search
	names   nameIndex
	// otherKeys maps the official keys of city states' districts to their city
	// (Area.OtherKeys); a portal that sends Spandau's ARS got "unknown place".
	otherKeys map[string]*Area
	// cities are the Kreis keys of kreisfreie Städte (kreisfreieStaedte), the
	// one reading of it for this snapshot's places.
	cities map[string]bool
}

func buildPlaces(src *Source) (*placeSet, error) {
	d := &placeSet{
		areas: make(map[string]*Area, len(src.Areas)),
		byAGS: make(map[string]*Area, len(src.Areas)),
		byPLZ: make(map[string][]*Area, len(src.Postcodes)),
	}
	// Copy: a snapshot owns its areas, so linking parents never touches another
	// snapshot that shares the same Source areas.
	for _, a := range src.Areas {
		if !isDigits(a.Key) || !slices.Contains(levels[:], Level(len(a.Key))) {
			return nil, &DataError{File: src.origin("area", a.Key), Msg: fmt.Sprintf("area key %q: want 2, 3, 5, 9 or 12 digits", a.Key)}
		}
		if strings.TrimSpace(a.Name) == "" {
			return nil, &DataError{File: src.origin("area", a.Key), Msg: fmt.Sprintf("area %s has no name", a.Key)}
		}
		if r, bad := notXMLText(a.Name); bad {
			return nil, &DataError{File: src.origin("area", a.Key), Msg: fmt.Sprintf("area %s: its name has %U, a character XML cannot hold", a.Key, r)}
		}
		c := *a
		c.Level = Level(len(a.Key))
		c.ARS = (a.Key + "000000000000")[:12]
		c.Parent, c.Postcodes, c.alsoKreis, c.alsoLand, c.note = nil, nil, nil, nil, ""
		c.owner = d
		d.areas[c.Key] = &c
	}
	for li := range levels {
		d.nodes.index[li] = map[string]int32{}
	}
	// Number the nodes in key order, so a snapshot's tables do not depend on map order.
	keys := make([]string, 0, len(d.areas))
	for k := range d.areas {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	d.cities = kreisfreieStaedte(slices.Values(keys))
	for _, k := range keys {
		a := d.areas[k]
		d.nodes.add(k, a)
		if a.Level == LevelGemeinde {
			for _, l := range levels[1:] {
				d.nodes.add(k[:l], d.areas[k[:l]])
			}
		}
	}
	sums := map[string]int{}
	for _, a := range d.areas {
		a.chain = d.nodes.chainOf(a.Key)
		for _, l := range levels {
			if int(l) < len(a.Key) {
				if p, ok := d.areas[a.Key[:l]]; ok {
					a.Parent = p
					break
				}
			}
		}
		if a.Level == LevelGemeinde {
			if a.AGS == "" {
				a.AGS = a.Key[:5] + a.Key[9:]
			}
			d.byAGS[a.AGS] = a
			for _, l := range levels[1:] {
				sums[a.Key[:l]] += a.Population
			}
		}
	}
	for _, a := range d.areas {
		for _, k := range a.OtherKeys {
			where := src.origin("area", a.Key)
			switch {
			case a.Level != LevelGemeinde:
				return nil, &DataError{File: where, Msg: fmt.Sprintf("area %s: other keys belong to municipalities", a.Key)}
			case len(k) != 12 || !isDigits(k) || k[:2] != a.Key[:2]:
				return nil, &DataError{File: where, Msg: fmt.Sprintf("area %s: other key %q: want 12 digits in the same Land", a.Key, k)}
			case d.areas[k] != nil:
				return nil, &DataError{File: where, Msg: fmt.Sprintf("area %s: other key %s is an area's own key", a.Key, k)}
			case d.otherKeys[k] != nil && d.otherKeys[k] != a:
				return nil, &DataError{File: where, Msg: fmt.Sprintf("other key %s given to %s and %s", k, d.otherKeys[k].Key, a.Key)}
			}
			if d.otherKeys == nil {
				d.otherKeys = map[string]*Area{}
			}
			d.otherKeys[k] = a
		}
	}
	// A higher area without its own figure has the population of its municipalities.
	for k, n := range sums {
		if a, ok := d.areas[k]; ok && a.Population == 0 {
			a.Population = n
		}
	}
	for plz, keys := range src.Postcodes {
		if len(plz) != 5 || !isDigits(plz) {
			return nil, &DataError{File: src.origin("plz", plz), Msg: fmt.Sprintf("postcode %q: want 5 digits", plz)}
		}
		for _, k := range keys {
			a, ok := d.areas[k]
			if !ok || a.Level != LevelGemeinde {
				return nil, &DataError{File: src.origin("plz", plz), Msg: fmt.Sprintf("postcode %s: unknown municipality %q", plz, k)}
			}
			if !slices.Contains(d.byPLZ[plz], a) {
				d.byPLZ[plz] = append(d.byPLZ[plz], a)
				a.Postcodes = append(a.Postcodes, plz)
			}
		}
		d.plzList = append(d.plzList, plz)
	}
	sort.Strings(d.plzList)
	for _, as := range d.byPLZ {
		sortAreas(as)
	}
	for _, a := range d.areas {
		sort.Strings(a.Postcodes)
	}
	d.buildNameIndex(keys)
	return d, nil
}

func (d *Directory) buildServices(src *Source) error {
	for _, s := range src.Services {
		if len(s.Key) != 14 || !isDigits(s.Key) {
			return &DataError{File: src.origin("service", s.Key), Msg: fmt.Sprintf("service key %q: want 14 digits (LeiKa)", s.Key)}
		}
		if strings.TrimSpace(s.Name) == "" {
			return &DataError{File: src.origin("service", s.Key), Msg: fmt.Sprintf("service %s has no name", s.Key)}
		}
		if r, bad := notXMLText(s.Name); bad {
			return &DataError{File: src.origin("service", s.Key), Msg: fmt.Sprintf("service %s: its name has %U, a character XML cannot hold", s.Key, r)}
		}
		if _, dup := d.services[s.Key]; dup {
			return &DataError{File: src.origin("service", s.Key), Msg: fmt.Sprintf("service %s defined twice", s.Key)}
		}
		d.services[s.Key] = s
		d.svcList = append(d.svcList, s)
	}
	sort.Slice(d.svcList, func(i, j int) bool {
		if d.svcList[i].Name != d.svcList[j].Name {
			return d.svcList[i].Name < d.svcList[j].Name
		}
		return d.svcList[i].Key < d.svcList[j].Key
	})
	d.svcIndex = make(map[string]int32, len(d.svcList))
	for i, s := range d.svcList {
		d.svcIndex[s.Key] = int32(i)
	}
	return nil
}

func (d *Directory) buildOffices(offices []*Office, src *Source) error {
	for _, o := range offices {
		where := src.origin("office", o.ID)
		if o.ID == "" || strings.ContainsAny(o.ID, " /?#") {
			return &DataError{File: where, Msg: fmt.Sprintf("office id %q: must be non-empty without spaces, '/', '?' or '#'", o.ID)}
		}
		if strings.TrimSpace(o.Name) == "" {
			return &DataError{File: where, Msg: fmt.Sprintf("office %s has no name", o.ID)}
		}
		if r, bad := notXMLText(o.ID + o.Name); bad {
			return &DataError{File: where, Msg: fmt.Sprintf("office %s: its id or name has %U, a character XML cannot hold", o.ID, r)}
		}
		if _, dup := d.offices[o.ID]; dup {
			return &DataError{File: where, Msg: fmt.Sprintf("office %s defined twice", o.ID)}
		}
		if len(o.Channels) == 0 {
			return &DataError{File: where, Msg: fmt.Sprintf("office %s has no delivery channel", o.ID)}
		}
		c := *o
		c.Channels = slices.Clone(o.Channels)
		for i, ch := range c.Channels {
			lvl, ok := kindLevel[ch.Kind]
			if !ok {
				return &DataError{File: where, Msg: fmt.Sprintf("office %s: unknown channel kind %q (want webhook, xta, transfer or mailbox)", o.ID, ch.Kind)}
			}
			if ch.Level == 0 {
				c.Channels[i].Level = lvl
			} else if ch.Level < 1 || ch.Level > 4 {
				return &DataError{File: where, Msg: fmt.Sprintf("office %s: channel %s level %d out of range 1..4", o.ID, ch.Kind, ch.Level)}
			}
		}
		sortChannels(c.Channels)
		d.offices[c.ID] = &c
	}
	for _, o := range d.offices {
		if o.ParentID != "" {
			if _, ok := d.offices[o.ParentID]; !ok {
				return &DataError{File: src.origin("office", o.ID), Msg: fmt.Sprintf("office %s: unknown parent %q", o.ID, o.ParentID)}
			}
		}
	}
	return nil
}

func (d *Directory) buildPeers(src *Source) error {
	for _, p := range src.Peers {
		where := src.origin("peer", p.Land)
		if len(p.Land) != 2 || !isDigits(p.Land) {
			return &DataError{File: where, Msg: fmt.Sprintf("peer land %q: want 2 digits", p.Land)}
		}
		if p.GatewayID == "" || p.BaseURL == "" {
			return &DataError{File: where, Msg: fmt.Sprintf("peer %s: gatewayId and baseUrl are required", p.Land)}
		}
		if _, dup := d.peers[p.Land]; dup {
			return &DataError{File: where, Msg: fmt.Sprintf("peer %s defined twice", p.Land)}
		}
		d.peers[p.Land] = p
	}
	return nil
}

func primaryRole(role string) bool { return role == "" || role == RoleZustaendig }

// The roles a responsibility can have: the office decides the case (zustaendig), or it
// only takes part (mitwirkend: a municipality that takes applications for the
// Landratsamt). The resolver prefers the first; see climb.
const (
	RoleZustaendig = "zustaendig"
	RoleMitwirkend = "mitwirkend"
)

// roleFolder folds the ways an operator writes a role: the German letters and their
// decomposed forms (as macOS sends them) become their transcriptions.
var roleFolder = strings.NewReplacer("ä", "ae", "a\u0308", "ae", "ö", "oe", "o\u0308", "oe",
	"ü", "ue", "u\u0308", "ue", "ß", "ss")

// normalizeRole reads the role of a record: empty means zustaendig; case, surrounding
// space and umlauts do not matter ("Zuständig" is zustaendig). Anything else is an
// error: a role the resolver does not know was taken as "not responsible", so a
// record with "zuständig" silently did not replace the built-in office and the
// packages went to the old one.
func normalizeRole(role string) (string, error) {
	r := roleFolder.Replace(strings.ToLower(strings.TrimSpace(role)))
	switch r {
	case "":
		return RoleZustaendig, nil
	case RoleZustaendig, RoleMitwirkend:
		return r, nil
	}
	return "", fmt.Errorf("rolle %q: want %s or %s", role, RoleZustaendig, RoleMitwirkend)
}

// knownRole reports whether role is one of the roles (or empty, zustaendig).
func knownRole(role string) bool {
	return role == "" || role == RoleZustaendig || role == RoleMitwirkend
}

// applyRule creates the sample offices of a Rule. It never overrides an explicit
// responsibility at the same area or above it, so real records always win.
func (d *Directory) applyRule(rule Rule) error {
	if rule.Level != LevelGemeinde && rule.Level != LevelKreis {
		return &DataError{File: rule.Origin, Msg: "generate: level must be gemeinde or kreis"}
	}
	sis := make([]int32, len(rule.Services))
	for i, s := range rule.Services {
		si, ok := d.svcIndex[s]
		if !ok {
			return &DataError{File: rule.Origin, Msg: fmt.Sprintf("generate: unknown service %q", s)}
		}
		sis[i] = si
	}
	// The Land selects the areas by key prefix: an empty or mistyped one matched every
	// municipality of Germany (sample offices instead of the other states' peers) or
	// none, so it must name a Land.
	if a, ok := d.areas[rule.Land]; !ok || a.Level != LevelLand {
		return &DataError{File: rule.Origin, Msg: fmt.Sprintf("generate: land %q is not a Land key (2 digits, 01 to 16)", rule.Land)}
	}
	channels := rule.Channels
	if len(channels) == 0 {
		channels = []Channel{{Kind: KindMailbox, Level: 1}}
	}
	// The generated offices get these channels as they are; check them as buildOffices
	// checks an office's.
	for _, ch := range channels {
		if _, ok := kindLevel[ch.Kind]; !ok {
			return &DataError{File: rule.Origin, Msg: fmt.Sprintf("generate: unknown channel kind %q (want webhook, xta, transfer or mailbox)", ch.Kind)}
		}
		if ch.Level < 0 || ch.Level > 4 {
			return &DataError{File: rule.Origin, Msg: fmt.Sprintf("generate: channel %s level %d out of range 1..4", ch.Kind, ch.Level)}
		}
	}
	li := levelIndex(rule.Level)
	for node, a := range d.nodes.areas[li] {
		if a == nil || !strings.HasPrefix(a.Key, rule.Land) {
			continue
		}
		office := d.sampleOffice(a, channels)
		v := d.assignment(office, RoleZustaendig, false) | generatedBit
		for _, si := range sis {
			if !d.explicitAt(si, &a.chain) {
				d.set(si, li, int32(node), v)
			}
		}
	}
	return nil
}

// sampleOffice returns the generated office of a municipality or Kreis, creating it on
// first use. A kreisfreie Stadt is one administration: its Kreis tasks go to the same
// office as its municipal ones.
func (d *Directory) sampleOffice(a *Area, channels []Channel) *Office {
	if a.Level == LevelKreis && d.cities[a.Key] {
		a = d.areas[a.Key+"0000000"]
	}
	var id, name string
	if a.Level == LevelGemeinde {
		id = "gemeinde-" + a.Key
		switch {
		case strings.Contains(a.Name, "Stadt"):
			name = "Stadtverwaltung " + a.ShortName()
		default:
			name = "Gemeindeverwaltung " + a.ShortName()
		}
	} else {
		id = "kreis-" + a.Key
		name = "Landratsamt " + a.ShortName()
	}
	if o, ok := d.offices[id]; ok {
		return o
	}
	ch := slices.Clone(channels)
	for i := range ch {
		if ch[i].Level == 0 {
			ch[i].Level = kindLevel[ch[i].Kind]
		}
		if ch[i].Endpoint == "" {
			ch[i].Endpoint = sampleEndpoint(ch[i].Kind, id)
		}
	}
	sortChannels(ch)
	o := &Office{ID: id, Name: name, Channels: ch, Sample: true, SourceFile: "generated"}
	if a.Level == LevelGemeinde {
		o.Postal = Address{City: a.ShortName()}
		if len(a.Postcodes) > 0 {
			o.Postal.Postcode = a.Postcodes[0]
		}
	}
	d.offices[id] = o
	return o
}

// sampleEndpoint gives a generated office an address of the right form for each channel,
// under the reserved .example domain so nothing is ever delivered to a real host.
func sampleEndpoint(kind, id string) string {
	switch kind {
	case KindWebhook:
		return "https://" + id + ".sample.example/amtsbote/webhook"
	case KindXTA:
		return "urn:de:amtsbote:sample:xta:" + id
	case KindTransfer:
		return "transfer/" + id
	}
	return id // mailbox: the mailbox name
}

// Service returns the service with the given LeiKa key.
func (d *Directory) Service(key string) (*Service, bool) {
	s, ok := d.services[key]
	return s, ok
}

// Services returns all services ordered by name.
func (d *Directory) Services() []*Service { return d.svcList }

// Office returns the office with the given id.
func (d *Directory) Office(id string) (*Office, bool) {
	o, ok := d.offices[id]
	return o, ok
}

// Area returns the area with the given key (2, 3, 5, 9 or 12 digits, or a 12-digit
// ARS padded with zeros for a higher level). The official key of a city state's
// Bezirk or Ortsteil (Area.OtherKeys: "110050005005", Spandau) returns its city.
func (d *Directory) Area(key string) (*Area, bool) {
	if a, ok := d.areas[key]; ok {
		return a, true
	}
	k, err := normalizeAreaKey(key, func(s string) bool { return d.areas[s] != nil })
	if err != nil {
		return nil, false
	}
	if a, ok := d.areas[k]; ok {
		return a, true
	}
	a, ok := d.otherKeys[k]
	return a, ok
}

// AreasWithin returns the areas of level whose key starts with prefix (an area
// key, "" for all), in key order: the Kreise of a Land, for a caller that asks
// about each.
func (d *Directory) AreasWithin(prefix string, level Level) []*Area {
	li := levelIndex(level)
	if li < 0 {
		return nil
	}
	var out []*Area
	for _, a := range d.nodes.areas[li] {
		if a != nil && strings.HasPrefix(a.Key, prefix) {
			out = append(out, a)
		}
	}
	return out
}

// Peer returns the peer gateway for a two-digit state prefix.
func (d *Directory) Peer(land string) (*Peer, bool) {
	p, ok := d.peers[land]
	return p, ok
}

// Peers returns all peers ordered by state prefix.
func (d *Directory) Peers() []*Peer {
	ps := make([]*Peer, 0, len(d.peers))
	for _, p := range d.peers {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Land < ps[j].Land })
	return ps
}

// Source returns the raw material the snapshot was built from, for overlays.
func (d *Directory) Source() *Source { return d.src }

// notXMLText returns the first character of s that an XML document cannot hold
// (XML 1.0 Char: control characters but tab and line ends, U+FFFE, U+FFFF, bytes
// that are no UTF-8), and whether there is one. Names of areas, services and
// offices go into the signed receipts, the XTA metadata and the peers' envelopes:
// one such character (a YAML escape such as "\v" in an operator's file) made
// every Eingangsbestaetigung of the office a document no XML parser reads.
func notXMLText(s string) (rune, bool) {
	if !utf8.ValidString(s) {
		return utf8.RuneError, true
	}
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return r, true
		}
	}
	return 0, false
}
