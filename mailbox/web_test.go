package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/formview"
	"github.com/amtsbote/amtsbote/internal/constscan"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// TestOfficeWorkflowWithBroker walks the pages over a real broker: the Amt24 example
// arrives over the mailbox channel, anna (Dresden) finds it, opening it is the pickup,
// she downloads the PDF and rejects with a reason; lars (Leipzig) gets 404 for all of
// it.
func TestOfficeWorkflowWithBroker(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{PublicURL: "https://gateway.example/postfach/"})
	sub := e.receiveHandedOver(t, officeDresden)
	h := e.mb.Handler()

	anon := newClient(t, h)
	if rec := anon.get("/postfach/s/" + sub.ID); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/postfach/login?weiter=s%2F"+sub.ID {
		t.Fatalf("anonymous detail: %d %q", rec.Code, rec.Header().Get("Location"))
	}

	anna := newClient(t, h)
	rec := anna.login("anna", "anna-passwort")
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	ck := rec.Result().Cookies()
	for _, c := range ck {
		// Lax: the notice's link from a webmail (another site) must arrive with
		// the session (auth.go setCookie); POSTs from other sites still do not.
		if c.Name == sessionCookie && (!c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/postfach/") {
			t.Errorf("session cookie %+v: want HttpOnly, Secure, SameSite=Lax, Path=/postfach/", c)
		}
	}

	inbox := anna.get("/postfach/")
	if inbox.Code != 200 || !strings.Contains(inbox.Body.String(), sub.ID) || !strings.Contains(inbox.Body.String(), paket.ExampleServiceName) {
		t.Fatalf("inbox: %d\n%s", inbox.Code, inbox.Body)
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": "frame-ancestors 'none'", "Cache-Control": "no-store",
		"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
	} {
		if got := inbox.Header().Get(k); !strings.Contains(got, want) {
			t.Errorf("header %s = %q, want it to contain %q", k, got, want)
		}
	}
	if csp := inbox.Header().Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP allows scripts: %q", csp)
	}
	if strings.Contains(inbox.Body.String(), "<script") || strings.Contains(inbox.Body.String(), "Hübner") {
		t.Error("inbox has a script or the applicant's name")
	}
	if got := anna.get("/postfach/?q=" + url.QueryEscape(sub.ID[:8])); !strings.Contains(got.Body.String(), sub.ID) {
		t.Error("search by case number prefix does not find it")
	}
	if got := anna.get("/postfach/?status=abgelehnt"); strings.Contains(got.Body.String(), sub.ID) {
		t.Error("state filter 'abgelehnt' lists a new submission")
	}

	// Leipzig sees nothing of Dresden's submission, by list or by URL.
	lars := newClient(t, h)
	lars.mustLogin("lars", "lars-passwort")
	if got := lars.get("/postfach/"); strings.Contains(got.Body.String(), sub.ID) {
		t.Error("another office's inbox lists the submission")
	}
	notFound := lars.get("/postfach/s/" + sub.ID)
	if notFound.Code != http.StatusNotFound {
		t.Fatalf("other office opens detail: %d", notFound.Code)
	}
	unknown := lars.get("/postfach/s/00000000-0000-4000-8000-000000000000")
	if unknown.Code != http.StatusNotFound || normalize(unknown.Body.String()) != normalize(notFound.Body.String()) {
		t.Error("the 404 for another office's id differs from the one for an unknown id")
	}
	if got := lars.get("/postfach/s/" + sub.ID + "/anlage/anlage-1"); got.Code != http.StatusNotFound {
		t.Errorf("other office downloads attachment: %d", got.Code)
	}
	if got := lars.get("/postfach/s/" + sub.ID + "/paket"); got.Code != http.StatusNotFound {
		t.Errorf("other office downloads package: %d", got.Code)
	}
	csrf := csrfFrom(t, lars.get("/postfach/").Body.String())
	if got := lars.post("/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {csrf}, "ergebnis": {"annehmen"}}); got.Code != http.StatusNotFound {
		t.Errorf("other office decides: %d", got.Code)
	}
	if got := lars.post("/postfach/s/"+sub.ID+"/erledigt", url.Values{"csrf": {csrf}, "erledigt": {"ja"}}); got.Code != http.StatusNotFound {
		t.Errorf("other office marks: %d", got.Code)
	}
	if s, _ := e.b.Submission(sub.ID); s.State != submission.StateHandedOver {
		t.Fatalf("after the other office's tries the state is %s", s.State)
	}

	// Opening is the pickup.
	detail := anna.get("/postfach/s/" + sub.ID)
	if detail.Code != 200 {
		t.Fatalf("detail: %d\n%s", detail.Code, detail.Body)
	}
	body := detail.Body.String()
	for _, want := range []string{paket.ExampleComplaint, "Priorität", "Hübner", "maengelanzeige-v1.0-", "Geöffnet"} {
		if !strings.Contains(body, want) && !strings.Contains(body, htmlEscape(want)) {
			t.Errorf("detail page lacks %q", want)
		}
	}
	if strings.Contains(body, "<Antragspaket") || strings.Contains(body, "&lt;Antragspaket") {
		t.Error("detail page shows raw XML")
	}
	s := e.waitState(t, sub.ID, submission.StateDelivered)
	if s.Receiver != "anna (Behördenpostfach)" {
		t.Errorf("receiver %q", s.Receiver)
	}
	evs, _ := e.b.Log(sub.ID)
	if last := evs[len(evs)-1]; last.Type != submission.EventDelivered || last.Channel != channel.Mailbox {
		t.Errorf("last event %+v, want delivered by mailbox", last)
	}

	// The PDF.
	dl := anna.get("/postfach/s/" + sub.ID + "/anlage/anlage-1")
	if dl.Code != 200 || !bytes.HasPrefix(dl.Body.Bytes(), []byte("%PDF")) {
		t.Fatalf("download: %d %q", dl.Code, dl.Body.String()[:min(20, dl.Body.Len())])
	}
	if cd := dl.Header().Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="maengelanzeige-v1.0-`) || !strings.Contains(cd, ".pdf") {
		t.Errorf("Content-Disposition %q", cd)
	}
	if ct := dl.Header().Get("Content-Type"); ct != "application/pdf" {
		t.Errorf("Content-Type %q", ct)
	}
	// A broken download resumes: ranges (206), and If-Range on the content's digest.
	part := anna.do(http.MethodGet, "/postfach/s/"+sub.ID+"/anlage/anlage-1", nil, "Range", "bytes=4-", "If-Range", dl.Header().Get("ETag"))
	if part.Code != http.StatusPartialContent || !bytes.Equal(part.Body.Bytes(), dl.Body.Bytes()[4:]) || dl.Header().Get("Accept-Ranges") != "bytes" {
		t.Errorf("range download: %d, %d bytes of %d, Accept-Ranges %q", part.Code, part.Body.Len(), dl.Body.Len()-4, dl.Header().Get("Accept-Ranges"))
	}

	// Reject: a reason is required.
	csrf = csrfFrom(t, body)
	if got := anna.post("/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {"falsch"}, "ergebnis": {"ablehnen"}, "begruendung": {"x"}}); got.Code != http.StatusForbidden {
		t.Errorf("wrong csrf: %d", got.Code)
	}
	got := anna.post("/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {csrf}, "ergebnis": {"ablehnen"}})
	if got.Code != http.StatusSeeOther || !strings.Contains(got.Header().Get("Location"), "grund-fehlt") {
		t.Fatalf("reject without reason: %d %q", got.Code, got.Header().Get("Location"))
	}
	if s, _ := e.b.Submission(sub.ID); s.State != submission.StateDelivered {
		t.Fatalf("state after refused form: %s", s.State)
	}
	reason := "Der Papierkorb gehört der Verkehrsgesellschaft; bitte wenden Sie sich dorthin."
	got = anna.post("/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {csrf}, "ergebnis": {"ablehnen"}, "begruendung": {reason}})
	if got.Code != http.StatusSeeOther {
		t.Fatalf("reject: %d %s", got.Code, got.Body)
	}
	s = e.waitState(t, sub.ID, submission.StateRejected)
	if s.Decision.Reason != reason || s.Decision.Actor != "anna" {
		t.Errorf("decision %+v", s.Decision)
	}
	after := anna.get(got.Header().Get("Location"))
	if !strings.Contains(after.Body.String(), "abgelehnt") || !strings.Contains(after.Body.String(), htmlEscape(reason)) {
		t.Errorf("detail after reject lacks state or reason:\n%s", after.Body)
	}
	// A different second decision is refused.
	if got := anna.post("/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {csrf}, "ergebnis": {"annehmen"}}); !strings.Contains(got.Header().Get("Location"), "konflikt") {
		t.Errorf("second decision: %d %q", got.Code, got.Header().Get("Location"))
	}

	// Mark processed, then logout ends the session.
	if got := anna.post("/postfach/s/"+sub.ID+"/erledigt", url.Values{"csrf": {csrf}, "erledigt": {"ja"}}); got.Code != http.StatusSeeOther {
		t.Errorf("mark: %d", got.Code)
	}
	if !strings.Contains(anna.get("/postfach/?status=alle").Body.String(), "erledigt</span>") {
		t.Error("the list of all cases does not show the mark")
	}
	evs, _ = e.b.Log(sub.ID)
	if last := evs[len(evs)-1]; last.Type != submission.EventProcessed || !strings.Contains(last.Actor, "anna") {
		t.Errorf("the mark is not in the event log with the user's name: %+v", last)
	}
	if got := anna.post("/postfach/abmelden", url.Values{"csrf": {csrf}}); got.Code != http.StatusSeeOther {
		t.Errorf("logout: %d", got.Code)
	}
	if got := anna.get("/postfach/"); got.Code != http.StatusSeeOther {
		t.Errorf("inbox after logout: %d", got.Code)
	}
}

func normalize(s string) string { return strings.Join(strings.Fields(s), " ") }

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

func memMailbox(t testing.TB, desk *memDesk) *Mailbox {
	return memMailboxAt(t, desk, nil)
}

func memMailboxAt(t testing.TB, desk broker.OfficeDesk, now func() time.Time) *Mailbox {
	t.Helper()
	m, err := New(Options{Desk: desk, DataDir: t.TempDir(), Now: now, Users: []User{
		{Name: "anna", Office: "amt-a", PasswordHash: fastHash(t, "anna-passwort")},
		{Name: "bert", Office: "amt-b", PasswordHash: fastHash(t, "bert-passwort")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestLoginSlowsDownGuessing(t *testing.T) {
	var now atomic.Int64 // the test's clock, read by the mailbox's goroutines too
	now.Store(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	m := memMailboxAt(t, newMemDesk(), func() time.Time { return time.Unix(0, now.Load()).UTC() })
	c := newClient(t, m.Handler())
	for i := range freeFailuresUser {
		if rec := c.login("anna", fmt.Sprintf("falsch-%d", i)); rec.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, rec.Code)
		}
	}
	rec := c.login("anna", "anna-passwort")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("right password while locked: %d, want 429 with Retry-After", rec.Code)
	}
	// Another user from another address is not affected.
	other := newClient(t, m.Handler())
	other.remote = "198.51.100.7:1234"
	other.mustLogin("bert", "bert-passwort")
	now.Add(int64(31 * time.Second))
	c.mustLogin("anna", "anna-passwort")

	// Unknown user names fail the same way.
	if rec := newClient(t, m.Handler()).login("niemand", "x"); rec.Code != http.StatusUnauthorized {
		t.Errorf("unknown user: %d", rec.Code)
	}
	// A login form without its cookie token is refused.
	bare := newClient(t, m.Handler())
	if rec := bare.post("/postfach/login", url.Values{"csrf": {"abc"}, "benutzer": {"bert"}, "passwort": {"bert-passwort"}}); rec.Code != http.StatusForbidden {
		t.Errorf("login without csrf cookie: %d", rec.Code)
	}
}

// TestLoginLimitHoldsInParallel: guesses sent at once are held to the limit as
// sequential ones are. The count was taken after the password check until
// 2026-12-04, so every request already in flight got its check: 60 parallel
// guesses for one name were all answered 401 (an audit found it), and the right
// password sent just after a burst went through and wiped the burst's count.
func TestLoginLimitHoldsInParallel(t *testing.T) {
	m := memMailbox(t, newMemDesk())
	const guesses = 60
	clients, tokens := make([]*client, guesses), make([]string, guesses)
	for i := range clients { // one address, a browser each (a tab each: same thing)
		clients[i] = newClient(t, m.Handler())
		tokens[i] = csrfFrom(t, clients[i].get("/postfach/login").Body.String())
	}
	codes := make([]int, guesses)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			codes[i] = c.post("/postfach/login", url.Values{"csrf": {tokens[i]}, "benutzer": {"anna"}, "passwort": {fmt.Sprintf("falsch-%d", i)}}).Code
		}()
	}
	close(start)
	wg.Wait()
	checked := 0
	for _, code := range codes {
		switch code {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("a guess answered %d", code)
		}
	}
	if checked != freeFailuresUser {
		t.Fatalf("%d of %d parallel guesses had their password checked, want %d", checked, guesses, freeFailuresUser)
	}
	if rec := newClient(t, m.Handler()).login("anna", "anna-passwort"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("the right password after the burst: %d, want 429", rec.Code)
	}
}

// TestLoginFormsInTwoTabs: a clerk whose session ran out in two tabs can log in
// from either; each login page used to replace the form token of the last.
func TestLoginFormsInTwoTabs(t *testing.T) {
	m := memMailbox(t, newMemDesk())
	c := newClient(t, m.Handler())
	first := csrfFrom(t, c.get("/postfach/login").Body.String())
	second := csrfFrom(t, c.get("/postfach/login").Body.String())
	if first != second {
		t.Fatal("the second login page changed the form token")
	}
	if rec := c.post("/postfach/login", url.Values{"csrf": {first}, "benutzer": {"anna"}, "passwort": {"anna-passwort"}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("login from the first tab: %d", rec.Code)
	}
}

// TestLockoutMessageRoundsOnce: at the longest lockout the page says 60 minutes,
// as Retry-After does (it said 61: rounded, then one added).
func TestLockoutMessageRoundsOnce(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	m := memMailboxAt(t, newMemDesk(), func() time.Time { return now })
	m.limiter.m["u:anna"] = &failures{n: 20, last: now, until: now.Add(maxLockout)}
	rec := newClient(t, m.Handler()).login("anna", "anna-passwort")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "3600" || !strings.Contains(rec.Body.String(), "in 60 Minuten") {
		t.Fatalf("%d Retry-After %q: %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}

func TestInboxPagingAndFilter(t *testing.T) {
	desk := newMemDesk()
	start := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	for i := range 30 {
		office := "amt-a"
		if i%10 == 9 {
			office = "amt-b"
		}
		desk.Add(&submission.Submission{ID: fmt.Sprintf("vorgang-%02d", i), OfficeID: office, ServiceName: fmt.Sprintf("Leistung %d", i),
			Place: "Dresden", Sender: "amt24", State: submission.StateHandedOver, ReceivedAt: start.Add(time.Duration(i) * time.Minute)}, nil, nil)
	}
	m := memMailbox(t, desk)
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	first := c.get("/postfach/").Body.String()
	if n := strings.Count(first, `href="s/vorgang-`); n != pageSize {
		t.Fatalf("first page has %d rows, want %d", n, pageSize)
	}
	if strings.Contains(first, "vorgang-09") {
		t.Error("another office's submission listed")
	}
	i := strings.Index(first, `rel="next"`)
	if i < 0 {
		t.Fatal("no next link")
	}
	href := first[strings.LastIndex(first[:i], `href="`)+6:]
	href = strings.ReplaceAll(href[:strings.IndexByte(href, '"')], "&amp;", "&")
	second := c.get("/postfach/" + strings.TrimPrefix(href, "./")).Body.String()
	if n := strings.Count(second, `href="s/vorgang-`); n != 27-pageSize {
		t.Errorf("second page has %d rows, want %d", n, 27-pageSize)
	}
	if strings.Contains(second, `rel="next"`) || !strings.Contains(second, "Zur ersten Seite") {
		t.Error("second page paging links wrong")
	}
	if got := c.get("/postfach/?q=Leistung+12").Body.String(); strings.Count(got, `href="s/vorgang-`) != 1 {
		t.Error("search does not narrow to one")
	}
	if got := c.get("/postfach/?status=angenommen").Body.String(); !strings.Contains(got, "Keine Eingänge passen") {
		t.Error("state filter shows submissions that are not accepted")
	}
}

// Times name their zone (MEZ/MESZ): on 2026-10-25 the clocks go back from 03:00 MESZ
// to 02:00 MEZ, and 00:30Z and 01:30Z both read "02:30 Uhr" without it, so an
// Eingang and the events of a case could not be told apart or seemed out of order.
func TestTimesNameTheirZone(t *testing.T) {
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), "25.10.2026, 02:30 Uhr MESZ"},
		{time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), "25.10.2026, 02:30 Uhr MEZ"},
		{time.Date(2026, 12, 5, 13, 4, 0, 0, time.UTC), "05.12.2026, 14:04 Uhr MEZ"},
		{time.Date(2026, 7, 1, 6, 0, 0, 0, time.UTC), "01.07.2026, 08:00 Uhr MESZ"},
	} {
		if got := when(tc.at); got != tc.want {
			t.Errorf("when(%s) = %q, want %q", tc.at, got, tc.want)
		}
	}
	// The inbox shows the two Eingänge of the repeated hour apart.
	desk := newMemDesk()
	for i, at := range []time.Time{time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC)} {
		desk.Add(&submission.Submission{ID: fmt.Sprintf("vorgang-%02d", i), OfficeID: "amt-a", ServiceName: "Leistung",
			Place: "Dresden", Sender: "amt24", State: submission.StateHandedOver, ReceivedAt: at}, nil, nil)
	}
	m := memMailbox(t, desk)
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	inbox := c.get("/postfach/").Body.String()
	for _, want := range []string{"25.10.2026, 02:30 Uhr MESZ", "25.10.2026, 02:30 Uhr MEZ"} {
		if !strings.Contains(inbox, want) {
			t.Errorf("inbox lacks %q", want)
		}
	}
}

func TestSafeFileName(t *testing.T) {
	for in, want := range map[string]string{
		"Lageplan.pdf":             "Lageplan.pdf",
		"../../etc/passwd":         "passwd",
		`C:\Users\x\Bauantrag.pdf`: "Bauantrag.pdf",
		"a\"b\r\nContent-Type: x":  "a_bContent-Type_ x",
		"...":                      "anlage",
		"Grundriß ÄÖÜ.pdf":         "Grundriß ÄÖÜ.pdf",
		"\u202egnp.exe":            "gnp.exe",
		"":                         "anlage",
	} {
		if got := safeFileName(in, "anlage"); got != want {
			t.Errorf("safeFileName(%q) = %q, want %q", in, got, want)
		}
	}
	if cd := contentDisposition("Grundriß ÄÖÜ.pdf", "x"); cd != `attachment; filename="Grundri_ ___.pdf"; filename*=UTF-8''Grundri%C3%9F%20%C3%84%C3%96%C3%9C.pdf` {
		t.Errorf("contentDisposition = %s", cd)
	}
}

func TestCSRFAndMethods(t *testing.T) {
	desk := newMemDesk()
	desk.Add(&submission.Submission{ID: "v1", OfficeID: "amt-a", ServiceName: "S", State: submission.StateHandedOver, ReceivedAt: time.Now()}, nil, nil)
	m := memMailbox(t, desk)
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	if rec := c.post("/postfach/s/v1/entscheidung", url.Values{"ergebnis": {"annehmen"}}); rec.Code != http.StatusForbidden {
		t.Errorf("POST without csrf: %d", rec.Code)
	}
	if rec := c.get("/postfach/s/v1/entscheidung"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET on a POST action: %d", rec.Code)
	}
	if rec := c.get("/postfach/abmelden"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET logout: %d", rec.Code)
	}
	if s, _ := desk.Get(t.Context(), "amt-a", "v1"); s.State != submission.StateHandedOver {
		t.Errorf("state changed by refused requests: %s", s.State)
	}
	// Also works behind http.StripPrefix.
	strip := newClient(t, http.StripPrefix("/postfach", m.Handler()))
	strip.mustLogin("anna", "anna-passwort")
	if rec := strip.get("/postfach/s/v1"); rec.Code != 200 {
		t.Errorf("detail behind StripPrefix: %d", rec.Code)
	}
}

// TestMarkSeenOnEveryGateway: two mailboxes over one desk, as the gateways of a
// cluster over one store. A mark set at one is shown by the other with who set
// it, and taken back at the other it is gone from the first. (The mark used to be
// kept in each mailbox's own file: the other gateway never showed it.)
func TestMarkSeenOnEveryGateway(t *testing.T) {
	desk := newMemDesk()
	desk.Add(&submission.Submission{ID: "v1", OfficeID: "amt-a", ServiceName: "Gewerbe anmelden", State: submission.StateHandedOver, ReceivedAt: time.Now()}, []byte("<x/>"), nil)
	one, two := newClient(t, memMailbox(t, desk).Handler()), newClient(t, memMailbox(t, desk).Handler())
	one.mustLogin("anna", "anna-passwort")
	two.mustLogin("anna", "anna-passwort")
	shown := func(c *client) (inInbox bool, detail string) {
		t.Helper()
		d := c.get("/postfach/s/v1") // opening is the pickup: the office has it
		return strings.Contains(c.get("/postfach/").Body.String(), "erledigt</span>"), normalize(d.Body.String())
	}
	_, page := shown(one)
	if got := one.post("/postfach/s/v1/erledigt", url.Values{"csrf": {csrfFrom(t, page)}, "erledigt": {"ja"}}); got.Code != http.StatusSeeOther {
		t.Fatalf("mark: %d", got.Code)
	}
	if in, page := shown(two); !in || !strings.Contains(page, "von anna.") {
		t.Fatalf("the other gateway does not show the mark (inbox %v):\n%s", in, page)
	}
	_, page = shown(two)
	if got := two.post("/postfach/s/v1/erledigt", url.Values{"csrf": {csrfFrom(t, page)}, "erledigt": {"nein"}}); got.Code != http.StatusSeeOther {
		t.Fatalf("unmark: %d", got.Code)
	}
	if in, page := shown(one); in || strings.Contains(page, "Als erledigt markiert am") {
		t.Fatalf("the first gateway still shows the mark taken back at the other (inbox %v)", in)
	}
}

// TestLoginLimitsBehindAProxy: behind a trusted reverse proxy every request comes
// from the proxy's address. The address limit counts the client the proxy names
// in X-Forwarded-For, so one client's failures lock out that client, not every
// clerk behind the proxy; a peer that is not a trusted proxy cannot escape the
// limit by naming other addresses in the header.
func TestLoginLimitsBehindAProxy(t *testing.T) {
	desk := newMemDesk()
	m := annasMailbox(t, Options{Desk: desk, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}})
	behind := func(client string) *client {
		c := newClient(t, m.Handler())
		c.remote = "10.0.0.7:40000" // the load balancer
		// The client's own claim on the left, what the two proxies wrote after it.
		c.header = http.Header{"X-Forwarded-For": {"203.0.113.250, " + client + ", 10.0.0.3"}}
		return c
	}
	guesser := behind("198.51.100.7")
	for i := range freeFailuresAddr { // another name each time: the address limit, not the user's
		if rec := guesser.login(fmt.Sprintf("niemand-%d", i), "falsch"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, rec.Code)
		}
	}
	if rec := guesser.login("niemand-x", "falsch"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("the guessing client is not limited: %d", rec.Code)
	}
	behind("198.51.100.8").mustLogin("anna", "anna-passwort") // a colleague behind the same proxy

	for _, c := range []struct{ remote, xff, want string }{
		{"192.0.2.99:5000", "198.51.100.100", "192.0.2.99"},          // not a proxy: its header is its own claim
		{"10.0.0.7:1", "10.0.0.1, 10.0.0.2", "10.0.0.1"},             // only proxies: the leftmost
		{"10.0.0.7:1", "198.51.100.9, kaputt, 10.0.0.2", "10.0.0.2"}, // garbage: stop at the last good hop
		{"[::ffff:10.0.0.7]:1", "2001:db8::1", "2001:db8::1"},        // IPv4 in IPv6, an IPv6 client
	} {
		if got := m.clientAddr(&http.Request{RemoteAddr: c.remote, Header: http.Header{"X-Forwarded-For": {c.xff}}}); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %q, want %q", c.remote, c.xff, got, c.want)
		}
	}
}

// TestEveryEventHasALabel: the Verlauf shows every event the code can write in
// German; processed, reopened, bytes_removed and the Portalverbund's events
// showed as raw codes until an audit saw them (2026-12-04). The types are read
// from the source, so a new one cannot be forgotten here.
func TestEveryEventHasALabel(t *testing.T) {
	types, err := constscan.EventTypes("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range types {
		if l := eventLabel(typ); l == typ {
			t.Errorf("event type %q has no label in the mailbox's Verlauf", typ)
		}
	}
}

// TestDeferralIsNotShownAsQueuedAgain: the Verlauf labelled every queued
// event "Zur Zustellung eingereiht"; the one a paused office endpoint writes
// when it moves a waiting case's next attempt (submission.Defer) read as the
// case queued afresh, and the page shows no details of delivery events (they
// are the gateway's English). The first queued event keeps its label.
func TestDeferralIsNotShownAsQueuedAgain(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	s, evs := submission.New(submission.Params{ID: "s1", OfficeID: "o1",
		Targets: []submission.Target{{Channel: channel.Webhook}}}, t0)
	if got := eventText(evs[len(evs)-1]); got != "Zur Zustellung eingereiht" {
		t.Fatalf("first queued event: %q", got)
	}
	deferred, err := s.Defer(t0, s.Generation, s.TotalAttempts,
		submission.Reason{Public: "the office's endpoint is failing"}, t0.Add(time.Minute))
	if err != nil || len(deferred) != 1 || deferred[0].Type != submission.EventQueued {
		t.Fatalf("Defer: %+v, %v", deferred, err)
	}
	if got := eventText(deferred[0]); got != "Zustellung zurückgestellt (Zustellweg vorübergehend pausiert)" {
		t.Fatalf("deferral: %q", got)
	}
}

// TestCaseAfterRetention: once the retention period removed a case's bytes, its
// page says so and offers no downloads, and a download link kept from before
// answers 410 with a page saying why — not a 500 and an error in the log.
func TestCaseAfterRetention(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	page := anna.get("/postfach/s/" + sub.ID).Body.String()
	csrf := csrfFrom(t, page)
	reason := "Zeile eins\nZeile zwei"
	if got := anna.post("/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {csrf}, "ergebnis": {"ablehnen"}, "begruendung": {reason}}); got.Code != http.StatusSeeOther {
		t.Fatalf("reject: %d %s", got.Code, got.Body)
	}
	if rep, err := e.b.GC(context.Background(), time.Now().Add(48*time.Hour), broker.Retention{PackageBytes: 24 * time.Hour}); err != nil || rep.BytesRemoved != 1 {
		t.Fatalf("GC: %+v %v", rep, err)
	}
	detail := anna.get("/postfach/s/" + sub.ID)
	body := detail.Body.String()
	if detail.Code != http.StatusOK || !strings.Contains(body, "nach Ablauf der Aufbewahrungsfrist gelöscht") {
		t.Fatalf("detail after retention: %d\n%s", detail.Code, body)
	}
	if strings.Contains(body, "/anlage/") || strings.Contains(body, "/paket") {
		t.Errorf("the page still offers downloads of removed bytes:\n%s", body)
	}
	if !strings.Contains(body, `class="mehrzeilig">Begründung: Zeile eins`+"\n"+`Zeile zwei`) {
		t.Errorf("the reason's line break is not kept in a pre-line element:\n%s", body)
	}
	for _, path := range []string{"/postfach/s/" + sub.ID + "/paket", "/postfach/s/" + sub.ID + "/anlage/anlage-1"} {
		got := anna.get(path)
		if got.Code != http.StatusGone || !strings.Contains(got.Body.String(), "Aufbewahrungsfrist") {
			t.Errorf("%s after retention: %d\n%s", path, got.Code, got.Body)
		}
	}
}

// failingDesk answers every package download with err.
type failingDesk struct {
	*memDesk
	err error
}

func (d failingDesk) OpenPackage(context.Context, string, string, broker.Pickup) (*submission.Submission, io.ReadCloser, error) {
	return nil, nil, d.err
}

func (d failingDesk) ReadCase(context.Context, string, string, broker.CaseRead) (*broker.Case, error) {
	return nil, d.err
}

// TestStoreTroubleIsNoFailureOfTheMailbox: a store that cannot be reached now (a
// cluster without quorum) is "try again shortly" (503, Retry-After), and a case
// whose state does not allow the action is a conflict (409); both were the page
// of a failure (500) that sent a clerk to the IT.
func TestStoreTroubleIsNoFailureOfTheMailbox(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		text string
	}{
		{fmt.Errorf("jsstore: read: %w", broker.ErrStoreUnavailable), http.StatusServiceUnavailable, "Vorübergehend nicht verfügbar"},
		{fmt.Errorf("forwarded: %w", broker.ErrConflict), http.StatusConflict, "erlaubt das nicht"},
	} {
		desk := newMemDesk()
		desk.Add(&submission.Submission{ID: "vorgang-1", OfficeID: "amt-a", ServiceName: "Gewerbe anmelden", Place: "Dresden",
			Sender: "amt24", State: submission.StateHandedOver, ReceivedAt: time.Now()}, []byte("<Antragspaket/>"), nil)
		c := newClient(t, memMailboxAt(t, failingDesk{desk, tc.err}, nil).Handler())
		c.mustLogin("anna", "anna-passwort")
		got := c.get("/postfach/s/vorgang-1/paket")
		if got.Code != tc.code || !strings.Contains(got.Body.String(), tc.text) {
			t.Errorf("%v: %d, want %d with %q\n%s", tc.err, got.Code, tc.code, tc.text, got.Body)
		}
		if tc.code == http.StatusServiceUnavailable && got.Header().Get("Retry-After") == "" {
			t.Errorf("%v: no Retry-After", tc.err)
		}
	}
}

// TestStoreDownAnswersAtOnce: while the gateway knows its store is out of reach
// (Options.StoreDown), every page says so at once, the login too (its sessions
// are in the store in a cluster); the style sheet is still served, so the page
// looks like the mailbox. When the store is back, the clerk's session works on.
func TestStoreDownAnswersAtOnce(t *testing.T) {
	var down atomic.Bool
	desk := newMemDesk()
	m := annasMailbox(t, Options{Desk: desk,
		StoreDown: func() error {
			if down.Load() {
				return errors.New("the NATS cluster does not answer for the store")
			}
			return nil
		}})
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	down.Store(true)
	for _, path := range []string{"/postfach/", "/postfach/login", "/postfach/s/vorgang-1"} {
		got := c.get(path)
		if got.Code != http.StatusServiceUnavailable || got.Header().Get("Retry-After") == "" ||
			!strings.Contains(got.Body.String(), "antwortet nicht") || strings.Contains(got.Body.String(), "NATS") {
			t.Errorf("%s with the store down: %d Retry-After=%q\n%s", path, got.Code, got.Header().Get("Retry-After"), got.Body)
		}
	}
	if got := c.get("/postfach/static/style.css"); got.Code != http.StatusOK {
		t.Errorf("style sheet with the store down: %d", got.Code)
	}
	down.Store(false)
	if got := c.get("/postfach/"); got.Code != http.StatusOK {
		t.Errorf("inbox with the store back: %d\n%s", got.Code, got.Body)
	}
}

// TestNestedFieldsNameTheirGroup: the case page shows a group's members only by
// indentation, which a screen reader does not announce; each member's label
// carries the groups it sits in as a hidden prefix (an accessibility audit).
func TestNestedFieldsNameTheirGroup(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	c := e.login(t, "anna", "anna-passwort")
	page := c.get("/postfach/s/" + sub.ID).Body.String()
	if !regexp.MustCompile(`<dt><span class="unsichtbar">Anschrift: </span>PLZ und Ort</dt><dd>01067 Dresden</dd>`).MatchString(page) {
		t.Fatalf("the postcode's label does not name its group:\n%s", page)
	}
	fields := []formview.Field{{Label: "Anschrift"}, {Label: "Wohnsitz", Depth: 1}, {Label: "Straße", Value: "Altmarkt", Depth: 2},
		{Label: "Ort", Value: "Dresden", Depth: 1}, {Label: "E-Mail", Value: "x@example.org"}}
	for i, want := range []string{"", "Anschrift", "Anschrift › Wohnsitz", "Anschrift", ""} {
		if got := groupsOf(fields, i); got != want {
			t.Errorf("groupsOf(%d) = %q, want %q", i, got, want)
		}
	}
}

// TestCaseAfterErasure: a case whose bytes were erased on request is not said to
// have reached the end of its retention period, on the page nor in its history.
func TestCaseAfterErasure(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	if _, err := e.b.Erase(context.Background(), sub.ID, "operator (admin API)", "Antrag der Betroffenen"); err != nil {
		t.Fatal(err)
	}
	anna := e.login(t, "anna", "anna-passwort")
	body := anna.get("/postfach/s/" + sub.ID).Body.String()
	if !strings.Contains(body, "auf Anordnung vor Ablauf der Aufbewahrungsfrist gelöscht") ||
		!strings.Contains(body, "Dateien auf Anordnung gelöscht") || strings.Contains(body, "nach Ablauf der Aufbewahrungsfrist") {
		t.Fatalf("detail after erasure:\n%s", body)
	}
	if strings.Contains(body, "Antrag der Betroffenen") {
		t.Errorf("the operator's note reached the office's page:\n%s", body)
	}
}

// TestLoginLimitCountsIPv6Networks: an IPv6 client is given a whole /64 network by
// its provider and picks any address in it for each connection (privacy
// extensions do so by themselves). Counted per address, the limit of 20 failures
// held nobody who sent each guess from the next address of the network: a
// password tried against every user name, each name from another address of one
// /64, was checked every time. The network has its own, larger budget; one
// address keeps its own limit of 20.
func TestLoginLimitCountsIPv6Networks(t *testing.T) {
	m := memMailbox(t, newMemDesk())
	from := func(remote string) *client {
		c := newClient(t, m.Handler())
		c.remote = remote
		return c
	}
	for i := range freeFailuresNet { // another name and another address of the network each time
		if rec := from(fmt.Sprintf("[2001:db8:1:2::%x]:4711", i+1)).login(fmt.Sprintf("niemand-%d", i), "falsch"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, rec.Code)
		}
	}
	if rec := from("[2001:db8:1:2:ffff:ffff:ffff:ffff]:4711").login("niemand-x", "falsch"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("a guess from the same /64 after %d failures: %d, want 429", freeFailuresNet, rec.Code)
	}
	from("[2001:db8:1:3::1]:4711").mustLogin("anna", "anna-passwort") // the next network is someone else
	from("192.0.2.77:4711").mustLogin("bert", "bert-passwort")

	one := from("[2001:db8:1:4::1]:4711") // one IPv6 address alone
	for i := range freeFailuresAddr {
		if rec := one.login(fmt.Sprintf("niemand-%d", i), "falsch"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d from one IPv6 address: %d", i+1, rec.Code)
		}
	}
	if rec := one.login("niemand-x", "falsch"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("one IPv6 address after %d failures: %d, want 429", freeFailuresAddr, rec.Code)
	}
}

// TestLoginLimitKeepsNoLongNames: the user limit remembers a failed name for an
// hour. It kept the name as typed, up to the form's 16 KiB, so a guesser with
// many addresses made the gateway hold megabytes per second of garbage names;
// what it keeps of a name is bounded now, and a long name is still limited.
func TestLoginLimitKeepsNoLongNames(t *testing.T) {
	m := memMailbox(t, newMemDesk())
	long := strings.Repeat("x", 15<<10)
	for i := range freeFailuresUser {
		c := newClient(t, m.Handler())
		c.remote = fmt.Sprintf("198.51.100.%d:4711", i+1)
		if rec := c.login(long, "falsch"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, rec.Code)
		}
	}
	m.limiter.mu.Lock()
	for k := range m.limiter.m {
		if len(k) > 2+maxLimitName {
			t.Errorf("the limiter keeps a key of %d bytes", len(k))
		}
	}
	m.limiter.mu.Unlock()
	c := newClient(t, m.Handler())
	c.remote = "198.51.100.200:4711"
	if rec := c.login(long, "falsch"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("the long name after %d failures: %d, want 429", freeFailuresUser, rec.Code)
	}
}

// TestPasswordChangeEndsSessions: an operator who gives a user a new password
// (her old one leaked) and restarts the gateway expects whoever logged in with
// the old one to be out. The sessions outlive a restart (mailbox.db, or the
// cluster's bucket) and were checked only for the user and her office, so a
// session opened with the leaked password stayed valid for up to ten hours.
func TestPasswordChangeEndsSessions(t *testing.T) {
	desk := newMemDesk()
	dataDir := t.TempDir()
	open := func(hash string) *Mailbox {
		m, err := New(Options{Desk: desk, DataDir: dataDir, Users: []User{{Name: "anna", Office: "amt-a", PasswordHash: hash}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	first := open(fastHash(t, "altes-passwort"))
	c := newClient(t, first.Handler())
	c.mustLogin("anna", "altes-passwort")
	kept := newClient(t, first.Handler())
	kept.mustLogin("anna", "altes-passwort")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart with the same configuration keeps the sessions.
	same := open(first.users["anna"].PasswordHash)
	kept.h = same.Handler()
	if rec := kept.get("/postfach/"); rec.Code != http.StatusOK {
		t.Fatalf("session after a restart with the same password: %d", rec.Code)
	}
	if err := same.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart with a new password ends them.
	changed := open(fastHash(t, "neues-passwort"))
	c.h = changed.Handler()
	if rec := c.get("/postfach/"); rec.Code != http.StatusSeeOther || !strings.Contains(rec.Header().Get("Location"), "login") {
		t.Fatalf("session opened with the old password, after the change: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	c.mustLogin("anna", "neues-passwort")
	if rec := c.get("/postfach/"); rec.Code != http.StatusOK {
		t.Fatalf("session with the new password: %d", rec.Code)
	}
}

// TestHeadConfirmsNothing: opening a case's page and downloading its package are
// the office's pickup (a delivery receipt is signed); a HEAD of either is not
// (RFC 9110: HEAD is safe). It confirmed, as the GET it was handled like did.
func TestHeadConfirmsNothing(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	for _, path := range []string{"/postfach/s/" + sub.ID + "/paket", "/postfach/s/" + sub.ID} {
		rec := anna.do(http.MethodHead, path, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("HEAD %s: %d", path, rec.Code)
		}
		if now, err := e.b.Submission(sub.ID); err != nil || now.State != submission.StateHandedOver || now.DeliveredAt != nil {
			t.Fatalf("HEAD %s confirmed the pickup: %v %s", path, err, now.State)
		}
	}
	if rec := anna.do(http.MethodHead, "/postfach/s/"+sub.ID+"/paket", nil); rec.Header().Get("Content-Length") != strconv.FormatInt(sub.PackageSize, 10) {
		t.Errorf("HEAD of the package: Content-Length %q, want %d", rec.Header().Get("Content-Length"), sub.PackageSize)
	}
	// The control: the page's GET is the pickup.
	anna.get("/postfach/s/" + sub.ID)
	if now, _ := e.b.Submission(sub.ID); now.DeliveredAt == nil {
		t.Fatal("the GET did not confirm either: the HEAD checks prove nothing")
	}

	// A case another channel delivered (the office's system fetched it): a HEAD
	// of its page records nobody as its first reader; a GET does.
	other := e.receiveHandedOver(t, officeDresden)
	if _, err := e.b.Confirm(context.Background(), officeDresden, other.ID, broker.Pickup{Channel: channel.API, Receiver: "office system"}); err != nil {
		t.Fatal(err)
	}
	if rec := anna.do(http.MethodHead, "/postfach/s/"+other.ID, nil); rec.Code != http.StatusOK {
		t.Fatalf("HEAD of a delivered case: %d", rec.Code)
	}
	if _, ok, err := e.mb.db.opened(other.ID); err != nil || ok {
		t.Fatalf("a HEAD recorded an opening: %v %v", ok, err)
	}
	anna.get("/postfach/s/" + other.ID)
	if o, ok, _ := e.mb.db.opened(other.ID); !ok || o.User != "anna" {
		t.Fatalf("the GET recorded no opening: %+v %v", o, ok)
	}
}

// unreadableDesk is the broker with every package's bytes out of reach (a
// cluster's blob on a node that is down, a disk fault).
type unreadableDesk struct{ broker.OfficeDesk }

func (unreadableDesk) OpenPackage(context.Context, string, string, broker.Pickup) (*submission.Submission, io.ReadCloser, error) {
	return nil, nil, fmt.Errorf("%w: blob out of reach (test)", broker.ErrUnreadable)
}

// ReadCase reads the record and the events, and the package bytes are out of reach.
func (d unreadableDesk) ReadCase(ctx context.Context, office, id string, o broker.CaseRead) (*broker.Case, error) {
	s, err := d.Get(ctx, office, id)
	if err != nil {
		return nil, err
	}
	if o.Pickup.Admit != nil {
		if err := o.Pickup.Admit(s); err != nil {
			return nil, err
		}
	}
	c := &broker.Case{Sub: s}
	if o.Open == nil || o.Open(s) {
		c.Unread = fmt.Errorf("%w: blob out of reach (test)", broker.ErrUnreadable)
	}
	if c.Events, err = d.Events(ctx, office, id); err != nil {
		return nil, err
	}
	return c, nil
}

// TestOpeningAnUnreadablePackageIsNoPickup: the case page recorded the pickup
// (the office has it, a Zustellbestaetigung signed, the portal told) before it
// read the package; when the bytes could not be read the clerk saw only an
// error, and the case counted as delivered to her. Now the pickup waits until
// the bytes are read, and the page says the case is not yet delivered.
func TestOpeningAnUnreadablePackageIsNoPickup(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	e.mb.desk = unreadableDesk{e.mb.desk}
	anna := e.login(t, "anna", "anna-passwort")
	rec := anna.get("/postfach/s/" + sub.ID)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "noch nicht als zugestellt") {
		t.Fatalf("the page of an unreadable case: %d %s", rec.Code, rec.Body)
	}
	if now, err := e.b.Submission(sub.ID); err != nil || now.DeliveredAt != nil || now.State != submission.StateHandedOver {
		t.Fatalf("an unreadable package counted as picked up: %v %s", err, now.State)
	}
	// The control: with the bytes back, opening the page is the pickup.
	e.mb.desk = e.b
	anna.get("/postfach/s/" + sub.ID)
	if now, _ := e.b.Submission(sub.ID); now.DeliveredAt == nil {
		t.Fatal("opening a readable package is no pickup either: the check above proves nothing")
	}
}

// TestStaleFormKeepsTheTypedDecision: a clerk writes a rejection on a case's
// page, signs in again in another window (a notice's link), and sends the first
// window's form: its token is the old session's. That was a bare 403 whose
// reload sent the same stale form, and the reason was lost. Now the case's page
// comes again with the reason and the choice filled in, a note, and the new
// session's token; sending it then decides.
func TestStaleFormKeepsTheTypedDecision(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	tab := e.login(t, "anna", "anna-passwort")
	page := tab.get("/postfach/s/" + sub.ID)
	staleToken := csrfFrom(t, page.Body.String())
	other := e.login(t, "anna", "anna-passwort") // the second window's login ends the first session
	const reason = "Die Unterlagen zur Gewerbeanmeldung fehlen; bitte reichen Sie sie nach. <Zeichen & Umlaute: äöü>"
	// As a browser sends it from the page (Sec-Fetch-Site): the draft is
	// shown only with that word (TestSiblingSiteCannotPlantAStaleDraft).
	rec := other.do(http.MethodPost, "/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {staleToken}, "ergebnis": {"ablehnen"}, "begruendung": {reason}},
		"Sec-Fetch-Site", "same-origin")
	body := rec.Body.String()
	if rec.Code != http.StatusForbidden || !strings.Contains(body, "Nichts gespeichert") || !strings.Contains(body, html.EscapeString(reason)) ||
		!strings.Contains(body, `value="ablehnen" checked`) {
		t.Fatalf("the stale form's answer: %d\n%s", rec.Code, body)
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision != nil {
		t.Fatalf("a form with a stale token decided: %+v", now.Decision)
	}
	fresh := csrfFrom(t, body)
	if fresh == staleToken {
		t.Fatal("the page offers the stale token again")
	}
	if rec := other.post("/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {fresh}, "ergebnis": {"ablehnen"}, "begruendung": {reason}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("sending it again with the new token: %d %s", rec.Code, rec.Body)
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision == nil || now.Decision.Reason != reason {
		t.Fatalf("the decision after sending it again: %+v", now.Decision)
	}
}

// TestPasswordChecksAtOnceAreBounded: each login runs a bcrypt check (some
// 250 ms of CPU), and the limits count per name, address and network, so a
// guesser with fresh names from many networks got a check each and could keep
// every CPU busy. With every check slot taken a login waits briefly and is
// answered 503 with Retry-After, and is not counted as a failure; once a slot
// is free the same login goes through.
func TestPasswordChecksAtOnceAreBounded(t *testing.T) {
	old := checkWait
	checkWait = 50 * time.Millisecond
	t.Cleanup(func() { checkWait = old })
	m := memMailbox(t, newMemDesk())
	for range cap(m.checks) {
		m.checks <- struct{}{} // every slot busy with another check
	}
	c := newClient(t, m.Handler())
	rec := c.login("anna", "anna-passwort")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "ausgelastet") {
		t.Fatalf("a login with every check slot taken: %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	for range cap(m.checks) {
		<-m.checks
	}
	c.mustLogin("anna", "anna-passwort")
	if n := len(m.checks); n != 0 {
		t.Fatalf("%d check slots still taken after the logins", n)
	}
}

// TestUnknownStatusFilterIsOpen: an inbox address with a status no filter has
// (an old bookmark, a typo) listed every case, decided ones included, while the
// menu showed "Offen" chosen. It lists what "Offen" lists.
func TestUnknownStatusFilterIsOpen(t *testing.T) {
	desk := newMemDesk()
	desk.Add(&submission.Submission{ID: "offen1", OfficeID: "amt-a", ServiceName: "S", State: submission.StateHandedOver, ReceivedAt: time.Now()}, nil, nil)
	desk.Add(&submission.Submission{ID: "fertig1", OfficeID: "amt-a", ServiceName: "S", State: submission.StateAccepted, ReceivedAt: time.Now()}, nil, nil)
	c := newClient(t, memMailbox(t, desk).Handler())
	c.mustLogin("anna", "anna-passwort")
	for _, q := range []string{"", "?status=unbekannt"} {
		body := c.get("/postfach/" + q).Body.String()
		if !strings.Contains(body, "offen1") || strings.Contains(body, "fertig1") {
			t.Errorf("inbox %q: open case listed %v, decided case listed %v", q, strings.Contains(body, "offen1"), strings.Contains(body, "fertig1"))
		}
	}
}

// TestSecondClerksDecisionIsNotReportedAsSent: two clerks have one case open;
// the first rejects with her reason, the second with another. The desk keeps
// the first (the same outcome is a repeat), and the second was told "the portal
// gets the decision with your reason". He is told nothing was saved.
func TestSecondClerksDecisionIsNotReportedAsSent(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{Users: []User{{Name: "bernd", Office: officeDresden, PasswordHash: fastHash(t, "bernd-passwort")}}})
	sub := e.receiveHandedOver(t, officeDresden)
	anna, bernd := e.login(t, "anna", "anna-passwort"), e.login(t, "bernd", "bernd-passwort")
	annaTok := csrfFrom(t, anna.get("/postfach/s/"+sub.ID).Body.String())
	berndTok := csrfFrom(t, bernd.get("/postfach/s/"+sub.ID).Body.String())
	if rec := anna.post("/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {annaTok}, "ergebnis": {"ablehnen"}, "begruendung": {"Grund A"}}); !strings.Contains(rec.Header().Get("Location"), "meldung=abgelehnt") {
		t.Fatalf("the first decision: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	rec := bernd.post("/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {berndTok}, "ergebnis": {"ablehnen"}, "begruendung": {"Grund B"}})
	if loc := rec.Header().Get("Location"); !strings.Contains(loc, "meldung=schon-entschieden") {
		t.Fatalf("the second clerk's decision: %d %s", rec.Code, loc)
	}
	if page := bernd.get("/postfach/s/" + sub.ID + "?meldung=schon-entschieden").Body.String(); !strings.Contains(page, "Nichts gespeichert") || !strings.Contains(page, "Grund A") {
		t.Fatalf("the page after it:\n%s", page)
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision == nil || now.Decision.Reason != "Grund A" || now.Decision.Actor != "anna" {
		t.Fatalf("the decision kept: %+v", now.Decision)
	}
	// The same clerk sending her decision twice (a double click) is no conflict.
	if rec := anna.post("/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {annaTok}, "ergebnis": {"ablehnen"}, "begruendung": {"Grund A"}}); !strings.Contains(rec.Header().Get("Location"), "meldung=abgelehnt") {
		t.Fatalf("the first clerk's repeat: %d %s", rec.Code, rec.Header().Get("Location"))
	}
}

// TestNoDecisionOnACaseTheOfficeNeverHad: a case erased before the office took
// it showed the decision form; sending it said "decided otherwise", which was
// untrue. The page says why there is nothing to decide, and a decision sent
// anyway is 410.
func TestNoDecisionOnACaseTheOfficeNeverHad(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	if _, err := e.b.Erase(context.Background(), sub.ID, "operator", "zurückgezogen"); err != nil {
		t.Fatal(err)
	}
	anna := e.login(t, "anna", "anna-passwort")
	page := anna.get("/postfach/s/" + sub.ID).Body.String()
	if strings.Contains(page, "Entscheidung speichern") || strings.Contains(page, "Als erledigt markieren") || !strings.Contains(page, "nicht entschieden werden") {
		t.Fatalf("the page of a case the office never had:\n%s", page)
	}
	if rec := anna.post("/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {csrfFrom(t, anna.get("/postfach/").Body.String())}, "ergebnis": {"annehmen"}}); rec.Code != http.StatusGone {
		t.Fatalf("a decision on it: %d %s", rec.Code, rec.Header().Get("Location"))
	}
}

// TestCaseFetchedBeforeItsErasureCanBeDecided: the office's own system fetched
// the package (XTA's getMessage) and then an operator erased its bytes; the
// office has the case. Opening it in the mailbox recorded no pickup and said
// the office never had it, while a decision sent anyway was taken. Opening it is
// the pickup, and the page offers the decision.
func TestCaseFetchedBeforeItsErasureCanBeDecided(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	_, rc, err := e.b.FetchPackage(context.Background(), officeDresden, sub.ID, channel.XTA)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if _, err := e.b.RecordFetch(context.Background(), officeDresden, sub.ID, channel.XTA, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Erase(context.Background(), sub.ID, "operator", "zurückgezogen"); err != nil {
		t.Fatal(err)
	}
	anna := e.login(t, "anna", "anna-passwort")
	page := anna.get("/postfach/s/" + sub.ID).Body.String()
	if !strings.Contains(page, "Entscheidung speichern") || strings.Contains(page, "nicht entschieden werden") {
		t.Fatalf("the page of a case the office fetched before its erasure:\n%s", page)
	}
	if now, _ := e.b.Submission(sub.ID); now.DeliveredAt == nil {
		t.Fatal("opening the fetched case recorded no pickup")
	}
}

// TestLongReasonIsRefusedNotCut: a reason longer than maxReasonRunes (a long one
// pasted from a word processor, as section 1 of docs/mailbox.md advises) was cut
// silently, by the field's maxlength and again by the server, and the clerk was
// told "Abgelehnt" while the applicant got a reason cut mid-word. Now the field
// names the limit and takes the whole paste, and the server decides nothing: the
// form comes back with the whole reason, "Ablehnen" chosen and the error on the
// field. A reason of exactly the limit is sent whole.
func TestLongReasonIsRefusedNotCut(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	page := anna.get("/postfach/s/" + sub.ID).Body.String()
	field := regexp.MustCompile(`<textarea id="begruendung"[^>]*>`).FindString(page)
	if field == "" || strings.Contains(field, "maxlength") || !strings.Contains(page, "höchstens 2.000 Zeichen") {
		t.Fatalf("the reason field %q cuts a paste, or its label does not name the limit", field)
	}
	tok := csrfFrom(t, page)

	// 2,300 characters with umlauts, the sentence that matters last.
	long := strings.Repeat("Die eingereichten Unterlagen sind unvollständig. ", 46) + "Bitte reichen Sie den Lageplan nach."
	if n := utf8.RuneCountInString(long); n <= maxReasonRunes {
		t.Fatalf("the test's reason has %d characters, not more than %d", n, maxReasonRunes)
	}
	rec := anna.post("/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {tok}, "ergebnis": {"ablehnen"}, "begruendung": {long}})
	body := rec.Body.String()
	if rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("a reason of %d characters: HTTP %d (Location %q), want 422 with the form again", utf8.RuneCountInString(long), rec.Code, rec.Header().Get("Location"))
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision != nil {
		t.Fatalf("a reason over the limit was sent: %d of %d characters", utf8.RuneCountInString(now.Decision.Reason), utf8.RuneCountInString(long))
	}
	field = regexp.MustCompile(`<textarea id="begruendung"[^>]*>`).FindString(body)
	if !strings.Contains(body, html.EscapeString(long)+"</textarea>") || !strings.Contains(body, `value="ablehnen" checked`) ||
		!strings.Contains(field, `aria-invalid="true"`) || !strings.Contains(field, "begruendung-fehler") ||
		!strings.Contains(body, `id="begruendung-fehler">Fehler: Die Begründung ist `+thousands(utf8.RuneCountInString(long))+` Zeichen lang`) {
		t.Fatalf("the refusal does not give back the whole reason with the error on its field:\n%s", body)
	}

	// Far beyond what a form may carry: nothing read, nothing decided, and the page
	// says why rather than "Formular veraltet".
	huge := strings.Repeat("ä", maxFormBytes/3)
	rec = anna.post("/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {csrfFrom(t, body)}, "ergebnis": {"ablehnen"}, "begruendung": {huge}})
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "viel zu lang") {
		t.Fatalf("a reason bigger than a form may be: HTTP %d\n%s", rec.Code, rec.Body)
	}

	exact := strings.Repeat("ä", maxReasonRunes-1) + "."
	rec = anna.post("/postfach/s/"+sub.ID+"/entscheidung", url.Values{"csrf": {tok}, "ergebnis": {"ablehnen"}, "begruendung": {exact}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("a reason of exactly %d characters: HTTP %d\n%s", maxReasonRunes, rec.Code, rec.Body)
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision == nil || now.Decision.Reason != exact {
		t.Fatalf("the reason of exactly the limit was not sent whole: %+v", now.Decision)
	}
}

// TestMessageOnlyWhileItHolds: a case's page took its message from the address
// (?meldung=…), which Back, the history and a reload bring again whatever the case
// is now: after marking and unmarking, the old address said "Als erledigt
// markiert"; after a rejection that first failed for want of a reason, the failed
// try's address said "Fehler" and showed the form for a decided case. A message
// shows now only while it says what the case is.
func TestMessageOnlyWhileItHolds(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	at := "/postfach/s/" + sub.ID
	title := func(msg string) string {
		t.Helper()
		body := anna.get(at + "?meldung=" + msg).Body.String()
		return regexp.MustCompile(`<title>([^<]*)</title>`).FindStringSubmatch(body)[1]
	}
	tok := csrfFrom(t, anna.get(at).Body.String())
	stand := map[string]bool{}
	send := func(path string, form url.Values) {
		t.Helper()
		form.Set("csrf", tok)
		rec := anna.post(path, form)
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("POST %s: %d\n%s", path, rec.Code, rec.Body)
		}
		for _, c := range rec.Result().Cookies() {
			if c.Name == standCookie {
				stand[c.Value] = true
			}
		}
	}

	send(at+"/erledigt", url.Values{"erledigt": {"ja"}})
	if got := title("erledigt"); !strings.HasPrefix(got, "Als erledigt markiert:") {
		t.Fatalf("right after marking: title %q", got)
	}
	send(at+"/erledigt", url.Values{"erledigt": {"nein"}})
	if got := title("erledigt"); strings.Contains(got, "erledigt") {
		t.Errorf("the case is not marked, but its old address is titled %q", got)
	}
	if got := title("offen"); !strings.HasPrefix(got, "Markierung entfernt:") {
		t.Errorf("right after unmarking: title %q", got)
	}

	send(at+"/entscheidung", url.Values{"ergebnis": {"ablehnen"}})
	if body := anna.get(at + "?meldung=grund-fehlt").Body.String(); !strings.Contains(body, `id="begruendung-fehler"`) {
		t.Fatal("a rejection without reason does not say so")
	}
	send(at+"/entscheidung", url.Values{"ergebnis": {"ablehnen"}, "begruendung": {"Unterlagen fehlen."}})
	body := anna.get(at + "?meldung=grund-fehlt").Body.String()
	if strings.Contains(body, `role="alert"`) || strings.Contains(body, `id="begruendung"`) || strings.HasPrefix(title("grund-fehlt"), "Fehler") {
		t.Errorf("the case is rejected, but the failed try's address says it failed (title %q) or shows the form again", title("grund-fehlt"))
	}
	if got := title("angenommen"); strings.HasPrefix(got, "Angenommen") {
		t.Errorf("a rejected case titled %q", got)
	}
	if got := title("abgelehnt"); !strings.HasPrefix(got, "Abgelehnt:") {
		t.Errorf("right after rejecting: title %q", got)
	}
	// Each form sent changed the cookie that keeps Chromium from showing the page
	// from before the action on Back (TestBackAfterAnActionShowsTheCaseAsItIs).
	if len(stand) != 4 {
		t.Errorf("%d values of %s for 4 forms sent, want a new one each time", len(stand), standCookie)
	}
}

// TestDecisionSentAfterTheSessionEndedIsKept: the session ends after 30 minutes
// without a request, and writing a reason is none. The late form was answered
// with a redirect to the login, and the reason was lost. Now the login page
// carries the decision (hidden fields, escaped) and, after the login, shows the
// case with it in the form; it is decided only when the clerk sends that form
// with the new session's token. A draft planted by another site's POST (which
// comes without the session cookie, so looks late) is not carried.
func TestDecisionSentAfterTheSessionEndedIsKept(t *testing.T) {
	e, clock, sub, anna := annaOnAClock(t)
	at := "/postfach/s/" + sub.ID
	tok := csrfFrom(t, anna.get(at).Body.String())
	clock.Add(int64(sessionIdle + time.Minute))

	// 2,000 characters of four bytes each, lines, and what HTML must escape: more
	// than the login's old 16 KiB took.
	reason := "Zeile 1 <b>&\"Zitat\"</b>\nZeile 2 " + strings.Repeat("\U0001F4C4", maxReasonRunes-40)
	form := url.Values{"csrf": {tok}, "ergebnis": {"ablehnen"}, "begruendung": {reason}}
	if rec := anna.do(http.MethodPost, at+"/entscheidung", form, "Sec-Fetch-Site", "cross-site"); rec.Code != http.StatusSeeOther {
		t.Errorf("another site's POST without the session: %d, want the redirect to the login that carries nothing", rec.Code)
	}
	rec := anna.post(at+"/entscheidung", form)
	body := rec.Body.String()
	if rec.Code != http.StatusUnauthorized || !strings.Contains(body, `action="../../s/`+sub.ID+`"`) ||
		!strings.Contains(body, `name="begruendung" value="`+html.EscapeString(reason)+`"`) || !strings.Contains(body, `name="ergebnis" value="ablehnen"`) {
		t.Fatalf("the late decision's answer: %d\n%.3000s", rec.Code, body)
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision != nil {
		t.Fatalf("decided without a session: %+v", now.Decision)
	}
	loginForm := url.Values{"csrf": {csrfFrom(t, body)}, "benutzer": {"anna"}, "passwort": {"falsch"}, "ergebnis": {"ablehnen"}, "begruendung": {reason}}
	if rec := anna.post(at, loginForm); rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), html.EscapeString(reason)) {
		t.Fatalf("a wrong password drops the draft: %d", rec.Code)
	} else {
		loginForm.Set("csrf", csrfFrom(t, rec.Body.String()))
	}
	loginForm.Set("passwort", "anna-passwort")
	rec = anna.post(at, loginForm)
	body = rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, html.EscapeString(reason)+"</textarea>") || !strings.Contains(body, `value="ablehnen" checked`) ||
		!strings.Contains(body, "Nichts gespeichert") {
		t.Fatalf("after the login: %d, not the case with the draft\n%.3000s", rec.Code, body)
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision != nil {
		t.Fatalf("the login decided: %+v", now.Decision)
	}
	if rec := anna.post(at+"/entscheidung", url.Values{"csrf": {csrfFrom(t, body)}, "ergebnis": {"ablehnen"}, "begruendung": {reason}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("sending the form again: %d", rec.Code)
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision == nil || now.Decision.Reason != reason {
		t.Fatalf("the decision sent again: %+v", now.Decision)
	}
}

// TestAnotherClerkDoesNotGetTheDraft: the login after a late decision carried
// the draft to whoever signed in at that browser: a colleague who sat down at
// the screen where anna's session had ended found her unsaved reason in the
// case's form, ready to save under his own name. The case's form names its
// clerk now; the login pre-fills that name, and another user's login leads to
// the case without the draft.
func TestAnotherClerkDoesNotGetTheDraft(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	e := startBrokerEnv(t, t.TempDir(), Options{Now: func() time.Time { return time.Unix(0, clock.Load()) },
		Users: []User{{Name: "bernd", Office: officeDresden, PasswordHash: fastHash(t, "bernd-passwort")}}})
	sub := e.receiveHandedOver(t, officeDresden)
	browser := e.login(t, "anna", "anna-passwort")
	at := "/postfach/s/" + sub.ID
	page := browser.get(at).Body.String()
	if !strings.Contains(page, `name="verfasser" value="anna"`) {
		t.Fatalf("the case's form does not name its clerk\n%.3000s", page)
	}
	clock.Add(int64(sessionIdle + time.Minute))
	reason := "Annas Entwurf: die Unterlagen zu Herrn Muster fehlen"
	form := url.Values{"csrf": {csrfFrom(t, page)}, "verfasser": {"anna"}, "ergebnis": {"ablehnen"}, "begruendung": {reason}}
	rec := browser.post(at+"/entscheidung", form)
	body := rec.Body.String()
	if rec.Code != http.StatusUnauthorized || !strings.Contains(body, `id="benutzer" name="benutzer" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required value="anna"`) {
		t.Fatalf("the login after the late decision: %d, does not pre-fill anna\n%.3000s", rec.Code, body)
	}
	loginForm := url.Values{"csrf": {csrfFrom(t, body)}, "benutzer": {"bernd"}, "passwort": {"bernd-passwort"}}
	for _, k := range []string{"ergebnis", "begruendung", "verfasser"} {
		m := regexp.MustCompile(`type="hidden" name="` + k + `" value="([^"]*)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("the login form carries no %s", k)
		}
		loginForm.Set(k, html.UnescapeString(m[1]))
	}
	rec = browser.post(at, loginForm)
	if strings.Contains(rec.Body.String(), html.EscapeString(reason)) {
		t.Fatalf("bernd's login: %d, the case's form holds anna's draft", rec.Code)
	}
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != at {
		t.Errorf("bernd's login: %d to %q, want the case's page", rec.Code, rec.Header().Get("Location"))
	}
}

// TestInboxTitleSaysPageSearchAndCount: the inbox was titled "Posteingang" on every
// page and for every search, and nothing said how many cases a page listed, so a
// screen reader user, who hears the title first, could not tell page 2 from page
// 1, nor a search that found nothing from the inbox. The title names the search,
// the filter, the page and an empty result; the table's caption the count.
func TestInboxTitleSaysPageSearchAndCount(t *testing.T) {
	desk := newMemDesk()
	start := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	for i := range pageSize + 2 {
		desk.Add(&submission.Submission{ID: fmt.Sprintf("vorgang-%02d", i), OfficeID: "amt-a", ServiceName: fmt.Sprintf("Leistung %d", i),
			Place: "Dresden", Sender: "amt24", State: submission.StateHandedOver, ReceivedAt: start.Add(time.Duration(i) * time.Minute)}, nil, nil)
	}
	c := newClient(t, memMailbox(t, desk).Handler())
	c.mustLogin("anna", "anna-passwort")
	reTitle, reCaption, reNext := regexp.MustCompile(`<title>([^<]*)</title>`), regexp.MustCompile(`<caption[^>]*>([^<]*)</caption>`), regexp.MustCompile(`href="\./\?([^"]*)" rel="next"`)
	look := func(query string) (title, caption, next string) {
		t.Helper()
		body := c.get("/postfach/" + query).Body.String()
		title = html.UnescapeString(reTitle.FindStringSubmatch(body)[1])
		if m := reCaption.FindStringSubmatch(body); m != nil {
			caption = html.UnescapeString(m[1])
		}
		if m := reNext.FindStringSubmatch(body); m != nil {
			next = "?" + html.UnescapeString(m[1])
		}
		return title, caption, next
	}
	for _, tc := range []struct{ query, title, caption string }{
		{"", "Posteingang – Behördenpostfach", "25 Eingänge, älteste zuerst; weitere auf der nächsten Seite"},
		{"?q=Leistung+12", "Suche „Leistung 12“ – Posteingang – Behördenpostfach", "1 Eingang (gefiltert), älteste zuerst"},
		{"?q=gibt-es-nicht&status=alle", "Suche „gibt-es-nicht“, Status „Alle“: keine Eingänge – Posteingang – Behördenpostfach", ""},
		{"?status=angenommen", "Status „Angenommen“: keine Eingänge – Posteingang – Behördenpostfach", ""},
	} {
		if title, caption, _ := look(tc.query); title != tc.title || caption != tc.caption {
			t.Errorf("inbox %q: title %q, caption %q; want %q, %q", tc.query, title, caption, tc.title, tc.caption)
		}
	}
	_, _, next := look("")
	if title, caption, _ := look(next); title != "Seite 2 – Posteingang – Behördenpostfach" || caption != "Seite 2: 2 Eingänge, älteste zuerst" {
		t.Errorf("the second page (%s): title %q, caption %q", next, title, caption)
	}
}

// TestAnotherSiteCannotPlantADraft: a POST to a case's own address goes to the
// login that carries a decision typed before the session ended. Another site's
// POST there (no cookies: SameSite=Lax) was answered with the login form
// carrying its reason and "ablehnen", and after the login the clerk found them in
// the case's form, ready to save (a review of the session's diff). A draft comes
// only from this browser's own login form now: not with Sec-Fetch-Site of
// another site, and not without the login form's token (a browser that sends no
// Sec-Fetch-Site).
func TestAnotherSiteCannotPlantADraft(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	at := "/postfach/s/" + sub.ID
	e.login(t, "anna", "anna-passwort").get(at)
	planted := "Ihr Antrag ist unvollständig. Bitte überweisen Sie 50 EUR an DE00 ATTACKER"
	for _, hdr := range [][]string{{"Sec-Fetch-Site", "cross-site"}, nil} {
		victim := newClient(t, e.mb.Handler())
		rec := victim.do(http.MethodPost, at, url.Values{"ergebnis": {"ablehnen"}, "begruendung": {planted}}, hdr...)
		body := rec.Body.String()
		if strings.Contains(body, html.EscapeString(planted)) {
			t.Fatalf("another site's POST (%v): %d, the login page carries its draft", hdr, rec.Code)
		}
		form := url.Values{"csrf": {csrfFrom(t, body)}, "benutzer": {"anna"}, "passwort": {"anna-passwort"}}
		for _, k := range []string{"ergebnis", "begruendung"} {
			if m := regexp.MustCompile(`type="hidden" name="` + k + `" value="([^"]*)"`).FindStringSubmatch(body); m != nil {
				form.Set(k, html.UnescapeString(m[1]))
			}
		}
		rec = victim.post(at, form)
		if body := rec.Body.String(); strings.Contains(body, html.EscapeString(planted)) {
			t.Fatalf("after the login (%v): %d, the case's form holds the attacker's reason", hdr, rec.Code)
		}
	}
}

// TestRefusedReasonPageLinksResolve: the refusal of a reason too long is the
// case's page served at s/{id}/entscheidung, and its links were those of a page
// at s/{id}: the stylesheet resolved into s/, and the form the clerk shortened
// went to s/{id}/{id}/entscheidung, a 404 that lost the text (a review). Links
// of the case's page start from the mailbox's root now.
func TestRefusedReasonPageLinksResolve(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	page := anna.get("/postfach/s/" + sub.ID).Body.String()
	long := strings.Repeat("Die eingereichten Unterlagen sind unvollständig. ", 46)
	at := "/postfach/s/" + sub.ID + "/entscheidung"
	rec := anna.post(at, url.Values{"csrf": {csrfFrom(t, page)}, "ergebnis": {"ablehnen"}, "begruendung": {long}})
	if rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("refusal: %d", rec.Code)
	}
	body := rec.Body.String()
	base, _ := url.Parse("http://x" + at)
	resolve := func(ref string) string {
		u, _ := url.Parse(ref)
		return base.ResolveReference(u).Path
	}
	css := regexp.MustCompile(`rel="stylesheet" href="([^"]+)"`).FindStringSubmatch(body)[1]
	if got := resolve(css); got != "/postfach/static/style.css" {
		t.Errorf("the stylesheet resolves to %s", got)
	}
	for _, m := range regexp.MustCompile(`(?:href|action)="([^"#]+)"`).FindAllStringSubmatch(body, -1) {
		if got := resolve(m[1]); strings.Contains(got, sub.ID+"/"+sub.ID) || strings.HasPrefix(got, "/postfach/s/static") {
			t.Errorf("a link of the refusal page resolves to %s", got)
		}
	}
	action := regexp.MustCompile(`<button type="submit" formaction="([^"]+)"[^>]*>Entscheidung speichern<`).FindStringSubmatch(body)[1]
	if target := resolve(action); target != at {
		t.Fatalf("the decision form of the refusal page goes to %s, want %s", target, at)
	}
	rec = anna.post(at, url.Values{"csrf": {csrfFrom(t, body)}, "ergebnis": {"ablehnen"}, "begruendung": {"kurz"}})
	if rec.Code != http.StatusSeeOther {
		t.Errorf("sending the shortened reason: HTTP %d, want 303", rec.Code)
	}
}

// TestCaseOnItsWayToTheOfficesSystemIsNotOpenedByLooking: the inbox lists the
// office's cases also while they are on their way to its own system. Opening
// the page, downloading the package or deciding is the pickup, and a case
// picked up here is one the system never lists again (an audit, 2026-12-05).
// For such a case the page, the downloads and a decision record nothing; the
// takeover does, and afterwards the case is the clerk's like any other. A case
// folder already written (transfer, handed over) is with the office: its page
// opens as before.
func TestCaseOnItsWayToTheOfficesSystemIsNotOpenedByLooking(t *testing.T) {
	desk := newMemDesk()
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	add := func(id, ch string, state submission.State) {
		desk.Add(&submission.Submission{ID: id, OfficeID: "amt-a", ServiceName: "Gewerbe anmelden", Place: "Dresden",
			Sender: "amt24", State: state, ReceivedAt: at, Targets: []submission.Target{{Channel: ch}, {Channel: channel.Mailbox}},
			Attachments: []submission.Attachment{{ID: "plan", FileName: "Plan.pdf", MimeType: "application/pdf", Size: 4, SHA256: "aa"}}},
			[]byte("<Antragspaket/>"), map[string][]byte{"aa": []byte("%PDF")})
	}
	add("per-xta", channel.XTA, submission.StateHandedOver)
	add("per-webhook", channel.Webhook, submission.StateRetrying)
	add("im-ordner", channel.Transfer, submission.StateHandedOver)
	c := newClient(t, memMailbox(t, desk).Handler())
	c.mustLogin("anna", "anna-passwort")
	delivered := func(id string) bool {
		s, _ := desk.Get(context.Background(), "amt-a", id)
		return s.DeliveredAt != nil
	}

	for _, id := range []string{"per-xta", "per-webhook"} {
		page := c.get("/postfach/s/" + id).Body.String()
		if !strings.Contains(page, "Eingang hier übernehmen") || strings.Contains(page, "/anlage/plan") {
			t.Errorf("%s: the page offers no takeover, or links the attachment:\n%.2000s", id, page)
		}
		csrf := csrfFrom(t, page)
		for _, p := range []string{"/paket", "/anlage/plan"} {
			if rec := c.get("/postfach/s/" + id + p); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/postfach/s/"+id {
				t.Errorf("%s%s: %d to %q, want the case's page", id, p, rec.Code, rec.Header().Get("Location"))
			}
		}
		if rec := c.post("/postfach/s/"+id+"/entscheidung", url.Values{"csrf": {csrf}, "ergebnis": {"annehmen"}}); rec.Code != http.StatusSeeOther {
			t.Errorf("%s: a decision: %d", id, rec.Code)
		}
		if delivered(id) {
			t.Fatalf("%s: looking at the case, its downloads or a decision picked it up", id)
		}
		if s, _ := desk.Get(context.Background(), "amt-a", id); s.Decision != nil {
			t.Fatalf("%s: decided without the takeover", id)
		}
		rec := c.post("/postfach/s/"+id+"/uebernehmen", url.Values{"csrf": {csrf}})
		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/postfach/s/"+id+"?meldung=uebernommen" || !delivered(id) {
			t.Fatalf("%s: the takeover: %d to %q, delivered %v", id, rec.Code, rec.Header().Get("Location"), delivered(id))
		}
		if page := c.get("/postfach/s/" + id + "?meldung=uebernommen").Body.String(); !strings.Contains(page, "/anlage/plan") || !strings.Contains(page, "Sie haben den Eingang übernommen") {
			t.Errorf("%s: after the takeover the page is not the case's:\n%.2000s", id, page)
		}
	}
	if page := c.get("/postfach/s/im-ordner").Body.String(); strings.Contains(page, "übernehmen") || !delivered("im-ordner") {
		t.Errorf("a case folder already written: the page offers a takeover, or did not open it")
	}
}

// countingStore is the broker's real store, counting the records read by id
// while on: a Get, and each record a walk hands on.
type countingStore struct {
	store.Store
	mu    sync.Mutex
	on    bool
	reads map[string]int
}

func (c *countingStore) count(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.on {
		c.reads[id]++
	}
}

func (c *countingStore) Get(id string) (*submission.Submission, error) {
	c.count(id)
	return c.Store.Get(id)
}

func (c *countingStore) WalkOffice(officeID, after string, fn func(*submission.Submission) bool) error {
	return c.Store.WalkOffice(officeID, after, func(s *submission.Submission) bool {
		c.count(s.ID)
		return fn(s)
	})
}

func (c *countingStore) Scan(fn func(*submission.Submission) bool) error {
	return c.Store.Scan(func(s *submission.Submission) bool {
		c.count(s.ID)
		return fn(s)
	})
}

// during counts the reads of f.
func (c *countingStore) during(f func()) map[string]int {
	c.mu.Lock()
	c.on, c.reads = true, map[string]int{}
	c.mu.Unlock()
	f()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	return c.reads
}

// TestInboxReadsEachRecordOnce: an inbox page reads each case it lists once
// from the store (and the one after the page, which tells that a next page
// exists), whatever its filter: the inbox used to look each listed case up a
// second time (the "erledigt" marks, a11312f). The cases are decided, so that
// no delivery check of the broker reads them beside the page.
func TestInboxReadsEachRecordOnce(t *testing.T) {
	var cs *countingStore
	e := startBrokerEnvOver(t, t.TempDir(), Options{}, func(db store.Store) store.Store {
		cs = &countingStore{Store: db}
		return cs
	})
	var ids []string
	for range pageSize + 3 {
		ids = append(ids, e.receiveExample(t, officeDresden).ID)
	}
	for _, id := range ids {
		e.waitState(t, id, submission.StateHandedOver)
		if _, err := e.b.Confirm(t.Context(), officeDresden, id, broker.Pickup{Channel: channel.Mailbox, Receiver: "test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.b.Decide(t.Context(), officeDresden, id, broker.Decision{Outcome: broker.OutcomeAccepted, Actor: "test", Channel: channel.Mailbox}); err != nil {
			t.Fatal(err)
		}
	}
	c := e.login(t, "anna", "anna-passwort")
	for _, page := range []string{"?status=alle", "?status=angenommen", "?status=alle&nach=" + ids[pageSize-1] + "&seite=2", "?status=alle&q=" + url.QueryEscape(paket.ExampleServiceName)} {
		var body string
		reads := cs.during(func() {
			r := c.get("/postfach/" + page)
			if r.Code != http.StatusOK {
				t.Fatalf("%s: %d", page, r.Code)
			}
			body = r.Body.String()
		})
		listed := strings.Count(body, `href="s/`)
		if listed == 0 {
			t.Fatalf("%s lists nothing", page)
		}
		total := 0
		for id, n := range reads {
			total += n
			if n > 1 {
				t.Errorf("%s: case %s read %d times", page, id, n)
			}
		}
		if total > listed+1 {
			t.Errorf("%s: %d records read for %d listed", page, total, listed)
		}
	}
}

// TestCasePageReadsItsRecordOnce: opening a case page reads the case's record
// once from the store, whether the opening is its pickup, the case was picked
// up before, or nothing is opened (a HEAD). The page read it three or four
// times: once to tell whether opening counts as the pickup, once to read the
// package, once more in the broker for the pickup, and once to read the
// events. The broker's loops are stopped once the cases are handed over, so
// that no confirmation round reads them beside the page.
func TestCasePageReadsItsRecordOnce(t *testing.T) {
	var cs *countingStore
	e := startBrokerEnvOver(t, t.TempDir(), Options{}, func(db store.Store) store.Store {
		cs = &countingStore{Store: db}
		return cs
	})
	fresh, head := e.receiveExample(t, officeDresden), e.receiveExample(t, officeDresden)
	e.waitState(t, fresh.ID, submission.StateHandedOver)
	e.waitState(t, head.ID, submission.StateHandedOver)
	if err := e.b.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := e.login(t, "anna", "anna-passwort")
	for _, tc := range []struct {
		name, method, id string
		delivered        bool // after the page
	}{
		{"the opening that is the pickup", http.MethodGet, fresh.ID, true},
		{"an opening after the pickup", http.MethodGet, fresh.ID, true},
		{"a HEAD, which opens nothing", http.MethodHead, head.ID, false},
	} {
		var body string
		reads := cs.during(func() {
			r := c.do(tc.method, "/postfach/s/"+tc.id, nil)
			if r.Code != http.StatusOK {
				t.Fatalf("%s: %d", tc.name, r.Code)
			}
			body = r.Body.String()
		})
		readOnce(t, tc.name, tc.id, reads)
		s, err := e.b.Submission(tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if (s.DeliveredAt != nil) != tc.delivered {
			t.Errorf("%s: delivered %v, want %v", tc.name, s.DeliveredAt != nil, tc.delivered)
		}
		if tc.method == http.MethodGet && !strings.Contains(body, "Zugestellt (geöffnet bzw. abgeholt)") {
			t.Errorf("%s: the page's history shows no delivery", tc.name)
		}
	}
}

// TestDownloadsAndTheDecisionReadTheRecordOnce: a download of the package or
// of an attachment, a decision, the takeover and the "erledigt" mark read the
// case's record once from the store, as the case page does
// (TestCasePageReadsItsRecordOnce). Each read it twice: once for the
// mailbox's own rule (a case on its way to the office's system is not opened
// here, and only such a case is taken over) or for nothing (the mark's office
// check, which the desk makes itself), and once more in the desk for the
// action. The rule is now asked on the desk's read (broker.Admit); the
// pickup, another office's 404, the form's checks and a case left to the
// office's system (its page, no pickup) are as before.
func TestDownloadsAndTheDecisionReadTheRecordOnce(t *testing.T) {
	var cs *countingStore
	e := startBrokerEnvOver(t, t.TempDir(), Options{}, func(db store.Store) store.Store {
		cs = &countingStore{Store: db}
		return cs
	})
	load, decided, incomplete := e.receiveExample(t, officeDresden), e.receiveExample(t, officeDresden), e.receiveExample(t, officeDresden)
	pulled := e.receiveVia(t, officeDresden, "", channel.API) // its system fetches it
	for _, s := range []*submission.Submission{load, decided, incomplete, pulled} {
		e.waitState(t, s.ID, submission.StateHandedOver)
	}
	if err := e.b.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	anna, lars := e.login(t, "anna", "anna-passwort"), e.login(t, "lars", "lars-passwort")
	csrf := csrfFrom(t, anna.get("/postfach/").Body.String())
	for _, tc := range []struct {
		name      string
		c         *client
		id, path  string
		form      url.Values // a POST if not nil
		code      int
		loc       string // the redirect's target, if one is wanted
		delivered bool   // after the request
		decided   bool
	}{
		{name: "another office's download", c: lars, id: load.ID, path: "/paket", code: http.StatusNotFound},
		{name: "the attachment before the pickup", c: anna, id: load.ID, path: "/anlage/anlage-1", code: http.StatusOK},
		{name: "the download that is the pickup", c: anna, id: load.ID, path: "/paket", code: http.StatusOK, delivered: true},
		{name: "a download after the pickup", c: anna, id: load.ID, path: "/paket", code: http.StatusOK, delivered: true},
		{name: "another office's decision", c: lars, id: decided.ID, path: "/entscheidung", code: http.StatusNotFound,
			form: url.Values{"csrf": {csrfFrom(t, lars.get("/postfach/").Body.String())}, "ergebnis": {"annehmen"}}},
		{name: "the decision that is the pickup", c: anna, id: decided.ID, path: "/entscheidung", form: url.Values{"csrf": {csrf}, "ergebnis": {"annehmen"}},
			code: http.StatusSeeOther, loc: "/postfach/s/" + decided.ID + "?meldung=angenommen", delivered: true, decided: true},
		{name: "a rejection without a reason", c: anna, id: incomplete.ID, path: "/entscheidung", form: url.Values{"csrf": {csrf}, "ergebnis": {"ablehnen"}},
			code: http.StatusSeeOther, loc: "/postfach/s/" + incomplete.ID + "?meldung=grund-fehlt"},
		{name: "a download of a case its system fetches", c: anna, id: pulled.ID, path: "/paket", code: http.StatusSeeOther, loc: "/postfach/s/" + pulled.ID},
		{name: "its attachment", c: anna, id: pulled.ID, path: "/anlage/anlage-1", code: http.StatusSeeOther, loc: "/postfach/s/" + pulled.ID},
		{name: "a decision on it", c: anna, id: pulled.ID, path: "/entscheidung", form: url.Values{"csrf": {csrf}, "ergebnis": {"annehmen"}},
			code: http.StatusSeeOther, loc: "/postfach/s/" + pulled.ID},
		{name: "a takeover of a case delivered before", c: anna, id: load.ID, path: "/uebernehmen", form: url.Values{"csrf": {csrf}},
			code: http.StatusSeeOther, loc: "/postfach/s/" + load.ID, delivered: true},
		{name: "the takeover, which is the pickup", c: anna, id: pulled.ID, path: "/uebernehmen", form: url.Values{"csrf": {csrf}},
			code: http.StatusSeeOther, loc: "/postfach/s/" + pulled.ID + "?meldung=uebernommen", delivered: true},
		{name: "another office's mark", c: lars, id: decided.ID, path: "/erledigt", code: http.StatusNotFound, delivered: true, decided: true,
			form: url.Values{"csrf": {csrfFrom(t, lars.get("/postfach/").Body.String())}, "erledigt": {"ja"}}},
		{name: "the mark", c: anna, id: decided.ID, path: "/erledigt", form: url.Values{"csrf": {csrf}, "erledigt": {"ja"}},
			code: http.StatusSeeOther, loc: "/postfach/s/" + decided.ID + "?meldung=erledigt", delivered: true, decided: true},
	} {
		var code int
		var loc, body string
		reads := cs.during(func() {
			path := "/postfach/s/" + tc.id + tc.path
			if tc.form != nil {
				rec := tc.c.post(path, tc.form)
				code, loc, body = rec.Code, rec.Header().Get("Location"), rec.Body.String()
			} else {
				rec := tc.c.get(path)
				code, loc, body = rec.Code, rec.Header().Get("Location"), rec.Body.String()
			}
		})
		if code != tc.code || tc.loc != "" && loc != tc.loc {
			t.Fatalf("%s: HTTP %d to %q, want %d %q\n%.2000s", tc.name, code, loc, tc.code, tc.loc, body)
		}
		readOnce(t, tc.name, tc.id, reads)
		s, err := e.b.Submission(tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if (s.DeliveredAt != nil) != tc.delivered || (s.Decision != nil) != tc.decided {
			t.Errorf("%s: delivered %v, decided %v; want %v, %v", tc.name, s.DeliveredAt != nil, s.Decision != nil, tc.delivered, tc.decided)
		}
	}
}

// readOnce checks that one action read the record of its case id once and no
// other case's record (reads: by id, from the counting store).
func readOnce(t *testing.T, name, id string, reads map[string]int) {
	t.Helper()
	if n := reads[id]; n != 1 {
		t.Errorf("%s: the case's record read %d times, want 1 (all reads: %v)", name, n, reads)
	}
	for other, n := range reads {
		if other != id {
			t.Errorf("%s: another case's record (%s) read %d times", name, other, n)
		}
	}
}

// TestLoginWithADraftSentAgainKeepsIt: the login after a late decision
// answers with the case and the reason in its form. That page is the answer
// to a POST: a reload sends the login form again (the browser asks, and the
// clerk says yes), and so does Back to it. The login's token was spent by
// the first, and the answer was "Das Anmeldeformular war veraltet", the
// reason gone. Signed in already, the browser gets the case with the draft
// again; nothing is decided.
func TestLoginWithADraftSentAgainKeepsIt(t *testing.T) {
	e, clock, sub, anna := annaOnAClock(t)
	at := "/postfach/s/" + sub.ID
	tok := csrfFrom(t, anna.get(at).Body.String())
	clock.Add(int64(sessionIdle + time.Minute))
	reason := "Die Mängelstelle liegt auf Privatgrund;\nbitte wenden Sie sich an die Eigentümerin."
	rec := anna.post(at+"/entscheidung", url.Values{"csrf": {tok}, "ergebnis": {"ablehnen"}, "begruendung": {reason}, "verfasser": {"anna"}})
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("the late decision: %d", rec.Code)
	}
	loginForm := url.Values{"csrf": {csrfFrom(t, rec.Body.String())}, "benutzer": {"anna"}, "passwort": {"anna-passwort"},
		"ergebnis": {"ablehnen"}, "begruendung": {reason}, "verfasser": {"anna"}}
	if rec := anna.post(at, loginForm); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), html.EscapeString(reason)+"</textarea>") {
		t.Fatalf("the login: %d, not the case with the draft", rec.Code)
	}
	rec = anna.do(http.MethodPost, at, loginForm, "Sec-Fetch-Site", "same-origin") // the reload, by the browser
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, html.EscapeString(reason)+"</textarea>") || !strings.Contains(body, `value="ablehnen" checked`) ||
		strings.Contains(body, "veraltet") {
		t.Fatalf("the login form sent again: %d, not the case with the draft\n%.2000s", rec.Code, body)
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision != nil {
		t.Fatalf("the login form sent again decided: %+v", now.Decision)
	}
	if rec := anna.post(at+"/entscheidung", url.Values{"csrf": {csrfFrom(t, body)}, "ergebnis": {"ablehnen"}, "begruendung": {reason}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("sending the case's form: %d", rec.Code)
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision == nil || now.Decision.Reason != reason {
		t.Fatalf("the decision: %+v", now.Decision)
	}
	// Without a draft, a login form sent again while signed in leads on, too.
	if rec := anna.post("/postfach/login", url.Values{"csrf": {"alt"}, "benutzer": {"anna"}, "passwort": {"anna-passwort"}, "weiter": {"s/" + sub.ID}}); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != at {
		t.Errorf("a spent login form while signed in: %d to %q, want on to the case", rec.Code, rec.Header().Get("Location"))
	}
}

// TestResumedDownloadWithoutSessionIsRefused: a broken download of a big
// attachment, resumed after the session ended (the clerk clicks "Fortsetzen"
// after lunch), came with a range and got the redirect to the login page.
// Chromium follows it, takes a whole answer to a range request for the file
// anew, and completes the download with the login page's HTML under the
// attachment's name. Refused (401, no redirect), the download stays
// interrupted, to be resumed after the login.
func TestResumedDownloadWithoutSessionIsRefused(t *testing.T) {
	_, clock, sub, anna := annaOnAClock(t)
	at := "/postfach/s/" + sub.ID
	anna.get(at)
	part := anna.do(http.MethodGet, at+"/anlage/anlage-1", nil, "Range", "bytes=0-9")
	if part.Code != http.StatusPartialContent {
		t.Fatalf("the first part of the attachment: %d", part.Code)
	}
	etag := part.Header().Get("ETag")
	clock.Add(int64(sessionIdle + time.Minute))
	rec := anna.do(http.MethodGet, at+"/anlage/anlage-1", nil, "Range", "bytes=10-", "If-Range", etag)
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("Location") != "" || rec.Header().Get("Content-Disposition") != "" {
		t.Errorf("the resumption after the session ended: %d, Location %q; want 401 without a redirect", rec.Code, rec.Header().Get("Location"))
	}
	if rec := anna.get(at + "/anlage/anlage-1"); rec.Code != http.StatusSeeOther || !strings.Contains(rec.Header().Get("Location"), "weiter=s%2F"+sub.ID) {
		t.Errorf("a click on the attachment after the session ended: %d to %q, want the login leading back to the case", rec.Code, rec.Header().Get("Location"))
	}
	anna.mustLogin("anna", "anna-passwort")
	if rec := anna.do(http.MethodGet, at+"/anlage/anlage-1", nil, "Range", "bytes=10-", "If-Range", etag); rec.Code != http.StatusPartialContent {
		t.Errorf("the resumption after the login: %d, want the rest (206)", rec.Code)
	}
}

// TestLoginPageLeftOpenKeepsTheDraft: the login page that carries a late
// decision was left open longer than its token lives (an hour: lunch). Sent
// then, it was "veraltet", and the reason it carried was dropped with it. The
// browser says the form is this site's own (Sec-Fetch-Site: same-origin),
// so the refused login page carries the draft on, and the next login leads
// to the case with it. Another site's POST, or one without that header,
// still carries nothing (TestAnotherSiteCannotPlantADraft).
func TestLoginPageLeftOpenKeepsTheDraft(t *testing.T) {
	e, clock, sub, anna := annaOnAClock(t)
	at := "/postfach/s/" + sub.ID
	tok := csrfFrom(t, anna.get(at).Body.String())
	clock.Add(int64(sessionIdle + time.Minute))
	reason := "Die Mängelstelle liegt auf Privatgrund."
	rec := anna.post(at+"/entscheidung", url.Values{"csrf": {tok}, "ergebnis": {"ablehnen"}, "begruendung": {reason}, "verfasser": {"anna"}})
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("the late decision: %d", rec.Code)
	}
	form := url.Values{"csrf": {csrfFrom(t, rec.Body.String())}, "benutzer": {"anna"}, "passwort": {"anna-passwort"},
		"ergebnis": {"ablehnen"}, "begruendung": {reason}, "verfasser": {"anna"}}
	anna.mu.Lock()
	delete(anna.cookies, loginCookie) // an hour later: the browser dropped it
	anna.mu.Unlock()
	rec = anna.do(http.MethodPost, at, form, "Sec-Fetch-Site", "same-origin")
	body := rec.Body.String()
	if rec.Code != http.StatusForbidden || !strings.Contains(body, `name="begruendung" value="`+html.EscapeString(reason)+`"`) ||
		!strings.Contains(body, `name="ergebnis" value="ablehnen"`) || !strings.Contains(body, `value="anna"`) {
		t.Fatalf("the login page sent after its token's hour: %d, the draft not carried on\n%.3000s", rec.Code, body)
	}
	form.Set("csrf", csrfFrom(t, body))
	rec = anna.do(http.MethodPost, at, form, "Sec-Fetch-Site", "same-origin")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), html.EscapeString(reason)+"</textarea>") {
		t.Fatalf("the login after: %d, not the case with the draft", rec.Code)
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision != nil {
		t.Fatalf("the login decided: %+v", now.Decision)
	}
}

// TestHeaderNamesTheOffice: the header said whose mailbox this is with the
// configuration's id ("(amt-a)"), which no clerk knows her office by; it names
// the office as the jurisdiction directory does (Options.OfficeName, the
// directory as it is now), and the id only where the directory has no name.
func TestHeaderNamesTheOffice(t *testing.T) {
	named := annasMailbox(t, Options{Desk: newMemDesk(), OfficeName: func(id string) string {
		if id == "amt-a" {
			return "Stadt Dresden, Abt. Allgemeine Verwaltung/Grundsatz"
		}
		return ""
	}})
	c := newClient(t, named.Handler())
	c.mustLogin("anna", "anna-passwort")
	page := c.get("/postfach/").Body.String()
	if !strings.Contains(page, "(Stadt Dresden, Abt. Allgemeine Verwaltung/Grundsatz)") || strings.Contains(page, "(amt-a)") {
		t.Errorf("the header does not name the office by its name:\n%s", page)
	}
	unnamed := annasMailbox(t, Options{Desk: newMemDesk(), OfficeName: func(string) string { return "" }})
	c = newClient(t, unnamed.Handler())
	c.mustLogin("anna", "anna-passwort")
	if page := c.get("/postfach/").Body.String(); !strings.Contains(page, "(amt-a)") {
		t.Errorf("an office the directory does not name is not shown by its id:\n%s", page)
	}
}

// TestSearchOutlivesTheSession: the session ended while the clerk was on a
// search of her inbox, or on a later page of it; after the login she was on
// the first page, unfiltered, to search again. The login leads back to the
// search (its keys alone, rebuilt: the value cannot lead out of the mailbox),
// and the login page says so.
func TestSearchOutlivesTheSession(t *testing.T) {
	_, clock, _, anna := annaOnAClock(t)
	search := "/postfach/?q=M%C3%BCller&status=alle"
	if rec := anna.get(search); rec.Code != http.StatusOK {
		t.Fatalf("the search: %d", rec.Code)
	}
	clock.Add(int64(sessionIdle + time.Minute))
	rec := anna.get(search)
	loc := rec.Header().Get("Location")
	if rec.Code != http.StatusSeeOther || !strings.Contains(loc, "weiter=") {
		t.Fatalf("the search after the session ended: %d to %q, want the login leading back", rec.Code, loc)
	}
	page := anna.get(loc).Body.String()
	if !strings.Contains(page, "zurück zu Ihrer Suche") {
		t.Errorf("the login page does not say it leads back to the search:\n%.2000s", page)
	}
	next := regexp.MustCompile(`name="weiter" value="([^"]*)"`).FindStringSubmatch(page)
	if next == nil {
		t.Fatalf("the login form does not carry the search:\n%.2000s", page)
	}
	form := url.Values{"csrf": {csrfFrom(t, page)}, "benutzer": {"anna"}, "passwort": {"anna-passwort"}, "weiter": {html.UnescapeString(next[1])}}
	if rec := anna.post("/postfach/login", form); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != search {
		t.Errorf("after the login: %d to %q, want %q", rec.Code, rec.Header().Get("Location"), search)
	}
	for next, want := range map[string]string{
		"//evil.example/":                 "",
		"?weiter=//evil.example":          "",
		"https://evil.example/?q=x":       "",
		"?q=x&status=alle&x=1":            "?q=x&status=alle",
		"?nach=abc&seite=2":               "?nach=abc&seite=2",
		"s/abc":                           "s/abc",
		"?q=" + strings.Repeat("x", 2000): "",
	} {
		if got := loginNext(next); got != want {
			t.Errorf("loginNext(%.40q) = %q, want %q", next, got, want)
		}
	}
}

// TestSignedInClerkIsPlantedNoDraft: the login form sent again while signed in
// shows the case's page with the decision it carries (a reload of the login's
// answer). The session cookie is SameSite=Lax, which keeps it from another
// site's POST but not from a same-site one — a page on a sibling host of the
// municipality's domain. A browser that sends no Sec-Fetch-Site (Safari
// before 16.4) did not tell that page apart, and its planted "ablehnen" with a
// reason stood in the signed-in clerk's form, as TestAnotherSiteCannotPlantADraft
// keeps it out of the login. Only the browser's word that the form is this
// site's own carries the draft; without it the case's page opens empty.
func TestSignedInClerkIsPlantedNoDraft(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	at := "/postfach/s/" + sub.ID
	anna := e.login(t, "anna", "anna-passwort")
	anna.get(at)
	planted := "Ihr Antrag ist unvollständig. Bitte überweisen Sie 50 EUR an DE00 ATTACKER"
	form := url.Values{"benutzer": {"anna"}, "passwort": {"x"}, "ergebnis": {"ablehnen"}, "begruendung": {planted}}
	for _, hdr := range [][]string{nil, {"Sec-Fetch-Site", "same-site"}} {
		rec := anna.do(http.MethodPost, at, form, hdr...)
		if body := rec.Body.String(); strings.Contains(body, html.EscapeString(planted)) {
			t.Errorf("a POST to the case's address (%v) while signed in: %d, the planted reason is in the page", hdr, rec.Code)
		}
		if rec := anna.get(at); strings.Contains(rec.Body.String(), html.EscapeString(planted)) {
			t.Errorf("the case's page after a POST (%v): the planted reason is in the form", hdr)
		}
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision != nil {
		t.Fatalf("decided: %+v", now.Decision)
	}
}

// TestReasonSentWithALateMarkIsKept: the case's page is one form, so
// "Als erledigt markieren" sends the reason typed for the decision too
// (TestNothingTypedIsLostByAnotherFormOfTheCase). Clicked after the session
// ended — a long reason written over the 30 minutes — it led to the login
// and back to the case without the reason; the login carries it on now, as
// it carries a late decision's, and neither the mark nor the decision is
// done before the clerk sends the form again.
func TestReasonSentWithALateMarkIsKept(t *testing.T) {
	e, clock, sub, anna := annaOnAClock(t)
	at := "/postfach/s/" + sub.ID
	tok := csrfFrom(t, anna.get(at).Body.String())
	clock.Add(int64(sessionIdle + time.Minute))

	const reason = "Der Lageplan fehlt <Frist & Form>."
	form := url.Values{"csrf": {tok}, "verfasser": {"anna"}, "ergebnis": {"ablehnen"}, "begruendung": {reason}, "art": {""}, "datei": {""}, "erledigt": {"ja"}}
	if rec := anna.do(http.MethodPost, at+"/erledigt", form, "Sec-Fetch-Site", "same-site"); rec.Code != http.StatusSeeOther {
		t.Errorf("a sibling host's POST without the session: %d, want the redirect to the login that carries nothing", rec.Code)
	}
	rec := anna.post(at+"/erledigt", form)
	body := rec.Body.String()
	if rec.Code != http.StatusUnauthorized || !strings.Contains(body, `name="begruendung" value="`+html.EscapeString(reason)+`"`) ||
		!strings.Contains(body, "auch die Markierung") {
		t.Fatalf("the late mark's answer: %d\n%.3000s", rec.Code, body)
	}
	rec = anna.post(at, url.Values{"csrf": {csrfFrom(t, body)}, "benutzer": {"anna"}, "passwort": {"anna-passwort"},
		"verfasser": {"anna"}, "ergebnis": {"ablehnen"}, "begruendung": {reason}})
	body = rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, html.EscapeString(reason)+"</textarea>") || !strings.Contains(body, `value="ablehnen" checked`) {
		t.Fatalf("after the login: %d, not the case with the reason\n%.3000s", rec.Code, body)
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision != nil || now.Processed {
		t.Fatalf("the late mark or the login did something: decision %+v, marked %v", now.Decision, now.Processed)
	}
}

// TestSiblingSiteCannotPlantAStaleDraft: a form of the case's page sent with
// another token than the session's (the clerk signed in again in another
// window) comes back with what was typed in it. The session cookie is
// SameSite=Lax, so a page on a sibling host of the same site (another
// service under the same domain) could post a reason and "Ablehnen" with any
// token to the case's actions in the clerk's browser, and her case's form
// showed them, with "bitte prüfen Sie sie und speichern Sie erneut". What was
// typed comes back only with the browser's word that the form is the
// mailbox's own (Sec-Fetch-Site: same-origin), as for the login's drafts;
// nothing is decided either way.
func TestSiblingSiteCannotPlantAStaleDraft(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	at := "/postfach/s/" + sub.ID
	_, nonce := replyFormOf(t, anna.get(at).Body.String())
	const planted = "Ihr Antrag ist unvollständig. Bitte überweisen Sie 50 EUR an DE00 ATTACKER"
	fields := [][2]string{{"csrf", "falsch"}, {"ergebnis", "ablehnen"}, {"begruendung", planted}, {"antwort-id", nonce}, {"art", "Bescheid"}}
	for _, site := range []string{"same-site", ""} {
		for _, action := range []string{"entscheidung", "erledigt", "antwort"} {
			var req *http.Request
			if action == "antwort" {
				var body bytes.Buffer
				mw := multipart.NewWriter(&body)
				for _, kv := range fields {
					if err := mw.WriteField(kv[0], kv[1]); err != nil {
						t.Fatal(err)
					}
				}
				if err := mw.Close(); err != nil {
					t.Fatal(err)
				}
				req = httptest.NewRequest(http.MethodPost, at+"/antwort", &body)
				req.Header.Set("Content-Type", mw.FormDataContentType())
			} else {
				form := url.Values{"erledigt": {"ja"}}
				for _, kv := range fields {
					form.Set(kv[0], kv[1])
				}
				req = httptest.NewRequest(http.MethodPost, at+"/"+action, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if site != "" {
				req.Header.Set("Sec-Fetch-Site", site)
			}
			rec := anna.send(req)
			body := rec.Body.String()
			if rec.Code != http.StatusForbidden || strings.Contains(body, html.EscapeString(planted)) {
				t.Errorf("%s with Sec-Fetch-Site %q and another token: %d; want 403 without the posted reason in the page", action, site, rec.Code)
			}
			if strings.Contains(body, "Ihre Eingabe steht unten") {
				t.Errorf("%s with Sec-Fetch-Site %q and another token: the page says the input is below, and shows none", action, site)
			}
		}
	}
	if now, _ := e.b.Submission(sub.ID); now.Decision != nil || now.Processed || len(now.Replies) != 0 {
		t.Fatalf("a form with another token did something: %+v", now)
	}
}

// TestMarkWithAReasonFarTooLongSaysWhy: the case's page is one form, so
// "Als erledigt markieren" sends the reason typed for the decision too. A
// reason pasted far beyond what a form may carry (maxFormBytes) made the
// mark's form unreadable, its token included, and the answer was the stale
// form's: 403, "Sie haben sich inzwischen neu angemeldet", which was untrue.
// It is the decision's answer to such a form: nothing saved, the mark not
// set, and the page says the reason is far too long.
func TestMarkWithAReasonFarTooLongSaysWhy(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	at := "/postfach/s/" + sub.ID
	tok := csrfFrom(t, anna.get(at).Body.String())
	huge := strings.Repeat("ä", maxFormBytes/3)
	rec := anna.do(http.MethodPost, at+"/erledigt", url.Values{"csrf": {tok}, "ergebnis": {"ablehnen"}, "begruendung": {huge}, "erledigt": {"ja"}},
		"Sec-Fetch-Site", "same-origin")
	body := rec.Body.String()
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "viel zu lang") || strings.Contains(body, "neu angemeldet") {
		t.Errorf("a mark sent with a reason bigger than a form may be: HTTP %d, want 413 saying the reason is far too long\n%.3000s", rec.Code, body)
	}
	if now, _ := e.b.Submission(sub.ID); now.Processed || now.Decision != nil {
		t.Fatalf("an unreadable form did something: decision %+v, marked %v", now.Decision, now.Processed)
	}
}

// TestFileLeftIsSaidAtTheTopOfARefusal: a file chosen for a reply is not sent
// by "Entscheidung speichern" (the case's page is one form), and the page
// says so at the top and at the file's field (docs/mailbox.md, "One page,
// several actions"). On the pages that refuse the decision — its reason too
// long, the form an earlier session's — the top said only the refusal: the
// sentence was added before the refusal's message replaced the top's.
func TestFileLeftIsSaidAtTheTopOfARefusal(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{})
	sub := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	at := "/postfach/s/" + sub.ID
	tok := csrfFrom(t, anna.get(at).Body.String())
	long := strings.Repeat("Die Unterlagen sind unvollständig. ", 80)
	topOf := func(body string) string {
		return regexp.MustCompile(`(?s)<div class="meldung fehler" role="alert" id="fehler">(.*?)</div>`).FindStringSubmatch(body + `<div class="meldung fehler" role="alert" id="fehler"></div>`)[1]
	}
	for _, c := range []struct {
		name, token string
		status      int
	}{
		{"a reason too long", tok, http.StatusUnprocessableEntity},
		{"an earlier session's form", "falsch", http.StatusForbidden},
	} {
		rec := anna.do(http.MethodPost, at+"/entscheidung", url.Values{"csrf": {c.token}, "ergebnis": {"ablehnen"}, "begruendung": {long},
			"art": {"Bescheid"}, "datei": {"Bescheid.pdf"}}, "Sec-Fetch-Site", "same-origin")
		body := rec.Body.String()
		if rec.Code != c.status || !strings.Contains(body, `id="datei-offen"`) {
			t.Fatalf("%s: HTTP %d, want %d with the note at the file's field\n%.3000s", c.name, rec.Code, c.status, body)
		}
		if top := topOf(body); !strings.Contains(top, "noch nicht gesendet") {
			t.Errorf("%s: the page's top says %q, not that the reply was not sent", c.name, top)
		}
	}
}
