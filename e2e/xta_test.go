package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/wire"
	"github.com/amtsbote/amtsbote/xta/xtaclient"
	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// TestXTADemo: `amtsbote demo -channel xta` — the demo Fachverfahren pulls the
// application by XTA 2 (getStatusList, getMessage, close) and answers with a
// Bescheid by sendMessage.
func TestXTADemo(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := run(t, ctx, dir, "demo", "-channel", "xta", "-receipts", filepath.Join(dir, "receipts"))
	if err != nil {
		t.Fatalf("demo -channel xta: %v\n%s", err, out)
	}
	for _, want := range []string{"getStatusList: urn:de:xta:messageid:", "getMessage: antragspaket-", "SHA-256 matches the metadata",
		"portal signature verified", "close urn:de:xta:messageid:", "delivered by xta", "sendMessage urn:de:xta:messageid:",
		"replied xta Bescheid", "fetched by xta", "→ fetched → delivered → replied", "reached Stadt Dresden by xta",
		"Bescheid of the office read (application/xml", `bytes, named "bescheid.xml")`} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	demoNachreichung(t, out)
	if strings.Contains(out, "DATA RACE") {
		t.Errorf("race detected:\n%s", out)
	}
}

const xtaDresden = "urn:de:amtsbote:dev:xta:" + gateway.DemoOfficeID

var xtaListenRe = regexp.MustCompile(`XTA 2 transport service listening.*addr=(\S+)`)

// xtaGateway starts the binary with the XTA listener and Dresden pulling by XTA, and
// returns the process and the XTA base URL.
func xtaGateway(t *testing.T, dir string) (*proc, string) {
	t.Helper()
	overlay := filepath.Join(dir, "directory.yaml")
	dirYAML := fmt.Sprintf(`offices:
  - id: %s
    name: "Stadt Dresden, Abt. Allgemeine Verwaltung/Grundsatz"
    hausanschrift: {strasse: "Junghansstraße 2", plz: "01277", ort: Dresden}
    kanaele:
      - {kind: %s, level: %d}
      - {kind: %s, level: %d}
`, gateway.DemoOfficeID, channel.XTA, channel.Level(channel.XTA), channel.Mailbox, channel.Level(channel.Mailbox))
	if err := os.WriteFile(overlay, []byte(dirYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
xta:
  listen: 127.0.0.1:0
directory:
  files: [%q]
offices:
  %s:
    channels:
      xta:
        endpoint: %q
        params: {mode: pull}
`, filepath.Join(dir, "data"), overlay, gateway.DemoOfficeID, xtaDresden)
	path := filepath.Join(dir, "amtsbote.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := serve(t, dir, nil, "-config", path)
	// The line is written before the REST address that serve waits for, but on
	// another pipe, copied by another goroutine: it may not be in the buffer
	// yet (a run under load read it too early once).
	var m []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m = xtaListenRe.FindStringSubmatch(p.stderr.String()); m != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no XTA listener in the log:\n%s", p.stderr.String())
		}
	}
	return p, "https://" + strings.Trim(m[1], `"`) + "/services/XTACore/"
}

// devTLS is the client TLS of an office certificate from the gateway's dev PKI.
func devTLS(t *testing.T, pkiDir, certFile, keyFile string) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(pkiDir, "dev-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: roots}
}

// strangerCert issues a client certificate from the gateway's own dev CA that no
// XTA account has pinned.
func strangerCert(t *testing.T, pkiDir string) (certFile, keyFile string) {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(pkiDir, "dev-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cas, err := signing.ParseCertificatesPEM(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(pkiDir, "dev-ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := signing.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "stranger-office"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, cas[0], &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "stranger.pem"), filepath.Join(dir, "stranger-key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestXTAReplayOnBinary replays requests in the style of the KoSIT SoapUI project
// for the nine operations of the gateway's XTA ports against the running binary,
// over TLS with the demo office's client certificate, and validates every answer
// with xmllint against the official XTA 2 Version 5 schemas. A client certificate
// of the same CA that no account pinned is refused with PermissionDeniedException.
func TestXTAReplayOnBinary(t *testing.T) {
	v := xtatest.NewValidator(t)
	dir := t.TempDir()
	p, base := xtaGateway(t, dir)
	dataDir := filepath.Join(dir, "data")
	pkiDir := filepath.Join(dataDir, "pki")
	ctx := context.Background()

	// Two applications for Dresden; their exact signed bytes are kept.
	portalC := portalClient(t, dataDir, p.url)
	var subs []string
	var pkgs [][]byte
	for range 2 {
		raw, err := portalC.Sign(paket.ExampleWith(maengelKey, paket.NewMessageID(), time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		res, err := portalC.SubmitRaw(ctx, raw)
		if err != nil || res.Status != 201 {
			t.Fatalf("submit: %+v %v", res, err)
		}
		subs, pkgs = append(subs, res.SubmissionID), append(pkgs, raw)
	}
	waitState := func(id string, want wire.State) *wire.StatusView {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, err := portalC.Status(ctx, id)
			if err == nil && st.State == want {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: state %v (%v), want %s\n%s", id, st, err, want, p.stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, id := range subs {
		waitState(id, wire.StateHandedOver)
	}

	office := xtaclient.Party{Identifier: xtaDresden, Scheme: "xoev", Name: "Stadt Dresden", Directory: "DVDV"}
	c, err := xtaclient.New(xtaclient.Options{BaseURL: base, Party: office, TLS: devTLS(t, pkiDir,
		filepath.Join(pkiDir, "tls-client-"+gateway.DemoOfficeID+".pem"), filepath.Join(pkiDir, "tls-client-"+gateway.DemoOfficeID+"-key.pem"))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()

	// call posts one SoapUI-style request and validates the answer.
	call := func(name, port, op, header, body string, wantFault string) *xtaclient.Response {
		t.Helper()
		r, err := c.Post(ctx, port, xtaclient.ContentType(xtaclient.Action(port, op)), xtaclient.Envelope(office, header, body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch {
		case wantFault == "" && r.Fault != nil:
			t.Fatalf("%s: %v\n%s", name, r.Fault, r.Root)
		case wantFault != "" && (r.Fault == nil || r.Fault.Exception != wantFault):
			t.Fatalf("%s: want %s, got HTTP %d\n%s", name, wantFault, r.Status, r.Root)
		}
		v.AddMessage(name, r.Root, r.Parts)
		return r
	}
	text := func(r *xtaclient.Response, path string) []string {
		doc := etree.NewDocument()
		_ = doc.ReadFromBytes(r.Root)
		var out []string
		for _, el := range doc.FindElements(path) {
			out = append(out, strings.TrimSpace(el.Text()))
		}
		return out
	}
	caseID := "urn:de:xta:messageid:amtsbote-sn:" + subs[0]

	// 1 checkAccountActive.
	call("checkAccountActive", xtaclient.PortTransportBase, "checkAccountActive", "", "", "")
	// 2 getStatusList: both applications, oldest first; MaxMessages 1 leaves one pending.
	r := call("getStatusList", xtaclient.PortRecipient, "getStatusList", "", xtaclient.SelectorBody(xtaclient.Query{MaxMessages: 1}), "")
	if ids := text(r, "//MessageStatusList/MessageMetaData/XTAMessageID"); len(ids) != 1 || ids[0] != caseID {
		t.Errorf("getStatusList listed %v, want [%s]", ids, caseID)
	}
	if got := text(r, "//MessageBoxStatus/MessagesRemaining/MessagesPending"); len(got) != 1 || got[0] != "1" {
		t.Errorf("MessagesPending %v, want 1", got)
	}
	// 3 getMessage: the exact signed package, with its digest in the metadata.
	// The raw call's answer is checked against the XSDs (v); the client's below is
	// checked for content.
	call("getMessage", xtaclient.PortRecipient, "getMessage", "", xtaclient.FetchBody(caseID), "")
	m, err := c.GetMessage(ctx, caseID)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pkgs[0])
	if !bytes.Equal(m.Message.Data, pkgs[0]) || m.MetaData.Property("amtsbote:packageSha256") != hex.EncodeToString(sum[:]) || len(m.Attachments) != 1 {
		t.Fatalf("getMessage: %d bytes (want %d), digest %q, %d attachments", len(m.Message.Data), len(pkgs[0]),
			m.MetaData.Property("amtsbote:packageSha256"), len(m.Attachments))
	}
	// 4 getTransportReport before close: open (0, the schema's traffic light).
	r = call("getTransportReport", xtaclient.PortTransportBase, "getTransportReport", "", xtaclient.ReportBody(caseID), "")
	if got := text(r, "//TransportReport/MessageStatus/Status"); len(got) != 1 || got[0] != "0" {
		t.Errorf("status before close %v, want 0", got)
	}
	// 5 close: delivered, with the Zustellbestätigung for the portal.
	call("close", xtaclient.PortRecipient, "close", "", xtaclient.FetchBody(caseID), "")
	waitState(subs[0], wire.StateDelivered)
	if _, err := portalC.Receipt(ctx, subs[0], "zustellung"); err != nil {
		t.Errorf("Zustellbestaetigung after close: %v", err)
	}
	// 6 createMessageID.
	r = call("createMessageID", xtaclient.PortSender, "createMessageID", "", "", "")
	replyID := strings.Join(text(r, "//Body/XTAMessageID"), "")
	if !strings.HasPrefix(replyID, "urn:de:xta:messageid:") {
		t.Fatalf("createMessageID gave %q", replyID)
	}
	// 7 lookupService: the gateway takes replies, an unknown reader does not.
	gw := m.MetaData.Author
	r = call("lookupService", xtaclient.PortSender, "lookupService", "", xtaclient.LookupBody([]xtaclient.Lookup{{Reader: gw}, {Reader: xtaclient.Party{Identifier: "dvdv:unknown", Scheme: "xoev"}}}), "")
	if got := text(r, "//LookupServiceResult/IsServiceAvailableValue/ServiceIsAvailable"); strings.Join(got, ",") != "true,false" {
		t.Errorf("lookupService %v, want [true false]", got)
	}
	// 8 sendMessage: the Bescheid back, naming the case by InReplyTo.
	bescheid := []byte(`<Bescheid xmlns="urn:amtsbote:demo:bescheid">Der Papierkorb wird geleert.</Bescheid>`)
	md := xtaclient.MetaData{XTAMessageID: replyID, Reader: gw, Author: office, BusinessScenario: "Antwort", MessageType: "Bescheid",
		MessageSchema: "urn:amtsbote:demo:bescheid", MessageSize: int64(len(bescheid)), Properties: []xtaclient.Property{{Key: "InReplyTo", Value: caseID}}}
	call("sendMessage", xtaclient.PortSender, "sendMessage", xtaclient.MetaDataXML(md), `
      <ns:ContentContainer>
         <ns:Message contentType="application/xml" encoding="UTF-8" filename="bescheid.xml" id="m1" size="`+fmt.Sprint(len(bescheid))+`">`+base64.StdEncoding.EncodeToString(bescheid)+`</ns:Message>
      </ns:ContentContainer>`, "")
	// 9 sendMessageSync, as MTOM/XOP with an attachment.
	md2 := md
	md2.XTAMessageID, md2.MessageType = replyID+"-2", "Rueckfrage"
	env := xtaclient.Envelope(office, xtaclient.MetaDataXML(md2), `
      <ns:ContentContainer>
         <ns:Message contentType="text/plain" filename="rueckfrage.txt" id="m2"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:msg@office"/></ns:Message>
         <ns:Attachment contentType="application/pdf" filename="plan.pdf" id="a2"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:att@office"/></ns:Attachment>
      </ns:ContentContainer>`)
	ct, body := xtaclient.MTOM(env, xtaclient.Action(xtaclient.PortSender, "sendMessageSync"),
		map[string][]byte{"msg@office": []byte("Bitte Lageplan nachreichen."), "att@office": []byte("%PDF-1.7\n%%EOF\n")})
	r, err = c.Post(ctx, xtaclient.PortSender, ct, body)
	if err != nil || r.Fault != nil {
		t.Fatalf("sendMessageSync: %v %v", err, r.Fault)
	}
	v.AddMessage("sendMessageSync", r.Root, r.Parts)
	st := waitState(subs[0], wire.StateDelivered)
	if len(st.Replies) != 2 {
		t.Errorf("replies after sendMessage and sendMessageSync: %+v", st.Replies)
	}
	// The reply's own transport report: stored (1, green).
	r = call("getTransportReport reply", xtaclient.PortTransportBase, "getTransportReport", "", xtaclient.ReportBody(replyID), "")
	if got := text(r, "//TransportReport/MessageStatus/Status"); len(got) != 1 || got[0] != "1" {
		t.Errorf("report of the reply %v, want 1", got)
	}
	// Faults are schema-valid too: an unknown id, and a stranger's certificate.
	call("getMessage unknown", xtaclient.PortRecipient, "getMessage", "", xtaclient.FetchBody("urn:de:xta:messageid:amtsbote-sn:00000000-0000-4000-8000-000000000000"), xtaclient.InvalidMessageID)
	sc, sk := strangerCert(t, pkiDir)
	stranger, err := xtaclient.New(xtaclient.Options{BaseURL: base, Party: office, TLS: devTLS(t, pkiDir, sc, sk)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.CloseIdleConnections()
	for _, op := range []struct{ port, op, body string }{
		{xtaclient.PortRecipient, "getStatusList", xtaclient.SelectorBody(xtaclient.Query{})},
		{xtaclient.PortRecipient, "getMessage", xtaclient.FetchBody(caseID)},
		{xtaclient.PortTransportBase, "checkAccountActive", ""},
	} {
		r, err := stranger.Post(ctx, op.port, xtaclient.ContentType(xtaclient.Action(op.port, op.op)), xtaclient.Envelope(office, "", op.body))
		if err != nil {
			t.Fatal(err)
		}
		if r.Fault == nil || r.Fault.Exception != xtaclient.PermissionDenied || r.Status != 400 {
			t.Fatalf("stranger %s: HTTP %d\n%s", op.op, r.Status, r.Root)
		}
		v.AddMessage("stranger "+op.op, r.Root, r.Parts)
	}
	if l, err := c.GetStatusList(ctx, xtaclient.Query{}); err != nil || len(l.Messages) != 1 {
		t.Errorf("after close one application waits, got %+v %v", l, err)
	}

	v.Run() // every answer of the running binary against the official XTA schemas
	if strings.Contains(p.stderr.String(), "DATA RACE") {
		t.Errorf("race detected:\n%s", p.stderr.String())
	}
}
