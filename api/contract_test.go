package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/amtsbote/amtsbote/api/contracttest"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/internal/gatewaytest"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/internal/clientgone"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
	"github.com/amtsbote/amtsbote/wire"
)

const (
	portalToken = "portal-token"
	officeToken = "office-token"
	adminToken  = "admin-token"
)

// TestContractOverGateway runs a whole gateway (its own http.Server, as gateway.go
// configures it) and checks what changed in the contract against api/openapi.yaml:
// the admin view of one submission, the 405 and 431 problems, and that the portal's
// and office's views carry no note. gateway/contract_test.go covers the rest.
func TestContractOverGateway(t *testing.T) {
	ex := submitExample(t)
	g, client, res, id := ex.g, ex.client, ex.res, ex.res.SubmissionID
	if res.Location != wire.SubmissionPath(id) {
		t.Errorf("Location %q", res.Location)
	}
	st, err := client.Status(context.Background(), id)
	if err != nil || st.ID != id || len(st.Events) == 0 {
		t.Fatalf("status through portal: %v %+v", err, st)
	}

	// Loaded, made strict and validated, examples included (contracttest.New).
	router := contracttest.Load(t).Router()
	big := strings.Repeat("a", api.MaxHeaderBytes+1)
	sub, err := g.Broker.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, token string
		header                    string // an X-Pad header of this value
		status                    int
		typ                       string
	}{
		{"admin get", "GET", wire.AdminSubmissionPath(id), adminToken, "", 200, ""},
		{"admin get unknown", "GET", wire.AdminSubmissionPath("nope"), adminToken, "", 404, problem.TypeNotFound},
		{"admin get unauthenticated", "GET", wire.AdminSubmissionPath(id), officeToken, "", 401, problem.TypeUnauthenticated},
		{"admin by NachrichtID", "GET", wire.AdminMessagePath(sub.Sender, sub.MessageID), adminToken, "", 200, ""},
		{"admin by NachrichtID unknown", "GET", wire.AdminMessagePath(sub.Sender, "nope"), adminToken, "", 404, problem.TypeNotFound},
		{"admin by NachrichtID of another sender", "GET", wire.AdminMessagePath("another-portal", sub.MessageID), adminToken, "", 404, problem.TypeNotFound},
		{"admin by NachrichtID unauthenticated", "GET", wire.AdminMessagePath(sub.Sender, sub.MessageID), portalToken, "", 401, problem.TypeUnauthenticated},
		{"admin list handed_over", "GET", "/v1/admin/submissions?state=handed_over", adminToken, "", 200, ""},
		{"admin backup", "GET", "/v1/admin/backup", adminToken, "", 200, ""},
		{"admin backup unauthenticated", "GET", "/v1/admin/backup", portalToken, "", 401, problem.TypeUnauthenticated},
		{"status", "GET", wire.SubmissionPath(id), portalToken, "", 200, ""},
		{"office get", "GET", wire.OfficeSubmissionPath(id), officeToken, "", 200, ""},
		{"office list", "GET", wire.OfficeListPath("", 10, ""), officeToken, "", 200, ""},
		{"headers too large", "GET", wire.SubmissionPath(id), portalToken, big, 431, problem.TypeHeadersTooLarge},
		{"headers too large at intake", "POST", wire.SubmissionsPath, "", big, 431, problem.TypeHeadersTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, g.URL()+tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.header != "" {
				req.Header.Set("X-Pad", tc.header)
			}
			_, _, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("not in the contract: %v", err)
			}
			resp, body := answerAs(t, req, tc.status, tc.typ)
			if !strings.HasPrefix(tc.path, "/v1/admin/") && bytes.Contains(body, []byte(`"note"`)) {
				t.Errorf("a note outside the admin API: %s", body)
			}
			if err := conforms(req, resp, body); err != nil {
				t.Fatalf("response breaks the contract: %v\n%s", err, body)
			}
		})
	}

	// 405 is not an operation of the contract (methods not listed are not allowed);
	// its body is a Problem and it names the allowed methods.
	req, _ := http.NewRequest(http.MethodDelete, g.URL()+wire.SubmissionPath(id), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var pd map[string]any
	_ = json.Unmarshal(body, &pd)
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" || pd["type"] != problem.TypeMethodNotAllowed {
		t.Fatalf("405: %d Allow %q %s", resp.StatusCode, resp.Header.Get("Allow"), body)
	}
	if err := conforms(req, resp, body); err != nil {
		t.Fatalf("405 breaks the contract: %v", err)
	}

	// Every verification slot taken for longer than the wait: 503 unavailable with
	// Retry-After, in the contract, and nothing stored — the same package sent
	// again once a slot is free is created then (201, not a repeat's 200).
	slots := g.Pipeline.Slots
	slots.MaxWait = 20 * time.Millisecond // no request has waited yet: no reader races this
	releaseAll := holdSlots(t, slots)
	raw := signedExample(t, client, ex.leika)
	req, _ = http.NewRequest(http.MethodPost, g.URL()+wire.SubmissionsPath, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+portalToken)
	req.Header.Set("Content-Type", "application/xml")
	_, _, err = router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var busy problem.Problem
	_ = json.Unmarshal(body, &busy)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || busy.Type != problem.TypeUnavailable {
		t.Fatalf("all slots taken: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if err := conforms(req, resp, body); err != nil {
		t.Fatalf("503 breaks the contract: %v\n%s", err, body)
	}
	if slots.Refused() != 1 {
		t.Fatalf("%d refusals counted, want 1", slots.Refused())
	}
	releaseAll()
	again, err := client.SubmitRaw(context.Background(), raw)
	if err != nil || again.Status != 201 {
		t.Fatalf("the same package once a slot is free: %v %+v", err, again)
	}
}

// startGateway starts a whole gateway on loopback with the test's clients.
func startGateway(t *testing.T) (*gateway.Gateway, *signingtest.PKI) {
	return gatewaytest.Start(t, func(c *config.Config) {
		c.AdminToken = adminToken
		c.Portals = map[string]config.PortalClient{"amt24": {Token: portalToken}}
		c.Offices = map[string]config.OfficeClient{gateway.DemoOfficeID: {Token: officeToken}}
	})
}

// TestClientGoneIsNoServerError: a portal that gives up while its package waits
// for a verification slot (its own timeout, a closed connection) is counted as
// 499, not as a 5xx — a 5xx fires the critical AmtsboteServerErrors alert, and
// nothing failed in the gateway. The package is not stored: sent again once a
// slot is free, it is created (201).
func TestClientGoneIsNoServerError(t *testing.T) {
	g, pki := startGateway(t)
	d, _ := routing.Builtin()
	svc, err := d.FindService("Gewerbe anmelden")
	if err != nil {
		t.Fatal(err)
	}
	slots := g.Pipeline.Slots
	releaseAll := holdSlots(t, slots)
	client := &portal.Client{BaseURL: g.URL(), Signer: pki.Portal.Signer, Token: portalToken}
	raw := signedExample(t, client, svc.Key)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for slots.Waiting() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel() // the package waits for a slot: the portal gives up
	}()
	// The server's 499 may race the client's close of the connection and be read
	// (as seen in the XTA face's test under -race); any other answer is wrong.
	switch res, err := client.SubmitRaw(ctx, raw); {
	case err == nil && res.Status != clientgone.Status:
		t.Fatalf("submit with the portal giving up: answered %d, want an error or %d", res.Status, clientgone.Status)
	case err != nil && !errors.Is(err, context.Canceled):
		t.Fatalf("submit with the portal giving up: %v", err)
	}
	var metrics string
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(g.URL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
		if strings.Contains(metrics, `status="499"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(metrics, `amtsbote_http_requests_total{route="/v1/submissions",soap_fault="",status="499"} 1`) {
		t.Errorf("the portal that gave up is not counted as 499:\n%s", grepLines(metrics, "amtsbote_http_requests_total"))
	}
	if strings.Contains(metrics, `status="5`) {
		t.Errorf("a 5xx counted:\n%s", grepLines(metrics, "amtsbote_http_requests_total"))
	}
	releaseAll()
	// Sent again: created (TestReceiptLengthDeclared covers receipts of any size).
	req, _ := http.NewRequest(http.MethodPost, g.URL()+wire.SubmissionsPath, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+portalToken)
	req.Header.Set("Content-Type", "application/xml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	receipt, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.ContentLength != int64(len(receipt)) || len(resp.TransferEncoding) != 0 {
		t.Fatalf("the same package once a slot is free: %d, Content-Length %d for %d bytes, Transfer-Encoding %v",
			resp.StatusCode, resp.ContentLength, len(receipt), resp.TransferEncoding)
	}
}

// holdSlots takes every verification slot of a running gateway; the returned
// func gives them back.
func holdSlots(t *testing.T, slots *intake.Slots) (releaseAll func()) {
	t.Helper()
	var held []func()
	for range slots.Size() {
		release, err := slots.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, release)
	}
	return func() {
		for _, release := range held {
			release()
		}
	}
}

// example is a gateway on loopback with one example package for "Gewerbe
// anmelden" in Dresden submitted through the portal's client.
type example struct {
	g      *gateway.Gateway
	pki    *signingtest.PKI
	client *portal.Client
	leika  string
	res    *portal.Result
}

func submitExample(t *testing.T) example {
	t.Helper()
	e := startPortal(t)
	p := paket.ExampleWith(e.leika, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	res, err := e.client.Submit(context.Background(), p)
	if err != nil || res.Status != 201 {
		t.Fatalf("submit: %v %+v", err, res)
	}
	e.res = res
	return e
}

// startPortal is a gateway on loopback and the portal's client, nothing submitted.
func startPortal(t *testing.T) example {
	t.Helper()
	g, pki := startGateway(t)
	d, _ := routing.Builtin()
	svc, err := d.FindService("Gewerbe anmelden")
	if err != nil {
		t.Fatal(err)
	}
	return example{g: g, pki: pki, client: &portal.Client{BaseURL: g.URL(), Signer: pki.Portal.Signer, Token: portalToken}, leika: svc.Key}
}

// signedExample is a new example package for service leika in Dresden, signed by
// the portal.
func signedExample(t *testing.T, client *portal.Client, leika string) []byte {
	t.Helper()
	return signedExampleOf(t, client, leika, paket.NewMessageID())
}

// signedExampleOf is signedExample with the NachrichtID given.
func signedExampleOf(t *testing.T, client *portal.Client, leika, messageID string) []byte {
	t.Helper()
	p := paket.ExampleWith(leika, messageID, time.Now())
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	raw, err := client.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// conforms checks a response strictly against the contract (contracttest.Check):
// no member, status or content type the contract does not declare, a problem
// type docs/problems.md lists.
func conforms(req *http.Request, resp *http.Response, body []byte) error {
	c, err := contracttest.Default()
	if err != nil {
		return err
	}
	return c.Check(req, resp.StatusCode, resp.Header, body)
}

// TestAdminViewOmitsTimesNeverSet: the admin view's record said
// "nextAttemptAt": "0001-01-01T00:00:00Z" for every case without a scheduled
// retry (omitempty does not omit a time.Time), which an operator's tool
// generated from the contract reads as a real time: year 1. A time the record
// never set is absent, as the contract's "when set" says.
func TestAdminViewOmitsTimesNeverSet(t *testing.T) {
	ex := submitExample(t) // held after its one attempt: the demo office has no mailbox user, no retry is scheduled
	var body []byte
	var v struct {
		Submission map[string]any
	}
	for deadline := time.Now().Add(10 * time.Second); v.Submission["state"] != "held"; {
		if time.Now().After(deadline) {
			t.Fatalf("the example is %v, want held:\n%s", v.Submission["state"], body)
		}
		time.Sleep(5 * time.Millisecond)
		req, _ := http.NewRequest(http.MethodGet, ex.g.URL()+wire.AdminSubmissionPath(ex.res.SubmissionID), nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("admin view: %d %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
	}
	if at, ok := v.Submission["nextAttemptAt"]; ok {
		t.Errorf("nextAttemptAt %v on a case without a scheduled attempt", at)
	}
	if bytes.Contains(body, []byte("0001-01-01")) {
		t.Errorf("a zero time in the admin view:\n%s", body)
	}
}

// TestUnreadableQueryOnEveryOperation: a query string that cannot be parsed is
// 400 malformed-request on every route (the contract's description), so every
// operation must declare the 400 for a client generated from it; GET
// /v1/admin/messages did not.
func TestUnreadableQueryOnEveryOperation(t *testing.T) {
	g, _ := startGateway(t)
	c := contracttest.Load(t)
	fill := strings.NewReplacer("{id}", "01a24e60-47cb-75a3-9f9d-9e15f59841f4", "{rid}", "01a24e60-47cb-75a3-9f9d-9e15f59841f5",
		"{kind}", wire.ReceiptEingang, "{aid}", "anlage-1", "{name}", "antragspaket-v1.xsd", "{office}", "dd", "{channel}", "api", "{leikaKey}", "99050012104000")
	n := 0
	for path, item := range c.Doc.Paths.Map() {
		for method := range item.Operations() {
			n++
			req, _ := http.NewRequest(method, g.URL()+fill.Replace(path)+"?a=%zz", nil)
			req.Header.Set("Authorization", "Bearer "+adminToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || !bytes.Contains(body, []byte(problem.TypeMalformed)) {
				t.Errorf("%s %s?a=%%zz: %d %s, want 400 malformed-request", method, path, resp.StatusCode, body)
				continue
			}
			if err := c.Check(req, resp.StatusCode, resp.Header, body); err != nil {
				t.Errorf("%v", err)
			}
		}
	}
	if n < 30 {
		t.Fatalf("only %d operations probed", n)
	}
}

// TestMethodsOfEveryPathAsTheContractSays: on every path of the contract a
// method it does not list is 405 with Allow naming the listed ones (and HEAD
// beside GET, but on the backup), and a HEAD is answered as the GET's
// operation declares, without content.
func TestMethodsOfEveryPathAsTheContractSays(t *testing.T) {
	g, _ := startGateway(t)
	c := contracttest.Load(t)
	fill := strings.NewReplacer("{id}", "01a24e60-47cb-75a3-9f9d-9e15f59841f4", "{rid}", "01a24e60-47cb-75a3-9f9d-9e15f59841f5",
		"{kind}", wire.ReceiptEingang, "{aid}", "anlage-1", "{name}", "antragspaket-v1.xsd", "{office}", "dd", "{channel}", "api", "{leikaKey}", "99050012104000")
	do := func(method, path string) (*http.Request, *http.Response, []byte) {
		req, _ := http.NewRequest(method, g.URL()+fill.Replace(path), nil)
		token := portalToken // the token is checked before the method on an office or admin path
		switch {
		case strings.HasPrefix(path, "/v1/office/"):
			token = officeToken
		case strings.HasPrefix(path, "/v1/admin/"):
			token = adminToken
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return req, resp, body
	}
	for path, item := range c.Doc.Paths.Map() {
		listed := slices.Sorted(maps.Keys(item.Operations()))
		allow := slices.Clone(listed)
		if item.Get != nil && path != "/v1/admin/backup" {
			allow = append(allow, http.MethodHead)
		}
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			if item.GetOperation(m) != nil {
				continue
			}
			req, resp, body := do(m, path)
			got := strings.Split(resp.Header.Get("Allow"), ", ")
			slices.Sort(got)
			want := slices.Sorted(slices.Values(allow))
			if resp.StatusCode != 405 || !slices.Equal(got, want) {
				t.Errorf("%s %s: %d Allow %q, want 405 with %v", m, path, resp.StatusCode, resp.Header.Get("Allow"), want)
			}
			if err := c.Check(req, resp.StatusCode, resp.Header, body); err != nil {
				t.Errorf("%v", err)
			}
		}
		if item.Get != nil {
			req, resp, body := do(http.MethodHead, path)
			if err := c.Check(req, resp.StatusCode, resp.Header, body); err != nil {
				t.Errorf("HEAD: %v", err)
			}
		}
	}
}

// TestAmbiguousPlaceInTheContract: the candidates of an ambiguous-place refusal
// are places as GET /v1/places lists them (ags, level, land, ...), and the
// contract declared only ars and name: a client generated from it refused the
// very answer that tells the citizen to choose.
func TestAmbiguousPlaceInTheContract(t *testing.T) {
	e := startPortal(t)
	p := paket.ExampleWith(e.leika, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{Name: "Neustadt"}
	raw, err := e.client.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, e.g.URL()+wire.SubmissionsPath, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/xml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 422 || !bytes.Contains(body, []byte(problem.TypeAmbiguousPlace)) || !bytes.Contains(body, []byte(`"candidates"`)) {
		t.Fatalf("Neustadt: %d %s, want 422 ambiguous-place with candidates", resp.StatusCode, body)
	}
	if err := conforms(req, resp, body); err != nil {
		t.Fatalf("the refusal breaks the contract: %v\n%s", err, body)
	}
}

// answerAs sends req and fails the test unless the answer has status and, if
// typ is not "", is a problem of that type; it returns the answer and its body.
func answerAs(t *testing.T, req *http.Request, status int, typ string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if typ != "" {
		var p problem.Problem
		if err := json.Unmarshal(body, &p); err != nil || p.Type != typ {
			t.Fatalf("problem %v %s, want %s", err, body, typ)
		}
	}
	return resp, body
}
