package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/wire"
)

// TestOfficeListStateRepeated: an OpenAPI client or a hand-written query may give
// a list as a repeated parameter (state=accepted&state=rejected, "form, explode",
// the default for arrays) instead of comma-separated. The list read the first
// value only and answered 200 with the other state's cases silently left out; a
// Fachverfahren asking for what waits (state=queued&state=held) never saw what
// was held. Every value counts now, as if comma-separated.
func TestOfficeListStateRepeated(t *testing.T) {
	ex := startPortal(t)
	var ids []string
	for _, outcome := range []string{wire.OutcomeAccepted, wire.OutcomeRejected} {
		res, err := ex.client.SubmitRaw(t.Context(), signedExample(t, ex.client, ex.leika))
		if err != nil || res.Status != 201 {
			t.Fatal(err, res)
		}
		req, _ := http.NewRequest(http.MethodPost, ex.g.URL()+wire.OfficeDecisionPath(res.SubmissionID, outcome), strings.NewReader(`{"reason":"Test"}`))
		req.Header.Set("Authorization", "Bearer "+officeToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", outcome, err, resp)
		}
		resp.Body.Close()
		ids = append(ids, res.SubmissionID)
	}
	list := func(query string) []string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ex.g.URL()+"/v1/office/submissions?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+officeToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var l wire.OfficeList
		if resp.StatusCode != 200 || json.Unmarshal(b, &l) != nil {
			t.Fatalf("?%s: %d %s", query, resp.StatusCode, b)
		}
		var got []string
		for _, s := range l.Submissions {
			got = append(got, s.ID)
		}
		return got
	}
	if got := list("state=accepted,rejected"); !slices.Equal(got, ids) {
		t.Fatalf("comma-separated: %v, want %v", got, ids)
	}
	if got := list("state=accepted&state=rejected"); !slices.Equal(got, ids) {
		t.Errorf("repeated: %v, want %v", got, ids)
	}
	if got := list("state=accepted&state=rejected&limit=1"); len(got) != 1 || got[0] != ids[0] {
		t.Errorf("repeated, one a page: %v", got)
	}
}
