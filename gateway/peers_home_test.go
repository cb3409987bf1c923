package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/submission"
)

// submitKey sends a new package of n's portal amt24 for the service (LeiKa key)
// at the place and returns the answer and its NachrichtID.
func (n *fedNode) submitKey(t *testing.T, key, ars string) (*portal.Result, string) {
	t.Helper()
	msg := paket.NewMessageID()
	p := paket.ExampleWith(key, msg, time.Now().UTC().Truncate(time.Second))
	p.Kopf.Ort = paket.Ort{ARS: ars}
	res, err := n.portal(t).Submit(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return res, msg
}

// TestPeerForTheBuiltinHomeLandCarriesItsPlaces: a Bavarian gateway (the
// operator's homeLands ["09"]) with a configured peer gateway for Saxony and no
// directory peer entry for it. Saxon places go to that peer: a package for
// Dresden had a 201 into the built-in Amt24 office's mailbox at the Bavarian
// gateway, which no Saxon office reads, and one for Leipzig was refused (422
// no-responsible-office) although the configuration named Saxony's gateway.
// Without the configured peer both are refused before a 201.
func TestPeerForTheBuiltinHomeLandCarriesItsPlaces(t *testing.T) {
	const wohnsitz = "99115005104000" // generated sample offices in Saxony
	sn := newFedNode(t, "amtsbote-sn")
	by := newFedNode(t, "amtsbote-by")
	fedTrust(t, sn, by)
	by.offices = "homeLands: [\"09\"]\n"
	by.cfg.Peers = append(by.cfg.Peers, config.Peer{ID: sn.id, Name: "Sachsen", Lands: []string{"14"},
		BaseURL: sn.url(), PollInterval: 100 * time.Millisecond, ClockSkew: 2 * time.Minute})
	sn.peer(by, "", time.Hour, "09")
	sn.start(t)
	by.start(t)
	if len(by.dirPeers) != 0 {
		t.Fatal("by's directory must not name a peer for Saxony here")
	}
	for _, tc := range []struct{ key, ars string }{
		{fedService, "146120000000"}, // the built-in Amt24 office's record
		{wohnsitz, "147130000000"},   // Leipzig: generated sample offices only
	} {
		res, msg := by.submitKey(t, tc.key, tc.ars)
		if res.Status != http.StatusCreated {
			t.Fatalf("%s at %s: %d %+v; want 201, forwarded to Saxony's gateway", tc.key, tc.ars, res.Status, res.Problem)
		}
		if s := by.sub(t, res.SubmissionID); s.OfficeID != "peer-14" || !strings.Contains(s.OfficeName, sn.id) {
			t.Fatalf("%s at %s: recorded for office %q (%s); want peer-14, Saxony's gateway %s", tc.key, tc.ars, s.OfficeID, s.OfficeName, sn.id)
		}
		by.waitState(t, res.SubmissionID, submission.StateForwarded)
		rec, err := sn.g.Broker.Lookup("amt24", msg)
		if err != nil || rec.Submission.Origin == nil || rec.Submission.Origin.Gateway != by.id {
			t.Fatalf("%s at %s: not at sn as by's forwarding: %v", tc.key, tc.ars, err)
		}
	}

	// Without a peer gateway for Saxony in the configuration: refused at intake.
	alone := newFedNode(t, "amtsbote-by2")
	alone.offices = "homeLands: [\"09\"]\n"
	alone.start(t)
	for _, tc := range []struct{ key, ars string }{{fedService, "146120000000"}, {wohnsitz, "147130000000"}} {
		res, _ := alone.submitKey(t, tc.key, tc.ars)
		if res.Status != http.StatusUnprocessableEntity || !strings.HasSuffix(res.Problem.Type, "no-responsible-office") {
			t.Errorf("%s at %s without a peer for Saxony: %d %+v; want 422 no-responsible-office", tc.key, tc.ars, res.Status, res.Problem)
		}
	}
}
