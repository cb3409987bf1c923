// Package testenv gives tests what lies outside Go: the repository root (for shipped
// test data and tools/node) and external programs such as xmlsec1, xmllint and node.
// A missing program fails the test with what to install; it never skips, because a
// skipped interop test would let CI pass without the interop being checked.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// PlantedDefects is the self-test of a conformance suite: for every defect it runs
// the test binary again as a child (TestDefectChild, with envVar set to the defect)
// on only the case that must catch it, and fails unless that case fails. Running one
// case alone also proves each case stands on its own. what names the implementation
// in messages ("a store", "an adapter"). The caller returns at once when envVar is
// set: then it is the child.
func PlantedDefects(t *testing.T, envVar, what string, cases map[string]string) {
	t.Helper()
	for defect, failingCase := range cases {
		t.Run(defect, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestDefectChild$/^"+failingCase+"$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), envVar+"="+defect)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("suite passed %s with defect %q:\n%s", what, defect, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestDefectChild/"+failingCase) {
				t.Errorf("defect %q did not fail case %s:\n%s", defect, failingCase, out)
			}
		})
	}
}
