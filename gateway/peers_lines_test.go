package gateway

import (
	"testing"

	"github.com/amtsbote/amtsbote/config"
)

// TestPeerOfficesOfOnePeerShareALine: the peer offices of the Länder one peer
// serves, and of peers sharing a Land, are one line of the broker (one cap of
// delivery.per_office); other offices keep their own
// (broker.TestOfficesOfOneLineShareTheirCap says why).
func TestPeerOfficesOfOnePeerShareALine(t *testing.T) {
	if l := peerLines([]config.Peer{{ID: "a", Lands: []string{"01"}}, {ID: "b", Lands: []string{"02"}, Areas: []string{"02111"}}}); l != nil {
		t.Errorf("peers of one Land each: a line function, want none (every office its own line)")
	}
	line := peerLines([]config.Peer{
		{ID: "a", Lands: []string{"02", "01"}},
		{ID: "b", Lands: []string{"03"}},
		{ID: "c", Lands: []string{"04"}, Areas: []string{"03111"}}, // shares 03 with b
		{ID: "d", Lands: []string{"05"}},
		{ID: "e", Lands: []string{"16", "06"}},
	})
	if line == nil {
		t.Fatal("no lines")
	}
	for office, want := range map[string]string{"peer-01": "peer-01", "peer-02": "peer-01", "peer-03": "peer-03", "peer-04": "peer-03",
		"peer-05": "peer-05", "peer-06": "peer-06", "peer-16": "peer-06", "peer-07": "peer-07", "kvr-muenchen": "kvr-muenchen"} {
		if got := line(office); got != want {
			t.Errorf("%s is in line %s, want %s", office, got, want)
		}
	}
}
