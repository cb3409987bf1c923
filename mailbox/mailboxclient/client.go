// Package mailboxclient uses the web mailbox the way a person with a browser does —
// log in, look at the inbox, open a case, decide — over plain HTTP with a cookie
// jar. The demo's office clerk and the gateway's end-to-end tests use it; it reads
// only what the pages show, so it breaks when a person could not do the same.
package mailboxclient

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

// Client is one logged-in (or not yet) person. Base is the mailbox's URL with its
// trailing slash, e.g. "http://127.0.0.1:8080/postfach/".
type Client struct {
	Base string
	http *http.Client
	csrf string // the session's token, read from the last page
}

// New returns a client with its own cookie jar.
func New(base string) *Client {
	jar, _ := cookiejar.New(nil)
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return &Client{Base: base, http: &http.Client{Jar: jar}}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// ErrStatus is a page that did not answer 200.
var ErrStatus = errors.New("unexpected status")

func (c *Client) do(ctx context.Context, method, path string, form url.Values) (string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", err
	}
	page := string(b)
	if m := csrfRe.FindStringSubmatch(page); m != nil {
		c.csrf = html.UnescapeString(m[1])
	}
	if resp.StatusCode != http.StatusOK {
		return page, fmt.Errorf("%w: %s %s: %d", ErrStatus, method, path, resp.StatusCode)
	}
	return page, nil
}

// Login logs in; the inbox page is returned.
func (c *Client) Login(ctx context.Context, user, password string) (string, error) {
	if _, err := c.do(ctx, http.MethodGet, "login", nil); err != nil {
		return "", err
	}
	page, err := c.do(ctx, http.MethodPost, "login", url.Values{"csrf": {c.csrf}, "benutzer": {user}, "passwort": {password}})
	if err != nil {
		return page, err
	}
	if !strings.Contains(page, "Abmelden") {
		return page, fmt.Errorf("login as %s failed", user)
	}
	return page, nil
}

// Inbox returns the inbox page, optionally searched.
func (c *Client) Inbox(ctx context.Context, query string) (string, error) {
	p := ""
	if query != "" {
		p = "?q=" + url.QueryEscape(query)
	}
	return c.do(ctx, http.MethodGet, p, nil)
}

// Open opens a case's detail page: for the gateway, a person has the package now.
func (c *Client) Open(ctx context.Context, id string) (string, error) {
	return c.do(ctx, http.MethodGet, "s/"+url.PathEscape(id), nil)
}

// TakeOver takes a case on its way to the office's own system (pull API, XTA,
// webhook) into the mailbox: its page only offers that, since the opening is
// the pickup and the system would never list the case again. The case's page
// after the takeover is returned.
func (c *Client) TakeOver(ctx context.Context, id string) (string, error) {
	if _, err := c.Open(ctx, id); err != nil { // the page's token
		return "", err
	}
	return c.do(ctx, http.MethodPost, "s/"+url.PathEscape(id)+"/uebernehmen", url.Values{"csrf": {c.csrf}})
}

// Decide accepts (accept=true) or rejects with a reason; the detail page after the
// decision is returned.
func (c *Client) Decide(ctx context.Context, id string, accept bool, reason string) (string, error) {
	if _, err := c.Open(ctx, id); err != nil { // a fresh token, as a person has the page open
		return "", err
	}
	outcome := "ablehnen"
	if accept {
		outcome = "annehmen"
	}
	return c.do(ctx, http.MethodPost, "s/"+url.PathEscape(id)+"/entscheidung",
		url.Values{"csrf": {c.csrf}, "ergebnis": {outcome}, "begruendung": {reason}})
}
