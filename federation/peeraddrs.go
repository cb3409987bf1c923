package federation

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/internal/clientaddr"
	"github.com/amtsbote/amtsbote/internal/httpbody"
)

// Memory kept for peers. A body is read whole before its signature can be
// checked, and the endpoint is open to anyone: a sender of junk that sent the
// budget's bytes (two envelopes of the largest size, 86 MiB at the defaults)
// and then stalled held all of it for http.read_timeout, and every peer's
// forwarding was answered 503 meanwhile, again every read timeout for as long
// as the junk came (an audit, 2026-12-07). The signer is known only at the
// body's end (the signature follows the package), so nothing of the body can
// tell a peer from junk before it is held. Its source address can: a TCP
// connection's cannot be made up, and a peer forwards and asks from the same
// few addresses, every poll interval while it has packages here. So an
// address a trusted peer's signed document came from is remembered, and its
// bodies take their memory from a larger budget whose rest (PeerRoom) the
// bodies of every other address cannot reach (httpbody.Budget.Within).

// DefaultPeerAddrTTL is how long an address is remembered after the last signed
// document of a peer that came from it: a peer with packages here asks at
// least daily for 90 days after their decision.
const DefaultPeerAddrTTL = 7 * 24 * time.Hour

// maxPeerAddrs bounds the addresses remembered: only a trusted peer's signed
// document adds one, so this holds every address of every peer many times over.
const maxPeerAddrs = 1024

type peerAddrs struct {
	mu   sync.Mutex
	seen map[netip.Addr]time.Time
}

// learn remembers a, seen now; it reports whether a was new.
func (p *peerAddrs) learn(a netip.Addr, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[netip.Addr]time.Time{}
	}
	_, known := p.seen[a]
	if !known && len(p.seen) >= maxPeerAddrs {
		var oldest netip.Addr
		var at time.Time
		for x, t := range p.seen {
			if at.IsZero() || t.Before(at) {
				oldest, at = x, t
			}
		}
		delete(p.seen, oldest)
	}
	p.seen[a] = now
	return !known
}

// known reports whether a trusted peer's signed document came from a within ttl.
func (p *peerAddrs) known(a netip.Addr, now time.Time, ttl time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.seen[a]
	if ok && now.Sub(t) > ttl {
		delete(p.seen, a)
		return false
	}
	return ok
}

func (h *Receiver) peerAddrTTL() time.Duration {
	if h.PeerAddrTTL <= 0 {
		return DefaultPeerAddrTTL
	}
	return h.PeerAddrTTL
}

// learnAddr remembers where a trusted peer's signed document came from (check).
func (h *Receiver) learnAddr(r *http.Request, peer string) {
	a, ok := clientaddr.Of(r, h.TrustedProxies)
	if !ok || clientaddr.Trusted(a, h.TrustedProxies) {
		// A trusted proxy's own address (it recorded no X-Forwarded-For, or
		// a hop that does not parse) is every client's behind it: learned,
		// junk through the proxy would take the memory kept for peers.
		return
	}
	if h.addrs.learn(a, time.Now()) {
		h.log().Info("peer gateway seen at an address: its bodies may take the memory kept for peers", "peer", peer, "address", a.String())
	}
}

// budgetFor is the budget a request's body is read within: the whole, memory
// kept for peers included, for an address a trusted peer sent from or its
// operator named (peers[].addresses); the part anyone may fill for every other.
func (h *Receiver) budgetFor(r *http.Request) *httpbody.Budget {
	public := h.bodies()
	a, ok := clientaddr.Of(r, h.TrustedProxies)
	if !ok {
		return public
	}
	for _, p := range h.PeerAddresses {
		if p.Contains(a) {
			return h.all
		}
	}
	if h.addrs.known(a, time.Now(), h.peerAddrTTL()) {
		return h.all
	}
	return public
}
