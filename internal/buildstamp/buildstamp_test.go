package buildstamp

import "testing"

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
