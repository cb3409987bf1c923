package xta

import (
	"bytes"
	"net/http"
	"slices"
	"testing"

	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// wsaHeader is a WS-Addressing Action and MessageID header.
func wsaHeader(action, messageID string) string {
	return `
      <wsa:Action xmlns:wsa="` + NSWSA + `">` + action + `</wsa:Action>
      <wsa:MessageID xmlns:wsa="` + NSWSA + `">` + messageID + `</wsa:MessageID>`
}

// TestActionMismatchIsRefused: a message whose wsa:Action differs from the action
// its transport names (the Content-Type action parameter, a SOAPAction header) is
// refused with WS-Addressing's ActionMismatch fault, and nothing is done. The
// service used to run the transport's action: a close sent with wsa:Action
// getMessage confirmed the message.
func TestActionMismatchIsRefused(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	sub := e.submit(t, officeA, pkgBytes(300))
	xtaID := MessageID("amtsbote", sub.ID)
	c := e.client("office-a")
	rec := e.base + PathRecipient
	const mid = "urn:uuid:6f1c2d3e-0000-4000-8000-00000000a001"
	getMessage, closeAction := Action(portRecipient, "getMessage"), Action(portRecipient, "close")

	for _, tc := range []struct {
		name, ct, soapAction string
	}{
		{"Content-Type action", soapContentType(closeAction), ""},
		{"SOAPAction header", soapContentType(""), `"` + closeAction + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, rec, bytes.NewReader(soapUIRequest(xtaA, wsaHeader(getMessage, mid), fetchBody(xtaID))))
			req.Header.Set("Content-Type", tc.ct)
			if tc.soapAction != "" {
				req.Header.Set("SOAPAction", tc.soapAction)
			}
			r := do(t, c, req)
			if r.status != http.StatusBadRequest || r.text("//Fault/Code/Value") != "env:Sender" ||
				r.text("//Fault/Code/Subcode/Value") != "wsa:InvalidAddressingHeader" ||
				r.text("//Fault/Code/Subcode/Subcode/Value") != "wsa:ActionMismatch" {
				t.Fatalf("HTTP %d, want 400 env:Sender/wsa:InvalidAddressingHeader/wsa:ActionMismatch\n%s", r.status, r.root)
			}
			if r.text("//Fault/Detail/ProblemAction/Action") != getMessage || r.text("//Fault/Detail/ProblemAction/SoapAction") != closeAction {
				t.Errorf("ProblemAction does not name both actions:\n%s", r.root)
			}
			if r.text("//Header/Action") != NSWSA+"/fault" || r.text("//Header/RelatesTo") != mid {
				t.Errorf("the fault's WS-Addressing headers: Action %q, RelatesTo %q", r.text("//Header/Action"), r.text("//Header/RelatesTo"))
			}
			v.AddMessage(tc.name, r.root, r.parts)
		})
	}
	// Neither operation ran: the message is neither confirmed nor fetched.
	if s := e.wait(t, sub.ID, submission.StateHandedOver); s.DeliveredAt != nil || s.FetchedAt != nil {
		t.Fatalf("a refused request changed the message: delivered %v, fetched %v", s.DeliveredAt, s.FetchedAt)
	}
	// Where they agree, the request is served.
	req, _ := http.NewRequest(http.MethodPost, rec, bytes.NewReader(soapUIRequest(xtaA, wsaHeader(getMessage, mid), fetchBody(xtaID))))
	req.Header.Set("Content-Type", soapContentType(getMessage))
	req.Header.Set("SOAPAction", getMessage)
	r := do(t, c, req)
	mustOK(t, "getMessage with agreeing actions", r)
	v.AddMessage("agreeing", r.root, r.parts)
	v.Run()
}

// listed asks getStatusList with the given MessageSelector content and returns the
// XTAMessageIDs listed.
func listed(t *testing.T, v *xtatest.Validator, e *env, name, selector string) []string {
	t.Helper()
	r := post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "getStatusList"),
		soapUIRequest(xtaA, "", `<ns:MessageSelector>`+selector+`</ns:MessageSelector>`))
	mustOK(t, name, r)
	v.AddMessage(name, r.root, r.parts)
	return texts(r, "//MessageStatusList/MessageMetaData/XTAMessageID")
}

// TestNewEntryAbsentMeansNewOnly: OtherCriteria without NewEntry selects only new
// messages (without InitialFetch), as the schema's documentation of NewEntry says;
// it used to be read as NewEntry=false and listed fetched messages too.
func TestNewEntryAbsentMeansNewOnly(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	fetched := e.submit(t, officeA, pkgBytes(300))
	fresh := e.submit(t, officeA, pkgBytes(400))
	mustOK(t, "getMessage", post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "getMessage"),
		soapUIRequest(xtaA, "", fetchBody(MessageID("amtsbote", fetched.ID)))))
	only := []string{MessageID("amtsbote", fresh.ID)}
	both := []string{MessageID("amtsbote", fetched.ID), MessageID("amtsbote", fresh.ID)}
	for _, tc := range []struct {
		name, criteria string
		want           []string
	}{
		{"no NewEntry", `<ns:OtherCriteria><ns:MaxMessages>10</ns:MaxMessages></ns:OtherCriteria>`, only},
		{"empty OtherCriteria", `<ns:OtherCriteria/>`, only},
		{"NewEntry true", `<ns:OtherCriteria><ns:NewEntry>true</ns:NewEntry></ns:OtherCriteria>`, only},
		{"NewEntry false", `<ns:OtherCriteria><ns:NewEntry> false </ns:NewEntry></ns:OtherCriteria>`, both},
		{"NewEntry 0", `<ns:OtherCriteria><ns:NewEntry>0</ns:NewEntry></ns:OtherCriteria>`, both},
	} {
		if got := listed(t, v, e, tc.name, tc.criteria); !slices.Equal(got, tc.want) {
			t.Errorf("%s: listed %v, want %v", tc.name, got, tc.want)
		}
	}
	v.Run()
}

// TestStatusListByRepeatedIDs: an XTAMessageID asked for twice is listed once. It
// was listed twice, with the same xs:ID values twice in one document, which the
// schema refuses (the xmllint check below).
func TestStatusListByRepeatedIDs(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	a := MessageID("amtsbote", e.submit(t, officeA, pkgBytes(300)).ID)
	b := MessageID("amtsbote", e.submit(t, officeA, pkgBytes(400)).ID)
	got := listed(t, v, e, "repeated ids", `<ns:XTAMessageIDs>
         <ns:XTAMessageID id="s1">`+a+`</ns:XTAMessageID>
         <ns:XTAMessageID id="s2">`+b+`</ns:XTAMessageID>
         <ns:XTAMessageID id="s3"> `+a+` </ns:XTAMessageID>
         <ns:XTAMessageID id="s4">`+b+`</ns:XTAMessageID>
      </ns:XTAMessageIDs>`)
	if want := []string{a, b}; !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	v.Run()
}
