package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/internal/clientgone"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// Two gateways from the throw-away PKI: "gw-test" forwards, "portal-ec" receives
// (the names are the certificates' CNs, which are the gateway ids).
type world struct {
	pki      *signingtest.PKI
	a, b     *signingtest.Party
	portal   *signingtest.Party
	pkg      []byte
	peerOfA  config.Peer // b as a configures it
	peerOfB  config.Peer // a as b configures it
	trustA   *Trust
	trustB   *Trust
	storeA   *signing.TrustStore
	storeB   *signing.TrustStore
	clockOff time.Duration
}

func newWorld(t testing.TB) *world {
	t.Helper()
	pki := signingtest.NewPKI(t)
	w := &world{pki: pki, a: pki.Gateway, b: pki.PortalECDSA, portal: pki.Portal}
	p := paket.ExampleWith("99999001000000", paket.NewMessageID(), time.Now().UTC().Truncate(time.Second))
	var err error
	if w.pkg, err = pki.Portal.Signer.Sign(p.Element()); err != nil {
		t.Fatal(err)
	}
	w.peerOfA = config.Peer{ID: w.b.Name, Lands: []string{"09"}, BaseURL: "http://b.invalid", ClockSkew: time.Minute}
	w.peerOfB = config.Peer{ID: w.a.Name, Lands: []string{"14"}, BaseURL: "http://a.invalid", ClockSkew: time.Minute}
	w.storeA, w.storeB = signing.NewTrustStore(), signing.NewTrustStore()
	if err := w.storeA.Add(signing.RolePeer, w.b.Cert); err != nil {
		t.Fatal(err)
	}
	if err := w.storeB.Add(signing.RolePeer, w.a.Cert); err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Now().Add(w.clockOff) }
	if w.trustA, err = NewTrust(TrustOptions{Self: w.a.Name, Peers: []config.Peer{w.peerOfA}, Store: w.storeA}); err != nil {
		t.Fatal(err)
	}
	if w.trustB, err = NewTrust(TrustOptions{Self: w.b.Name, Peers: []config.Peer{w.peerOfB}, Store: w.storeB, Now: now}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) envelope(t testing.TB) *Envelope {
	t.Helper()
	cert, err := SignerCertificate(w.pkg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	return &Envelope{ForwardingID: "d-1", From: w.a.Name, To: w.b.Name, At: now, Sender: "amt24", MessageID: "m-1",
		LeikaKey: "99999001000000", AreaARS: "091620000000", ReceiptSHA256: strings.Repeat("ab", 32),
		Chain: []Hop{{Gateway: w.a.Name, SubmissionID: "s-1", At: now}}, SenderCert: cert, Package: w.pkg}
}

// xmllint validates documents against the schema; the test fails without it.
func xmllint(t *testing.T, docs map[string][]byte) {
	t.Helper()
	if _, err := exec.LookPath("xmllint"); err != nil {
		t.Fatalf("xmllint is needed to check the wire format against its XSD (apt-get install libxml2-utils): %v", err)
	}
	dir := t.TempDir()
	xsd := filepath.Join(dir, XSDFileName)
	if err := os.WriteFile(xsd, XSD, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, doc := range docs {
		f := filepath.Join(dir, name+".xml")
		if err := os.WriteFile(f, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("xmllint", "--nonet", "--noout", "--schema", xsd, f).CombinedOutput()
		if err != nil {
			t.Errorf("%s does not validate against %s: %v\n%s", name, XSDFileName, err, out)
		}
	}
}

// fromUntrusted is the envelope as the untrusted gateway would forward it (it
// signs it itself).
func (w *world) fromUntrusted(t testing.TB) Envelope {
	e := *w.envelope(t)
	e.From, e.Chain = w.pki.Untrusted.Name, []Hop{{Gateway: w.pki.Untrusted.Name, SubmissionID: "s", At: time.Now()}}
	return e
}

// wireDocs signs one of each Portalverbund document between a and b: the
// envelope, a question about two packages and an answer about three.
func (w *world) wireDocs(t testing.TB) (envDoc, qDoc, rpDoc []byte) {
	t.Helper()
	var err error
	if envDoc, err = w.envelope(t).Sign(w.a.Signer); err != nil {
		t.Fatal(err)
	}
	q := &Query{From: w.a.Name, To: w.b.Name, At: time.Now(), Refs: []Ref{{"amt24", "m-1"}, {"amt24", "m-2"}},
		Replies: map[Ref]int{{"amt24", "m-1"}: 1}}
	if qDoc, err = q.Sign(w.a.Signer); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	rp := &Report{From: w.b.Name, To: w.a.Name, At: at, Items: []Status{
		{Ref: Ref{"amt24", "m-1"}, State: "accepted", SubmissionID: "x", Receiver: "Stadt München", DeliveredAt: &at,
			Decision: &Decision{Outcome: "accepted", At: at, Actor: "office system", Reason: strings.Repeat("lang ", 200)},
			Replies: []ReplyInfo{{ID: "r-2", Kind: "Bescheid", ContentType: "application/pdf", FileName: "Bescheid Müller \"final\" <1>.pdf",
				Size: 1234, SHA256: strings.Repeat("ab", 32), At: at, Actor: "Sachbearbeiterin"},
				{ID: "r-3", Kind: "\u0001", Size: 0, SHA256: strings.Repeat("00", 32), At: at}}},
		{Ref: Ref{"amt24", "m-2"}, State: StateUnknown},
		{Ref: Ref{"amt24", "m-3"}, State: "held", SubmissionID: "y", Note: "held: receiver answered HTTP 503"},
		{Ref: Ref{"amt24", "m-4"}, State: "delivered", SubmissionID: "z", Receiver: "office koeln (webhook) at gateway amtsbote-nw",
			ReceiverGateway: "amtsbote-nw", DeliveredAt: &at},
	}}
	if rpDoc, err = rp.Sign(w.b.Signer); err != nil {
		t.Fatal(err)
	}
	return envDoc, qDoc, rpDoc
}

func TestWireFormatValidatesAndRoundTrips(t *testing.T) {
	w := newWorld(t)
	envDoc, qDoc, rpDoc := w.wireDocs(t)
	xmllint(t, map[string][]byte{"weiterleitung": envDoc, "statusabfrage": qDoc, "statusauskunft": rpDoc})
	// The schema is not a rubber stamp: an envelope without its addressee fails.
	dir := t.TempDir()
	noTo := strings.Replace(string(envDoc), "<An>"+w.b.Name+"</An>", "", 1)
	_ = os.WriteFile(filepath.Join(dir, "x.xsd"), XSD, 0o644)
	_ = os.WriteFile(filepath.Join(dir, "x.xml"), []byte(noTo), 0o644)
	if out, err := exec.Command("xmllint", "--nonet", "--noout", "--schema", filepath.Join(dir, "x.xsd"), filepath.Join(dir, "x.xml")).CombinedOutput(); err == nil {
		t.Errorf("an envelope without <An> validates:\n%s", out)
	}

	// The receiving side reads back exactly what was sent; the package byte for byte.
	v, peer, err := w.trustB.Verify(envDoc, "")
	if err != nil || peer.ID != w.a.Name {
		t.Fatalf("verify: %v %s", err, peer.ID)
	}
	got, err := ParseEnvelope(v.Root)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Package) != string(w.pkg) || got.Sender != "amt24" || got.From != w.a.Name || got.To != w.b.Name ||
		len(got.Chain) != 1 || got.SenderCert.Subject.CommonName != "amt24" || got.AreaARS != "091620000000" {
		t.Errorf("round trip: %+v", got)
	}
	v, _, err = w.trustA.Verify(rpDoc, w.b.Name)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseReport(v.Root)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Items) != 4 || back.Items[0].Decision == nil || back.Items[0].Decision.Outcome != "accepted" || back.Items[1].State != StateUnknown ||
		back.Items[0].ReceiverGateway != "" || back.Items[3].ReceiverGateway != "amtsbote-nw" {
		t.Errorf("report round trip: %+v", back)
	}
	// The replies of the office: announced with size and digest, a kind of
	// nothing XML can carry named "Antwort", the file's name if it has one.
	if r := back.Items[0].Replies; len(r) != 2 || r[0].ID != "r-2" || r[0].Size != 1234 || r[0].Kind != "Bescheid" || r[0].ContentType != "application/pdf" ||
		r[0].FileName != "Bescheid Müller \"final\" <1>.pdf" || r[1].FileName != "" ||
		r[0].Actor != "Sachbearbeiterin" || r[1].Kind != "Antwort" || r[1].Size != 0 || len(back.Items[1].Replies) != 0 {
		t.Errorf("replies round trip: %+v", r)
	}
	v, _, err = w.trustB.Verify(qDoc, w.a.Name)
	if err != nil {
		t.Fatal(err)
	}
	if q, err := ParseQuery(v.Root); err != nil || len(q.Replies) != 1 || q.Replies[Ref{"amt24", "m-1"}] != 1 {
		t.Errorf("question round trip: %+v %v", q, err)
	}
	// Anything changed in the signed envelope fails.
	bad := strings.Replace(string(envDoc), "<Absender>amt24</Absender>", "<Absender>evil</Absender>", 1)
	if _, _, err := w.trustB.Verify([]byte(bad), ""); !errors.Is(err, signing.ErrInvalidSignature) {
		t.Errorf("tampered envelope: %v", err)
	}
}

func TestTrustRefusesUntrustedRevokedAndSkewed(t *testing.T) {
	w := newWorld(t)
	env := w.envelope(t)
	sign := func(p *signingtest.Party) []byte {
		e := *env
		e.From = p.Name
		e.Chain = []Hop{{Gateway: p.Name, SubmissionID: "s", At: time.Now()}}
		doc, err := e.Sign(p.Signer)
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	// A signer no trust store knows.
	if _, _, err := w.trustB.Verify(sign(w.pki.Untrusted), ""); !errors.Is(err, ErrUntrustedPeer) {
		t.Errorf("untrusted signer: %v", err)
	}
	// Trusted for the peer role but not a configured peer.
	if err := w.storeB.Add(signing.RolePeer, w.pki.OtherPortal.Cert); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.trustB.Verify(sign(w.pki.OtherPortal), ""); !errors.Is(err, ErrUntrustedPeer) || !strings.Contains(err.Error(), "not a configured peer") {
		t.Errorf("unconfigured peer: %v", err)
	}
	// A portal certificate (portal role) is no peer.
	ts := signing.NewTrustStore()
	_ = ts.Add(signing.RolePortal, w.a.Cert)
	tr, _ := NewTrust(TrustOptions{Self: w.b.Name, Peers: []config.Peer{w.peerOfB}, Store: ts})
	if _, _, err := tr.Verify(sign(w.a), ""); !errors.Is(err, ErrUntrustedPeer) {
		t.Errorf("certificate trusted as a portal, not a peer: %v", err)
	}
	// Good until revoked.
	doc := sign(w.a)
	if _, _, err := w.trustB.Verify(doc, ""); err != nil {
		t.Fatalf("trusted peer: %v", err)
	}
	// Another signer than expected.
	if _, _, err := w.trustB.Verify(doc, "someone-else"); !errors.Is(err, ErrUntrustedPeer) {
		t.Errorf("expected signer: %v", err)
	}
	// Clock skew: inside the window fine, outside refused.
	if err := w.trustB.CheckTime(w.peerOfB, time.Now().Add(50*time.Second)); err != nil {
		t.Errorf("50s skew with a 1m window: %v", err)
	}
	w.clockOff = 90 * time.Second
	if err := w.trustB.CheckTime(w.peerOfB, time.Now()); !errors.Is(err, ErrClockSkew) {
		t.Errorf("90s skew with a 1m window: %v", err)
	}
	w.clockOff = 0
	if err := w.storeB.Revoke(w.a.Cert); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.trustB.Verify(doc, ""); !errors.Is(err, ErrUntrustedPeer) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked peer: %v", err)
	}
}

// The receiving side refuses before it reads the package: no pipeline is needed (a
// nil one would panic if reached).
func TestReceiverRefusesBeforeIntake(t *testing.T) {
	w := newWorld(t)
	h := &Receiver{Trust: w.trustB, Signer: w.b.Signer}
	post := func(doc []byte) (int, string) { return forwardTo(h, ContentType, doc) }
	env := w.envelope(t)
	signWith := func(e Envelope, p *signingtest.Party) []byte {
		doc, err := e.Sign(p.Signer)
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	untr := w.fromUntrusted(t)
	if code, typ := post(signWith(untr, w.pki.Untrusted)); code != 403 || typ != TypeUntrustedPeer {
		t.Errorf("untrusted: %d %s", code, typ)
	}
	mis := *env
	mis.To = "amtsbote-xx"
	if code, typ := post(signWith(mis, w.a)); code != http.StatusMisdirectedRequest || typ != TypeMisdirected {
		t.Errorf("misdirected: %d %s", code, typ)
	}
	old := *env
	old.At = time.Now().Add(-10 * time.Minute)
	if code, typ := post(signWith(old, w.a)); code != 400 || typ != TypeClockSkew {
		t.Errorf("skewed: %d %s", code, typ)
	}
	liar := *env
	liar.From = "amtsbote-sn"
	liar.Chain = []Hop{{Gateway: "amtsbote-sn", SubmissionID: "s", At: time.Now()}}
	if code, typ := post(signWith(liar, w.a)); code != 403 || typ != TypeUntrustedPeer {
		t.Errorf("envelope claims another forwarder: %d %s", code, typ)
	}
	_ = w.storeB.Revoke(w.a.Cert)
	if code, typ := post(signWith(*env, w.a)); code != 403 || typ != TypeUntrustedPeer {
		t.Errorf("revoked: %d %s", code, typ)
	}
	if code, _ := post([]byte("<x/>")); code != 400 && code != 403 {
		t.Errorf("junk: %d", code)
	}
}

// The forwarding side: the peer's answers are classified for the broker, and an
// answer not signed by the configured peer is refused.
func TestClientClassifiesAnswers(t *testing.T) {
	w := newWorld(t)
	var answer func(http.ResponseWriter, *http.Request)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { answer(rw, r) }))
	defer srv.Close()
	peer := w.peerOfA
	peer.BaseURL = srv.URL
	c := &Client{Self: w.a.Name, Signer: w.a.Signer, Trust: w.trustA}
	problemAnswer := func(status int, typ, detail string) func(http.ResponseWriter, *http.Request) {
		return func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("Content-Type", "application/problem+json")
			rw.WriteHeader(status)
			_ = json.NewEncoder(rw).Encode(map[string]any{"type": typ, "title": "t", "status": status, "detail": detail})
		}
	}
	receiptBy := func(p *signingtest.Party, gw string, env *Envelope) func(http.ResponseWriter, *http.Request) {
		return func(rw http.ResponseWriter, r *http.Request) {
			doc, err := p.Signer.SignReceipt(signing.Receipt{Kind: signing.KindEingang, SubmissionID: "peer-sub-1", MessageID: env.MessageID,
				Sender: env.Sender, LeikaKey: env.LeikaKey, OfficeID: "muenchen", OfficeName: "München", GatewayID: gw,
				Time: time.Now().UTC(), PackageSHA256: env.PackageSHA256()})
			if err != nil {
				t.Error(err)
			}
			rw.WriteHeader(201)
			_, _ = rw.Write(doc)
		}
	}

	env := w.envelope(t)
	answer = receiptBy(w.b, w.b.Name, env)
	ans, err := c.Forward(context.Background(), peer, env)
	if err != nil || ans.Receipt.SubmissionID != "peer-sub-1" {
		t.Fatalf("good answer: %v", err)
	}

	// Refused both ways: a receipt signed by someone else is not taken.
	answer = receiptBy(w.pki.Untrusted, w.b.Name, env)
	_, err = c.Forward(context.Background(), peer, w.envelope(t))
	if !adapters.IsPermanent(err) || !strings.Contains(adapters.PublicReason(err), "not signed by a trusted certificate") {
		t.Errorf("untrusted receipt: %v / %s", err, adapters.PublicReason(err))
	}

	// The peer refuses: permanent, its reason public.
	answer = problemAnswer(422, "https://amtsbote.de/problems/unknown-service", "routing: unknown service: 99123000000001")
	_, err = c.Forward(context.Background(), peer, w.envelope(t))
	if !adapters.IsPermanent(err) || !strings.Contains(adapters.PublicReason(err), "refused by gateway portal-ec: routing: unknown service: 99123000000001") {
		t.Errorf("refusal: %v / %q", err, adapters.PublicReason(err))
	}
	var re *RefusedError
	if !errors.As(err, &re) || re.Status != 422 {
		t.Errorf("refusal is not a RefusedError: %v", err)
	}
	// Transient: 503, clock skew, unreachable.
	for name, a := range map[string]func(http.ResponseWriter, *http.Request){
		"503":        problemAnswer(503, "https://amtsbote.de/problems/unavailable", "shutting down"),
		"clock skew": problemAnswer(400, TypeClockSkew, "10m away"),
	} {
		answer = a
		_, err = c.Forward(context.Background(), peer, w.envelope(t))
		if err == nil || adapters.IsPermanent(err) {
			t.Errorf("%s: %v must be transient", name, err)
		}
	}
	// A busy receiver's Retry-After reaches the broker, which waits at least that long.
	busy := problemAnswer(503, "https://amtsbote.de/problems/unavailable", "busy")
	answer = func(rw http.ResponseWriter, r *http.Request) { rw.Header().Set("Retry-After", "30"); busy(rw, r) }
	_, err = c.Forward(context.Background(), peer, w.envelope(t))
	if d, ok := adapters.RetryAfter(err); !ok || d != 30*time.Second || adapters.IsPermanent(err) {
		t.Errorf("503 with Retry-After 30: %v, %v %v", err, d, ok)
	}
	down := peer
	down.BaseURL = "http://127.0.0.1:1"
	_, err = c.Forward(context.Background(), down, w.envelope(t))
	if err == nil || adapters.IsPermanent(err) || !strings.Contains(adapters.PublicReason(err), "not reachable") {
		t.Errorf("unreachable: %v / %s", err, adapters.PublicReason(err))
	}

	// Revoked while the package was on its way: the receipt is not taken.
	sent := 0
	signed := receiptBy(w.b, w.b.Name, env)
	answer = func(rw http.ResponseWriter, r *http.Request) {
		sent++
		if err := w.storeA.Revoke(w.b.Cert); err != nil {
			t.Error(err)
		}
		signed(rw, r)
	}
	if _, err = c.Forward(context.Background(), peer, env); !adapters.IsPermanent(err) || !strings.Contains(adapters.PublicReason(err), "not signed by a trusted certificate") {
		t.Errorf("revoked peer's receipt: %v", err)
	}
	// Revoked before: nothing is sent to it, neither a package nor a question.
	_, err = c.Forward(context.Background(), peer, w.envelope(t))
	if !adapters.IsPermanent(err) || !errors.Is(err, ErrUntrustedPeer) || !strings.Contains(adapters.PublicReason(err), "not sent") {
		t.Errorf("forwarding to a revoked peer: %v / %s", err, adapters.PublicReason(err))
	}
	if _, err := c.Status(context.Background(), peer, []Ref{{"amt24", "m-1"}}); !errors.Is(err, ErrUntrustedPeer) {
		t.Errorf("asking a revoked peer: %v", err)
	}
	if sent != 1 {
		t.Errorf("the revoked peer was sent %d requests, want 1 (before it was revoked)", sent)
	}
}

func TestSignerCertificate(t *testing.T) {
	w := newWorld(t)
	c, err := SignerCertificate(w.pkg)
	if err != nil || c.Subject.CommonName != "amt24" {
		t.Fatalf("%v %v", c, err)
	}
	if _, err := SignerCertificate([]byte("<a/>")); err == nil {
		t.Error("an unsigned document has no signer certificate")
	}
}

// peers[].certificate: the file is trusted for the peer role and must name the peer.
func TestPinnedCertificateFile(t *testing.T) {
	w := newWorld(t)
	store := signing.NewTrustStore()
	tr, err := NewTrust(TrustOptions{Self: w.b.Name, Store: store,
		Peers: []config.Peer{{ID: w.a.Name, Lands: []string{"14"}, BaseURL: "http://a.invalid", Certificate: w.a.CertFile}}})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := w.envelope(t).Sign(w.a.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.Verify(doc, w.a.Name); err != nil {
		t.Errorf("a peer trusted by its certificate file: %v", err)
	}
	_, err = NewTrust(TrustOptions{Self: w.b.Name, Store: signing.NewTrustStore(),
		Peers: []config.Peer{{ID: w.a.Name, Lands: []string{"14"}, BaseURL: "http://a.invalid", Certificate: w.portal.CertFile}}})
	if err == nil || !strings.Contains(err.Error(), `belongs to "amt24"`) {
		t.Errorf("a certificate file of someone else: %v", err)
	}
}

// TestPinnedCertificateFileForARotation: peers[].certificate held one
// certificate, so a peer rotating its key needed both states to restart at the
// same moment, and what it signed in between was refused for good (an audit,
// 2026-12-05). The file may hold the peer's old and new certificates; either
// signs, another of the same name does not, and the peer is reachable while one
// of them is valid.
func TestPinnedCertificateFileForARotation(t *testing.T) {
	w := newWorld(t)
	now := time.Now()
	next, nextCert := signingtest.SelfSigned(t, w.a.Name, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	stranger, _ := signingtest.SelfSigned(t, w.a.Name, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	old, err := os.ReadFile(w.a.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "peer.pem")
	both := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: nextCert.Raw}), old...)
	if err := os.WriteFile(file, both, 0o600); err != nil {
		t.Fatal(err)
	}
	peer := config.Peer{ID: w.a.Name, Lands: []string{"14"}, BaseURL: "http://a.invalid", Certificate: file}
	store := signing.NewTrustStore()
	tr, err := NewTrust(TrustOptions{Self: w.b.Name, Store: store, Peers: []config.Peer{peer}})
	if err != nil {
		t.Fatal(err)
	}
	// A "fullchain" file, as CAs hand them out: the peer's certificate, then its
	// CA, which is skipped (a review: the start was refused).
	chain := filepath.Join(t.TempDir(), "fullchain.pem")
	if err := os.WriteFile(chain, append(signing.CertPEM(w.a.Cert), signing.CertPEM(w.pki.CA)...), 0o600); err != nil {
		t.Fatal(err)
	}
	withChain := peer
	withChain.Certificate = chain
	chainStore := signing.NewTrustStore()
	if _, err := NewTrust(TrustOptions{Self: w.b.Name, Store: chainStore, Peers: []config.Peer{withChain}}); err != nil {
		t.Errorf("a peer's certificate with its CA: %v", err)
	}
	if _, err := chainStore.VerifyCertificate(w.pki.Portal.Cert, nil, now, signing.RolePeer); err == nil {
		t.Errorf("the CA of a fullchain file became an anchor of the peer role")
	}
	for _, tc := range []struct {
		name   string
		signer *signing.Signer
		ok     bool
	}{{"the old key", w.a.Signer, true}, {"the new key", next, true}, {"another key of that name", stranger, false}} {
		doc, err := w.envelope(t).Sign(tc.signer)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := tr.Verify(doc, w.a.Name); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	_ = store.Revoke(nextCert)
	if err := tr.CheckPeer(peer); err != nil {
		t.Errorf("one of the two revoked, the other valid: %v", err)
	}
}

// TestReceiverPartsRefusals: a forwarding with attachments (multipart/related) is
// refused before any attachment is read when its framing or its envelope is wrong:
// no boundary (400), a first part that is not XML (415), an envelope of an
// untrusted gateway (403).
func TestReceiverPartsRefusals(t *testing.T) {
	w := newWorld(t)
	h := &Receiver{Trust: w.trustB, Signer: w.b.Signer}
	post := func(ctype string, body []byte) (int, string) { return forwardTo(h, ctype, body) }
	related := func(rootType string, root []byte) (string, []byte) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {rootType}})
		_, _ = pw.Write(root)
		pw, _ = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/pdf"}, "Content-Id": {"<a@x>"}})
		_, _ = pw.Write([]byte("%PDF-1.7"))
		_ = mw.Close()
		return "multipart/related; boundary=" + mw.Boundary(), buf.Bytes()
	}
	if code, typ := post("multipart/related", []byte("x")); code != 400 || typ != problem.TypeMalformed {
		t.Errorf("no boundary: %d %s", code, typ)
	}
	untr := w.fromUntrusted(t)
	doc, err := untr.Sign(w.pki.Untrusted.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if code, typ := post(related("text/plain", doc)); code != http.StatusUnsupportedMediaType {
		t.Errorf("root not XML: %d %s", code, typ)
	}
	if code, typ := post(related(ContentType, doc)); code != 403 || typ != TypeUntrustedPeer {
		t.Errorf("untrusted envelope with parts: %d %s", code, typ)
	}
}

// forwardTo posts body to h's forwarding endpoint and returns the status and the
// problem type of the answer.
func forwardTo(h *Receiver, ctype string, body []byte) (int, string) {
	return postTo(h, PathForward, ctype, body)
}

// postTo posts body to h at path and returns the status and the problem type;
// an empty ctype sends no Content-Type.
func postTo(h *Receiver, path, ctype string, body []byte) (int, string) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	h.ServeHTTP(rec, req)
	var p struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	return rec.Code, p.Type
}

// TestReceiverBusyAnswer: a receiving gateway without a free verification slot
// answers 503 with Retry-After and says why; its own failures stay unexplained.
func TestReceiverBusyAnswer(t *testing.T) {
	h := &Receiver{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	r := httptest.NewRequest(http.MethodPost, PathForward, nil)
	rec := httptest.NewRecorder()
	h.fail(rec, r, "peer-x", fmt.Errorf("wrapped: %w", intake.ErrBusy))
	var p problem.Problem
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" || p.Type != problem.TypeUnavailable || !strings.Contains(p.Detail, "busy") {
		t.Fatalf("busy: %d Retry-After %q %+v", rec.Code, rec.Header().Get("Retry-After"), p)
	}
	rec = httptest.NewRecorder()
	h.fail(rec, r, "peer-x", errors.New("disk on fire"))
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	if rec.Code != 500 || rec.Header().Get("Retry-After") != "" || strings.Contains(p.Detail, "fire") {
		t.Fatalf("own failure: %d Retry-After %q %+v", rec.Code, rec.Header().Get("Retry-After"), p)
	}
	// A peer gateway that gave up waiting (its connection closed, so the request's
	// context ended) is no failure of this one: 499 for the metrics, not a 5xx.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec = httptest.NewRecorder()
	h.fail(rec, r.WithContext(ctx), "peer-x", fmt.Errorf("intake: waiting for a verification slot: %w", ctx.Err()))
	if rec.Code != clientgone.Status || rec.Body.Len() != 0 {
		t.Fatalf("peer gone: %d %q", rec.Code, rec.Body.String())
	}
}

// TestCheckPeer: before anything goes to a peer, some certificate it may answer
// with must be trusted for the peer role now.
func TestCheckPeer(t *testing.T) {
	w := newWorld(t)
	pki := w.pki
	trust := func(store *signing.TrustStore, peers ...config.Peer) *Trust {
		t.Helper()
		tr, err := NewTrust(TrustOptions{Self: w.a.Name, Peers: peers, Store: store})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	if err := w.trustA.CheckPeer(w.peerOfA); err != nil {
		t.Errorf("a peer whose leaf is in peers/: %v", err)
	}
	if err := trust(signing.NewTrustStore(), w.peerOfA).CheckPeer(w.peerOfA); !errors.Is(err, ErrUntrustedPeer) {
		t.Errorf("a peer the trust store does not hold: %v", err)
	}
	portalOnly := signing.NewTrustStore()
	_ = portalOnly.Add(signing.RolePortal, w.b.Cert)
	if err := trust(portalOnly, w.peerOfA).CheckPeer(w.peerOfA); !errors.Is(err, ErrUntrustedPeer) {
		t.Errorf("a certificate trusted as a portal's only: %v", err)
	}
	expired := signing.NewTrustStore()
	_ = expired.Add(signing.RolePeer, pki.Expired.Cert)
	old := config.Peer{ID: pki.Expired.Name, BaseURL: "http://x.invalid"}
	if err := trust(expired, old).CheckPeer(old); !errors.Is(err, ErrUntrustedPeer) || !strings.Contains(err.Error(), "not valid") {
		t.Errorf("an expired peer certificate: %v", err)
	}
	// A CA for the peer role: the peer's certificate is known only from its answer.
	withCA := signing.NewTrustStore()
	_ = withCA.Add(signing.RolePeer, pki.CA)
	other := config.Peer{ID: pki.Untrusted.Name, BaseURL: "http://x.invalid"} // no certificate of it in the store
	if err := trust(withCA, other).CheckPeer(other); err != nil {
		t.Errorf("a peer CA: %v", err)
	}
	// ... but a leaf of the peer in the store that is revoked is not outweighed by
	// a CA that might have issued it another one.
	_ = withCA.Add(signing.RolePeer, w.b.Cert)
	_ = withCA.Revoke(w.b.Cert)
	if err := trust(withCA, w.peerOfA).CheckPeer(w.peerOfA); !errors.Is(err, ErrUntrustedPeer) {
		t.Errorf("a revoked leaf with a peer CA in the store: %v", err)
	}
	// The configured certificate: it, and only it.
	pinned := w.peerOfA
	pinned.Certificate = w.b.CertFile
	store := signing.NewTrustStore()
	tr := trust(store, pinned)
	if err := tr.CheckPeer(pinned); err != nil {
		t.Errorf("a peer with its configured certificate: %v", err)
	}
	_ = store.Revoke(w.b.Cert)
	if err := tr.CheckPeer(pinned); !errors.Is(err, ErrUntrustedPeer) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("a peer whose configured certificate is revoked: %v", err)
	}
	_ = w.storeA.Revoke(w.b.Cert)
	if err := w.trustA.CheckPeer(w.peerOfA); !errors.Is(err, ErrUntrustedPeer) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("a peer whose leaf is revoked: %v", err)
	}
}

// readCounter is a request body that counts the bytes read from it, and calls
// first (if set) before the first is read.
type readCounter struct {
	r     io.Reader
	n     int
	first func()
}

func (c *readCounter) Read(p []byte) (int, error) {
	if c.n == 0 && c.first != nil {
		c.first()
		c.first = nil
	}
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestReceiverStoreDown: while the gateway knows its store is out of reach
// (Receiver.StoreDown), a forwarding and a status request are answered 503 with
// Retry-After at once, before a byte of the body is read or held (the rest is
// then read and discarded, so that a peer still sending reads the answer
// instead of a reset: TestEarlyRefusalsReachPeersThatSendFirst); a nudge and
// the schema need no store and are served.
func TestReceiverStoreDown(t *testing.T) {
	h := &Receiver{Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		StoreDown: func() error { return errors.New("the NATS cluster does not answer for the store") }}
	for _, path := range []string{PathForward, PathStatus} {
		rec := httptest.NewRecorder()
		answered := -1 // the status sent when the body's first byte was read
		body := &readCounter{r: strings.NewReader(strings.Repeat("x", 1<<20)), first: func() {
			if rec.Flushed {
				answered = rec.Code
			}
		}}
		req := httptest.NewRequest(http.MethodPost, path, body)
		req.Header.Set("Content-Type", "application/xml")
		h.ServeHTTP(rec, req)
		var p problem.Problem
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || p.Type != problem.TypeUnavailable ||
			(body.n != 0 && answered != http.StatusServiceUnavailable) {
			t.Errorf("%s with the store down: %d Retry-After %q %+v, %d body bytes read, the first with %d sent", path, rec.Code, rec.Header().Get("Retry-After"), p, body.n, answered)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, PathNudge, nil))
	if rec.Code != http.StatusNoContent {
		t.Errorf("nudge with the store down: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathSchema, nil))
	if rec.Code != http.StatusOK {
		t.Errorf("schema with the store down: %d", rec.Code)
	}
}

// TestReportCarriesOnlyXMLText: the texts of a status answer come from office
// systems (a decision's reason and actor, a receiver's name, a held note). One
// that was only a control character went out as an element the reader refuses
// as empty, and U+FFFF went out raw, which no XML parser reads: the asking
// gateway refused the whole answer, for every package it named. Now each
// answer validates and reads back, whatever the texts.
func TestReportCarriesOnlyXMLText(t *testing.T) {
	w := newWorld(t)
	at := time.Now().UTC()
	docs := map[string][]byte{}
	for name, txt := range map[string]string{"control": "\u0001", "nonchar": "fehlt\uffff", "nul": "\x00", "nbsp": "\u00a0\u0002", "badutf8": "a\xffb"} {
		rp := &Report{From: w.b.Name, To: w.a.Name, At: at, Items: []Status{
			{Ref: Ref{"amt24", "m-1"}, State: "rejected", SubmissionID: "x", Receiver: txt, DeliveredAt: &at,
				Decision: &Decision{Outcome: "rejected", At: at, Actor: txt, Reason: txt}, Note: txt},
		}}
		doc, err := rp.Sign(w.b.Signer)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		docs[name] = doc
		v, _, err := w.trustA.Verify(doc, w.b.Name)
		if err != nil {
			t.Errorf("%s: the answer does not verify: %v", name, err)
			continue
		}
		back, err := ParseReport(v.Root)
		if err != nil || len(back.Items) != 1 || back.Items[0].Decision == nil {
			t.Errorf("%s: the answer does not read back: %v", name, err)
		}
	}
	xmllint(t, docs)
}

// TestClientFollowsNoRedirect: the forwarding client followed the peer's
// redirects like any http.Client: a 307 or 308 from the peer's base URL (a
// proxy, a moved host, a hostile answer) re-sent the portal's package, personal
// data and all, to whatever address the answer named — an address no operator
// configured. Now a redirect is the answer: a permanent refusal that names the
// status (the configuration is wrong), and nothing goes anywhere else.
func TestClientFollowsNoRedirect(t *testing.T) {
	w := newWorld(t)
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		elsewhere.Add(n + 1)
		rw.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer other.Close()
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			http.Redirect(rw, r, other.URL+r.URL.Path, code)
		}))
		peer := w.peerOfA
		peer.BaseURL = srv.URL
		c := &Client{Self: w.a.Name, Signer: w.a.Signer, Trust: w.trustA, HTTP: &http.Client{Timeout: 10 * time.Second}}
		_, err := c.Forward(context.Background(), peer, w.envelope(t))
		if !adapters.IsPermanent(err) || !strings.Contains(adapters.PublicReason(err), fmt.Sprint(code)) ||
			strings.Contains(adapters.PublicReason(err), other.URL) {
			t.Errorf("forwarding answered %d: %v / public %q, want a permanent refusal naming the status only", code, err, adapters.PublicReason(err))
		}
		if _, err := c.Status(context.Background(), peer, []Ref{{"amt24", "m-1"}}); err == nil {
			t.Errorf("status question answered %d: no error", code)
		}
		srv.Close()
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests' worth of bytes: the package went where nobody configured it", n)
	}
}
