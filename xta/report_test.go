package xta

import (
	"context"
	"net/http"
	"testing"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// TestTransportReportStatusIsTheSchemas: MessageStatus/Status is the traffic
// light XTA-Webservice-Datentypen.xsd documents — 0 open (under way), 1 green,
// 2 yellow (warnings), 3 red (critical errors). The gateway wrote 0 for a
// message delivered and 1 for one waiting: a Fachverfahren reading its report
// by the schema waited for ever on a message it had closed, and took one in
// its box for done. Now: waiting 0, closed 1, a reply stored 1, a message a
// clerk took over 2 (the office has it, the reader does not; the property
// amtsbote:takenOver says why), handed to another gateway 3.
func TestTransportReportStatusIsTheSchemas(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	ctx := context.Background()
	closed, taken := e.submit(t, officeA, pkgBytes(300)), e.submit(t, officeA, pkgBytes(400))
	report := func(name, xtaID, want string) *soapResp {
		t.Helper()
		r := post(t, e.client("office-a"), e.base+PathTransportBase, actionCT(portTransportBase, "getTransportReport"),
			soapUIRequest(xtaA, "", "<ns:XTAMessageID id=\"q\">"+xtaID+"</ns:XTAMessageID>"))
		mustOK(t, name, r)
		v.AddMessage(name, r.root, r.parts)
		if got := r.text("//TransportReport/MessageStatus/Status"); got != want {
			t.Errorf("%s: Status %q, want %s", name, got, want)
		}
		return r
	}
	report("waiting", MessageID("amtsbote", closed.ID), "0")
	mustOK(t, "close", post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "close"),
		soapUIRequest(xtaA, "", fetchBody(MessageID("amtsbote", closed.ID)))))
	if r := report("closed", MessageID("amtsbote", closed.ID), "1"); r.text("//TransportReport/MessageMetaData/DeliveryAttributes/Reception") == "" {
		t.Errorf("the report of a closed message has no Reception")
	}
	replyID := NewMessageID("office-a-fv")
	mustOK(t, "sendMessage", sendReply(t, e, replyID, MessageID("amtsbote", closed.ID)))
	report("a reply", replyID, "1")

	if _, err := e.b.Confirm(ctx, officeA, taken.ID, broker.Pickup{Channel: channel.Mailbox, Receiver: "anna (Behördenpostfach)"}); err != nil {
		t.Fatal(err)
	}
	r := report("taken over", MessageID("amtsbote", taken.ID), "2")
	if !hasProperty(r, "amtsbote:takenOver", "true") {
		t.Errorf("the report of a message taken over does not say so:\n%s", r.root)
	}
	if got := reportStatus(&submission.Submission{State: submission.StateForwarded}); got != StatusFailed || StatusFailed != 3 {
		t.Errorf("a message handed to another gateway: Status %d, want 3 (red)", got)
	}
	if r.status != http.StatusOK {
		t.Fatal(r.status)
	}
	v.Run()
}

func hasProperty(r *soapResp, key, value string) bool {
	for _, p := range r.doc.FindElements("//MessageMetaData/MessageProperty") {
		if k, v := p.FindElement("Key"), p.FindElement("Value"); k != nil && v != nil && k.Text() == key && v.Text() == value {
			return true
		}
	}
	return false
}
