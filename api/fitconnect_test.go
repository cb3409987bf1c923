package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/amtsbote/amtsbote/wire"
	"github.com/amtsbote/amtsbote/wire/fitconnecttest"
)

// TestOfficeAPIConformsToFITConnect checks what the office pull API answers where
// it uses FIT-Connect's names against the official Submission API schemas: the list
// (submissions, count) as SubmissionsForPickup, so code written for FIT-Connect's
// pickup list finds destinationId, submissionId and caseId in every entry, and its
// problems as FIT-Connect's Error (RFC 7807: type, title, status).
func TestOfficeAPIConformsToFITConnect(t *testing.T) {
	ex := submitExample(t)
	id := ex.res.SubmissionID
	get := func(path, token string, status int) []byte {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ex.g.URL()+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != status {
			t.Fatalf("GET %s: %d, want %d: %s", path, resp.StatusCode, status, b)
		}
		return b
	}

	list := get(wire.OfficeSubmissionsPath, officeToken, 200)
	fitconnecttest.Validate(t, "SubmissionsForPickup", list)
	var l wire.OfficeList
	if err := json.Unmarshal(list, &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Submissions) != 1 {
		t.Fatalf("list: %s", list)
	}
	s := l.Submissions[0]
	if s.SubmissionID != id || s.CaseID != id || s.DestinationID != wire.OfficeDestinationID(s.Office.ID) {
		t.Errorf("entry ids: submissionId %q caseId %q destinationId %q (office %q), want %s and the office's destination",
			s.SubmissionID, s.CaseID, s.DestinationID, s.Office.ID, id)
	}
	var one wire.OfficeSubmission
	if err := json.Unmarshal(get(wire.OfficeSubmissionPath(id), officeToken, 200), &one); err != nil {
		t.Fatal(err)
	}
	if one.SubmissionID != id || one.CaseID != id || one.DestinationID != s.DestinationID {
		t.Errorf("single view ids %q %q %q, want those of the list", one.SubmissionID, one.CaseID, one.DestinationID)
	}

	for _, p := range []struct {
		path, token string
		status      int
	}{
		{wire.OfficeSubmissionsPath, "", 401},
		{wire.OfficeSubmissionPath("00000000-0000-4000-8000-000000000000"), officeToken, 404},
		{wire.OfficeSubmissionsPath + "?state=bogus", officeToken, 422},
		// FIT-Connect's clients page by offset; it was ignored, so they read the
		// first page forever. 0 is the first page.
		{wire.OfficeSubmissionsPath + "?offset=100", officeToken, 422},
	} {
		fitconnecttest.Validate(t, "Error", get(p.path, p.token, p.status))
	}
	fitconnecttest.Validate(t, "SubmissionsForPickup", get(wire.OfficeSubmissionsPath+"?offset=0", officeToken, 200))
}
