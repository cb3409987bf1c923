package api_test

import (
	"os"
	"testing"

	"github.com/amtsbote/amtsbote/api/contracttest"
)

// TestMain holds every answer this package's tests get from a gateway through
// http.DefaultClient to the contract, strictly (contracttest.Watch): an
// undeclared JSON member, status or content type fails the test binary, naming
// the operation.
func TestMain(m *testing.M) {
	os.Exit(contracttest.RunWatched(m))
}
