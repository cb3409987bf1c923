package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/submission"
)

// TestHeadAnswersAsGetWould: HEAD where GET is served gets GET's status and
// header fields and no content (RFC 9110 §9.3.2); uptime monitors and download
// tools send it, and it was 405. A HEAD of the office's package does not count as
// its fetch: that would have confirmed the delivery and signed a
// Zustellbestaetigung for a package nobody had. The backup is not made for a HEAD.
func TestHeadAnswersAsGetWould(t *testing.T) {
	f := start(t)
	res, err := f.portal.Submit(context.Background(), f.example())
	if err != nil || res.Status != http.StatusCreated {
		t.Fatal(err, res)
	}
	id := res.SubmissionID
	// The worker moves the package from queued on its own time; the HEAD's check
	// compares against the state it settles in (CI saw queued → held otherwise).
	var sub *submission.Submission
	waitFor(t, "the package to leave the queue", func() bool {
		s, err := f.g.Broker.Submission(id)
		if err != nil {
			t.Fatal(err)
		}
		sub = s
		return s.State != submission.StateQueued && s.State != submission.StateRetrying
	})
	if len(sub.Attachments) == 0 {
		t.Fatalf("the example needs an attachment: %+v", sub)
	}
	do := func(method, path, token string) (*http.Response, []byte) {
		t.Helper()
		return authed(t, method, f.g.URL()+path, token)
	}
	pkg := "/v1/office/submissions/" + id + "/package"
	// The package first: HEAD, then the record must still wait for the office.
	head, body := do(http.MethodHead, pkg, officeToken)
	if head.StatusCode != http.StatusOK || len(body) != 0 || head.Header.Get("Repr-Digest") == "" || head.ContentLength != sub.PackageSize {
		t.Fatalf("HEAD of the package: %d, %d bytes of content, Repr-Digest %q, Content-Length %d (want %d)",
			head.StatusCode, len(body), head.Header.Get("Repr-Digest"), head.ContentLength, sub.PackageSize)
	}
	if now, err := f.g.Broker.Submission(id); err != nil || now.DeliveredAt != nil || now.State != sub.State {
		t.Fatalf("a HEAD counted as the office's fetch: %v state %s → %s, delivered %v", err, sub.State, now.State, now.DeliveredAt)
	}
	for _, c := range []struct{ path, token string }{
		{pkg, officeToken},
		{"/healthz", ""},
		{"/readyz", ""},
		{"/v1/openapi.yaml", ""},
		{"/v1/submissions/" + id, portalToken},
		{"/v1/submissions/" + id, ""}, // 401 alike
		{"/v1/office/submissions", officeToken},
		{"/v1/office/submissions/" + id, officeToken},
		{"/v1/office/submissions/" + id + "/attachments/" + sub.Attachments[0].ID, officeToken},
		{"/v1/office/submissions/" + id, otherToken}, // 404 alike
		{"/v1/places?q=Aue", ""},
		{"/v1/admin/submissions", adminToken},
		{"/v1/nonsense", ""}, // 404 alike
	} {
		head, hb := do(http.MethodHead, c.path, c.token)
		get, gb := do(http.MethodGet, c.path, c.token)
		if head.StatusCode != get.StatusCode || len(hb) != 0 {
			t.Errorf("HEAD %s: %d with %d bytes; GET: %d", c.path, head.StatusCode, len(hb), get.StatusCode)
			continue
		}
		for _, h := range []string{"Content-Type", "ETag", "Accept-Ranges", "Repr-Digest", "WWW-Authenticate"} {
			if head.Header.Get(h) != get.Header.Get(h) {
				t.Errorf("HEAD %s: %s %q, GET's %q", c.path, h, head.Header.Get(h), get.Header.Get(h))
			}
		}
		if get.ContentLength >= 0 && head.ContentLength >= 0 && head.ContentLength != int64(len(gb)) {
			t.Errorf("HEAD %s: Content-Length %d, GET sent %d bytes", c.path, head.ContentLength, len(gb))
		}
	}
	// The GET of the package above was the fetch (the control of the HEAD's check).
	if now, _ := f.g.Broker.Submission(id); now.DeliveredAt == nil {
		t.Fatal("the GET of the package did not count as the fetch either; the HEAD check above proves nothing")
	}
	// An erased package: HEAD says 410 as GET does, from the record alone.
	if _, err := f.g.Broker.Erase(context.Background(), id, "operator (test)", "Antrag der Betroffenen"); err != nil {
		t.Fatal(err)
	}
	if head, _ := do(http.MethodHead, pkg, officeToken); head.StatusCode != http.StatusGone {
		t.Errorf("HEAD of an erased package: %d, want 410", head.StatusCode)
	}
	if get, _ := do(http.MethodGet, pkg, officeToken); get.StatusCode != http.StatusGone {
		t.Errorf("GET of an erased package: %d, want 410", get.StatusCode)
	}
	// The backup: 405, and Allow says so; elsewhere Allow names HEAD beside GET.
	if resp, _ := do(http.MethodHead, "/v1/admin/backup", adminToken); resp.StatusCode != http.StatusMethodNotAllowed || strings.Contains(resp.Header.Get("Allow"), "HEAD") {
		t.Errorf("HEAD of the backup: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if resp, _ := do(http.MethodDelete, "/healthz", ""); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("DELETE /healthz: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}
