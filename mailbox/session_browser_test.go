package mailbox

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// TestAttachmentClickedAfterTheSessionEndedLeadsBackToTheCase: the clerk
// has a case open, the session ends over lunch, and she clicks an
// attachment. The login page says her session ended, and after the login
// she is back at the case, whose attachment she clicks again — no file of
// the login page's HTML in her downloads under the attachment's link, and
// not the inbox, where she had to look for the case again. A login page for
// the case, reloaded when she is signed in again, leads to the case too.
func TestAttachmentClickedAfterTheSessionEndedLeadsBackToTheCase(t *testing.T) {
	r := newBrowserRig(t)
	sub := r.e.receiveHandedOver(t, officeDresden)
	r.login()
	if code := r.nav("case", chromedp.Navigate(r.base+"s/"+sub.ID)); code != http.StatusOK {
		t.Fatalf("the case's page: HTTP %d", code)
	}
	dlDir := t.TempDir()
	r.do("downloads into a folder of the test's", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dlDir, EventsEnabled: ptrTo(true)})
		return err
	}))
	r.clock.Add(int64(sessionIdle + time.Minute))
	code := r.nav("click the attachment after the session ended", chromedp.Click(chromedp.CSS(`ul.anlagen a`)))
	var st struct{ Href, Title, Alert, Desc string }
	const stateJS = `JSON.stringify({Href: location.href, Title: document.title,
		Alert: (document.querySelector('[role=alert]') || {}).textContent || '',
		Desc: (document.getElementById((document.activeElement.getAttribute('aria-describedby') || '').split(' ')[0] || 'x') || {}).textContent || ''})`
	r.eval(stateJS, &st)
	if code != http.StatusOK || !strings.Contains(st.Href, "/login") || !strings.Contains(st.Alert, "abgelaufen") ||
		strings.Contains(st.Alert, "nicht gespeichert") || !strings.Contains(st.Alert, "zurück zum Eingang") {
		t.Errorf("the click after the session ended: HTTP %d at %s, alert %q; want the login page saying the session ended", code, st.Href, st.Alert)
	}
	r.do("log in again", chromedp.SendKeys(chromedp.CSS("#benutzer"), "anna"), chromedp.SendKeys(chromedp.CSS("#passwort"), "anna-passwort"))
	if code := r.nav("log in again", chromedp.Click(chromedp.CSS("form.karte button[type=submit]"))); code != http.StatusOK {
		t.Fatalf("log in again: HTTP %d", code)
	}
	r.eval(stateJS, &st)
	if !strings.HasSuffix(st.Href, "/s/"+sub.ID) {
		t.Errorf("after logging in again: at %s, want back at the case", st.Href)
	}
	if des, err := os.ReadDir(dlDir); err != nil || len(des) != 0 {
		t.Errorf("downloads after the click without a session: %v (%v); want none (the login page is no attachment)", des, err)
	}

	// A login page left open in another tab (from a notice's link, say),
	// reloaded once she is signed in: on to its case, not to the inbox.
	if code := r.nav("reload a login page for the case", chromedp.Navigate(r.base+"login?weiter=s%2F"+sub.ID)); code != http.StatusOK {
		t.Fatalf("the login page for the case while signed in: HTTP %d", code)
	}
	r.eval(stateJS, &st)
	if !strings.HasSuffix(st.Href, "/s/"+sub.ID) {
		t.Errorf("the login page for the case while signed in leads to %s, want the case", st.Href)
	}
}

// TestFailedDownloadIsAPageWithTheWayBack: the clerk has the case open while
// the retention removes its files, and clicks an attachment. She gets the
// page that says why (410) — with the links' download attribute, Chromium
// saved that page as a file and showed nothing — and its link leads back to
// the case, not only to the inbox.
func TestFailedDownloadIsAPageWithTheWayBack(t *testing.T) {
	r := newBrowserRig(t)
	sub := r.e.receiveHandedOver(t, officeDresden)
	r.login()
	if code := r.nav("case", chromedp.Navigate(r.base+"s/"+sub.ID)); code != http.StatusOK {
		t.Fatalf("the case's page: HTTP %d", code)
	}
	if _, err := r.e.b.Erase(t.Context(), sub.ID, "admin", "Löschung auf Antrag"); err != nil {
		t.Fatalf("erase the case's files: %v", err)
	}
	code := r.nav("click the attachment", chromedp.Click(chromedp.CSS(`ul.anlagen a`)))
	var st struct{ Href, H1, Alert, Back string }
	r.eval(`JSON.stringify({Href: location.href, H1: document.querySelector('h1').textContent,
		Alert: (document.querySelector('[role=alert]') || {}).textContent || '',
		Back: ([...document.querySelectorAll('main a')].find(a => a.textContent === 'Zurück zum Eingang') || {}).href || ''})`, &st)
	if code != http.StatusGone || st.H1 != "Gelöscht" || !strings.Contains(st.Alert, "gelöscht") || !strings.HasSuffix(st.Back, "/s/"+sub.ID) {
		t.Fatalf("the click on the removed attachment: HTTP %d, %+v; want the page saying so, with the way back to the case", code, st)
	}
	if code := r.nav("back to the case", chromedp.Click(chromedp.CSS(`main p a`))); code != http.StatusOK {
		t.Errorf("the way back: HTTP %d", code)
	}
}

// TestLogoutFromAnOlderTabLogsOut: the clerk's session ended; she signed in
// again in a second tab and worked there. At the end of the day she clicks
// "Abmelden" in the first tab, whose page is from the earlier session. That
// form's token was the old session's, and the logout was refused ("Die
// Anfrage wurde abgewiesen"): the shared computer stayed signed in.
func TestLogoutFromAnOlderTabLogsOut(t *testing.T) {
	r := newBrowserRig(t)
	sub := r.e.receiveHandedOver(t, officeDresden)
	r.login()
	if code := r.nav("case in the first tab", chromedp.Navigate(r.base+"s/"+sub.ID)); code != http.StatusOK {
		t.Fatalf("the case's page: HTTP %d", code)
	}
	r.clock.Add(int64(sessionIdle + time.Minute))
	tab2, closeTab2 := chromedp.NewContext(r.ctx)
	defer closeTab2()
	if err := chromedp.Do(tab2); err != nil { // no timeout on a tab's first Run (startChromium)
		t.Fatalf("open a second tab: %v", err)
	}
	do2, nav2 := browserSteps(t, tab2)
	do2("sign in again in the second tab", chromedp.Navigate(r.base+"s/"+sub.ID), chromedp.WaitVisible(chromedp.CSS("#benutzer")),
		chromedp.SendKeys(chromedp.CSS("#benutzer"), "anna"), chromedp.SendKeys(chromedp.CSS("#passwort"), "anna-passwort"))
	if code := nav2("sign in", chromedp.Click(chromedp.CSS("form.karte button[type=submit]"))); code != http.StatusOK {
		t.Fatalf("signing in again: HTTP %d", code)
	}

	code := r.nav("Abmelden in the first tab", chromedp.Click(chromedp.CSS(`header form button`)))
	var title string
	r.eval(`JSON.stringify(document.title)`, &title)
	if code != http.StatusOK || !strings.HasPrefix(title, "Abgemeldet: ") {
		t.Errorf("Abmelden on the older page: HTTP %d, %q; want the login page saying she is logged out", code, title)
	}
	if code := nav2("reload the second tab", chromedp.Navigate(r.base+"s/"+sub.ID)); code != http.StatusOK {
		t.Fatalf("the second tab: HTTP %d", code)
	}
	var href2 string
	evalJSON(t, tab2, 30*time.Second, "where the second tab is", `JSON.stringify(location.href)`, &href2)
	if !strings.Contains(href2, "/login") {
		t.Errorf("after Abmelden the second tab opens the case at %s: still signed in", href2)
	}
}
