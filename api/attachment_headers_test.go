package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/wire"
)

// TestAttachmentAnswersAreNeverStored: an attachment carries the applicant's
// personal data, so every answer of its download says Cache-Control: no-store,
// and a refusal is a problem document without the attachment's
// Content-Disposition (a browser or download tool saved the problem under the
// attachment's file name). http.ServeContent dropped the API's no-store from its
// own 416 (a range past the end), and 412 and 416 kept the Content-Disposition
// the handler had set for the bytes. Real requests with Range, If-Match and
// If-None-Match against a whole gateway, each checked against the contract.
func TestAttachmentAnswersAreNeverStored(t *testing.T) {
	ex := submitExample(t)
	id := ex.res.SubmissionID
	router := contractRouter(t)
	path := wire.OfficeAttachmentPath(id, "anlage-1")
	get := func(h map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ex.g.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+officeToken)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		_, _, err = router.FindRoute(req)
		if err != nil {
			t.Fatalf("not in the contract: %v", err)
		}
		if err := conforms(req, resp, b); err != nil {
			t.Errorf("%v: %d breaks the contract: %v\n%.300s", h, resp.StatusCode, err, b)
		}
		return resp, b
	}
	whole, _ := get(nil)
	etag := whole.Header.Get("ETag")
	if whole.StatusCode != http.StatusOK || etag == "" || whole.Header.Get("Content-Disposition") == "" {
		t.Fatalf("the attachment: %d, ETag %q, Content-Disposition %q", whole.StatusCode, etag, whole.Header.Get("Content-Disposition"))
	}
	for _, tc := range []struct {
		name   string
		h      map[string]string
		status int
		typ    string // a refusal's problem type; "" for an answer with the bytes (or 304)
	}{
		{"whole", nil, http.StatusOK, ""},
		{"a range", map[string]string{"Range": "bytes=0-9"}, http.StatusPartialContent, ""},
		{"a range with If-Range", map[string]string{"Range": "bytes=0-9", "If-Range": etag}, http.StatusPartialContent, ""},
		{"If-None-Match", map[string]string{"If-None-Match": etag}, http.StatusNotModified, ""},
		{"a range past the end", map[string]string{"Range": "bytes=99999999-"}, http.StatusRequestedRangeNotSatisfiable, problem.TypeRangeNotSatisfiable},
		{"an empty suffix", map[string]string{"Range": "bytes=-0"}, http.StatusRequestedRangeNotSatisfiable, problem.TypeRangeNotSatisfiable},
		{"a malformed range", map[string]string{"Range": "bytes=5-1"}, http.StatusRequestedRangeNotSatisfiable, problem.TypeRangeNotSatisfiable},
		{"If-Match of another ETag", map[string]string{"If-Match": `"0000"`}, http.StatusPreconditionFailed, problem.TypePreconditionFailed},
		{"If-Match of another ETag with a range", map[string]string{"If-Match": `"0000"`, "Range": "bytes=0-9"}, http.StatusPreconditionFailed, problem.TypePreconditionFailed},
	} {
		resp, b := get(tc.h)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, b, tc.status)
			continue
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: %d with Cache-Control %q, want no-store", tc.name, resp.StatusCode, cc)
		}
		if tc.typ == "" {
			continue
		}
		var p problem.Problem
		if resp.Header.Get("Content-Type") != problem.ContentType || json.Unmarshal(b, &p) != nil || p.Type != tc.typ {
			t.Errorf("%s: %d %q %s, want a %s problem", tc.name, resp.StatusCode, resp.Header.Get("Content-Type"), b, tc.typ)
		}
		if cd := resp.Header.Get("Content-Disposition"); cd != "" {
			t.Errorf("%s: the refusal (%d) carries the attachment's Content-Disposition %q", tc.name, resp.StatusCode, cd)
		}
	}
}
