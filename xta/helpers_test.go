package xta

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/xta/xtaclient"
)

// ---- a test CA with server and client certificates ----

type testPKI struct {
	caPool  *x509.CertPool
	server  tls.Certificate
	clients map[string]tls.Certificate // by name
}

var (
	pkiOnce sync.Once
	pkiVal  *testPKI
	pkiErr  error
)

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pkiVal, pkiErr = makePKI() })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pkiVal
}

func makePKI() (*testPKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "amtsbote XTA test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &testPKI{caPool: x509.NewCertPool(), clients: map[string]tls.Certificate{}}
	p.caPool.AddCert(ca)
	issue := func(serial int64, cn string, server bool) (tls.Certificate, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, err
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return tls.Certificate{}, err
		}
		leaf, _ := x509.ParseCertificate(der)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
	}
	if p.server, err = issue(2, "xta.amtsbote.test", true); err != nil {
		return nil, err
	}
	for i, name := range []string{"office-a", "office-b", "gateway", "stranger"} {
		c, err := issue(int64(10+i), name, false)
		if err != nil {
			return nil, err
		}
		p.clients[name] = c
	}
	return p, nil
}

func (p *testPKI) serverTLS() *tls.Config {
	return ServerTLSConfig(p.server, p.caPool)
}

func (p *testPKI) clientTLS(name string) *tls.Config {
	c := &tls.Config{RootCAs: p.caPool, MinVersion: tls.VersionTLS12}
	if name != "" {
		c.Certificates = []tls.Certificate{p.clients[name]}
	}
	return c
}

// ---- a SOAP client in the style of the KoSIT SoapUI requests ----

type soapResp struct {
	status int
	ct     string
	root   []byte
	parts  map[string][]byte
	doc    *etree.Document
}

// splitMTOM reads an HTTP body into the root XML and the XOP parts.
func splitMTOM(t testing.TB, ct string, body []byte) ([]byte, map[string][]byte) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		t.Fatalf("Content-Type %q: %v", ct, err)
	}
	if mt != "multipart/related" {
		return body, nil
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	start := strings.Trim(params["start"], "<>")
	parts := map[string][]byte{}
	var root []byte
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		cid := strings.Trim(p.Header.Get("Content-Id"), "<>")
		if cid == start {
			root = b
		} else {
			parts[cid] = b
		}
	}
	if root == nil {
		t.Fatal("MTOM answer without its root part")
	}
	return root, parts
}

func post(t testing.TB, c *http.Client, url, contentType string, body []byte) *soapResp {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return do(t, c, req)
}

// do sends a request and reads the SOAP answer.
func do(t testing.TB, c *http.Client, req *http.Request) *soapResp {
	t.Helper()
	url := req.URL.String()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := &soapResp{status: resp.StatusCode, ct: resp.Header.Get("Content-Type")}
	if len(b) == 0 {
		t.Fatalf("POST %s: HTTP %d with an empty body", url, resp.StatusCode)
	}
	r.root, r.parts = splitMTOM(t, r.ct, b)
	r.doc = etree.NewDocument()
	if err := r.doc.ReadFromBytes(r.root); err != nil {
		t.Fatalf("answer is not XML: %v\n%s", err, r.root)
	}
	return r
}

// soapUIRequest writes a request the way the KoSIT SoapUI project does (soap and ns
// prefixes, the Party header, the body), with the office-side client's writer.
func soapUIRequest(party, extraHeader, body string) []byte {
	return xtaclient.Envelope(xtaclient.Party{Identifier: party, Scheme: "xoev", Name: "Bauaufsichtsamt Dresden", Directory: "DVDV"}, extraHeader, body)
}

func actionCT(port, op string) string { return soapContentType(Action(port, op)) }

func (r *soapResp) fault() (code, exception string) {
	f := r.doc.FindElement("//Fault")
	if f == nil {
		return "", ""
	}
	if v := f.FindElement("Code/Value"); v != nil {
		code = v.Text()
	}
	if d := f.FindElement("Detail"); d != nil && len(d.ChildElements()) > 0 {
		exception = d.ChildElements()[0].Tag
	}
	return
}

func (r *soapResp) text(path string) string {
	if el := r.doc.FindElement(path); el != nil {
		return strings.TrimSpace(el.Text())
	}
	return ""
}

// ---- a real broker behind the desk ----

type fakeSigner struct{}

func (fakeSigner) SignIntake(s *submission.Submission) ([]byte, error) {
	return []byte("<Eingangsbestaetigung>" + s.ID + "</Eingangsbestaetigung>"), nil
}

func (fakeSigner) SignDelivery(s *submission.Submission, ch string, c submission.Confirmation) ([]byte, error) {
	return []byte("<Zustellbestaetigung>" + s.ID + " " + ch + " " + c.Receiver + "</Zustellbestaetigung>"), nil
}

type env struct {
	db   *store.DB
	bus  *bus.Bus
	b    *broker.Broker
	srv  *httptest.Server
	xta  *Server
	pki  *testPKI
	base string
}

// Office accounts of the tests.
const (
	officeA   = "sn-14612000-bauamt"
	officeB   = "sn-14511000-bauamt"
	xtaA      = "dvdv:14612000bau"
	xtaB      = "dvdv:14511000bau"
	gatewayID = "amtsbote:portalverbund-sn"
)

func startEnv(t testing.TB, mutate func(*Options)) *env {
	t.Helper()
	return startEnvChans(t, mutate, nil)
}

// startEnvChans is startEnv with the offices' XTA targets from push (office id →
// target); offices not in it pull.
func startEnvChans(t testing.TB, mutate func(*Options), push map[string]adapters.Target) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := bus.Start(context.Background(), bus.Options{StoreDir: filepath.Join(dir, "js"), MaxMemory: 64 << 20, MaxStore: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := NewAdapter(AdapterOptions{AuthorID: gatewayID, TLS: newPKI(t).clientTLS("gateway"), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	chans := broker.ChannelsFunc(func(office, ch string) (adapters.Target, bool) {
		if ch != channel.XTA {
			return adapters.Target{}, false
		}
		if tg, ok := push[office]; ok {
			return tg, true
		}
		id := map[string]string{officeA: xtaA, officeB: xtaB}[office]
		return adapters.Target{Channel: ch, Endpoint: id, Params: map[string]string{ParamMode: ModePull}}, id != ""
	})
	b := broker.New(broker.Config{Workers: 2, ExclusiveConsumer: true, AttemptTimeout: 5 * time.Second}, db, bs.JS,
		adapters.NewRegistry(ad), chans, fakeSigner{}, nil, nil)
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := newPKI(t)
	o := Options{
		Desk: b,
		Offices: Accounts{
			{OfficeID: officeA, Identifier: xtaA, Scheme: "xoev", CertSHA256: []string{CertFingerprint(p.clients["office-a"].Leaf)}},
			{OfficeID: officeB, Identifier: xtaB, Scheme: "xoev", CertSHA256: []string{CertFingerprint(p.clients["office-b"].Leaf)}},
		},
		AuthorID: gatewayID, AuthorName: "amtsbote Sachsen",
		Logger: discardLogger(),
	}
	if mutate != nil {
		mutate(&o)
	}
	xs, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(xs)
	srv.TLS = p.serverTLS()
	srv.StartTLS()
	e := &env{db: db, bus: bs, b: b, srv: srv, xta: xs, pki: p, base: srv.URL}
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Stop(ctx)
		_ = ad.Close()
		_ = bs.Close()
		_ = db.Close()
	})
	return e
}

func (e *env) client(name string) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: e.pki.clientTLS(name)}, Timeout: 60 * time.Second}
}

// submit receives a package for office over the XTA channel and waits until the
// broker has handed it to the office's message box.
func (e *env) submit(t testing.TB, office string, pkg []byte, atts ...[]byte) *submission.Submission {
	t.Helper()
	return e.wait(t, e.receive(t, office, pkg, atts...), submission.StateHandedOver)
}

// receive hands a package for office to the broker and returns the submission id.
func (e *env) receive(t testing.TB, office string, pkg []byte, atts ...[]byte) string {
	t.Helper()
	in := broker.Intake{
		MessageID: "msg-" + uuidString(), Sender: "amt24", SignerID: "amt24", LeikaKey: "99010003001006", ServiceName: "Bauantrag",
		Place: "Dresden", AreaName: "Dresden", OfficeID: office, OfficeName: "Bauaufsichtsamt",
		Targets: []submission.Target{{Channel: channel.XTA}}, Package: pkg,
	}
	for i, a := range atts {
		in.Attachments = append(in.Attachments, broker.AttachmentIn{Meta: submission.Attachment{ID: fmt.Sprintf("anlage-%d", i+1),
			FileName: fmt.Sprintf("Anlage %d.pdf", i+1), MimeType: "application/pdf"}, Content: a})
	}
	r, err := e.b.Receive(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return r.Submission.ID
}

func (e *env) wait(t testing.TB, id string, want submission.State) *submission.Submission {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := e.b.Submission(id)
		if err == nil && s.State == want {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("submission %s: state %v, want %s (err %v)", id, s.State, want, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pkgBytes(size int) []byte {
	head := `<?xml version="1.0" encoding="UTF-8"?><Antragspaket xmlns="urn:amtsbote:antragspaket:1" ID="x"><Fachdaten><Notiz>`
	tail := `</Notiz></Fachdaten></Antragspaket>` + "\n"
	pad := max(size-len(head)-len(tail), 0)
	return []byte(head + strings.Repeat("Gruene Strasse 12 ", pad/18+1)[:pad] + tail)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var zeroTime time.Time
