package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// TestBodiesAndParametersRefusedPrecisely: requests an audit (2026-12-04) found
// taken or answered loosely. A decision body with more after its JSON object was
// acted on (the rejection cannot be undone); a bad "to" of the dead-letter list
// was reported as field "from"; the admin list answered an unknown state with an
// empty list; a body without a declared length cut at the limit had no "max".
func TestBodiesAndParametersRefusedPrecisely(t *testing.T) {
	ex := submitExample(t)
	g, id := ex.g, ex.res.SubmissionID

	do := func(method, path, token string, body io.Reader) (*http.Response, map[string]any) {
		t.Helper()
		return requestJSON(t, method, g.URL()+path, token, body)
	}

	resp, pr := do("POST", wire.OfficeSubmissionPath(id)+"/reject", officeToken, strings.NewReader(`{"reason":"unvollständig"} {"this is": not json`))
	if resp.StatusCode != 400 || pr["type"] != problem.TypeMalformed {
		t.Errorf("reject with more after its JSON: %d %+v", resp.StatusCode, pr)
	}
	if s, _ := g.Broker.Submission(id); s.Decision != nil || s.State == submission.StateRejected {
		t.Fatalf("the rejection was taken: %+v", s.Decision)
	}

	resp, pr = do("GET", "/v1/admin/dead-letters?to=2026-13-01T00:00:00Z", adminToken, nil)
	if resp.StatusCode != 422 || pr["field"] != "to" {
		t.Errorf("dead letters with a bad to: %d %+v", resp.StatusCode, pr)
	}
	resp, pr = do("POST", "/v1/admin/dead-letters/replay", adminToken, strings.NewReader(`{"office":"x","to":"bad"}`))
	if resp.StatusCode != 422 || pr["field"] != "to" {
		t.Errorf("replay with a bad to: %d %+v", resp.StatusCode, pr)
	}
	for _, q := range []string{"bogus", "queued,held"} {
		resp, pr = do("GET", "/v1/admin/submissions?state="+q, adminToken, nil)
		if resp.StatusCode != 422 || pr["field"] != "state" {
			t.Errorf("admin list state=%s: %d %+v", q, resp.StatusCode, pr)
		}
	}

	// No Content-Length (chunked): the body is cut at 64 KiB while read.
	resp, pr = do("POST", wire.OfficeSubmissionPath(id)+"/reject", officeToken, io.MultiReader(strings.NewReader(`{"reason":"`+strings.Repeat("x", 70<<10)+`"}`)))
	if resp.StatusCode != 413 || pr["type"] != problem.TypeTooLarge || pr["max"] != float64(64<<10) {
		t.Errorf("chunked body over the limit: %d %+v", resp.StatusCode, pr)
	}
}

// requestJSON sends a JSON body with a bearer token and returns the answer and
// its JSON object (nil if it is none).
func requestJSON(t *testing.T, method, url, token string, body io.Reader) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp, m
}
