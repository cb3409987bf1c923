package api_test

import (
	"context"
	"io"
	"net/http"

	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/routing"
)

// TestEveryRouteInTheContract: the README promises that api/openapi.yaml names
// everything the REST API answers. Every route the router registers must be an
// operation of the contract and every operation a route, except the faces
// mounted beside the API (web mailbox, XTA, peer endpoint: their own documents)
// and GET /v1/routes, which follows the FIT-Connect Routing API's document
// (TestRoutesContract). Two routes (/metrics, /v1/schemas/{name}) had been
// missing, and the directory's other endpoints were left to docs/directory.md.
func TestEveryRouteInTheContract(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	d, err := routing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	s := api.New(api.Options{
		Registry:  prometheus.NewRegistry(),
		Backup:    func(_ context.Context, _ io.Writer) error { return nil },
		Reload:    func(context.Context) ([]api.NodeReload, error) { return nil, nil },
		Mounts:    map[string]http.Handler{"/postfach": http.NotFoundHandler()},
		Directory: routing.NewStore(d),
	})
	served := map[string]bool{}
	err = chi.Walk(s.Routes(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if strings.HasSuffix(route, "/*") { // a mounted face
			return nil
		}
		if route == "/v1/routes" { // the FIT-Connect Routing API's document
			return nil
		}
		route = strings.TrimSuffix(route, "/")
		if route == "" {
			route = "/"
		}
		served[method+" "+route] = true
		item := doc.Paths.Value(route)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("%s %s is served but not in api/openapi.yaml", method, route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(served) < 20 {
		t.Fatalf("walked only %d routes: %v", len(served), served)
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !served[method+" "+path] {
				t.Errorf("%s %s is in api/openapi.yaml but not served", method, path)
			}
		}
	}

}
