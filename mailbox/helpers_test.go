package mailbox

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/amtsbote/amtsbote/broker/desktest"
)

// memDesk is the in-memory office desk the page tests run on: the reference
// desk of broker/desktest, which its conformance suite holds to the broker's
// rules (a copy of its own here kept rules the real desk did not check, and
// broke some it did). The browser and notice tests use the real broker.
type memDesk = desktest.MemDesk

func newMemDesk() *memDesk { return desktest.NewMemDesk() }

// annasMailbox is a mailbox on o (its desk, hooks, limits) with one user, anna
// of office amt-a (password "anna-passwort"), in a data folder of the test's
// unless o names one; closed when the test ends.
func annasMailbox(t testing.TB, o Options) *Mailbox {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	o.Users = []User{{Name: "anna", Office: "amt-a", PasswordHash: fastHash(t, "anna-passwort")}}
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// fastHash is a bcrypt hash at the minimum cost, so tests do not spend seconds on
// logins; New accepts any bcrypt hash.
func fastHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// client is a tiny cookie-keeping browser that talks to a handler in process.
type client struct {
	t      testing.TB
	h      http.Handler
	remote string
	header http.Header // sent with every request (a proxy's X-Forwarded-For)

	mu      sync.Mutex
	cookies map[string]string
}

func newClient(t testing.TB, h http.Handler) *client {
	return &client{t: t, h: h, remote: "192.0.2.10:4711", cookies: map[string]string{}}
}

func (c *client) do(method, path string, form url.Values, header ...string) *httptest.ResponseRecorder {
	c.t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	return c.send(req, header...)
}

// send sends req with the client's address, headers and cookies, then header
// (name, value, …), and keeps the cookies of the answer.
func (c *client) send(req *http.Request, header ...string) *httptest.ResponseRecorder {
	c.t.Helper()
	req.RemoteAddr = c.remote
	for k, v := range c.header {
		req.Header[k] = v
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c.mu.Lock()
	for k, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	c.mu.Unlock()
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	c.mu.Lock()
	for _, ck := range rec.Result().Cookies() {
		if ck.MaxAge < 0 || ck.Value == "" {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	c.mu.Unlock()
	return rec
}

func (c *client) get(path string) *httptest.ResponseRecorder { return c.do(http.MethodGet, path, nil) }

func (c *client) post(path string, form url.Values) *httptest.ResponseRecorder {
	return c.do(http.MethodPost, path, form)
}

var reCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfFrom returns the CSRF token of the first form on a page.
func csrfFrom(t testing.TB, body string) string {
	t.Helper()
	m := reCSRF.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in page:\n%s", body)
	}
	return m[1]
}

// login logs in and returns the answer to the login POST.
func (c *client) login(user, pw string) *httptest.ResponseRecorder {
	c.t.Helper()
	page := c.get("/postfach/login")
	if page.Code != http.StatusOK {
		c.t.Fatalf("login page: %d", page.Code)
	}
	return c.post("/postfach/login", url.Values{"csrf": {csrfFrom(c.t, page.Body.String())}, "benutzer": {user}, "passwort": {pw}})
}

func (c *client) mustLogin(user, pw string) {
	c.t.Helper()
	if rec := c.login(user, pw); rec.Code != http.StatusSeeOther {
		c.t.Fatalf("login as %s: %d\n%s", user, rec.Code, rec.Body)
	}
}
