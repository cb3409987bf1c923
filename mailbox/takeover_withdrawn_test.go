package mailbox

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
)

// TestLateFolderWithdrawnIsOnThePage: the gateway withdraws a case folder
// that reached the transfer folder after the clerk's takeover. Once its
// withdrawal event says it removed the folder, the clerk's page no longer
// warns of a duplicate: a short note (a section with its own heading, as the
// warning) says the copy was removed before the Fachverfahren read it, the
// header says the Fachverfahren does not get the case, the takeover's message
// says so too, and the history names the removal in the takeover's words, not
// an erasure's. A folder the import took first, or one the gateway could not
// reach, keeps the warning, and its history says which.
func TestLateFolderWithdrawnIsOnThePage(t *testing.T) {
	mem := newMemDesk()
	addBound(mem, submission.StateQueued, channel.Transfer, "entfernt", "eingelesen", "unerreichbar")
	m := annasMailbox(t, Options{Desk: mem})
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	for _, id := range []string{"entfernt", "eingelesen", "unerreichbar"} {
		csrf := csrfFrom(t, c.get("/postfach/s/"+id).Body.String())
		if res := c.post("/postfach/s/"+id+"/uebernehmen", url.Values{"csrf": {csrf}}).Result(); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("the takeover of %s: %d", id, res.StatusCode)
		}
		mem.HandOverAfterTakeover(t, id)
	}
	// Before the withdrawal has answered, the page warns: the folder is there.
	if page := c.get("/postfach/s/entfernt").Body.String(); !strings.Contains(page, "Achtung, möglicherweise doppelt") || strings.Contains(page, "h-entfernt") {
		t.Fatalf("before the withdrawal the page does not warn, or says the copy was removed")
	}

	mem.LateFolderWithdrawal(t, "entfernt", string(adapters.WithdrawRemoved))
	page := c.get("/postfach/s/entfernt").Body.String()
	for _, want := range []string{
		`<section class="meldung hinweis" aria-labelledby="h-entfernt" id="entfernt">`,
		`<h2 id="h-entfernt">Kopie aus dem Übergabeordner entfernt</h2>`,
		"trotz der Übernahme noch in den Übergabeordner Ihres Fachverfahrens gelangt (festgestellt am ",
		"wieder entfernt, bevor das Fachverfahren sie eingelesen hat",
		"das ihn nicht mehr erhält (eine Kopie, die trotzdem in den Übergabeordner gelangt war, ist wieder entfernt",
		"Nach der Übernahme in den Übergabeordner gelangte Kopie entfernt, bevor das Fachverfahren sie eingelesen hat",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page of the case whose late folder was withdrawn lacks %q", want)
		}
	}
	for _, not := range []string{"möglicherweise doppelt", "das ihn trotzdem erhalten hat", "Bitten Sie Ihre IT", "Löschung: bereitgestellte Kopie"} {
		if strings.Contains(page, not) {
			t.Errorf("the page of the case whose late folder was withdrawn says %q", not)
		}
	}
	flashed := c.get("/postfach/s/entfernt?meldung=uebernommen").Body.String()
	if !strings.Contains(flashed, "dorthin geht er nicht mehr") || strings.Contains(flashed, "möglicherweise doppelt") {
		t.Errorf("the takeover's message of a case whose late folder was withdrawn still points at a warning")
	}

	for id, label := range map[string]string{
		"eingelesen":   "Nach der Übernahme in den Übergabeordner gelangte Kopie: vom Fachverfahren schon eingelesen, nicht entfernt",
		"unerreichbar": "Nach der Übernahme in den Übergabeordner gelangte Kopie konnte nicht entfernt werden (Übergabeordner nicht erreichbar)",
	} {
		outcome := string(adapters.WithdrawTaken)
		if id == "unerreichbar" {
			outcome = broker.WithdrawUnreachable
		}
		mem.LateFolderWithdrawal(t, id, outcome)
		page := c.get("/postfach/s/" + id).Body.String()
		for _, want := range []string{`<h2 id="h-doppelt">Achtung, möglicherweise doppelt</h2>`, "das ihn trotzdem erhalten hat", label} {
			if !strings.Contains(page, want) {
				t.Errorf("the page of %s lacks %q", id, want)
			}
		}
		if strings.Contains(page, "h-entfernt") {
			t.Errorf("the page of %s says the copy was removed", id)
		}
	}
}

// TestLateFolderWithdrawnReadsOnlyRemovals: the page's decision is the
// record's and its events' alone — a removal on the transfer channel at or
// after the late hand-over. An erasure's removal of an earlier copy, or a
// withdrawal that removed nothing, is no withdrawal of the late folder.
func TestLateFolderWithdrawnReadsOnlyRemovals(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	s := &submission.Submission{ID: "s1", TakenOverFrom: channel.Transfer, HandedOverAfterTakeoverAt: &at}
	ev := func(outcome string, when time.Time, late bool) submission.Event {
		got := broker.ChannelWithdrawal{Channel: channel.Transfer, Outcome: outcome, Reference: "20261207-s1"}
		e, ok := broker.LateFolderEvent(got, false, "gateway", when)
		if !late { // an erasure's words
			e.Detail = "the copy waiting for the office on channel transfer (20261207-s1) was removed before the office took it: the office does not get the case there"
		}
		if !ok {
			t.Fatalf("no event for %s", outcome)
		}
		return e
	}
	removed := string(adapters.WithdrawRemoved)
	for _, tc := range []struct {
		name string
		s    *submission.Submission
		evs  []submission.Event
		want bool
	}{
		{"removed after the hand-over", s, []submission.Event{ev(removed, at.Add(time.Second), true)}, true},
		{"an erasure's removal after it", s, []submission.Event{ev(removed, at.Add(time.Hour), false)}, true},
		{"a removal before it", s, []submission.Event{ev(removed, at.Add(-time.Second), false)}, false},
		{"taken", s, []submission.Event{ev(string(adapters.WithdrawTaken), at.Add(time.Second), true)}, false},
		{"unreachable", s, []submission.Event{ev(broker.WithdrawUnreachable, at.Add(time.Second), true)}, false},
		{"no late hand-over", &submission.Submission{ID: "s1"}, []submission.Event{ev(removed, at.Add(time.Second), true)}, false},
	} {
		if got := lateFolderWithdrawn(tc.s, tc.evs); got != tc.want {
			t.Errorf("%s: lateFolderWithdrawn = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestLateFolderFoundGoneIsNoErasure: the gateway could not reach the share
// when a case folder reached it after the clerk's takeover; when it asked
// again, the folder was gone and nothing of the case was left there (the
// office's IT took it out, ledger record and all). The history names that in
// the takeover's words — not "Löschung", an erasure's, on a case nobody
// erased — and the page keeps its warning: nobody knows whether the import
// read the folder first.
func TestLateFolderFoundGoneIsNoErasure(t *testing.T) {
	mem := newMemDesk()
	addBound(mem, submission.StateQueued, channel.Transfer, "weg")
	m := annasMailbox(t, Options{Desk: mem})
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	csrf := csrfFrom(t, c.get("/postfach/s/weg").Body.String())
	if res := c.post("/postfach/s/weg/uebernehmen", url.Values{"csrf": {csrf}}).Result(); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the takeover: %d", res.StatusCode)
	}
	mem.HandOverAfterTakeover(t, "weg")
	mem.LateFolderWithdrawal(t, "weg", string(adapters.WithdrawNothing))
	page := c.get("/postfach/s/weg").Body.String()
	for _, want := range []string{
		`<h2 id="h-doppelt">Achtung, möglicherweise doppelt</h2>`,
		"Nach der Übernahme in den Übergabeordner gelangte Kopie war beim erneuten Nachfragen nicht mehr dort",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(page, "Löschung: bereitgestellte Kopie") {
		t.Error("the history calls the gateway's question an erasure, of a case nobody erased")
	}
}
