package federation

import (
	"net/http"
	"net/netip"
	"testing"
	"time"
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
		a, ok := clientAddr(r, proxies)
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
