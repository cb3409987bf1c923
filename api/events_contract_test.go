package api_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/amtsbote/amtsbote/api"
)

// TestEventTypesInContract: every event type the code can write (a constant
// Event… = "…" in the packages that make events) is in the contract's Event.type
// enum, and every value there is one the code writes. A portal's or an office's
// client generated from api/openapi.yaml rejects a value outside the enum, and
// the contract's test calls reach only some states, so the types are compared
// at the source: a new event type cannot be forgotten here.
func TestEventTypesInContract(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	ev := doc.Components.Schemas["Event"]
	if ev == nil || ev.Value.Properties["type"] == nil {
		t.Fatal("no Event.type in the contract")
	}
	var contract []string
	for _, v := range ev.Value.Properties["type"].Value.Enum {
		contract = append(contract, v.(string))
	}
	var code []string
	for _, dir := range []string{"../submission", "../store/migrate"} {
		code = append(code, eventConstants(t, dir)...)
	}
	if len(code) < 10 {
		t.Fatalf("found only %v in the code: the scan is broken", code)
	}
	for _, c := range code {
		if !slices.Contains(contract, c) {
			t.Errorf("the code writes events of type %q, which the contract's Event.type enum lacks", c)
		}
	}
	for _, c := range contract {
		if !slices.Contains(code, c) {
			t.Errorf("the contract names event type %q, which no code writes", c)
		}
	}
}

// eventConstants returns the values of the string constants named Event… in the
// non-test Go files of dir.
func eventConstants(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Event") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					out = append(out, v)
				}
			}
			return true
		})
	}
	return out
}
