package mailbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/chromedp"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
)

// takeoverPage is what TestTakeoverInTheBrowser reads from a case's page.
type takeoverPage struct {
	Title, Flash, Head, Decision, History string
	Takeover                              bool   // the section "Für … bestimmt"
	Button                                string // its submit button's text
	Attachments, Package, DecisionForm    bool
	CSRF                                  bool // the takeover's form carries its token
}

const takeoverPageJS = `(() => {
	const q = s => document.querySelector(s);
	const txt = s => (q(s) || {}).textContent || '';
	const sec = q('section[aria-labelledby="h-uebernehmen"]');
	const btn = sec && sec.querySelector('form[method="post"] button[type="submit"]');
	const csrf = sec && sec.querySelector('form input[name="csrf"]');
	const pkg = [...document.querySelectorAll('a[href*="/paket"]')].find(a => a.textContent.trim() === 'Originalpaket herunterladen');
	return JSON.stringify({
		Title: document.title, Flash: txt('.meldung.ok'), Head: txt('dl.kopfdaten'),
		Decision: txt('#entscheidung'), History: txt('table.verlauf tbody'),
		Takeover: !!sec, Button: btn ? btn.textContent.trim() : '',
		Attachments: !!q('ul.anlagen a[href*="/anlage/"]'), Package: !!pkg,
		DecisionForm: !!q('#entscheidung #annehmen') && !!(q('#annehmen').form),
		CSRF: !!(csrf && csrf.value),
	});
})()`

// TestTakeoverInTheBrowser is TestTakeoverSaysWhatHappened in Chromium over a
// real broker, the way a clerk meets it (docs/mailbox.md, section 3): a case
// on its way to the office's Fachverfahren by XTA (pull mode, the mailbox its
// fallback) is marked so in the inbox; its page shows the record and the
// takeover, not the attachments, the package or the decision form, and
// opening it picks nothing up. The button "Eingang hier übernehmen und
// öffnen" sends the form (with its CSRF token); then the page says she took
// it over, for good in its header data and its history, shows what the
// takeover opened, and her acceptance decides the case. TestAccessibility
// checks both pages with axe-core.
func TestTakeoverInTheBrowser(t *testing.T) {
	r := newBrowserRig(t)
	sub := r.e.receiveFor(t, officeDresden, "", channel.XTA, channel.Mailbox)
	r.e.waitState(t, sub.ID, submission.StateHandedOver)
	if cur, _ := r.e.b.Submission(sub.ID); waitingElsewhere(cur) != "Ihr Fachverfahren (XTA)" {
		t.Fatalf("the case is not on its way to the Fachverfahren (XTA): %q; the test proves nothing", cur.BoundForSystem())
	}
	r.login()

	// The inbox marks it, and the clerk opens it from there.
	var row string
	r.eval(`JSON.stringify((document.querySelector('a[href="s/`+sub.ID+`"]') || {closest: () => ({})}).closest('tr').textContent || '')`, &row)
	if !strings.Contains(row, "für Ihr Fachverfahren (XTA)") {
		t.Errorf("the inbox's row of the case: %q, want it marked \"für Ihr Fachverfahren (XTA)\"", row)
	}
	if code := r.nav("open the case from the inbox", chromedp.Click(chromedp.CSS(`a[href="s/`+sub.ID+`"]`))); code != http.StatusOK {
		t.Fatalf("the case's page: HTTP %d", code)
	}
	var p takeoverPage
	r.eval(takeoverPageJS, &p)
	if !p.Takeover || p.Button != "Eingang hier übernehmen und öffnen" || !p.CSRF {
		t.Fatalf("the page of a case on its way to the Fachverfahren: takeover section %v, button %q, CSRF token %v; want the takeover",
			p.Takeover, p.Button, p.CSRF)
	}
	if p.Attachments || p.Package || p.DecisionForm {
		t.Errorf("before the takeover the page offers attachments %v, the package %v, the decision form %v; want none",
			p.Attachments, p.Package, p.DecisionForm)
	}
	if strings.Contains(p.Head, "Übernommen") || p.Flash != "" {
		t.Errorf("before the takeover the page says %q / %q", p.Head, p.Flash)
	}
	if cur, _ := r.e.b.Submission(sub.ID); cur.DeliveredAt != nil || cur.State != submission.StateHandedOver {
		t.Fatalf("opening the page picked the case up: state %s, delivered %v", cur.State, cur.DeliveredAt)
	}

	// The takeover.
	if code := r.nav("take over", chromedp.Click(chromedp.CSS(`section[aria-labelledby="h-uebernehmen"] button[type=submit]`))); code != http.StatusOK {
		t.Fatalf("after the takeover: HTTP %d", code)
	}
	cur, err := r.e.b.Submission(sub.ID)
	if err != nil || cur.TakenOverFrom != channel.XTA || cur.Receiver != "anna (Behördenpostfach)" || cur.State != submission.StateDelivered {
		t.Fatalf("the takeover in the broker: %v, state %s, taken over from %q by %q; want delivered, from xta, by anna (Behördenpostfach)",
			err, cur.State, cur.TakenOverFrom, cur.Receiver)
	}
	r.eval(takeoverPageJS, &p)
	if !strings.HasPrefix(p.Flash, "Sie haben den Eingang übernommen") || !strings.HasPrefix(p.Title, "Übernommen: ") {
		t.Errorf("after the takeover: flash %q, title %q", p.Flash, p.Title)
	}
	if !strings.Contains(p.Head, "Übernommen") || !strings.Contains(p.Head, "war für Ihr Fachverfahren (XTA) bestimmt, das ihn nicht mehr erhält") {
		t.Errorf("the header data after the takeover: %q, want its line \"Übernommen … war für Ihr Fachverfahren (XTA) bestimmt, das ihn nicht mehr erhält\"", p.Head)
	}
	if p.Takeover || !p.Attachments || !p.Package || !p.DecisionForm {
		t.Errorf("after the takeover: takeover section %v, attachments %v, package link %v, decision form %v; want the case opened",
			p.Takeover, p.Attachments, p.Package, p.DecisionForm)
	}
	if !strings.Contains(p.History, "Im Behördenpostfach übernommen; war für Ihr Fachverfahren (XTA) bestimmt") {
		t.Errorf("the history after the takeover: %q", p.History)
	}

	// She decides it here.
	r.do("choose Annehmen", chromedp.Click(chromedp.CSS("#annehmen")))
	if code := r.nav("accept", chromedp.Click(chromedp.CSS("#entscheidung button[type=submit]"))); code != http.StatusOK {
		t.Fatalf("after accepting: HTTP %d", code)
	}
	r.eval(takeoverPageJS, &p)
	if !strings.Contains(p.Head, "Angenommen") || !strings.Contains(p.Decision, "angenommen") || p.DecisionForm ||
		!strings.Contains(p.Head, "war für Ihr Fachverfahren (XTA) bestimmt") {
		t.Errorf("after accepting: header %q, decision %q, form %v; want the case accepted, still taken over", p.Head, p.Decision, p.DecisionForm)
	}
	if cur, _ := r.e.b.Submission(sub.ID); cur.State != submission.StateAccepted || cur.Decision == nil || cur.Decision.Actor != "anna" {
		t.Errorf("the broker after accepting: state %s, decision %+v", cur.State, cur.Decision)
	}
}

// TestHandOverAfterTakeoverWarningInTheBrowser: the warning that a case folder
// reached the transfer folder after all (TestHandOverAfterTakeoverIsOnThePage)
// passes axe-core (WCAG 2.1 A and AA, at desktop width and at 320 CSS pixels)
// and is a heading in the browser's accessibility tree, so a screen reader's
// list of headings leads to it. It was a paragraph under the role "note",
// which says the text is an aside. So does the note that replaces it once the
// gateway withdrew the late case folder.
func TestHandOverAfterTakeoverWarningInTheBrowser(t *testing.T) {
	axe := axeSource(t)
	mem := newMemDesk()
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for _, id := range []string{"ordner", "entfernt"} {
		mem.Add(&submission.Submission{ID: id, OfficeID: "amt-a", ServiceName: "Gewerbe anmelden", Place: "Dresden",
			Sender: "amt24", State: submission.StateQueued, ReceivedAt: at,
			Targets: []submission.Target{{Channel: channel.Transfer}, {Channel: channel.Mailbox}}}, []byte("<Antragspaket/>"), nil)
	}
	mux := http.NewServeMux()
	ts := httptest.NewUnstartedServer(mux)
	base := "http://" + ts.Listener.Addr().String() + "/postfach/"
	m := annasMailbox(t, Options{Desk: mem, PublicURL: base})
	mux.Handle("/postfach/", m.Handler())
	ts.Start()
	t.Cleanup(ts.Close)
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	for _, id := range []string{"ordner", "entfernt"} {
		csrf := csrfFrom(t, c.get("/postfach/s/"+id).Body.String())
		if res := c.post("/postfach/s/"+id+"/uebernehmen", url.Values{"csrf": {csrf}}).Result(); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("the takeover: %d", res.StatusCode)
		}
		mem.HandOverAfterTakeover(t, id)
	}
	// The note that replaces the warning once the gateway withdrew the
	// late folder (TestLateFolderWithdrawnIsOnThePage) is held to the same.
	mem.LateFolderWithdrawal(t, "entfernt", string(adapters.WithdrawRemoved))

	ctx := startChromium(t)
	do, nav := browserSteps(t, ctx)
	do("login form", chromedp.Navigate(base+"login"), chromedp.WaitVisible(chromedp.CSS("#benutzer")),
		chromedp.SendKeys(chromedp.CSS("#benutzer"), "anna"), chromedp.SendKeys(chromedp.CSS("#passwort"), "anna-passwort"))
	if code := nav("login", chromedp.Click(chromedp.CSS("form.karte button[type=submit]"))); code != http.StatusOK {
		t.Fatalf("login: HTTP %d", code)
	}
	for _, tc := range []struct{ id, heading, not string }{
		{"ordner", "Achtung, möglicherweise doppelt", "Kopie aus dem Übergabeordner entfernt"},
		{"entfernt", "Kopie aus dem Übergabeordner entfernt", "Achtung, möglicherweise doppelt"},
	} {
		if code := nav("the case's page", chromedp.Navigate(base+"s/"+tc.id)); code != http.StatusOK {
			t.Fatalf("the case's page: HTTP %d", code)
		}
		headings := axeAndHeadings(t, ctx, do, axe)
		if !slices.Contains(headings, tc.heading) || slices.Contains(headings, tc.not) {
			t.Errorf("%s: the page's headings %v lack %q, or have %q", tc.id, headings, tc.heading, tc.not)
		}
	}
}

// axeAndHeadings runs axe-core on the page ctx shows, at desktop width and
// at 320 CSS pixels, failing t for every violation, and returns the page's
// headings as the browser's accessibility tree names them.
func axeAndHeadings(t *testing.T, ctx context.Context, do func(string, ...chromedp.Action[chromedp.Void]), axe string) []string {
	t.Helper()
	eval := func(what, js string, out any) { t.Helper(); evalJSON(t, ctx, 60*time.Second, what, js, out) }
	do("inject axe", chromedp.Evaluate[chromedp.Void](axe))
	for _, width := range []int64{1280, 320} {
		do("viewport", chromedp.EmulateViewport(width, 800))
		var vs []axeViolation
		eval("axe.run", axeRun, &vs)
		for _, v := range vs {
			t.Errorf("at %d px: axe %s (%s): %s", width, v.ID, v.Impact, v.Help)
		}
	}
	c2, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	tree, err := chromedp.Call(c2, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		t.Fatalf("accessibility tree: %v", err)
	}
	var headings []string
	for _, n := range tree.Nodes {
		var name string
		if !n.Ignored && n.Role != nil && fmt.Sprint(n.Role.Value) == `"heading"` && n.Name != nil &&
			json.Unmarshal([]byte(fmt.Sprint(n.Name.Value)), &name) == nil {
			headings = append(headings, name)
		}
	}
	return headings
}
