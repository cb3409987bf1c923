package xtaclient

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The client against the real server is tested in package xta (TestClient); these
// are the answers that server never gives.

func TestNewChecksOptions(t *testing.T) {
	for _, o := range []Options{{BaseURL: "ftp://x", Party: Party{Identifier: "a"}}, {BaseURL: "https://x"}, {BaseURL: "::"}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	c, err := New(Options{BaseURL: "https://gw.example:8443/services/XTACore/", Party: Party{Identifier: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.URL(PortSender); got != "https://gw.example:8443/services/XTACore/Sender" {
		t.Errorf("URL %q", got)
	}
}

func serveOnce(t *testing.T, status int, ct, body string, check func(*http.Request, []byte)) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if check != nil {
			check(r, b)
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := New(Options{BaseURL: srv.URL, Party: Party{Identifier: "dvdv:1"}, MTOMThreshold: 4})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMTOMAnswerWithBase64PartAndEscapedCID(t *testing.T) {
	pkg := []byte("<Antragspaket/>")
	body := "--b\r\nContent-Type: application/xop+xml; type=\"application/soap+xml\"\r\nContent-ID: <root@x>\r\n\r\n" +
		`<e:Envelope xmlns:e="` + NSSoap12 + `" xmlns:x="` + NS + `"><e:Header><x:MessageMetaData><x:XTAMessageID>urn:1</x:XTAMessageID>` +
		`<x:MessageProperty><x:Key>k</x:Key><x:Value>v</x:Value></x:MessageProperty></x:MessageMetaData></e:Header><e:Body><x:ContentContainer>` +
		`<x:Message contentType="application/xml" filename="p.xml" size="15"><xop:Include xmlns:xop="` + NSXOP + `" href="cid:p%401"/></x:Message>` +
		`<x:Attachment filename="a.txt">` + base64.StdEncoding.EncodeToString([]byte("anlage")) + `</x:Attachment>` +
		"</x:ContentContainer></e:Body></e:Envelope>\r\n--b\r\nContent-ID: <p@1>\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(pkg) + "\r\n--b--\r\n"
	c := serveOnce(t, 200, `multipart/related; type="application/xop+xml"; start="<root@x>"; boundary=b`, body, func(r *http.Request, b []byte) {
		if !strings.Contains(r.Header.Get("Content-Type"), `action="https://xoev.de/transport/xta/core/core.recipient/getMessage"`) {
			t.Errorf("request Content-Type %q", r.Header.Get("Content-Type"))
		}
	})
	m, err := c.GetMessage(context.Background(), "urn:1")
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Message.Data) != string(pkg) || !m.Message.XOP || string(m.Attachments[0].Data) != "anlage" || m.MetaData.Property("k") != "v" {
		t.Errorf("message %+v", m)
	}
}

func TestFaultsAndNonSOAPAnswers(t *testing.T) {
	fault := `<env:Envelope xmlns:env="` + NSSoap12 + `"><env:Body><env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code>` +
		`<env:Reason><env:Text xml:lang="de">Technisches Problem</env:Text></env:Reason><env:Detail><xta:TechnicalProblemException xmlns:xta="` + NS + `">` +
		`<xta:ErrorCode listURI="l" listVersionID="1.0"><code>9000</code></xta:ErrorCode><xta:Detail>later</xta:Detail></xta:TechnicalProblemException>` +
		`</env:Detail></env:Fault></env:Body></env:Envelope>`
	c := serveOnce(t, 500, "application/soap+xml; charset=utf-8", fault, nil)
	err := c.Close(context.Background(), "urn:1")
	var f *Fault
	if !errors.As(err, &f) || !IsException(err, TechnicalProblem) || f.Code != "Receiver" || f.ErrorCode != "9000" || f.Detail != "later" || f.HTTPStatus != 500 {
		t.Errorf("fault %#v", err)
	}
	c = serveOnce(t, 502, "text/html", "<html>Bad Gateway</html>", nil)
	if err := c.CheckAccountActive(context.Background()); err == nil || errors.As(err, &f) {
		t.Errorf("a proxy's HTML page: %v", err)
	}
}

func TestSendMessageGoesMTOMAboveTheThreshold(t *testing.T) {
	ok := `<env:Envelope xmlns:env="` + NSSoap12 + `"><env:Body/></env:Envelope>`
	c := serveOnce(t, 200, "application/soap+xml", ok, func(r *http.Request, b []byte) {
		ct := r.Header.Get("Content-Type")
		if !strings.HasPrefix(ct, "multipart/related") || !strings.Contains(ct, "core.sender/sendMessage") {
			t.Errorf("Content-Type %q", ct)
		}
		for _, want := range []string{"<ns:MessageMetaData>", "<ns:Key>InReplyTo</ns:Key>", `href="cid:message@xtaclient"`, "Bescheid-Inhalt", "QUJD"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("request lacks %q:\n%s", want, b)
			}
		}
	})
	out := Reply(MetaData{XTAMessageID: "urn:case", Author: Party{Identifier: "gw"}}, "urn:reply", "Bescheid",
		Content{ContentType: "application/xml", Data: []byte("Bescheid-Inhalt")}, Content{Data: []byte("ABC")})
	if err := c.SendMessage(context.Background(), out); err != nil {
		t.Fatal(err)
	}
}
