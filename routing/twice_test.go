package routing

import (
	"errors"
	"strings"
	"testing"
)

// TestKeyTwiceInOneFileIsRefused: an office, peer or service given twice in
// one operator's file (a copied block whose id was not changed) loaded without
// a word, the later record replacing the earlier with its channels, and
// `directory check` said ok. Like two responsible offices for one slot
// (TestContradictingRecordsInOneFileAreRefused) it is a mistake in the file and
// is refused naming both lines; across files a later one still replaces an
// earlier one.
func TestKeyTwiceInOneFileIsRefused(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"office", `offices:
  - {id: amt-a, name: "Amt A", kanaele: [{kind: mailbox}]}
  - {id: amt-b, name: "Amt B", kanaele: [{kind: mailbox}]}
  - {id: amt-a, name: "Amt A, Außenstelle", kanaele: [{kind: webhook, endpoint: "https://a.example/hook"}]}
`, "overlay.yaml:4: office amt-a is defined here and at line 2 of the same file"},
		{"peer", `peers:
  - {land: "16", name: Thüringen, gatewayId: gateway-th, baseUrl: "https://gateway.th.example"}
  - {land: "16", name: Thüringen, gatewayId: gateway-th-test, baseUrl: "https://test.th.example"}
`, "overlay.yaml:3: peer 16 is defined here and at line 2 of the same file"},
		{"service", `services:
  - {key: "99000000000123", name: Prüfleistung}
  - {key: "99000000000123", name: Prüfleistung neu}
`, "overlay.yaml:3: service 99000000000123 is defined here and at line 2 of the same file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := buildOverlay(t, tc.body)
			if !errors.Is(err, ErrInvalidData) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant ErrInvalidData with %q", err, tc.want)
			}
		})
	}
	// The same office in two files: the later file corrects the earlier.
	d, err := withOverlays(t,
		"offices:\n  - {id: amt-a, name: \"Amt A\", kanaele: [{kind: mailbox}]}\n",
		"offices:\n  - {id: amt-a, name: \"Amt A (neu)\", kanaele: [{kind: mailbox}]}\n")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := d.Office("amt-a"); !ok || o.Name != "Amt A (neu)" {
		t.Fatalf("office amt-a after two files: %+v, want the later file's", o)
	}
}
