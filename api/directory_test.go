package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/routing"
)

const (
	testAdminToken  = "adm"
	testOfficeToken = "office-dd"
)

// directoryServer is the API with only the directory behind it.
func directoryServer(t testing.TB) (*Server, *routing.Store) {
	t.Helper()
	d, err := routing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	store := routing.NewStore(d)
	s := New(Options{Directory: store, Clients: NewClients(testAdminToken, nil, map[string][]string{"dd": {testOfficeToken}}), Reload: func(context.Context) ([]NodeReload, error) {
		return []NodeReload{ReloadResult("test", "", store.Reload(), store.Current())}, nil
	},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return s, store
}

func newServer(t *testing.T) (*httptest.Server, *routing.Store) {
	t.Helper()
	s, store := directoryServer(t)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, store
}

func adminPost(t *testing.T, url string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func get(t *testing.T, srv *httptest.Server, path string) (*http.Response, []byte) {
	t.Helper()
	res, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func TestEndpoints(t *testing.T) {
	srv, _ := newServer(t)
	tests := []struct {
		name, path  string
		status      int
		contentType string
		contains    []string
	}{
		{"places by name", "/v1/places?q=dresden", 200, "application/json", []string{`"name":"Dresden, Stadt"`, `"ars":"146120000000"`}},
		{"places by postcode", "/v1/places?q=0106&limit=3", 200, "application/json", []string{`"postcode":"0106`}},
		{"places needs q", "/v1/places", 400, problem.ContentType, []string{problem.TypeMalformed}},
		{"places bad limit", "/v1/places?q=a&limit=0", 422, problem.ContentType, []string{"limit"}},
		{"services search", "/v1/services?q=Gewerbe", 200, "application/json", []string{`"leikaKey":"99050012104000"`}},
		{"services list", "/v1/services?limit=500", 200, "application/json", []string{`"Wohnsitz anmelden"`}},
		{"service detail", "/v1/services/99050012104000", 200, "application/json", []string{`"rechtsgrundlage":"§ 14 Gewerbeordnung (GewO)"`, `"quelle"`}},
		// Without an intake every peer route is taken (as /v1/resolve below): a key
		// only other states know goes to each other state's peer.
		{"service only peers know", "/v1/services/99999999999999", 200, "application/json", []string{`"leikaKey":"99999999999999","inDirectory":false`, `{"land":"01","name":"Schleswig-Holstein","gatewayId":"gateway-sh"`}},
		{"service malformed", "/v1/services/abc", 422, problem.ContentType, []string{problem.TypeInvalidField}},
		{"office", "/v1/offices/dresden-allgemeine-verwaltung", 200, "application/json", []string{`"street":"Junghansstraße 2"`, `"postOfficeBox":"12 00 20"`, `"kind":"webhook","level":3`, `"sample":false`}},
		{"office sample", "/v1/offices/kreis-14522", 200, "application/json", []string{`"sample":true`}},
		{"office unknown", "/v1/offices/nope", 404, problem.ContentType, []string{problem.TypeNotFound}},
		{"resolve by name", "/v1/resolve?service=Gewerbe%20anmelden&place=Dresden", 200, "application/json", []string{`"officeId":"dresden-allgemeine-verwaltung"`}},
		{"resolve ambiguous place", "/v1/resolve?leikaKey=99050012104000&place=01561", 422, problem.ContentType, []string{problem.TypeAmbiguousPlace, `"candidates"`}},
		// A postcode of five municipalities, each with the Kreis's office for
		// Wohngeld: intake routes it there, and so does resolve (it said
		// ambiguous while intake accepted).
		{"resolve shared postcode with one office", "/v1/resolve?leikaKey=99107023037000&place=01877", 200, "application/json", []string{`"officeId":"kreis-14625"`}},
		{"resolve unknown place", "/v1/resolve?leikaKey=99050012104000&place=Atlantis", 422, problem.ContentType, []string{problem.TypeUnknownPlace}},
		{"resolve unknown service", "/v1/resolve?leikaKey=99999999999999&place=Dresden", 422, problem.ContentType, []string{problem.TypeUnknownService}},
		{"resolve malformed place", "/v1/resolve?leikaKey=99050012104000&place=1234", 422, problem.ContentType, []string{problem.TypeInvalidField}},
		{"resolve ambiguous candidates are places", "/v1/resolve?leikaKey=99050012104000&place=01561", 422, problem.ContentType, []string{`"level":`, `"land":`}},
		{"resolve no office", "/v1/resolve?leikaKey=99999001000000&place=145220000000", 422, problem.ContentType, []string{problem.TypeNoResponsibleOffice}},
		{"resolve Kreis for a municipal service", "/v1/resolve?leikaKey=99115005104000&place=Landkreis%20Mittelsachsen", 422, problem.ContentType, []string{problem.TypeAmbiguousPlace, `"ars":"145220180180"`, `"ars":"145220275275"`}},
		{"resolve Kreis of a kreisfreie Stadt", "/v1/resolve?leikaKey=99115005104000&place=ARS%2014612", 200, "application/json", []string{`"officeId":"gemeinde-146120000000"`}},
		{"routes peer", "/v1/routes?leikaKey=99050012104000&ars=081110000000", 200, "application/json", []string{`"gatewayId":"gateway-bw"`, `"kind":"peer"`}},
		{"routes unknown service", "/v1/routes?leikaKey=99999999999999&ars=146120000000", 422, problem.ContentType, []string{problem.TypeUnknownService}},
		// A key unknown here goes to the peer of another state's place (whose
		// directory must know it); the key is judged before an unknown place.
		{"routes unknown service at another state's place", "/v1/routes?leikaKey=99999999999999&ars=081110000000", 200, "application/json", []string{`"gatewayId":"gateway-bw"`, `"leikaKey":"99999999999999"`}},
		{"routes unknown service at an unknown place", "/v1/routes?leikaKey=99999999999999&ars=149990000000", 422, problem.ContentType, []string{problem.TypeUnknownService}},
		{"resolve unknown service at another state's place", "/v1/resolve?leikaKey=99999999999999&place=Stuttgart", 200, "application/json", []string{`"gatewayId":"gateway-bw"`, `"leikaKey":"99999999999999"`}},
		{"resolve unknown service at an unknown place", "/v1/resolve?service=99999999999999&place=Atlantis", 422, problem.ContentType, []string{problem.TypeUnknownService}},
		{"resolve malformed key at another state's place", "/v1/resolve?leikaKey=9999&place=Stuttgart", 422, problem.ContentType, []string{problem.TypeInvalidField}},
		{"routes unknown place", "/v1/routes?leikaKey=99050012104000&ars=149990000000", 422, problem.ContentType, []string{problem.TypeUnknownPlace}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := get(t, srv, tt.path)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, body)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("content type %q, want %q", ct, tt.contentType)
			}
			for _, c := range tt.contains {
				if !bytes.Contains(body, []byte(c)) {
					t.Errorf("body lacks %s: %s", c, body)
				}
			}
		})
	}
}

func TestAdminReload(t *testing.T) {
	srv, store := newServer(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "o.yaml")
	ok := "responsibilities:\n  - {leistung: \"99115005104000\", gebiet: \"14612\", stelle: dresden-allgemeine-verwaltung}\n"
	if err := os.WriteFile(p, []byte(ok), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := store.ReloadFiles(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("responsibilities:\n  - {leistung: \"1\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := adminPost(t, srv.URL+"/v1/admin/directory/reload")
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 422 || !bytes.Contains(body, []byte(`"line":2`)) || !bytes.Contains(body, []byte("o.yaml")) {
		t.Fatalf("bad reload: %d %s", res.StatusCode, body)
	}
	// The old directory keeps serving.
	_, body = get(t, srv, "/v1/resolve?leikaKey=99115005104000&place=146120000000")
	if !bytes.Contains(body, []byte(`"officeId":"dresden-allgemeine-verwaltung"`)) {
		t.Errorf("old snapshot lost: %s", body)
	}
	if err := os.WriteFile(p, []byte(ok), 0o644); err != nil {
		t.Fatal(err)
	}
	res = adminPost(t, srv.URL+"/v1/admin/directory/reload")
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("good reload: %d", res.StatusCode)
	}
}

// loadSpec reads the FIT-Connect Routing API 2.0.0 copied into testdata.
func loadSpec(t *testing.T) (*openapi3.T, *routers.Route) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("testdata/routing-api-2.0.0.yaml")
	if err != nil {
		t.Fatalf("load spec: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("spec invalid: %v", err)
	}
	item := doc.Paths.Find("/routes")
	if item == nil || item.Get == nil {
		t.Fatal("spec has no GET /routes")
	}
	return doc, &routers.Route{Spec: doc, Server: doc.Servers[0], Path: "/routes", PathItem: item, Method: http.MethodGet, Operation: item.Get}
}

// TestRoutesContract checks GET /v1/routes against the FIT-Connect Routing API: the
// spec's own validator accepts our requests and responses (status, content type,
// schema of route-result and error).
func TestRoutesContract(t *testing.T) {
	srv, _ := newServer(t)
	_, route := loadSpec(t)
	tests := []struct {
		name   string
		query  string
		status int
		routes int
	}{
		{"Dresden by ARS", "leikaKey=99050012104000&ars=146120000000", 200, 1},
		{"Dresden by AGS", "leikaKey=99050012104000&ags=14612000", 200, 1},
		{"Kreis by 5-digit ARS", "leikaKey=99107023037000&ars=14522", 200, 1},
		{"Land level", "leikaKey=99004002005000&ars=14", 200, 1},
		{"areaId", "leikaKey=99050012104000&areaId=145220275275", 200, 1},
		{"peer", "leikaKey=99050012104000&ars=081110000000", 200, 1},
		{"a key unknown here, at another state's place: its peer", "leikaKey=99123456789012&ars=081110000000", 200, 1},
		{"paging past the end", "leikaKey=99050012104000&ars=146120000000&offset=1&limit=1", 200, 0},
		{"no office is an empty result", "leikaKey=99999001000000&ars=14522", 200, 0},
		{"Kreis for a municipal service: a route per municipality", "leikaKey=99115005104000&ars=14522", 200, 52},
		{"paging the municipalities", "leikaKey=99115005104000&ars=14522&offset=50&limit=10", 200, 2},
		{"missing leikaKey", "ars=146120000000", 400, 0},
		{"malformed leikaKey", "leikaKey=12345&ars=146120000000", 400, 0},
		{"two area parameters", "leikaKey=99050012104000&ars=146120000000&ags=14612000", 400, 0},
		{"no area parameter", "leikaKey=99050012104000", 400, 0},
		{"bad ars length", "leikaKey=99050012104000&ars=1461200", 400, 0},
		{"limit too large", "leikaKey=99050012104000&ars=14612&limit=501", 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := get(t, srv, "/v1/routes?"+tt.query)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, body)
			}
			req := httptest.NewRequest(http.MethodGet, "https://routing-api-testing.fit-connect.fitko.dev/v1/routes?"+tt.query, nil)
			q, _ := url.ParseQuery(tt.query)
			in := &openapi3filter.RequestValidationInput{Request: req, QueryParams: q, Route: route,
				Options: &openapi3filter.Options{MultiError: true}}
			reqErr := openapi3filter.ValidateRequest(context.Background(), in)
			if tt.status == 200 && reqErr != nil {
				t.Fatalf("spec rejects a request we accept: %v", reqErr)
			}
			if tt.status == 400 && reqErr == nil && !strings.Contains(tt.name, "two area") && !strings.Contains(tt.name, "no area") {
				t.Errorf("spec accepts a request we reject")
			}
			out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode,
				Header: res.Header, Options: &openapi3filter.Options{IncludeResponseStatus: true}}
			out.SetBodyBytes(body)
			if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
				t.Fatalf("response violates the spec: %v\n%s", err, body)
			}
			if tt.status != 200 {
				return
			}
			var rr struct {
				Count, Offset, TotalCount int
				Routes                    []map[string]any
			}
			if err := json.Unmarshal(body, &rr); err != nil {
				t.Fatal(err)
			}
			if rr.Count != tt.routes || len(rr.Routes) != tt.routes {
				t.Errorf("routes = %d, want %d", len(rr.Routes), tt.routes)
			}
		})
	}
}

// FuzzRoutesQuery: no query string makes the handler panic or answer 5xx.
func FuzzRoutesQuery(f *testing.F) {
	r, _ := directoryServer(f)
	for _, s := range []string{"leikaKey=99050012104000&ars=146120000000", "ars=1&ags=2", "leikaKey=99050012104000&areaId=0&limit=-1", "q=%ff%fe", "leikaKey=99050012104000&place=01561&service=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		for _, p := range []string{"/v1/routes", "/v1/resolve", "/v1/places", "/v1/services"} {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.URL.Path = p
			req.URL.RawQuery = q
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code >= 500 {
				t.Fatalf("%s?%s: %d %s", p, q, w.Code, w.Body)
			}
		}
	})
}

// TestResolveKeyWithServiceName: /v1/resolve read its service as leikaKey and service
// glued together, so a portal that sends the key and, for its logs, the name
// ("leikaKey=99050012104000&service=Gewerbe anmelden") was refused as the unknown
// service "99050012104000Gewerbe anmelden", and "leikaKey=9905&service=0012104000"
// was taken as a key. The key, when given, says which service is meant.
func TestResolveKeyWithServiceName(t *testing.T) {
	srv, _ := newServer(t)
	res, body := get(t, srv, "/v1/resolve?leikaKey=99050012104000&service=Gewerbe%20anmelden&place=Dresden")
	if res.StatusCode != 200 || !bytes.Contains(body, []byte(`"officeId":"dresden-allgemeine-verwaltung"`)) {
		t.Errorf("key and name: %d %s", res.StatusCode, body)
	}
	// "9905" cannot be a key: invalid-field, as at intake and in /v1/services/9905.
	res, body = get(t, srv, "/v1/resolve?leikaKey=9905&service=0012104000&place=Dresden")
	if res.StatusCode != 422 || !bytes.Contains(body, []byte(problem.TypeInvalidField)) {
		t.Errorf("a key in two halves: %d %s", res.StatusCode, body)
	}
}

// TestResolveAmbiguousServiceListsCandidates: a name several services bear
// ("Sterbeurkunde") identifies none; the refusal said so only in its detail
// text. It lists the services to choose from, with their LeiKa keys, as an
// ambiguous place lists its places.
func TestResolveAmbiguousServiceListsCandidates(t *testing.T) {
	srv, _ := newServer(t)
	res, body := get(t, srv, "/v1/resolve?service=Sterbeurkunde&place=Dresden")
	var p struct {
		Type       string `json:"type"`
		Candidates []struct {
			LeikaKey string `json:"leikaKey"`
			Name     string `json:"name"`
		} `json:"candidates"`
	}
	if err := json.Unmarshal(body, &p); err != nil || res.StatusCode != 422 || p.Type != problem.TypeUnknownService || len(p.Candidates) < 2 {
		t.Fatalf("ambiguous service: %d %s", res.StatusCode, body)
	}
	for _, c := range p.Candidates {
		if len(c.LeikaKey) != 14 || c.Name == "" {
			t.Fatalf("candidate %+v", c)
		}
	}
}

// usableChannels lets intake use every channel (intake.Channels).
type usableChannels struct{}

func (usableChannels) Usable(string, string) bool { return true }

// GET /v1/services/{leikaKey} for a key this directory does not know says where
// intake forwards it, as intake decides: the states whose configured peer
// gateway serves them (the whole state, or the Kreise it serves), and 404
// unknown-service where no peer gateway is configured. Before, it answered 404
// "no such service" for a key that intake and /v1/resolve forward, so a portal
// refused what the gateway accepts.
func TestServiceOnlyPeersKnowNamesTheForwarding(t *testing.T) {
	const key = "99999999999999"
	serve := func(peerFor func(ars, officeID string) (intake.Peer, bool)) *httptest.Server {
		d, err := routing.Builtin()
		if err != nil {
			t.Fatal(err)
		}
		store := routing.NewStore(d)
		s := New(Options{Directory: store, Pipeline: &intake.Pipeline{Directory: store, Channels: usableChannels{}, PeerFor: peerFor},
			Clients: NewClients(testAdminToken, nil, nil), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		srv := httptest.NewServer(s)
		t.Cleanup(srv.Close)
		return srv
	}
	srv := serve(func(ars, _ string) (intake.Peer, bool) {
		switch {
		case strings.HasPrefix(ars, "09"):
			return intake.Peer{ID: "gw-by", Name: "Bayern"}, true
		case strings.HasPrefix(ars, "16077"):
			return intake.Peer{ID: "gw-abg", Name: "Altenburger Land"}, true
		}
		return intake.Peer{}, false
	})
	res, body := get(t, srv, "/v1/services/"+key)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	var got struct {
		LeikaKey    string `json:"leikaKey"`
		Name        string `json:"name"`
		InDirectory *bool  `json:"inDirectory"`
		ForwardedTo []struct {
			Land, Name, GatewayID, BaseURL string
			Areas                          []string
		} `json:"forwardedTo"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := `[{09 Bayern gw-by  []} {16 Altenburger Land gw-abg  [160770000000]}]`
	if got.LeikaKey != key || got.Name != "" || got.InDirectory == nil || *got.InDirectory || fmt.Sprint(got.ForwardedTo) != want {
		t.Errorf("got %s\nwant inDirectory false and forwardedTo %s", body, want)
	}
	// What it says is what /v1/resolve (intake's decision) answers for a place.
	for place, status := range map[string]int{"Altenburg": 200, "München": 200, "Erfurt": 422, "Dresden": 422} {
		if res, body := get(t, srv, "/v1/resolve?leikaKey="+key+"&place="+url.QueryEscape(place)); res.StatusCode != status {
			t.Errorf("/v1/resolve at %s: %d %s, want %d", place, res.StatusCode, body, status)
		}
	}
	// With no peer gateway configured intake refuses the key everywhere.
	res, body = get(t, serve(nil), "/v1/services/"+key)
	if res.StatusCode != http.StatusNotFound || !bytes.Contains(body, []byte(problem.TypeUnknownService)) {
		t.Errorf("no peer gateway: %d %s, want 404 unknown-service", res.StatusCode, body)
	}
}
