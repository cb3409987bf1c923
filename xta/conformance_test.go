package xta

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/xta/xtaclient"
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

// TestDuplicateHeaderBlocksAreRefused: a header block the service reads, twice,
// is refused before anything is done — a WS-Addressing header with the binding's
// InvalidCardinality fault, an XTA header with ParameterIsNotValidException. The
// second block used to be merged into the first, field by field (or replaced
// it), so the service acted on a message nobody sent.
func TestDuplicateHeaderBlocksAreRefused(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	sub := e.submit(t, officeA, pkgBytes(300))
	xtaID := MessageID("amtsbote", sub.ID)
	c := e.client("office-a")
	getMessage := Action(portRecipient, "getMessage")
	const mid = "urn:uuid:6f1c2d3e-0000-4000-8000-00000000a002"
	party := xtaclient.PartyXML(xtaclient.Party{Identifier: xtaA, Scheme: "xoev", Name: "Bauaufsichtsamt Dresden", Directory: "DVDV"})

	r := post(t, c, e.base+PathRecipient, actionCT(portRecipient, "getMessage"),
		soapUIRequest(xtaA, wsaHeader(getMessage, mid)+`<wsa:Action xmlns:wsa="`+NSWSA+`">`+getMessage+`</wsa:Action>`, fetchBody(xtaID)))
	if r.status != http.StatusBadRequest || r.text("//Fault/Code/Subcode/Value") != "wsa:InvalidAddressingHeader" ||
		r.text("//Fault/Code/Subcode/Subcode/Value") != "wsa:InvalidCardinality" || r.text("//Fault/Detail/ProblemHeaderQName") != "wsa:Action" {
		t.Fatalf("wsa:Action twice: HTTP %d, want 400 wsa:InvalidAddressingHeader/wsa:InvalidCardinality naming wsa:Action\n%s", r.status, r.doc.Root().Tag+" "+r.text("//Fault/Reason/Text")+" "+r.text("//Fault/Code/Subcode/Value"))
	}
	v.AddMessage("wsa:Action twice", r.root, r.parts)

	r = post(t, c, e.base+PathRecipient, actionCT(portRecipient, "getMessage"), soapUIRequest(xtaA, party, fetchBody(xtaID)))
	if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(ParameterIsNotValid) {
		t.Fatalf("xta:Party twice: HTTP %d %s %s, want 400 env:Sender ParameterIsNotValidException\n%s", r.status, code, exc, r.root)
	}
	v.AddMessage("xta:Party twice", r.root, r.parts)

	if s := e.wait(t, sub.ID, submission.StateHandedOver); s.FetchedAt != nil {
		t.Fatalf("a refused request fetched the message at %v", s.FetchedAt)
	}
	v.Run()
}

// TestProcessingInstructionsAreRefused: SOAP 1.2 (part 1, 5) forbids processing
// instructions in a SOAP message, and a receiver SHOULD answer one with an
// env:Sender fault. encoding/xml skipped them without a word, so a message that
// relied on one (a stylesheet, an application's own instruction) was served as
// if it had none. The XML declaration is no processing instruction, and "<?" in
// a comment is text.
func TestProcessingInstructionsAreRefused(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	c := e.client("office-a")
	env := string(soapUIRequest(xtaA, "", statusListBody(false, 10, time.Time{}, time.Time{})))
	for _, tc := range []struct{ name, msg string }{
		{"in the prolog", `<?xml-stylesheet type="text/xsl" href="x.xsl"?>` + env},
		{"in the header", strings.Replace(env, "<soap:Header>", "<soap:Header><?app do-this?>", 1)},
		{"in the body", strings.Replace(env, "<soap:Body>", "<soap:Body><?app do-this?>", 1)},
		{"after the envelope", env + "<?app do-this?>"},
	} {
		r := post(t, c, e.base+PathRecipient, actionCT(portRecipient, "getStatusList"), []byte(tc.msg))
		if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(ParameterIsNotValid) {
			t.Fatalf("a processing instruction %s: HTTP %d %s %s, want 400 env:Sender ParameterIsNotValidException", tc.name, r.status, code, exc)
		}
		v.AddMessage(tc.name, r.root, r.parts)
	}
	ok := `<?xml version="1.0" encoding="UTF-8"?>` + strings.Replace(env, "<soap:Body>", "<soap:Body><!-- <?not an instruction?> -->", 1)
	mustOK(t, "the XML declaration and <? in a comment", post(t, c, e.base+PathRecipient, actionCT(portRecipient, "getStatusList"), []byte(ok)))
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

// sendReply sends a one-line Bescheid with the XTAMessageID replyID for the case
// caseXTAID.
func sendReply(t *testing.T, e *env, replyID, caseXTAID string) *soapResp {
	t.Helper()
	return post(t, e.client("office-a"), e.base+PathSender, actionCT(portSender, "sendMessage"),
		soapUIRequest(xtaA, replyHeader(replyID, xtaA, caseXTAID, "Bescheid"), `
      <ns:ContentContainer><ns:Message contentType="text/plain" filename="b.txt" id="m1">R2VuZWhtaWd0</ns:Message></ns:ContentContainer>`))
}

// TestReplyIDNamesOneMessage: an XTAMessageID of a reply names one message. A
// repeat for the same case stays idempotent; the same id for another case, or the
// id of an application, is refused (ParameterIsNotValidException, the fault the
// WSDL declares for sendMessage's parameters). The desk keeps reply ids apart per
// case only, so the id used to be stored again for the other case, and
// getTransportReport then reported whichever case it met first.
func TestReplyIDNamesOneMessage(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	ctx := context.Background()
	var cases []string
	for range 2 {
		sub := e.submit(t, officeA, pkgBytes(300))
		if _, err := e.b.Confirm(ctx, officeA, sub.ID, broker.Pickup{Channel: channel.XTA, Receiver: "test"}); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, sub.ID)
	}
	caseA, caseB := MessageID("amtsbote", cases[0]), MessageID("amtsbote", cases[1])
	replyID := NewMessageID("amtsbote")
	for i := range 2 {
		r := sendReply(t, e, replyID, caseA)
		mustOK(t, fmt.Sprintf("sendMessage %d for case A", i+1), r)
	}
	for _, tc := range []struct{ name, id, caseID string }{
		{"reply id again for case B", replyID, caseB},
		{"application id as reply id", caseA, caseB},
		{"own case's id as reply id", caseB, caseB},
	} {
		r := sendReply(t, e, tc.id, tc.caseID)
		if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(ParameterIsNotValid) {
			t.Fatalf("%s: HTTP %d %s %s, want 400 env:Sender ParameterIsNotValidException\n%s", tc.name, r.status, code, exc, r.root)
		}
		v.AddMessage(tc.name, r.root, r.parts)
	}
	// One id sent for both cases at the same time: one of them gets it.
	raced := NewMessageID("amtsbote")
	statuses := make(chan int, 2)
	for _, c := range []string{caseA, caseB} {
		go func() { statuses <- sendReply(t, e, raced, c).status }()
	}
	if s1, s2 := <-statuses, <-statuses; s1+s2 != http.StatusOK+http.StatusBadRequest {
		t.Errorf("one id sent for two cases at once: HTTP %d and %d, want one 200 and one 400", s1, s2)
	}
	a, _ := e.b.Submission(cases[0])
	b, _ := e.b.Submission(cases[1])
	if len(a.Replies)+len(b.Replies) != 2 || len(a.Replies) < 1 {
		t.Fatalf("replies: case A %d, case B %d; want 2 in all, one of them the repeated one on A", len(a.Replies), len(b.Replies))
	}
	r := post(t, e.client("office-a"), e.base+PathTransportBase, actionCT(portTransportBase, "getTransportReport"),
		soapUIRequest(xtaA, "", `<ns:XTAMessageID id="q">`+replyID+`</ns:XTAMessageID>`))
	mustOK(t, "getTransportReport", r)
	v.AddMessage("getTransportReport", r.root, r.parts)
	if got := r.text("//TransportReport/MessageMetaData/MessageProperty[Key='InReplyTo']/Value"); got != caseA {
		t.Errorf("the report of the reply names the case %q, want %q", got, caseA)
	}
	v.Run()
}

// TestReplyPartHeadersAreChecked: the contentType and filename attributes of a
// reply's content elements become the MIME part headers of the multipart/mixed
// bundle the portal reads. They went in unchecked: CR LF, which XML keeps as
// character references, ended the Content-Type header and began one of the
// office's own (the portal read harmlos.txt as evil.exe), a name ending in a
// backslash came out as no name, a quote was dropped and an umlaut went out as
// raw 8-bit header bytes. A contentType that is no media type, or a filename with
// control characters, is now refused with ParameterIsNotValidException and nothing
// is stored; any other name reaches a MIME reader as sent, but for a path before
// it (TestReplyFileNamesLoseTheirPaths).
func TestReplyPartHeadersAreChecked(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	ctx := context.Background()
	newCase := func(t *testing.T) string {
		sub := e.submit(t, officeA, pkgBytes(300))
		if _, err := e.b.Confirm(ctx, officeA, sub.ID, broker.Pickup{Channel: channel.XTA, Receiver: "test"}); err != nil {
			t.Fatal(err)
		}
		return sub.ID
	}
	send := func(t *testing.T, id, container string) *soapResp {
		return post(t, e.client("office-a"), e.base+PathSender, actionCT(portSender, "sendMessage"),
			soapUIRequest(xtaA, replyHeader(NewMessageID("amtsbote"), xtaA, MessageID("amtsbote", id), "Bescheid"), `
      <ns:ContentContainer>`+container+`</ns:ContentContainer>`))
	}
	msg := `<ns:Message contentType="text/plain" filename="b.txt" id="m1">R2VuZWhtaWd0</ns:Message>`
	att := func(id, contentType, filename string) string {
		return `<ns:Attachment contentType="` + contentType + `" filename="` + filename + `" id="` + id + `">eA==</ns:Attachment>`
	}

	t.Run("refused", func(t *testing.T) {
		id := newCase(t)
		for _, tc := range []struct{ name, container string }{
			{"CR LF in an attachment's contentType", msg + att("a1", `text/plain&#13;&#10;Content-Disposition: attachment; filename=&quot;evil.exe&quot;`, "harmlos.txt")},
			{"CR LF in the message's contentType", `<ns:Message contentType="text/plain&#13;&#10;X-Evil: 1" id="m1">R2VuZWhtaWd0</ns:Message>`},
			{"bidi override in a filename", msg + att("a1", "application/pdf", "Bescheid&#x202E;fdp.exe")},
			{"CR LF in a filename", msg + att("a1", "application/pdf", `a.pdf&#13;&#10;Content-Type: text/html`)},
			{"tab in a filename", msg + att("a1", "application/pdf", "a&#9;b.pdf")},
			{"C1 control in a filename", msg + att("a1", "application/pdf", "a&#x85;b.pdf")},
		} {
			r := send(t, id, tc.container)
			if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(ParameterIsNotValid) {
				t.Errorf("%s: HTTP %d %s %s, want 400 env:Sender ParameterIsNotValidException\n%.2000s", tc.name, r.status, code, exc, r.root)
				continue
			}
			v.AddMessage(tc.name, r.root, r.parts)
		}
		if s, _ := e.b.Submission(id); len(s.Replies) != 0 {
			t.Errorf("%d refused replies were stored", len(s.Replies))
		}
	})

	t.Run("names round-trip", func(t *testing.T) {
		id := newCase(t)
		// "PDF" is no media type, but office systems write such: the part is typed
		// application/octet-stream, not the reply refused.
		wants := []struct{ mediaType, fileName string }{
			{"text/plain", "b.txt"},
			{"application/pdf", "Bescheid Müller.pdf"},
			{"application/pdf", "Bescheid.pdf"}, // sent with its path: TestReplyFileNamesLoseTheirPaths
			{"application/pdf", "Anlage"},
			{"text/plain", `Plan "final".txt`},
			{"application/octet-stream", "scan.pdf"},
		}
		container := msg + att("a1", "application/pdf", "Bescheid Müller.pdf") + att("a2", "application/pdf", `C:\Bescheide\Bescheid.pdf`) +
			att("a3", "application/pdf", `Anlage\`) + att("a4", "text/plain; charset=UTF-8", "Plan &quot;final&quot;.txt") + att("a5", "PDF", "scan.pdf")
		mustOK(t, "sendMessage with attachments", send(t, id, container))
		s, _ := e.b.Submission(id)
		if len(s.Replies) != 1 {
			t.Fatalf("replies: %+v", s.Replies)
		}
		mt, params, err := mime.ParseMediaType(s.Replies[0].ContentType)
		if err != nil || mt != "multipart/mixed" {
			t.Fatalf("reply Content-Type %q: %q, %v", s.Replies[0].ContentType, mt, err)
		}
		_, rc, err := e.b.OpenReply(ctx, officeA, id, s.Replies[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		mr := multipart.NewReader(rc, params["boundary"])
		for i, w := range wants {
			p, err := mr.NextPart()
			if err != nil {
				t.Fatalf("part %d: %v", i, err)
			}
			for k, vs := range p.Header {
				for _, v := range vs {
					if strings.ContainsFunc(v, func(r rune) bool { return r >= 0x80 }) {
						t.Errorf("part %d: header %s %q is not 7-bit", i, k, v)
					}
				}
			}
			if got, _, err := mime.ParseMediaType(p.Header.Get("Content-Type")); err != nil || got != w.mediaType {
				t.Errorf("part %d: Content-Type %q, want %s", i, p.Header.Get("Content-Type"), w.mediaType)
			}
			if got := p.FileName(); got != w.fileName {
				t.Errorf("part %d: FileName() %q, want %q (Content-Disposition %q)", i, got, w.fileName, p.Header.Get("Content-Disposition"))
			}
		}
		if _, err := mr.NextPart(); err != io.EOF {
			t.Errorf("after the last attachment: %v, want io.EOF", err)
		}
	})
	v.Run()
}

// listingDesk counts the desk's listings of an office's cases.
type listingDesk struct {
	broker.OfficeDesk
	lists *atomic.Int64
}

func (d listingDesk) List(ctx context.Context, office string, q broker.ListQuery) (broker.Page, error) {
	d.lists.Add(1)
	return d.OfficeDesk.List(ctx, office, q)
}

// TestReplyIDsAreLookedUpNotScanned: sendMessage's check that a reply id is new,
// and getTransportReport of a reply, read the desk's reply index. They listed
// all of the office's cases, every call: with years of cases behind an office,
// each Bescheid its Fachverfahren sent read the office's whole history.
func TestReplyIDsAreLookedUpNotScanned(t *testing.T) {
	lists := new(atomic.Int64)
	e := startEnv(t, func(o *Options) { o.Desk = listingDesk{OfficeDesk: o.Desk, lists: lists} })
	ctx := context.Background()
	var cases []string
	for range 2 {
		sub := e.submit(t, officeA, pkgBytes(300))
		if _, err := e.b.Confirm(ctx, officeA, sub.ID, broker.Pickup{Channel: channel.XTA, Receiver: "test"}); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, MessageID("amtsbote", sub.ID))
	}
	replyID := NewMessageID("amtsbote")
	mustOK(t, "sendMessage", sendReply(t, e, replyID, cases[0]))
	mustOK(t, "sendMessage again", sendReply(t, e, replyID, cases[0]))
	if r := sendReply(t, e, replyID, cases[1]); r.status != http.StatusBadRequest {
		t.Fatalf("the reply id for another case: HTTP %d, want 400", r.status)
	}
	r := post(t, e.client("office-a"), e.base+PathTransportBase, actionCT(portTransportBase, "getTransportReport"),
		soapUIRequest(xtaA, "", `<ns:XTAMessageID id="q">`+replyID+`</ns:XTAMessageID>`))
	mustOK(t, "getTransportReport", r)
	if got := r.text("//TransportReport/MessageMetaData/MessageProperty[Key='InReplyTo']/Value"); got != cases[0] {
		t.Errorf("the report of the reply names the case %q, want %q", got, cases[0])
	}
	if n := lists.Load(); n != 0 {
		t.Errorf("the office's cases were listed %d times for reply ids", n)
	}
}

// wsdlFaultActions are the wsam:Action values of the faults the official WSDL
// declares.
func wsdlFaultActions(t *testing.T) map[string]bool {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromFile(filepath.Join(testenv.RepoRoot(t), "..", "shared", "specs", "xta2-v5", "wsdl", "xta-core.wsdl")); err != nil {
		t.Fatalf("the official WSDL: %v", err)
	}
	out := map[string]bool{}
	for _, f := range doc.FindElements("//portType/operation/fault") {
		out[f.SelectAttrValue("wsam:Action", "")] = true
	}
	if len(out) < 20 {
		t.Fatalf("only %d fault actions in the WSDL", len(out))
	}
	return out
}

// TestFaultActionIsTheWSDLs: a fault answered with WS-Addressing headers carries
// the wsa:Action the WSDL gives the exception at the port type
// (<ActionBase><porttype>/<Exception>); it carried <ActionBase>fault/<Exception>,
// which the WSDL does not know.
func TestFaultActionIsTheWSDLs(t *testing.T) {
	v := xtatest.NewValidator(t)
	declared := wsdlFaultActions(t)
	e := startEnv(t, nil)
	c := e.client("office-a")
	const mid = "urn:uuid:6f1c2d3e-0000-4000-8000-00000000a006"
	unknown := NewMessageID("amtsbote")
	for _, tc := range []struct {
		name, path, port, op, header, body string
		want                               string
	}{
		{"getMessage", PathRecipient, portRecipient, "getMessage", "", fetchBody(unknown),
			"https://xoev.de/transport/xta/core/core.recipient/InvalidMessageIDException"},
		{"sendMessage", PathSender, portSender, "sendMessage", replyHeader(NewMessageID("x"), xtaB, unknown, "Bescheid"),
			`<ns:ContentContainer><ns:Message id="m">QQ==</ns:Message></ns:ContentContainer>`,
			"https://xoev.de/transport/xta/core/core.sender/PermissionDeniedException"},
		{"getTransportReport", PathTransportBase, portTransportBase, "getTransportReport", "", `<ns:XTAMessageID id="q">` + unknown + `</ns:XTAMessageID>`,
			"https://xoev.de/transport/xta/core/core.transport.base/InvalidMessageIDException"},
	} {
		r := post(t, c, e.base+tc.path, actionCT(tc.port, tc.op), soapUIRequest(xtaA, wsaHeader(Action(tc.port, tc.op), mid)+tc.header, tc.body))
		got := r.text("//Header/Action")
		if _, exc := r.fault(); exc == "" || got != tc.want || r.text("//Header/RelatesTo") != mid {
			t.Errorf("%s: fault %q with wsa:Action %q, want %q\n%s", tc.name, exc, got, tc.want, r.root)
		}
		if !declared[got] {
			t.Errorf("%s: the WSDL declares no fault with the action %q", tc.name, got)
		}
		v.AddMessage(tc.name, r.root, r.parts)
	}
	v.Run()
}

// TestMaxMessagesIsAPositiveInteger: MaxMessages is read as an xs:positiveInteger
// — an optional "+", digits, leading zeros, whitespace around it — and a value
// above the service's maximum (1000) is capped, however many digits it has;
// anything else is refused. It was read with fmt.Sscan: "2abc" counted as 2, "1e3"
// as 1, and a valid huge value was refused.
func TestMaxMessagesIsAPositiveInteger(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	for range 3 {
		e.submit(t, officeA, pkgBytes(300))
	}
	selector := func(max string) string {
		return `<ns:OtherCriteria><ns:NewEntry>false</ns:NewEntry><ns:MaxMessages>` + max + `</ns:MaxMessages></ns:OtherCriteria>`
	}
	for max, want := range map[string]int{"2": 2, "+2": 2, "0002": 2, " 1\n": 1, "3": 3, "1000": 3,
		"99999999999999999999999999999999": 3, "+000000000000000000000000000000001": 1} {
		if got := listed(t, v, e, "MaxMessages "+max, selector(max)); len(got) != want {
			t.Errorf("MaxMessages %q: %d listed, want %d", max, len(got), want)
		}
	}
	for _, max := range []string{"2abc", "1e3", "0", "000", "-3", "+", "", "1.0", "0x10", "+-1", "1 2", "\u0663", "\u00a01"} {
		r := post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "getStatusList"),
			soapUIRequest(xtaA, "", `<ns:MessageSelector>`+selector(max)+`</ns:MessageSelector>`))
		if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc == "" {
			t.Errorf("MaxMessages %q: HTTP %d %s %q, want a 400 env:Sender fault", max, r.status, code, exc)
			continue
		}
		v.AddMessage("MaxMessages "+max, r.root, r.parts)
	}
	v.Run()
}

// wsdlOperationFaults are the exceptions the official WSDL declares for each
// operation of its port types.
func wsdlOperationFaults(t *testing.T) map[string][]Exception {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromFile(filepath.Join(testenv.RepoRoot(t), "..", "shared", "specs", "xta2-v5", "wsdl", "xta-core.wsdl")); err != nil {
		t.Fatalf("the official WSDL: %v", err)
	}
	out := map[string][]Exception{}
	for _, pt := range doc.FindElements("//portType") {
		if pt.SelectAttrValue("name", "") == portReader {
			continue // deliverMessage: the office's endpoint, not this service
		}
		for _, op := range pt.SelectElements("operation") {
			var es []Exception
			for _, f := range op.SelectElements("fault") {
				es = append(es, Exception(f.SelectAttrValue("name", "")))
			}
			out[op.SelectAttrValue("name", "")] = es
		}
	}
	return out
}

// TestDeclaredFaults: every operation raises only the exceptions the WSDL declares
// for it. getStatusList and getTransportReport declare no
// ParameterIsNotValidException, which they raised for bad parameters: a selector
// the service cannot read is now ParameterNotSupportedException, a missing
// XTAMessageID of getTransportReport InvalidMessageIDException.
func TestDeclaredFaults(t *testing.T) {
	wsdl := wsdlOperationFaults(t)
	if len(wsdl) != len(declaredFaults) {
		t.Errorf("the WSDL has %d operations, the table %d", len(wsdl), len(declaredFaults))
	}
	for op, es := range wsdl {
		got := slices.Clone(declaredFaults[op])
		slices.Sort(got)
		slices.Sort(es)
		if !slices.Equal(got, es) {
			t.Errorf("%s: the table declares %v, the WSDL %v", op, got, es)
		}
	}

	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	c := e.client("office-a")
	many := `<ns:XTAMessageIDs>` + strings.Repeat(`<ns:XTAMessageID>urn:x</ns:XTAMessageID>`, maxStatusList+1) + `</ns:XTAMessageIDs>`
	criteria := func(inner string) string {
		return `<ns:MessageSelector><ns:OtherCriteria>` + inner + `</ns:OtherCriteria></ns:MessageSelector>`
	}
	for _, tc := range []struct {
		name, path, port, op, body string
		want                       Exception
	}{
		{"no selector", PathRecipient, portRecipient, "getStatusList", "", ParameterNotSupported},
		{"empty selector", PathRecipient, portRecipient, "getStatusList", `<ns:MessageSelector/>`, ParameterNotSupported},
		{"too many ids", PathRecipient, portRecipient, "getStatusList", `<ns:MessageSelector>` + many + `</ns:MessageSelector>`, ParameterNotSupported},
		{"bad NewEntry", PathRecipient, portRecipient, "getStatusList", criteria(`<ns:NewEntry>yes</ns:NewEntry>`), ParameterNotSupported},
		{"bad MaxMessages", PathRecipient, portRecipient, "getStatusList", criteria(`<ns:MaxMessages>2abc</ns:MaxMessages>`), ParameterNotSupported},
		{"bad time from", PathRecipient, portRecipient, "getStatusList", criteria(`<ns:MessageBoxEntryTimeFrom>yesterday</ns:MessageBoxEntryTimeFrom>`), ParameterNotSupported},
		{"bad time to", PathRecipient, portRecipient, "getStatusList", criteria(`<ns:MessageBoxEntryTimeTo>1.1.2026</ns:MessageBoxEntryTimeTo>`), ParameterNotSupported},
		{"selector extension", PathRecipient, portRecipient, "getStatusList", criteria(`<ns:Extensions/>`), UnsupportedExtension},
		{"report without id", PathTransportBase, portTransportBase, "getTransportReport", "", InvalidMessageID},
		{"report with empty id", PathTransportBase, portTransportBase, "getTransportReport", `<ns:XTAMessageID id="q"> </ns:XTAMessageID>`, InvalidMessageID},
		{"report of an unknown id", PathTransportBase, portTransportBase, "getTransportReport", `<ns:XTAMessageID id="q">urn:x</ns:XTAMessageID>`, InvalidMessageID},
	} {
		r := post(t, c, e.base+tc.path, actionCT(tc.port, tc.op), soapUIRequest(xtaA, "", tc.body))
		code, exc := r.fault()
		if r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(tc.want) {
			t.Errorf("%s: HTTP %d %s %q, want 400 env:Sender %s\n%.1500s", tc.name, r.status, code, exc, tc.want, r.root)
			continue
		}
		if !slices.Contains(wsdl[tc.op], Exception(exc)) {
			t.Errorf("%s: %s is not declared for %s", tc.name, exc, tc.op)
		}
		v.AddMessage(tc.name, r.root, r.parts)
	}
	v.Run()
}

// TestHeaderBlocksForOtherRoles: a header block targeted at a role this node does
// not play (env:role none, or an unknown role) is ignored altogether, as SOAP 1.2
// part 1, 5.2.2 and 5.2.3 ask: its env:mustUnderstand does not count, and an XTA or
// WS-Addressing block so targeted is not read. Blocks for next, for the ultimate
// receiver or without a role count. Every mustUnderstand block used to count.
func TestHeaderBlocksForOtherRoles(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	c := e.client("office-a")
	tb := e.base + PathTransportBase
	check := actionCT(portTransportBase, "checkAccountActive")
	block := func(role string) string {
		r := ""
		if role != "" {
			r = ` soap:role="` + role + `"`
		}
		return `<foo:Bar xmlns:foo="urn:foo" soap:mustUnderstand="true"` + r + `/>`
	}
	for _, tc := range []struct {
		name, header, party string
		status              int
		code, exc           string
	}{
		{"mustUnderstand for role none", block(NSSoap12 + "/role/none"), xtaA, 200, "", ""},
		{"mustUnderstand for another role", block("http://example.org/other"), xtaA, 200, "", ""},
		{"mustUnderstand for next", block(NSSoap12 + "/role/next"), xtaA, 500, "env:MustUnderstand", ""},
		{"mustUnderstand for the ultimate receiver", block(NSSoap12 + "/role/ultimateReceiver"), xtaA, 500, "env:MustUnderstand", ""},
		{"mustUnderstand without role", block(""), xtaA, 500, "env:MustUnderstand", ""},
		{"Party for role none only", "", "", 400, "env:Sender", string(PermissionDenied)},
		{"wsa:Action for another role", `<wsa:Action xmlns:wsa="` + NSWSA + `" soap:role="http://example.org/other">` +
			Action(portRecipient, "close") + `</wsa:Action>`, xtaA, 200, "", ""},
	} {
		req := soapUIRequest(tc.party, tc.header, "")
		if tc.party == "" {
			req = soapUIRequest(xtaA, "", "")
			req = bytes.Replace(req, []byte("<ns:Party>"), []byte(`<ns:Party soap:role="`+NSSoap12+`/role/none">`), 1)
		}
		r := post(t, c, tb, check, req)
		code, exc := r.fault()
		if r.status != tc.status || code != tc.code || exc != tc.exc {
			t.Errorf("%s: HTTP %d %s %q, want %d %s %q\n%.1500s", tc.name, r.status, code, exc, tc.status, tc.code, tc.exc, r.root)
			continue
		}
		if tc.status == 200 || tc.exc != "" {
			v.AddMessage(tc.name, r.root, r.parts)
		}
	}
	v.Run()
}

// TestNoDTDAnywhere: a message with a document type declaration is refused wherever
// the declaration stands — SOAP 1.2 forbids a DTD in a SOAP message. The check used
// to look only before the first "Envelope", so a DOCTYPE after a comment that named
// the Envelope passed. Text that only looks like one (in a comment, a CDATA
// section) is no declaration.
func TestNoDTDAnywhere(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	c := e.client("office-a")
	check := actionCT(portTransportBase, "checkAccountActive")
	envelope := string(soapUIRequest(xtaA, "", ""))
	for _, tc := range []struct {
		name, msg string
		refused   bool
	}{
		{"DOCTYPE after a comment", `<?xml version="1.0"?>` + "\n<!-- SOAP Envelope follows -->\n" + `<!DOCTYPE soap:Envelope [<!ENTITY a "b">]>` + "\n" + envelope, true},
		{"DOCTYPE after a processing instruction", `<?xml version="1.0"?><?amtsbote Envelope?><!DOCTYPE soap:Envelope>` + envelope, true},
		{"DOCTYPE after comments with markup", `<!-- <soap:Envelope> --><!-- --><!DOCTYPE soap:Envelope [<!ENTITY lol "lol">]>` + envelope, true},
		{"entity declaration in the header", strings.Replace(envelope, "<soap:Header>", `<soap:Header><!ENTITY x "y">`, 1), true},
		{"DOCTYPE in a comment", `<?xml version="1.0"?><!-- <!DOCTYPE soap:Envelope> -->` + envelope, false},
		{"DOCTYPE in a CDATA section", strings.Replace(envelope, "<soap:Header>", `<soap:Header><x:Trace xmlns:x="urn:example:trace"><![CDATA[<!DOCTYPE x>]]></x:Trace>`, 1), false},
	} {
		r := post(t, c, e.base+PathTransportBase, check, []byte(tc.msg))
		code, exc := r.fault()
		switch {
		case tc.refused && (r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(ParameterIsNotValid)):
			t.Errorf("%s: HTTP %d %s %q, want 400 env:Sender ParameterIsNotValidException\n%.1500s", tc.name, r.status, code, exc, r.root)
			continue
		case !tc.refused && r.status != http.StatusOK:
			t.Errorf("%s: HTTP %d %s %q, want 200\n%.1500s", tc.name, r.status, code, exc, r.root)
			continue
		}
		if tc.refused {
			v.AddMessage(tc.name, r.root, r.parts)
		}
	}
	v.Run()
}

// utf16Bytes encodes s as UTF-16 in the byte order, with a byte order mark if bom.
func utf16Bytes(s string, order binary.AppendByteOrder, bom bool) []byte {
	var out []byte
	units := utf16.Encode([]rune(s))
	if bom {
		units = append([]uint16{0xFEFF}, units...)
	}
	for _, u := range units {
		out = order.AppendUint16(out, u)
	}
	return out
}

// TestUTF16Requests: a request in UTF-16 (with a byte order mark, or without one
// but starting with '<') is read as XML 1.0 asks every processor to; it was refused
// as "invalid UTF-8". A broken UTF-16 message and an encoding the service does not
// read get a clear fault; answers are UTF-8.
func TestUTF16Requests(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	sub := e.submit(t, officeA, pkgBytes(300))
	c := e.client("office-a")
	const name = "Bauaufsichtsamt Dreßden € 𝄞" // 𝄞 is a surrogate pair in UTF-16
	req := `<?xml version="1.0" encoding="UTF-16"?>` + strings.Replace(string(soapUIRequest(xtaA, "", statusListBody(false, 10, zeroTime, zeroTime))),
		`name="Bauaufsichtsamt Dresden"`, `name="`+name+`"`, 1)
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"UTF-16LE with BOM", utf16Bytes(req, binary.LittleEndian, true)},
		{"UTF-16BE with BOM", utf16Bytes(req, binary.BigEndian, true)},
		{"UTF-16LE without BOM", utf16Bytes(req, binary.LittleEndian, false)},
	} {
		r := post(t, c, e.base+PathRecipient, soapContentType(Action(portRecipient, "getStatusList")), tc.body)
		mustOK(t, tc.name, r)
		v.AddMessage(tc.name, r.root, r.parts)
		if got := texts(r, "//MessageStatusList/MessageMetaData/XTAMessageID"); len(got) != 1 || got[0] != MessageID("amtsbote", sub.ID) {
			t.Errorf("%s: listed %v", tc.name, got)
		}
		if el := r.doc.FindElement("//MessageStatusList/MessageMetaData/Reader/Identifier"); el == nil || el.SelectAttrValue("name", "") != name {
			t.Errorf("%s: the Reader's name does not come back as sent:\n%s", tc.name, r.root)
		}
	}
	broken := utf16Bytes(req, binary.LittleEndian, true)
	broken = append(broken[:len(broken)-4], 0x00, 0xD8, '>', 0) // a high surrogate without its pair
	for _, tc := range []struct {
		name, detail string
		body         []byte
	}{
		{"broken UTF-16", "surrogate", broken},
		{"odd UTF-16", "odd", utf16Bytes(req, binary.LittleEndian, true)[:101]},
		{"ISO-8859-1", "UTF-8", append([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?>`), soapUIRequest(xtaA, "", "")...)},
		{"UTF-16 declared in UTF-8", "byte order mark", []byte(req)},
	} {
		r := post(t, c, e.base+PathTransportBase, soapContentType(Action(portTransportBase, "checkAccountActive")), tc.body)
		code, exc := r.fault()
		if r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(ParameterIsNotValid) || !strings.Contains(r.text("//Fault/Detail/*/Detail"), tc.detail) {
			t.Errorf("%s: HTTP %d %s %q, want 400 env:Sender ParameterIsNotValidException naming %q\n%.1500s", tc.name, r.status, code, exc, tc.detail, r.root)
			continue
		}
		v.AddMessage(tc.name, r.root, r.parts)
	}
	v.Run()
}

// TestDirectoryIsEchoedAsGiven: a party the request named (the caller's Party, a
// lookupService Reader) comes back with its Directory's code list as given; its
// listVersionID was rewritten to 1.0.
func TestDirectoryIsEchoedAsGiven(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	e.submit(t, officeA, pkgBytes(300))
	c := e.client("office-a")
	const listURI = "urn:example:verzeichnisse"
	dir := func(version string) string {
		return `<ns:Directory listURI="` + listURI + `" listVersionID="` + version + `"><code>DVDV</code></ns:Directory>`
	}
	// The caller's Party, as the Reader of the messages listed.
	req := bytes.Replace(soapUIRequest(xtaA, "", statusListBody(false, 10, zeroTime, zeroTime)),
		[]byte(`listVersionID="1.0"`), []byte(`listVersionID="2.1"`), 1)
	req = bytes.Replace(req, []byte(`listURI="`+ListDirectory+`"`), []byte(`listURI="`+listURI+`"`), 1)
	r := post(t, c, e.base+PathRecipient, actionCT(portRecipient, "getStatusList"), req)
	mustOK(t, "getStatusList", r)
	v.AddMessage("getStatusList", r.root, r.parts)
	if d := r.doc.FindElement("//MessageStatusList/MessageMetaData/Reader/Directory"); d == nil ||
		d.SelectAttrValue("listVersionID", "") != "2.1" || d.SelectAttrValue("listURI", "") != listURI {
		t.Errorf("the caller's Directory is not echoed as given:\n%s", r.root)
	}
	// lookupService's Readers.
	r = post(t, c, e.base+PathSender, actionCT(portSender, "lookupService"), soapUIRequest(xtaA, "", `
      <ns:LookupQuery>
         <ns:LookupService><ns:Reader><ns:Identifier>`+gatewayID+`</ns:Identifier>`+dir("2.0")+`</ns:Reader></ns:LookupService>
         <ns:LookupService><ns:Reader><ns:Identifier>other</ns:Identifier>`+dir("2024-01")+`</ns:Reader></ns:LookupService>
      </ns:LookupQuery>`))
	mustOK(t, "lookupService", r)
	v.AddMessage("lookupService", r.root, r.parts)
	var got []string
	for _, d := range r.doc.FindElements("//LookupServiceResult/Reader/Directory") {
		got = append(got, d.SelectAttrValue("listURI", "")+" "+d.SelectAttrValue("listVersionID", ""))
	}
	if want := []string{listURI + " 2.0", listURI + " 2024-01"}; !slices.Equal(got, want) {
		t.Errorf("lookupService Readers' Directory %v, want %v", got, want)
	}
	v.Run()
}

// TestEnvelopeHoldsHeaderThenOneBody: SOAP 1.2 (part 1, 5.1) allows an optional
// Header, then exactly one Body, and nothing else in the Envelope. A Header after
// the Body, two Bodies (whose contents used to be merged), two Headers, a foreign
// element, and a Body of another namespace are refused with an env:Sender fault.
func TestEnvelopeHoldsHeaderThenOneBody(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	c := e.client("office-a")
	party := xtaclient.PartyXML(xtaclient.Party{Identifier: xtaA, Scheme: "xoev"})
	env := func(inner string) []byte {
		return []byte(`<soap:Envelope xmlns:soap="` + NSSoap12 + `" xmlns:ns="` + NS + `">` + inner + `</soap:Envelope>`)
	}
	header := `<soap:Header>` + party + `</soap:Header>`
	selector := `<soap:Body>` + statusListBody(false, 5, zeroTime, zeroTime) + `</soap:Body>`
	for _, tc := range []struct{ name, inner string }{
		{"Header after Body", selector + header},
		{"two Bodies", header + selector + `<soap:Body>` + fetchBody("urn:x") + `</soap:Body>`},
		{"two Headers", header + header + selector},
		{"element after Body", header + selector + `<x:Extra xmlns:x="urn:x"/>`},
		{"element before Header", `<x:Extra xmlns:x="urn:x"/>` + header + selector},
		{"Body of another namespace", header + `<s11:Body xmlns:s11="` + NSSoap11 + `">` + statusListBody(false, 5, zeroTime, zeroTime) + `</s11:Body>`},
		{"text in the Envelope", header + "text" + selector},
	} {
		r := post(t, c, e.base+PathRecipient, actionCT(portRecipient, "getStatusList"), env(tc.inner))
		if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(ParameterIsNotValid) {
			t.Errorf("%s: HTTP %d %s %q, want 400 env:Sender ParameterIsNotValidException\n%.1500s", tc.name, r.status, code, exc, r.root)
			continue
		}
		v.AddMessage(tc.name, r.root, r.parts)
	}
	// Header, then Body, with comments and whitespace between, is served.
	r := post(t, c, e.base+PathRecipient, actionCT(portRecipient, "getStatusList"), env("\n<!-- h -->\n"+header+"\n<!-- b -->\n"+selector+"\n"))
	mustOK(t, "Header, then Body", r)
	v.AddMessage("Header, then Body", r.root, r.parts)
	v.Run()
}

// TestDeclaredStandsInForUndeclaredFaults: the service's faults that an operation's
// WSDL does not declare become the declared one that stands for them, so a client
// generated from the WSDL can read every fault it gets: a refused reply's case
// (InvalidMessageID, which sendMessage does not declare) is a parameter fault,
// a parameter fault of the operations without ParameterIsNotValid is
// ParameterNotSupported. A declared fault is left as it is.
func TestDeclaredStandsInForUndeclaredFaults(t *testing.T) {
	for _, tc := range []struct {
		op       string
		in, want Exception
	}{
		{"sendMessage", InvalidMessageID, ParameterIsNotValid},
		{"sendMessageSync", InvalidMessageID, ParameterIsNotValid},
		{"getMessage", InvalidMessageID, InvalidMessageID},
		{"getStatusList", ParameterIsNotValid, ParameterNotSupported},
		{"getTransportReport", ParameterIsNotValid, ParameterNotSupported},
		{"sendMessage", ParameterIsNotValid, ParameterIsNotValid},
	} {
		got := declared(tc.op, fault(tc.in, "why"))
		if got.Exception != tc.want || got.Detail != "why" {
			t.Errorf("%s: %s became %s (%q), want %s", tc.op, tc.in, got.Exception, got.Detail, tc.want)
		}
		if !slices.Contains(declaredFaults[tc.op], got.Exception) {
			t.Errorf("%s: %s is not declared for it", tc.op, got.Exception)
		}
	}
}
