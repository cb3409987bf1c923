package xta

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// TestAddressedRequestWithoutMessageIDGetsAddressedAnswer: a request that uses
// WS-Addressing (the WSDL's policy asks for it) but sends no wsa:MessageID —
// wsa:Action alone, or with wsa:To, as hand-built clients and SoapUI's WS-A tab
// without "generate MessageID" send — got an answer without any WS-Addressing
// header, answer and fault alike: a stack that reads the answer's addressing
// properties (Axis2's AddressingInHandler, for one) refused it with
// "a required header representing a Message Addressing Property is not
// present". The answer carries them now as WS-Addressing 1.0 (Core 3.4) has a
// reply's: the wsa:Action of the WSDL's output or fault, a wsa:MessageID of its
// own, and wsa:RelatesTo only to a request that had an id to relate to. A
// request without any WS-Addressing header still gets an answer without any.
func TestAddressedRequestWithoutMessageIDGetsAddressedAnswer(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	c := e.client("office-a")
	unknown := NewMessageID("amtsbote")
	wsa := func(name, value string) string {
		return `<wsa:` + name + ` xmlns:wsa="` + NSWSA + `">` + value + `</wsa:` + name + `>`
	}
	checkAccount := Action(portTransportBase, "checkAccountActive")
	getMessage := Action(portRecipient, "getMessage")
	for _, tc := range []struct {
		name, path, port, op, header, body string
		wantAction                         string // the answer's wsa:Action; "": no WS-Addressing headers
		wantStatus                         int
	}{
		{"answer to Action only", PathTransportBase, portTransportBase, "checkAccountActive",
			wsa("Action", checkAccount), "", checkAccount + "Response", http.StatusOK},
		{"answer to Action and To", PathTransportBase, portTransportBase, "checkAccountActive",
			wsa("Action", checkAccount) + wsa("To", "https://gateway.example"+PathTransportBase), "", checkAccount + "Response", http.StatusOK},
		{"answer to To only", PathTransportBase, portTransportBase, "checkAccountActive",
			wsa("To", "https://gateway.example"+PathTransportBase), "", checkAccount + "Response", http.StatusOK},
		{"answer with a header of its own, to Action only", PathRecipient, portRecipient, "getStatusList",
			wsa("Action", Action(portRecipient, "getStatusList")), statusListBody(false, 5, time.Time{}, time.Time{}), Action(portRecipient, "getStatusListResponse"), http.StatusOK},
		{"fault to Action only", PathRecipient, portRecipient, "getMessage",
			wsa("Action", getMessage), fetchBody(unknown), Action(portRecipient, string(InvalidMessageID)), http.StatusBadRequest},
		{"fault to Action and To", PathRecipient, portRecipient, "getMessage",
			wsa("Action", getMessage) + wsa("To", "https://gateway.example"+PathRecipient), fetchBody(unknown), Action(portRecipient, string(InvalidMessageID)), http.StatusBadRequest},
		{"WS-Addressing fault to Action only", PathRecipient, portRecipient, "close",
			wsa("Action", getMessage), fetchBody(unknown), ActionFaultWSA, http.StatusBadRequest},
		{"WS-Addressing fault to a ReplyTo of its own without MessageID", PathRecipient, portRecipient, "getMessage",
			wsa("Action", getMessage) + `<wsa:ReplyTo xmlns:wsa="` + NSWSA + `"><wsa:Address>https://fv.example/cb</wsa:Address></wsa:ReplyTo>`, fetchBody(unknown), ActionFaultWSA, http.StatusBadRequest},
		{"WS-Addressing fault to wsa:Action twice", PathRecipient, portRecipient, "getMessage",
			wsa("Action", getMessage) + wsa("Action", getMessage), fetchBody(unknown), ActionFaultWSA, http.StatusBadRequest},
		{"answer without WS-Addressing", PathTransportBase, portTransportBase, "checkAccountActive", "", "", "", http.StatusOK},
		{"fault without WS-Addressing", PathRecipient, portRecipient, "getMessage", "", fetchBody(unknown), "", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, c, e.base+tc.path, actionCT(tc.port, tc.op), soapUIRequest(xtaA, tc.header, tc.body))
			v.AddMessage(tc.name, r.root, r.parts)
			if r.status != tc.wantStatus {
				t.Fatalf("HTTP %d, want %d\n%s", r.status, tc.wantStatus, r.root)
			}
			if tc.wantAction == "" {
				if r.doc.FindElement("//Header/Action") != nil || r.doc.FindElement("//Header/MessageID") != nil {
					t.Errorf("WS-Addressing headers in the answer to a request without any:\n%s", r.root)
				}
				return
			}
			if got := r.text("//Header/Action"); got != tc.wantAction {
				t.Errorf("wsa:Action %q, want %q\n%s", got, tc.wantAction, r.root)
			}
			if id := r.text("//Header/MessageID"); !strings.HasPrefix(id, "urn:uuid:") {
				t.Errorf("wsa:MessageID %q, want an id of the answer's own\n%s", id, r.root)
			}
			if r.doc.FindElement("//Header/RelatesTo") != nil {
				t.Errorf("wsa:RelatesTo in the answer to a request without wsa:MessageID:\n%s", r.root)
			}
		})
	}
	v.Run()
}
