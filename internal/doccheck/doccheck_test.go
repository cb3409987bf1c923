package doccheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// root is the repository, seen from this package's folder.
const root = "../.."

// namedTest is a test or fuzz target in backticks, with its package's folder name
// ("`gateway.TestAPIContract`", "`cmd/amtsbote.TestAdminCommands`") or without
// one ("`TestDevPKIKeepsExistingKey`"); a trailing "*" names every test that
// starts so ("`TestDevPKIReceiptKey*`"). A name in a sentence also counts when
// it stands in backticks of its own; a package path's last folder is the package.
var namedTest = regexp.MustCompile("`(?:([a-z0-9/]+)\\.)?((?:Test|Fuzz)[A-Z][A-Za-z0-9_]*)(\\*?)`")

// testFuncs lists the Test and Fuzz functions of every _test.go file under dir,
// by the name of the folder that holds them.
func testFuncs(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != dir && (strings.HasPrefix(n, ".") || n == "testdata" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		pkg := filepath.Base(filepath.Dir(path))
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil &&
				(strings.HasPrefix(fn.Name.Name, "Test") || strings.HasPrefix(fn.Name.Name, "Fuzz")) {
				out[pkg] = append(out[pkg], fn.Name.Name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// missing returns the names in doc that no test function answers.
func missing(doc string, funcs map[string][]string) []string {
	var all []string
	for _, fns := range funcs {
		all = append(all, fns...)
	}
	var out []string
	for _, m := range namedTest.FindAllStringSubmatch(doc, -1) {
		pkg, name, prefix := m[1], m[2], m[3] == "*"
		if pkg != "" {
			pkg = pkg[strings.LastIndex(pkg, "/")+1:]
		}
		in := all
		if pkg != "" {
			in = funcs[pkg]
		}
		found := slices.ContainsFunc(in, func(fn string) bool {
			return fn == name || prefix && strings.HasPrefix(fn, name)
		})
		if !found {
			out = append(out, strings.Trim(m[0], "`"))
		}
	}
	return out
}

// TestNamedTestsExist: every test the README and docs/ name as the proof of
// something — the README's table of promises, a page's "Tests" list, a "(…)"
// after a statement — is a test function of the package it is named with. The
// promises table is read by people deciding whether to trust the gateway; a
// proof renamed in the code and not on the page sent them looking for nothing.
func TestNamedTestsExist(t *testing.T) {
	funcs := testFuncs(t, root)
	if !slices.Contains(funcs["doccheck"], "TestNamedTestsExist") {
		t.Fatalf("self-check: the walk did not find this test (packages: %d)", len(funcs))
	}
	// Self-check on planted names: a test of another package, a misspelt one and
	// a prefix nothing has are reported; a right one, with or without its package
	// path, and a prefix are not.
	planted := "`gateway.TestNamedTestsExist` `doccheck.TestNamedTestExist` `TestNoSuchPrefix*` " +
		"`doccheck.TestNamedTestsExist` `internal/doccheck.TestNamedTestsExist` `TestNamedTests*` `TestNamedTestsExist`"
	want := []string{"gateway.TestNamedTestsExist", "doccheck.TestNamedTestExist", "TestNoSuchPrefix*"}
	if got := missing(planted, funcs); !slices.Equal(got, want) {
		t.Fatalf("self-check: missing reported %q, want %q", got, want)
	}

	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, filepath.Join(root, "README.md"))
	named := 0
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		named += len(namedTest.FindAllString(string(b), -1))
		for _, name := range missing(string(b), funcs) {
			rel, _ := filepath.Rel(root, page)
			t.Errorf("%s names %s, which is no test of that package", rel, name)
		}
	}
	if named < 100 {
		t.Fatalf("only %d test names in README.md and docs/: the pattern no longer matches how they are written", named)
	}
	if !t.Failed() {
		t.Logf("%d test names in README.md and docs/, each a test", named)
	}
}
