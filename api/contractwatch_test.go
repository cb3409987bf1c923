package api_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/amtsbote/amtsbote/api/contracttest"
)

// TestMain holds every answer this package's tests get from a gateway through
// http.DefaultClient to the contract, strictly (contracttest.Watch): an
// undeclared JSON member, status or content type fails the test binary, naming
// the operation.
func TestMain(m *testing.M) {
	watch := &contracttest.Watch{Next: http.DefaultTransport}
	// http.DefaultClient's, not http.DefaultTransport itself: the gateway's
	// outbound clients clone that one as an *http.Transport.
	http.DefaultClient.Transport = watch
	code := m.Run()
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "contracttest.Watch: %d answers held to api/openapi.yaml\n", watch.Checked())
	}
	if broken := watch.Report(); broken != "" {
		fmt.Fprint(os.Stderr, broken)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
