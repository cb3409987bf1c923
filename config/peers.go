package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Peer is another state's gateway in the Portalverbund (see docs/federation.md): which
// places it serves, where it listens and how its signatures are trusted.
//
//	peers:
//	  - id: amtsbote-by                 # its gateway id = the CN of its gateway certificate
//	    name: Bayern
//	    lands: ["09"]                   # two-digit ARS prefixes it serves entirely
//	    areas: ["09162"]                # or only these ARS prefixes (Kreise, municipalities)
//	    base_url: https://gateway.by.example
//	    certificate: /etc/amtsbote/peers/by.pem   # optional; else the trust store's peers/ folder
//	    clock_skew: 5m
//	    poll_interval: 10s
type Peer struct {
	// ID is the peer gateway's id, the CommonName of its gateway certificate. Packages
	// it forwards must be signed with that certificate, and its answers too.
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Lands are the states (two-digit ARS prefixes) the peer serves entirely.
	Lands []string `yaml:"lands"`
	// Areas are ARS prefixes (3, 5, 9 or 12 digits) the peer serves when it serves only
	// part of a state; the longest matching prefix wins over a whole Land.
	Areas []string `yaml:"areas"`
	// BaseURL is where the peer serves its federation endpoint (docs/federation.md).
	BaseURL string `yaml:"base_url"`
	// Certificate is a PEM file with the peer's gateway certificate. It is trusted for
	// the peer role and, more strictly, the peer must sign with exactly this
	// certificate. Empty: whatever the trust store's peers/ folder trusts with CN = ID.
	Certificate string `yaml:"certificate"`
	// ClockSkew is how far the peer's clock may be off from ours (default 5m).
	ClockSkew time.Duration `yaml:"clock_skew"`
	// PollInterval is how often the peer is asked about the packages forwarded to it
	// that it has not decided yet (default 10s).
	PollInterval time.Duration `yaml:"poll_interval"`
	// Addresses are where the peer sends from (addresses or CIDR prefixes), if
	// its operator names them: bodies from there may take the federation
	// endpoint's memory kept for peers from the start, before a signed document
	// of the peer has come from there (docs/federation.md). Optional.
	Addresses []string `yaml:"addresses,omitempty"`
}

// From returns Addresses as prefixes (a single address as a /32 or /128);
// entries that do not parse are left out (Validate reports them).
func (p Peer) From() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range p.Addresses {
		if x, err := parsePrefix(s); err == nil {
			out = append(out, x)
		}
	}
	return out
}

// Defaults of a peer.
const (
	DefaultPeerClockSkew    = 5 * time.Minute
	DefaultPeerPollInterval = 10 * time.Second
)

// Skew is the tolerated clock skew (the default when unset).
func (p Peer) Skew() time.Duration {
	if p.ClockSkew <= 0 {
		return DefaultPeerClockSkew
	}
	return p.ClockSkew
}

// Poll is the poll interval (the default when unset).
func (p Peer) Poll() time.Duration {
	if p.PollInterval <= 0 {
		return DefaultPeerPollInterval
	}
	return p.PollInterval
}

// Serves reports how well the peer serves the place with ARS ars: the length of the
// longest matching prefix (2 for a whole Land), 0 when it does not serve it.
func (p Peer) Serves(ars string) int {
	best := 0
	for _, a := range p.Areas {
		if strings.HasPrefix(ars, a) && len(a) > best {
			best = len(a)
		}
	}
	if best > 0 {
		return best
	}
	for _, l := range p.Lands {
		if strings.HasPrefix(ars, l) {
			return 2
		}
	}
	return 0
}

// ServesLand reports whether the peer serves the Land or any part of it.
func (p Peer) ServesLand(land string) bool {
	for _, l := range p.Lands {
		if l == land {
			return true
		}
	}
	for _, a := range p.Areas {
		if strings.HasPrefix(a, land) {
			return true
		}
	}
	return false
}

// validGatewayID is the wire format's GatewayID (federation/weiterleitung-v1.xsd).
func validGatewayID(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case i > 0 && (r == '.' || r == '_' || r == '-'):
		default:
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// validatePeers reports what is wrong with the peers section, naming the field.
func (c *Config) validatePeers() []error {
	var errs []error
	ids := map[string]bool{}
	lands := map[string]string{}
	areas := map[string]string{}
	for i, p := range c.Peers {
		field := fmt.Sprintf("peers[%d]", i)
		if p.ID != "" {
			field = fmt.Sprintf("peers[%d] (%s)", i, p.ID)
		}
		switch {
		case strings.TrimSpace(p.ID) == "":
			errs = append(errs, fmt.Errorf("%s.id: must not be empty (the peer gateway's id, the CN of its certificate)", field))
		case p.ID == c.GatewayID:
			errs = append(errs, fmt.Errorf("%s.id: %q is this gateway's own id", field, p.ID))
		case !validGatewayID(p.ID):
			errs = append(errs, fmt.Errorf("%s.id: %q: letters, digits, '.', '_' and '-' only, starting with a letter or digit", field, p.ID))
		case ids[p.ID]:
			errs = append(errs, fmt.Errorf("%s.id: %q is listed twice", field, p.ID))
		}
		ids[p.ID] = true
		if len(p.Lands) == 0 && len(p.Areas) == 0 {
			errs = append(errs, fmt.Errorf("%s: lands or areas must name what the peer serves", field))
		}
		for j, l := range p.Lands {
			if len(l) != 2 || !isDigits(l) || l == "00" || l > "16" {
				errs = append(errs, fmt.Errorf("%s.lands[%d]: %q is not a two-digit Land key (01-16)", field, j, l))
				continue
			}
			if other, dup := lands[l]; dup {
				errs = append(errs, fmt.Errorf("%s.lands[%d]: Land %s is served by %s already", field, j, l, other))
			}
			lands[l] = p.ID
		}
		for j, a := range p.Areas {
			switch {
			case !isDigits(a) || (len(a) != 3 && len(a) != 5 && len(a) != 9 && len(a) != 12):
				errs = append(errs, fmt.Errorf("%s.areas[%d]: %q is not an ARS prefix (3, 5, 9 or 12 digits)", field, j, a))
				continue
			case areas[a] != "":
				errs = append(errs, fmt.Errorf("%s.areas[%d]: %s is served by %s already", field, j, a, areas[a]))
			}
			areas[a] = p.ID
		}
		u, err := url.Parse(p.BaseURL)
		switch {
		case p.BaseURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, fmt.Errorf("%s.base_url: %q must be an absolute http(s) URL", field, p.BaseURL))
		case u.Scheme == "http" && !loopbackHost(u.Hostname()):
			// The envelope's signature keeps the package from being changed on
			// the way, not from being read: applications with personal data cross
			// state borders here.
			errs = append(errs, fmt.Errorf("%s.base_url: %q: a peer gateway is reached over https (plain http only on this machine, for tests)", field, p.BaseURL))
		case slices.Contains(strings.Split(u.Path, "/"), "federation"):
			// The client appends /federation/v1/…: a base_url naming the endpoint
			// itself sent every forwarding to …/federation/v1/federation/v1/…, which
			// the peer refused with 404 for good, and every package was held.
			errs = append(errs, fmt.Errorf("%s.base_url: %q: give the peer gateway's base address without /federation/v1 (it is appended), e.g. %s://%s", field, p.BaseURL, u.Scheme, u.Host))
		}
		if p.ClockSkew < 0 || p.ClockSkew > 24*time.Hour {
			errs = append(errs, fmt.Errorf("%s.clock_skew: %s is outside 0..24h", field, p.ClockSkew))
		}
		if p.PollInterval < 0 {
			errs = append(errs, fmt.Errorf("%s.poll_interval: must not be negative", field))
		}
		for j, a := range p.Addresses {
			if _, err := parsePrefix(a); err != nil {
				errs = append(errs, fmt.Errorf("%s.addresses[%d]: %q is neither an address nor a CIDR prefix", field, j, a))
			}
		}
	}
	for id := range c.Offices {
		if strings.HasPrefix(id, "peer-") && len(c.Peers) > 0 {
			errs = append(errs, fmt.Errorf("offices.%s: ids starting with peer- name the peer gateways of other states", id))
		}
	}
	// The peer offices hold what this gateway forwarded to other states: a mailbox
	// user of one would see every such application and be offered a decision on it.
	for i, u := range c.Mailbox.Users {
		if strings.HasPrefix(u.Office, "peer-") && len(c.Peers) > 0 {
			errs = append(errs, fmt.Errorf("mailbox.users[%d].office: %s names the peer gateway of another state, whose offices decide there", i, u.Office))
		}
	}
	return errs
}

// PeerByID returns the configured peer with the gateway id.
func (c *Config) PeerByID(id string) (Peer, bool) {
	for _, p := range c.Peers {
		if p.ID == id {
			return p, true
		}
	}
	return Peer{}, false
}

// PeerFor returns the configured peer serving the place with ARS ars best (the longest
// prefix), or ok=false.
func (c *Config) PeerFor(ars string) (Peer, bool) {
	best, at := 0, -1
	for i, p := range c.Peers {
		if n := p.Serves(ars); n > best {
			best, at = n, i
		}
	}
	if at < 0 {
		return Peer{}, false
	}
	return c.Peers[at], true
}

// ErrNoPeer: no configured peer serves a place.
var ErrNoPeer = errors.New("no peer gateway serves the place")

// PlainHTTPAway reports whether base is a plain http:// URL of another host
// than this one, and its host: what must not carry a secret (a token, a
// password, a backup). Loopback is this machine's own traffic; https and URLs
// that do not parse are not its concern. The gateway warns of such a
// public_url and the admin CLI refuses to send its token there; a peer's
// base_url is refused by the same rule (validatePeers).
func PlainHTTPAway(base string) (string, bool) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || loopbackHost(u.Hostname()) {
		return "", false
	}
	return u.Host, true
}

// loopbackHost reports whether host names this machine: "localhost" or a
// loopback address.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
