package xta

import (
	"net/http"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// TestSenderFaultStatusIs500WhereConfigured: with Options.SenderFaultStatus
// 500 (config xta.sender_fault_status) every env:Sender fault goes out with
// HTTP 500, the status the clients of WCF and CXF read a fault's body from
// (WCF's throws "unexpected response: (400) Bad Request" for any other, CXF's
// HTTPConduit an HTTPException unless process_fault_on_http_400 is set): such
// a Fachverfahren saw a transport error instead of the exception the WSDL
// declares. Without the setting the same faults keep SOAP 1.2's 400. The
// fault's code says whose it is either way, and every answer is valid.
func TestSenderFaultStatusIs500WhereConfigured(t *testing.T) {
	for _, want := range []int{http.StatusBadRequest, http.StatusInternalServerError} {
		t.Run(http.StatusText(want), func(t *testing.T) { senderFaultsWith(t, want) })
	}
}

func senderFaultsWith(t *testing.T, want int) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, func(o *Options) {
		if want != http.StatusBadRequest {
			o.SenderFaultStatus = want
		}
	})
	unknown := NewMessageID("amtsbote")
	getMessage := actionCT(portRecipient, "getMessage")
	for _, tc := range []struct {
		name, client, path, ct string
		body                   []byte
		code, subcode, exc     string // exc: the Detail's element (WS-Addressing's for its faults)
	}{
		{"an XTA exception of the operation", "office-a", PathRecipient, getMessage,
			soapUIRequest(xtaA, "", fetchBody(unknown)), "env:Sender", "", string(InvalidMessageID)},
		{"a reply refused", "office-a", PathSender, actionCT(portSender, "sendMessage"),
			soapUIRequest(xtaA, replyHeader(NewMessageID("x"), xtaA, unknown, "Bescheid"), `<ns:ContentContainer><ns:Message id="m">QQ==</ns:Message></ns:ContentContainer>`),
			"env:Sender", "", string(ParameterIsNotValid)},
		{"a caller without an account", "stranger", PathRecipient, getMessage,
			soapUIRequest(xtaA, "", fetchBody(unknown)), "env:Sender", "", string(PermissionDenied)},
		{"no SOAP message", "office-a", PathRecipient, getMessage, []byte("hello"), "env:Sender", "", string(ParameterIsNotValid)},
		{"a path that is no port", "office-a", "/services/XTACore/Reader", getMessage,
			soapUIRequest(xtaA, "", fetchBody(unknown)), "env:Sender", "", string(NotImplemented)},
		{"a WS-Addressing fault", "office-a", PathRecipient, actionCT(portRecipient, "close"),
			soapUIRequest(xtaA, wsaHeader(Action(portRecipient, "getMessage"), "urn:uuid:6f1c2d3e-0000-4000-8000-00000000c001"), fetchBody(unknown)),
			"env:Sender", "wsa:InvalidAddressingHeader", "ProblemAction"},
		{"a WS-Addressing header twice", "office-a", PathRecipient, getMessage,
			soapUIRequest(xtaA, wsaHeader(Action(portRecipient, "getMessage"), "urn:uuid:1")+wsaHeader(Action(portRecipient, "getMessage"), "urn:uuid:2"), fetchBody(unknown)),
			"env:Sender", "wsa:InvalidAddressingHeader", "ProblemHeaderQName"},
		{"a ReplyTo of its own", "office-a", PathRecipient, getMessage,
			soapUIRequest(xtaA, `<wsa:ReplyTo xmlns:wsa="`+NSWSA+`"><wsa:Address>https://fv.example/cb</wsa:Address></wsa:ReplyTo>`, fetchBody(unknown)),
			"env:Sender", "wsa:InvalidAddressingHeader", "ProblemHeaderQName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, e.client(tc.client), e.base+tc.path, tc.ct, tc.body)
			code, exc := r.fault()
			if r.status != want || !strings.HasPrefix(r.ct, "application/soap+xml") {
				t.Errorf("HTTP %d %s, want %d application/soap+xml", r.status, r.ct, want)
			}
			if code != tc.code || exc != tc.exc || r.text("//Fault/Code/Subcode/Value") != tc.subcode {
				t.Errorf("fault %s / %q / %s, want %s / %q / %s\n%s", code, r.text("//Fault/Code/Subcode/Value"), exc, tc.code, tc.subcode, tc.exc, r.root)
			}
			if tc.subcode == "" {
				v.AddMessage(tc.name, r.root, r.parts)
			}
		})
	}
	v.Run()
}

// TestSenderFaultStatusIsOnly400Or500: any other status is refused when the
// server is made, not sent to a client that would not know it.
func TestSenderFaultStatusIsOnly400Or500(t *testing.T) {
	for _, st := range []int{200, 422, 503} {
		if _, err := NewServer(Options{Desk: emptyDesk{}, Offices: anyOffice{}, AuthorID: gatewayID, Logger: discardLogger(), SenderFaultStatus: st}); err == nil || !strings.Contains(err.Error(), "SenderFaultStatus") {
			t.Errorf("SenderFaultStatus %d: %v, want refused", st, err)
		}
	}
}
