package contracttest

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/wire"
)

// The strict check's own tests plant one defect each in an answer, in the
// contract or in docs/problems.md and require Check (or New) to name it, beside
// the same answer without the defect, which must pass: a checker that passes
// everything, or refuses everything, fails here.

const sid = "01a24e60-47cb-75a3-9f9d-9e15f59841f4"

func problemsMD(t *testing.T) []byte {
	t.Helper()
	md, err := os.ReadFile(ProblemsDoc())
	if err != nil {
		t.Fatal(err)
	}
	return md
}

func contract(t *testing.T) *Contract {
	t.Helper()
	c, err := New(api.OpenAPI, problemsMD(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// status is a portal's view as package wire writes it, with one office link
// beyond the named ones (links is a map: any name is declared).
func status(t *testing.T) map[string]any {
	t.Helper()
	at := time.Date(2026, 12, 7, 2, 41, 0, 0, time.UTC)
	v := wire.StatusView{ID: sid, MessageID: "m-1", CaseID: sid, State: wire.StateQueued, LeikaKey: "99050012104000",
		Service: "Gewerbe anmelden", Place: "01067", Office: wire.OfficeRef{ID: "dd", Name: "Dresden"}, ReceivedAt: at,
		Events: []wire.Event{{Seq: 1, SubmissionID: sid, At: at, Type: "received"}},
		Links:  map[string]string{wire.LinkReceipt: wire.ReceiptPath(sid, wire.ReceiptEingang), "attachment:anlage-1": "/x"}}
	return roundTrip(t, v)
}

func officeView(t *testing.T) map[string]any {
	t.Helper()
	at := time.Date(2026, 12, 7, 2, 41, 0, 0, time.UTC)
	v := wire.OfficeSubmission{StatusView: wire.StatusView{ID: sid, MessageID: "m-1", CaseID: sid, State: wire.StateDelivered, LeikaKey: "99050012104000",
		Service: "Gewerbe anmelden", Place: "01067", Office: wire.OfficeRef{ID: "dd", Name: "Dresden"}, ReceivedAt: at, DeliveredAt: &at,
		Events: []wire.Event{}, Links: map[string]string{}},
		SubmissionID: sid, DestinationID: wire.OfficeDestinationID("dd"), DeliveryID: "d-1", Sender: "amt24",
		PackageSHA256: strings.Repeat("a", 64), PackageSize: 10, Attachments: []wire.Attachment{},
		TakenOver: &wire.TakenOver{At: at, From: "api"}}
	return roundTrip(t, v)
}

func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func check(t *testing.T, c *Contract, method, path string, code int, ctype string, extra http.Header, body any) error {
	t.Helper()
	req, _ := http.NewRequest(method, "http://127.0.0.1:1"+path, nil)
	h := http.Header{}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	for k, v := range extra {
		h[k] = v
	}
	var b []byte
	switch x := body.(type) {
	case nil:
	case []byte:
		b = x
	default:
		var err error
		if b, err = json.Marshal(x); err != nil {
			t.Fatal(err)
		}
	}
	return c.Check(req, code, h, b)
}

func mustPass(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: refused, want it to pass: %v", what, err)
	}
}

func mustFail(t *testing.T, what string, err error, says string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: passed, want the planted defect found", what)
	} else if !strings.Contains(err.Error(), says) {
		t.Errorf("%s: %v, want it to name %q", what, err, says)
	}
}

// TestStrictCheckFindsPlantedMembers: a member the contract does not declare is
// found at the top of a view, inside a nested object, in a view composed with
// allOf (OfficeSubmission) and in an array's items; a map's names (links) and a
// declared optional member are not refused. The portal's view with a planted
// nextAttemptAt passed kin-openapi's own validation, which the contract tests
// used before.
func TestStrictCheckFindsPlantedMembers(t *testing.T) {
	c := contract(t)
	const portalPath = "/v1/submissions/" + sid
	const officePath = "/v1/office/submissions/" + sid
	mustPass(t, "the portal's view", check(t, c, "GET", portalPath, 200, "application/json", nil, status(t)))
	mustPass(t, "the office's view", check(t, c, "GET", officePath, 200, "application/json", nil, officeView(t)))

	top := status(t)
	top["nextAttemptAt"] = "2026-12-07T02:42:00Z"
	mustFail(t, "the portal's view with nextAttemptAt", check(t, c, "GET", portalPath, 200, "application/json", nil, top), `"nextAttemptAt"`)

	nested := status(t)
	nested["office"].(map[string]any)["email"] = "amt@example.org"
	mustFail(t, "an undeclared member of office", check(t, c, "GET", portalPath, 200, "application/json", nil, nested), `"email"`)

	item := status(t)
	item["events"].([]any)[0].(map[string]any)["note"] = "an operator's note"
	mustFail(t, "an event with a note", check(t, c, "GET", portalPath, 200, "application/json", nil, item), `"note"`)

	composed := officeView(t)
	composed["retryDelay"] = 5
	mustFail(t, "the office's view with retryDelay", check(t, c, "GET", officePath, 200, "application/json", nil, composed), `"retryDelay"`)
	deep := officeView(t)
	deep["takenOver"].(map[string]any)["clerk"] = "m.meier"
	mustFail(t, "takenOver naming the clerk", check(t, c, "GET", officePath, 200, "application/json", nil, deep), `"clerk"`)

	list := map[string]any{"submissions": []any{officeView(t)}, "count": 1}
	mustPass(t, "the office's list", check(t, c, "GET", "/v1/office/submissions", 200, "application/json", nil, list))
	list["submissions"].([]any)[0].(map[string]any)["updatedAt"] = "2026-12-07T02:42:00Z"
	mustFail(t, "a list entry with updatedAt", check(t, c, "GET", "/v1/office/submissions", 200, "application/json", nil, list), `"updatedAt"`)
}

// TestStrictCheckFindsPlantedStatusesAndTypes: a status the operation does not
// declare, a content type it does not declare, a body where it declares none,
// and a 405 without Allow are found.
func TestStrictCheckFindsPlantedStatusesAndTypes(t *testing.T) {
	c := contract(t)
	const portalPath = "/v1/submissions/" + sid
	mustFail(t, "a 418", check(t, c, "GET", portalPath, 418, "application/problem+json", nil,
		map[string]any{"type": "https://amtsbote.de/problems/internal", "title": "x", "status": 418}), "declares no 418")
	mustFail(t, "a 200 as text/html", check(t, c, "GET", portalPath, 200, "text/html", nil, []byte("<p>hallo</p>")), `"text/html"`)
	att := "/v1/office/submissions/" + sid + "/attachments/anlage-1"
	mustPass(t, "a 304 without a body", check(t, c, "GET", att, 304, "", nil, nil))
	mustFail(t, "a 304 with a body", check(t, c, "GET", att, 304, "text/plain", nil, []byte("the bytes again")), "declares no body")
	mustPass(t, "405 with Allow", check(t, c, "DELETE", portalPath, 405, "application/problem+json", http.Header{"Allow": {"GET, HEAD"}},
		map[string]any{"type": "https://amtsbote.de/problems/method-not-allowed", "title": "x", "status": 405}))
	mustFail(t, "405 without Allow", check(t, c, "DELETE", portalPath, 405, "application/problem+json", nil,
		map[string]any{"type": "https://amtsbote.de/problems/method-not-allowed", "title": "x", "status": 405}), "not 405 with Allow")
	mustPass(t, "401 before the method on an office path", check(t, c, "DELETE", "/v1/office/submissions/"+sid, 401, "application/problem+json", nil,
		map[string]any{"type": "https://amtsbote.de/problems/unauthenticated", "title": "x", "status": 401}))
	mustFail(t, "405 to HEAD where GET is served", check(t, c, "HEAD", portalPath, 405, "", http.Header{"Allow": {"GET"}}, nil), "declares no 405")
	mustPass(t, "405 to HEAD of the backup", check(t, c, "HEAD", "/v1/admin/backup", 405, "", http.Header{"Allow": {"GET"}}, nil))
	mustFail(t, "HEAD with content", check(t, c, "HEAD", portalPath, 200, "application/json", nil, []byte("{}")), "bytes of content")
	if err := check(t, c, "GET", "/postfach/", 200, "text/html", nil, []byte("x")); err == nil || !strings.Contains(err.Error(), ErrNotInContract.Error()) {
		t.Errorf("a face beside the API: %v, want ErrNotInContract", err)
	}
}

// TestStrictCheckFindsPlantedProblems: a problem type docs/problems.md does not
// list, one with a status its row does not name, a status member that is not
// the answer's, and an extension member the contract does not declare are
// found; a declared extension member passes.
func TestStrictCheckFindsPlantedProblems(t *testing.T) {
	c := contract(t)
	const path = "/v1/submissions/" + sid
	p := func(typ string, st int, extra ...any) map[string]any {
		m := map[string]any{"type": "https://amtsbote.de/problems/" + typ, "title": "x", "status": st}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i].(string)] = extra[i+1]
		}
		return m
	}
	const pj = "application/problem+json"
	mustPass(t, "404 not-found", check(t, c, "GET", path, 404, pj, nil, p("not-found", 404)))
	mustPass(t, "a declared extension", check(t, c, "GET", path, 400, pj, nil, p("malformed-request", 400, "field", "state")))
	mustFail(t, "an unlisted type", check(t, c, "GET", path, 404, pj, nil, p("gone-fishing", 404)), "not listed in docs/problems.md")
	mustFail(t, "not-found as 400", check(t, c, "GET", path, 400, pj, nil, p("not-found", 400)), "docs/problems.md names [404]")
	mustFail(t, "a status member of another status", check(t, c, "GET", path, 404, pj, nil, p("not-found", 410)), "status member")
	mustFail(t, "an undeclared extension", check(t, c, "GET", path, 404, pj, nil, p("not-found", 404, "hint", "try again")), `"hint"`)
	mustFail(t, "a refusal as JSON", check(t, c, "GET", path, 404, "application/json", nil, p("not-found", 404)), `"application/json"`)

	// The same check with a docs/problems.md that lost not-found's row.
	md := string(problemsMD(t))
	i := strings.Index(md, "| `not-found` |")
	if i < 0 {
		t.Fatal("docs/problems.md has no not-found row")
	}
	j := i + strings.Index(md[i:], "\n") + 1
	without, err := New(api.OpenAPI, []byte(md[:i]+md[j:]))
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, "not-found without its row", check(t, without, "GET", path, 404, pj, nil, p("not-found", 404)), "not listed")
}

// TestStrictContractRefusesPlantedExamples: an example that breaks its schema,
// or carries a member its schema does not declare, makes the contract invalid.
func TestStrictContractRefusesPlantedExamples(t *testing.T) {
	md := problemsMD(t)
	spec := string(api.OpenAPI)
	const anchor = "    OfficeRef:\n      type: object\n"
	if !strings.Contains(spec, anchor) {
		t.Fatal("api/openapi.yaml has no OfficeRef to plant an example in")
	}
	for _, tc := range []struct{ name, example, says string }{
		{"a member the schema lacks", `{id: dd, name: Dresden, email: amt@example.org}`, "email"},
		{"a required member missing", `{id: dd}`, "name"},
	} {
		planted := strings.Replace(spec, anchor, anchor+"      example: "+tc.example+"\n", 1)
		_, err := New([]byte(planted), md)
		mustFail(t, tc.name, err, tc.says)
	}
	// A parameter's and a header's example, as the contract has them.
	for _, tc := range []struct{ name, from, to, says string }{
		{"a kind over 100 characters", "          example: Bescheid\n", "          example: " + strings.Repeat("B", 101) + "\n", "replies: invalid operation POST: invalid example"},
		{"a header example of another type", `example: "bytes */961"`, `example: 961`, "attachments/{aid}: invalid operation GET: header schema is invalid: invalid example"},
	} {
		if !strings.Contains(spec, tc.from) {
			t.Fatalf("api/openapi.yaml has no %q to plant %s in", tc.from, tc.name)
		}
		_, err := New([]byte(strings.Replace(spec, tc.from, tc.to, 1)), md)
		mustFail(t, tc.name, err, tc.says)
	}
	planted := strings.Replace(spec, anchor, anchor+"      example: {id: dd, name: Dresden}\n", 1)
	if _, err := New([]byte(planted), md); err != nil {
		t.Errorf("a valid example refused: %v", err)
	}
}
