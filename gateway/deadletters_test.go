package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestDeadLetterPages: the operator's dead-letter list comes in pages whose next
// link keeps the filter and ends at the last one. (The fixture's office has no
// mailbox user, so its packages are held.)
func TestDeadLetterPages(t *testing.T) {
	f := start(t)
	var ids []string
	for range 3 {
		res, err := f.portal.Submit(context.Background(), f.example())
		if err != nil || res.Status != http.StatusCreated {
			t.Fatalf("submit: %v %+v", err, res)
		}
		ids = append(ids, res.SubmissionID)
	}
	type page struct {
		DeadLetters []struct{ ID string }
		Next        string
	}
	get := func(path string) page {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, f.g.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p page
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&p) != nil {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return p
	}
	waitFor(t, "three dead letters", func() bool { return len(get("/v1/admin/dead-letters").DeadLetters) == 3 })
	first := get("/v1/admin/dead-letters?office=" + DemoOfficeID + "&limit=2")
	if len(first.DeadLetters) != 2 || first.DeadLetters[0].ID != ids[0] || !strings.Contains(first.Next, "office="+DemoOfficeID) {
		t.Fatalf("first page %+v", first)
	}
	second := get(first.Next)
	if len(second.DeadLetters) != 1 || second.DeadLetters[0].ID != ids[2] || second.Next != "" {
		t.Fatalf("second page (%s) %+v", first.Next, second)
	}
	if other := get("/v1/admin/dead-letters?office=leipzig-ordnungsamt"); len(other.DeadLetters) != 0 {
		t.Fatalf("another office's list: %+v", other)
	}
}
