// Package routing is amtsbote's jurisdiction directory (Zuständigkeitsfinder).
//
// It answers the two questions a portal asks all day: "which service does the citizen
// mean?" (SearchServices) and "which office is responsible for it at this place?"
// (Resolve). A Directory is an immutable snapshot built from the embedded data (every
// German municipality and postcode, Saxony's services and offices) plus operator files
// (XZuFi 2.2 subset, YAML overlay). A Store holds the current snapshot and swaps it
// atomically on reload, so a request never sees a half-loaded directory.
//
// Places are found the way citizens write them: one name index (names.go, places.go)
// holds every official name with its everyday forms (each part of a bilingual name,
// without ", Stadt" or "(Saale)", with or without umlauts), and resolution and search
// both use it, so they cannot disagree. Responsibilities live in a table of small
// integers (resptable.go) because a nationwide directory has tens of millions of them.
//
// German domain words map to Go names as follows: Gebiet = Area, Leistung = Service,
// Organisationseinheit = Office, Zuständigkeit = Responsibility, Zustellkanal = Channel.
package routing

import (
	"errors"
	"strings"

	"github.com/amtsbote/amtsbote/channel"
)

// Level is the place of an Area in the ARS hierarchy. Its value is the number of ARS
// digits that identify the area, so a key's length gives its level.
type Level int

// ARS levels. Regierungsbezirk exists in the key even where the state has none today.
const (
	LevelLand             Level = 2
	LevelRegierungsbezirk Level = 3
	LevelKreis            Level = 5
	LevelGemeindeverband  Level = 9
	LevelGemeinde         Level = 12
)

// levels lists the ARS levels from the most specific to the most general: the order in
// which the resolver climbs.
var levels = [...]Level{LevelGemeinde, LevelGemeindeverband, LevelKreis, LevelRegierungsbezirk, LevelLand}

// String returns the German name of the level, as used in the API.
func (l Level) String() string {
	switch l {
	case LevelLand:
		return "Land"
	case LevelRegierungsbezirk:
		return "Regierungsbezirk"
	case LevelKreis:
		return "Kreis"
	case LevelGemeindeverband:
		return "Gemeindeverband"
	case LevelGemeinde:
		return "Gemeinde"
	}
	return "unknown"
}

// Area is a Gebiet: a node of the ARS hierarchy.
type Area struct {
	// Key is the ARS prefix that identifies the area at its level (2, 3, 5, 9 or 12
	// digits). A kreisfreie Stadt exists twice: as Kreis "14612" and as Gemeinde
	// "146120000000".
	Key   string
	ARS   string // Key padded with zeros to 12 digits, the form FIT-Connect uses
	AGS   string // 8-digit Amtlicher Gemeindeschlüssel; only for municipalities
	Name  string // official name, e.g. "Dresden, Stadt"
	Level Level
	// Parent is the next existing area up the hierarchy (Regierungsbezirk or
	// Gemeindeverband may be skipped where they do not exist).
	Parent     *Area
	Postcodes  []string // postcodes touching the municipality, sorted
	Population int      // from the Gemeindeverzeichnis (a higher area: the sum of its municipalities); ranks candidates
	// Type is the kind of area in words, as the Gemeindeverzeichnis says it:
	// "Landkreis", "Kreis", "kreisfreie Stadt", "Stadt", "Gemeinde", "Markt",
	// "gemeindefreies Gebiet", ...; empty when unknown.
	Type string
	// OtherNames are names people use for the municipality that are not its own: a
	// city state's Bezirke and Ortsteile ("Spandau", "Berlin-Spandau"), the
	// municipalities merged into it ("Ostrau" for Jahnatal). They find it like its
	// name does, so a name one of them shares with another municipality is
	// ambiguous ("Harburg": Harburg (Schwaben), or Hamburg's Bezirk).
	OtherNames []string
	// OtherKeys are official 12-digit keys of the Regionalschlüssel list that name a
	// part of the municipality, no municipality: the Bezirke and Ortsteile of
	// Berlin, Hamburg and Bremen ("110050005005", Spandau). They find it as its own
	// key does (Directory.Area, Place).
	OtherKeys []string

	// Filled by Build; a snapshot owns its areas.
	owner     *placeSet
	chain     [len(levels)]int32 // node index at each level of levels, -1 where none
	class     placeClass
	alsoKreis *Area // a Kreis elsewhere (or around it) with the same name
	alsoLand  *Area // a Land with the same name
	note      string
}

// Land returns the two-digit state prefix.
func (a *Area) Land() string { return a.Key[:2] }

// Within reports whether a is k or lies inside it: area keys are hierarchical,
// each the prefix of the keys below it.
func (a *Area) Within(k *Area) bool { return strings.HasPrefix(a.Key, k.Key) }

// ShortName drops the official suffix (", Stadt", ", Hansestadt", ...), which is how
// people write a town's name.
func (a *Area) ShortName() string { return shortName(a.Name) }

func shortName(name string) string {
	if i := strings.IndexByte(name, ','); i > 0 {
		return strings.TrimSpace(name[:i])
	}
	return name
}

// Service is a Leistung of the LeiKa catalogue.
type Service struct {
	Key        string   // 14-digit LeiKa key
	Name       string   // Leistungsbezeichnung
	Synonyms   []string // other words citizens use
	Lebenslage []string // life situations the portal groups services by
	ShortText  string   // Kurztext
	Texts      Texts    // the text modules the portal shows
	Source     string   // where the LeiKa key was verified (citation)
}

// Texts are the Textmodule of a Leistung that the portal shows.
type Texts struct {
	Voraussetzungen         string `json:"voraussetzungen,omitempty"`
	Verfahrensablauf        string `json:"verfahrensablauf,omitempty"`
	ErforderlicheUnterlagen string `json:"erforderlicheUnterlagen,omitempty"`
	Fristen                 string `json:"fristen,omitempty"`
	Kosten                  string `json:"kosten,omitempty"`
	Rechtsgrundlage         string `json:"rechtsgrundlage,omitempty"`
}

// Address is a postal address: a Hausanschrift (Street) or a Postanschrift (Postfach).
type Address struct {
	Street   string // street and number; empty for a Postfach address
	Postfach string // e.g. "12 00 20"
	Postcode string
	City     string
}

// IsZero reports whether no part of the address is set.
func (a Address) IsZero() bool { return a == Address{} }

// Contact is how a person reaches the office.
type Contact struct {
	Phone string
	Email string
	Web   string
}

// Channel is one delivery channel of an office, with its e-government maturity level.
type Channel struct {
	Kind     string // "webhook", "api", "xta", "transfer", "mailbox", "peer"
	Level    int    // 1 mailbox, 2 transfer, 3 webhook and api, 4 xta; 0 for peer
	Endpoint string // URL, folder, XTA identifier or mailbox name
}

// Channel kinds and the maturity level each one stands for; the names live in
// package channel.
const (
	KindWebhook  = channel.Webhook
	KindAPI      = channel.API
	KindXTA      = channel.XTA
	KindTransfer = channel.Transfer
	KindMailbox  = channel.Mailbox
	KindPeer     = channel.Peer
)

var kindLevel = map[string]int{KindMailbox: channel.Level(KindMailbox), KindTransfer: channel.Level(KindTransfer), KindWebhook: channel.Level(KindWebhook), KindAPI: channel.Level(KindAPI), KindXTA: channel.Level(KindXTA)}

// Office is an Organisationseinheit (a zuständige Stelle).
type Office struct {
	ID         string
	Name       string
	ParentID   string
	Street     Address // Hausanschrift
	Postal     Address // Postanschrift, usually a Postfach
	Contact    Contact
	Channels   []Channel // preferred first
	CertRefs   []string  // references to the office's certificates (trust store names)
	Sample     bool      // generated or invented sample data, not a real office record
	SourceFile string    // where the record came from, for error messages
}

// Responsibility is a Zuständigkeit: a service in an area is handled by an office.
type Responsibility struct {
	ServiceKey string
	AreaKey    string // ARS prefix at the area's level
	OfficeID   string
	Role       string // RoleZustaendig or RoleMitwirkend

	origin   string // file:line of the record, for error messages; "" when unknown
	operator bool   // from an operator's file, not the built-in data (see fromOperator)
}

// Peer is the gateway of another state; places there are routed to it.
type Peer struct {
	Land      string // two-digit ARS prefix
	Name      string
	GatewayID string
	BaseURL   string
	Sample    bool
}

// Route is the answer to "who is responsible for this service at this place?".
type Route struct {
	Service  *Service
	Area     *Area     // the area the place resolved to
	Office   *Office   // nil when Peer is set
	Channels []Channel // preferred first (highest maturity first; mailbox last)
	Peer     *Peer     // set when the place is in another state
	Role     string
	// MatchedArea is the area the responsibility was found at, after climbing.
	MatchedArea *Area
	// AlsoKreis is set when Area is a municipality whose name a Kreis also bears
	// ("Bautzen": the town, and Landkreis Bautzen). The bare name means the
	// municipality; "Landkreis Bautzen" names the Kreis. Note says so in words.
	AlsoKreis *Area
	// Note tells the citizen about another area with the same name (a Kreis or a
	// Land), in German, ready to show; empty when there is none.
	Note string
	// ServiceUnknown: this directory does not know the service (a LeiKa key of
	// another state's catalogue), and the route goes to the peer of the state the
	// place lies in, whose directory must know it (Resolve, rule 1). Service then
	// has the key only, no name. Such a route is taken only where a peer gateway
	// can be asked; elsewhere the answer is ErrUnknownService, as for a home-land
	// place (intake.Pipeline.Destination).
	ServiceUnknown bool
}

// Errors at the package boundary; check them with errors.Is.
var (
	ErrUnknownService      = errors.New("routing: unknown service")
	ErrUnknownPlace        = errors.New("routing: unknown place")
	ErrNoResponsibleOffice = errors.New("routing: no responsible office")
	ErrAmbiguousPlace      = errors.New("routing: ambiguous place")
	ErrInvalidQuery        = errors.New("routing: invalid query")
	// ErrInvalidData marks a directory file that cannot be loaded; the error names the
	// file and line (see DataError).
	ErrInvalidData = errors.New("routing: invalid directory data")
)

// AmbiguousPlaceError lists the places a postcode or name could mean, so the caller
// can let the citizen choose instead of guessing.
type AmbiguousPlaceError struct {
	Query      string
	Candidates []*Area // largest first
	// Also lists Kreise or Länder with the same name. They are not candidates (a bare
	// name means a municipality) but a list shown to the citizen may offer them.
	Also []*Area
}

func (e *AmbiguousPlaceError) Error() string {
	// A Kreis or Land too coarse to route lists hundreds of municipalities; the message
	// (logs, a peer's answer) names the first ones, the list is in Candidates.
	const shown = 20
	names := make([]string, 0, min(len(e.Candidates), shown+1))
	for i, c := range e.Candidates {
		if i == shown {
			names = append(names, "and "+itoa(len(e.Candidates)-shown)+" more")
			break
		}
		names = append(names, c.Name+" ("+c.ARS+")")
	}
	return "routing: ambiguous place " + quote(e.Query) + ": " + strings.Join(names, "; ")
}

// Is makes errors.Is(err, ErrAmbiguousPlace) true.
func (e *AmbiguousPlaceError) Is(target error) bool { return target == ErrAmbiguousPlace }

// AmbiguousServiceError lists the services a name could mean (used by lookup).
type AmbiguousServiceError struct {
	Query      string
	Candidates []*Service
}

func (e *AmbiguousServiceError) Error() string {
	names := make([]string, 0, len(e.Candidates))
	for _, c := range e.Candidates {
		names = append(names, c.Name+" ("+c.Key+")")
	}
	return "routing: ambiguous service " + quote(e.Query) + ": " + strings.Join(names, "; ")
}

// Is makes errors.Is(err, ErrUnknownService) true: no single service was identified.
func (e *AmbiguousServiceError) Is(target error) bool { return target == ErrUnknownService }

// DataError is a problem in a directory file, located by file and line.
type DataError struct {
	File string
	Line int // 0 when unknown
	Msg  string
	Err  error
}

func (e *DataError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + itoa(e.Line)
	}
	if loc == "" {
		loc = "directory"
	}
	if e.Err != nil {
		return loc + ": " + e.Msg + ": " + e.Err.Error()
	}
	return loc + ": " + e.Msg
}

// Unwrap lets errors.Is find ErrInvalidData and the cause.
func (e *DataError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidData, e.Err}
	}
	return []error{ErrInvalidData}
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return "\"" + strings.ReplaceAll(s, "\"", "'") + "\""
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
