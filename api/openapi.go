package api

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the contract of this package's endpoints (OpenAPI 3.0), served at
// /v1/openapi.yaml; a contract test validates real responses against it.
//
//go:embed openapi.yaml
var OpenAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}
