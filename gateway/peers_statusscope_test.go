package gateway

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/submission"
)

// TestPeerStatusNamesOnlyWhatThePeerForwarded: a peer gateway learns through its
// status question only about the packages it forwarded here (docs/federation.md:
// "unbekannt" for one it did not). Every gateway's development portal is
// "amt24", and message ids travel with the packages, so a peer that asked about
// this gateway's own portal's packages, or another peer's, by sender and
// NachrichtID was answered their state, office and decision. A third peer
// ("amtsbote-th", trusted by by, never started: it only signs) asks about the
// package sn forwarded.
func TestPeerStatusNamesOnlyWhatThePeerForwarded(t *testing.T) {
	sn, by, th := snByAndTh(t)

	forwarded := sn.waitState(t, sn.submit(t, fedMuenchenARS), submission.StateDelivered)
	own := by.sub(t, by.submit(t, fedMuenchenARS)) // by's own portal's package, never at sn
	fwd := federation.Ref{Sender: forwarded.Sender, MessageID: forwarded.MessageID}

	items := askStatus(t, sn, by, fwd, federation.Ref{Sender: own.Sender, MessageID: own.MessageID})
	if got := items[0].State; got == federation.StateUnknown || got == "" {
		t.Errorf("the package sn forwarded, asked about by sn: %q, want its state (the control)", got)
	}
	wantUnknown(t, "by's own portal's package, asked about by sn", items[1])
	wantUnknown(t, "the package sn forwarded, asked about by another peer", askStatus(t, th, by, fwd)[0])
}

// snByAndTh starts sn and its Munich peer by, and makes th a third peer that by
// trusts: th never runs, it only signs what it asks of by.
func snByAndTh(t *testing.T) (sn, by, th *fedNode) {
	t.Helper()
	sn = newFedNode(t, "amtsbote-sn")
	by = newMunichPeer(t, sn)
	th = newFedNode(t, "amtsbote-th")
	fedTrust(t, th, by)
	by.peer(th, "", time.Hour, "16")
	by.start(t)
	sn.peer(by, "", 100*time.Millisecond, "09")
	sn.start(t)
	return sn, by, th
}

// askStatus sends from's signed status question about refs to to and returns
// the answer's items, one per ref.
func askStatus(t *testing.T, from, to *fedNode, refs ...federation.Ref) []federation.Status {
	t.Helper()
	q := &federation.Query{From: from.id, To: to.id, At: time.Now().UTC(), Refs: refs}
	doc, err := q.Sign(from.gatewaySigner(t))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(to.url()+federation.PathStatus, federation.ContentType, bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status question of %s: %d %s", from.id, resp.StatusCode, body)
	}
	d := etree.NewDocument()
	if err := d.ReadFromBytes(body); err != nil {
		t.Fatal(err)
	}
	rp, err := federation.ParseReport(d.Root())
	if err != nil {
		t.Fatal(err)
	}
	if len(rp.Items) != len(refs) {
		t.Fatalf("%d items, want %d: %s", len(rp.Items), len(refs), body)
	}
	return rp.Items
}

func wantUnknown(t *testing.T, what string, it federation.Status) {
	t.Helper()
	if it.State != federation.StateUnknown || it.SubmissionID != "" || it.Receiver != "" || it.Decision != nil {
		t.Errorf("%s: state %q, id %q, receiver %q; want %q and nothing else", what, it.State, it.SubmissionID, it.Receiver, federation.StateUnknown)
	}
}
