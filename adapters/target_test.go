package adapters_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/adapters"
)

// TestTargetKeepsTokensOutOfLogs: offices put tokens in their endpoint's query;
// every failed webhook attempt logged the whole endpoint until an audit saw it
// (2026-12-04). Neither the structured log nor fmt shows a query, a fragment,
// user info or the secret; endpoints that are not URLs show as they are.
func TestTargetKeepsTokensOutOfLogs(t *testing.T) {
	for _, tc := range []struct{ endpoint, want string }{
		{"https://fv.dresden.example/hook?token=SECRETQUERY", "https://fv.dresden.example/hook"},
		{"https://user:SECRETPW@fv.example/a%20b#SECRETFRAG", "https://fv.example/a%20b"},
		{"https://fv.example/%zz?token=SECRETQUERY", "https://fv.example/%zz"}, // not a URL Go reads
		{"/srv/amtsbote/transfer/dresden", "/srv/amtsbote/transfer/dresden"},
		{"urn:de:xta:dresden", "urn:de:xta:dresden"},
	} {
		tg := adapters.Target{Channel: "webhook", Endpoint: tc.endpoint, Secret: "whsec_SECRETKEY"}
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("attempt", "target", tg)
		for _, out := range []string{buf.String(), fmt.Sprint(tg), tg.String()} {
			if strings.Contains(out, "SECRET") || !strings.Contains(out, tc.want) {
				t.Errorf("%s: %q, want %q and no secret", tc.endpoint, out, tc.want)
			}
		}
	}
}
