package routing

import (
	"fmt"
	"slices"
	"sort"
)

// The responsibility table. A nationwide directory has tens of millions of
// Zuständigkeiten (every municipal service in each of the 10,944 municipalities), far
// too many for one map entry, let alone one struct, each. So areas and services become
// small integers when a snapshot is built, and each service has, per ARS level, one
// dense array over the nodes of that level whose element names the (office, role) pair
// responsible there. A lookup is an array index per level climbed; 2,500 municipal
// services cost 4 bytes × 10,944 municipalities each (see BenchmarkGermanyScale).

// levelIndex maps a level to its position in levels (and in Area.chain).
func levelIndex(l Level) int {
	switch l {
	case LevelGemeinde:
		return 0
	case LevelGemeindeverband:
		return 1
	case LevelKreis:
		return 2
	case LevelRegierungsbezirk:
		return 3
	case LevelLand:
		return 4
	}
	return -1
}

// nodeTable numbers every area key and every level prefix of a municipality key (a
// Regierungsbezirk exists in the key even where the state has none today).
type nodeTable struct {
	index [len(levels)]map[string]int32
	keys  [len(levels)][]string
	areas [len(levels)][]*Area // the area of a node, nil for a bare prefix
}

func (n *nodeTable) add(key string, a *Area) int32 {
	li := levelIndex(Level(len(key)))
	if i, ok := n.index[li][key]; ok {
		if a != nil {
			n.areas[li][i] = a
		}
		return i
	}
	i := int32(len(n.keys[li]))
	n.index[li][key] = i
	n.keys[li] = append(n.keys[li], key)
	n.areas[li] = append(n.areas[li], a)
	return i
}

// lookup returns the level index and node of a key, ok false when it is unknown.
func (n *nodeTable) lookup(key string) (int, int32, bool) {
	li := levelIndex(Level(len(key)))
	if li < 0 {
		return 0, 0, false
	}
	i, ok := n.index[li][key]
	return li, i, ok
}

// chainOf computes the nodes of an area's key at its level and above.
func (n *nodeTable) chainOf(key string) [len(levels)]int32 {
	var c [len(levels)]int32
	for li, l := range levels {
		c[li] = -1
		if int(l) <= len(key) {
			if i, ok := n.index[li][key[:l]]; ok {
				c[li] = i
			}
		}
	}
	return c
}

// assignment is one (office, role) pair; a table element is its index + 1.
type assignment struct {
	office   *Office
	channels []Channel // office.Channels, here so a lookup touches one cache line less
	role     string
	operator bool // the record came from an operator's file
}

// generatedBit marks table elements created by a generate rule: they never stop
// another rule, and explicit records always replace them.
const generatedBit = 1 << 31

type respTable struct {
	tabs   [][len(levels)][]uint32 // by service index, level index, node
	assign []assignment
	byPair map[assignKey]uint32
	count  int
}

type assignKey struct {
	office, role string
	operator     bool
}

func (d *Directory) assignment(o *Office, role string, operator bool) uint32 {
	k := assignKey{o.ID, role, operator}
	if v, ok := d.rt.byPair[k]; ok {
		return v
	}
	d.rt.assign = append(d.rt.assign, assignment{o, o.Channels, role, operator})
	v := uint32(len(d.rt.assign))
	d.rt.byPair[k] = v
	return v
}

// set records that service si is handled by assignment v at node (li, node). A
// responsible office ("zustaendig") is not replaced by a participating one.
func (d *Directory) set(si int32, li int, node int32, v uint32) {
	tab := d.rt.tabs[si][li]
	if tab == nil {
		tab = make([]uint32, len(d.nodes.keys[li]))
		d.rt.tabs[si][li] = tab
	}
	old := tab[node]
	if old == 0 {
		d.rt.count++
	} else if old&generatedBit == 0 && v&generatedBit == 0 &&
		primaryRole(d.rt.assign[old-1].role) && !primaryRole(d.rt.assign[v&^generatedBit-1].role) {
		return
	}
	tab[node] = v
}

// explicitAt reports whether service si has a record that is not generated at the
// area's own level or above it.
func (d *Directory) explicitAt(si int32, chain *[len(levels)]int32) bool {
	for li, node := range chain {
		if node < 0 {
			continue
		}
		if tab := d.rt.tabs[si][li]; tab != nil && tab[node] != 0 && tab[node]&generatedBit == 0 {
			return true
		}
	}
	return false
}

// buildResponsibilities fills the table: groups first, then single records, each in
// file order (Source.Merge has already removed what a later file replaced), then the
// generate rules.
func (d *Directory) buildResponsibilities(src *Source) error {
	d.rt.tabs = make([][len(levels)][]uint32, len(d.svcList))
	d.rt.byPair = map[assignKey]uint32{}
	// Groups share their service lists; check and number each list once.
	type listID struct {
		first *string
		n     int
	}
	lists := map[listID][]int32{}
	// Consecutive groups with the same service list form a run; a run is written one
	// service at a time, so the writes go through one table after the other instead
	// of jumping between thousands of them. Within a run, and from run to run, file
	// order is kept, so a later group still wins.
	type entry struct {
		li   int
		node int32
		v    uint32
	}
	var run []entry
	var runList []int32
	flush := func() {
		for _, si := range runList {
			for _, e := range run {
				tab := d.rt.tabs[si][e.li]
				if tab != nil && tab[e.node] == 0 {
					tab[e.node] = e.v // the common case, without set's checks
					d.rt.count++
					continue
				}
				d.set(si, e.li, e.node, e.v)
			}
		}
		run = run[:0]
	}
	for gi := range src.Groups {
		g := &src.Groups[gi]
		where := g.Origin
		o, ok := d.offices[g.OfficeID]
		if !ok {
			return &DataError{File: where, Msg: fmt.Sprintf("responsibility group: unknown office %q", g.OfficeID)}
		}
		if !knownRole(g.Role) {
			return &DataError{File: where, Msg: fmt.Sprintf("responsibility group: rolle %q: want %s or %s", g.Role, RoleZustaendig, RoleMitwirkend)}
		}
		if len(g.ServiceKeys) == 0 || len(g.AreaKeys) == 0 {
			return &DataError{File: where, Msg: "responsibility group: needs services and areas"}
		}
		id := listID{&g.ServiceKeys[0], len(g.ServiceKeys)}
		sis, ok := lists[id]
		if !ok {
			sis = make([]int32, len(g.ServiceKeys))
			for i, k := range g.ServiceKeys {
				si, ok := d.svcIndex[k]
				if !ok {
					return &DataError{File: where, Msg: fmt.Sprintf("responsibility group: unknown service %q", k)}
				}
				sis[i] = si
			}
			lists[id] = sis
		}
		if len(run) > 0 && (len(sis) != len(runList) || &sis[0] != &runList[0]) {
			flush()
		}
		runList = sis
		v := d.assignment(o, g.Role, g.operator)
		for _, ak := range g.AreaKeys {
			li, node, err := d.areaNode(ak)
			if err != nil {
				return &DataError{File: where, Msg: "responsibility group", Err: err}
			}
			run = append(run, entry{li, node, v})
		}
	}
	flush()
	for _, r := range src.Responsibilities {
		where := r.origin
		if !knownRole(r.Role) {
			// Build takes Sources that no parser read; a role it does not know would
			// be "not responsible" without a word.
			return &DataError{File: where, Msg: fmt.Sprintf("responsibility: rolle %q: want %s or %s", r.Role, RoleZustaendig, RoleMitwirkend)}
		}
		si, ok := d.svcIndex[r.ServiceKey]
		if !ok {
			return &DataError{File: where, Msg: fmt.Sprintf("responsibility: unknown service %q", r.ServiceKey)}
		}
		o, ok := d.offices[r.OfficeID]
		if !ok {
			return &DataError{File: where, Msg: fmt.Sprintf("responsibility: unknown office %q", r.OfficeID)}
		}
		li, node, err := d.areaNode(r.AreaKey)
		if err != nil {
			return &DataError{File: where, Msg: "responsibility", Err: err}
		}
		d.set(si, li, node, d.assignment(o, r.Role, r.operator))
	}
	for _, rule := range src.Rules {
		if err := d.applyRule(rule); err != nil {
			return err
		}
	}
	if shareTables {
		d.shareTables()
	}
	return nil
}

// shareTables lets services whose table is identical share one array. A municipality's
// office does dozens of services, so many services have the same office in every area;
// sharing keeps the table small and, more important for speed, in the CPU cache.
// Tables are never written after Build.
var shareTables = true

func (d *Directory) shareTables() {
	seen := map[uint64][][]uint32{}
	for si := range d.rt.tabs {
		for li, tab := range d.rt.tabs[si] {
			if tab == nil {
				continue
			}
			h := uint64(14695981039346656037) ^ uint64(li)
			for _, v := range tab {
				h = (h ^ uint64(v)) * 1099511628211
			}
			shared := false
			for _, t := range seen[h] {
				if slices.Equal(t, tab) {
					d.rt.tabs[si][li] = t
					shared = true
					break
				}
			}
			if !shared {
				seen[h] = append(seen[h], tab)
			}
		}
	}
}

// areaNode resolves an area key of a record (an ARS prefix, or a 12-digit ARS padded
// with zeros) to its node; a kreisfreie Stadt's records go to its Kreis (cityKey),
// as merging puts them, also in a Source no file was merged into.
func (d *Directory) areaNode(k string) (int, int32, error) {
	key, err := normalizeAreaKey(k, d.knownAreaKey)
	if err != nil {
		return 0, 0, err
	}
	key = cityKey(key, d.isCity)
	li, node, ok := d.nodes.lookup(key)
	if !ok {
		return 0, 0, fmt.Errorf("unknown area %q", k)
	}
	return li, node, nil
}

func (d *Directory) knownAreaKey(k string) bool {
	_, _, ok := d.nodes.lookup(k)
	return ok
}

// isCity reports whether kreis is the Kreis of a kreisfreie Stadt
// (kreisfreieStaedte), as Source.isCity does.
func (d *Directory) isCity(kreis string) bool { return d.cities[kreis] }

// ResponsibilitiesFor lists the responsibilities of a service, ordered by area key.
func (d *Directory) ResponsibilitiesFor(serviceKey string) []*Responsibility {
	si, ok := d.svcIndex[serviceKey]
	if !ok {
		return nil
	}
	var out []*Responsibility
	for li, tab := range d.rt.tabs[si] {
		for node, v := range tab {
			if v == 0 {
				continue
			}
			a := d.rt.assign[v&^generatedBit-1]
			out = append(out, &Responsibility{ServiceKey: serviceKey, AreaKey: d.nodes.keys[li][node], OfficeID: a.office.ID, Role: a.role})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AreaKey < out[j].AreaKey })
	return out
}
