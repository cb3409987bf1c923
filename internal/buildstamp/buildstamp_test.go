package buildstamp

import (
	"os"
	"regexp"
	"testing"
)

// TestString: what an operator reads, for a release, a Git build and a build
// without either.
func TestString(t *testing.T) {
	for _, tc := range []struct {
		i    Info
		want string
	}{
		{Info{Version: "1.2.3", Revision: "0123456789ab"}, "1.2.3 (commit 0123456789ab)"},
		{Info{Version: "dev", Revision: "0123456789ab", Modified: true}, "dev (commit 0123456789ab, modified)"},
		{Info{Version: "dev"}, "dev"},
	} {
		if got := tc.i.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.i, got, tc.want)
		}
	}
	if Read().Version == "" {
		t.Error("Read gives no version")
	}
}

// TestOlderGo: a binary built with a Go release before FixedGo is told apart
// (its start warns), one without a known version is not; FixedGo is go.mod's
// toolchain line, the release make builds with.
func TestOlderGo(t *testing.T) {
	for v, want := range map[string]bool{"go1.26.8": true, "go1.27.2": true, "go1.27.3": false, "go1.28rc1": false, "go1.28.0": false, "": false, "devel go1.28-abc": false} {
		if got := (Info{GoVersion: v}).OlderGo(); got != want {
			t.Errorf("%q: OlderGo %v, want %v", v, got, want)
		}
	}
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^toolchain ` + regexp.QuoteMeta(FixedGo) + `$`).Match(mod) {
		t.Errorf("go.mod's toolchain line is not %s:\n%s", FixedGo, mod)
	}
}
