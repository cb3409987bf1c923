package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/wire"
)

// TestOperatorBodiesRefuseUnknownMembers: the erase body's contract has
// additionalProperties: false, and both operator bodies drive what cannot be
// taken back. A mistyped member was ignored: {"operater": "m.meier"} erased the
// case's bytes with the operator's name left out of the event log, and
// {"offce": …, "from": …, "to": …} would have replayed the dead letters of every
// office in the window instead of one. Such a body is 400 and nothing is done.
func TestOperatorBodiesRefuseUnknownMembers(t *testing.T) {
	ex := submitExample(t)
	g, id := ex.g, ex.res.SubmissionID
	post := func(path, token, body string) (int, map[string]any) {
		t.Helper()
		res, m := requestJSON(t, http.MethodPost, g.URL()+path, token, strings.NewReader(body))
		return res.StatusCode, m
	}
	if st, m := post(wire.OfficeDecisionPath(id, wire.OutcomeAccepted), officeToken, `{}`); st != 200 {
		t.Fatalf("accept: %d %v", st, m)
	}
	st, m := post("/v1/admin/submissions/"+id+"/erase", adminToken, `{"operater":"m.meier","note":"Az. DS-2026-17"}`)
	if st != 400 || m["type"] != problem.TypeMalformed || !strings.Contains(m["detail"].(string), "operater") {
		t.Errorf("erase with an unknown member: %d %v", st, m)
	}
	if s, _ := g.Broker.Submission(id); s.BytesRemovedAt != nil {
		t.Fatal("the bytes were erased on a body with an unknown member")
	}
	st, m = post("/v1/admin/dead-letters/replay", adminToken, `{"offce":"x","from":"2026-01-01T00:00:00Z","to":"2030-01-01T00:00:00Z"}`)
	if st != 400 || m["type"] != problem.TypeMalformed || !strings.Contains(m["detail"].(string), "offce") {
		t.Errorf("replay with an unknown member: %d %v", st, m)
	}
	// The right members still work.
	if st, m := post("/v1/admin/submissions/"+id+"/erase", adminToken, `{"operator":"m.meier","note":"Az. DS-2026-17"}`); st != 200 {
		t.Errorf("erase: %d %v", st, m)
	}
}
