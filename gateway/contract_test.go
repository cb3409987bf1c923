package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/amtsbote/amtsbote/api/contracttest"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/submission"
)

func contractRouter(t testing.TB) routers.Router {
	t.Helper()
	return contracttest.Load(t).Router()
}

// TestAPIContract sends real requests through a running gateway and validates each
// request and response against api/openapi.yaml, so the published contract cannot
// drift from what the server does.
func TestAPIContract(t *testing.T) {
	f := start(t)
	router := contractRouter(t)
	strict := contracttest.Load(t)
	valid := mustSign(t, f, f.example())
	res, err := f.portal.SubmitRaw(context.Background(), valid)
	if err != nil || res.Status != 201 {
		t.Fatalf("setup submission: %v %+v", err, res)
	}
	id := res.SubmissionID
	aid := f.example().Anlagen[0].ID
	// A case erased before the office decided: its decision is 410.
	undecided, err := f.portal.SubmitRaw(context.Background(), mustSign(t, f, f.example()))
	if err != nil || undecided.Status != 201 {
		t.Fatalf("setup submission: %v %+v", err, undecided)
	}
	id2 := undecided.SubmissionID
	// A package with an attachment by reference, as multipart/related.
	content := bytes.Repeat([]byte("Anlage per Referenz. "), 1000)
	byRef := f.example()
	ra, rp := refAnlage("referenz", content)
	byRef.Anlagen = append(byRef.Anlagen, ra)
	root := mpPart{ctype: "application/xml", body: mustSign(t, f, byRef)}
	mpType, mpBytes := mpBody(t, []mpPart{root, rp})
	other := f.example() // another message: a repeat would get its first receipt
	other.Anlagen = append(other.Anlagen, ra)
	rootOnlyType, rootOnly := mpBody(t, []mpPart{{ctype: "application/xml", body: mustSign(t, f, other)}})
	// A portal package whose NachrichtID names one another state's gateway forwarded
	// here (portal ids are one namespace across states): 409, not the first receipt.
	fw := f.example()
	taken := mustSign(t, f, fw)
	now := time.Now().UTC()
	if _, err := f.g.Pipeline.SubmitForwarded(context.Background(), intake.Forwarded{
		Package: taken, Sender: f.pki.Portal.Name, SenderCert: f.pki.Portal.Cert, MessageID: fw.Kopf.NachrichtID, LeikaKey: f.key,
		Origin: submission.Origin{Gateway: "amtsbote-by", SubmissionID: "by-1", ForwardedAt: now,
			Chain: []submission.Hop{{Gateway: "amtsbote-by", SubmissionID: "by-1", At: now}}},
		Self: f.g.Config.GatewayID, MaxHops: 4,
	}); err != nil {
		t.Fatalf("setup forwarded package: %v", err)
	}
	// Extra request headers by case name.
	headers := map[string]http.Header{
		"office attachment range":         {"Range": {"bytes=0-9"}},
		"office attachment range outside": {"Range": {"bytes=999999-"}},
		"office attachment if-match":      {"If-Match": {`"not-its-digest"`}},
		"office reply":                    {"Idempotency-Key": {"AZ-2026-17/bescheid"}},
		"office reply again":              {"Idempotency-Key": {"AZ-2026-17/bescheid"}},
		"office reply other bytes":        {"Idempotency-Key": {"AZ-2026-17/bescheid"}},
		"office reply key too long":       {"Idempotency-Key": {strings.Repeat("k", 201)}},
		"office reply erased":             {"Idempotency-Key": {"AZ-2026-17/bescheid-2"}},
	}
	bescheid := []byte("Bescheid: Ihre Anzeige ist vollständig. Az. 2026-17\n")
	replies := "/v1/office/submissions/" + id + "/replies"
	openapi3filter.RegisterBodyDecoder("multipart/related", openapi3filter.FileBodyDecoder)
	tests := []struct {
		name, method, path, token, ctype string
		body                             []byte
		status                           int
	}{
		{"submit duplicate", "POST", "/v1/submissions", "", "application/xml", valid, 200},
		{"submit malformed", "POST", "/v1/submissions", "", "application/xml", []byte("<x/>"), 400},
		{"submit wrong type", "POST", "/v1/submissions", "", "text/plain", []byte("x"), 415},
		{"submit multipart", "POST", "/v1/submissions", "", mpType, mpBytes, 201},
		{"submit multipart again", "POST", "/v1/submissions", "", mpType, mpBytes, 200},
		{"submit multipart part missing", "POST", "/v1/submissions", "", rootOnlyType, rootOnly, 422},
		{"submit NachrichtID of a forwarded package", "POST", "/v1/submissions", "", "application/xml", taken, 409},
		{"status", "GET", "/v1/submissions/" + id, portalToken, "", nil, 200},
		{"status unauthenticated", "GET", "/v1/submissions/" + id, "", "", nil, 401},
		{"status unknown", "GET", "/v1/submissions/nope", portalToken, "", nil, 404},
		{"receipt", "GET", "/v1/submissions/" + id + "/receipts/eingang", portalToken, "", nil, 200},
		{"office list", "GET", "/v1/office/submissions?limit=10", officeToken, "", nil, 200},
		{"office list bad limit", "GET", "/v1/office/submissions?limit=0", officeToken, "", nil, 422},
		{"office get", "GET", "/v1/office/submissions/" + id, officeToken, "", nil, 200},
		{"office package", "GET", "/v1/office/submissions/" + id + "/package", officeToken, "", nil, 200},
		{"office attachment", "GET", "/v1/office/submissions/" + id + "/attachments/" + aid, officeToken, "", nil, 200},
		{"office attachment range", "GET", "/v1/office/submissions/" + id + "/attachments/" + aid, officeToken, "", nil, 206},
		{"office attachment range outside", "GET", "/v1/office/submissions/" + id + "/attachments/" + aid, officeToken, "", nil, 416},
		{"office attachment if-match", "GET", "/v1/office/submissions/" + id + "/attachments/" + aid, officeToken, "", nil, 412},
		// The office's system fetched the package (above) and has not decided yet.
		{"admin undecided", "GET", "/v1/admin/undecided", adminToken, "", nil, 200},
		{"admin undecided of the office", "GET", "/v1/admin/undecided?office=" + DemoOfficeID + "&limit=1", adminToken, "", nil, 200},
		{"admin undecided of another office", "GET", "/v1/admin/undecided?office=leipzig-ordnungsamt", adminToken, "", nil, 200},
		{"admin undecided bad limit", "GET", "/v1/admin/undecided?limit=0", adminToken, "", nil, 422},
		{"admin undecided office twice", "GET", "/v1/admin/undecided?office=a&office=b", adminToken, "", nil, 422},
		{"admin undecided as an office", "GET", "/v1/admin/undecided", officeToken, "", nil, 401},
		{"office list awaiting decision", "GET", "/v1/office/submissions?awaiting=decision&deliveredVia=api,webhook&limit=1", officeToken, "", nil, 200},
		{"office list awaiting decision with state", "GET", "/v1/office/submissions?awaiting=decision&state=delivered", officeToken, "", nil, 422},
		{"office list deliveredVia alone", "GET", "/v1/office/submissions?deliveredVia=api", officeToken, "", nil, 422},
		{"office list unreadable query", "GET", "/v1/office/submissions?state=held;accepted", officeToken, "", nil, 400},
		{"office list limit twice", "GET", "/v1/office/submissions?limit=1&limit=2", officeToken, "", nil, 422},
		{"office reject without reason", "POST", "/v1/office/submissions/" + id + "/reject", officeToken, "application/json", []byte(`{"reason":""}`), 422},
		{"office accept malformed", "POST", "/v1/office/submissions/" + id + "/accept", officeToken, "application/json", []byte(`{"reason":`), 400},
		{"office accept too large", "POST", "/v1/office/submissions/" + id + "/accept", officeToken, "application/json", []byte(`{"reason":"` + strings.Repeat("x", 70<<10) + `"}`), 413},
		{"office accept reason too long", "POST", "/v1/office/submissions/" + id + "/accept", officeToken, "application/json", []byte(`{"reason":"` + strings.Repeat("ä", 2001) + `"}`), 422},
		{"office reject malformed", "POST", "/v1/office/submissions/" + id + "/reject", officeToken, "application/json", []byte(`[`), 400},
		{"office accept", "POST", "/v1/office/submissions/" + id + "/accept", officeToken, "application/json", []byte(`{"reason":"` + strings.Repeat("ä", 2000) + `"}`), 200},
		{"office reject after accept", "POST", "/v1/office/submissions/" + id + "/reject", officeToken, "application/json", []byte(`{"reason":"zu spät"}`), 409},
		{"office accept again", "POST", "/v1/office/submissions/" + id + "/accept", officeToken, "application/json", []byte(`{"reason":"` + strings.Repeat("ä", 2000) + `"}`), 200},
		{"office accept other reason", "POST", "/v1/office/submissions/" + id + "/accept", officeToken, "application/json", []byte(`{"reason":"AZ-2"}`), 409},
		{"office reply", "POST", replies + "?kind=Bescheid", officeToken, "text/plain; charset=utf-8", bescheid, 201},
		{"office reply again", "POST", replies + "?kind=Bescheid", officeToken, "text/plain; charset=utf-8", bescheid, 200},
		{"office reply other bytes", "POST", replies + "?kind=Bescheid", officeToken, "text/plain; charset=utf-8", []byte("ein anderer Bescheid"), 409},
		{"office reply without kind", "POST", replies, officeToken, "text/plain", bescheid, 422},
		{"office reply key too long", "POST", replies + "?kind=Bescheid", officeToken, "text/plain", bescheid, 422},
		{"office reply without media type", "POST", replies + "?kind=Bescheid", officeToken, "", bescheid, 415},
		{"office reply empty", "POST", replies + "?kind=Bescheid", officeToken, "text/plain", []byte{}, 422},
		{"office reply as a portal", "POST", replies + "?kind=Bescheid", portalToken, "text/plain", bescheid, 401},
		{"office reply to an unknown case", "POST", "/v1/office/submissions/nope/replies?kind=Bescheid", officeToken, "text/plain", bescheid, 404},
		{"office reply unknown", "GET", replies + "/nope", officeToken, "", nil, 404},
		{"office view with the reply", "GET", "/v1/office/submissions/" + id, officeToken, "", nil, 200},
		{"status with the reply", "GET", "/v1/submissions/" + id, portalToken, "", nil, 200},
		{"office list accepted", "GET", "/v1/office/submissions?state=accepted,rejected", officeToken, "", nil, 200},
		{"admin undecided after the decision", "GET", "/v1/admin/undecided", adminToken, "", nil, 200},
		{"office list awaiting decision after the decision", "GET", "/v1/office/submissions?awaiting=decision", officeToken, "", nil, 200},
		{"office list waiting", "GET", "/v1/office/submissions?state=queued,retrying,handed_over,held&limit=500", officeToken, "", nil, 200},
		{"office list unknown state", "GET", "/v1/office/submissions?state=neu", officeToken, "", nil, 422},
		{"delivery receipt", "GET", "/v1/office/submissions/" + id + "/receipts/zustellung", officeToken, "", nil, 200},
		{"admin list", "GET", "/v1/admin/submissions?state=accepted", adminToken, "", nil, 200},
		{"admin get", "GET", "/v1/admin/submissions/" + id, adminToken, "", nil, 200},
		{"admin get unknown", "GET", "/v1/admin/submissions/nope", adminToken, "", nil, 404},
		{"admin list handed over", "GET", "/v1/admin/submissions?state=handed_over", adminToken, "", nil, 200},
		{"admin offices", "GET", "/v1/admin/offices", adminToken, "", nil, 200},
		{"admin offices as an office", "GET", "/v1/admin/offices", officeToken, "", nil, 401},
		{"admin redeliver not held", "POST", "/v1/admin/submissions/" + id + "/redeliver", adminToken, "", nil, 409},
		{"admin dead letters page", "GET", "/v1/admin/dead-letters?limit=1&after=0", adminToken, "", nil, 200},
		{"admin dead letters bad limit", "GET", "/v1/admin/dead-letters?limit=0", adminToken, "", nil, 422},
		{"admin replay unknown id", "POST", "/v1/admin/dead-letters/replay", adminToken, "application/json", []byte(`{"ids":["nope"]}`), 404},
		{"admin replay not a dead letter", "POST", "/v1/admin/dead-letters/replay", adminToken, "application/json", []byte(`{"ids":["` + id + `"]}`), 200},
		{"admin replay too large", "POST", "/v1/admin/dead-letters/replay", adminToken, "application/json", []byte(`{"ids":["` + strings.Repeat("x", 1<<20) + `"]}`), 413},
		{"admin erase unauthenticated", "POST", "/v1/admin/submissions/" + id + "/erase", officeToken, "", nil, 401},
		{"admin erase unknown", "POST", "/v1/admin/submissions/nope/erase", adminToken, "", nil, 404},
		{"admin erase malformed", "POST", "/v1/admin/submissions/" + id + "/erase", adminToken, "application/json", []byte(`{"operator":`), 400},
		{"admin erase operator too long", "POST", "/v1/admin/submissions/" + id + "/erase", adminToken, "application/json", []byte(`{"operator":"` + strings.Repeat("ä", 101) + `"}`), 422},
		{"admin erase", "POST", "/v1/admin/submissions/" + id + "/erase", adminToken, "application/json", []byte(`{"operator":"m.meier","note":"Az. DS-2026-17"}`), 200},
		{"admin erase again", "POST", "/v1/admin/submissions/" + id + "/erase", adminToken, "", nil, 200},
		{"office package erased", "GET", "/v1/office/submissions/" + id + "/package", officeToken, "", nil, 410},
		{"office attachment erased", "GET", "/v1/office/submissions/" + id + "/attachments/" + aid, officeToken, "", nil, 410},
		{"office reply erased", "POST", replies + "?kind=Bescheid", officeToken, "text/plain", []byte("nach der Löschung"), 410},
		{"admin erase undecided", "POST", "/v1/admin/submissions/" + id2 + "/erase", adminToken, "application/json", []byte(`{"operator":"m.meier"}`), 200},
		{"office reject erased", "POST", "/v1/office/submissions/" + id2 + "/reject", officeToken, "application/json", []byte(`{"reason":"weg"}`), 410},
		{"office accept erased", "POST", "/v1/office/submissions/" + id2 + "/accept", officeToken, "application/json", []byte(`{}`), 410},
		{"admin list state twice", "GET", "/v1/admin/submissions?state=held&state=queued", adminToken, "", nil, 422},
		{"healthz", "GET", "/healthz", "", "", nil, 200},
		{"readyz", "GET", "/readyz", "", "", nil, 200},
		{"openapi", "GET", "/v1/openapi.yaml", "", "", nil, 200},
		// Last: the gateway's clock past its certificate's end (before).
		{"submit after the gateway certificate ended", "POST", "/v1/submissions", "", "application/xml", mustSign(t, f, f.example()), 503},
		{"readyz after the gateway certificate ended", "GET", "/readyz", "", "", nil, 200},
	}
	// What must happen before a case.
	before := map[string]func(){
		"submit after the gateway certificate ended": func() {
			ended := f.pki.Gateway.Cert.NotAfter.Add(time.Second)
			clock := func() time.Time { return ended }
			f.g.clock.Store(&clock)
		},
	}
	// What an answer must say beyond its schema.
	says := map[string]string{
		"admin replay unknown id":                    `"id":"nope"`,
		"admin replay not a dead letter":             `"skipped":[{"id":"` + id + `","state":"accepted"}]`,
		"office list accepted":                       `"id":"` + id + `"`,
		"admin undecided":                            `"id":"` + id + `","office":"` + DemoOfficeID + `"`,
		"admin undecided of the office":              `"channel":"api"`,
		"admin undecided bad limit":                  `"field":"limit"`,
		"office list awaiting decision":              `"id":"` + id + `"`,
		"office list awaiting decision with state":   `"field":"state"`,
		"office list deliveredVia alone":             `"field":"deliveredVia"`,
		"office list unknown state":                  `"field":"state"`,
		"admin erase":                                `"alreadyRemoved":false`,
		"admin erase again":                          `"alreadyRemoved":true`,
		"admin erase operator too long":              `"field":"operator"`,
		"office package erased":                      `bytes-removed`,
		"office accept other reason":                 `problems/conflict`,
		"office reply":                               `"kind":"Bescheid"`,
		"office reply again":                         `"kind":"Bescheid"`,
		"office reply other bytes":                   `names another reply`,
		"office reply without kind":                  `"field":"kind"`,
		"office reply key too long":                  `"field":"Idempotency-Key"`,
		"office reply without media type":            `unsupported-media`,
		"office reply empty":                         `"field":"body"`,
		"office view with the reply":                 `"link":"/v1/office/submissions/` + id + `/replies/`,
		"status with the reply":                      `"link":"/v1/submissions/` + id + `/replies/`,
		"office reply erased":                        `bytes-removed`,
		"submit after the gateway certificate ended": `gateway-certificate-expired`,
		"readyz after the gateway certificate ended": `gateway certificate`,
	}
	// What an answer must not say.
	lacks := map[string]string{
		"office list waiting":                              `"id":"` + id + `"`,
		"admin undecided of another office":                `"id":"` + id + `"`,
		"admin undecided after the decision":               `"id":"` + id + `"`,
		"office list awaiting decision after the decision": `"id":"` + id + `"`,
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if do := before[tc.name]; do != nil {
				do()
			}
			req, _ := http.NewRequest(tc.method, f.g.URL()+tc.path, bytes.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			for k, v := range headers[tc.name] {
				req.Header[k] = v
			}
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("not in the contract: %v", err)
			}
			in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, ExcludeRequestBody: tc.status >= 400}}
			resp, err := http.DefaultClient.Do(req.Clone(context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if want, not := says[tc.name], lacks[tc.name]; want != "" || not != "" {
				var flat bytes.Buffer
				if err := json.Compact(&flat, body); err != nil || !bytes.Contains(flat.Bytes(), []byte(want)) {
					t.Fatalf("answer lacks %s: %v %s", want, err, body)
				}
				if not != "" && bytes.Contains(flat.Bytes(), []byte(not)) {
					t.Fatalf("answer has %s: %s", not, body)
				}
			}
			if tc.status < 400 {
				in.Request.Body = io.NopCloser(bytes.NewReader(tc.body))
				if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
					t.Fatalf("request breaks the contract: %v", err)
				}
			}
			header := resp.Header.Clone()
			if strings.HasPrefix(tc.path, "/v1/office/submissions/"+id+"/attachments/") && resp.StatusCode < 400 {
				header.Set("Content-Type", "application/octet-stream") // declared per attachment
			}
			// Strictly: no member, status or content type the contract does not
			// declare, a problem type docs/problems.md lists (contracttest).
			if err := strict.Check(req, resp.StatusCode, header, body); err != nil {
				t.Fatalf("response breaks the contract: %v\n%s", err, body)
			}
			// The gateway's own headers are the contract's, too: the validator checks
			// only the headers a response declares, and a repeat's 200 carried
			// Amtsbote-Submission-Id undeclared.
			declared := map[string]bool{}
			for name := range route.Operation.Responses.Status(resp.StatusCode).Value.Headers {
				declared[http.CanonicalHeaderKey(name)] = true
			}
			for name := range resp.Header {
				if strings.HasPrefix(name, "Amtsbote-") && !declared[name] {
					t.Errorf("the answer %d sends %s, which api/openapi.yaml does not declare for it", resp.StatusCode, name)
				}
			}
		})
	}
}
