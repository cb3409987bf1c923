package routing

import (
	"fmt"
	"slices"
	"sort"
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
	Peers            []*Peer
	Rules            []Rule

	// HomeLands are the states this directory is authoritative for; a place elsewhere
	// goes to that state's peer when no local entry covers it.
	HomeLands []string

	// origins remembers file:line of records for error messages.
	origins map[string]string
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
// one; a responsibility for the same service, area and role replaces the old one.
func (s *Source) Merge(o *Source) {
	for _, sv := range o.Services {
		s.Services = upsert(s.Services, sv, func(x *Service) bool { return x.Key == sv.Key })
	}
	for _, of := range o.Offices {
		s.Offices = upsert(s.Offices, of, func(x *Office) bool { return x.ID == of.ID })
	}
	for _, r := range o.Responsibilities {
		s.Responsibilities = upsert(s.Responsibilities, r, func(x Responsibility) bool {
			return x.ServiceKey == r.ServiceKey && x.AreaKey == r.AreaKey && x.Role == r.Role
		})
	}
	for _, p := range o.Peers {
		s.Peers = upsert(s.Peers, p, func(x *Peer) bool { return x.Land == p.Land })
	}
	s.Rules = append(s.Rules, o.Rules...)
	for _, l := range o.HomeLands {
		if !slices.Contains(s.HomeLands, l) {
			s.HomeLands = append(s.HomeLands, l)
		}
	}
	if len(o.Areas) > 0 {
		s.Areas = append(slices.Clone(s.Areas), o.Areas...)
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

// upsert replaces the first element for which same is true with v, or appends v.
func upsert[T any](list []T, v T, same func(T) bool) []T {
	if i := slices.IndexFunc(list, same); i >= 0 {
		list[i] = v
		return list
	}
	return append(list, v)
}
