package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/routing/routingcli"
)

// TestDirectoryNamesTheConfiguredPeerGateway: a Bavarian gateway (homeLands
// ["09"]) whose directory has only the built-in sample peer for Saxony
// (gateway-14, a .example address) and whose configuration names Saxony's
// gateways: one for the Land, one for Kreis Leipzig. /v1/resolve, /v1/routes and
// lookup name the gateway intake sends the package to, as the record and the
// receipt name it, not sample data; they named gateway-14 with sample: true and
// its address while the package went to the configured gateway. The configured
// gateway's URL (the operator's federation endpoint) is not shown either.
func TestDirectoryNamesTheConfiguredPeerGateway(t *testing.T) {
	overlay := filepath.Join(t.TempDir(), "by.yaml")
	if err := os.WriteFile(overlay, []byte("homeLands: [\"09\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := start(t, func(c *config.Config) {
		c.Directory.Files = []string{overlay}
		c.Peers = []config.Peer{
			{ID: "gw-sn", Name: "Sachsen", Lands: []string{"14"}, BaseURL: "http://127.0.0.1:1/federation-sn"},
			{ID: "gw-le", Name: "Leipzig", Areas: []string{"14713"}, BaseURL: "http://127.0.0.1:1/federation-le"},
		}
	})
	get := func(path string) map[string]any {
		t.Helper()
		st, body := portalGet(t, f, path)
		if st != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, st, body)
		}
		return body
	}
	for _, tc := range []struct{ ars, gatewayID, name string }{
		{"146120000000", "gw-sn", "Sachsen"}, // Dresden
		{"147130000000", "gw-le", "Leipzig"}, // Leipzig: the Kreis's peer, the longer match
	} {
		t.Run(tc.gatewayID, func(t *testing.T) {
			// What intake does: the record (and the receipt) name the configured peer.
			p := paket.ExampleWith(f.key, paket.NewMessageID(), time.Now().UTC().Truncate(time.Second))
			p.Kopf.Ort = paket.Ort{ARS: tc.ars}
			res, err := f.portal.Submit(context.Background(), p)
			if err != nil || res.Status != http.StatusCreated {
				t.Fatalf("intake at %s: %v %+v; want 201 for the configured peer", tc.ars, err, res)
			}
			s, err := f.g.Broker.Submission(res.SubmissionID)
			if err != nil {
				t.Fatal(err)
			}
			if s.OfficeID != "peer-14" || !strings.Contains(s.OfficeName, tc.gatewayID) {
				t.Fatalf("recorded for %q (%s); want peer-14, %s", s.OfficeID, s.OfficeName, tc.gatewayID)
			}

			check := func(what string, route map[string]any) {
				t.Helper()
				peer, _ := route["peer"].(map[string]any)
				if route["destinationName"] != s.OfficeName || route["sample"] != nil || peer == nil ||
					peer["gatewayId"] != tc.gatewayID || peer["name"] != tc.name || peer["land"] != "14" ||
					peer["sample"] != nil || peer["baseUrl"] != nil || route["officeId"] != nil {
					t.Errorf("%s: %v; want destinationName %q, peer %s (%s) of Land 14 without sample and baseUrl", what, route, s.OfficeName, tc.gatewayID, tc.name)
				}
				// Neither the sample gateway's address (the peer channel's endpoint was
				// the directory entry's) nor the configured federation endpoint.
				if raw, _ := json.Marshal(route); strings.Contains(string(raw), "sample.example") || strings.Contains(string(raw), "127.0.0.1:1") {
					t.Errorf("%s names an address: %s", what, raw)
				}
			}
			check("/v1/resolve", get("/v1/resolve?leikaKey="+f.key+"&place="+tc.ars))
			rs := get("/v1/routes?leikaKey=" + f.key + "&ars=" + tc.ars)
			if routes, _ := rs["routes"].([]any); len(routes) != 1 {
				t.Errorf("/v1/routes: %v; want one route", rs)
			} else {
				check("/v1/routes", routes[0].(map[string]any))
			}
			// The same by name, as a portal's search box asks.
			check("/v1/resolve by name", get("/v1/resolve?service="+url.QueryEscape("Gewerbe anmelden")+"&place="+tc.ars))

			load := func(string) (*routing.Store, routingcli.Usable, routingcli.Admit, error) {
				return f.g.Directory, nil, Admit(f.g.Config), nil
			}
			var out, errOut strings.Builder
			code := routingcli.Lookup(context.Background(), load, []string{"--service", f.key, "--place", tc.ars}, &out, &errOut)
			want := "Zuständig: Gateway des Landes 14 " + tc.name + " (" + tc.gatewayID + ")"
			if code != routingcli.ExitOK || !strings.Contains(out.String(), want) ||
				strings.Contains(out.String(), "gateway-14") || strings.Contains(out.String(), "Beispieldaten") {
				t.Errorf("lookup: exit %d\n%s%s\nwant %q, no sample peer", code, out.String(), errOut.String(), want)
			}
		})
	}
}
