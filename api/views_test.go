package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

func sampleSubmission() (*submission.Submission, []submission.Event) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sub := &submission.Submission{ID: "0190f1c2-7d1e-7cc3-9c52-3a7c1f0e5b21", DeliveryID: "d1", MessageID: "m1", Sender: "amt24",
		LeikaKey: "99050012104000", ServiceName: "Gewerbe anmelden", Place: "Dresden", OfficeID: "dd", OfficeName: "Stadt Dresden",
		State: submission.StateHandedOver, ReceivedAt: now, DeliveredAt: &now, PackageSHA256: strings.Repeat("a", 64), PackageSize: 10,
		Attachments: []submission.Attachment{{ID: "anlage-1", FileName: "a.pdf", MimeType: "application/pdf", Size: 3, SHA256: strings.Repeat("b", 64)}},
		Decision:    &submission.Decision{Outcome: submission.OutcomeAccepted, At: now, Actor: "user anna"}}
	evs := []submission.Event{
		{Seq: 1, SubmissionID: sub.ID, At: now, Type: submission.EventAttemptFailed, Channel: "webhook", Attempt: 1,
			Detail: "office answered 500", Note: "SECRET stack trace of the office"},
		{Seq: 2, SubmissionID: sub.ID, At: now, Type: submission.EventHandedOver, Channel: "transfer", Actor: "office dd (pull API)"},
	}
	return sub, evs
}

// TestViewsCarryNoNotes: an event's note is for operators; neither the portal's nor
// the office's view has it, while the actor is shown.
func TestViewsCarryNoNotes(t *testing.T) {
	sub, evs := sampleSubmission()
	for name, v := range map[string]any{"portal": statusView(sub, evs), "office": officeView(sub, evs)} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "SECRET") || strings.Contains(string(b), `"note"`) {
			t.Errorf("%s view leaks the note: %s", name, b)
		}
		if !strings.Contains(string(b), `"actor":"office dd (pull API)"`) || !strings.Contains(string(b), `"state":"handed_over"`) {
			t.Errorf("%s view lacks actor or state: %s", name, b)
		}
	}
}

func TestViewLinks(t *testing.T) {
	sub, evs := sampleSubmission()
	id := sub.ID
	if got, want := statusView(sub, evs).Links, map[string]string{
		"receipt": "/v1/submissions/" + id + "/receipts/eingang", "deliveryReceipt": "/v1/submissions/" + id + "/receipts/zustellung",
	}; !mapsEqual(got, want) {
		t.Errorf("portal links %v", got)
	}
	o := "/v1/office/submissions/" + id
	if got, want := officeView(sub, evs).Links, map[string]string{
		"receipt": o + "/receipts/eingang", "deliveryReceipt": o + "/receipts/zustellung", "package": o + "/package",
		"accept": o + "/accept", "reject": o + "/reject", "attachment:anlage-1": o + "/attachments/anlage-1",
		"replies": o + "/replies", "followUps": "/v1/office/submissions?caseId=" + id,
	}; !mapsEqual(got, want) {
		t.Errorf("office links %v", got)
	}
	// A Nachreichung has no Nachreichungen of its own to link.
	n := *sub
	n.CaseID = "0190f1c2-0000-7000-8000-000000000001"
	if l, ok := officeView(&n, evs).Links["followUps"]; ok {
		t.Errorf("a Nachreichung's view links followUps %q", l)
	}
	sub.Attachments = nil
	if v := officeView(sub, nil); v.Attachments == nil || v.Events == nil {
		t.Error("attachments and events must be [] rather than null")
	}
}

// TestViewsListRepliesWithTheReadersLinks: the portal's view lists the
// office's replies with links to the portal's reads, the office's view with
// links to the office's own (it had none: an office's system could not see
// what it had sent).
func TestViewsListRepliesWithTheReadersLinks(t *testing.T) {
	sub, evs := sampleSubmission()
	sub.Replies = []submission.Reply{{ID: "r-1", Kind: "Bescheid", MessageID: "AZ-1", ContentType: "application/pdf", Size: 5,
		SHA256: strings.Repeat("c", 64), Channel: "api", Actor: "office dd (pull API)", At: sub.ReceivedAt}}
	want := wire.Reply{ID: "r-1", Kind: "Bescheid", ContentType: "application/pdf", Size: 5, SHA256: strings.Repeat("c", 64),
		Channel: "api", At: sub.ReceivedAt}
	for name, tc := range map[string]struct {
		got  []wire.Reply
		link string
	}{
		"portal": {statusView(sub, evs).Replies, "/v1/submissions/" + sub.ID + "/replies/r-1"},
		"office": {officeView(sub, evs).Replies, "/v1/office/submissions/" + sub.ID + "/replies/r-1"},
	} {
		w := want
		w.Link = tc.link
		if len(tc.got) != 1 || tc.got[0] != w {
			t.Errorf("the %s's view lists %+v, want %+v", name, tc.got, w)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestStatesInContract: every state of the model is a state of the wire contract and
// of api/openapi.yaml, and every event type of the model is in the contract's enum.
func TestStatesInContract(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	enum := func(s *openapi3.Schema) []string {
		var out []string
		for _, v := range s.Enum {
			out = append(out, v.(string))
		}
		return out
	}
	states := enum(doc.Components.Schemas["State"].Value)
	for _, st := range submission.States() {
		if !slices.Contains(wire.States(), stateOf(st)) {
			t.Errorf("state %s is not in package wire", st)
		}
		if !slices.Contains(states, string(st)) {
			t.Errorf("state %s is not in openapi.yaml", st)
		}
	}
	if len(wire.States()) != len(submission.States()) {
		t.Errorf("wire has %d states, the model %d", len(wire.States()), len(submission.States()))
	}
	types := enum(doc.Components.Schemas["Event"].Value.Properties["type"].Value)
	for _, typ := range []string{submission.EventReceived, submission.EventRouted, submission.EventQueued, submission.EventAttemptFailed,
		submission.EventChannelFailed, submission.EventFallback, submission.EventHandedOver, submission.EventDelivered,
		submission.EventHeld, submission.EventAccepted, submission.EventRejected, submission.EventRequeued} {
		if !slices.Contains(types, typ) {
			t.Errorf("event type %s is not in openapi.yaml", typ)
		}
	}
}
