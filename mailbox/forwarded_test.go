package mailbox

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/broker/desktest"
)

// TestForwardedCaseOffersNoDecision: a case forwarded to a peer gateway is
// decided by the office there (submission.Submission.Decide refuses it here).
// Once the peer reported the delivery the record is delivered, and the page
// offered the decision form all the same; the clerk's decision was refused
// and answered "konflikt" — "Über diesen Antrag wurde bereits anders
// entschieden" — when nobody had decided anything. The page says who decides
// instead, and a decision posted anyway goes back to it without that claim.
func TestForwardedCaseOffersNoDecision(t *testing.T) {
	mem := newMemDesk()
	id := mem.HandOver(t, desktest.Case{Office: "amt-a", Package: []byte("<Antragspaket/>")})
	mem.Forward(t, id)
	mem.PeerDelivered(t, id)
	m := annasMailbox(t, Options{Desk: mem})
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")

	page := c.get("/postfach/s/" + id).Body.String()
	if strings.Contains(page, "Entscheidung speichern") || !strings.Contains(page, "an ein Partner-Gateway weitergeleitet; über ihn entscheidet die Dienststelle dort") {
		t.Errorf("the page of a forwarded case the peer delivered offers a decision, or does not say who decides:\n%s", page)
	}
	res := c.post("/postfach/s/"+id+"/entscheidung", url.Values{"csrf": {csrfFrom(t, page)}, "ergebnis": {"annehmen"}, "verfasser": {"anna"}}).Result()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/postfach/s/"+id {
		t.Errorf("a decision posted for it: %d to %q, want back to its page without a message", res.StatusCode, res.Header.Get("Location"))
	}
	if s, _ := mem.Get(context.Background(), "amt-a", id); s.Decision != nil {
		t.Errorf("a decision was recorded: %+v", s.Decision)
	}
}
