// Package constscan reads string constants out of Go source, for tests that hold
// a list kept elsewhere (the OpenAPI contract's enum, a page's labels) against
// what the code can actually produce: scanning the source means a constant added
// later cannot be forgotten in the list.
package constscan

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
)

// Strings returns the values of the string constants whose names start with
// prefix in the non-test Go files of dir.
func Strings(dir, prefix string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var out []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			return nil, fmt.Errorf("constscan: %w", err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, prefix) || i >= len(vs.Values) {
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
	return out, nil
}

// EventTypes returns every event type the code can write: the Event… constants
// of package submission and of store/migrate, read from the module's source at
// root (the module's top folder, relative to the calling test's package).
func EventTypes(root string) ([]string, error) {
	var out []string
	for _, dir := range []string{"submission", "store/migrate"} {
		v, err := Strings(filepath.Join(root, dir), "Event")
		if err != nil {
			return nil, err
		}
		out = append(out, v...)
	}
	if len(out) < 10 {
		return nil, fmt.Errorf("constscan: found only %v under %s: the scan is broken", out, root)
	}
	return out, nil
}
