package api

// The directory's endpoints: place and service search for the portal's search box,
// service and office details, the gateway's own lookup (/v1/resolve) and route lookup
// shaped like the FIT-Connect Routing API 2.0.0 (GET /v1/routes, contract-tested
// against testdata/routing-api-2.0.0.yaml).

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/wire"
)

// directory serves the jurisdiction directory.
type directory struct {
	store *routing.Store
	fail  func(w http.ResponseWriter, r *http.Request, err error)
	// sign signs the addressing information of a route (FIT-Connect's
	// destinationSignature, a compact JWS): HS256 under a key made at start, so it is
	// well-formed but only this process can verify it.
	sign func(payload []byte) (string, error)
	// destination is intake's decision on a route (intake.Pipeline.Destination).
	// nil: no intake; every route is taken, and the directory's peer entry is
	// named.
	destination func(*routing.Route) (intake.Destination, error)
}

// admitted is intake's decision on the route, asked once per route: why intake
// would refuse a package on it, or else the configured peer gateway it goes to
// for another state's office (routeOf names it), nil for an office of this
// gateway or with no intake. The directory answered routes intake refuses
// (another state's office that no configured peer gateway serves): the portal
// was told where to send a package that was then refused with 422
// no-responsible-office.
func (h *directory) admitted(rt *routing.Route) (*intake.Destination, error) {
	if h.destination == nil {
		return nil, nil
	}
	d, err := h.destination(rt)
	if err != nil || d.Peer == nil {
		return nil, err
	}
	return &d, nil
}

// taken is admitted as ResolveServiceWith asks it; nil with no intake.
func (h *directory) taken() func(*routing.Route) error {
	if h.destination == nil {
		return nil
	}
	return func(rt *routing.Route) error {
		_, err := h.admitted(rt)
		return err
	}
}

// admittedRoute is a route intake takes, with the peer gateway it goes to
// (admitted).
type admittedRoute struct {
	rt  *routing.Route
	via *intake.Destination
}

// mountDirectory registers the directory endpoints. Every request reads one snapshot
// from the store, so a reload in the middle of a request never mixes two directories.
// Errors go through the API's one error table (ProblemFor).
func mountDirectory(r chi.Router, store *routing.Store, s *Server) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	h := &directory{store: store, fail: s.fail, sign: hmacSigner(key)}
	if pl := s.opt.Pipeline; pl != nil {
		h.destination = pl.Destination
	}
	r.Get("/v1/places", h.places)
	r.Get("/v1/services", h.services)
	r.Get("/v1/services/{leikaKey}", h.service)
	r.Get("/v1/offices/{id}", h.office)
	r.Get("/v1/routes", h.routes)
	r.Get("/v1/resolve", h.resolve)
}

// destinationOrigin is reported as every route's origin.
const destinationOrigin = "amtsbote"

// writeCompactJSON writes the directory's answers without indentation (search
// results are read by programs and can be long).
func writeCompactJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func dirBadRequest(w http.ResponseWriter, r *http.Request, format string, args ...any) {
	problem.Write(w, r, problem.New(http.StatusBadRequest, problem.TypeMalformed, fmt.Sprintf(format, args...)))
}

// intParam reads an optional integer query parameter within [lo, hi].
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s must be an integer from %d to %d", name, lo, hi)
	}
	return n, nil
}

// placeJSON is a place as the directory API shows it (wire.Place, shared with
// the portal client).
type placeJSON = wire.Place

func placeOf(a *routing.Area, postcode string) placeJSON {
	p := placeJSON{ARS: a.ARS, AGS: a.AGS, Name: a.Name, Level: a.Level.String(), Postcode: postcode, Land: a.Land(), Population: a.Population}
	for x := a.Parent; x != nil; x = x.Parent {
		if x.Level == routing.LevelKreis {
			p.Kreis = x.Name
		}
	}
	return p
}

func (h *directory) places(w http.ResponseWriter, r *http.Request) {
	if !singleValued(w, r, "q", "limit") {
		return
	}
	q := r.URL.Query().Get("q")
	if strings.TrimSpace(q) == "" {
		dirBadRequest(w, r, "query parameter q is required")
		return
	}
	limit, ok := queryLimit(w, r, 10, 500)
	if !ok {
		return
	}
	hits := h.store.Current().SearchPlaces(q, limit)
	out := make([]placeJSON, 0, len(hits))
	for _, hit := range hits {
		p := placeOf(hit.Area, hit.Postcode)
		p.Label = hit.Label
		out = append(out, p)
	}
	writeCompactJSON(w, http.StatusOK, map[string]any{"count": len(out), "places": out})
}

type serviceJSON struct {
	LeikaKey    string         `json:"leikaKey"`
	Name        string         `json:"name,omitempty"` // none for a key only peers' directories know
	Synonyms    []string       `json:"synonyms,omitempty"`
	Lebenslagen []string       `json:"lebenslagen,omitempty"`
	ShortText   string         `json:"kurztext,omitempty"`
	Texts       *routing.Texts `json:"texte,omitempty"`
	Matched     string         `json:"matched,omitempty"`
	Source      string         `json:"quelle,omitempty"`
}

func serviceOf(s *routing.Service, full bool) serviceJSON {
	j := serviceJSON{LeikaKey: s.Key, Name: s.Name, Synonyms: s.Synonyms, Lebenslagen: s.Lebenslage, ShortText: s.ShortText}
	if full {
		t := s.Texts
		j.Texts = &t
		j.Source = s.Source
	}
	return j
}

func (h *directory) services(w http.ResponseWriter, r *http.Request) {
	if !singleValued(w, r, "q", "limit") {
		return
	}
	limit, ok := queryLimit(w, r, 10, 500)
	if !ok {
		return
	}
	d := h.store.Current()
	q := r.URL.Query().Get("q")
	out := []serviceJSON{}
	if strings.TrimSpace(q) == "" {
		for _, s := range d.Services() {
			if len(out) == limit {
				break
			}
			out = append(out, serviceOf(s, false))
		}
	} else {
		for _, hit := range d.SearchServices(q, limit) {
			j := serviceOf(hit.Service, false)
			j.Matched = hit.Matched
			out = append(out, j)
		}
	}
	writeCompactJSON(w, http.StatusOK, map[string]any{"count": len(out), "services": out})
}

func (h *directory) service(w http.ResponseWriter, r *http.Request) {
	key := chi.URLParam(r, "leikaKey")
	if len(key) != 14 || strings.Trim(key, "0123456789") != "" {
		// A key that was read and breaks its rule: 422 as in /v1/resolve and at intake.
		h.fail(w, r, ProblemFor(fmt.Errorf("%w: LeiKa key %s must have 14 digits", routing.ErrInvalidQuery, strconvQuote(key))).With("field", "leikaKey"))
		return
	}
	d := h.store.Current()
	s, ok := d.Service(key)
	if !ok {
		if fw := h.forwarding(d, key); len(fw) > 0 {
			// A key only other states' catalogues have: intake forwards a package
			// for a place there (routing rule 1). A 404 "no such service" had a
			// portal refuse what the gateway accepts.
			no := false
			writeCompactJSON(w, http.StatusOK, forwardedServiceJSON{serviceJSON: serviceJSON{LeikaKey: key}, InDirectory: &no, ForwardedTo: fw})
			return
		}
		problem.Write(w, r, problem.New(http.StatusNotFound, problem.TypeUnknownService, "no service with LeiKa key "+key))
		return
	}
	writeCompactJSON(w, http.StatusOK, serviceOf(s, true))
}

// forwardedServiceJSON is GET /v1/services/{leikaKey} for a key this directory
// does not know but intake forwards for places in other states: which states'
// peer gateways get such packages, and where one serves only part of its state,
// which Kreise.
type forwardedServiceJSON struct {
	serviceJSON
	InDirectory *bool         `json:"inDirectory,omitempty"`
	ForwardedTo []forwardJSON `json:"forwardedTo"`
}

// forwardJSON is one state whose peer gateway gets packages for a key this
// directory does not know: the peer as /v1/routes names it (peerOf), and the
// ARS of the Kreise it serves where it does not serve the whole state.
type forwardJSON struct {
	peerJSON
	Areas []string `json:"areas,omitempty"`
}

// forwarding is where intake would forward a package for key, a LeiKa key this
// directory does not know: for each other state with a peer, the state when
// intake takes the route for the state as a whole (h.admitted, the same
// decision as at intake and in /v1/routes), else those of its Kreise whose
// route intake takes. A peer gateway configured for areas below a Kreis (a
// Gemeindeverband, a municipality) is not listed: asking for each of the ten
// thousand municipalities on every request is not worth that rare setup, and
// /v1/resolve answers for the place itself.
func (h *directory) forwarding(d *routing.Directory, key string) []forwardJSON {
	var out []forwardJSON
	for _, p := range d.Peers() {
		land, ok := d.Area(p.Land)
		if !ok {
			continue
		}
		rt, err := d.ResolveAreaKey(key, land)
		if err != nil {
			continue // a home land: the key is unknown there
		}
		if via, err := h.admitted(rt); err == nil {
			out = append(out, forwardJSON{peerJSON: *peerOf(rt.Peer, via)})
			continue
		}
		var f *forwardJSON
		for _, k := range d.AreasWithin(p.Land, routing.LevelKreis) {
			rt, err := d.ResolveAreaKey(key, k)
			if err != nil {
				continue
			}
			via, err := h.admitted(rt)
			if err != nil {
				continue
			}
			if f == nil {
				f = &forwardJSON{peerJSON: *peerOf(rt.Peer, via)}
			}
			f.Areas = append(f.Areas, k.ARS)
		}
		if f != nil {
			out = append(out, *f)
		}
	}
	return out
}

type addressJSON struct {
	Street   string `json:"street,omitempty"`
	Postfach string `json:"postOfficeBox,omitempty"`
	Zip      string `json:"zip,omitempty"`
	City     string `json:"city,omitempty"`
}

type channelJSON struct {
	Kind     string `json:"kind"`
	Level    int    `json:"level"`
	Endpoint string `json:"endpoint,omitempty"`
}

type officeJSON struct {
	ID       string        `json:"id"`
	Name     string        `json:"name"`
	Parent   string        `json:"parent,omitempty"`
	Address  *addressJSON  `json:"address,omitempty"`
	Postal   *addressJSON  `json:"postalAddress,omitempty"`
	Phone    string        `json:"phone,omitempty"`
	Email    string        `json:"email,omitempty"`
	Web      string        `json:"web,omitempty"`
	Channels []channelJSON `json:"channels"`
	Certs    []string      `json:"certificates,omitempty"`
	Sample   bool          `json:"sample"`
}

func addrOf(a routing.Address) *addressJSON {
	if a.IsZero() {
		return nil
	}
	return &addressJSON{Street: a.Street, Postfach: a.Postfach, Zip: a.Postcode, City: a.City}
}

func channelsOf(cs []routing.Channel) []channelJSON {
	out := make([]channelJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, channelJSON(c))
	}
	return out
}

func officeJSONOf(o *routing.Office) officeJSON {
	return officeJSON{
		ID: o.ID, Name: o.Name, Parent: o.ParentID, Address: addrOf(o.Street), Postal: addrOf(o.Postal),
		Phone: o.Contact.Phone, Email: o.Contact.Email, Web: o.Contact.Web,
		Channels: channelsOf(o.Channels), Certs: o.CertRefs, Sample: o.Sample,
	}
}

func (h *directory) office(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	o, ok := h.store.Current().Office(id)
	if !ok {
		problem.Write(w, r, problem.New(http.StatusNotFound, problem.TypeNotFound, "no office with id "+strconvQuote(id)))
		return
	}
	writeCompactJSON(w, http.StatusOK, officeJSONOf(o))
}

func strconvQuote(s string) string {
	if len(s) > 100 {
		s = s[:100]
	}
	return strconv.Quote(s)
}

// resolve is the gateway's own lookup: any place form (ARS, AGS, postcode, name), with
// the candidates of an ambiguous place in the problem document.
func (h *directory) resolve(w http.ResponseWriter, r *http.Request) {
	if !singleValued(w, r, "leikaKey", "service", "place") {
		return
	}
	q := r.URL.Query()
	d := h.store.Current()
	// The key, when given, names the service; a name beside it (for the portal's
	// logs) is not glued to it ("99050012104000Gewerbe anmelden" is no service).
	which := q.Get("leikaKey")
	if strings.TrimSpace(which) == "" {
		which = q.Get("service")
	}
	// Resolve, as intake asks: a postcode several municipalities share with one
	// office for the service is that office's, not a choice for the citizen; and a
	// key this directory does not know goes to another state's peer, as at intake.
	rt, err := d.ResolveServiceWith(which, q.Get("place"), h.taken())
	var via *intake.Destination
	if err == nil {
		// What intake would answer a package for this place.
		via, err = h.admitted(rt)
	}
	if errors.Is(err, routing.ErrInvalidQuery) {
		// Which input to mark: a portal's form has a service and a place, and
		// the refusal named neither (invalid-field's field, docs/problems.md).
		err = ProblemFor(err).With("field", invalidInput(d, which, q))
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeCompactJSON(w, http.StatusOK, h.routeOf(rt, via))
}

// invalidInput is the query parameter of /v1/resolve that a refusal with
// routing.ErrInvalidQuery is about: the service's (leikaKey where given, else
// service) when it cannot be read by itself, else the place. The service is
// judged first, as the resolver and intake do (docs/directory.md, rule 1), so
// with both malformed it is the service's. Asked only on that refusal.
func invalidInput(d *routing.Directory, which string, q url.Values) string {
	if _, err := d.FindService(which); errors.Is(err, routing.ErrInvalidQuery) {
		if strings.TrimSpace(q.Get("leikaKey")) != "" {
			return "leikaKey"
		}
		return "service"
	}
	return "place"
}

// validLeika applies the FIT-Connect pattern ^99\d{12}$.
func validLeika(s string) bool { return len(s) == 14 && strings.HasPrefix(s, "99") && digits(s) }

func digits(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }

// routes answers GET /v1/routes like the FIT-Connect Routing API: leikaKey plus
// exactly one of ars, ags, areaId; offset and limit page the result.
func (h *directory) routes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key := q.Get("leikaKey")
	if !validLeika(key) {
		dirBadRequest(w, r, "leikaKey is required and must match ^99\\d{12}$")
		return
	}
	var place string // for the resolver: an area key or an AGS
	set := 0
	if v := q.Get("ars"); v != "" {
		set++
		if !digits(v) || !oneOf(len(v), 2, 3, 5, 9, 12) {
			dirBadRequest(w, r, "ars must have 2, 3, 5, 9 or 12 digits")
			return
		}
		place = v
	}
	if v := q.Get("ags"); v != "" {
		set++
		if !digits(v) || !oneOf(len(v), 2, 3, 5, 8) {
			dirBadRequest(w, r, "ags must have 2, 3, 5 or 8 digits")
			return
		}
		place = v
	}
	if v := q.Get("areaId"); v != "" {
		set++
		if !digits(v) {
			dirBadRequest(w, r, "areaId must be digits")
			return
		}
		place = v
	}
	if set != 1 {
		dirBadRequest(w, r, "exactly one of ars, ags or areaId is required")
		return
	}
	offset, err := intParam(r, "offset", 0, 0, 1<<30)
	if err != nil {
		dirBadRequest(w, r, "%v", err)
		return
	}
	limit, err := intParam(r, "limit", 100, 1, 500)
	if err != nil {
		dirBadRequest(w, r, "%v", err)
		return
	}
	d := h.store.Current()
	svc, known := d.Service(key)
	// ARS, AGS prefixes and areaId are area keys, never postcodes or names.
	var area *routing.Area
	if len(place) == 8 {
		area, err = d.Place(place)
	} else if a, ok := d.Area(place); ok {
		area = a
	} else {
		err = fmt.Errorf("%w: %s", routing.ErrUnknownPlace, place)
	}
	if err != nil && !known {
		// The key is judged first, as at intake.
		err = fmt.Errorf("%w: %s", routing.ErrUnknownService, key)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var all []admittedRoute
	if known {
		all, err = h.areaRoutes(d, svc, area)
	} else {
		// A key this directory does not know, in another state's area: that state's
		// peer's route, whose directory must know the service (routing rule 1),
		// where intake would take the package; otherwise intake's answer, 422
		// unknown-service — not FIT-Connect's empty result, which says that nobody
		// serves the area, when the key itself is in question.
		var rt *routing.Route
		var via *intake.Destination
		if rt, err = d.ResolveAreaKey(key, area); err == nil {
			via, err = h.admitted(rt)
		}
		all = []admittedRoute{{rt, via}}
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	page := all[min(offset, len(all)):min(len(all), offset+limit)]
	routes := make([]routeJSON, 0, len(page))
	for _, a := range page {
		routes = append(routes, h.routeOf(a.rt, a.via))
	}
	total := len(all)
	writeCompactJSON(w, http.StatusOK, routeResult{Count: len(routes), Offset: offset, TotalCount: total, Routes: routes})
}

// areaRoutes are the routes of a service at an area for /v1/routes: the area's
// own, or, where its municipalities have different offices for the service (a
// Kreis for a municipal service, a Kreis where one town does the task itself), the
// route of each municipality, largest first. A route intake would refuse
// (h.admitted) is left out, as an area nobody serves: this gateway cannot deliver
// there.
func (h *directory) areaRoutes(d *routing.Directory, svc *routing.Service, area *routing.Area) ([]admittedRoute, error) {
	var all []admittedRoute
	rt, err := d.ResolveArea(svc, area)
	var amb *routing.AmbiguousPlaceError
	switch {
	case err == nil:
		if via, err := h.admitted(rt); err == nil {
			all = append(all, admittedRoute{rt, via})
		}
	case errors.As(err, &amb):
		for _, a := range amb.Candidates {
			rt, err := d.ResolveArea(svc, a)
			if errors.Is(err, routing.ErrNoResponsibleOffice) {
				continue // a municipality nobody serves has no route
			} else if err != nil {
				return nil, err
			}
			if via, err := h.admitted(rt); err == nil {
				all = append(all, admittedRoute{rt, via})
			}
		}
	case errors.Is(err, routing.ErrNoResponsibleOffice):
		// FIT-Connect answers an unserved area with an empty result, not an error.
	default:
		return nil, err
	}
	return all, nil
}

func oneOf(n int, xs ...int) bool {
	for _, x := range xs {
		if n == x {
			return true
		}
	}
	return false
}

type routeResult struct {
	Count      int         `json:"count"`
	Offset     int         `json:"offset"`
	TotalCount int         `json:"totalCount"`
	Routes     []routeJSON `json:"routes"`
}

type descJSON struct {
	Description map[string]string `json:"description"`
}

type postBoxJSON struct {
	PostOfficeBox string `json:"postOfficeBox"`
	Zip           string `json:"zip,omitempty"`
	City          string `json:"city,omitempty"`
}

// routeJSON is the FIT-Connect route object plus amtsbote's own members (office,
// channels, peer, area), which the FIT-Connect schema allows as extra properties.
type routeJSON struct {
	DestinationID        string       `json:"destinationId"`
	DestinationSignature string       `json:"destinationSignature"`
	DestinationName      string       `json:"destinationName"`
	DestinationShortName string       `json:"destinationShortName,omitempty"`
	Address              *addressJSON `json:"address,omitempty"`
	PostOfficeBox        *postBoxJSON `json:"postOfficeBox,omitempty"`
	RequiredDocuments    *descJSON    `json:"requiredDocuments,omitempty"`
	LegalBasis           *descJSON    `json:"legalBasis,omitempty"`
	Deadline             *descJSON    `json:"deadline,omitempty"`
	FurtherInformation   *descJSON    `json:"furtherInformation,omitempty"`
	Origin               string       `json:"origin"`

	// Note tells about another area of the same name (a Kreis that bears the
	// municipality's name); AlsoKreis is that Kreis.
	Note      string     `json:"note,omitempty"`
	AlsoKreis *placeJSON `json:"alsoKreis,omitempty"`

	LeikaKey string        `json:"leikaKey"`
	Service  string        `json:"serviceName,omitempty"` // none for a service only a peer's directory knows
	Area     placeJSON     `json:"area"`
	Matched  string        `json:"matchedArs,omitempty"`
	Role     string        `json:"role"`
	OfficeID string        `json:"officeId,omitempty"`
	Sample   bool          `json:"sample,omitempty"`
	Channels []channelJSON `json:"channels"`
	Peer     *peerJSON     `json:"peer,omitempty"`
}

type peerJSON struct {
	Land      string `json:"land"`
	Name      string `json:"name,omitempty"`
	GatewayID string `json:"gatewayId"`
	BaseURL   string `json:"baseUrl,omitempty"` // none for a configured peer gateway (routeOf)
	Sample    bool   `json:"sample,omitempty"`
}

// peerOf is how the directory API names the peer gateway of a route to
// another state: via, the configured peer gateway intake sends the package to
// (admitted), where there is one, else the directory's peer entry p. The
// package goes to the configured gateway, not to the directory's entry (at a
// Bavarian gateway the built-in sample gateway-14 for Saxony): the answer named
// a gateway the package never reached. No URL then: the configured one is the
// operator's federation endpoint, configuration a portal never calls, not
// public directory data; the directory entry's is another gateway's.
func peerOf(p *routing.Peer, via *intake.Destination) *peerJSON {
	if via != nil && via.Peer != nil {
		return &peerJSON{Land: p.Land, Name: via.Peer.Name, GatewayID: via.Peer.ID}
	}
	return &peerJSON{Land: p.Land, Name: p.Name, GatewayID: p.GatewayID, BaseURL: p.BaseURL, Sample: p.Sample}
}

func desc(s string) *descJSON {
	if s == "" {
		return nil
	}
	return &descJSON{Description: map[string]string{"de": s}}
}

// routeOf is the JSON of a route; via is the configured peer gateway intake
// sends its packages to (admitted), nil for none.
func (h *directory) routeOf(rt *routing.Route, via *intake.Destination) routeJSON {
	j := routeJSON{
		LeikaKey: rt.Service.Key, Service: rt.Service.Name, Area: placeOf(rt.Area, ""),
		Role: rt.Role, Channels: channelsOf(rt.Channels), Origin: destinationOrigin,
		RequiredDocuments:  desc(rt.Service.Texts.ErforderlicheUnterlagen),
		LegalBasis:         desc(rt.Service.Texts.Rechtsgrundlage),
		Deadline:           desc(rt.Service.Texts.Fristen),
		FurtherInformation: desc(rt.Service.Texts.Verfahrensablauf),
	}
	if rt.MatchedArea != nil {
		j.Matched = rt.MatchedArea.ARS
	}
	j.Note = rt.Note
	if rt.AlsoKreis != nil {
		k := placeOf(rt.AlsoKreis, "")
		j.AlsoKreis = &k
	}
	if rt.Office != nil {
		o := rt.Office
		j.DestinationID = wire.OfficeDestinationID(o.ID)
		j.DestinationName = o.Name
		j.OfficeID = o.ID
		j.Sample = o.Sample
		if !o.Street.IsZero() {
			j.Address = addrOf(o.Street)
		}
		if o.Postal.Postfach != "" {
			j.PostOfficeBox = &postBoxJSON{PostOfficeBox: "Postfach " + o.Postal.Postfach, Zip: o.Postal.Postcode, City: o.Postal.City}
		}
	} else if rt.Peer != nil {
		p := rt.Peer
		j.DestinationID = wire.PeerDestinationID(p.Land)
		j.DestinationName = "Gateway " + p.Name
		j.Peer = peerOf(p, via)
		j.Sample = j.Peer.Sample
		if via != nil {
			// Named as the receipt names it (see peerOf for why not the directory's
			// entry); no URL in the peer channel's endpoint either.
			j.DestinationName = via.OfficeName
			for i := range j.Channels {
				if j.Channels[i].Kind == routing.KindPeer {
					j.Channels[i].Endpoint = ""
				}
			}
		}
	}
	payload, _ := json.Marshal(map[string]any{
		"destinationId": j.DestinationID,
		"leistungID":    "urn:de:fim:leika:leistung:" + rt.Service.Key,
		"gebietID":      "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs:" + rt.Area.ARS,
		"channels":      j.Channels,
	})
	if sig, err := h.sign(payload); err == nil {
		j.DestinationSignature = sig
	}
	return j
}

// hmacSigner makes compact JWS (HS256) over the payload.
func hmacSigner(key []byte) func([]byte) (string, error) {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	return func(payload []byte) (string, error) {
		body := header + "." + base64.RawURLEncoding.EncodeToString(payload)
		m := hmac.New(sha256.New, key)
		m.Write([]byte(body))
		return body + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
	}
}
