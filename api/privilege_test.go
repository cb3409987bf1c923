package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/internal/clientgone"
	"github.com/amtsbote/amtsbote/internal/gatewaytest"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/prometheus/client_golang/prometheus"
)

// TestForwardedPackageIsNotTheLocalPortals: a package another state's gateway
// forwarded here keeps its portal's id as sender, and portal ids are one
// namespace across states (every development PKI's portal is "amt24"). The
// portal of this gateway with that id did not send it: its status, events and
// receipts answer 404 as for any other portal's, while its own package still
// reads, and a post of its NachrichtID is no repeat. Until this test the local
// portal read the other state's application.
func TestForwardedPackageIsNotTheLocalPortals(t *testing.T) {
	e := startPortal(t)
	g, client, pki := e.g, e.client, e.pki
	own, err := client.SubmitRaw(context.Background(), signedExample(t, client, e.leika))
	if err != nil || own.Status != 201 {
		t.Fatalf("the portal's own package: %v %+v", err, own)
	}
	now := time.Now().UTC()
	fwID := paket.NewMessageID()
	fwRaw := signedExampleOf(t, client, e.leika, fwID)
	fw, err := g.Pipeline.SubmitForwarded(context.Background(), intake.Forwarded{
		Package: fwRaw, Sender: pki.Portal.Name, SenderCert: pki.Portal.Cert, MessageID: fwID, LeikaKey: e.leika,
		Origin: submission.Origin{Gateway: "amtsbote-by", SubmissionID: "by-1", ForwardedAt: now,
			Chain: []submission.Hop{{Gateway: "amtsbote-by", SubmissionID: "by-1", At: now}}},
		Self: g.Config.GatewayID, MaxHops: 4,
	})
	if err != nil || !fw.Created || fw.Submission.Sender != pki.Portal.Name {
		t.Fatalf("the forwarded package: %v %+v", err, fw)
	}
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, g.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+portalToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		var p problem.Problem
		if res.StatusCode != http.StatusOK {
			if err := json.Unmarshal(body, &p); err != nil || res.Header.Get("Content-Type") != problem.ContentType {
				t.Fatalf("GET %s: %d %q: %s", path, res.StatusCode, res.Header.Get("Content-Type"), body)
			}
		}
		return res.StatusCode, p.Type
	}
	for _, path := range []string{"/v1/submissions/" + own.SubmissionID, "/v1/submissions/" + own.SubmissionID + "/receipts/eingang"} {
		if st, typ := get(path); st != 200 {
			t.Errorf("GET %s (the portal's own): %d %s", path, st, typ)
		}
	}
	for _, path := range []string{
		"/v1/submissions/" + fw.Submission.ID,
		"/v1/submissions/" + fw.Submission.ID + "/receipts/eingang",
		"/v1/submissions/" + fw.Submission.ID + "/replies/r1",
	} {
		if st, typ := get(path); st != http.StatusNotFound || typ != problem.TypeNotFound {
			t.Errorf("GET %s (forwarded from another state): %d %s, want 404 %s", path, st, typ, problem.TypeNotFound)
		}
	}
	// Nor is the forwarded package a repeat of the local portal's: posting one with
	// the same Absender and NachrichtID got 200 and the other state's receipt.
	res, err := client.SubmitRaw(context.Background(), fwRaw)
	if err != nil || res.Status != http.StatusConflict || res.Problem == nil || res.Problem.Type != problem.TypeConflict {
		t.Errorf("the local portal posting the forwarded package's NachrichtID: %v, HTTP %d %+v, want 409 %s", err, res.Status, res.Problem, problem.TypeConflict)
	}
}

// TestWrongTokenIsNotAMissingOne: a request with a bearer token that is not one
// of the route's clients is told so (RFC 6750's invalid_token); it was told a
// token is required, which sent a client with a mistyped or rotated token looking
// for a missing header. Without a token the answer still asks for one.
func TestWrongTokenIsNotAMissingOne(t *testing.T) {
	g, _ := startGateway(t)
	for _, tc := range []struct{ path, token, wantAuth, wantDetail string }{
		{"/v1/submissions/x", "", `Bearer realm="amtsbote"`, "a bearer token is required: a portal's token"},
		{"/v1/submissions/x", "not-a-token", `Bearer realm="amtsbote", error="invalid_token"`, "the bearer token is not a portal's token here"},
		{"/v1/office/submissions", portalToken, `Bearer realm="amtsbote", error="invalid_token"`, "the bearer token is not an office's token here"},
		{"/v1/admin/submissions", officeToken, `Bearer realm="amtsbote-admin", error="invalid_token"`, "the bearer token is not the admin token here"},
	} {
		req, _ := http.NewRequest(http.MethodGet, g.URL()+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p problem.Problem
		err = json.NewDecoder(res.Body).Decode(&p)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusUnauthorized || p.Type != problem.TypeUnauthenticated ||
			res.Header.Get("WWW-Authenticate") != tc.wantAuth || p.Detail != tc.wantDetail {
			t.Errorf("GET %s with %q: %d %q %q %v, want 401 %q %q", tc.path, tc.token, res.StatusCode, res.Header.Get("WWW-Authenticate"), p.Detail, err, tc.wantAuth, tc.wantDetail)
		}
	}
}

// TestTokenWithSurroundingSpaceLogsIn: a token written in the configuration with
// whitespace around it (a YAML block scalar "token: |" ends it with a newline, a
// copy from a file or a mail adds one) could never log in: the gateway trims what
// the client sends after "Bearer" (and HTTP strips a header value's ends anyway),
// but kept the configured token as written. Both sides are trimmed now.
func TestTokenWithSurroundingSpaceLogsIn(t *testing.T) {
	g, _ := gatewaytest.Start(t, func(c *config.Config) {
		c.AdminToken = " " + adminToken + "\n"
		c.Portals = map[string]config.PortalClient{"amt24": {Token: portalToken + "\n"}}
		c.Offices = map[string]config.OfficeClient{gateway.DemoOfficeID: {Token: "\t" + officeToken + "\r\n"}}
	})
	for path, tok := range map[string]string{
		"/v1/office/submissions":      officeToken,
		"/v1/admin/submissions":       adminToken,
		"/v1/submissions/no-such-one": portalToken, // 404 after authentication, not 401
	} {
		req, _ := http.NewRequest(http.MethodGet, g.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusUnauthorized {
			t.Errorf("GET %s with the configured token: 401", path)
		}
	}
}

// TestOfficeTokenWithBlanksLogsIn: an office token with blanks inside (a
// passphrase) is one token, as it always was before a rotation setting came:
// the gateway starts with it, the office system sending it whole logs in, and
// a word of it does not. For a few hours the setting was split at blanks: a
// passphrase of short words stopped the start, and one of long words was
// refused whole while each half alone logged in.
func TestOfficeTokenWithBlanksLogsIn(t *testing.T) {
	const short = "correct horse battery staple"                     // words under 16 characters
	const long = "office-a-secret-part-one office-a-secret-part-two" // words of 16 or more
	g, _ := gatewaytest.Start(t, func(c *config.Config) {
		c.Offices = map[string]config.OfficeClient{gateway.DemoOfficeID: {Token: long}, "office-b": {Token: short}}
	})
	get := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, g.URL()+"/v1/office/submissions", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, tok := range []string{long, short} {
		if st := get(tok); st != http.StatusOK {
			t.Errorf("the whole token %q: %d, want 200", tok, st)
		}
	}
	for _, tok := range []string{"office-a-secret-part-one", "office-a-secret-part-two", "correct", "staple"} {
		if st := get(tok); st != http.StatusUnauthorized {
			t.Errorf("a word of a token, %q: %d, want 401", tok, st)
		}
	}
}

// TestAdminListSaysWhetherItIsComplete: the admin list of submissions stops at
// its bound, and said nothing about it: an operator could not tell all of them
// from the first of more. complete says so.
func TestAdminListSaysWhetherItIsComplete(t *testing.T) {
	e := startPortal(t)
	for range 3 {
		if res, err := e.client.SubmitRaw(context.Background(), signedExample(t, e.client, e.leika)); err != nil || res.Status != 201 {
			t.Fatalf("submit: %v %+v", err, res)
		}
	}
	list := func() (int, bool) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.g.URL()+"/v1/admin/submissions", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var v struct {
			Submissions []json.RawMessage `json:"submissions"`
			Complete    *bool             `json:"complete"`
		}
		if err := json.NewDecoder(res.Body).Decode(&v); err != nil || v.Complete == nil {
			t.Fatalf("admin list: %v, complete %v", err, v.Complete)
		}
		return len(v.Submissions), *v.Complete
	}
	api.SetAdminListMax(t, 2)
	if n, complete := list(); n != 2 || complete {
		t.Fatalf("bound 2 of 3: %d listed, complete %v", n, complete)
	}
	api.SetAdminListMax(t, 3)
	if n, complete := list(); n != 3 || !complete {
		t.Fatalf("bound 3 of 3: %d listed, complete %v", n, complete)
	}
}

// TestAdminListEndsWithTheRequest: a state the store does not index is listed
// by reading every record — 8 s on 200,000 cases from a cold disk, minutes on
// the millions a state gateway gathers — and the walk went on to its end after
// the client had given up, so retries stacked whole scans beside intake. A
// request whose client is gone reads no further and is answered as such (499),
// not with a list nobody reads.
func TestAdminListEndsWithTheRequest(t *testing.T) {
	e := startPortal(t)
	for range 3 {
		if res, err := e.client.SubmitRaw(context.Background(), signedExample(t, e.client, e.leika)); err != nil || res.Status != 201 {
			t.Fatalf("submit: %v %+v", err, res)
		}
	}
	s := api.New(api.Options{Broker: e.g.Broker, Clients: api.NewClients(adminToken, nil, nil), Registry: prometheus.NewRegistry()})
	list := func(ctx context.Context) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/admin/submissions", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	if rec := list(context.Background()); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"complete": true`) {
		t.Fatalf("the list: %d %s", rec.Code, rec.Body)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if rec := list(gone); rec.Code != clientgone.Status || strings.Contains(rec.Body.String(), "submissions") {
		t.Fatalf("the list for a client that is gone: %d %s, want %d and no list", rec.Code, rec.Body, clientgone.Status)
	}
}
