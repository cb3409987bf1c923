// Package fitconnecttest checks JSON bodies that amtsbote sends where it claims
// FIT-Connect's shape against the official FIT-Connect Submission API 1.1.3
// (../shared/specs/fit-connect next to the repository), so that a FIT-Connect
// client that validates or parses by the spec is not refused a body we emit.
//
// The spec is read from that unchanged copy, never from a copy in this repository,
// so a drift of ours cannot be hidden by editing the reference. A missing file
// fails the test; it never skips.
package fitconnecttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/amtsbote/amtsbote/internal/testenv"
)

// SpecFile is the Submission API's file name in ../shared/specs/fit-connect.
const SpecFile = "submission-api-1.1.3.yaml"

// uuid is the textual form of any UUID (RFC 9562: the versions 1 to 8, so the
// gateway's version 7 submission ids and version 5 destination ids alike).
// kin-openapi asserts no "uuid" format by default; FIT-Connect's SDKs parse these
// fields as UUIDs, so the check is as strict as they are.
var uuid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

var (
	mu  sync.Mutex
	doc *openapi3.T
)

// Spec loads the official Submission API document (once per test binary).
func Spec(tb testing.TB) *openapi3.T {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if doc != nil {
		return doc
	}
	p := filepath.Join(testenv.RepoRoot(tb), "..", "shared", "specs", "fit-connect", SpecFile)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("the official FIT-Connect specification is expected at %s: %v", p, err)
	}
	d, err := openapi3.NewLoader().LoadFromFile(p)
	if err != nil {
		tb.Fatalf("load %s: %v", p, err)
	}
	doc = d
	return doc
}

// Check validates body against the named schema of components/schemas (e.g.
// "CallbackNewSubmissions") and returns what does not conform, or nil.
func Check(tb testing.TB, schema string, body []byte) error {
	tb.Helper()
	ref := Spec(tb).Components.Schemas[schema]
	if ref == nil || ref.Value == nil {
		tb.Fatalf("%s has no schema %q", SpecFile, schema)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	return ref.Value.VisitJSON(v, openapi3.MultiErrors(), openapi3.DisableSchemaErrorDetails(),
		openapi3.EnableFormatValidation(),
		openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(uuid.String())))
}

// Validate fails the test unless body conforms to the named schema.
func Validate(tb testing.TB, schema string, body []byte) {
	tb.Helper()
	if err := Check(tb, schema, body); err != nil {
		tb.Errorf("body does not conform to FIT-Connect's %s (%s):\n%v\nbody: %s", schema, SpecFile, err, body)
	}
}
