package webhook

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/adaptertest"
	"github.com/amtsbote/amtsbote/internal/testenv"

	"github.com/amtsbote/amtsbote/wire"
	"github.com/amtsbote/amtsbote/wire/fitconnecttest"
)

// TestNotificationConformsToFITConnect sends a real notification through the
// adapter and checks the body as the office received it against the official
// CallbackNewSubmissions schema: a FIT-Connect receiver (whose SDK reads
// destinationId, submissionId and caseId as UUIDs) must be able to take it.
func TestNotificationConformsToFITConnect(t *testing.T) {
	r := captured(t, NewSecret())
	fitconnecttest.Validate(t, "CallbackNewSubmissions", r.body)

	var n Notification
	if err := json.Unmarshal(r.body, &n); err != nil {
		t.Fatal(err)
	}
	if len(n.Submissions) != 1 {
		t.Fatalf("submissions: %+v", n.Submissions)
	}
	// The destinationId is the one /v1/routes gives for this office, so the
	// office's FIT-Connect code sees the destination it was registered under; the
	// readable id stays in officeId.
	if got, want := n.Submissions[0].DestinationID, wire.OfficeDestinationID(n.OfficeID); got != want || n.OfficeID == "" {
		t.Errorf("destinationId %q for office %q, want %q", got, n.OfficeID, want)
	}
	if s := n.Submissions[0]; s.SubmissionID != n.SubmissionID || s.CaseID != n.SubmissionID {
		t.Errorf("submissions[0] = %+v, want the submission %s", s, n.SubmissionID)
	}
}

// TestDocumentedBodiesConformToFITConnect: the examples office IT and portal
// developers copy from docs/webhook.md conform to the official schemas too.
func TestDocumentedBodiesConformToFITConnect(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "webhook.md"))
	if err != nil {
		t.Fatal(err)
	}
	schemas := map[string]string{
		TypeNewSubmissions: "CallbackNewSubmissions",
		"https://schema.fitko.de/fit-connect/submission-api/callbacks/new-events": "CallbackNewEvents",
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1) {
		var b struct{ Type string }
		if err := json.Unmarshal(m[1], &b); err != nil {
			continue // an answer example such as {"id": …}
		}
		if schema, ok := schemas[b.Type]; ok {
			seen[b.Type] = true
			fitconnecttest.Validate(t, schema, m[1])
		}
	}
	if len(seen) != len(schemas) {
		t.Errorf("docs/webhook.md shows examples of %v, want both callback types", seen)
	}
}

// TestNachreichungNamesItsCase: a Nachreichung's notification names the case
// it belongs to as caseId (the first package's submission id), which a
// FIT-Connect receiver files it under; a new case's caseId is its own
// submission id (above).
func TestNachreichungNamesItsCase(t *testing.T) {
	d := adaptertest.NewDelivery(adapters.Target{Channel: "webhook"})
	d.CaseID = "01a2504d-5971-776e-a84e-14343c8923e3"
	n := buildNotification("https://gw.example", d)
	if s := n.Submissions[0]; s.CaseID != d.CaseID || s.SubmissionID != d.SubmissionID {
		t.Errorf("submissions[0] = %+v, want caseId %s for submission %s", s, d.CaseID, d.SubmissionID)
	}
}
