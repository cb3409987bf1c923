// Package mailboxclient uses the web mailbox the way a person with a browser does —
// log in, look at the inbox, open a case, decide, answer — over plain HTTP with a cookie
// jar. The demo's office clerk and the gateway's end-to-end tests use it; it reads
// only what the pages show, so it breaks when a person could not do the same.
package mailboxclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"mime/multipart"
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
	if form == nil {
		return c.send(ctx, method, path, "", nil)
	}
	return c.send(ctx, method, path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
}

// send sends a request with a body of contentType (none: "") and reads the page
// it answers, keeping the session's token the page holds.
func (c *Client) send(ctx context.Context, method, path, contentType string, body io.Reader) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return "", err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
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

var replyNonceRe = regexp.MustCompile(`name="antwort-id" value="([^"]+)"`)

// Reply sends the applicant a file from the case's page, as a person does with
// the form "Antwort senden": kind is what the form offers ("Bescheid",
// "Rueckfrage", "Nachricht"), name the file's name as a browser sends it. The
// case's page after the reply is returned.
func (c *Client) Reply(ctx context.Context, id, kind, name string, content []byte) (string, error) {
	page, err := c.Open(ctx, id) // the form's token and its own id, as a person has the page open
	if err != nil {
		return page, err
	}
	m := replyNonceRe.FindStringSubmatch(page)
	if m == nil {
		return page, fmt.Errorf("the page of case %s offers no reply form", id)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range [][2]string{{"csrf", c.csrf}, {"antwort-id", html.UnescapeString(m[1])}, {"art", kind}} {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return "", err
		}
	}
	fw, err := mw.CreateFormFile("datei", name)
	if err != nil {
		return "", err
	}
	if _, err := fw.Write(content); err != nil {
		return "", err
	}
	if err := mw.Close(); err != nil {
		return "", err
	}
	return c.send(ctx, http.MethodPost, "s/"+url.PathEscape(id)+"/antwort", mw.FormDataContentType(), &buf)
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
