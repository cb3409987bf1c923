package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// decideWith lets the office at n decide with a reason (JSON; "": none), through
// the office API.
func (n *fedNode) decideWith(t *testing.T, sender, messageID, outcome, reasonJSON string) {
	t.Helper()
	s, err := n.g.Broker.FindMessage(sender, messageID)
	if err != nil {
		t.Fatal(err)
	}
	body := "{}"
	if reasonJSON != "" {
		body = `{"reason":` + reasonJSON + `}`
	}
	req, _ := http.NewRequest(http.MethodPost, n.url()+wire.OfficeDecisionPath(s.ID, outcome), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+fedOfficeToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("office at %s decides %s with %s: %d", n.id, outcome, reasonJSON, resp.StatusCode)
	}
}

// TestPeerStatusSurvivesAnOfficesOddText: the office API takes a reason that is
// only a control character, or one with U+FFFF (no XML character). The receiving
// gateway's Statusauskunft carried it as <Grund> </Grund> or raw, which the
// forwarding gateway cannot read: the whole answer was refused, for every package
// of the question (up to 500), at every poll, so no decision of that peer's
// offices reached the portals any more. Now the answer names only what XML can
// carry and leaves out what is empty, and every decision comes through.
func TestPeerStatusSurvivesAnOfficesOddText(t *testing.T) {
	sn, by := snAndBy(t)

	reasons := map[string]string{ // JSON strings, as an office system sends them
		"control":  `"\u0001"`,
		"nonchar":  `"Nachweis fehlt \uffff"`,
		"nbsp":     `"\u00a0\u0002"`,
		"accepted": `""`,
	}
	ids := map[string]string{}
	for name := range reasons {
		ids[name] = sn.submit(t, fedMuenchenARS)
	}
	for name, id := range ids {
		s := sn.waitState(t, id, submission.StateDelivered)
		outcome := wire.OutcomeRejected
		if name == "accepted" {
			outcome = wire.OutcomeAccepted
		}
		by.decideWith(t, s.Sender, s.MessageID, outcome, reasons[name])
	}
	// The plain acceptance first: it was held back by the others in the same question.
	sn.waitState(t, ids["accepted"], submission.StateAccepted)
	for name, id := range ids {
		if name == "accepted" {
			continue
		}
		s := sn.waitState(t, id, submission.StateRejected)
		if strings.ContainsAny(s.Decision.Reason, "\u0001\u0002\uffff") {
			t.Errorf("%s: sn records the reason %q", name, s.Decision.Reason)
		}
	}
	if s := sn.sub(t, ids["nonchar"]); !strings.HasPrefix(s.Decision.Reason, "Nachweis fehlt") {
		t.Errorf("the reason with a non-character: %q", s.Decision.Reason)
	}
}

// TestPeerThatLostAPackageSaysSo: the receiving gateway acknowledged a package
// with its signed receipt and then lost it (a restore from an older backup). Its
// status answers say "unbekannt", which the forwarding gateway skipped: the
// package stayed "delivered" there with nothing more ever coming, and nobody was
// told. Now its event log says so once, for the portal and the operator.
func TestPeerThatLostAPackageSaysSo(t *testing.T) {
	sn, by := snAndBy(t)

	id := sn.submit(t, fedMuenchenARS)
	s := sn.waitState(t, id, submission.StateDelivered)
	lost, err := by.g.Broker.FindMessage(s.Sender, s.MessageID)
	if err != nil {
		t.Fatal(err)
	}
	if err := by.g.db.Delete(lost.ID); err != nil {
		t.Fatal(err)
	}
	var said []submission.Event
	waitFor(t, "the peer's unknown in the event log", func() bool {
		evs, err := sn.g.Broker.Log(id)
		if err != nil {
			t.Fatal(err)
		}
		said = said[:0]
		for _, e := range evs {
			if e.Type == submission.EventPeerStatus && strings.Contains(e.Detail, "unbekannt") {
				said = append(said, e)
			}
		}
		return len(said) > 0
	})
	time.Sleep(500 * time.Millisecond) // five more polls
	evs, err := sn.g.Broker.Log(id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Type == submission.EventPeerStatus && strings.Contains(e.Detail, "unbekannt") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d events say the peer does not know the package, want one", n)
	}
	if got := sn.sub(t, id).State; got != submission.StateDelivered {
		t.Fatalf("state %s, want delivered kept", got)
	}
}
