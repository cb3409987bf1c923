package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/api/contracttest"
	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/routing"
)

// TestStoreDownIsInTheContract: while the store is known to be out of reach (a
// cluster without quorum, docs/cluster.md) every portal, office and admin route
// answers 503 unavailable at once (storeGate). The contract listed 503 for five
// of those operations only, so a client generated from it had no branch for the
// answer every other one gives then, and the contract test could not check it.
func TestStoreDownIsInTheContract(t *testing.T) {
	router := contractRouter(t)
	s := api.New(api.Options{
		Clients:   api.NewClients(adminToken, map[string]string{"amt24": portalToken}, map[string][]string{"office-a": {officeToken}}),
		StoreDown: func() error { return errors.New("the NATS cluster has no quorum") },
	})
	srv := httptest.NewServer(s)
	defer srv.Close()
	n := 0
	err := chi.Walk(s.Routes(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		token := ""
		switch {
		case strings.HasPrefix(route, "/v1/office/"):
			token = officeToken
		case strings.HasPrefix(route, "/v1/admin/"):
			token = adminToken
		case strings.HasPrefix(route, "/v1/submissions/"):
			token = portalToken
		case route == "/v1/submissions":
		default:
			return nil // not behind the store's gate
		}
		n++
		path := strings.NewReplacer("{kind}", "eingang").Replace(route)
		for strings.Contains(path, "{") {
			i, j := strings.Index(path, "{"), strings.Index(path, "}")
			path = path[:i] + "x" + path[j+1:]
		}
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		_, _, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s: not in the contract: %v", method, route, err)
			return nil
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.Contains(string(body), problem.TypeUnavailable) {
			t.Errorf("%s %s with the store down: %d %s", method, route, resp.StatusCode, body)
			return nil
		}
		if err := conforms(req, resp, body); err != nil {
			t.Errorf("%s %s: 503 breaks the contract: %v", method, route, firstLine(err.Error()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 15 {
		t.Fatalf("checked only %d routes", n)
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// TestReloadAnswersAreInTheContract: every answer of the reload is what
// api/openapi.yaml says: each gateway reloaded, one refused a file, one did not
// answer (a cluster), the gateways could not be asked. (A 409 "no directory
// files configured", listed there, was never sent by a gateway and is gone.)
func TestReloadAnswersAreInTheContract(t *testing.T) {
	router := contractRouter(t)
	base, err := routing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var nodes []api.NodeReload
	var fail error
	srv := httptest.NewServer(api.New(api.Options{Clients: api.NewClients(adminToken, nil, nil), Directory: routing.NewStore(base),
		Reload: func(context.Context) ([]api.NodeReload, error) { return nodes, fail }}))
	defer srv.Close()
	ok := api.ReloadResult("a1b2", "gw-1:8443", nil, base)
	bad := api.ReloadResult("c3d4", "gw-2:8443", fmt.Errorf("directory: %w", &routing.DataError{File: "overlay.yaml", Line: 2, Msg: "unknown office"}), base)
	silent := api.NodeReload{Node: "e5f6", Address: "gw-3:8443", Status: api.ReloadNoAnswer, Error: "no answer within 20s"}
	for _, tc := range []struct {
		nodes  []api.NodeReload
		err    error
		status int
		says   string
	}{
		{[]api.NodeReload{ok}, nil, http.StatusOK, `"status":"reloaded"`},
		{[]api.NodeReload{ok, bad}, nil, http.StatusUnprocessableEntity, `"line":2`},
		{[]api.NodeReload{ok, silent}, nil, http.StatusGatewayTimeout, problem.TypeReloadIncomplete},
		{nil, errors.New("nats: connection closed"), http.StatusServiceUnavailable, problem.TypeUnavailable},
	} {
		nodes, fail = tc.nodes, tc.err
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/admin/directory/reload", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		_, _, err := router.FindRoute(req)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var flat bytes.Buffer
		_ = json.Compact(&flat, body)
		if resp.StatusCode != tc.status || !strings.Contains(flat.String(), tc.says) {
			t.Fatalf("reload: %d %s, want %d with %s", resp.StatusCode, body, tc.status, tc.says)
		}
		if err := conforms(req, resp, body); err != nil {
			t.Fatalf("%d breaks the contract: %v", resp.StatusCode, firstLine(err.Error()))
		}
	}
}

// contractRouter finds a request's operation in api/openapi.yaml.
func contractRouter(t *testing.T) routers.Router {
	t.Helper()
	return contracttest.Load(t).Router()
}
