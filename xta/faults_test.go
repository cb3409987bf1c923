package xta

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// TestOfficeIsolation: an office sees only its own messages, whatever it claims.
func TestOfficeIsolation(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	sub := e.submit(t, officeA, pkgBytes(300))
	xtaID := MessageID("amtsbote", sub.ID)
	rec := e.base + PathRecipient
	getMsg := actionCT(portRecipient, "getMessage")

	cases := []struct {
		name   string
		client string
		party  string
		body   string
		ct     string
		want   string
	}{
		{"no certificate", "", xtaA, fetchBody(xtaID), getMsg, "PermissionDeniedException"},
		{"certificate of another office claiming office A", "office-b", xtaA, fetchBody(xtaID), getMsg, "PermissionDeniedException"},
		{"certificate of an unknown party", "stranger", xtaA, fetchBody(xtaID), getMsg, "PermissionDeniedException"},
		{"office B's own account asks for A's message", "office-b", xtaB, fetchBody(xtaID), getMsg, "InvalidMessageIDException"},
		{"office B closes A's message", "office-b", xtaB, fetchBody(xtaID), actionCT(portRecipient, "close"), "InvalidMessageIDException"},
		{"office B asks A's transport report", "office-b", xtaB, `<ns:XTAMessageID id="q">` + xtaID + `</ns:XTAMessageID>`, actionCT(portTransportBase, "getTransportReport"), "InvalidMessageIDException"},
		{"no Party header", "office-a", "", fetchBody(xtaID), getMsg, "PermissionDeniedException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := soapUIRequest(tc.party, "", tc.body)
			if tc.party == "" {
				req = []byte(`<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:ns="` + NS + `"><soap:Body>` + tc.body + `</soap:Body></soap:Envelope>`)
			}
			url := rec
			if strings.Contains(tc.ct, portTransportBase) {
				url = e.base + PathTransportBase
			}
			r := post(t, e.client(tc.client), url, tc.ct, req)
			code, exc := r.fault()
			if exc != tc.want || code != "env:Sender" || r.status != http.StatusBadRequest {
				t.Fatalf("HTTP %d %s %s, want 400 env:Sender %s\n%s", r.status, code, exc, tc.want, r.root)
			}
			if bytes.Contains(r.root, []byte(sub.ID)) && !strings.Contains(tc.body, sub.ID) {
				t.Errorf("the fault names the submission")
			}
			v.AddMessage(tc.name, r.root, r.parts)
		})
	}
	// Office B's list is empty; A's message is still waiting, untouched.
	r := post(t, e.client("office-b"), rec, actionCT(portRecipient, "getStatusList"), soapUIRequest(xtaB, "", statusListBody(false, 10, zeroTime, zeroTime)))
	mustOK(t, "getStatusList B", r)
	if n := len(r.doc.FindElements("//MessageStatusList/MessageMetaData")); n != 0 {
		t.Errorf("office B lists %d messages of office A", n)
	}
	e.wait(t, sub.ID, submission.StateHandedOver)
	v.Run()
}

// TestFaults: malformed and unexpected requests get a SOAP fault with the
// standard's code, never a panic or a bare 500.
func TestFaults(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, func(o *Options) { o.MaxMessageBytes = 64 << 10 })
	c := e.client("office-a")
	rec := e.base + PathRecipient
	statusCT := actionCT(portRecipient, "getStatusList")
	big := strings.Repeat("A", 100<<10)
	okBody := statusListBody(false, 1, zeroTime, zeroTime)

	mtomMissing, mtomCT := mtomRequest(t, soapUIRequest(xtaA, replyHeader(NewMessageID("x"), xtaA, NewMessageID("amtsbote"), "Bescheid"), `
      <ns:ContentContainer><ns:Message id="m"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:absent@x"/></ns:Message></ns:ContentContainer>`),
		Action(portSender, "sendMessage"), nil)
	mtomBig, mtomBigCT := mtomRequest(t, soapUIRequest(xtaA, "", okBody), Action(portRecipient, "getStatusList"), map[string][]byte{"big@x": []byte(big)})

	cases := []struct {
		name, url, ct string
		body          []byte
		status        int
		code, exc     string
	}{
		{"malformed XML", rec, statusCT, []byte(`<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>`), 400, "env:Sender", "ParameterIsNotValidException"},
		{"not XML at all", rec, statusCT, []byte("hello"), 400, "env:Sender", "ParameterIsNotValidException"},
		{"empty body", rec, statusCT, nil, 400, "env:Sender", "ParameterIsNotValidException"},
		{"DOCTYPE", rec, statusCT, []byte(`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body/></soap:Envelope>`), 400, "env:Sender", "ParameterIsNotValidException"},
		{"unknown envelope namespace", rec, statusCT, []byte(`<Envelope xmlns="urn:other"><Body/></Envelope>`), 500, "env:VersionMismatch", ""},
		{"unknown message id", rec, actionCT(portRecipient, "getMessage"), soapUIRequest(xtaA, "", fetchBody(NewMessageID("amtsbote"))), 400, "env:Sender", "InvalidMessageIDException"},
		{"foreign message id", rec, actionCT(portRecipient, "getMessage"), soapUIRequest(xtaA, "", fetchBody("urn:de:xta:messageid:other:1")), 400, "env:Sender", "InvalidMessageIDException"},
		{"oversized request", rec, statusCT, soapUIRequest(xtaA, "<!--"+big+"-->", okBody), 400, "env:Sender", "ParameterIsNotValidException"},
		{"oversized MTOM part", rec, mtomBigCT, mtomBig, 400, "env:Sender", "ParameterIsNotValidException"},
		{"XOP reference to a missing part", e.base + PathSender, mtomCT, mtomMissing, 400, "env:Sender", "ParameterIsNotValidException"},
		{"action of another port", rec, actionCT(portSender, "sendMessage"), soapUIRequest(xtaA, "", okBody), 400, "env:Sender", "NotImplementedException"},
		{"unknown action", rec, soapContentType(ActionBase + "core.recipient/purge"), soapUIRequest(xtaA, "", okBody), 400, "env:Sender", "NotImplementedException"},
		{"MessageFetch without action", rec, soapContentType(""), soapUIRequest(xtaA, "", fetchBody("x")), 400, "env:Sender", "ParameterIsNotValidException"},
		{"bad MaxMessages", rec, statusCT, soapUIRequest(xtaA, "", `<ns:MessageSelector><ns:OtherCriteria><ns:MaxMessages>-3</ns:MaxMessages></ns:OtherCriteria></ns:MessageSelector>`), 400, "env:Sender", "ParameterNotSupportedException"},
		{"selector extension", rec, statusCT, soapUIRequest(xtaA, "", `<ns:MessageSelector><ns:OtherCriteria><ns:Extensions/></ns:OtherCriteria></ns:MessageSelector>`), 400, "env:Sender", "UnsupportedExtensionException"},
		{"reply without case", e.base + PathSender, actionCT(portSender, "sendMessage"), soapUIRequest(xtaA, replyHeader(NewMessageID("x"), xtaA, "nothing", "Bescheid"), `<ns:ContentContainer><ns:Message id="m">QQ==</ns:Message></ns:ContentContainer>`), 400, "env:Sender", "ParameterIsNotValidException"},
		{"reply in someone else's name", e.base + PathSender, actionCT(portSender, "sendMessage"), soapUIRequest(xtaA, replyHeader(NewMessageID("x"), xtaB, NewMessageID("amtsbote"), "Bescheid"), `<ns:ContentContainer><ns:Message id="m">QQ==</ns:Message></ns:ContentContainer>`), 400, "env:Sender", "PermissionDeniedException"},
		{"reply to an unknown case", e.base + PathSender, actionCT(portSender, "sendMessage"), soapUIRequest(xtaA, replyHeader(NewMessageID("x"), xtaA, NewMessageID("amtsbote"), "Bescheid"), `<ns:ContentContainer><ns:Message id="m">QQ==</ns:Message></ns:ContentContainer>`), 400, "env:Sender", "ParameterIsNotValidException"},
		{"bad base64", e.base + PathSender, actionCT(portSender, "sendMessage"), soapUIRequest(xtaA, replyHeader(NewMessageID("x"), xtaA, NewMessageID("amtsbote"), "Bescheid"), `<ns:ContentContainer><ns:Message id="m">*not base64*</ns:Message></ns:ContentContainer>`), 400, "env:Sender", "ParameterIsNotValidException"},
		{"unknown path", e.base + "/services/XTACore/Reader", statusCT, soapUIRequest(xtaA, "", okBody), 400, "env:Sender", "NotImplementedException"},
		{"wrong media type", rec, "application/json", []byte(`{}`), 400, "env:Sender", "ParameterIsNotValidException"},
		{"XTA 3.1.0 namespace", rec, statusCT, []byte(strings.ReplaceAll(string(soapUIRequest(xtaA, "", okBody)), NS, "https://xoev.de/transport/xta/core/3.1.0")), 400, "env:Sender", "ParameterIsNotValidException"},
		{"mustUnderstand header", rec, statusCT, soapUIRequest(xtaA, `<sec:Security xmlns:sec="urn:example:security" soap:mustUnderstand="true"/>`, okBody), 500, "env:MustUnderstand", ""},
		{"ignorable unknown header", rec, statusCT, soapUIRequest(xtaA, `<x:Trace xmlns:x="urn:example:trace">1</x:Trace>`, okBody), 200, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, c, tc.url, tc.ct, tc.body)
			code, exc := r.fault()
			if r.status != tc.status || code != tc.code || exc != tc.exc {
				t.Fatalf("HTTP %d %s %q, want %d %s %q\n%.2000s", r.status, code, exc, tc.status, tc.code, tc.exc, r.root)
			}
			if !strings.HasPrefix(r.ct, "application/soap+xml") {
				t.Errorf("fault with Content-Type %q", r.ct)
			}
			if tc.exc != "" {
				v.AddMessage(tc.name, r.root, r.parts)
			}
		})
	}

	t.Run("SOAP 1.1 envelope gets VersionMismatch", func(t *testing.T) {
		req := []byte(`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns="` + NS + `"><soapenv:Body>` + okBody + `</soapenv:Body></soapenv:Envelope>`)
		for _, ct := range []string{"text/xml; charset=utf-8", statusCT} {
			resp, err := c.Post(rec, ct, bytes.NewReader(req))
			if err != nil {
				t.Fatal(err)
			}
			doc := etree.NewDocument()
			_, _ = doc.ReadFrom(resp.Body)
			resp.Body.Close()
			fc := doc.FindElement("//Fault/faultcode")
			up := doc.FindElement("//Header/Upgrade/SupportedEnvelope")
			if resp.StatusCode != 500 || fc == nil || !strings.HasSuffix(fc.Text(), ":VersionMismatch") || up == nil {
				s, _ := doc.WriteToString()
				t.Fatalf("Content-Type %s: HTTP %d, want 500 with a SOAP 1.1 VersionMismatch and Upgrade:\n%s", ct, resp.StatusCode, s)
			}
		}
	})

	// A GET is no SOAP request: it gets the text that says where the WSDL is
	// (TestGetOfAPortSaysWhereTheWSDLIs).
	t.Run("GET", func(t *testing.T) {
		resp, err := c.Get(rec)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
			t.Fatalf("GET: HTTP %d, Allow %q, want 405 with Allow: POST", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
	v.Run()
}
