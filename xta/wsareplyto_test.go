package xta

import (
	"net/http"
	"testing"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// TestNonAnonymousReplyToIsRefused: the WSDL's policy asks for
// wsam:AnonymousResponses — answers go back on the request's connection. A
// request whose wsa:ReplyTo or wsa:FaultTo names an address of its own (a
// client set up with a decoupled endpoint) was served and answered on the
// connection all the same, while such a client waits for the answer at its
// endpoint and takes the call for failed: a close carried out, reported as
// lost. It is refused now, before anything is done, with WS-Addressing's
// fault for it (env:Sender, wsa:InvalidAddressingHeader /
// wsa:OnlyAnonymousAddressSupported, the header in wsa:ProblemHeaderQName,
// HTTP 400). The anonymous address and none (no answer wanted) are served;
// either header twice is WS-Addressing's InvalidCardinality.
func TestNonAnonymousReplyToIsRefused(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	sub := e.submit(t, officeA, pkgBytes(300))
	xtaID := MessageID("amtsbote", sub.ID)
	closeAction := Action(portRecipient, "close")
	const mid = "urn:uuid:6f1c2d3e-0000-4000-8000-00000000b001"
	epr := func(name, address string) string {
		return `<wsa:` + name + ` xmlns:wsa="` + NSWSA + `"><wsa:Address>` + address + `</wsa:Address></wsa:` + name + `>`
	}
	for _, hdr := range []string{"ReplyTo", "FaultTo"} {
		r := post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "close"),
			soapUIRequest(xtaA, wsaHeader(closeAction, mid)+epr(hdr, "https://fv.example/xta/callback"), fetchBody(xtaID)))
		v.AddMessage(hdr+" of its own", r.root, r.parts)
		if r.status != http.StatusBadRequest || r.text("//Fault/Code/Value") != "env:Sender" ||
			r.text("//Fault/Code/Subcode/Value") != "wsa:InvalidAddressingHeader" ||
			r.text("//Fault/Code/Subcode/Subcode/Value") != "wsa:OnlyAnonymousAddressSupported" ||
			r.text("//Fault/Detail/ProblemHeaderQName") != "wsa:"+hdr || r.text("//Header/RelatesTo") != mid {
			t.Errorf("close with a wsa:%s of its own: HTTP %d, want 400 wsa:OnlyAnonymousAddressSupported naming wsa:%s, related to the request\n%s", hdr, r.status, hdr, r.root)
		}
	}
	// A response endpoint given twice: which one would the answer go to?
	r := post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "close"),
		soapUIRequest(xtaA, wsaHeader(closeAction, mid)+epr("ReplyTo", AddressAnonymous)+epr("ReplyTo", AddressAnonymous), fetchBody(xtaID)))
	v.AddMessage("ReplyTo twice", r.root, r.parts)
	if r.status != http.StatusBadRequest || r.text("//Fault/Code/Subcode/Subcode/Value") != "wsa:InvalidCardinality" || r.text("//Fault/Detail/ProblemHeaderQName") != "wsa:ReplyTo" {
		t.Errorf("close with wsa:ReplyTo twice: HTTP %d, want 400 wsa:InvalidCardinality naming wsa:ReplyTo\n%s", r.status, r.root)
	}
	if s := e.wait(t, sub.ID, submission.StateHandedOver); s.DeliveredAt != nil {
		t.Fatalf("a refused close was carried out: delivered %v", s.DeliveredAt)
	}
	for _, address := range []string{AddressNone, AddressAnonymous} {
		r := post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "close"),
			soapUIRequest(xtaA, wsaHeader(closeAction, mid)+epr("ReplyTo", address)+epr("FaultTo", address), fetchBody(xtaID)))
		mustOK(t, "close with ReplyTo "+address, r)
		v.AddMessage("ReplyTo "+address, r.root, r.parts)
	}
	if s, _ := e.b.Submission(sub.ID); s.DeliveredVia != channel.XTA {
		t.Errorf("the close with an anonymous ReplyTo was not carried out: delivered via %q", s.DeliveredVia)
	}
	v.Run()
}
