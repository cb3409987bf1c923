package clientaddr

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestOf(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"a connection of no proxy is the client, whatever it writes", "192.0.2.7:4711", []string{"198.51.100.1"}, "192.0.2.7"},
		{"behind the proxy, the address it recorded", "10.1.2.3:4711", []string{"198.51.100.1"}, "198.51.100.1"},
		{"what the client wrote itself, further left, is not believed", "10.1.2.3:4711", []string{"203.0.113.9, 198.51.100.1"}, "198.51.100.1"},
		{"two proxies, in two header lines", "10.1.2.3:4711", []string{"198.51.100.1", "10.9.9.9"}, "198.51.100.1"},
		{"a hop no proxy would write stops the walk", "10.1.2.3:4711", []string{"198.51.100.1, nonsense"}, "10.1.2.3"},
		{"behind the proxy without the header, the proxy", "10.1.2.3:4711", nil, "10.1.2.3"},
		// Azure's Application Gateway records the client's port too.
		{"a hop with its port", "10.1.2.3:4711", []string{"198.51.100.1:51234"}, "198.51.100.1"},
		{"an IPv6 hop with its port", "10.1.2.3:4711", []string{"[2001:db8::1]:51234"}, "2001:db8::1"},
		{"an IPv4-mapped address is given as IPv4", "[::ffff:192.0.2.7]:4711", nil, "192.0.2.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			a, ok := Of(r, proxies)
			if !ok || a.String() != tc.want {
				t.Errorf("Of = %v, %v; want %s", a, ok, tc.want)
			}
		})
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "@" // a unix socket's
	if a, ok := Of(r, proxies); ok {
		t.Errorf("Of of no IP address = %v, true; want false", a)
	}
}
