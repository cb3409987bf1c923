package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/api/contracttest"
	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/gatewaytest"
	"github.com/amtsbote/amtsbote/routing"
)

// TestDirectoryInTheContract: the directory endpoints a portal's place and
// service pickers use (/v1/places, /v1/services, /v1/services/{leikaKey},
// /v1/offices/{id}, /v1/resolve) were not in api/openapi.yaml at all, so a
// client generated from it had none of them, and their answers passed
// contracttest.Watch unchecked. Every kind of answer they give — hits, none,
// too long, bad and repeated parameters, unknown ids, each refusal with its
// type, HEAD — is held here strictly to the contract (no undeclared member,
// status or content type), from a whole gateway (with intake and configured
// peer gateways, and without), and from the API with the directory alone (no
// intake: the directory's own peer entries, with baseUrl and sample).
func TestDirectoryInTheContract(t *testing.T) {
	g, _ := gatewaytest.Start(t, func(c *config.Config) {
		c.Peers = []config.Peer{
			{ID: "gw-by", Name: "Bayern", Lands: []string{"09"}, BaseURL: "http://127.0.0.1:1/federation-by"},
			{ID: "gw-abg", Name: "Altenburger Land", Areas: []string{"16077"}, BaseURL: "http://127.0.0.1:1/federation-abg"},
		}
	})
	bare, _ := startGateway(t)
	d, err := routing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	alone := httptest.NewServer(api.New(api.Options{Directory: routing.NewStore(d), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	t.Cleanup(alone.Close)
	long := strings.Repeat("a", 201)
	tests := []struct {
		name, method, path string
		on                 string // "" the gateway with peer gateways, "alone" the API with the directory alone (no intake), "bare" a gateway without peer gateways
		status             int
		typ                string
		contains           string
	}{
		{"places", "GET", "/v1/places?q=Bautzen&limit=2", "", 200, "", `"label":"Landkreis Bautzen"`},
		{"places by postcode prefix", "GET", "/v1/places?q=0106", "", 200, "", `"postcode":"0106`},
		{"places Sorbian name", "GET", "/v1/places?q=Budy%C5%A1in", "", 200, "", `"ars":"146250020020"`},
		{"places none", "GET", "/v1/places?q=Atlantis", "", 200, "", `{"count":0,"places":[]}`},
		{"places too long", "GET", "/v1/places?q=" + long, "", 200, "", `{"count":0,"places":[]}`},
		{"places without q", "GET", "/v1/places", "", 400, problem.TypeMalformed, ""},
		{"places blank q", "GET", "/v1/places?q=%20", "", 400, problem.TypeMalformed, ""},
		{"places q twice", "GET", "/v1/places?q=a&q=b", "", 422, problem.TypeInvalidField, `"field":"q"`},
		{"places limit 0", "GET", "/v1/places?q=a&limit=0", "", 422, problem.TypeInvalidField, `"field":"limit"`},
		{"places limit 501", "GET", "/v1/places?q=a&limit=501", "", 422, problem.TypeInvalidField, `"field":"limit"`},
		{"places limit not a number", "GET", "/v1/places?q=a&limit=x", "", 422, problem.TypeInvalidField, `"field":"limit"`},
		{"places unreadable query", "GET", "/v1/places?q=%zz", "", 400, problem.TypeMalformed, ""},
		{"places HEAD", "HEAD", "/v1/places?q=Dresden", "", 200, "", ""},
		{"places HEAD without q", "HEAD", "/v1/places", "", 400, "", ""},
		{"places POST", "POST", "/v1/places?q=Dresden", "", 405, problem.TypeMethodNotAllowed, ""},
		{"services search", "GET", "/v1/services?q=Gewerbe", "", 200, "", `"matched":`},
		{"services list", "GET", "/v1/services?limit=500", "", 200, "", `"lebenslagen":`},
		{"services by key prefix", "GET", "/v1/services?q=9905", "", 200, "", `"leikaKey":"99050012104000"`},
		{"services none", "GET", "/v1/services?q=Raumfahrt", "", 200, "", `{"count":0,"services":[]}`},
		{"services too long", "GET", "/v1/services?q=" + long, "", 200, "", `{"count":0,"services":[]}`},
		{"services limit 0", "GET", "/v1/services?limit=0", "", 422, problem.TypeInvalidField, `"field":"limit"`},
		{"services limit twice", "GET", "/v1/services?limit=1&limit=2", "", 422, problem.TypeInvalidField, `"field":"limit"`},
		{"services HEAD", "HEAD", "/v1/services", "", 200, "", ""},
		{"services DELETE", "DELETE", "/v1/services", "", 405, problem.TypeMethodNotAllowed, ""},
		{"service", "GET", "/v1/services/99050012104000", "", 200, "", `"texte":{`},
		{"service forwarded to configured peer gateways", "GET", "/v1/services/99999999999999", "", 200, "", `"areas":["160770000000"]`},
		{"service forwarded to the directory's peers", "GET", "/v1/services/99999999999999", "alone", 200, "", `"baseUrl":`},
		{"service no peer gateway takes", "GET", "/v1/services/99999999999999", "bare", 404, problem.TypeUnknownService, ""},
		{"service HEAD unknown", "HEAD", "/v1/services/99999999999999", "bare", 404, "", ""},
		{"service not 14 digits", "GET", "/v1/services/9905", "", 422, problem.TypeInvalidField, `"field":"leikaKey"`},
		{"service HEAD", "HEAD", "/v1/services/99050012104000", "", 200, "", ""},
		{"service PUT", "PUT", "/v1/services/99050012104000", "", 405, problem.TypeMethodNotAllowed, ""},
		{"office", "GET", "/v1/offices/dresden-allgemeine-verwaltung", "", 200, "", `"postalAddress":{"postOfficeBox":"12 00 20"`},
		{"office sample", "GET", "/v1/offices/kreis-14522", "", 200, "", `"sample":true`},
		{"office unknown", "GET", "/v1/offices/nope", "", 404, problem.TypeNotFound, ""},
		{"office long unknown id", "GET", "/v1/offices/" + strings.Repeat("x", 300), "", 404, problem.TypeNotFound, ""},
		{"office HEAD unknown", "HEAD", "/v1/offices/nope", "", 404, "", ""},
		{"office POST", "POST", "/v1/offices/nope", "", 405, problem.TypeMethodNotAllowed, ""},
		{"resolve", "GET", "/v1/resolve?leikaKey=99050012104000&place=01067%20Dresden", "", 200, "", `"officeId":"dresden-allgemeine-verwaltung"`},
		{"resolve by service name", "GET", "/v1/resolve?service=Hundesteuer%20Anmeldung&place=Dresden", "", 200, "", `"role":"zustaendig"`},
		{"resolve with a Kreis of the same name", "GET", "/v1/resolve?leikaKey=99115005104000&place=Bautzen", "", 200, "", `"alsoKreis":{`},
		{"resolve to a configured peer gateway", "GET", "/v1/resolve?leikaKey=99050012104000&place=M%C3%BCnchen", "", 200, "", `"gatewayId":"gw-by"`},
		{"resolve to the directory's peer", "GET", "/v1/resolve?leikaKey=99050012104000&place=Stuttgart", "alone", 200, "", `"baseUrl":`},
		{"resolve unknown key at a peer's place", "GET", "/v1/resolve?leikaKey=99999999999999&place=M%C3%BCnchen", "", 200, "", `"role":"peer"`},
		{"resolve ambiguous place", "GET", "/v1/resolve?leikaKey=99050012104000&place=Frankfurt", "alone", 422, problem.TypeAmbiguousPlace, `"candidates":[{"ars":`},
		{"resolve Kreis for a municipal service", "GET", "/v1/resolve?leikaKey=99115005104000&place=Landkreis%20Mittelsachsen", "", 422, problem.TypeAmbiguousPlace, `"candidates":`},
		{"resolve service name of several", "GET", "/v1/resolve?service=Sterbeurkunde&place=Dresden", "", 422, problem.TypeUnknownService, `"candidates":[{"leikaKey":`},
		{"resolve unknown service", "GET", "/v1/resolve?leikaKey=99999999999999&place=Dresden", "", 422, problem.TypeUnknownService, ""},
		{"resolve unknown place", "GET", "/v1/resolve?leikaKey=99050012104000&place=Atlantis", "", 422, problem.TypeUnknownPlace, ""},
		{"resolve no configured peer gateway", "GET", "/v1/resolve?leikaKey=99050012104000&place=Stuttgart", "", 422, problem.TypeNoResponsibleOffice, ""},
		{"resolve no office", "GET", "/v1/resolve?leikaKey=99999001000000&place=145220000000", "", 422, problem.TypeNoResponsibleOffice, ""},
		{"resolve malformed place", "GET", "/v1/resolve?leikaKey=99050012104000&place=1234", "", 422, problem.TypeInvalidField, `"field":"place"`},
		{"resolve place too long", "GET", "/v1/resolve?leikaKey=99050012104000&place=" + long, "", 422, problem.TypeInvalidField, `"field":"place"`},
		{"resolve without place", "GET", "/v1/resolve?leikaKey=99050012104000", "", 422, problem.TypeInvalidField, `"field":"place"`},
		{"resolve without service", "GET", "/v1/resolve?place=Dresden", "", 422, problem.TypeInvalidField, `"field":"service"`},
		{"resolve malformed key", "GET", "/v1/resolve?leikaKey=9905&place=Dresden", "", 422, problem.TypeInvalidField, `"field":"leikaKey"`},
		{"resolve malformed key by service", "GET", "/v1/resolve?service=9905&place=Dresden", "", 422, problem.TypeInvalidField, `"field":"service"`},
		// The key is judged first, as at intake (docs/directory.md, rule 1).
		{"resolve malformed key and place", "GET", "/v1/resolve?leikaKey=9905&place=1234", "", 422, problem.TypeInvalidField, `"field":"leikaKey"`},
		{"resolve place twice", "GET", "/v1/resolve?leikaKey=99050012104000&place=a&place=b", "", 422, problem.TypeInvalidField, `"field":"place"`},
		{"resolve HEAD", "HEAD", "/v1/resolve?leikaKey=99050012104000&place=Dresden", "", 200, "", ""},
		{"resolve HEAD ambiguous", "HEAD", "/v1/resolve?leikaKey=99050012104000&place=Frankfurt", "alone", 422, "", ""},
		{"resolve PATCH", "PATCH", "/v1/resolve", "", 405, problem.TypeMethodNotAllowed, ""},
	}
	c := contracttest.Load(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := map[string]string{"": g.URL(), "alone": alone.URL, "bare": bare.URL()}[tc.on]
			req, _ := http.NewRequest(tc.method, base+tc.path, nil)
			resp, body := answerAs(t, req, tc.status, tc.typ)
			if !strings.Contains(string(body), tc.contains) {
				t.Errorf("body lacks %s: %s", tc.contains, body)
			}
			if err := c.Check(req, resp.StatusCode, resp.Header, body); err != nil {
				t.Errorf("the answer breaks the contract: %v\n%s", err, body)
			}
		})
	}

	// GET /v1/routes has the FIT-Connect document for its contract
	// (TestRoutesContract), but its route objects are the ones /v1/resolve
	// answers: the contract's description says so, and they are held to its
	// strict Route schema here (an office's route, each municipality's of a
	// Kreis, a configured peer gateway's, the directory's own peer entry's).
	route := c.Doc.Components.Schemas["Route"].Value
	for _, tc := range []struct{ name, base, query string }{
		{"office", g.URL(), "leikaKey=99050012104000&ars=146120000000"},
		{"municipalities of a Kreis", g.URL(), "leikaKey=99115005104000&ars=14625&limit=3"},
		{"configured peer gateway", g.URL(), "leikaKey=99050012104000&ags=09162000"},
		{"directory's peer", alone.URL, "leikaKey=99050012104000&ars=081110000000"},
	} {
		resp, err := http.Get(tc.base + "/v1/routes?" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		var res struct{ Routes []any }
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(res.Routes) == 0 {
			t.Fatalf("routes %s: %d %v %v", tc.name, resp.StatusCode, err, res)
		}
		for _, r := range res.Routes {
			if err := route.VisitJSON(r); err != nil {
				t.Errorf("a route of /v1/routes (%s) breaks the contract's Route: %v", tc.name, err)
			}
		}
	}
}
