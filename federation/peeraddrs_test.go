package federation

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/internal/clientaddr"
)

// TestPeerAddressesAreTheClients: the memory kept for peers goes by the address
// a request came from, which only a trusted proxy may say otherwise: a client
// that writes X-Forwarded-For itself is not believed, and an address is
// forgotten once its time is over.
func TestPeerAddressesAreTheClients(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, c := range []struct{ remote, xff, want string }{
		{"192.0.2.7:4711", "198.51.100.1", "192.0.2.7"},                // no proxy: the header is the client's own
		{"10.1.2.3:4711", "198.51.100.1", "198.51.100.1"},              // the proxy's record
		{"10.1.2.3:4711", "203.0.113.9, 198.51.100.1", "198.51.100.1"}, // what the client wrote is further left
		{"10.1.2.3:4711", "198.51.100.1, 10.9.9.9", "198.51.100.1"},    // two proxies
		{"[::ffff:192.0.2.7]:4711", "", "192.0.2.7"},                   // one address, however written
	} {
		r := &http.Request{RemoteAddr: c.remote, Header: http.Header{}}
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		a, ok := clientaddr.Of(r, proxies)
		if !ok || a.String() != c.want {
			t.Errorf("%s with X-Forwarded-For %q: %v %v, want %s", c.remote, c.xff, a, ok, c.want)
		}
	}

	var p peerAddrs
	a := netip.MustParseAddr("192.0.2.7")
	now := time.Now()
	if !p.learn(a, now) || p.learn(a, now) {
		t.Error("learn: new the first time only")
	}
	if !p.known(a, now.Add(time.Hour), DefaultPeerAddrTTL) || p.known(netip.MustParseAddr("192.0.2.8"), now, DefaultPeerAddrTTL) {
		t.Error("known: the learned address only")
	}
	if p.known(a, now.Add(DefaultPeerAddrTTL+time.Second), DefaultPeerAddrTTL) {
		t.Error("known after its time is over")
	}
}

// TestPeerAddressIsNeverATrustedProxys: behind a trusted proxy that records
// no X-Forwarded-For (or a hop that does not parse), the address of a
// request is the proxy's own, which every client behind it shares. A
// peer's signed document from there made the proxy's address a peer's, and
// every junk body through the proxy could take the memory kept for peers.
func TestPeerAddressIsNeverATrustedProxys(t *testing.T) {
	h := &Receiver{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	viaProxy := &http.Request{RemoteAddr: "10.1.2.3:4711", Header: http.Header{}}
	h.learnAddr(viaProxy, "amtsbote-sn")
	if b := h.budgetFor(viaProxy); b != h.Bodies {
		t.Error("the proxy's own address takes the memory kept for peers after a peer's document came through it")
	}
	// The client's address the proxy recorded is learned as before.
	peer := &http.Request{RemoteAddr: "10.1.2.3:4711", Header: http.Header{"X-Forwarded-For": {"198.51.100.1"}}}
	h.learnAddr(peer, "amtsbote-sn")
	if b := h.budgetFor(peer); b == h.Bodies {
		t.Error("the peer's address behind the proxy is not a peer's")
	}
}
