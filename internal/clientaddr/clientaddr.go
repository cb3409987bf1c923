// Package clientaddr tells the address a request came from, behind the
// operator's reverse proxies too. The web mailbox's login limits and the
// federation endpoint's memory kept for peers count by it; one rule for both,
// so that what a client writes into X-Forwarded-For itself is believed by
// neither.
package clientaddr

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Of is the address r came from: the connection's, or behind a trusted proxy
// (one of proxies, http.trusted_proxies) the client's as the proxies recorded it
// in X-Forwarded-For (an address, with its port or without). The list is read
// from the right, skipping trusted proxies; the first address a trusted proxy
// did not write is the client's (what a client puts into the header itself is
// further left and never believed). A connection
// that is not a trusted proxy's is the client, whatever it sends. IPv4-mapped
// addresses are given as IPv4. false: the connection's address does not parse
// (not a TCP connection).
func Of(r *http.Request, proxies []netip.Prefix) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	if !Trusted(a, proxies) {
		return a, true
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		x, err := hop(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a proxy would not write that: stop at the last good one
		}
		a = x.Unmap()
		if !Trusted(a, proxies) {
			break
		}
	}
	return a, true
}

// Trusted reports whether a is one of proxies.
func Trusted(a netip.Addr, proxies []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// hop is one address of X-Forwarded-For: an address, or one with its port
// ("198.51.100.1:51234", "[2001:db8::1]:51234"), as Azure's Application Gateway
// records it. Refused, such a hop stopped the walk at the proxy, and every client
// behind it had the proxy's address: one login limit for all clerks, and the
// federation endpoint's memory kept for peers was never the peer's.
func hop(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err == nil {
		return a, nil
	}
	if ap, err2 := netip.ParseAddrPort(s); err2 == nil {
		return ap.Addr(), nil
	}
	return netip.Addr{}, err
}
