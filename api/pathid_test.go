package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/wire"
)

// TestAnIdThatCannotBeOneIsNotFoundAndSaysSo: a path whose submission or reply
// id cannot be one the gateway gave (not a UUID: longer than the contract's 64
// characters, or short and of another form) names no resource, as an unknown
// well-formed id does and as a receipt kind outside the list does: 404
// not-found, in the contract, on every route and whoever asks (docs/problems.md,
// "404 for an id of another shape"). Its detail says what an id looks like,
// so an integrator who sends a garbled id (a truncated one, two glued
// together) is told it is no id, not only that nothing is there.
func TestAnIdThatCannotBeOneIsNotFoundAndSaysSo(t *testing.T) {
	ex := submitExample(t)
	g, id := ex.g, ex.res.SubmissionID
	router := contractRouter(t)
	long := strings.Repeat("0", 65)
	unknown := "0190f1c2-7d1e-7cc3-9c52-3a7c1f0e5b21"
	for _, tc := range []struct {
		name, method, path, token string
		malformed                 bool
	}{
		{"status, 65 characters", "GET", wire.SubmissionPath(long), portalToken, true},
		{"status, short", "GET", wire.SubmissionPath("nope"), portalToken, true},
		{"status, a UUID and more", "GET", wire.SubmissionPath(id + id), portalToken, true},
		{"status, unknown", "GET", wire.SubmissionPath(unknown), portalToken, false},
		{"receipt, 65 characters", "GET", wire.SubmissionPath(long) + "/receipts/eingang", portalToken, true},
		{"portal reply, 65 characters", "GET", wire.SubmissionPath(id) + "/replies/" + long, portalToken, true},
		{"portal reply, unknown", "GET", wire.SubmissionPath(id) + "/replies/" + unknown, portalToken, false},
		{"office get, 65 characters", "GET", wire.OfficeSubmissionPath(long), officeToken, true},
		{"office package, 65 characters", "GET", wire.OfficePackagePath(long), officeToken, true},
		{"office attachment, 65 characters", "GET", wire.OfficeAttachmentPath(long, "anlage-1"), officeToken, true},
		{"office receipt, 65 characters", "GET", wire.OfficeReceiptPath(long, wire.ReceiptEingang), officeToken, true},
		{"office reply bytes, 65 characters", "GET", wire.OfficeReplyPath(id, long), officeToken, true},
		{"office accept, 65 characters", "POST", wire.OfficeDecisionPath(long, wire.OutcomeAccepted), officeToken, true},
		{"office reply, 65 characters", "POST", wire.OfficeReplyPostPath(long, wire.ReplyBescheid), officeToken, true},
		{"admin get, 65 characters", "GET", wire.AdminSubmissionPath(long), adminToken, true},
		{"admin get, unknown", "GET", wire.AdminSubmissionPath(unknown), adminToken, false},
		{"admin redeliver, 65 characters", "POST", wire.AdminSubmissionPath(long) + "/redeliver", adminToken, true},
		{"admin erase, 65 characters", "POST", wire.AdminSubmissionPath(long) + "/erase", adminToken, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.method == "POST" {
				body = strings.NewReader("Bescheid")
			}
			req, _ := http.NewRequest(tc.method, g.URL()+tc.path, body)
			req.Header.Set("Authorization", "Bearer "+tc.token)
			if tc.method == "POST" {
				req.Header.Set("Content-Type", "text/plain")
			}
			_, _, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("not in the contract: %v", err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var p problem.Problem
			if err := json.Unmarshal(b, &p); err != nil || resp.StatusCode != http.StatusNotFound || p.Type != problem.TypeNotFound {
				t.Fatalf("%d %s, want 404 %s", resp.StatusCode, b, problem.TypeNotFound)
			}
			if says := strings.Contains(p.Detail, "UUID"); says != tc.malformed {
				t.Errorf("detail %q: says what an id looks like %v, want %v", p.Detail, says, tc.malformed)
			}
			if err := conforms(req, resp, b); err != nil {
				t.Errorf("breaks the contract: %v\n%s", err, b)
			}
		})
	}
	// Before the token: an unauthenticated request learns nothing of the path.
	req, _ := http.NewRequest("GET", g.URL()+wire.OfficeSubmissionPath(long), nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
}
