package xta

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/submission"
)

// emptyDesk is an office desk without submissions. It implements every method
// itself (no embedded interface): a method it lacked was a nil call, which the
// server's recovery turned into an "internal error" fault, and the fuzzer
// reported that as the server's failure (getStatusList's count through Waiting).
type emptyDesk struct{}

var _ broker.OfficeDesk = emptyDesk{}

func (emptyDesk) Events(context.Context, string, string) ([]submission.Event, error) {
	return nil, broker.ErrNotFound
}
func (emptyDesk) GetWithEvents(context.Context, string, string) (*submission.Submission, []submission.Event, error) {
	return nil, nil, broker.ErrNotFound
}
func (emptyDesk) OpenPackage(context.Context, string, string, broker.Pickup) (*submission.Submission, io.ReadCloser, error) {
	return nil, nil, broker.ErrNotFound
}
func (emptyDesk) ReadCase(context.Context, string, string, broker.CaseRead) (*broker.Case, error) {
	return nil, broker.ErrNotFound
}
func (emptyDesk) Waiting(context.Context, string) ([]broker.WaitingEntry, error) { return nil, nil }
func (emptyDesk) Receipt(context.Context, string, string, string) ([]byte, error) {
	return nil, broker.ErrNotFound
}
func (emptyDesk) Decide(context.Context, string, string, broker.Decision) (*submission.Submission, error) {
	return nil, broker.ErrNotFound
}
func (emptyDesk) MarkProcessed(context.Context, string, string, bool, string, string) (*submission.Submission, error) {
	return nil, broker.ErrNotFound
}
func (emptyDesk) OpenReply(context.Context, string, string, string) (submission.Reply, io.ReadCloser, error) {
	return submission.Reply{}, nil, broker.ErrNotFound
}

func (emptyDesk) List(context.Context, string, broker.ListQuery) (broker.Page, error) {
	return broker.Page{}, nil
}
func (emptyDesk) Get(context.Context, string, string) (*submission.Submission, error) {
	return nil, broker.ErrNotFound
}
func (emptyDesk) OpenAttachment(context.Context, string, string, string, broker.Admit) (submission.Attachment, io.ReadCloser, error) {
	return submission.Attachment{}, nil, broker.ErrNotFound
}
func (emptyDesk) Confirm(context.Context, string, string, broker.Pickup) (*submission.Submission, error) {
	return nil, broker.ErrNotFound
}
func (emptyDesk) Reply(context.Context, string, string, broker.ReplyIn) (submission.Reply, error) {
	return submission.Reply{}, broker.ErrNotFound
}
func (emptyDesk) FindReply(context.Context, string, string) (*submission.Submission, submission.Reply, error) {
	return nil, submission.Reply{}, broker.ErrNotFound
}
func (emptyDesk) RecordFetch(context.Context, string, string, string, time.Time) (*submission.Submission, error) {
	return nil, broker.ErrNotFound
}
func (emptyDesk) FetchPackage(context.Context, string, string, string) (*submission.Submission, io.ReadCloser, error) {
	return nil, nil, broker.ErrNotFound
}

type anyOffice struct{}

func (anyOffice) ResolveOffice(context.Context, Party, *x509.Certificate) (string, error) {
	return "office", nil
}

func fuzzSeeds(f *testing.F) {
	f.Add(soapContentType(Action(portRecipient, "getStatusList")), soapUIRequest(xtaA, "", statusListBody(true, 3, zeroTime, zeroTime)))
	f.Add(soapContentType(Action(portRecipient, "getMessage")), soapUIRequest(xtaA, "", fetchBody(NewMessageID("amtsbote"))))
	f.Add(soapContentType(Action(portSender, "sendMessage")), soapUIRequest(xtaA, replyHeader("urn:x", xtaA, NewMessageID("amtsbote"), "Bescheid"),
		`<ns:ContentContainer><ns:Message id="m">QUJD</ns:Message><ns:Attachment id="a">RA==</ns:Attachment></ns:ContentContainer>`))
	body, ct := mtomRequest(f, soapUIRequest(xtaA, replyHeader("urn:x", xtaA, NewMessageID("amtsbote"), "Bescheid"),
		`<ns:ContentContainer><ns:Message id="m"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:p1@x"/></ns:Message></ns:ContentContainer>`),
		Action(portSender, "sendMessageSync"), map[string][]byte{"p1@x": []byte("hello")})
	f.Add(ct, body)
	f.Add("text/xml", []byte(`<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>`))
	f.Add(`multipart/related; boundary="b"; start="<r>"`, []byte("--b\r\nContent-Id: <r>\r\n\r\n<x/>\r\n--b--\r\n"))
}

// FuzzParseMessage: the SOAP/MTOM request parser never panics, and every failure
// maps to an XTA fault.
func FuzzParseMessage(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		m, err := parseMessage(ct, bytes.NewReader(body), 1<<20)
		if err != nil {
			if asFault(err) == nil {
				t.Fatal("no fault for a parse error")
			}
			return
		}
		if m.env == nil || m.env.Body == nil {
			t.Fatal("parsed without envelope and body")
		}
		if cc := m.env.Body.ContentContainer; cc != nil {
			for i := range cc.Message {
				_, _ = m.content(&cc.Message[i])
			}
			for i := range cc.Attachment {
				_, _ = m.content(&cc.Attachment[i])
			}
		}
	})
}

// FuzzServer: whatever arrives, the answer is a SOAP message (an answer or a fault),
// never a panic, never an error status without a fault body.
func FuzzServer(f *testing.F) {
	fuzzSeeds(f)
	p := newPKI(f)
	s, err := NewServer(Options{Desk: emptyDesk{}, Offices: anyOffice{}, AuthorID: gatewayID, Logger: discardLogger(), MaxMessageBytes: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	paths := []string{PathRecipient, PathSender, PathTransportBase}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		path := paths[len(body)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{p.clients["office-a"].Leaf}}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Body.Len() == 0 {
			t.Fatalf("HTTP %d with an empty body", rec.Code)
		}
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(rec.Body.Bytes()); err != nil {
			if !strings.HasPrefix(rec.Header().Get("Content-Type"), "multipart/") {
				t.Fatalf("answer is not XML: %v", err)
			}
			return
		}
		if rec.Code != http.StatusOK && doc.FindElement("//Fault") == nil {
			t.Fatalf("HTTP %d without a fault", rec.Code)
		}
		if rec.Code == http.StatusInternalServerError {
			if v := doc.FindElement("//Fault/Code/Value"); v != nil && v.Text() == "env:Receiver" {
				t.Fatalf("internal error for input %q: %s", body, rec.Body.Bytes())
			}
		}
	})
}
