package broker

import (
	"testing"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/store"
)

// StartForTest is startEnv for the tests of package broker_test, which can
// import what imports broker (broker/desktest): a broker over real bbolt and
// embedded JetStream in dir, its store seen through wrap (nil: as it is),
// every channel of every office configured, stopped on cleanup.
func StartForTest(t *testing.T, dir string, wrap func(*store.DB) store.Store, as ...adapters.Adapter) *Broker {
	t.Helper()
	return startEnv(t, dir, testConfig, testChannels, wrap, as...).b
}
