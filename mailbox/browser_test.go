package mailbox

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/submission"
)

// chromiumPath finds Debian's chromium ($CHROMIUM_BIN first). The browser test fails,
// never skips, without it: install with `apt-get install -y chromium`.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found (apt-get install -y chromium, or set CHROMIUM_BIN): the browser test needs it")
	return ""
}

// screenshotDir is docs/img with UPDATE_SCREENSHOTS=1, else a temporary folder.
func screenshotDir(t *testing.T) string {
	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		dir := filepath.Join("..", "docs", "img")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// TestBrowser drives headless Chromium through the mailbox over a real broker: anna
// (Dresden) logs in, finds the Amt24 example, opens it, downloads the PDF, rejects
// with a reason and sees the state change; lars (Leipzig) cannot open it, not even by
// URL (404 page). It writes screenshots of the pages.
func TestBrowser(t *testing.T) {
	shots := screenshotDir(t)

	// The server's address must be known before the mailbox is built (PublicURL).
	mux := http.NewServeMux()
	ts := httptest.NewUnstartedServer(mux)
	base := "http://" + ts.Listener.Addr().String() + "/postfach/"
	e := startBrokerEnv(t, t.TempDir(), Options{PublicURL: base})
	mux.Handle("/postfach/", e.mb.Handler())
	ts.Start()
	t.Cleanup(ts.Close)

	// Some history, so the inbox looks like a working day: an accepted and an
	// open older submission, then the one under test.
	older := e.receiveExample(t, officeDresden)
	e.waitState(t, older.ID, submission.StateHandedOver)
	if _, err := e.b.Decide(t.Context(), officeDresden, older.ID, broker.Decision{Outcome: broker.OutcomeAccepted, Actor: "anna", Channel: channel.Mailbox}); err != nil {
		t.Fatal(err)
	}
	open := e.receiveExample(t, officeDresden)
	sub := e.receiveExample(t, officeDresden)
	e.waitState(t, open.ID, submission.StateHandedOver)
	e.waitState(t, sub.ID, submission.StateHandedOver)
	leipzig := e.receiveExample(t, officeLeipzig)
	e.waitState(t, leipzig.ID, submission.StateHandedOver)
	// The applicant sent something later for the open case (on a Rückfrage).
	nachreichung := e.receiveInCase(t, officeDresden, "", open.ID, channel.Mailbox)
	e.waitState(t, nachreichung.ID, submission.StateHandedOver)

	ctx := startChromium(t)
	run, nav := browserSteps(t, ctx)
	text := func(sel string) string {
		t.Helper()
		c, stop := context.WithTimeout(ctx, 30*time.Second)
		defer stop()
		s, err := chromedp.Run(c, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	shot := func(name string) {
		t.Helper()
		c, stop := context.WithTimeout(ctx, 30*time.Second)
		defer stop()
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	status := func(url string) int64 {
		t.Helper()
		c, stop := context.WithTimeout(ctx, 30*time.Second)
		defer stop()
		resp, err := chromedp.Run(c, chromedp.NavigateResponse(url))
		if err != nil {
			t.Fatalf("navigate %s: %v", url, err)
		}
		return resp.Status
	}
	login := func(user, pw string) {
		t.Helper()
		run("login page for "+user,
			chromedp.Navigate(base),
			chromedp.WaitVisible(chromedp.CSS("#benutzer")),
			chromedp.SendKeys(chromedp.CSS("#benutzer"), user),
			chromedp.SendKeys(chromedp.CSS("#passwort"), pw),
		)
		if code := nav("log in as "+user, chromedp.Click(chromedp.CSS("form.karte button[type=submit]"))); code != http.StatusOK {
			t.Fatalf("login as %s: HTTP %d", user, code)
		}
		run("inbox of "+user, chromedp.WaitVisible(chromedp.CSS("form.suche")))
	}

	// Login page; then anna logs in.
	run("open login", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("#benutzer")))
	if lang, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.lang`)); err != nil || lang != "de" {
		t.Errorf("html lang = %q (%v), want de", lang, err)
	}
	shot("postfach-anmeldung.png")
	login("anna", "anna-passwort")

	// The keyboard's first stop is the skip link, and it is visible when focused.
	run("tab to skip link", chromedp.KeyEvent("\t"))
	if cls, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.className`)); err != nil || cls != "skip" {
		t.Errorf("first Tab focuses %q (%v), want the skip link", cls, err)
	}
	run("blur", chromedp.Blur(chromedp.CSS("a.skip")))

	// The inbox is the office's work: what is not decided; "Alle" has the rest.
	inbox := text("main")
	for _, id := range []string{open.ID, sub.ID} {
		if !strings.Contains(inbox, id) {
			t.Errorf("inbox lacks %s", id)
		}
	}
	if strings.Contains(inbox, older.ID) {
		t.Errorf("the inbox lists the accepted %s among the open ones", older.ID)
	}
	if strings.Contains(inbox, leipzig.ID) {
		t.Error("anna's inbox lists Leipzig's submission")
	}
	shot("postfach-eingang.png")
	nav("all cases", chromedp.Navigate(base+"?status=alle"))
	if all := text("main"); !strings.Contains(all, older.ID) || !strings.Contains(all, sub.ID) {
		t.Errorf("\"Alle\" lacks the accepted or an open case:\n%s", all)
	}
	nav("back to the inbox", chromedp.Navigate(base))

	// Find it by its case number.
	run("type search", chromedp.SendKeys(chromedp.CSS("#q"), sub.ID))
	nav("search", chromedp.Click(chromedp.CSS("form.suche button[type=submit]")))
	run("search result", chromedp.WaitVisible(chromedp.CSS("table.liste")))
	if found := text("table.liste tbody"); !strings.Contains(found, sub.ID) || strings.Contains(found, open.ID) {
		t.Fatalf("search result: %q", found)
	}
	if code := nav("open detail", chromedp.Click(chromedp.CSS(`a[href="s/`+sub.ID+`"]`))); code != http.StatusOK {
		t.Fatalf("open detail: HTTP %d", code)
	}
	run("detail page", chromedp.WaitVisible(chromedp.CSS("#h-formular")))
	detail := text("main")
	for _, want := range []string{paket.ExampleComplaint, "Priorität", "Hübner", "Geöffnet", sub.ID} {
		if !strings.Contains(detail, want) {
			t.Errorf("detail page lacks %q", want)
		}
	}
	if s, _ := e.b.Submission(sub.ID); s.State != submission.StateDelivered || s.Receiver != "anna (Behördenpostfach)" {
		t.Errorf("after opening: state %s, receiver %q; want delivered by anna (Behördenpostfach)", s.State, s.Receiver)
	}
	shot("postfach-detail.png")

	// Download the PDF.
	dlDir := t.TempDir()
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	run("download",
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dlDir, EventsEnabled: ptrTo(true)})
			return err
		}),
		chromedp.Click(chromedp.CSS(`ul.anlagen a`)),
	)
	var pdfPath string
	dctx, dstop := context.WithTimeout(ctx, 30*time.Second)
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download events: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			pdfPath = filepath.Join(dlDir, ev.GUID)
			break
		}
		if ev.State == browser.DownloadProgressStateCanceled || dctx.Err() != nil {
			t.Fatalf("download did not complete: %+v", ev)
		}
	}
	dstop()
	pdf, err := os.ReadFile(pdfPath)
	if err != nil {
		t.Fatal(err)
	}
	_, rc, err := e.b.OpenAttachment(t.Context(), officeDresden, sub.ID, "anlage-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	_, _ = want.ReadFrom(rc)
	rc.Close()
	if !bytes.HasPrefix(pdf, []byte("%PDF")) || !bytes.Equal(pdf, want.Bytes()) {
		t.Errorf("downloaded %d bytes, not the attachment (%d bytes)", len(pdf), want.Len())
	}

	// Reject with a reason.
	reason := "Der Papierkorb gehört der Verkehrsgesellschaft; bitte melden Sie es dort."
	run("fill decision",
		chromedp.Click(chromedp.CSS("#ablehnen")),
		chromedp.SendKeys(chromedp.CSS("#begruendung"), reason),
	)
	nav("reject", chromedp.Click(chromedp.CSS("#entscheidung button[type=submit]")))
	run("reject result", chromedp.WaitVisible(chromedp.CSS(".meldung.ok")))
	if got := text(".kopfdaten"); !strings.Contains(got, "Abgelehnt") {
		t.Errorf("state on the page after rejecting: %q", got)
	}
	if got := text("#entscheidung"); !strings.Contains(got, reason) || !strings.Contains(got, "anna") {
		t.Errorf("decision section: %q", got)
	}
	s, _ := e.b.Submission(sub.ID)
	if s.State != submission.StateRejected || s.Decision == nil || s.Decision.Reason != reason || s.Decision.Actor != "anna" {
		t.Errorf("broker after rejecting: %s %+v", s.State, s.Decision)
	}
	shot("postfach-abgelehnt.png")

	// The open case lists its Nachreichung across the page's whole width (in
	// one cell of the grid a list ran down the page), and the link leads to it.
	nav("open case", chromedp.Navigate(base+"s/"+open.ID))
	run("open case's page", chromedp.WaitVisible(chromedp.CSS("ul.nachreichungen")))
	if got := text(".kopfdaten"); !strings.Contains(got, "Nachreichungen") || !strings.Contains(got, "Eingang "+nachreichung.ID) || !strings.Contains(got, "Neu") {
		t.Errorf("the case's head lists no Nachreichung %s, new: %q", nachreichung.ID, got)
	}
	if whole, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		const row = document.querySelector(".kopfdaten .ganze-zeile").getBoundingClientRect();
		const grid = document.querySelector(".kopfdaten").getBoundingClientRect();
		return row.width >= grid.width - 1;
	})()`)); err != nil || !whole {
		t.Errorf("the Nachreichungen do not take the head's whole width (%v)", err)
	}
	shot("postfach-nachreichungen.png")
	nav("open the Nachreichung", chromedp.Click(chromedp.CSS(`ul.nachreichungen a`)))
	run("the Nachreichung's page", chromedp.WaitVisible(chromedp.CSS("#h-formular")))
	if got := text(".kopfdaten"); !strings.Contains(got, "Nachreichung zu") || !strings.Contains(got, nachreichung.ID) {
		t.Errorf("the link did not lead to the Nachreichung %s: %q", nachreichung.ID, got)
	}

	// Leipzig's user cannot see it, not in the list and not by URL.
	nav("logout", chromedp.Click(chromedp.CSS(`header form button`)))
	run("login page after logout", chromedp.WaitVisible(chromedp.CSS("#benutzer")))
	login("lars", "lars-passwort")
	if l := text("main"); strings.Contains(l, sub.ID) || !strings.Contains(l, leipzig.ID) {
		t.Errorf("lars's inbox: %q", l)
	}
	if code := status(base + "s/" + sub.ID); code != http.StatusNotFound {
		t.Errorf("lars opens Dresden's submission by URL: HTTP %d, want 404", code)
	}
	if h := text("h1"); h != "Nicht gefunden" {
		t.Errorf("404 page heading %q", h)
	}
	if code := status(base + "s/" + sub.ID + "/anlage/anlage-1"); code != http.StatusNotFound {
		t.Errorf("lars downloads Dresden's attachment by URL: HTTP %d, want 404", code)
	}
	if evs, _ := e.b.Log(sub.ID); evs[len(evs)-1].Type != submission.EventRejected {
		t.Errorf("lars's visit changed the log: %+v", evs[len(evs)-1])
	}
	t.Logf("screenshots in %s", shots)
}

func ptrTo[T any](v T) *T { return &v }
