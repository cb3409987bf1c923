package xta

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/xta/xtaclient"
	"github.com/amtsbote/amtsbote/xta/xtatest"
)

func fetchBody(xtaID string) string { return xtaclient.FetchBody(xtaID) }

func statusListBody(newEntry bool, max int, from, to time.Time) string {
	return xtaclient.SelectorBody(xtaclient.Query{NewEntry: newEntry, MaxMessages: max, From: from, To: to})
}

// replyHeader is the MessageMetaData of an office's reply to the case caseXTAID.
func replyHeader(replyID, author, caseXTAID, messageType string) string {
	return `
      <ns:MessageMetaData>
         <ns:XTAMessageID id="r-mid">` + replyID + `</ns:XTAMessageID>
         <ns:Reader id="r-reader">
            <ns:Identifier identifierScheme="xoev">` + gatewayID + `</ns:Identifier>
         </ns:Reader>
         <ns:Originators>
            <ns:Author id="r-author">
               <ns:Identifier identifierScheme="xoev">` + author + `</ns:Identifier>
            </ns:Author>
         </ns:Originators>
         <ns:Qualifier id="r-q">
            <ns:Service>urn:amtsbote:service:antwort</ns:Service>
            <ns:BusinessScenario>
               <ns:Undefined>Bescheid zum Bauantrag</ns:Undefined>
            </ns:BusinessScenario>
            <ns:MessageType messageSchema="urn:xoev-de:xbau:2.3">` + messageType + `</ns:MessageType>
         </ns:Qualifier>
         <ns:MessageSize>100</ns:MessageSize>
         <ns:DeliveryAttributes>
            <ns:Origin id="r-origin">2026-12-01T10:00:00Z</ns:Origin>
         </ns:DeliveryAttributes>
         <ns:ServiceQuality id="r-sq">
            <ns:Undefined>standard</ns:Undefined>
         </ns:ServiceQuality>
         <ns:MessageProperty id="r-prop">
            <ns:Key>InReplyTo</ns:Key>
            <ns:Value>` + caseXTAID + `</ns:Value>
         </ns:MessageProperty>
      </ns:MessageMetaData>`
}

func mustOK(t *testing.T, op string, r *soapResp) {
	t.Helper()
	if r.status != http.StatusOK {
		code, exc := r.fault()
		t.Fatalf("%s: HTTP %d, fault %s %s\n%s", op, r.status, code, exc, r.root)
	}
}

// TestReplayAllOperations replays SoapUI-style requests of every operation against
// a real http.Server on loopback with TLS client certificates and a real broker, and
// validates every answer against the official XSDs.
func TestReplayAllOperations(t *testing.T) {
	v := xtatest.NewValidator(t)
	for _, tc := range []struct {
		name      string
		threshold int64
		pkgSize   int
	}{
		{"inline", -1, 4000},
		{"mtom", 1024, 200_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, func(o *Options) { o.MTOMThreshold = tc.threshold })
			pkg := pkgBytes(tc.pkgSize)
			att := []byte("%PDF-1.7\n" + strings.Repeat("0123456789", 300) + "\n%%EOF\n")
			before := time.Now().Add(-time.Minute)
			sub := e.submit(t, officeA, pkg, att)
			other := e.submit(t, officeA, pkgBytes(500))
			xtaID := MessageID("amtsbote", sub.ID)
			c := e.client("office-a")
			rec := e.base + PathRecipient

			// getStatusList: both waiting, MaxMessages 1 leaves one pending.
			r := post(t, c, rec, actionCT(portRecipient, "getStatusList"), soapUIRequest(xtaA, "", statusListBody(false, 1, before, time.Now().Add(time.Minute))))
			mustOK(t, "getStatusList", r)
			v.AddMessage(tc.name+"/getStatusList", r.root, r.parts)
			if got := r.text("//MessageStatusList/MessageMetaData/XTAMessageID"); got != xtaID {
				t.Fatalf("getStatusList listed %q first, want %q", got, xtaID)
			}
			if got := r.text("//MessageBoxStatus/MessagesRemaining/MessagesPending"); got != "1" {
				t.Errorf("MessagesPending = %q, want 1", got)
			}
			// The time window excludes everything before now.
			r = post(t, c, rec, actionCT(portRecipient, "getStatusList"), soapUIRequest(xtaA, "", statusListBody(false, 10, time.Now().Add(time.Hour), time.Time{})))
			mustOK(t, "getStatusList window", r)
			if r.text("//MessageBoxStatus/MessagesRemaining/NoMessageAvailable") == "" || len(r.doc.FindElements("//MessageStatusList/MessageMetaData")) != 0 {
				t.Errorf("a window in the future still lists messages:\n%s", r.root)
			}

			// getMessage: the exact bytes, no pickup.
			r = post(t, c, rec, actionCT(portRecipient, "getMessage"), soapUIRequest(xtaA, "", fetchBody(xtaID)))
			mustOK(t, "getMessage", r)
			v.AddMessage(tc.name+"/getMessage", r.root, r.parts)
			gotPkg := contentOf(t, r, "//ContentContainer/Message")
			if !bytes.Equal(gotPkg, pkg) {
				t.Fatalf("getMessage returned %d bytes, want the exact %d package bytes", len(gotPkg), len(pkg))
			}
			if gotAtt := contentOf(t, r, "//ContentContainer/Attachment"); !bytes.Equal(gotAtt, att) {
				t.Fatalf("attachment: %d bytes, want %d", len(gotAtt), len(att))
			}
			if tc.threshold > 0 && len(r.parts) != 2 {
				t.Errorf("MTOM answer with %d XOP parts, want 2 (package and attachment above the threshold)", len(r.parts))
			}
			if tc.threshold < 0 && len(r.parts) != 0 {
				t.Errorf("inline answer with XOP parts")
			}
			if got := r.text("//Header/MessageMetaData/XTAMessageID"); got != xtaID {
				t.Errorf("getMessage header XTAMessageID %q, want %q", got, xtaID)
			}
			if s := e.wait(t, sub.ID, submission.StateHandedOver); s.DeliveredAt != nil {
				t.Fatal("getMessage recorded a delivery; only close may")
			}
			// NewEntry: the fetched message is no longer new; the other one is.
			r = post(t, c, rec, actionCT(portRecipient, "getStatusList"), soapUIRequest(xtaA, "", statusListBody(true, 10, time.Time{}, time.Time{})))
			mustOK(t, "getStatusList NewEntry", r)
			ids := texts(r, "//MessageStatusList/MessageMetaData/XTAMessageID")
			if len(ids) != 1 || ids[0] != MessageID("amtsbote", other.ID) {
				t.Errorf("NewEntry=true listed %v, want only the unfetched %s", ids, other.ID)
			}
			// The id is stable: asked again, the same.
			r = post(t, c, rec, actionCT(portRecipient, "getStatusList"), soapUIRequest(xtaA, "", statusListBody(false, 10, time.Time{}, time.Time{})))
			if ids := texts(r, "//MessageStatusList/MessageMetaData/XTAMessageID"); len(ids) != 2 || ids[0] != xtaID {
				t.Errorf("second listing %v, want %s first again", ids, xtaID)
			}

			// getTransportReport before close: open (0, the schema's traffic light).
			tb := e.base + PathTransportBase
			r = post(t, c, tb, actionCT(portTransportBase, "getTransportReport"), soapUIRequest(xtaA, "", `
      <ns:XTAMessageID id="q1">`+xtaID+`</ns:XTAMessageID>`))
			mustOK(t, "getTransportReport", r)
			v.AddMessage(tc.name+"/getTransportReport", r.root, r.parts)
			if got := r.text("//TransportReport/MessageStatus/Status"); got != "0" {
				t.Errorf("status before close %q, want 0", got)
			}

			// close: delivered with the Zustellbestaetigung.
			r = post(t, c, rec, actionCT(portRecipient, "close"), soapUIRequest(xtaA, "", fetchBody(xtaID)))
			mustOK(t, "close", r)
			v.AddMessage(tc.name+"/close", r.root, r.parts)
			s := e.wait(t, sub.ID, submission.StateDelivered)
			if s.DeliveredAt == nil {
				t.Fatal("close left DeliveredAt unset")
			}
			rcpt, err := e.b.Receipt(context.Background(), officeA, sub.ID, broker.ReceiptDelivery)
			if err != nil || !bytes.Contains(rcpt, []byte(channel.XTA)) {
				t.Fatalf("Zustellbestaetigung after close: %q, %v", rcpt, err)
			}
			// A repeated close changes nothing and is no error.
			r = post(t, c, rec, actionCT(portRecipient, "close"), soapUIRequest(xtaA, "", fetchBody(xtaID)))
			mustOK(t, "close again", r)
			r = post(t, c, tb, actionCT(portTransportBase, "getTransportReport"), soapUIRequest(xtaA, "", `
      <ns:XTAMessageID id="q1">`+xtaID+`</ns:XTAMessageID>`))
			mustOK(t, "getTransportReport after close", r)
			if r.text("//TransportReport/MessageStatus/Status") != "1" || r.text("//TransportReport/MessageMetaData/DeliveryAttributes/Reception") == "" {
				t.Errorf("report after close lacks status 1 (green) or Reception:\n%s", r.root)
			}

			// Sender port: createMessageID, lookupService, sendMessage, sendMessageSync.
			sp := e.base + PathSender
			r = post(t, c, sp, actionCT(portSender, "createMessageID"), soapUIRequest(xtaA, "", ""))
			mustOK(t, "createMessageID", r)
			v.AddMessage(tc.name+"/createMessageID", r.root, r.parts)
			replyID := r.text("//Body/XTAMessageID")
			if !strings.HasPrefix(replyID, MessageIDPrefix+"amtsbote:") {
				t.Fatalf("createMessageID gave %q", replyID)
			}
			r = post(t, c, sp, actionCT(portSender, "lookupService"), soapUIRequest(xtaA, "", `
      <ns:LookupQuery>
         <ns:LookupService>
            <ns:Reader><ns:Identifier identifierScheme="xoev">`+gatewayID+`</ns:Identifier></ns:Reader>
            <ns:Service>urn:amtsbote:service:antwort</ns:Service>
         </ns:LookupService>
         <ns:LookupService>
            <ns:Reader><ns:Identifier identifierScheme="xoev">dvdv:unknown</ns:Identifier></ns:Reader>
         </ns:LookupService>
      </ns:LookupQuery>`))
			mustOK(t, "lookupService", r)
			v.AddMessage(tc.name+"/lookupService", r.root, r.parts)
			if got := texts(r, "//LookupServiceResult/IsServiceAvailableValue/ServiceIsAvailable"); len(got) != 2 || got[0] != "true" || got[1] != "false" {
				t.Errorf("lookupService availability %v, want [true false]", got)
			}
			bescheid := []byte(`<Bescheid xmlns="urn:xoev-de:xbau:2.3">Genehmigt</Bescheid>`)
			r = post(t, c, sp, actionCT(portSender, "sendMessage"), soapUIRequest(xtaA, replyHeader(replyID, xtaA, xtaID, "Bescheid"), `
      <ns:ContentContainer>
         <ns:Message contentType="application/xml" encoding="UTF-8" filename="bescheid.xml" id="m1" size="`+strconv.Itoa(len(bescheid))+`">`+base64.StdEncoding.EncodeToString(bescheid)+`</ns:Message>
      </ns:ContentContainer>`))
			mustOK(t, "sendMessage", r)
			v.AddMessage(tc.name+"/sendMessage", r.root, r.parts)
			s, _ = e.b.Submission(sub.ID)
			if len(s.Replies) != 1 || s.Replies[0].MessageID != replyID || s.Replies[0].Kind != "Bescheid" || s.Replies[0].Channel != channel.XTA {
				t.Fatalf("replies after sendMessage: %+v", s.Replies)
			}
			_, rc, err := e.b.OpenReply(context.Background(), officeA, sub.ID, s.Replies[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			_, _ = got.ReadFrom(rc)
			rc.Close()
			if !bytes.Equal(got.Bytes(), bescheid) {
				t.Errorf("stored reply %q, want %q", got.Bytes(), bescheid)
			}
			// sendMessageSync, MTOM on input, with an attachment.
			replyID2 := NewMessageID("office-a-fv")
			mtomBody, mtomCT := mtomRequest(t, soapUIRequest(xtaA, replyHeader(replyID2, xtaA, sub.ID, "Rueckfrage"), `
      <ns:ContentContainer>
         <ns:Message contentType="text/plain" filename="rueckfrage.txt" id="m2"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:msg%40office"/></ns:Message>
         <ns:Attachment contentType="application/pdf" filename="plan.pdf" id="a2"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:att@office"/></ns:Attachment>
      </ns:ContentContainer>`), Action(portSender, "sendMessageSync"), map[string][]byte{"msg@office": []byte("Bitte Lageplan nachreichen."), "att@office": att})
			r = post(t, c, sp, mtomCT, mtomBody)
			mustOK(t, "sendMessageSync", r)
			v.AddMessage(tc.name+"/sendMessageSync", r.root, r.parts)
			s, _ = e.b.Submission(sub.ID)
			if len(s.Replies) != 2 || s.Replies[1].Kind != "Rueckfrage" || !strings.HasPrefix(s.Replies[1].ContentType, "multipart/mixed") {
				t.Fatalf("replies after sendMessageSync: %+v", s.Replies)
			}
			// The reply's own transport report.
			r = post(t, c, tb, actionCT(portTransportBase, "getTransportReport"), soapUIRequest(xtaA, "", `
      <ns:XTAMessageID id="q2">`+replyID+`</ns:XTAMessageID>`))
			mustOK(t, "getTransportReport of a reply", r)
			v.AddMessage(tc.name+"/getTransportReportReply", r.root, r.parts)

			// checkAccountActive.
			r = post(t, c, tb, actionCT(portTransportBase, "checkAccountActive"), soapUIRequest(xtaA, "", ""))
			mustOK(t, "checkAccountActive", r)
			v.AddMessage(tc.name+"/checkAccountActive", r.root, r.parts)

			// Without SOAP actions but with WS-Addressing, as some clients send them.
			r = post(t, c, rec, soapContentType(""), soapUIRequest(xtaA, `
      <wsa:Action xmlns:wsa="http://www.w3.org/2005/08/addressing">`+Action(portRecipient, "getStatusList")+`</wsa:Action>
      <wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">urn:uuid:0b7c5f6e-1111-4222-8333-944455556666</wsa:MessageID>`, statusListBody(false, 5, time.Time{}, time.Time{})))
			mustOK(t, "getStatusList via wsa:Action", r)
			if r.text("//Header/RelatesTo") != "urn:uuid:0b7c5f6e-1111-4222-8333-944455556666" {
				t.Errorf("no wsa:RelatesTo in the answer to a WS-Addressing request")
			}
		})
	}
	v.Run()
}

func texts(r *soapResp, path string) []string {
	var out []string
	for _, el := range r.doc.FindElements(path) {
		out = append(out, strings.TrimSpace(el.Text()))
	}
	return out
}

// contentOf decodes a content element of an answer, inline or XOP.
func contentOf(t *testing.T, r *soapResp, path string) []byte {
	t.Helper()
	el := r.doc.FindElement(path)
	if el == nil {
		t.Fatalf("no %s in\n%s", path, r.root)
	}
	if inc := el.SelectElement("Include"); inc != nil {
		b, ok := r.parts[strings.TrimPrefix(inc.SelectAttrValue("href", ""), "cid:")]
		if !ok {
			t.Fatalf("%s: xop:Include names no part", path)
		}
		return b
	}
	b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(el.Text()), ""))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// mtomRequest wraps a SOAP request into MTOM/XOP multipart/related.
func mtomRequest(t testing.TB, env []byte, action string, parts map[string][]byte) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	root, _ := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type": {`application/xop+xml; charset=UTF-8; type="application/soap+xml; action=\"` + action + `\""`},
		"Content-Id":   {"<rootpart@office>"}, "Content-Transfer-Encoding": {"8bit"}})
	root.Write(env)
	for cid, p := range parts {
		w, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/octet-stream"},
			"Content-Id": {"<" + cid + ">"}, "Content-Transfer-Encoding": {"binary"}})
		w.Write(p)
	}
	mw.Close()
	ct := fmt.Sprintf(`multipart/related; type="application/xop+xml"; start="<rootpart@office>"; start-info="application/soap+xml"; boundary=%q`, mw.Boundary())
	return b.Bytes(), ct
}

// TestFetchIsKeptWithTheRecord: the first getMessage is recorded with the
// submission (a fetched event, once however often the message is fetched), so
// another XTA server over the same store — the gateway restarted, or another
// gateway of a cluster behind the load balancer — leaves it out of NewEntry=true
// and gives its InitialFetch. It used to be remembered by the process only.
func TestFetchIsKeptWithTheRecord(t *testing.T) {
	var opts Options
	e := startEnv(t, func(o *Options) { opts = *o })
	sub := e.submit(t, officeA, pkgBytes(500))
	other := e.submit(t, officeA, pkgBytes(600))
	xtaID := MessageID("amtsbote", sub.ID)
	c := e.client("office-a")
	for i := 0; i < 2; i++ {
		r := post(t, c, e.base+PathRecipient, actionCT(portRecipient, "getMessage"), soapUIRequest(xtaA, "", fetchBody(xtaID)))
		mustOK(t, "getMessage", r)
	}
	evs, err := e.b.Log(sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	var fetched []submission.Event
	for _, ev := range evs {
		if ev.Type == submission.EventFetched {
			fetched = append(fetched, ev)
		}
	}
	if len(fetched) != 1 || fetched[0].Channel != channel.XTA {
		t.Fatalf("fetched events after two getMessage calls: %+v, want one on channel xta", fetched)
	}

	again, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(again)
	srv.TLS = e.pki.serverTLS()
	srv.StartTLS()
	defer srv.Close()
	r := post(t, c, srv.URL+PathRecipient, actionCT(portRecipient, "getStatusList"), soapUIRequest(xtaA, "", statusListBody(true, 10, time.Time{}, time.Time{})))
	mustOK(t, "getStatusList NewEntry at the other server", r)
	if ids := texts(r, "//MessageStatusList/MessageMetaData/XTAMessageID"); len(ids) != 1 || ids[0] != MessageID("amtsbote", other.ID) {
		t.Fatalf("the other server lists %v as new, want only %s", ids, other.ID)
	}
	r = post(t, c, srv.URL+PathRecipient, actionCT(portRecipient, "getStatusList"), soapUIRequest(xtaA, "", statusListBody(false, 10, time.Time{}, time.Time{})))
	mustOK(t, "getStatusList at the other server", r)
	if got := r.text("//MessageStatusList/MessageMetaData[XTAMessageID='" + xtaID + "']/DeliveryAttributes/InitialFetch"); got == "" {
		t.Fatalf("the other server gives no InitialFetch for the fetched message:\n%s", r.root)
	}
}
