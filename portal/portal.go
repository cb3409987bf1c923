// Package portal is the portal's side of the gateway protocol: build and sign an
// Antragspaket, post it, read the receipt, the status and the event log. The submit
// command, the demo, the benchmark and the end-to-end tests use it, and a portal
// written in Go can too.
//
// The JSON shapes and paths come from package wire, so a portal built on this package
// pulls in no server code: no broker, store, queue or router (a test checks it).
package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/wire"
)

// Client talks to one gateway as one portal. Safe for concurrent use.
type Client struct {
	BaseURL string
	HTTP    *http.Client
	Signer  *signing.Signer // the portal's signing key
	Token   string          // the portal's bearer token for status reads
}

// Result is the gateway's answer to a submission.
type Result struct {
	Status       int
	SubmissionID string
	Location     string
	Duplicate    bool
	Receipt      []byte           // signed Eingangsbestaetigung (201/200)
	Problem      *problem.Problem // the refusal otherwise, extension members in Extra
	RetryAfter   string           // Retry-After of a 503: when to send the same package again
}

// Accepted reports whether the gateway took (or had already taken) the package.
func (r *Result) Accepted() bool { return r.Status == http.StatusCreated || r.Status == http.StatusOK }

func (c *Client) client() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 60 * time.Second}
}

// Sign returns the signed package bytes.
func (c *Client) Sign(p *paket.Paket) ([]byte, error) { return c.Signer.Sign(p.Element()) }

// Submit signs and posts a package.
func (c *Client) Submit(ctx context.Context, p *paket.Paket) (*Result, error) {
	raw, err := c.Sign(p)
	if err != nil {
		return nil, err
	}
	return c.SubmitRaw(ctx, raw)
}

// SubmitRaw posts already signed bytes.
func (c *Client) SubmitRaw(ctx context.Context, raw []byte) (*Result, error) {
	resp, body, err := c.do(ctx, http.MethodPost, wire.SubmissionsPath, raw, maxAnswer)
	if err != nil {
		return nil, err
	}
	body = body[:min(len(body), maxAnswer)] // a refusal's start is its Detail
	return submitResult(resp, body), nil
}

// submitResult reads the gateway's answer to a submission, inline or multipart.
func submitResult(resp *http.Response, body []byte) *Result {
	res := &Result{Status: resp.StatusCode, Location: resp.Header.Get("Location"), RetryAfter: resp.Header.Get("Retry-After"),
		SubmissionID: resp.Header.Get(wire.HeaderSubmissionID), Duplicate: resp.Header.Get(wire.HeaderDuplicate) == "true"}
	if res.Accepted() {
		res.Receipt = body
		return res
	}
	res.Problem = decodeProblem(resp, body)
	return res
}

// maxAnswer bounds what is read of an answer but a reply's bytes: a status, a
// receipt, a problem document is far smaller.
const maxAnswer = 16 << 20

// maxReplyBytes is the largest reply an office can store (broker.MaxReplyBytes;
// this package pulls in no server code): a reply is read whole or not at all.
const maxReplyBytes = 64 << 20

// do sends one request to the gateway and reads at most max+1 bytes of the
// answer: one more than max tells the caller that it was cut. A body is sent as
// the signed XML of intake; reads carry the portal's token.
func (c *Client) do(ctx context.Context, method, path string, body []byte, max int64) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/xml")
	} else {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := httpbody.ReadAll(io.LimitReader(resp.Body, max+1), resp.ContentLength)
	if err != nil {
		return nil, nil, err
	}
	return resp, b, nil
}

// maxForeignDetail bounds the Detail taken from an answer that is no problem
// document (a proxy's HTML error page, up to 16 MiB was read): it is shown to
// people, on a terminal by amtsbote submit.
const maxForeignDetail = 500

// foreignDetail is the start of such an answer, as one line of valid UTF-8,
// saying how long it was when it is cut.
func foreignDetail(body []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(body[:min(len(body), 4*maxForeignDetail)]), "\uFFFD")), " ")
	if r := []rune(s); len(r) > maxForeignDetail || len(body) > 4*maxForeignDetail {
		s = string(r[:min(len(r), maxForeignDetail)]) + fmt.Sprintf(" … (%d bytes, no problem document)", len(body))
	}
	return s
}

// decodeProblem reads a refusal. The extension members (field, limit, max,
// candidates, …; docs/problems.md) land in Extra: a portal needs them to act, e.g.
// to let the citizen choose among an ambiguous place's candidates.
func decodeProblem(resp *http.Response, body []byte) *problem.Problem {
	p := &problem.Problem{Status: resp.StatusCode}
	if err := json.Unmarshal(body, p); err != nil || p.Type == "" {
		p.Type = "about:blank"
		p.Title = http.StatusText(resp.StatusCode)
		p.Detail = foreignDetail(body)
		return p
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(body, &members) != nil {
		return p
	}
	for k, raw := range members {
		switch k {
		case "type", "title", "status", "detail", "instance":
			continue
		}
		var v any
		if json.Unmarshal(raw, &v) == nil {
			if p.Extra == nil {
				p.Extra = map[string]any{}
			}
			p.Extra[k] = v
		}
	}
	return p
}

// Place is one candidate of an ambiguous-place refusal, as GET /v1/places shows it.
type Place = wire.Place

// Candidates returns the places an ambiguous-place refusal offers (the
// "candidates" member), each with its ARS to send again; nil for other problems.
func Candidates(p *problem.Problem) []Place {
	if p == nil || p.Extra["candidates"] == nil {
		return nil
	}
	raw, err := json.Marshal(p.Extra["candidates"])
	if err != nil {
		return nil
	}
	var out []Place
	if json.Unmarshal(raw, &out) != nil {
		return nil
	}
	return out
}

// Status reads a submission's state and event log.
func (c *Client) Status(ctx context.Context, id string) (*wire.StatusView, error) {
	var v wire.StatusView
	if err := c.getJSON(ctx, wire.SubmissionPath(id), &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Receipt fetches a receipt (wire.ReceiptEingang or wire.ReceiptZustellung).
func (c *Client) Receipt(ctx context.Context, id, kind string) ([]byte, error) {
	return c.get(ctx, wire.ReceiptPath(id, kind), maxAnswer)
}

// Reply fetches the bytes of a reply of the office (a Bescheid, a Rückfrage) that
// the status lists (StatusView.Replies) — also one of an office in another state,
// which came back through the Portalverbund.
func (c *Client) Reply(ctx context.Context, id, replyID string) ([]byte, error) {
	return c.get(ctx, wire.ReplyPath(id, replyID), maxReplyBytes)
}

func (c *Client) get(ctx context.Context, path string, max int64) ([]byte, error) {
	resp, body, err := c.do(ctx, http.MethodGet, path, nil, max)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &ReadError{Path: path, Problem: decodeProblem(resp, body[:min(len(body), maxAnswer)])}
	}
	if int64(len(body)) > max {
		// Its start is no receipt and no reply: a Bescheid cut off at the bound
		// was handed over as if whole.
		return nil, fmt.Errorf("GET %s: the answer is longer than %d bytes", path, max)
	}
	return body, nil
}

// ReadError is the gateway's refusal of a read (status, receipt): errors.As gives
// the problem document, e.g. to tell a wrong token (401) from a receipt that does
// not exist yet (404).
type ReadError struct {
	Path    string
	Problem *problem.Problem
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("GET %s: %d %s: %s", e.Path, e.Problem.Status, e.Problem.Type, e.Problem.Detail)
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	b, err := c.get(ctx, path, maxAnswer)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
