package wire

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/amtsbote/amtsbote/"

// serverSide are packages a client of the API must not pull in: the server, its
// storage and queue, the router. api/problem (the problem document, encoding/json
// and net/http only) is allowed.
var serverSide = []string{
	module + "api", module + "broker", module + "store", module + "intake", module + "bus",
	module + "gateway", module + "routing", module + "submission", module + "config",
	"go.etcd.io/bbolt", "github.com/nats-io/", "github.com/go-chi/", "github.com/prometheus/",
}

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go command is needed to list dependencies: " + err.Error())
	}
	out, err := exec.Command(goBin, "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

func forbidden(dep string, bad []string) bool {
	for _, b := range bad {
		if dep == b || strings.HasPrefix(dep, b+"/") || (strings.HasSuffix(b, "/") && strings.HasPrefix(dep, b)) {
			return dep != module+"api/problem"
		}
	}
	return false
}

// TestClientsPullInNoServer: a portal or office system built on this module's
// client packages does not link the gateway's server side.
func TestClientsPullInNoServer(t *testing.T) {
	for _, pkg := range []string{module + "wire", module + "portal", module + "fachverfahren", module + "adapters/webhook"} {
		for _, d := range deps(t, pkg) {
			if forbidden(d, serverSide) {
				t.Errorf("%s depends on %s", pkg, d)
			}
		}
	}
}

// TestWireIsALeaf: wire imports nothing of this module.
func TestWireIsALeaf(t *testing.T) {
	for _, d := range deps(t, module+"wire") {
		if strings.HasPrefix(d, module) && d != module+"wire" {
			t.Errorf("wire depends on %s", d)
		}
		// Go's rule: a standard package's first path element has no dot (later ones
		// may: crypto/internal/entropy/v1.0.0, which mime/multipart pulls in).
		if first, _, _ := strings.Cut(d, "/"); strings.Contains(first, ".") && !strings.HasPrefix(d, module) {
			t.Errorf("wire depends on third-party %s", d)
		}
	}
}

// TestDirectoryKnowsNoHTTP: the directory's HTTP API lives in package api, so the
// directory itself links neither api nor a router.
func TestDirectoryKnowsNoHTTP(t *testing.T) {
	for _, d := range deps(t, module+"routing") {
		if d == module+"api" || strings.HasPrefix(d, module+"api/") || strings.HasPrefix(d, "github.com/go-chi/") || d == module+"routing/routingapi" {
			t.Errorf("routing depends on %s", d)
		}
	}
}

func TestForbiddenMatches(t *testing.T) {
	for _, d := range []string{module + "broker", module + "api", "go.etcd.io/bbolt", "github.com/nats-io/nats.go", "github.com/go-chi/chi/v5", module + "routing/internal/gen"} {
		if !forbidden(d, serverSide) {
			t.Errorf("%s not caught", d)
		}
	}
	for _, d := range []string{module + "api/problem", module + "paket", module + "signing", module + "brokerage", "net/http"} {
		if forbidden(d, serverSide) {
			t.Errorf("%s caught", d)
		}
	}
}
