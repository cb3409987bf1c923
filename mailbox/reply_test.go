package mailbox

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/broker/desktest"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/submission"
)

// replyFile is the file of a reply form: its name as the clerk's computer
// has it, and its bytes. A zero replyFile is a form sent without a file.
type replyFile struct {
	name    string
	content []byte
}

// postReply sends the reply form of case id as a browser does
// (multipart/form-data, the fields in the page's order, the file last).
func (c *client) postReply(id, csrf, nonce, kind string, f replyFile) *httptest.ResponseRecorder {
	c.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, kv := range [][2]string{{"csrf", csrf}, {"antwort-id", nonce}, {"art", kind}} {
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			c.t.Fatal(err)
		}
	}
	// A browser sends the file's part also when none was chosen: no name, no bytes.
	w, err := mw.CreateFormFile("datei", f.name)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := w.Write(f.content); err != nil {
		c.t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		c.t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/postfach/s/"+id+"/antwort", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return c.send(req)
}

var reNonce = regexp.MustCompile(`name="antwort-id" value="([^"]+)"`)

// replyCase starts a gateway's mailbox on a real broker with one case of
// officeDresden handed over, logs anna in and opens the case: the reply form's
// token and own id.
func replyCase(t *testing.T) (e *brokerEnv, sub *submission.Submission, anna *client, csrf, nonce string) {
	t.Helper()
	e = startBrokerEnv(t, t.TempDir(), Options{})
	sub = e.receiveHandedOver(t, officeDresden)
	anna = e.login(t, "anna", "anna-passwort")
	csrf, nonce = replyFormOf(t, anna.get("/postfach/s/"+sub.ID).Body.String())
	return e, sub, anna, csrf, nonce
}

// replyForm is the token and the form's own id of the reply form on a case's
// page; it fails the test if the page has no reply form.
func replyFormOf(t testing.TB, page string) (csrf, nonce string) {
	t.Helper()
	m := reNonce.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `enctype="multipart/form-data"`) {
		t.Fatalf("no reply form on the page:\n%s", page)
	}
	return csrfFrom(t, page), m[1]
}

// bescheid is a Bescheid as a clerk has it: a PDF, under a name that names the
// applicant (which must go nowhere).
func bescheid(text string) replyFile {
	return replyFile{name: "Bescheid Iris Hübner.pdf", content: paket.ExamplePDF(text)}
}

// stored reports whether the broker's blob store holds content.
func (e *brokerEnv) stored(content []byte) bool {
	sum := sha256.Sum256(content)
	rc, err := e.b.Blobs().Open(context.Background(), hex.EncodeToString(sum[:]))
	if err != nil {
		return false
	}
	rc.Close()
	return true
}

// replies is what the portal that sent the case sees of its replies.
func (e *brokerEnv) replies(t testing.TB, id string) []submission.Reply {
	t.Helper()
	s, err := e.b.ForPortal(paket.ExampleSender, id)
	if err != nil {
		t.Fatal(err)
	}
	return s.Replies
}

// TestClerkSendsABescheid: a clerk with nothing but a browser could not send
// the applicant the Bescheid through the gateway; only an office on XTA could
// (sendMessage). Now she attaches it on the case's page: the portal's status
// lists it as a Bescheid, and its bytes are the PDF she chose. The page lists
// it under "Gesendete Antworten", where she can read it back, and the history
// has it. The file's name (it names the applicant) is neither stored nor
// logged; another office can neither send nor read one.
func TestClerkSendsABescheid(t *testing.T) {
	var logs testenv.Buffer
	e := startBrokerEnv(t, t.TempDir(), Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	sub := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	page := anna.get("/postfach/s/" + sub.ID).Body.String()
	if !strings.Contains(page, "Antwort an die Antragstellerin / den Antragsteller senden") || strings.Contains(page, "Gesendete Antworten") {
		t.Fatalf("the case's page before a reply:\n%s", page)
	}
	csrf, nonce := replyFormOf(t, page)
	pdf := bescheid("Bescheid: Der Papierkorb wird geleert.")

	// Another office: 404, and nothing stored.
	lars := e.login(t, "lars", "lars-passwort")
	larsCSRF := csrfFrom(t, lars.get("/postfach/").Body.String())
	if rec := lars.postReply(sub.ID, larsCSRF, nonce, "Bescheid", pdf); rec.Code != http.StatusNotFound {
		t.Fatalf("another office's reply: %d", rec.Code)
	}
	if got := e.replies(t, sub.ID); len(got) != 0 {
		t.Fatalf("another office's reply was stored: %+v", got)
	}

	rec := anna.postReply(sub.ID, csrf, nonce, "Bescheid", pdf)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/postfach/s/"+sub.ID+"?meldung=gesendet" {
		t.Fatalf("sending the Bescheid: %d to %q\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	got := e.replies(t, sub.ID)
	if len(got) != 1 {
		t.Fatalf("the portal sees %d replies, want 1", len(got))
	}
	r := got[0]
	if r.Kind != "Bescheid" || r.ContentType != "application/pdf" || r.Channel != channel.Mailbox || r.Actor != "anna" || r.Size != int64(len(pdf.content)) ||
		r.FileName != "" {
		t.Errorf("the reply: %+v", r)
	}
	_, rc, err := e.b.PortalReply(context.Background(), paket.ExampleSender, sub.ID, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(b, pdf.content) {
		t.Fatalf("the portal reads %d bytes (%v), not the Bescheid's %d", len(b), err, len(pdf.content))
	}

	after := anna.get(rec.Header().Get("Location"))
	body := after.Body.String()
	link := "s/" + sub.ID + "/antwort/" + r.ID
	for _, want := range []string{"<title>Antwort gesendet: ", "Die Antwort ist gesendet", `id="h-antworten">Gesendete Antworten`,
		`href="../` + link + `">Bescheid vom `, "PDF-Dokument", "von anna", "Antwort an das Portal gesendet: Bescheid"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page after sending lacks %q:\n%s", want, body)
		}
	}
	if _, fresh := replyFormOf(t, body); fresh == nonce {
		t.Error("the page after sending offers the same form id again: a second reply would be taken for the first")
	}
	dl := anna.get("/postfach/" + link)
	if dl.Code != http.StatusOK || !bytes.Equal(dl.Body.Bytes(), pdf.content) || dl.Header().Get("Content-Type") != "application/pdf" ||
		!strings.HasPrefix(dl.Header().Get("Content-Disposition"), `attachment; filename="bescheid-`) {
		t.Errorf("the clerk's download of the reply: %d, %d bytes, %q, %q", dl.Code, dl.Body.Len(), dl.Header().Get("Content-Type"), dl.Header().Get("Content-Disposition"))
	}
	if rec := lars.get("/postfach/" + link); rec.Code != http.StatusNotFound {
		t.Errorf("another office downloads the reply: %d", rec.Code)
	}
	if rec := anna.get("/postfach/s/" + sub.ID + "/antwort"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET on the reply's form address: %d", rec.Code)
	}
	for _, where := range []string{logs.String(), body} {
		if strings.Contains(where, "Hübner.pdf") || strings.Contains(where, "Bescheid Iris") {
			t.Errorf("the file's name went into the log or the page:\n%s", where)
		}
	}
	if !strings.Contains(logs.String(), "msg=reply ") || !strings.Contains(logs.String(), "user=anna") {
		t.Errorf("no log line of the reply with the clerk's name:\n%s", logs.String())
	}
}

// TestReplyFormSentTwiceIsStoredOnce: a double click, or a reload that sends
// the form again, must not send the Bescheid twice. The form's own id makes
// the reply's message id, so the desk stores it once. The same form sent with
// another file (Back to a page kept in memory) is not reported as sent; a new
// page's form sends a second reply.
func TestReplyFormSentTwiceIsStoredOnce(t *testing.T) {
	e, sub, anna, csrf, nonce := replyCase(t)
	pdf := bescheid("Bescheid vom 6. Dezember")
	for i := range 2 {
		if rec := anna.postReply(sub.ID, csrf, nonce, "Bescheid", pdf); rec.Code != http.StatusSeeOther {
			t.Fatalf("sending %d: %d\n%s", i+1, rec.Code, rec.Body)
		}
	}
	if got := e.replies(t, sub.ID); len(got) != 1 {
		t.Fatalf("the form sent twice stored %d replies, want 1", len(got))
	}
	other := anna.postReply(sub.ID, csrf, nonce, "Rueckfrage", bescheid("Bitte reichen Sie den Lageplan nach."))
	if other.Code != http.StatusConflict || !strings.Contains(other.Body.String(), "Nichts gesendet: Dieses Formular war schon einmal abgeschickt worden") {
		t.Fatalf("the same form with another file: %d\n%s", other.Code, other.Body)
	}
	if got := e.replies(t, sub.ID); len(got) != 1 {
		t.Fatalf("the same form with another file stored %d replies, want 1", len(got))
	}
	// Nor are its bytes kept: the desk stored them before it found the form's
	// id taken, as a blob no record names (an audit, 2026-12-06).
	if e.stored(bescheid("Bitte reichen Sie den Lageplan nach.").content) {
		t.Error("the file of the form sent again, not sent, was left in the blob store")
	}
	_, fresh := replyFormOf(t, other.Body.String())
	if rec := anna.postReply(sub.ID, csrfFrom(t, other.Body.String()), fresh, "Rueckfrage", bescheid("Bitte reichen Sie den Lageplan nach.")); rec.Code != http.StatusSeeOther {
		t.Fatalf("a second reply from a new form: %d\n%s", rec.Code, rec.Body)
	}
	if got := e.replies(t, sub.ID); len(got) != 2 || got[1].Kind != "Rueckfrage" {
		t.Fatalf("after a second reply: %+v", got)
	}
}

// TestReplyNeedsTheFormsToken: a reply without the form's token, or with
// another session's, sends nothing; the case's page says so and offers the
// form with the session's token.
func TestReplyNeedsTheFormsToken(t *testing.T) {
	e, sub, anna, csrf, nonce := replyCase(t)
	for _, token := range []string{"", "falsch", newToken()} {
		rec := anna.postReply(sub.ID, token, nonce, "Bescheid", bescheid("Bescheid"))
		body := rec.Body.String()
		if rec.Code != http.StatusForbidden || !strings.Contains(body, "Nichts gesendet: Sie haben sich inzwischen neu angemeldet") {
			t.Errorf("token %q: %d\n%s", token, rec.Code, body)
		}
		if got, _ := replyFormOf(t, body); got != csrf {
			t.Errorf("token %q: the page offers the token %q, want the session's", token, got)
		}
	}
	if got := e.replies(t, sub.ID); len(got) != 0 {
		t.Fatalf("a reply without the form's token was stored: %+v", got)
	}
}

// TestReplyFileOverTheLimit: a file beyond maxReplyFileBytes is refused on the
// case's page, with the error at the file's field and the limit named,
// never with a server error; nothing is stored. A file of the limit is sent.
func TestReplyFileOverTheLimit(t *testing.T) {
	e, sub, anna, csrf, nonce := replyCase(t)
	pdf := bescheid("Ein Bescheid mit vielen gescannten Seiten")
	at := pdf.content[:len(pdf.content):len(pdf.content)]
	at = append(at, bytes.Repeat([]byte{' '}, maxReplyFileBytes-len(at))...)
	for _, n := range []int{maxReplyFileBytes + 1, maxReplyBodyBytes + 1} {
		big := replyFile{name: "scan.pdf", content: append(at[:len(at):len(at)], bytes.Repeat([]byte{' '}, n-len(at))...)}
		rec := anna.postReply(sub.ID, csrf, nonce, "Bescheid", big)
		body := rec.Body.String()
		if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "Nichts gesendet: Die Datei ist größer als 20 MB") ||
			!strings.Contains(body, `aria-describedby="datei-fehler datei-hinweis" aria-invalid="true"`) ||
			!strings.Contains(body, `<option value="Bescheid" selected>`) {
			t.Errorf("a file of %d bytes: %d\n%s", n, rec.Code, body)
		}
		if got := e.replies(t, sub.ID); len(got) != 0 {
			t.Fatalf("a file of %d bytes was stored", n)
		}
	}
	if rec := anna.postReply(sub.ID, csrf, nonce, "Bescheid", replyFile{name: "scan.pdf", content: at}); rec.Code != http.StatusSeeOther {
		t.Fatalf("a file of the limit: %d\n%s", rec.Code, rec.Body)
	}
	if got := e.replies(t, sub.ID); len(got) != 1 || got[0].Size != maxReplyFileBytes {
		t.Fatalf("after a file of the limit: %+v", got)
	}
}

// TestReplyWaitsForRoomInTheBodyBudget: a reply's file is held in memory until
// the desk stored it, so it takes its bytes from the gateway's budget for
// bodies, which the portals' packages share (limits.body_memory). With the
// budget taken by others, the reply is refused with the page's "in einer
// Minute erneut" and nothing is stored; with room again, the same file goes.
// Before, twenty clerks' scans at once were held outside any bound.
func TestReplyWaitsForRoomInTheBodyBudget(t *testing.T) {
	bodies := httpbody.NewBudget(4<<20, 100*time.Millisecond)
	e := startBrokerEnv(t, t.TempDir(), Options{Bodies: bodies})
	sub := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	csrf, nonce := replyFormOf(t, anna.get("/postfach/s/"+sub.ID).Body.String())
	scan := bescheid("Bescheid")
	scan.content = append(scan.content, bytes.Repeat([]byte{' '}, 1<<20)...)

	others, err := bodies.Acquire(context.Background(), 4<<20) // the portals' packages
	if err != nil {
		t.Fatal(err)
	}
	rec := anna.postReply(sub.ID, csrf, nonce, "Bescheid", scan)
	if body := rec.Body.String(); rec.Code != http.StatusServiceUnavailable || !strings.Contains(body, "Bitte senden Sie die Antwort in einer Minute erneut") {
		t.Errorf("a reply without room in the budget: %d\n%s", rec.Code, body)
	}
	if got := e.replies(t, sub.ID); len(got) != 0 {
		t.Fatalf("a reply without room in the budget was stored: %+v", got)
	}
	others.Release()
	if rec := anna.postReply(sub.ID, csrf, nonce, "Bescheid", scan); rec.Code != http.StatusSeeOther {
		t.Fatalf("the reply with room again: %d\n%s", rec.Code, rec.Body)
	}
	if got := e.replies(t, sub.ID); len(got) != 1 || got[0].Size != int64(len(scan.content)) {
		t.Fatalf("after the reply with room again: %+v", got)
	}
	// What the reply held is given back once the desk has it.
	if l, err := bodies.Acquire(context.Background(), 4<<20); err != nil {
		t.Fatalf("the reply kept bytes of the budget: %v", err)
	} else {
		l.Release()
	}
}

// TestReplyFormErrors: a form without a kind, without a file, with an empty
// file or a file of another type than the page sends sends nothing; the page
// ties the error to its field.
func TestReplyFormErrors(t *testing.T) {
	e, sub, anna, csrf, nonce := replyCase(t)
	for _, c := range []struct {
		name, kind string
		file       replyFile
		status     int
		want       []string
	}{
		{"no kind", "", bescheid("x"), http.StatusUnprocessableEntity,
			[]string{"Bitte wählen Sie, was Sie senden", `aria-invalid="true" aria-describedby="art-fehler" autofocus`}},
		{"a kind the form has not", "Mahnung", bescheid("x"), http.StatusUnprocessableEntity, []string{`id="art-fehler"`}},
		{"no file", "Bescheid", replyFile{}, http.StatusUnprocessableEntity,
			[]string{"Bitte wählen Sie die Datei aus", `aria-describedby="datei-fehler datei-hinweis" aria-invalid="true" autofocus`}},
		{"an empty file", "Bescheid", replyFile{name: "leer.pdf"}, http.StatusUnprocessableEntity, []string{"Die gewählte Datei ist leer"}},
		{"a program", "Bescheid", replyFile{name: "bescheid.pdf.exe", content: append([]byte("MZ\x90\x00"), make([]byte, 200)...)}, http.StatusUnsupportedMediaType,
			[]string{"Diese Art von Datei kann nicht gesendet werden. Möglich sind PDF-Dokument (.pdf), Word-Dokument (.docx)", `id="datei-fehler"`}},
		{"text named .pdf", "Nachricht", replyFile{name: "bescheid.pdf", content: []byte("Sehr geehrte Frau Hübner, …")}, http.StatusUnsupportedMediaType,
			[]string{"Diese Art von Datei kann nicht gesendet werden", `<option value="Nachricht" selected>`}},
	} {
		rec := anna.postReply(sub.ID, csrf, nonce, c.kind, c.file)
		body := rec.Body.String()
		if rec.Code != c.status || !strings.Contains(body, "<title>Fehler: ") {
			t.Errorf("%s: %d, want %d\n%s", c.name, rec.Code, c.status, body)
		}
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: the page lacks %q", c.name, w)
			}
		}
	}
	if got := e.replies(t, sub.ID); len(got) != 0 {
		t.Fatalf("a refused form stored a reply: %+v", got)
	}
}

// TestNoReplyToACaseTheOfficeDoesNotHave: a case on its way to the office's
// system (not delivered) and a case erased after its delivery offer no reply
// form, and a reply sent anyway is refused with why, nothing stored.
func TestNoReplyToACaseTheOfficeDoesNotHave(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	bound := e.receiveVia(t, officeDresden, "", channel.API)
	erased := e.receiveHandedOver(t, officeDresden)
	e.waitState(t, bound.ID, submission.StateHandedOver)
	anna := e.login(t, "anna", "anna-passwort")
	anna.get("/postfach/s/" + erased.ID) // delivered
	if _, err := e.b.Erase(context.Background(), erased.ID, "operator", "zurückgezogen"); err != nil {
		t.Fatal(err)
	}
	csrf, nonce := replyFormOf(t, anna.get("/postfach/s/"+e.receiveHandedOver(t, officeDresden).ID).Body.String())
	for _, c := range []struct {
		id     string
		status int
		want   string
	}{
		{bound.ID, http.StatusConflict, "Nichts gesendet: Ihre Dienststelle hat diesen Eingang noch nicht erhalten"},
		{erased.ID, http.StatusGone, "Nichts gesendet: Die Dateien dieses Eingangs wurden gelöscht"},
	} {
		if page := anna.get("/postfach/s/" + c.id).Body.String(); strings.Contains(page, `id="h-antwort"`) {
			t.Errorf("case %s: the page offers the reply form", c.id)
		}
		rec := anna.postReply(c.id, csrf, nonce, "Bescheid", bescheid("Bescheid"))
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("case %s: %d, want %d with %q\n%s", c.id, rec.Code, c.status, c.want, rec.Body)
		}
		if got := e.replies(t, c.id); len(got) != 0 {
			t.Errorf("case %s: a reply was stored", c.id)
		}
	}
	if cur, _ := e.b.Submission(bound.ID); cur.DeliveredAt != nil {
		t.Error("the refused reply picked the case up")
	}
}

// TestReplySentAfterTheSessionEnded: the session ended while the clerk chose
// the file; the form leads to the login, which says that nothing was sent,
// and back to the case after it. A form that cannot be read (here: not
// multipart) still leads there, as before, carrying nothing.
func TestReplySentAfterTheSessionEnded(t *testing.T) {
	e, sub, anna, csrf, nonce := replyCase(t)
	anna.post("/postfach/abmelden", url.Values{"csrf": {csrf}})
	rec := anna.postReply(sub.ID, csrf, nonce, "Bescheid", bescheid("Bescheid"))
	if body := rec.Body.String(); rec.Code != http.StatusUnauthorized || !strings.Contains(body, "Ihre Antwort wurde nicht gesendet") ||
		!strings.Contains(body, `name="weiter" value="s/`+sub.ID+`"`) {
		t.Fatalf("a reply after the session: %d\n%.3000s", rec.Code, body)
	}
	if got := e.replies(t, sub.ID); len(got) != 0 {
		t.Fatal("a reply without a session was stored")
	}
	rec = anna.post("/postfach/s/"+sub.ID+"/antwort", url.Values{"csrf": {csrf}, "art": {"Bescheid"}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/postfach/login?abgelaufen=1&weiter="+url.QueryEscape("s/"+sub.ID) {
		t.Fatalf("an unreadable reply form after the session: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
}

// lateReplyForm is the case's form as "Antwort senden" sends it (the page's
// order: the decision's fields, the reply's, the file last), with the reason
// given, to case id.
func lateReplyForm(t *testing.T, id, csrf, nonce, reason string, file replyFile) *http.Request {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, kv := range [][2]string{{"csrf", csrf}, {"verfasser", "anna"}, {"ergebnis", "ablehnen"}, {"begruendung", reason},
		{"antwort-id", nonce}, {"antworten-bekannt", "0"}, {"art", "Rueckfrage"}} {
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	w, err := mw.CreateFormFile("datei", file.name)
	if err == nil {
		_, err = w.Write(file.content)
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/postfach/s/"+id+"/antwort", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return req
}

// reHidden is a hidden field of a page's form.
var reHidden = regexp.MustCompile(`type="hidden" name="([^"]+)" value="([^"]*)"`)

// hiddenFields are the hidden fields of page, as the browser sends them.
func hiddenFields(page string) url.Values {
	form := url.Values{}
	for _, m := range reHidden.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	return form
}

// TestReplySentLateKeepsTheDecisionTyped: the case's page is one form, so
// "Antwort senden" sends the reason typed for the decision, its choice and
// the reply's kind along with the file. Clicked after the session ended — a
// long reason written over the 30 minutes — it led to the login and back to
// the case with all of it gone, where a late decision's or mark's form is
// carried through the login: the reply's multipart body was not read
// without a session. Now the fields before the file are read (some 80 KB at
// most, the file never), the login page says that the reply was not sent and
// carries them as it carries a late decision, and after the login the case's
// form has them again, with the note that the file must be chosen again.
// Nothing is sent or decided. Another site's POST (Sec-Fetch-Site) carries
// nothing, as for a late decision, and a form whose fields before the file
// run beyond the bound is not read further.
func TestReplySentLateKeepsTheDecisionTyped(t *testing.T) {
	e, clock, sub, anna := annaOnAClock(t)
	at := "/postfach/s/" + sub.ID
	csrf, nonce := replyFormOf(t, anna.get(at).Body.String())
	clock.Add(int64(sessionIdle + time.Minute))
	const reason = "Der Lageplan fehlt <Frist & \"Form\">.\nBitte reichen Sie ihn nach."
	file := bescheid("Rückfrage")

	rec := anna.send(lateReplyForm(t, sub.ID, csrf, nonce, reason, file), "Sec-Fetch-Site", "same-site")
	if rec.Code != http.StatusSeeOther || strings.Contains(rec.Body.String(), html.EscapeString(reason)) {
		t.Errorf("a sibling host's late reply: %d, want the redirect to the login that carries nothing", rec.Code)
	}
	rec = anna.send(lateReplyForm(t, sub.ID, csrf, nonce, strings.Repeat("x", 200<<10), file))
	if rec.Code != http.StatusSeeOther {
		t.Errorf("a late reply whose fields before the file are beyond the bound: %d, want the redirect to the login", rec.Code)
	}
	// Within the bound, but more than the login form may carry (maxFormBytes,
	// form-encoded: "ä" is six bytes there), as a late decision's form of
	// that size: nothing is carried, where the login refused it (400).
	rec = anna.send(lateReplyForm(t, sub.ID, csrf, nonce, strings.Repeat("ä", 15<<10), file))
	if rec.Code != http.StatusSeeOther {
		t.Errorf("a late reply whose reason the login form cannot carry: %d, want the redirect to the login", rec.Code)
	}

	rec = anna.send(lateReplyForm(t, sub.ID, csrf, nonce, reason, file))
	body := rec.Body.String()
	if rec.Code != http.StatusUnauthorized || !strings.Contains(body, `action="../../s/`+sub.ID+`"`) ||
		!strings.Contains(body, `name="begruendung" value="`+html.EscapeString(reason)+`"`) || !strings.Contains(body, `name="ergebnis" value="ablehnen"`) ||
		!strings.Contains(body, `name="art" value="Rueckfrage"`) || !strings.Contains(body, `value="anna"`) ||
		!strings.Contains(body, "Ihre Antwort wurde nicht gesendet") {
		t.Fatalf("the late reply's answer: %d\n%.4000s", rec.Code, body)
	}
	if strings.Contains(body, "Hübner") || strings.Contains(body, "H&#252;bner") {
		t.Errorf("the login page names the file:\n%.4000s", body)
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision != nil || len(now.Replies) != 0 {
		t.Fatalf("the late reply did something: decision %+v, %d replies", now.Decision, len(now.Replies))
	}

	form := hiddenFields(body)
	form.Set("benutzer", "anna")
	form.Set("passwort", "anna-passwort")
	rec = anna.post(at, form)
	body = rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, ">"+html.EscapeString(reason)+"</textarea>") || !strings.Contains(body, `value="ablehnen" checked`) ||
		!strings.Contains(body, `<option value="Rueckfrage" selected>`) {
		t.Fatalf("after the login: %d, not the case with the reason, Ablehnen and the kind\n%.4000s", rec.Code, body)
	}
	if !strings.Contains(body, `id="datei-offen"`) || !strings.Contains(body, "Antwort ist nicht gesendet") {
		t.Errorf("after the login the page does not say that the reply was not sent and the file is to be chosen again\n%.4000s", body)
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision != nil || len(now.Replies) != 0 {
		t.Fatalf("the login did something: decision %+v, %d replies", now.Decision, len(now.Replies))
	}

	// Sent again from that page, with the file chosen again, the reply goes,
	// and the reason is still in its field.
	csrf, nonce = replyFormOf(t, body)
	req := lateReplyForm(t, sub.ID, csrf, nonce, reason, file)
	rec = anna.send(req, "Sec-Fetch-Site", "same-origin")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), ">"+html.EscapeString(reason)+"</textarea>") {
		t.Fatalf("the reply sent again: %d", rec.Code)
	}
	if got := e.replies(t, sub.ID); len(got) != 1 || got[0].Kind != "Rueckfrage" {
		t.Fatalf("after the reply sent again the portal sees %+v", got)
	}
}

// TestLateReplyIsAnsweredToAClientThatSendsFirst: the late reply's answer is
// given after the fields before the file, with the file unread. net/http
// closed the connection then with the rest of the body unread, and the kernel
// reset it under a client still sending: Chromium showed
// ERR_CONNECTION_RESET for a scan of some megabytes instead of the login
// (TestReplySentAfterTheSessionEndedKeepsWhatWasTyped). The rest is read and
// thrown away after the answer now, as replyPost does for a file too big. The
// body is larger than the loopback connection's buffers hold, so that an
// unread rest cannot hide in them.
func TestLateReplyIsAnsweredToAClientThatSendsFirst(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	srv := httptest.NewServer(e.mb.Handler())
	t.Cleanup(srv.Close)
	const reason = "Der Lageplan fehlt."
	scan := bescheid("Rückfrage")
	scan.content = append(scan.content, bytes.Repeat([]byte{' '}, 12<<20)...)
	req := lateReplyForm(t, sub.ID, "alt", "n", reason, scan)
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := fmt.Sprintf("POST /postfach/s/%s/antwort HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		sub.ID, srv.Listener.Addr(), req.Header.Get("Content-Type"), len(body))
	resp, page, err := testenv.SendFirst(conn, head, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("a client that sends the late reply (%d bytes) before it reads: %v", len(body), err)
	}
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(page), `name="begruendung" value="`+reason+`"`) {
		t.Fatalf("the late reply's answer: HTTP %d\n%.3000s", resp.StatusCode, page)
	}
}

// TestKindChosenWithALateMarkIsKept: a late mark or decision carries the
// reason through the login (TestReasonSentWithALateMarkIsKept), but the
// reply's kind chosen in the same form was dropped there, and the page after
// the login did not say that the file chosen was not sent. Both are carried
// now — that a file was chosen, not its name, which often names the applicant.
func TestKindChosenWithALateMarkIsKept(t *testing.T) {
	e, clock, sub, anna := annaOnAClock(t)
	at := "/postfach/s/" + sub.ID
	tok := csrfFrom(t, anna.get(at).Body.String())
	clock.Add(int64(sessionIdle + time.Minute))
	form := url.Values{"csrf": {tok}, "verfasser": {"anna"}, "ergebnis": {""}, "begruendung": {""}, "art": {"Bescheid"},
		"datei": {"Bescheid Iris Hübner.pdf"}, "erledigt": {"ja"}}
	rec := anna.post(at+"/erledigt", form)
	body := rec.Body.String()
	if rec.Code != http.StatusUnauthorized || !strings.Contains(body, `name="art" value="Bescheid"`) {
		t.Fatalf("the late mark's answer: %d\n%.3000s", rec.Code, body)
	}
	if strings.Contains(body, "Hübner") || strings.Contains(body, "H&#252;bner") {
		t.Errorf("the login page names the file:\n%.3000s", body)
	}
	login := hiddenFields(body)
	login.Set("benutzer", "anna")
	login.Set("passwort", "anna-passwort")
	rec = anna.post(at, login)
	body = rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, `<option value="Bescheid" selected>`) || !strings.Contains(body, `id="datei-offen"`) {
		t.Fatalf("after the login: %d, not the case with Bescheid chosen and the note at the file\n%.3000s", rec.Code, body)
	}
	if now, _ := e.b.Submission(sub.ID); now.Processed || len(now.Replies) != 0 {
		t.Fatalf("the late mark or the login did something: marked %v, %d replies", now.Processed, len(now.Replies))
	}
}

// TestSniffReplyType: the type of a reply's file is read from its bytes, not
// from its name or the browser's word: PDF, JPEG, PNG, a Word and an
// OpenDocument text; not a Word document with macros, any other ZIP, text.
func TestSniffReplyType(t *testing.T) {
	zipOf := func(names ...string) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		for _, n := range names {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Store})
			if err != nil {
				t.Fatal(err)
			}
			content := "<x/>"
			if n == "mimetype" {
				content = odtType
			}
			if _, err := io.WriteString(w, content); err != nil {
				t.Fatal(err)
			}
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"pdf", paket.ExamplePDF("x"), "application/pdf"},
		{"jpeg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), "image/jpeg"},
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "image/png"},
		{"docx", zipOf("[Content_Types].xml", "_rels/.rels", "word/document.xml"), docxType},
		{"odt", zipOf("mimetype", "content.xml"), odtType},
		{"docm", zipOf("[Content_Types].xml", "word/document.xml", "word/vbaProject.bin"), ""},
		{"xlsx", zipOf("[Content_Types].xml", "xl/workbook.xml"), ""},
		{"zip", zipOf("brief.txt"), ""},
		{"text", []byte("%PD Bescheid"), ""},
		{"html", []byte("<html><script>alert(1)</script>"), ""},
	} {
		if got := sniffReplyType(c.b); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// TestReplyFormSentTwiceAtOnce: a double click sends the form twice while the
// first is still under way, and a clerk who went Back and chose another file
// may send it before the first answer came. The same file sent at once is
// stored once and each request is told it was sent; other files under the
// same form's id at once: one is sent, each other request says it was not,
// in German on the page, and leaves no bytes behind.
func TestReplyFormSentTwiceAtOnce(t *testing.T) {
	e, sub, anna, csrf, nonce := replyCase(t)
	const n = 8
	race := func(files func(i int) replyFile) []*httptest.ResponseRecorder {
		out := make([]*httptest.ResponseRecorder, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				out[i] = anna.postReply(sub.ID, csrf, nonce, "Bescheid", files(i))
			}()
		}
		close(start)
		wg.Wait()
		return out
	}
	same := bescheid("Bescheid vom 6. Dezember")
	for i, rec := range race(func(int) replyFile { return same }) {
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("the same file, request %d: %d\n%s", i, rec.Code, rec.Body)
		}
	}
	if got := e.replies(t, sub.ID); len(got) != 1 {
		t.Fatalf("the same file sent %d times at once stored %d replies, want 1", n, len(got))
	}

	// A new form (a new page) for the other files.
	page := anna.get("/postfach/s/" + sub.ID).Body.String()
	csrf, nonce = replyFormOf(t, page)
	other := func(i int) replyFile { return bescheid(fmt.Sprintf("Bescheid, Entwurf %d", i)) }
	sent := -1
	for i, rec := range race(other) {
		switch rec.Code {
		case http.StatusSeeOther:
			if sent >= 0 {
				t.Errorf("requests %d and %d of one form were both sent", sent, i)
			}
			sent = i
		case http.StatusConflict:
			if !strings.Contains(rec.Body.String(), "Nichts gesendet: Dieses Formular war schon einmal abgeschickt worden") {
				t.Errorf("request %d: 409 without why:\n%s", i, rec.Body)
			}
		default:
			t.Fatalf("request %d: %d\n%s", i, rec.Code, rec.Body)
		}
	}
	if sent < 0 {
		t.Fatal("none of the files was sent")
	}
	if got := e.replies(t, sub.ID); len(got) != 2 {
		t.Fatalf("the case holds %d replies, want 2", len(got))
	}
	for i := range n {
		if i != sent && e.stored(other(i).content) {
			t.Errorf("the file of request %d, not sent, was left in the blob store", i)
		}
	}
}

// TestSniffReplyTypeFindsMacros: a Word document's macros are found however
// the file names them: Office reads part names without regard to case, and
// finds the macros' part by its content type and relationship, not by its
// name, so a .docm whose vbaProject.bin was renamed (or written in capitals)
// passed as a .docx. An OpenDocument text keeps its macros under Basic/ or
// Scripts/; a ZIP that names one entry twice is no document either.
func TestSniffReplyTypeFindsMacros(t *testing.T) {
	zipOf := func(entries ...[2]string) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		for _, e := range entries {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: e[0], Method: zip.Store})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(w, e[1]); err != nil {
				t.Fatal(err)
			}
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	const plainTypes = `<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">` +
		`<Default Extension="xml" ContentType="application/xml"/>` +
		`<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`
	types := [2]string{"[Content_Types].xml", plainTypes}
	doc := [2]string{"word/document.xml", "<w:document/>"}
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"docx", zipOf(types, doc), docxType},
		{"vbaProject.bin in capitals", zipOf(types, doc, [2]string{"word/VBAPROJECT.BIN", "x"}), ""},
		{"vbaProject.bin elsewhere", zipOf(types, doc, [2]string{"customXml/vbaProject.bin", "x"}), ""},
		{"the macros' part renamed", zipOf([2]string{"[Content_Types].xml", strings.Replace(plainTypes, "</Types>",
			`<Override PartName="/word/item9.bin" ContentType="application/vnd.ms-office.vbaProject"/></Types>`, 1)}, doc, [2]string{"word/item9.bin", "x"}), ""},
		{"a docm's main part", zipOf([2]string{"[Content_Types].xml", strings.Replace(plainTypes, "wordprocessingml.document.main+xml",
			"../vnd.ms-word.document.macroEnabled.main+xml", 1)}, doc), ""},
		{"[Content_Types].xml twice", zipOf(types, doc, [2]string{"[Content_Types].xml", "<Types/>"}), ""},
		{"odt", zipOf([2]string{"mimetype", odtType}, [2]string{"content.xml", "<x/>"}), odtType},
		{"odt with Basic macros", zipOf([2]string{"mimetype", odtType}, [2]string{"content.xml", "<x/>"}, [2]string{"Basic/Standard/Module1.xml", "<x/>"}), ""},
		{"odt with scripts", zipOf([2]string{"mimetype", odtType}, [2]string{"content.xml", "<x/>"}, [2]string{"Scripts/python/m.py", "x"}), ""},
		{"a ZIP of more entries than a document has", zipOf(append([][2]string{types, doc}, manyEntries(maxOfficeEntries)...)...), ""},
	} {
		if got := sniffReplyType(c.b); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// manyEntries is n empty ZIP entries, each of its own name.
func manyEntries(n int) [][2]string {
	out := make([][2]string, n)
	for i := range out {
		out[i] = [2]string{fmt.Sprintf("word/media/e%d", i), ""}
	}
	return out
}

// TestRefusedReplyKeepsTheDecisionTyped: the case's page is one form
// (TestNothingTypedIsLostByAnotherFormOfTheCase), and a reply refused — no
// kind, the form of an earlier session, no room in the gateway's budget for
// bodies — comes back with the reason and the choice the clerk typed for the
// decision in their fields, as the reply sent does; nothing is decided. The
// refusal for want of room kept not even the kind chosen, which the other
// refusals keep: the form's fields were not read at all.
func TestRefusedReplyKeepsTheDecisionTyped(t *testing.T) {
	bodies := httpbody.NewBudget(4<<20, 100*time.Millisecond)
	e := startBrokerEnv(t, t.TempDir(), Options{Bodies: bodies})
	sub := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	csrf, nonce := replyFormOf(t, anna.get("/postfach/s/"+sub.ID).Body.String())
	const reason = "Der Lageplan fehlt <Frist & Form>."
	send := func(token, kind string) *httptest.ResponseRecorder {
		t.Helper()
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		// The page's order: the decision's fields, then the reply's, the file last.
		for _, kv := range [][2]string{{"csrf", token}, {"verfasser", "anna"}, {"ergebnis", "ablehnen"}, {"begruendung", reason},
			{"antwort-id", nonce}, {"antworten-bekannt", "0"}, {"art", kind}} {
			if err := mw.WriteField(kv[0], kv[1]); err != nil {
				t.Fatal(err)
			}
		}
		w, err := mw.CreateFormFile("datei", "Rückfrage.pdf")
		if err == nil {
			_, err = w.Write(paket.ExamplePDF("Rückfrage"))
		}
		if err == nil {
			err = mw.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/postfach/s/"+sub.ID+"/antwort", &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		// As a browser sends it from the page: a form with another token
		// shows what was typed only with this (TestSiblingSiteCannotPlantAStaleDraft).
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		return anna.send(req)
	}
	for _, c := range []struct {
		name, token, kind string
		busy              bool
		status            int
	}{
		{"no kind", csrf, "", false, http.StatusUnprocessableEntity},
		{"an earlier session's form", "falsch", "Rueckfrage", false, http.StatusForbidden},
		{"no room for bodies", csrf, "Rueckfrage", true, http.StatusServiceUnavailable},
	} {
		var others *httpbody.Lease
		if c.busy {
			var err error
			if others, err = bodies.Acquire(context.Background(), 4<<20); err != nil { // the portals' packages
				t.Fatal(err)
			}
		}
		rec := send(c.token, c.kind)
		if others != nil {
			others.Release()
		}
		body := rec.Body.String()
		if rec.Code != c.status || !strings.Contains(body, ">"+html.EscapeString(reason)+"</textarea>") ||
			!strings.Contains(body, `value="ablehnen" checked`) {
			t.Errorf("%s: HTTP %d, want %d with the reason and Ablehnen in the decision form\n%s", c.name, rec.Code, c.status, body)
		}
		if c.kind != "" && !strings.Contains(body, `<option value="`+c.kind+`" selected>`) {
			t.Errorf("%s: the kind %s is not chosen any more", c.name, c.kind)
		}
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision != nil || len(now.Replies) != 0 {
		t.Fatalf("refused replies decided or replied: %+v, %d replies", now.Decision, len(now.Replies))
	}
}

// TestUnreadableReplyFormIsLoggedWithoutItsHeaderLine: a reply form whose
// part header does not parse is refused, and the log said why with the
// parser's error, which quotes the line — with the file's name in it, which
// names the applicant. The log now says only that a header line did not parse.
func TestUnreadableReplyFormIsLoggedWithoutItsHeaderLine(t *testing.T) {
	var logs testenv.Buffer
	e := startBrokerEnv(t, t.TempDir(), Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	sub := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	csrf, nonce := replyFormOf(t, anna.get("/postfach/s/"+sub.ID).Body.String())
	const marker = "Quellenmeyer-Zyxw"
	body := "--b\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n" + csrf +
		"\r\n--b\r\nContent-Disposition: form-data; name=\"antwort-id\"\r\n\r\n" + nonce +
		"\r\n--b\r\nContent-Disposition: form-data; name=\"art\"\r\n\r\nBescheid" +
		"\r\n--b\r\nContent-Disposition: form-data; name=\"datei\"; filename=\"Bescheid.pdf\"\r\nBescheid_" + marker + ".pdf\r\n\r\n%PDF-1.4\r\n--b--\r\n"
	req := httptest.NewRequest(http.MethodPost, "/postfach/s/"+sub.ID+"/antwort", strings.NewReader(body))
	req.Header.Set("Content-Type", `multipart/form-data; boundary=b`)
	rec := anna.send(req)
	if rec.Code < 400 || rec.Code >= 500 {
		t.Fatalf("a form with a header line that does not parse: %d, want a refusal", rec.Code)
	}
	if !strings.Contains(logs.String(), "reply form unreadable") {
		t.Fatalf("no log line of the refusal:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), marker) {
		t.Errorf("the log quotes the form's header line:\n%s", logs.String())
	}
	if got := e.replies(t, sub.ID); len(got) != 0 {
		t.Errorf("stored: %+v", got)
	}
}

// TestUnreadableReplyFormLineAfterAPartIsNotLogged: the multipart reader
// refuses a line after a part that is neither a boundary nor the end by
// quoting it, and what follows a boundary may be anything the form holds; the
// log line "reply form unreadable" says the error without it.
func TestUnreadableReplyFormLineAfterAPartIsNotLogged(t *testing.T) {
	const marker = "Quellenmeyer-Zyxw"
	body := "--b\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nx\r\n--b Bescheid_" + marker + ".pdf\r\n\r\nA\r\n--b--\r\n"
	req := httptest.NewRequest(http.MethodPost, "/postfach/s/x/antwort", strings.NewReader(body))
	req.Header.Set("Content-Type", `multipart/form-data; boundary=b`)
	_, err := readReplyForm(req, req.Body, false)
	if err == nil {
		t.Fatal("the form was read")
	}
	if s := formErrText(err); strings.Contains(s, marker) {
		t.Errorf("the log's text quotes the form: %q", s)
	}
}

// TestSystemsFileNameIsShownToTheClerk: a reply an office system sent with
// the file's name (XTA Message/@filename, the office API's
// Content-Disposition) is listed on the case's page with it, and the clerk's
// download carries it, as the portal's does. The clerk's own replies keep no
// name (TestClerkSendsABescheid): a name on her disk is not written for the
// applicant. Once the portal read a reply, the page says when.
func TestSystemsFileNameIsShownToTheClerk(t *testing.T) {
	e, sub, anna, _, _ := replyCase(t)
	pdf := paket.ExamplePDF("Bescheid des Fachverfahrens")
	r, err := e.b.Reply(context.Background(), officeDresden, sub.ID, broker.ReplyIn{Kind: "Bescheid", MessageID: "fv-1", ContentType: "application/pdf",
		FileName: "Bescheid Az 4711-Ü.pdf", Content: pdf, Actor: "office system", Channel: channel.API})
	if err != nil {
		t.Fatal(err)
	}
	page := anna.get("/postfach/s/" + sub.ID).Body.String()
	if !strings.Contains(page, "(Bescheid Az 4711-Ü.pdf, PDF-Dokument") {
		t.Errorf("the case's page does not name the system's file:\n%s", page)
	}
	dl := anna.get("/postfach/s/" + sub.ID + "/antwort/" + r.ID)
	if cd := dl.Header().Get("Content-Disposition"); dl.Code != http.StatusOK || cd != `attachment; filename="Bescheid Az 4711-_.pdf"; filename*=UTF-8''Bescheid%20Az%204711-%C3%9C.pdf` {
		t.Errorf("the clerk's download: %d, Content-Disposition %q", dl.Code, cd)
	}
	// Her download is no fetch of the portal; the portal's is, listed with
	// the reply and in the history.
	if page := anna.get("/postfach/s/" + sub.ID).Body.String(); strings.Contains(page, "abgerufen am") {
		t.Errorf("the clerk's own download counted as the portal's:\n%s", page)
	}
	if err := e.b.RecordReplyFetch(sub.ID, r, "portal amt24"); err != nil {
		t.Fatal(err)
	}
	page = anna.get("/postfach/s/" + sub.ID).Body.String()
	for _, want := range []string{"; vom Portal abgerufen am ", "Antwort vom Portal abgerufen: Bescheid", "portal amt24"} {
		if !strings.Contains(page, want) {
			t.Errorf("the case's page after the portal's read lacks %q:\n%s", want, page)
		}
	}
}

// TestNachreichungLinksToItsCase: a Nachreichung (the applicant's answer to a
// Rückfrage) names on its page the case it belongs to, with a link the
// clerk follows to it, and so does its row in the inbox; a new case names
// none, and lists its Nachreichungen instead, with their state, up to
// maxFollowUps and a link to the search for the rest.
func TestNachreichungLinksToItsCase(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	first := e.receiveHandedOver(t, officeDresden)
	follow := e.receiveInCase(t, officeDresden, "", first.ID, channel.Mailbox)
	e.waitState(t, follow.ID, submission.StateHandedOver)
	anna := e.login(t, "anna", "anna-passwort")
	page := anna.get("/postfach/s/" + follow.ID).Body.String()
	if !strings.Contains(page, "<dt>Nachreichung zu</dt>") || !strings.Contains(page, `href="../s/`+first.ID+`">Eingang `+first.ID+`</a>`) {
		t.Errorf("the Nachreichung's page does not link its case %s:\n%s", first.ID, page)
	}
	page = anna.get("/postfach/s/" + first.ID).Body.String()
	if strings.Contains(page, "Nachreichung zu") {
		t.Errorf("the case's own page names a case it belongs to:\n%s", page)
	}
	// Opened above, the Nachreichung is listed on its case's page as opened.
	listed := `<a href="../s/` + follow.ID + `">Eingang ` + follow.ID + `</a>, eingegangen `
	if !strings.Contains(page, "<dt>Nachreichungen</dt>") || !strings.Contains(page, listed) ||
		!strings.Contains(page, `<span class="status geoeffnet">Geöffnet</span></li>`) || strings.Contains(page, "Alle Nachreichungen") {
		t.Errorf("the case's page does not list its Nachreichung %s as opened:\n%s", follow.ID, page)
	}
	if inbox := anna.get("/postfach/").Body.String(); !strings.Contains(inbox, follow.ID+`</a> <span class="hilfe">Nachreichung zu `+first.ID+`</span>`) {
		t.Errorf("the inbox's row of the Nachreichung does not name its case:\n%s", inbox)
	}
	// A case that got more than the page lists links to the search for all.
	for range maxFollowUps {
		e.receiveInCase(t, officeDresden, "", first.ID, channel.Mailbox)
	}
	page = anna.get("/postfach/s/" + first.ID).Body.String()
	if n := strings.Count(page, ">Eingang "); n != maxFollowUps || !strings.Contains(page, `href="../?q=`+first.ID+`&amp;status=alle">Alle Nachreichungen zu diesem Eingang anzeigen</a>`) ||
		!strings.Contains(page, listed) {
		t.Errorf("the case's page with %d Nachreichungen lists %d, oldest first, and a link to all:\n%s", maxFollowUps+1, n, page)
	}
}

// failsCaseLists is a desk whose listing by case fails (a store fault).
type failsCaseLists struct{ *memDesk }

func (d failsCaseLists) List(ctx context.Context, office string, q broker.ListQuery) (broker.Page, error) {
	if q.Case != "" {
		return broker.Page{}, errors.New("store: read failed")
	}
	return d.memDesk.List(ctx, office, q)
}

// TestCasePageWithoutItsNachreichungenList: when the Nachreichungen cannot be
// listed, the case's page — already read, and maybe picked up — is shown all
// the same, saying so in their line, not as an error page.
func TestCasePageWithoutItsNachreichungenList(t *testing.T) {
	mem := newMemDesk()
	id := mem.HandOver(t, desktest.Case{Office: "amt-a", Package: []byte("<Antragspaket/>")})
	m := annasMailbox(t, Options{Desk: failsCaseLists{mem}})
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	res := c.get("/postfach/s/" + id)
	if body := res.Body.String(); res.Code != http.StatusOK || !strings.Contains(body, "<dt>Nachreichungen</dt><dd>Können gerade nicht angezeigt werden") {
		t.Errorf("the case's page: %d\n%s", res.Code, body)
	}
	if s, _ := mem.Get(context.Background(), "amt-a", id); s.DeliveredAt == nil {
		t.Error("the page's pickup was not recorded")
	}
}
