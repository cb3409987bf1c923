package mailbox

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

// FuzzPages: a logged-in office user's browser can send any path under the
// mailbox, any query, any form (with the right CSRF token or without), by GET or
// POST; the answer is never a 5xx, a page is HTML, and no page or download of
// another office's submission is ever served (bert's office owns "fremd").
func FuzzPages(f *testing.F) {
	desk := newMemDesk()
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	desk.Add(&submission.Submission{ID: "vorgang-1", OfficeID: "amt-a", ServiceName: "Gewerbe anmelden", Place: "Dresden",
		Sender: "amt24", State: submission.StateHandedOver, ReceivedAt: at,
		Attachments: []submission.Attachment{{ID: "plan", FileName: "Plan.pdf", MimeType: "application/pdf", Size: 4, SHA256: "aa"}}},
		[]byte("<Antragspaket/>"), map[string][]byte{"aa": []byte("%PDF")})
	desk.Add(&submission.Submission{ID: "fremd", OfficeID: "amt-b", ServiceName: "Geheim", Place: "Leipzig",
		Sender: "amt24", State: submission.StateHandedOver, ReceivedAt: at}, []byte("<Geheim/>"), nil)
	m := memMailbox(f, desk)
	c := newClient(f, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	csrf := csrfFrom(f, c.get("/postfach/s/vorgang-1").Body.String())

	for _, s := range []struct {
		post              bool
		path, query, form string
		withCSRF          bool
	}{
		{false, "", "", "", false},
		{false, "", "q=Gewerbe&status=angenommen&nach=x", "", false},
		{false, "s/vorgang-1", "meldung=grund", "", false},
		{false, "s/vorgang-1/anlage/plan", "", "", false},
		{false, "s/vorgang-1/paket", "", "", false},
		{false, "s/fremd", "", "", false},
		{true, "s/vorgang-1/entscheidung", "", "ergebnis=ablehnen&begruendung=", true},
		{true, "s/vorgang-1/entscheidung", "", "ergebnis=annehmen&begruendung=gut", true},
		{true, "s/vorgang-1/erledigt", "", "", true},
		{true, "s/fremd/entscheidung", "", "ergebnis=annehmen", true},
		{true, "s/vorgang-1/entscheidung", "", "ergebnis=annehmen", false},
		{false, "static/style.css", "", "", false},
	} {
		f.Add(s.post, s.path, s.query, s.form, s.withCSRF)
	}
	f.Fuzz(func(t *testing.T, post bool, path, query, form string, withCSRF bool) {
		if strings.IndexFunc(path+query, func(r rune) bool { return r <= 0x20 || r > 0x7e || r == '#' || r == '?' }) >= 0 ||
			strings.Contains(path, "abmelden") {
			return // not a request line a browser sends; logging out ends the session the fuzzer needs
		}
		target := "/postfach/" + path
		if query != "" {
			target += "?" + query
		}
		if _, err := url.ParseRequestURI(target); err != nil {
			return // a browser would not send it (and httptest cannot)
		}
		method, values := http.MethodGet, url.Values(nil)
		if post {
			method = http.MethodPost
			values, _ = url.ParseQuery(form)
			if values == nil {
				values = url.Values{}
			}
			if withCSRF {
				values.Set("csrf", csrf)
			}
		}
		c.t = t // the client reports to the running input, not to f
		rec := c.do(method, target, values)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: %d\n%s", method, target, rec.Code, rec.Body)
		}
		body := rec.Body.String()
		if strings.Contains(body, "Geheim") || strings.Contains(body, "Leipzig") {
			t.Fatalf("%s %s: another office's submission shown:\n%s", method, target, body)
		}
		ct := rec.Header().Get("Content-Type")
		if rec.Code == http.StatusOK && !strings.HasPrefix(ct, "text/html") && !strings.HasPrefix(ct, "text/css") &&
			!strings.HasPrefix(ct, "application/pdf") && !strings.HasPrefix(ct, "application/xml") && !strings.HasPrefix(ct, "application/octet-stream") {
			t.Fatalf("%s %s: 200 as %q", method, target, ct)
		}
		if rec.Code >= 400 && !strings.HasPrefix(ct, "text/html") && !strings.HasPrefix(path, "static/") {
			t.Fatalf("%s %s: error %d as %q, not a page", method, target, rec.Code, ct)
		}
	})
}
