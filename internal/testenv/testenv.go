// Package testenv gives tests what lies outside Go: the repository root (for shipped
// test data and tools/node) and external programs such as xmlsec1, xmllint and node.
// A missing program fails the test with what to install; it never skips, because a
// skipped interop test would let CI pass without the interop being checked.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RepoRoot walks up from the working directory to the folder holding go.mod.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// Tool returns the path of an external program, failing the test if it is missing.
// install says how to get it (e.g. "apt-get install -y xmlsec1"); .ci/run installs
// every program the tests need.
func Tool(tb testing.TB, name, install string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("%s is required by this test but not installed: %s (.ci/run installs it)", name, install)
	}
	return p
}
