package xta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/adaptertest"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// reader is an office's own XTA reader endpoint (core.reader deliverMessage) on
// loopback with TLS client authentication. It decodes what arrives itself (etree and
// mime/multipart, not this package's parser) and answers in its mode.
type reader struct {
	mode    adaptertest.Mode
	srv     *httptest.Server
	release chan struct{}

	mu   sync.Mutex
	got  []adaptertest.Received
	raw  [][]byte // root XML of each request, for schema checks
	xops []map[string][]byte
}

func newReader(t testing.TB, mode adaptertest.Mode) *reader {
	p := newPKI(t)
	r := &reader{mode: mode, release: make(chan struct{})}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	cfg := p.serverTLS()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	r.srv.TLS = cfg
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	t.Cleanup(func() { close(r.release) })
	return r
}

func (r *reader) Target() adapters.Target {
	return adapters.Target{Channel: channel.XTA, Endpoint: r.srv.URL + "/services/XTACore/Reader",
		Params: map[string]string{ParamMode: ModePush, ParamIdentifier: "dvdv:14612000bau"}}
}

func (r *reader) Received() []adaptertest.Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]adaptertest.Received(nil), r.got...)
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func (r *reader) decode(req *http.Request) (adaptertest.Received, []byte, map[string][]byte) {
	var g adaptertest.Received
	problem := func(s string) (adaptertest.Received, []byte, map[string][]byte) { g.Problem = s; return g, nil, nil }
	if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 || req.TLS.PeerCertificates[0].Subject.CommonName != "gateway" {
		return problem("no gateway client certificate")
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return problem("reading: " + err.Error())
	}
	mt, params, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil {
		return problem("content type: " + err.Error())
	}
	root, parts := body, map[string][]byte{}
	action := params["action"]
	if mt == "multipart/related" {
		if params["type"] != "application/xop+xml" {
			return problem("multipart of type " + params["type"])
		}
		_, si, _ := mime.ParseMediaType(params["start-info"])
		action = si["action"]
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		root = nil
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return problem("multipart: " + err.Error())
			}
			b, _ := io.ReadAll(p)
			cid := strings.Trim(p.Header.Get("Content-Id"), "<>")
			if cid == strings.Trim(params["start"], "<>") {
				root = b
			} else {
				parts[cid] = b
			}
		}
	} else if mt != "application/soap+xml" {
		return problem("media type " + mt)
	}
	if action != ActionBase+"core.reader/deliverMessage" {
		return problem("action " + action)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(root); err != nil {
		return problem("not XML: " + err.Error())
	}
	if doc.Root() == nil || doc.Root().NamespaceURI() != NSSoap12 {
		return problem("not SOAP 1.2")
	}
	content := func(el *etree.Element) ([]byte, bool) {
		if el == nil {
			return nil, false
		}
		if inc := el.SelectElement("Include"); inc != nil {
			b, ok := parts[strings.TrimPrefix(inc.SelectAttrValue("href", ""), "cid:")]
			return b, ok
		}
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(el.Text()), ""))
		return b, err == nil
	}
	md := doc.FindElement("//Header/MessageMetaData")
	if md == nil {
		return problem("no MessageMetaData")
	}
	if id := md.FindElement("XTAMessageID"); id == nil || !strings.HasPrefix(id.Text(), MessageIDPrefix) {
		return problem("no XTAMessageID")
	}
	if rd := md.FindElement("Reader/Identifier"); rd == nil || rd.Text() != "dvdv:14612000bau" {
		return problem("wrong Reader")
	}
	for _, p := range md.FindElements("MessageProperty") {
		switch p.FindElement("Key").Text() {
		case "amtsbote:deliveryId":
			g.DeliveryID = p.FindElement("Value").Text()
		case "amtsbote:submissionId":
			g.SubmissionID = p.FindElement("Value").Text()
		}
	}
	pkg, ok := content(doc.FindElement("//Body/ContentContainer/Message"))
	if !ok {
		return problem("no readable Message")
	}
	g.Package, g.PackageSHA256 = pkg, hexSum(pkg)
	g.Attachments, g.AttachmentSHA256 = map[string][]byte{}, map[string]string{}
	for _, a := range doc.FindElements("//Body/ContentContainer/Attachment") {
		b, ok := content(a)
		if !ok {
			return problem("unreadable attachment")
		}
		// The attachment id is the part of the xs:ID before the submission id.
		id := strings.TrimSuffix(strings.SplitN(a.SelectAttrValue("id", ""), "-", 2)[1], "-"+g.SubmissionID)
		g.Attachments[id], g.AttachmentSHA256[id] = b, hexSum(b)
	}
	return g, root, parts
}

func (r *reader) serve(w http.ResponseWriter, req *http.Request) {
	g, root, parts := r.decode(req)
	r.mu.Lock()
	r.got = append(r.got, g)
	r.raw = append(r.raw, root)
	r.xops = append(r.xops, parts)
	r.mu.Unlock()
	answer := func(status int, body string) {
		w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:x="`+NS+`"><s:Body>`+body+`</s:Body></s:Envelope>`)
	}
	exc := func(code, name string) string {
		return `<s:Fault><s:Code><s:Value>` + code + `</s:Value></s:Code><s:Reason><s:Text xml:lang="de">nein</s:Text></s:Reason><s:Detail><x:` + name +
			`><x:ErrorCode listURI="` + ListFehlernummer + `" listVersionID="1.0"><code>1</code></x:ErrorCode></x:` + name + `></s:Detail></s:Fault>`
	}
	switch r.mode {
	case adaptertest.ModeAccept:
		answer(200, `<x:ContentContainerReply/>`)
	case adaptertest.ModeTransient:
		answer(500, exc("s:Receiver", "TechnicalProblemException"))
	case adaptertest.ModePermanent:
		answer(400, exc("s:Sender", "PermissionDeniedException"))
	case adaptertest.ModeHang:
		select {
		case <-r.release:
		case <-req.Context().Done():
		}
	}
}

type harness struct{ t testing.TB }

func (h harness) Features() adaptertest.Features {
	return adaptertest.Features{CarriesPackage: true, CarriesAttachments: true, Concurrency: 16}
}

func (h harness) NewAdapter(t testing.TB, logger *slog.Logger) adapters.Adapter {
	a, err := NewAdapter(AdapterOptions{AuthorID: gatewayID, TLS: newPKI(t).clientTLS("gateway"), Logger: logger, MTOMThreshold: 1024})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (h harness) NewReceiver(t testing.TB, mode adaptertest.Mode) adaptertest.Receiver {
	return newReader(t, mode)
}

func TestAdapterConformance(t *testing.T) {
	adaptertest.Run(t, harness{t})
}

// TestDeliverMessageValidates: what the push adapter sends validates against the
// official XSDs, inline and as MTOM.
func TestDeliverMessageValidates(t *testing.T) {
	v := xtatest.NewValidator(t)
	for _, threshold := range []int64{-1, 256} {
		a, err := NewAdapter(AdapterOptions{AuthorID: gatewayID, TLS: newPKI(t).clientTLS("gateway"), MTOMThreshold: threshold, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		r := newReader(t, adaptertest.ModeAccept)
		d := adaptertest.NewDelivery(r.Target())
		// A Nachreichung: its case's properties are in the message, schema-valid.
		d.CaseID = "4c1f0e52-0000-4000-8000-000000000001"
		c, err := a.Deliver(t.Context(), d)
		if err != nil || c.Pending || c.Reference != MessageID("amtsbote", d.SubmissionID) {
			t.Fatalf("Deliver: %+v, %v", c, err)
		}
		a.Close()
		r.mu.Lock()
		root, parts := r.raw[0], r.xops[0]
		r.mu.Unlock()
		for _, want := range []string{"<xta:Key>amtsbote:caseId</xta:Key><xta:Value>" + d.CaseID + "</xta:Value>",
			"<xta:Key>amtsbote:caseMessageId</xta:Key><xta:Value>" + MessageID("amtsbote", d.CaseID) + "</xta:Value>"} {
			if !bytes.Contains(root, []byte(want)) {
				t.Errorf("deliverMessage lacks %s:\n%s", want, root)
			}
		}
		if threshold > 0 && len(parts) == 0 {
			t.Error("no XOP parts above the threshold")
		}
		v.AddMessage(fmt.Sprintf("deliverMessage (XOP threshold %d)", threshold), root, parts)
	}
	v.Run()
}

// TestUnreachableEndpointSaysSo: a push endpoint that refuses the connection is
// reported as unreachable, with the dial's error. It was reported as
// "xta: building deliverMessage: io: read/write on closed pipe": the transport
// closed the body it had not read, and the writer's error was taken for the cause.
func TestUnreachableEndpointSaysSo(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	a, err := NewAdapter(AdapterOptions{AuthorID: gatewayID, TLS: newPKI(t).clientTLS("gateway"), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	tg := newReader(t, adaptertest.ModeAccept).Target()
	tg.Endpoint = "https://" + addr + "/xta"
	for range 3 {
		_, err = a.Deliver(t.Context(), adaptertest.NewDelivery(tg))
		var de *DeliverError
		if !errors.As(err, &de) || de.Public != "XTA endpoint unreachable" || strings.Contains(err.Error(), "closed pipe") || adapters.IsPermanent(err) {
			t.Fatalf("Deliver to a closed port: %v, want a transient \"XTA endpoint unreachable\" with the dial's error", err)
		}
	}
}

func TestAdapterPull(t *testing.T) {
	a, err := NewAdapter(AdapterOptions{AuthorID: gatewayID, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	tgt := adapters.Target{Channel: channel.XTA, Endpoint: xtaA, Params: map[string]string{ParamMode: ModePull}}
	if err := a.CheckTarget(tgt); err != nil {
		t.Fatal(err)
	}
	d := adaptertest.NewDelivery(tgt)
	opened := false
	d.Package = func(context.Context) (io.ReadCloser, error) {
		opened = true
		return nil, errors.New("must not be read")
	}
	c, err := a.Deliver(t.Context(), d)
	if err != nil || !c.Pending || c.Receiver == "" || c.At.IsZero() || opened {
		t.Fatalf("pull Deliver: %+v, %v (package opened %v)", c, err, opened)
	}
	for _, bad := range []adapters.Target{
		{Endpoint: "", Params: map[string]string{ParamMode: ModePull}},
		{Endpoint: "http://office.example/xta", Params: map[string]string{ParamMode: ModePush}},
		{Endpoint: "x", Params: map[string]string{ParamMode: "carrier-pigeon"}},
	} {
		var te *adapters.TargetError
		if err := a.CheckTarget(bad); !errors.As(err, &te) {
			t.Errorf("CheckTarget(%v) = %v, want a TargetError", bad, err)
		}
		if _, err := a.Deliver(t.Context(), adaptertest.NewDelivery(bad)); !adapters.IsPermanent(err) {
			t.Errorf("Deliver to %v: %v, want permanent", bad, err)
		}
	}

	// A gateway without an XTA server cannot serve a pull office: its packages
	// went to a message box nobody could reach. Push still works there.
	off, err := NewAdapter(AdapterOptions{AuthorID: gatewayID, NoServer: true, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	var te *adapters.TargetError
	if err := off.CheckTarget(tgt); !errors.As(err, &te) || !strings.Contains(te.Reason, "xta.listen") {
		t.Fatalf("pull without a server: %v", err)
	}
	if _, err := off.Deliver(t.Context(), adaptertest.NewDelivery(tgt)); !adapters.IsPermanent(err) {
		t.Fatalf("Deliver to pull without a server: %v, want permanent (next channel)", err)
	}
	if err := off.CheckTarget(adapters.Target{Endpoint: "https://fv.example/xta"}); err != nil {
		t.Fatalf("push without a server: %v", err)
	}
}

// TestPushThroughBroker: a push office gets the package from the broker's dispatcher
// by deliverMessage; its answer is the delivery, with the Zustellbestaetigung.
func TestPushThroughBroker(t *testing.T) {
	r := newReader(t, adaptertest.ModeAccept)
	e := startEnvChans(t, nil, map[string]adapters.Target{officeB: r.Target()})
	pkg := pkgBytes(150_000)
	id := e.receive(t, officeB, pkg, []byte("%PDF-1.7 Lageplan"))
	s := e.wait(t, id, "delivered")
	got := r.Received()
	if len(got) != 1 || got[0].Problem != "" || !bytes.Equal(got[0].Package, pkg) || got[0].SubmissionID != id || got[0].DeliveryID != s.DeliveryID {
		t.Fatalf("reader saw %+v", got)
	}
	if rc, err := e.b.Receipt(t.Context(), officeB, id, "Zustellbestaetigung"); err != nil || !bytes.Contains(rc, []byte("xta")) {
		t.Fatalf("receipt %q, %v", rc, err)
	}
}

// TestDeliverLogReasonQuotesNoAnswerText: a reader that answers 2xx with
// markup that does not parse — an unescaped "&" before the words it echoes of
// the application — is tried again, and the log's reason (adapters.LogReason,
// the broker's "delivery attempt failed") does not carry the parser's quote of
// those words, while the error for the case's events does.
func TestDeliverLogReasonQuotesNoAnswerText(t *testing.T) {
	p := newPKI(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
		io.WriteString(w, `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>Antrag von Hildtraut &Quellenmeyer-Zyxw eingegangen</s:Body></s:Envelope>`)
	}))
	cfg := p.serverTLS()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()
	a, err := NewAdapter(AdapterOptions{AuthorID: gatewayID, TLS: p.clientTLS("gateway"), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	tg := adapters.Target{Channel: channel.XTA, Endpoint: srv.URL + "/services/XTACore/Reader",
		Params: map[string]string{ParamMode: ModePush, ParamIdentifier: "dvdv:14612000bau"}}
	_, err = a.Deliver(t.Context(), adaptertest.NewDelivery(tg))
	var de *DeliverError
	if !errors.As(err, &de) || de.Public != "XTA endpoint answered without a SOAP message" || adapters.IsPermanent(err) {
		t.Fatalf("Deliver: %v, want a transient \"answered without a SOAP message\"", err)
	}
	if !strings.Contains(err.Error(), "Quellenmeyer") {
		t.Errorf("the error for the case's events lost the parser's words: %v", err)
	}
	if lr := adapters.LogReason(err); strings.Contains(lr, "Quellenmeyer") || !strings.Contains(lr, "line 1") {
		t.Errorf("log reason %q: want the line, not the answer's words", lr)
	}
}
