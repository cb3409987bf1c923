package mailbox

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/paket"
)

// casePage is what TestNothingTypedIsLostByAnotherFormOfTheCase reads from a
// case's page.
type casePage struct {
	Title, Flash, Error, Reason, Kind, FileNote, Sent string
	Rejecting                                         bool
}

const casePageJS = `(() => {
	const q = s => document.querySelector(s);
	const txt = s => (q(s) || {}).textContent || '';
	return JSON.stringify({
		Title: document.title, Flash: txt('.meldung.ok'), Error: txt('[role=alert]'),
		Reason: (q('#begruendung') || {}).value || '', Rejecting: !!(q('#ablehnen') || {}).checked,
		Kind: (q('#art') || {}).value || '',
		FileNote: txt('#datei-offen'), Sent: txt('#antworten ul'),
	});
})()`

// TestNothingTypedIsLostByAnotherFormOfTheCase: a clerk writes a rejection's
// reason on a case's page, and before she saves it she marks the case
// "erledigt", or sends the applicant a Rückfrage: the page came back with the
// reason gone, as the decision, the reply and the mark were three forms and
// each sent only its own fields. Now the page is one form with a button for
// each action: the action is done, and what was typed for another comes back
// in its field. The other way round a file chosen for a reply is not sent by
// "Entscheidung speichern" (no browser lets a page fill a file field in
// again) nor by the mark: the kind stays chosen, and the page says that the
// file is not sent. A reason sent without a choice (no browser check stops it any more: the
// reply's required fields share the form) comes back with the error.
func TestNothingTypedIsLostByAnotherFormOfTheCase(t *testing.T) {
	r := newBrowserRig(t)
	sub := r.e.receiveHandedOver(t, officeDresden)
	pdfPath := filepath.Join(t.TempDir(), "Rückfrage Hübner.pdf")
	if err := os.WriteFile(pdfPath, paket.ExamplePDF("Bitte reichen Sie den Lageplan nach."), 0o600); err != nil {
		t.Fatal(err)
	}
	const reason = "Der Lageplan fehlt.\nBitte reichen Sie ihn nach: <Frist & Form>."
	r.login()
	if code := r.nav("case", chromedp.Navigate(r.base+"s/"+sub.ID)); code != http.StatusOK {
		t.Fatalf("the case's page: HTTP %d", code)
	}
	r.do("write a rejection", chromedp.Click(chromedp.CSS("#ablehnen")), chromedp.SendKeys(chromedp.CSS("#begruendung"), reason))

	var p casePage
	if code := r.nav("mark erledigt", chromedp.Click(chromedp.CSS(`section[aria-labelledby="h-erledigt"] button`))); code != http.StatusOK {
		t.Fatalf("marking: HTTP %d", code)
	}
	r.eval(casePageJS, &p)
	if !strings.HasPrefix(p.Title, "Als erledigt markiert: ") || !strings.Contains(p.Flash, "als erledigt markiert") ||
		strings.Contains(p.Flash, "nicht gesendet") || p.FileNote != "" {
		t.Errorf("after marking: %+v, want the mark's message, and none of a file (none was chosen)", p)
	}
	if p.Reason != reason || !p.Rejecting {
		t.Errorf("after marking the decision form holds %q (Ablehnen %v), want the reason typed before, Ablehnen chosen", p.Reason, p.Rejecting)
	}

	r.do("choose Rückfrage and the PDF", chromedp.SetValue(chromedp.CSS("#art"), "Rueckfrage"),
		chromedp.SetUploadFiles(chromedp.CSS("#datei"), []string{pdfPath}))
	if code := r.nav("send the Rückfrage", chromedp.Click(chromedp.CSS("#antwort button[type=submit]"))); code != http.StatusOK {
		t.Fatalf("sending the Rückfrage: HTTP %d", code)
	}
	r.eval(casePageJS, &p)
	if !strings.HasPrefix(p.Title, "Antwort gesendet: ") || !strings.Contains(p.Sent, "Rückfrage vom ") {
		t.Errorf("after sending: %+v, want the reply sent and listed", p)
	}
	if got := r.e.replies(t, sub.ID); len(got) != 1 || got[0].Kind != "Rueckfrage" {
		t.Fatalf("the portal sees %+v, want one Rückfrage", got)
	}
	if p.Reason != reason || !p.Rejecting {
		t.Errorf("after the reply the decision form holds %q (Ablehnen %v), want the reason typed before, Ablehnen chosen", p.Reason, p.Rejecting)
	}
	if now, _ := r.e.b.Submission(sub.ID); now.Decision != nil {
		t.Fatalf("the mark and the reply decided the case: %+v", now.Decision)
	}

	r.do("choose Bescheid and the PDF", chromedp.SetValue(chromedp.CSS("#art"), "Bescheid"),
		chromedp.SetUploadFiles(chromedp.CSS("#datei"), []string{pdfPath}))
	if code := r.nav("save the rejection", chromedp.Click(chromedp.CSS("#entscheidung button[type=submit]"))); code != http.StatusOK {
		t.Fatalf("saving the rejection: HTTP %d", code)
	}
	r.eval(casePageJS, &p)
	if !strings.HasPrefix(p.Title, "Abgelehnt: ") || !strings.Contains(p.Flash, "noch nicht gesendet") {
		t.Errorf("after the rejection: %+v, want it saved, and the page saying the reply is not sent", p)
	}
	if p.Kind != "Bescheid" || !strings.Contains(p.FileNote, "nicht gesendet") {
		t.Errorf("after the rejection the reply form has kind %q, note at the file %q; want Bescheid still chosen and the note", p.Kind, p.FileNote)
	}
	now, _ := r.e.b.Submission(sub.ID)
	if d := now.Decision; d == nil || d.Outcome != broker.OutcomeRejected || d.Reason != strings.TrimSpace(reason) {
		t.Errorf("decision %+v, want the rejection with the reason typed first", now.Decision)
	}
	if got := r.e.replies(t, sub.ID); len(got) != 1 {
		t.Fatalf("the decision sent a reply: the portal sees %d, want 1", len(got))
	}

	// The reply's kind and file, then the mark (removed now): the kind stays
	// chosen, and the page says the file was not sent.
	r.do("choose Nachricht and the PDF", chromedp.SetValue(chromedp.CSS("#art"), "Nachricht"),
		chromedp.SetUploadFiles(chromedp.CSS("#datei"), []string{pdfPath}))
	if code := r.nav("unmark", chromedp.Click(chromedp.CSS(`section[aria-labelledby="h-erledigt"] button`))); code != http.StatusOK {
		t.Fatalf("unmarking: HTTP %d", code)
	}
	r.eval(casePageJS, &p)
	if !strings.HasPrefix(p.Title, "Markierung entfernt: ") || p.Kind != "Nachricht" || !strings.Contains(p.FileNote, "nicht gesendet") ||
		!strings.Contains(p.Flash, "noch nicht gesendet") {
		t.Errorf("after unmarking: %+v, want Nachricht still chosen and the page saying the file was not sent", p)
	}
	if got := r.e.replies(t, sub.ID); len(got) != 1 {
		t.Fatalf("the mark sent a reply: the portal sees %d, want 1", len(got))
	}

	// A reason without a choice.
	other := r.e.receiveHandedOver(t, officeDresden)
	r.nav("the other case", chromedp.Navigate(r.base+"s/"+other.ID))
	r.do("write a reason only", chromedp.SendKeys(chromedp.CSS("#begruendung"), reason))
	r.nav("save without a choice", chromedp.Click(chromedp.CSS("#entscheidung button[type=submit]")))
	r.eval(casePageJS, &p)
	if !strings.HasPrefix(p.Title, "Fehler: ") || !strings.Contains(p.Error, "Annehmen") || p.Reason != reason {
		t.Errorf("after saving without a choice: %+v, want the error and the reason still in its field", p)
	}
}
