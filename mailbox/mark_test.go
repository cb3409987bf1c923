package mailbox

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/submission"
)

// TestMarkSaysWhoSeesIt: the "erledigt" section said "Die Markierung sieht nur
// Ihre Dienststelle", while the mark is an event of the case, which the
// applicant's portal reads with the case's history, the clerk's name
// included. The page says what is so.
func TestMarkSaysWhoSeesIt(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	page := anna.get("/postfach/s/" + sub.ID).Body.String()
	if got := anna.post("/postfach/s/"+sub.ID+"/erledigt", url.Values{"csrf": {csrfFrom(t, page)}, "erledigt": {"ja"}}); got.Code != http.StatusSeeOther {
		t.Fatalf("marking: %d", got.Code)
	}
	_, evs, err := e.b.PortalStatus(paket.ExampleSender, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, ev := range evs {
		seen = seen || (ev.Type == submission.EventProcessed && strings.Contains(ev.Actor, "anna"))
	}
	if !seen {
		t.Fatalf("the portal's events lack the mark with anna's name: %+v; the page's words below are then untrue", evs)
	}
	if strings.Contains(page, "sieht nur Ihre Dienststelle") || !strings.Contains(page, "das Portal sieht sie aber im Verlauf des Eingangs, mit Ihrem Benutzernamen") {
		t.Errorf("the page says of the mark:\n%s\nwant that the portal sees it with her name", page[strings.Index(page, `id="h-erledigt"`):][:600])
	}
}
