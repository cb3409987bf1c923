package xta

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// TestErasedMessageLeavesTheBox: an operator erases the bytes of a case that waits
// in the office's message box (docs/operations.md, erasure on request). The
// message could not be fetched any more, but it stayed in getStatusList, and
// getMessage answered TechnicalProblemException with HTTP 500 ("internal error",
// logged as a desk error): the Fachverfahren, told to try again later, listed and
// fetched it on every poll, for ever. Now it is no longer listed, and getMessage
// answers InvalidMessageIDException (env:Sender), as for a message that is not
// there; its transport report stays.
func TestErasedMessageLeavesTheBox(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	erased := e.submit(t, officeA, pkgBytes(300), []byte("%PDF-1.7 Anlage"))
	kept := e.submit(t, officeA, pkgBytes(400))
	if _, err := e.b.Erase(context.Background(), erased.ID, "operator", "request of the applicant"); err != nil {
		t.Fatal(err)
	}
	erasedID, keptID := MessageID("amtsbote", erased.ID), MessageID("amtsbote", kept.ID)
	for _, tc := range []struct{ name, selector string }{
		{"new entries", `<ns:OtherCriteria><ns:NewEntry>true</ns:NewEntry></ns:OtherCriteria>`},
		{"every entry", `<ns:OtherCriteria><ns:NewEntry>false</ns:NewEntry></ns:OtherCriteria>`},
		{"by id", `<ns:XTAMessageIDs><ns:XTAMessageID>` + erasedID + `</ns:XTAMessageID><ns:XTAMessageID>` + keptID + `</ns:XTAMessageID></ns:XTAMessageIDs>`},
	} {
		if got := listed(t, v, e, tc.name, tc.selector); !slices.Equal(got, []string{keptID}) {
			t.Errorf("getStatusList (%s) lists %v, want only %s", tc.name, got, keptID)
		}
	}
	r := post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "getMessage"), soapUIRequest(xtaA, "", fetchBody(erasedID)))
	v.AddMessage("getMessage of an erased message", r.root, r.parts)
	if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(InvalidMessageID) {
		t.Errorf("getMessage of an erased message: HTTP %d %s %s, want 400 env:Sender InvalidMessageIDException\n%s", r.status, code, exc, r.root)
	}
	r = post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "getMessage"), soapUIRequest(xtaA, "", fetchBody(keptID)))
	mustOK(t, "getMessage of the other message", r)
	if got := r.text("//MessageBoxStatus/MessagesRemaining/MessagesPending"); got != "0" {
		t.Errorf("getMessage of the other message: MessagesPending %q, want 0 (the erased message is not waiting)", got)
	}
	v.AddMessage("getMessage of the other message", r.root, r.parts)
	r = post(t, e.client("office-a"), e.base+PathTransportBase, actionCT(portTransportBase, "getTransportReport"),
		soapUIRequest(xtaA, "", `<ns:XTAMessageID id="q">`+erasedID+`</ns:XTAMessageID>`))
	mustOK(t, "getTransportReport of the erased message", r)
	v.AddMessage("getTransportReport of the erased message", r.root, r.parts)
	// Closing the erased message, never fetched, would record a delivery (and sign
	// a Zustellbestaetigung) for bytes no office had.
	r = post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "close"), soapUIRequest(xtaA, "", fetchBody(erasedID)))
	v.AddMessage("close of an erased message", r.root, r.parts)
	if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(InvalidMessageID) {
		t.Errorf("close of an erased message never fetched: HTTP %d %s %s, want 400 env:Sender InvalidMessageIDException\n%s", r.status, code, exc, r.root)
	}
	if s, err := e.b.Submission(erased.ID); err != nil || s.DeliveredAt != nil {
		t.Errorf("the erased message was recorded as delivered: %+v %v", s, err)
	}
	v.Run()
}

// TestReplyToAnErasedCaseIsAParameterFault: a reply (sendMessage) to a case whose
// content an operator erased is refused — nobody could read it — and nothing is
// stored. It was refused with InvalidMessageIDException, which the WSDL does not
// declare for sendMessage (a client generated from it may not know the fault);
// the case the reply names is a parameter no longer valid, as for a case a clerk
// took over (TestTakenOverCaseTakesNoReply).
func TestReplyToAnErasedCaseIsAParameterFault(t *testing.T) {
	ctx := context.Background()
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	s := e.submit(t, officeA, pkgBytes(300))
	if _, err := e.b.Confirm(ctx, officeA, s.ID, broker.Pickup{Channel: channel.XTA, Receiver: "office-a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Erase(ctx, s.ID, "operator", "request of the applicant"); err != nil {
		t.Fatal(err)
	}
	r := sendReply(t, e, NewMessageID("office-a-fv"), MessageID("amtsbote", s.ID))
	v.AddMessage("sendMessage to an erased case", r.root, r.parts)
	if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(ParameterIsNotValid) {
		t.Errorf("sendMessage to an erased case: HTTP %d %s %s, want 400 env:Sender ParameterIsNotValidException\n%s", r.status, code, exc, r.root)
	}
	if got, _ := e.b.Submission(s.ID); len(got.Replies) != 0 {
		t.Errorf("the refused reply was stored: %+v", got.Replies)
	}
	v.Run()
}
