package routing

import (
	"fmt"
	"strings"
)

// Resolve finds the office responsible for a service at a place.
//
// place is read by its form: 12 digits = ARS (a municipality, or a higher area padded
// with zeros), 8 digits = AGS, 5 digits = postcode, 2/3/9 digits = an ARS prefix,
// "01067 Dresden" = postcode and name, anything else = a place name. The resolver
// climbs the ARS hierarchy (Gemeinde, Gemeindeverband, Kreis, Regierungsbezirk, Land)
// until it finds a responsibility. A place in another state goes to that state's peer.
//
// Errors: ErrInvalidQuery (malformed input), ErrUnknownService, ErrUnknownPlace,
// *AmbiguousPlaceError (errors.Is ErrAmbiguousPlace; lists the candidates) and
// ErrNoResponsibleOffice.
func (d *Directory) Resolve(leikaKey, place string) (*Route, error) {
	leikaKey = strings.TrimSpace(leikaKey)
	if len(leikaKey) != 14 || !isDigits(leikaKey) {
		return nil, fmt.Errorf("%w: LeiKa key %s must have 14 digits", ErrInvalidQuery, quote(leikaKey))
	}
	svc, ok := d.services[leikaKey]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownService, leikaKey)
	}
	area, err := d.Place(place)
	if err != nil {
		return nil, err
	}
	return d.route(svc, area)
}

// ResolveArea is Resolve for an area already chosen (e.g. from an ambiguity list).
func (d *Directory) ResolveArea(svc *Service, area *Area) (*Route, error) {
	if svc == nil || area == nil {
		return nil, fmt.Errorf("%w: service and area are required", ErrInvalidQuery)
	}
	return d.route(svc, area)
}

func (d *Directory) route(svc *Service, area *Area) (*Route, error) {
	key := area.Key
	for _, l := range levels {
		if int(l) > len(key) {
			continue
		}
		r, ok := d.resp[respKey{svc.Key, key[:l]}]
		if !ok {
			continue
		}
		o := d.offices[r.OfficeID]
		return &Route{
			Service:     svc,
			Area:        area,
			Office:      o,
			Channels:    o.Channels,
			Role:        r.Role,
			MatchedArea: d.areas[key[:l]],
		}, nil
	}
	land := key[:2]
	if !d.home[land] {
		if p, ok := d.peers[land]; ok {
			return &Route{
				Service:     svc,
				Area:        area,
				Peer:        p,
				Channels:    []Channel{{Kind: KindPeer, Endpoint: p.BaseURL}},
				Role:        "peer",
				MatchedArea: d.areas[land],
			}, nil
		}
	}
	return nil, fmt.Errorf("%w: %s (%s) in %s %s", ErrNoResponsibleOffice, svc.Name, svc.Key, area.Name, area.ARS)
}

// Place turns what a citizen or portal gave as a place into one area, or explains why
// it cannot (ErrUnknownPlace, *AmbiguousPlaceError, ErrInvalidQuery).
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
	cs, err := d.Places(place)
	if err != nil {
		return nil, err
	}
	if len(cs) > 1 {
		return nil, &AmbiguousPlaceError{Query: strings.TrimSpace(place), Candidates: cs}
	}
	return cs[0], nil
}

// Places returns every area the input could mean, best first. It returns
// ErrUnknownPlace when there is none.
func (d *Directory) Places(place string) ([]*Area, error) {
	p := strings.TrimSpace(place)
	if p == "" {
		return nil, fmt.Errorf("%w: place is empty", ErrInvalidQuery)
	}
	if len(p) > 200 {
		return nil, fmt.Errorf("%w: place is too long", ErrInvalidQuery)
	}
	if isDigits(p) {
		var found []*Area
		switch len(p) {
		case 12, 2, 3, 9:
			if a, ok := d.Area(p); ok {
				found = []*Area{a}
			}
		case 8:
			if a, ok := d.byAGS[p]; ok {
				found = []*Area{a}
			}
		case 5:
			found = d.byPLZ[p]
		default:
			return nil, fmt.Errorf("%w: %s: a number must be an ARS (12 digits), AGS (8) or postcode (5)", ErrInvalidQuery, quote(p))
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%w: %s", ErrUnknownPlace, p)
		}
		return found, nil
	}
	// "01067 Dresden": a postcode narrowed by a name, as written on an envelope.
	if len(p) > 6 && isDigits(p[:5]) && (p[5] == ' ' || p[5] == ',') {
		name := fold(p[6:])
		var found []*Area
		for _, a := range d.byPLZ[p[:5]] {
			if fold(a.Name) == name || fold(a.ShortName()) == name {
				found = append(found, a)
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%w: %s", ErrUnknownPlace, p)
		}
		return found, nil
	}
	n := fold(p)
	if found := d.byName[n]; len(found) > 0 {
		return found, nil
	}
	if found := d.upByName[n]; len(found) > 0 {
		return found, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownPlace, quote(p))
}

// FindService identifies a service from a LeiKa key or from a name or synonym as a
// person types it. Several equally good matches give *AmbiguousServiceError.
func (d *Directory) FindService(q string) (*Service, error) {
	q = strings.TrimSpace(q)
	if q == "" {
		return nil, fmt.Errorf("%w: service is empty", ErrInvalidQuery)
	}
	if isDigits(q) {
		if s, ok := d.services[q]; ok {
			return s, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrUnknownService, quote(q))
	}
	hits := d.SearchServices(q, 10)
	if len(hits) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrUnknownService, quote(q))
	}
	if hits[0].Exact || len(hits) == 1 {
		return hits[0].Service, nil
	}
	cs := make([]*Service, len(hits))
	for i, h := range hits {
		cs[i] = h.Service
	}
	return nil, &AmbiguousServiceError{Query: q, Candidates: cs}
}
