package callback

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
	"github.com/amtsbote/amtsbote/wire/fitconnecttest"
)

// TestCallbackConformsToFITConnect checks a real callback, as the portal received
// it, against the official CallbackNewEvents schema: a portal built on a
// FIT-Connect SDK reads destinationId, submissionId and caseId as UUIDs. The
// destinationId is the one /v1/routes gave the portal for the office (or for the
// peer gateway a submission went to), the readable office id is beside it.
func TestCallbackConformsToFITConnect(t *testing.T) {
	p := newPortalEnd(t)
	n := start(t, Options{Window: 100 * time.Millisecond, Portals: []Portal{{ID: "amt24", Endpoint: p.srv.URL, Secret: p.secret}}})
	local := sub("0190f1c2-7d1e-7cc3-9c52-3a7c1f0e5b21", "amt24", "dresden-allgemeine-verwaltung")
	local.Targets = []submission.Target{{Channel: channel.Webhook}}
	forwarded := sub("0190f1c2-7d1e-7cc3-9c52-3a7c1f0e5b22", "amt24", "peer-09")
	forwarded.Targets = []submission.Target{{Channel: channel.Peer}}
	n.Observe(local, submission.Event{Type: submission.EventReceived})
	n.Observe(forwarded, submission.Event{Type: submission.EventReceived})
	p.waitIDs(t, 2)

	p.mu.Lock()
	raw := p.raw
	p.mu.Unlock()
	if len(raw) != 1 {
		t.Fatalf("%d callbacks, want 1", len(raw))
	}
	fitconnecttest.Validate(t, "CallbackNewEvents", raw[0])

	var b struct {
		Submissions []struct{ DestinationID, SubmissionID, CaseID, OfficeID string }
	}
	if err := json.Unmarshal(raw[0], &b); err != nil {
		t.Fatal(err)
	}
	want := []struct{ DestinationID, SubmissionID, CaseID, OfficeID string }{
		{wire.OfficeDestinationID("dresden-allgemeine-verwaltung"), local.ID, local.ID, "dresden-allgemeine-verwaltung"},
		{wire.PeerDestinationID("09"), forwarded.ID, forwarded.ID, "peer-09"},
	}
	if len(b.Submissions) != len(want) {
		t.Fatalf("submissions %+v", b.Submissions)
	}
	for i := range want {
		if b.Submissions[i] != want[i] {
			t.Errorf("submissions[%d] = %+v, want %+v", i, b.Submissions[i], want[i])
		}
	}
}
