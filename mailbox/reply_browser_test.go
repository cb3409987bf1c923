package mailbox

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/amtsbote/amtsbote/paket"
)

// replyPage is what TestReplyInTheBrowser reads from a case's page.
type replyPage struct {
	Title, Flash, Sent, History, Kind string
	Form, Kept                        bool
}

const replyPageJS = `(() => {
	const q = s => document.querySelector(s);
	const txt = s => (q(s) || {}).textContent || '';
	return JSON.stringify({
		Title: document.title, Flash: txt('.meldung.ok'), Sent: txt('#antworten ul'),
		History: txt('table.verlauf tbody'), Kind: (q('#art') || {}).value || '',
		Form: !!q('#antwort input[type=file]#datei') && !!q('#antwort button[formenctype="multipart/form-data"]'),
		Kept: !!window.schonGeladen,
	});
})()`

// TestReplyInTheBrowser is TestClerkSendsABescheid in Chromium, the way a
// clerk meets it: she opens the case, chooses "Bescheid", picks the PDF and
// sends it; the page says it was sent and lists it, and the portal reads the
// bytes she picked. Back shows the case as it is now, with the reply (the
// page from before it, kept by the back/forward cache, offered the form as if
// nothing had been sent). A scan beyond the limit is answered with the case's
// page, the error at the file's field, which has the cursor, and "Bescheid"
// still chosen — not with a broken connection, although the page answers
// before the file's end. TestAccessibility checks these pages with axe-core.
func TestReplyInTheBrowser(t *testing.T) {
	r := newBrowserRig(t)
	sub := r.e.receiveHandedOver(t, officeDresden)
	dir := t.TempDir()
	// The name as a clerk's computer has it: it names the applicant.
	pdfPath := filepath.Join(dir, "Bescheid Iris Hübner.pdf")
	pdf := paket.ExamplePDF("Bescheid: Der Papierkorb wird geleert.")
	if err := os.WriteFile(pdfPath, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	r.login()
	if code := r.nav("case", chromedp.Navigate(r.base+"s/"+sub.ID)); code != http.StatusOK {
		t.Fatalf("the case's page: HTTP %d", code)
	}
	r.do("tag the page", chromedp.Evaluate[chromedp.Void](`window.schonGeladen = true`))
	var p replyPage
	r.eval(replyPageJS, &p)
	if !p.Form || p.Sent != "" {
		t.Fatalf("the case's page: reply form %v, sent %q; want the form and no reply", p.Form, p.Sent)
	}

	r.do("choose Bescheid and the PDF", chromedp.SetValue(chromedp.CSS("#art"), "Bescheid"),
		chromedp.SetUploadFiles(chromedp.CSS("#datei"), []string{pdfPath}))
	if code := r.nav("send", chromedp.Click(chromedp.CSS("#antwort button[type=submit]"))); code != http.StatusOK {
		t.Fatalf("after sending: HTTP %d", code)
	}
	r.eval(replyPageJS, &p)
	if !strings.HasPrefix(p.Title, "Antwort gesendet: ") || !strings.HasPrefix(p.Flash, "Die Antwort ist gesendet") ||
		!strings.Contains(p.Sent, "Bescheid vom ") || !strings.Contains(p.Sent, "PDF-Dokument") ||
		!strings.Contains(p.History, "Antwort an das Portal gesendet: Bescheid") {
		t.Errorf("after sending: %+v", p)
	}
	got := r.e.replies(t, sub.ID)
	if len(got) != 1 || got[0].Kind != "Bescheid" {
		t.Fatalf("the portal sees %+v, want one Bescheid", got)
	}
	_, rc, err := r.e.b.PortalReply(context.Background(), paket.ExampleSender, sub.ID, got[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(b, pdf) {
		t.Fatalf("the portal reads %d bytes (%v), not the %d of the PDF she picked", len(b), err, len(pdf))
	}

	r.back()
	r.eval(replyPageJS, &p)
	if p.Kept || !strings.Contains(p.Sent, "Bescheid vom ") || !p.Form {
		t.Errorf("Back after sending: the page from before (%v), sent %q, form %v; want the case loaded anew, with the reply",
			p.Kept, p.Sent, p.Form)
	}

	// A scan beyond the limit: a sparse file, its bytes never written.
	bigPath := filepath.Join(dir, "Scan Hübner.pdf")
	f, err := os.Create(bigPath)
	if err == nil {
		err = f.Truncate(maxReplyFileBytes + 1<<20)
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	r.do("choose Bescheid and the scan", chromedp.SetValue(chromedp.CSS("#art"), "Bescheid"),
		chromedp.SetUploadFiles(chromedp.CSS("#datei"), []string{bigPath}))
	if code := r.nav("send the scan", chromedp.Click(chromedp.CSS("#antwort button[type=submit]"))); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("sending the scan: HTTP %d, want the page's 413", code)
	}
	r.eval(replyPageJS, &p)
	var field struct{ Active, Invalid, Desc string }
	for range 50 { // autofocus runs with the next rendering (TestFocusOnTheFieldInError)
		r.eval(`(() => {
			const a = document.activeElement;
			const desc = (a.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean)
				.map(id => (document.getElementById(id) || {}).textContent || '').join(' ');
			return JSON.stringify({Active: a.id, Invalid: a.getAttribute('aria-invalid') || '', Desc: desc});
		})()`, &field)
		if field.Active == "datei" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.HasPrefix(p.Title, "Fehler: ") || p.Kind != "Bescheid" || field.Active != "datei" || field.Invalid != "true" ||
		!strings.Contains(field.Desc, "größer als 20 MB") {
		t.Errorf("after the scan: title %q, kind %q, focus on %q (aria-invalid %q) described as %q; want the error on the file's field",
			p.Title, p.Kind, field.Active, field.Invalid, field.Desc)
	}
	if got := r.e.replies(t, sub.ID); len(got) != 1 {
		t.Fatalf("after the scan the portal sees %d replies, want 1", len(got))
	}
}

// TestReplySentInAnotherTabIsShownFirst: the clerk has the case open in two
// tabs (or a colleague has it open beside her). In one she sends a Rückfrage;
// in the other, whose page was loaded before and lists no reply, she picks
// another file and sends a Rückfrage again. That second one is not sent: the
// page names the reply sent since it was loaded, lists it, and keeps the kind
// chosen; sent again from that page, it goes. Before, the applicant got both
// Rückfragen, the second from a page that showed no first.
func TestReplySentInAnotherTabIsShownFirst(t *testing.T) {
	r := newBrowserRig(t)
	sub := r.e.receiveHandedOver(t, officeDresden)
	dir := t.TempDir()
	first, second := filepath.Join(dir, "Rückfrage Hübner.pdf"), filepath.Join(dir, "Rückfrage Hübner (2).pdf")
	if err := os.WriteFile(first, paket.ExamplePDF("Bitte reichen Sie ein Foto nach."), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(second, paket.ExamplePDF("Bitte nennen Sie die Hausnummer."), 0o600); err != nil {
		t.Fatal(err)
	}
	r.login()
	if code := r.nav("case in the first tab", chromedp.Navigate(r.base+"s/"+sub.ID)); code != http.StatusOK {
		t.Fatalf("the case's page: HTTP %d", code)
	}
	tab2, closeTab2 := chromedp.NewContext(r.ctx)
	defer closeTab2()
	// The tab opens without a timeout: one on its first Run closes it (startChromium).
	if err := chromedp.Do(tab2); err != nil {
		t.Fatalf("open a second tab: %v", err)
	}
	do2, nav2 := browserSteps(t, tab2)
	if code := nav2("case in the second tab", chromedp.Navigate(r.base+"s/"+sub.ID)); code != http.StatusOK {
		t.Fatalf("the case's page in the second tab: HTTP %d", code)
	}
	do2("choose Rückfrage and the first file", chromedp.SetValue(chromedp.CSS("#art"), "Rueckfrage"),
		chromedp.SetUploadFiles(chromedp.CSS("#datei"), []string{first}))
	if code := nav2("send in the second tab", chromedp.Click(chromedp.CSS("#antwort button[type=submit]"))); code != http.StatusOK {
		t.Fatalf("sending in the second tab: HTTP %d", code)
	}

	r.do("choose Rückfrage and the second file in the first tab", chromedp.SetValue(chromedp.CSS("#art"), "Rueckfrage"),
		chromedp.SetUploadFiles(chromedp.CSS("#datei"), []string{second}))
	code := r.nav("send in the first tab", chromedp.Click(chromedp.CSS("#antwort button[type=submit]")))
	var p replyPage
	r.eval(replyPageJS, &p)
	var alert string
	r.eval(`JSON.stringify((document.querySelector('[role=alert]') || {}).textContent || '')`, &alert)
	if got := r.e.replies(t, sub.ID); len(got) != 1 {
		t.Fatalf("the portal sees %d replies after the send from the page that showed none, want 1 (the first)", len(got))
	}
	if code != http.StatusConflict || !strings.HasPrefix(p.Title, "Fehler: ") || p.Kind != "Rueckfrage" ||
		!strings.Contains(alert, "Nichts gesendet") || !strings.Contains(alert, "Rückfrage vom ") || !strings.Contains(alert, "von anna") ||
		!strings.Contains(p.Sent, "Rückfrage vom ") {
		t.Errorf("the send from the older page: HTTP %d, title %q, kind %q, alert %q, sent %q; want it refused, naming the Rückfrage sent since",
			code, p.Title, p.Kind, alert, p.Sent)
	}

	r.do("choose the second file again", chromedp.SetUploadFiles(chromedp.CSS("#datei"), []string{second}))
	if code := r.nav("send again", chromedp.Click(chromedp.CSS("#antwort button[type=submit]"))); code != http.StatusOK {
		t.Fatalf("sending again: HTTP %d", code)
	}
	if got := r.e.replies(t, sub.ID); len(got) != 2 {
		t.Fatalf("after sending again from the page that lists the first, the portal sees %d replies, want 2", len(got))
	}
}

// TestReplySentAfterTheSessionEndedKeepsWhatWasTyped: a clerk writes a
// rejection's reason on a case's page, chooses "Bescheid" and a scan of some
// megabytes, and clicks "Antwort senden" after her session ended (the reason
// took more than 30 minutes). The late reply led to the login and back to the
// case with the reason, the choice and the kind gone: its multipart body was
// not read without a session, where a late decision's or mark's form is
// carried through the login. The fields before the file are read now (the
// file never), the login page says the reply was not sent, and after the login
// the case's form has the reason, "Ablehnen" and "Bescheid" again, with the
// note at the file's field that it must be chosen again; nothing is sent or
// decided before she does. The page comes whole, not as a broken connection,
// although the answer is given before the file's end.
func TestReplySentAfterTheSessionEndedKeepsWhatWasTyped(t *testing.T) {
	r := newBrowserRig(t)
	sub := r.e.receiveHandedOver(t, officeDresden)
	scanPath := filepath.Join(t.TempDir(), "Bescheid Iris Hübner.pdf")
	scan := append(paket.ExamplePDF("Bescheid: Der Antrag wird abgelehnt."), bytes.Repeat([]byte{' '}, 8<<20)...)
	if err := os.WriteFile(scanPath, scan, 0o600); err != nil {
		t.Fatal(err)
	}
	const reason = "Der Lageplan fehlt.\nBitte reichen Sie ihn nach: <Frist & Form>."
	r.login()
	if code := r.nav("case", chromedp.Navigate(r.base+"s/"+sub.ID)); code != http.StatusOK {
		t.Fatalf("the case's page: HTTP %d", code)
	}
	r.do("write a rejection, choose Bescheid and the scan", chromedp.Click(chromedp.CSS("#ablehnen")),
		chromedp.SendKeys(chromedp.CSS("#begruendung"), reason),
		chromedp.SetValue(chromedp.CSS("#art"), "Bescheid"),
		chromedp.SetUploadFiles(chromedp.CSS("#datei"), []string{scanPath}))
	r.clock.Add(int64(sessionIdle + time.Minute))
	if code := r.nav("send the reply late", chromedp.Click(chromedp.CSS("#antwort button[type=submit]"))); code != http.StatusUnauthorized {
		t.Fatalf("the late reply: HTTP %d, want the login page (401)", code)
	}
	var login struct{ Name, Alert string }
	r.eval(`JSON.stringify({Name: (document.getElementById('benutzer') || {}).value || '', Alert: ((document.querySelector('[role=alert]') || {}).textContent || '')})`, &login)
	if login.Name != "anna" || !strings.Contains(login.Alert, "Antwort wurde nicht gesendet") || !strings.Contains(login.Alert, "Datei") {
		t.Errorf("the login after the late reply: %+v; want anna's name and that the reply was not sent, the file to be chosen again", login)
	}
	r.do("log in again", chromedp.SendKeys(chromedp.CSS("#passwort"), "anna-passwort"))
	if code := r.nav("log in again", chromedp.Click(chromedp.CSS("form.karte button[type=submit]"))); code != http.StatusOK {
		t.Fatalf("the login: HTTP %d", code)
	}
	var p casePage
	r.eval(casePageJS, &p)
	if p.Reason != reason || !p.Rejecting || p.Kind != "Bescheid" {
		t.Errorf("after the login the form holds %q (Ablehnen %v), kind %q; want the reason, Ablehnen and Bescheid", p.Reason, p.Rejecting, p.Kind)
	}
	if !strings.HasPrefix(p.Title, "Fehler: ") || !strings.Contains(p.Error, "nicht gesendet") || !strings.Contains(p.FileNote, "noch einmal aus") {
		t.Errorf("after the login: title %q, alert %q, note at the file %q; want that the reply was not sent and the file must be chosen again", p.Title, p.Error, p.FileNote)
	}
	if now, _ := r.e.b.Submission(sub.ID); now.Decision != nil || len(now.Replies) != 0 {
		t.Fatalf("the late reply or the login did something: decision %+v, %d replies", now.Decision, len(now.Replies))
	}
	r.do("choose the scan again", chromedp.SetUploadFiles(chromedp.CSS("#datei"), []string{scanPath}))
	if code := r.nav("send the reply", chromedp.Click(chromedp.CSS("#antwort button[type=submit]"))); code != http.StatusOK {
		t.Fatalf("the reply sent again: HTTP %d", code)
	}
	r.eval(casePageJS, &p)
	if got := r.e.replies(t, sub.ID); len(got) != 1 || got[0].Kind != "Bescheid" || got[0].Size != int64(len(scan)) {
		t.Fatalf("the portal sees %+v, want the one Bescheid", got)
	}
	if p.Reason != reason || !p.Rejecting {
		t.Errorf("after the reply the decision form holds %q (Ablehnen %v), want the reason still there", p.Reason, p.Rejecting)
	}
}
