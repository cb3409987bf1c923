package mailbox

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// signedOut reports whether the client's session is gone: the inbox sends it to
// the login.
func signedOut(c *client) bool {
	c.t.Helper()
	rec := c.get("/postfach/")
	return rec.Code == http.StatusSeeOther && strings.Contains(rec.Header().Get("Location"), "login")
}

// TestLoginFormTokenMustMatchItsCookie: the login form is double-submit (cookie
// and hidden field, loginPage). A login posted with the right password but a
// token that is not the browser's own — another site's form, which cannot read
// the cookie — signs nobody in: else a site could sign a clerk's browser into
// an account of its choosing (login CSRF) and read what she then types.
func TestLoginFormTokenMustMatchItsCookie(t *testing.T) {
	m := memMailbox(t, newMemDesk())
	c := newClient(t, m.Handler())
	if rec := c.get("/postfach/login"); rec.Code != http.StatusOK {
		t.Fatalf("login page: %d", rec.Code)
	}
	for _, tok := range []string{"", newToken()} {
		rec := c.post("/postfach/login", url.Values{"csrf": {tok}, "benutzer": {"anna"}, "passwort": {"anna-passwort"}})
		if rec.Code != http.StatusForbidden {
			t.Errorf("login with token %q beside the cookie's: %d, want 403", tok, rec.Code)
		}
		if !signedOut(c) {
			t.Fatalf("login with token %q beside the cookie's opened a session", tok)
		}
	}
	c.mustLogin("anna", "anna-passwort") // the control: the form's own token works
	if signedOut(c) {
		t.Fatal("the login with the form's own token opened no session")
	}
}

// TestLogoutNeedsTheSessionsToken: a logout is a POST with the session's form
// token, as every other form; one without it (another site's form) is refused
// and the session stays. Only the browser's word that the form is this site's
// own (Sec-Fetch-Site: same-origin, TestLogoutFromAnOlderTabLogsOut) stands in
// for the token; "same-site" (a sibling host, which the SameSite=Lax cookie
// reaches) and "cross-site" do not.
func TestLogoutNeedsTheSessionsToken(t *testing.T) {
	m := memMailbox(t, newMemDesk())
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	tok := csrfFrom(t, c.get("/postfach/").Body.String())
	for _, hdr := range [][]string{nil, {"Sec-Fetch-Site", "same-site"}, {"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "none"}} {
		if rec := c.do(http.MethodPost, "/postfach/abmelden", url.Values{"csrf": {newToken()}}, hdr...); rec.Code != http.StatusForbidden {
			t.Errorf("logout with another token (%v): %d, want 403", hdr, rec.Code)
		}
	}
	if signedOut(c) {
		t.Fatal("a logout without the session's token ended the session")
	}
	if rec := c.post("/postfach/abmelden", url.Values{"csrf": {tok}}); rec.Code != http.StatusSeeOther {
		t.Errorf("logout with the token: %d, want 303", rec.Code)
	}
	if !signedOut(c) {
		t.Fatal("the logout with the session's token left the session")
	}
}

// TestSessionEndsAfterSessionMaxWhileInUse: a session ends sessionMax after the
// login however busy it is (docs/mailbox.md); the idle rule alone kept a session
// alive for ever as long as a page was loaded every half hour.
func TestSessionEndsAfterSessionMaxWhileInUse(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC).UnixNano())
	m := memMailboxAt(t, newMemDesk(), func() time.Time { return time.Unix(0, clock.Load()).UTC() })
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	step := sessionIdle - 5*time.Minute
	var used time.Duration
	for ; used+step < sessionMax; used += step {
		clock.Add(int64(step))
		if signedOut(c) {
			t.Fatalf("the session ended %s after the login, used every %s", used+step, step)
		}
	}
	last := sessionMax + time.Minute - used // less than sessionIdle: the idle rule does not end it
	clock.Add(int64(last))
	if !signedOut(c) {
		t.Fatalf("the session is alive %s after the login (sessionMax %s)", used+last, sessionMax)
	}
}

// TestUserMovedToAnotherOfficeLosesTheSession: a session names the office it was
// opened for. A user the operator moves to another office (and restarts) must
// sign in again, else her open session kept showing the old office's cases.
func TestUserMovedToAnotherOfficeLosesTheSession(t *testing.T) {
	desk := newMemDesk()
	dataDir := t.TempDir()
	hash := fastHash(t, "anna-passwort")
	open := func(office string) *Mailbox {
		m, err := New(Options{Desk: desk, DataDir: dataDir, Users: []User{{Name: "anna", Office: office, PasswordHash: hash}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	first := open("amt-a")
	c := newClient(t, first.Handler())
	c.mustLogin("anna", "anna-passwort")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	same := open("amt-a") // the control: a restart alone keeps the session
	c.h = same.Handler()
	if signedOut(c) {
		t.Fatal("the session did not outlive a restart with the same configuration")
	}
	if err := same.Close(); err != nil {
		t.Fatal(err)
	}
	c.h = open("amt-b").Handler()
	if !signedOut(c) {
		t.Fatal("the session opened for amt-a is still valid after anna moved to amt-b")
	}
}

// TestDecisionFormSaysTheSessionsLastMinute: late in a long day the session
// ends sessionMax after the login, whatever the clerk does. The decision form
// said "endet nach 30 Minuten ohne Seitenaufruf, jetzt also um …" of that
// time too, which read as an end she could put off by working on; it says
// that it ends then, work or not.
func TestDecisionFormSaysTheSessionsLastMinute(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 7, 6, 30, 0, 0, time.UTC).UnixNano())
	e := startBrokerEnv(t, t.TempDir(), Options{Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	sub := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	warning := func() string {
		t.Helper()
		page := anna.get("/postfach/s/" + sub.ID).Body.String()
		i := strings.Index(page, `id="sitzung-hinweis">`)
		if i < 0 {
			t.Fatalf("the case's page has no session note:\n%s", page)
		}
		return page[i : i+strings.Index(page[i:], "</p>")]
	}
	if w := warning(); !strings.Contains(w, "nach 30 Minuten ohne Seitenaufruf, jetzt also um 08:00 Uhr") {
		t.Errorf("in the morning the note says %q", w)
	}
	for range 28 { // a page every 20 minutes, to 09:20 hours after the login
		clock.Add(int64(20 * time.Minute))
		if rec := anna.get("/postfach/"); rec.Code != http.StatusOK {
			t.Fatalf("the inbox during the day: %d", rec.Code)
		}
	}
	clock.Add(int64(20 * time.Minute)) // 09:40 after the login: 20 minutes are left
	if w := warning(); strings.Contains(w, "ohne Seitenaufruf") || !strings.Contains(w, "endet um 17:30 Uhr, 10 Stunden nach der Anmeldung, auch wenn Sie weiterarbeiten") {
		t.Errorf("20 minutes before the session's longest life ends, the note says %q", w)
	}
}
