package wire

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestPaths pins every path: portals and offices have them in their code.
func TestPaths(t *testing.T) {
	const id = "0190f1c2-7d1e-7cc3-9c52-3a7c1f0e5b21"
	tests := []struct{ got, want string }{
		{SubmissionsPath, "/v1/submissions"},
		{SubmissionPath(id), "/v1/submissions/" + id},
		{ReceiptPath(id, ReceiptEingang), "/v1/submissions/" + id + "/receipts/eingang"},
		{ReceiptPath(id, ReceiptZustellung), "/v1/submissions/" + id + "/receipts/zustellung"},
		{OfficeSubmissionsPath, "/v1/office/submissions"},
		{OfficeSubmissionPath(id), "/v1/office/submissions/" + id},
		{OfficePackagePath(id), "/v1/office/submissions/" + id + "/package"},
		{OfficeAttachmentPath(id, "anlage-1"), "/v1/office/submissions/" + id + "/attachments/anlage-1"},
		{OfficeDecisionPath(id, OutcomeAccepted), "/v1/office/submissions/" + id + "/accept"},
		{OfficeDecisionPath(id, OutcomeRejected), "/v1/office/submissions/" + id + "/reject"},
		{OfficeDecisionPath(id, "maybe"), ""},
		{OfficeReceiptPath(id, ReceiptZustellung), "/v1/office/submissions/" + id + "/receipts/zustellung"},
		{OfficeRepliesPath(id), "/v1/office/submissions/" + id + "/replies"},
		{OfficeReplyPostPath(id, ReplyBescheid), "/v1/office/submissions/" + id + "/replies?kind=Bescheid"},
		{OfficeReplyPostPath(id, "Rückfrage 2"), "/v1/office/submissions/" + id + "/replies?kind=R%C3%BCckfrage+2"},
		{OfficeReplyPath(id, "r/1"), "/v1/office/submissions/" + id + "/replies/r%2F1"},
		{OfficeListPath(id, 50, ""), "/v1/office/submissions?after=" + id + "&limit=50"},
		{OfficeListPath(id, 50, "queued,held"), "/v1/office/submissions?after=" + id + "&limit=50&state=queued%2Cheld"},
		{OfficeListPath("", 0, ""), "/v1/office/submissions"},
		{OfficeAwaitingDecisionPath("", 0, ""), "/v1/office/submissions?awaiting=decision"},
		{OfficeAwaitingDecisionPath(id, 50, "api,webhook"), "/v1/office/submissions?after=" + id + "&awaiting=decision&deliveredVia=api%2Cwebhook&limit=50"},
		{AdminSubmissionPath(id), "/v1/admin/submissions/" + id},
		{AdminRedeliverPath(id), "/v1/admin/submissions/" + id + "/redeliver"},
		// Ids are path-escaped: a slash or question mark cannot change the route.
		{OfficeAttachmentPath("a/b?c", "x y"), "/v1/office/submissions/a%2Fb%3Fc/attachments/x%20y"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func keys(t *testing.T, v any) []string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestFieldNames pins the JSON member names (with every optional member set).
func TestFieldNames(t *testing.T) {
	now := time.Now()
	ev := Event{Seq: 1, SubmissionID: "s", At: now, Type: "delivered", Channel: "webhook", Attempt: 1, Actor: "office x", Detail: "d"}
	if got, want := keys(t, ev), []string{"actor", "at", "attempt", "channel", "detail", "seq", "submissionId", "type"}; !reflect.DeepEqual(got, want) {
		t.Errorf("event members %v, want %v", got, want)
	}
	if got := keys(t, Event{}); slices.Contains(got, "actor") {
		t.Error("actor must be omitted when empty")
	}
	sv := StatusView{DeliveredAt: &now, Decision: &Decision{Outcome: OutcomeAccepted, Reason: "r", At: now, Actor: "a"}}
	status := []string{"caseId", "decision", "deliveredAt", "events", "id", "leikaKey", "links", "messageId", "office", "place", "receivedAt", "service", "state"}
	if got := keys(t, sv); !reflect.DeepEqual(got, status) {
		t.Errorf("status members %v, want %v", got, status)
	}
	office := append(slices.Clone(status), "attachments", "deliveryId", "destinationId", "packageSha256", "packageSize", "sender", "submissionId")
	slices.Sort(office)
	if got := keys(t, OfficeSubmission{StatusView: sv}); !reflect.DeepEqual(got, office) {
		t.Errorf("office members %v, want %v", got, office)
	}
	taken := append(slices.Clone(office), "takenOver")
	slices.Sort(taken)
	if got := keys(t, OfficeSubmission{StatusView: sv, TakenOver: &TakenOver{At: now, From: "api"}}); !reflect.DeepEqual(got, taken) {
		t.Errorf("members of a case taken over %v, want %v", got, taken)
	}
	if got, want := keys(t, TakenOver{}), []string{"at", "from"}; !reflect.DeepEqual(got, want) {
		t.Errorf("takenOver members %v, want %v", got, want)
	}
	if got, want := keys(t, Decision{Outcome: "x", Reason: "r", At: now, Actor: "a"}), []string{"actor", "at", "outcome", "reason"}; !reflect.DeepEqual(got, want) {
		t.Errorf("decision members %v, want %v", got, want)
	}
	if got, want := keys(t, Attachment{}), []string{"fileName", "id", "mimeType", "sha256", "size"}; !reflect.DeepEqual(got, want) {
		t.Errorf("attachment members %v, want %v", got, want)
	}
	if got, want := keys(t, OfficeList{Next: "n"}), []string{"count", "next", "submissions"}; !reflect.DeepEqual(got, want) {
		t.Errorf("list members %v, want %v", got, want)
	}
	if b, _ := json.Marshal(DecisionRequest{}); string(b) != `{}` {
		t.Errorf("empty decision body %s", b)
	}
	// An office view decodes with its embedded status members.
	var os OfficeSubmission
	if err := json.Unmarshal([]byte(`{"id":"s","state":"handed_over","deliveryId":"d"}`), &os); err != nil || os.ID != "s" || os.State != StateHandedOver || os.DeliveryID != "d" {
		t.Errorf("decode: %v %+v", err, os)
	}
}

func TestStates(t *testing.T) {
	final := 0
	for _, s := range States() {
		if s.Final() {
			final++
		}
	}
	if final != 2 || !StateAccepted.Final() || !StateRejected.Final() {
		t.Errorf("final states wrong")
	}
}
