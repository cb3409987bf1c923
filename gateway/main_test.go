package gateway

import (
	"fmt"
	"os"
	"testing"

	"github.com/amtsbote/amtsbote/api/contracttest"
)

// TestMain fails the package when a test left a data folder in the source tree:
// a configuration resolved without a DataDir puts the development PKI, private
// keys included, into ./data/pki, and one such run was committed. It also holds
// every answer the tests get from the REST API through http.DefaultClient to
// api/openapi.yaml, strictly (contracttest.Watch): a client generated from the
// contract meets them all, not only those of TestAPIContract's table.
func TestMain(m *testing.M) {
	_, before := os.Stat("data")
	code := contracttest.RunWatched(m)
	if _, after := os.Stat("data"); before != nil && after == nil {
		fmt.Fprintln(os.Stderr, "a test wrote ./data into the source tree (a configuration without DataDir): set cfg.DataDir to t.TempDir()")
		_ = os.RemoveAll("data")
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
