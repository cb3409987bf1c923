package gateway

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// cheapHash is a mailbox password hash at bcrypt's lowest cost: the gateway
// accepts any bcrypt hash, and the full cost of mailbox.HashPassword took seconds
// per test under the race detector.
func cheapHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

type fixture struct {
	g      *Gateway
	pki    *signingtest.PKI
	portal *portal.Client
	key    string // LeiKa key of "Gewerbe anmelden"
}

const (
	portalToken = "portal-token-amt24"
	officeToken = "office-token-dresden"
	otherToken  = "office-token-leipzig"
	adminToken  = "admin-token"
)

func start(t testing.TB, mutate ...func(*config.Config)) *fixture {
	t.Helper()
	return startLogged(t, slog.New(slog.NewTextHandler(io.Discard, nil)), mutate...)
}

// startLogged is start with the gateway's log going to log.
func startLogged(t testing.TB, log *slog.Logger, mutate ...func(*config.Config)) *fixture {
	t.Helper()
	pki := signingtest.NewPKI(t)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.PKI = config.PKI{GatewayKey: pki.Gateway.KeyFile, GatewayCert: pki.Gateway.CertFile, TrustDir: pki.TrustDir}
	cfg.GatewayID = pki.Gateway.Name
	cfg.AdminToken = adminToken
	cfg.Portals = map[string]config.PortalClient{"amt24": {Token: portalToken}}
	cfg.Offices = map[string]config.OfficeClient{
		DemoOfficeID:          {Token: officeToken},
		"leipzig-ordnungsamt": {Token: otherToken},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	g, err := Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	d, _ := routing.Builtin()
	svc, err := d.FindService("Gewerbe anmelden")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{g: g, pki: pki, key: svc.Key,
		portal: &portal.Client{BaseURL: g.URL(), Signer: pki.Portal.Signer, Token: portalToken}}
}

func (f *fixture) example() *paket.Paket {
	p := paket.ExampleWith(f.key, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	return p
}

func post(t *testing.T, url, ctype string, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url+"/v1/submissions", ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func problemOf(t *testing.T, resp *http.Response, body []byte) problem.Problem {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("status %d with content type %q, want %s: %s", resp.StatusCode, ct, problem.ContentType, body)
	}
	var p problem.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIntakeAnswers(t *testing.T) {
	f := start(t, func(c *config.Config) { c.Limits.MaxBodyBytes = 200 << 10 })
	sign := func(p *paket.Paket, by *signing.Signer) []byte {
		b, err := by.Sign(p.Element())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	valid := sign(f.example(), f.pki.Portal.Signer)
	tampered := bytes.Replace(valid, []byte("Iris"), []byte("Eris"), 1)
	wrongSender := f.example()
	wrongSender.Kopf.Absender = "other-portal"
	unknownService := f.example()
	unknownService.Kopf.Leistung.Schluessel = "99999999999999"
	unknownPlace := f.example()
	unknownPlace.Kopf.Ort = paket.Ort{Name: "Atlantis"}
	badLeika := f.example()
	badLeika.Kopf.Leistung.Schluessel = "12345"
	badDigest := f.example()
	badDigest.Anlagen[0].SHA256 = strings.Repeat("0", 64)
	byRef := f.example()
	byRef.Anlagen = append(byRef.Anlagen, paket.Anlage{ID: "anlage-ref", Dateiname: "foto.jpg", MimeType: "image/jpeg",
		Groesse: 10, SHA256: strings.Repeat("ab", 32), Referenz: "cid:foto@amt24"})
	big := f.example()
	big.Anlagen = append(big.Anlagen, paket.NewAnlage("gross", "gross.bin", "application/octet-stream", bytes.Repeat([]byte("x"), 300<<10)))

	tests := []struct {
		name   string
		ctype  string
		body   []byte
		status int
		typ    string
	}{
		{"tampered package", "application/xml", tampered, 403, problem.TypeInvalidSignature},
		{"unknown signer", "application/xml", sign(f.example(), f.pki.Untrusted.Signer), 403, problem.TypeUntrustedSigner},
		{"expired certificate", "application/xml", sign(f.example(), f.pki.Expired.Signer), 403, problem.TypeUntrustedSigner},
		{"Absender is not the signer", "application/xml", sign(wrongSender, f.pki.Portal.Signer), 403, problem.TypeSenderMismatch},
		{"unknown LeiKa key", "application/xml", sign(unknownService, f.pki.Portal.Signer), 422, problem.TypeUnknownService},
		{"unknown place", "application/xml", sign(unknownPlace, f.pki.Portal.Signer), 422, problem.TypeUnknownPlace},
		{"malformed LeiKa key", "application/xml", sign(badLeika, f.pki.Portal.Signer), 422, problem.TypeInvalidField},
		{"attachment digest differs", "application/xml", sign(badDigest, f.pki.Portal.Signer), 422, problem.TypeAttachmentDigest},
		{"attachment by cid: reference", "application/xml", sign(byRef, f.pki.Portal.Signer), 422, problem.TypeMultipartParts},
		{"unsigned package", "application/xml", f.example().Marshal(), 403, problem.TypeInvalidSignature},
		{"not XML", "application/xml", []byte("{\"json\": true}"), 400, problem.TypeMalformed},
		{"empty body", "application/xml", nil, 400, problem.TypeMalformed},
		{"DOCTYPE", "application/xml", []byte(`<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>`), 400, problem.TypeMalformed},
		{"wrong media type", "application/json", valid, 415, problem.TypeUnsupportedMedia},
		{"too large", "application/xml", sign(big, f.pki.Portal.Signer), 413, problem.TypeTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, f.g.URL(), tc.ctype, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if p := problemOf(t, resp, body); p.Type != tc.typ || p.Status != tc.status || p.Detail == "" {
				t.Fatalf("problem %+v, want type %s", p, tc.typ)
			}
		})
	}
	// None of the refused packages left a trace.
	n := 0
	f.g.Broker.InState("", func(s *storeSubmission) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d submissions stored from refused requests", n)
	}
}

func TestAcceptedOnceWithSignedReceipt(t *testing.T) {
	f := start(t)
	p := f.example()
	raw, err := f.portal.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	first, err := f.portal.SubmitRaw(context.Background(), raw)
	if err != nil || first.Status != 201 {
		t.Fatalf("first: %v %+v", err, first)
	}
	if first.Location != "/v1/submissions/"+first.SubmissionID {
		t.Fatalf("Location %q", first.Location)
	}
	again, err := f.portal.SubmitRaw(context.Background(), raw)
	if err != nil || again.Status != 200 || again.SubmissionID != first.SubmissionID || !bytes.Equal(again.Receipt, first.Receipt) {
		t.Fatalf("retry must return the first receipt: %+v", again)
	}
	// Re-signed (new bytes) with the same NachrichtID is still the same message.
	resigned, _ := f.portal.Submit(context.Background(), p)
	if resigned.Status != 200 || resigned.SubmissionID != first.SubmissionID {
		t.Fatalf("same NachrichtID, new signature: %+v", resigned)
	}
	// The receipt is signed by the gateway and names the package's SHA-256.
	certPEM, _ := os.ReadFile(f.pki.Gateway.CertFile)
	ts, err := signing.TrustStoreFromPEM(signing.RoleGateway, certPEM)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := signing.VerifyOffline(first.Receipt, ts, signing.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Receipt == nil || rep.Receipt.PackageSHA256 != sha256hex(raw) || rep.Receipt.OfficeID != DemoOfficeID || rep.Receipt.MessageID != p.Kopf.NachrichtID {
		t.Fatalf("receipt attests the wrong things: %+v", rep.Receipt)
	}
	// xmlsec1 verifies it as well.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "r.xml"), first.Receipt, 0o644)
	out, err := exec.Command("xmlsec1", "--verify", "--trusted-pem", f.pki.CAFile,
		"--id-attr:ID", "urn:amtsbote:quittung:1:Eingangsbestaetigung", filepath.Join(dir, "r.xml")).CombinedOutput()
	if err != nil {
		t.Fatalf("xmlsec1 (installed by .ci/run) does not verify the receipt: %v\n%s", err, out)
	}
}

// TestRetryAfterThePortalCertificateEnded: a portal's package is accepted (201),
// the answer is lost, and the portal sends the very same bytes again after its
// certificate ended. The retry got a final 403 untrusted-signer while the package
// was stored and delivered: the portal told the citizen "refused", or sent the
// application again under a new NachrichtID. Identical bytes get the first
// receipt; anything else signed with the ended certificate is still refused. The
// intake's clock is moved past the certificate's end instead of waiting for it.
func TestRetryAfterThePortalCertificateEnded(t *testing.T) {
	f := start(t)
	var now atomic.Pointer[time.Time]
	t0 := time.Now()
	now.Store(&t0)
	f.g.Pipeline.Verifier = signing.NewVerifier(f.g.Trust, signing.VerifyOptions{Now: func() time.Time { return *now.Load() }})
	p := f.example()
	raw, err := f.portal.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	first, err := f.portal.SubmitRaw(context.Background(), raw)
	if err != nil || first.Status != 201 {
		t.Fatalf("first: %v %+v", err, first)
	}
	ended := f.pki.Portal.Cert.NotAfter.Add(time.Minute)
	now.Store(&ended)

	again, err := f.portal.SubmitRaw(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if again.Status != 200 || again.SubmissionID != first.SubmissionID || !again.Duplicate || !bytes.Equal(again.Receipt, first.Receipt) {
		t.Fatalf("retry of the accepted package (same bytes) after the signer's certificate ended: status %d %+v, want 200 with the first receipt", again.Status, again.Problem)
	}
	// Identical bytes are the proof: the same application built anew (another
	// Erstellt; RSA signatures are deterministic), or a new one, with the ended
	// certificate is refused.
	rebuilt := *p
	rebuilt.Kopf.Erstellt = p.Kopf.Erstellt.Add(time.Minute)
	for name, pk := range map[string]*paket.Paket{"built anew": &rebuilt, "a new package": f.example()} {
		res, err := f.portal.Submit(context.Background(), pk)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != 403 || res.Problem == nil || res.Problem.Type != problem.TypeUntrustedSigner {
			t.Fatalf("%s with the ended certificate: status %d %+v, want 403 %s", name, res.Status, res.Problem, problem.TypeUntrustedSigner)
		}
	}
}

// TestXmlsec1SignedPackageIsAccepted: a portal that signs with xmlsec1 instead of
// our library is accepted.
func TestXmlsec1SignedPackageIsAccepted(t *testing.T) {
	f := start(t)
	signed := f.xmlsec1Sign(t, f.xmlsec1Template(f.example()))
	res, err := f.portal.SubmitRaw(context.Background(), signed)
	if err != nil || res.Status != 201 {
		t.Fatalf("xmlsec1-signed package: %v %+v %+v", err, res, res.Problem)
	}
}

// TestAttributeWhitespaceAsXMLProcessorsReadIt: an attribute value with a
// literal line break and tab (a form engine writing its XML from a template, or
// a signer that keeps the bytes it was given) is spaces to every XML processor
// (XML 1.0 §3.3.3): such a package and the one with spaces are the same
// document, with the same signature, and xmlsec1 verifies both. Go's parser
// kept the characters, the digest differed, and the package was refused as 403
// invalid-signature. Now it is accepted, and the office gets the exact bytes
// the portal signed.
func TestAttributeWhitespaceAsXMLProcessorsReadIt(t *testing.T) {
	f := start(t)
	tmpl := f.xmlsec1Template(f.example())
	const spaced = "Zeile eins  Zeile zwei"
	note := `<n:Bemerkung xmlns:n="urn:example:bemerkung" text="` + spaced + `&#10;drei"/>`
	at := bytes.Index(tmpl, []byte(`Format="xml">`))
	if at < 0 {
		t.Fatal("no XML form in the example")
	}
	at += len(`Format="xml">`)
	tmpl = append(tmpl[:at:at], append([]byte(note), tmpl[at:]...)...)
	signed := f.xmlsec1Sign(t, tmpl)
	// CR LF is one line end, so one space; the tab the other.
	literal := bytes.Replace(signed, []byte(spaced), []byte("Zeile eins\r\n\tZeile zwei"), 1)
	if bytes.Equal(literal, signed) {
		t.Fatalf("the form's attribute is not in xmlsec1's output:\n%s", signed)
	}
	file := filepath.Join(t.TempDir(), "literal.xml")
	if err := os.WriteFile(file, literal, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("xmlsec1", "--verify", "--trusted-pem", f.pki.CAFile,
		"--id-attr:ID", paket.Namespace+":Antragspaket", file).CombinedOutput(); err != nil {
		t.Fatalf("xmlsec1 does not verify the package with the literal characters either: %v\n%s", err, b)
	}
	res, err := f.portal.SubmitRaw(context.Background(), literal)
	if err != nil || res.Status != 201 {
		t.Fatalf("package with whitespace in an attribute: %v %+v %+v", err, res, res.Problem)
	}
	s, err := f.g.Broker.Submission(res.SubmissionID)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(literal); s.PackageSHA256 != hex.EncodeToString(sum[:]) {
		t.Fatal("the stored package is not the bytes the portal signed")
	}
}

// xmlsec1Template is p with an empty enveloped signature for xmlsec1 --sign.
func (f *fixture) xmlsec1Template(p *paket.Paket) []byte {
	root := p.Element()
	doc := etree.NewDocument()
	doc.SetRoot(root)
	sig := root.CreateElement("ds:Signature")
	sig.CreateAttr("xmlns:ds", "http://www.w3.org/2000/09/xmldsig#")
	si := sig.CreateElement("ds:SignedInfo")
	si.CreateElement("ds:CanonicalizationMethod").CreateAttr("Algorithm", "http://www.w3.org/2001/10/xml-exc-c14n#")
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
	ref := si.CreateElement("ds:Reference")
	ref.CreateAttr("URI", "#"+p.ID)
	tr := ref.CreateElement("ds:Transforms")
	tr.CreateElement("ds:Transform").CreateAttr("Algorithm", "http://www.w3.org/2000/09/xmldsig#enveloped-signature")
	tr.CreateElement("ds:Transform").CreateAttr("Algorithm", "http://www.w3.org/2001/10/xml-exc-c14n#")
	ref.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", "http://www.w3.org/2001/04/xmlenc#sha256")
	ref.CreateElement("ds:DigestValue")
	sig.CreateElement("ds:SignatureValue")
	sig.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data").CreateElement("ds:X509Certificate")
	tmpl, _ := doc.WriteToBytes()
	return tmpl
}

// xmlsec1Sign signs a template of xmlsec1Template with the portal's key.
func (f *fixture) xmlsec1Sign(t *testing.T, tmpl []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	tp := filepath.Join(dir, "tmpl.xml")
	os.WriteFile(tp, tmpl, 0o600)
	out := filepath.Join(dir, "signed.xml")
	cmd := exec.Command("xmlsec1", "--sign", "--privkey-pem", f.pki.Portal.KeyFile+","+f.pki.Portal.CertFile,
		"--id-attr:ID", paket.Namespace+":Antragspaket", "--output", out, tp)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xmlsec1 --sign (installed by .ci/run): %v\n%s", err, b)
	}
	signed, _ := os.ReadFile(out)
	return signed
}

// refusedEarlier lists corpus variants that the intake refuses before any signature
// work, because they are not an Antragspaket at all (the structural pre-check reads
// the root element first) or repeat an ID attribute of the package. The signing
// package's own tests check the signature verdict for them.
var refusedEarlier = map[string]string{
	"root-default-namespace-changed": problem.TypeMalformed,
	"evil-root-original-as-child":    problem.TypeMalformed,
	"depth-bomb":                     problem.TypeMalformed,
}

// TestAttackCorpusOverHTTP runs the signing package's attack corpus through the
// intake: every variant is refused with a 4xx problem of the mapped type, and
// nothing is stored.
func TestAttackCorpusOverHTTP(t *testing.T) {
	f := start(t)
	cases := signingtest.Attacks(t, f.pki, f.example().Element())
	if len(cases) < 15 {
		t.Fatalf("attack corpus has %d cases, want >= 15", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			resp, body := post(t, f.g.URL(), "application/xml", c.Doc)
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			want := api.ProblemFor(c.Want).Type
			if alt, ok := refusedEarlier[c.Name]; ok {
				want = alt
			}
			if p := problemOf(t, resp, body); p.Type != want {
				t.Fatalf("type %s, want %s (%v): %s", p.Type, want, c.Want, p.Detail)
			}
		})
	}
	n := 0
	f.g.Broker.InState("", func(*storeSubmission) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d attack variants were stored", n)
	}
}

func TestLeastPrivilege(t *testing.T) {
	f := start(t)
	res, err := f.portal.Submit(context.Background(), f.example())
	if err != nil || res.Status != 201 {
		t.Fatal(err, res)
	}
	id := res.SubmissionID
	get := func(path, token string) int {
		req, _ := http.NewRequest("GET", f.g.URL()+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name, path, token string
		want              int
	}{
		{"status without token", "/v1/submissions/" + id, "", 401},
		{"status with office token", "/v1/submissions/" + id, officeToken, 401},
		{"status as the sender", "/v1/submissions/" + id, portalToken, 200},
		{"office list without token", "/v1/office/submissions", "", 401},
		{"responsible office reads", "/v1/office/submissions/" + id, officeToken, 200},
		{"other office cannot see it", "/v1/office/submissions/" + id, otherToken, 404},
		{"other office cannot fetch it", "/v1/office/submissions/" + id + "/package", otherToken, 404},
		{"portal token is not an office token", "/v1/office/submissions/" + id, portalToken, 401},
		{"admin needs admin token", "/v1/admin/submissions", officeToken, 401},
		{"admin lists", "/v1/admin/submissions", adminToken, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := get(tc.path, tc.token); got != tc.want {
				t.Fatalf("GET %s: %d, want %d", tc.path, got, tc.want)
			}
		})
	}
}

// TestStoreMetricsAndBackupPerBackend: /metrics carries the counters of the store
// the gateway runs on — group commits for bbolt, the retry loops' conflicts and lost
// acknowledgements for the JetStream store (cluster mode) — and not the other's, and
// on both the backlog and the handed-over packages counted from the store's indexes,
// the time of its writes until durable and the room left on the data disk.
// GET /v1/admin/backup streams a whole archive for bbolt (for the admin only) and
// says why not, as a problem, in cluster mode.
func TestStoreMetricsAndBackupPerBackend(t *testing.T) {
	exposed := map[string]bool{}           // by either backend
	labels := map[string]map[string]bool{} // their series' label names, by metric
	t.Cleanup(func() { checkAlertMetrics(t, exposed) })
	t.Cleanup(func() { checkDocumentedMetrics(t, exposed, labels) })
	bbolt := []string{"amtsbote_store_commits_total", "amtsbote_store_commit_writes_total", "amtsbote_store_commit_failures_total", "amtsbote_store_commit_seconds_count"}
	js := []string{"amtsbote_store_write_conflicts_total", "amtsbote_store_unacknowledged_writes_total", "amtsbote_store_recognised_writes_total", "amtsbote_store_stale_listings_total"}
	// Either store: the backlog counted from its indexes, its writes' times.
	both := []string{"amtsbote_submissions_waiting", "amtsbote_submissions_handed_over", "amtsbote_store_write_wait_seconds_count"}
	for _, c := range []struct {
		backend       string
		want, notWant []string
	}{{config.StoreBBolt, append(bbolt, both...), js}, {config.StoreJetStream, append(js, both...), bbolt}} {
		t.Run(c.backend, func(t *testing.T) {
			f := start(t, func(cfg *config.Config) {
				cfg.Store.Backend = c.backend
				if c.backend == config.StoreJetStream {
					cfg.NATS.URL = natstest.StartSingle(t).URLs() // a nats-server process
				}
				// A portal with callbacks, so that their series are there too.
				portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
				t.Cleanup(portal.Close)
				p := cfg.Portals["amt24"]
				p.Callback = &config.PortalCallback{Endpoint: portal.URL, Secret: webhook.NewSecret()}
				cfg.Portals["amt24"] = p
			})
			res, err := f.portal.Submit(context.Background(), f.example())
			if err != nil || res.Status != http.StatusCreated {
				t.Fatalf("submit: %v %+v", err, res)
			}
			// The attempt's series exist once the delivery attempt has ended.
			var body []byte
			waitFor(t, "the first delivery attempt in /metrics", func() bool {
				resp, err := http.Get(f.g.URL() + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				return bytes.Contains(body, []byte("# TYPE amtsbote_delivery_attempts_total ")) && bytes.Contains(body, []byte("amtsbote_delivery_attempt_seconds_count{"))
			})
			for _, m := range regexp.MustCompile(`(?m)^# TYPE (amtsbote_\w+) `).FindAllSubmatch(body, -1) {
				exposed[string(m[1])] = true
			}
			seriesLabels(body, labels)
			for _, name := range c.want {
				if !regexp.MustCompile(`(?m)^` + name + ` \d+$`).Match(body) {
					t.Errorf("%s: no %s in /metrics", c.backend, name)
				}
			}
			for _, name := range c.notWant {
				if strings.Contains(string(body), name) {
					t.Errorf("%s: %s in /metrics", c.backend, name)
				}
			}
			// The room left on data_dir's file system, on either store (statfs:
			// byte counts Prometheus writes as floats).
			for _, name := range []string{"amtsbote_data_disk_available_bytes", "amtsbote_data_disk_size_bytes"} {
				if !regexp.MustCompile(`(?m)^` + name + ` [0-9.e+]+$`).Match(body) {
					t.Errorf("%s: no %s in /metrics", c.backend, name)
				}
			}
			// The scheduler's latencies, the CPUs' saturation, beside the Go series.
			if !bytes.Contains(body, []byte("# TYPE go_sched_latencies_seconds histogram")) {
				t.Errorf("%s: no go_sched_latencies_seconds in /metrics", c.backend)
			}
			// Intake's stages are timed on either store: the package above went
			// through each of them once.
			for _, stage := range []string{"slot_wait", "verify", "accept"} {
				if !regexp.MustCompile(`(?m)^amtsbote_intake_stage_seconds_count\{stage="` + stage + `"\} 1$`).Match(body) {
					t.Errorf("%s: stage %s of intake not timed once in /metrics", c.backend, stage)
				}
			}

			backup := func(token string) *http.Response {
				req, _ := http.NewRequest(http.MethodGet, f.g.URL()+"/v1/admin/backup", nil)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}
			for _, token := range []string{"", officeToken} {
				if resp := backup(token); resp.StatusCode != http.StatusUnauthorized {
					resp.Body.Close()
					t.Fatalf("backup with token %q: %d, want 401", token, resp.StatusCode)
				}
			}
			resp := backup(adminToken)
			defer resp.Body.Close()
			if c.backend == config.StoreJetStream {
				if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/problem+json" {
					t.Fatalf("cluster-mode backup: %d %s, want a 404 problem", resp.StatusCode, resp.Header.Get("Content-Type"))
				}
				return
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-tar" {
				t.Fatalf("backup: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			tr := tar.NewReader(resp.Body)
			var names []string
			var manifest store.BackupStats
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("backup archive: %v", err)
				}
				names = append(names, h.Name)
				if h.Name == store.BackupManifest {
					if err := json.NewDecoder(tr).Decode(&manifest); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(names) < 2 || names[0] != store.BackupDBName || names[len(names)-1] != store.BackupManifest || !manifest.Complete || manifest.DBBytes == 0 {
				t.Fatalf("backup entries %v, manifest %+v", names, manifest)
			}
		})
	}
}

// TestIndexWatch: a scrape lists an index at most once per period, a failed
// listing keeps the last figures instead of reporting an empty backlog, the
// oldest is the smallest (time-ordered) id's record, read alone, and an empty
// index has no oldest.
func TestIndexWatch(t *testing.T) {
	calls, reads := 0, 0
	var fail error
	ids := []string{"0193-c", "0193-a", "0193-b"}
	received := map[string]time.Time{"0193-a": time.Unix(1_700_000_000, 0), "0193-b": time.Unix(1_700_000_100, 0), "0193-c": time.Unix(1_700_000_200, 0)}
	list := func() ([]string, error) { calls++; return ids, fail }
	get := func(id string) (*submission.Submission, error) {
		reads++
		return &submission.Submission{ID: id, ReceivedAt: received[id]}, nil
	}
	cached := &indexWatch{list: list, get: get}
	newIndexWatches(time.Hour, nil, cached)
	if a, b := cached.count(), cached.count(); a != 3 || b != 3 || calls != 1 {
		t.Fatalf("cached: %v, %v after %d listings", a, b, calls)
	}
	fresh := &indexWatch{list: list, get: get}
	newIndexWatches(0, nil, fresh)
	if n, oldest := fresh.read(); n != 3 || !oldest.Equal(received["0193-a"]) || reads != 2 {
		t.Fatalf("fresh: %d, oldest %v, %d records read (want 3, the oldest's time, one read per listing)", n, oldest, reads)
	}
	fail = errors.New("store closed")
	if n, oldest := fresh.read(); n != 3 || !oldest.Equal(received["0193-a"]) || calls != 3 {
		t.Fatalf("after a failed listing: %d, %v (%d listings), want the last figures", n, oldest, calls)
	}
	fail, ids = nil, nil
	if n, oldest := fresh.read(); n != 0 || !oldest.IsZero() {
		t.Fatalf("empty: %d, %v", n, oldest)
	}
}

// TestIndexWatchDoesNotHoldTheScrape: a listing the store does not answer (a
// cluster without quorum waits out the store's 30 s) must not hold the scrape:
// it held /metrics past Prometheus's scrape timeout, so every node looked down
// and every other series went blind. The scrape reports the last figures; the
// listing's figures count once it ends; while the store is known down nothing
// is listed; stop waits for the listing in flight.
func TestIndexWatchDoesNotHoldTheScrape(t *testing.T) {
	release := make(chan struct{})
	listing := make(chan string, 4)
	list := func(state string, ids ...string) func() ([]string, error) {
		return func() ([]string, error) {
			listing <- state
			<-release
			return ids, nil
		}
	}
	get := func(id string) (*submission.Submission, error) {
		return &submission.Submission{ID: id, ReceivedAt: time.Unix(1_700_000_000, 0)}, nil
	}
	waiting := &indexWatch{state: "waiting", list: list("waiting", "0193-a", "0193-b"), get: get}
	held := &indexWatch{state: "held", list: list("held", "0193-c"), get: get}
	ws := newIndexWatches(0, nil, waiting, held)
	scrape := func(w *indexWatch) (int, time.Time) {
		type figures struct {
			n      int
			oldest time.Time
		}
		got := make(chan figures, 1)
		go func() { n, oldest := w.read(); got <- figures{n, oldest} }()
		select {
		case f := <-got:
			return f.n, f.oldest
		case <-time.After(time.Minute): // a hang guard, far beyond indexWait
			close(release) // lets the stuck scrape end with the test
			t.Fatal("the scrape waits for a listing the store does not answer")
		}
		return 0, time.Time{}
	}
	if n, oldest := scrape(waiting); n != 0 || !oldest.IsZero() {
		t.Fatalf("before any listing ended: %d, %v, want nothing", n, oldest)
	}
	if s := <-listing; s != "waiting" {
		t.Fatalf("listed %s first", s)
	}
	// Scrapes while the listing hangs start no second listing.
	if n, _ := scrape(held); n != 0 || len(listing) != 0 {
		t.Fatalf("while the listing hangs: %d, %d more listings", n, len(listing))
	}
	close(release)
	ws.stop() // waits for the listing in flight
	if waiting.lastListed().IsZero() || held.lastListed().IsZero() {
		t.Fatal("stop returned before the listing in flight ended")
	}
	if n, oldest := scrape(waiting); n != 2 || !oldest.Equal(time.Unix(1_700_000_000, 0)) {
		t.Fatalf("after the listing: %d, %v, want 2 and the oldest's time", n, oldest)
	}
	if n, _ := scrape(held); n != 1 {
		t.Fatalf("held after the listing: %d, want 1", n)
	}
	if len(listing) != 1 { // held's, in the same run
		t.Fatalf("%d listings after the first run's, want held's alone", len(listing))
	}
	<-listing
	// While the store is known down, no listing starts at all.
	ws2 := newIndexWatches(0, func() error { return errors.New("no quorum") }, &indexWatch{state: "waiting", list: list("down"), get: get})
	if n, _ := scrape(ws2.watches[0]); n != 0 || len(listing) != 0 {
		t.Fatalf("with the store known down: %d, %d listings", n, len(listing))
	}
}

// checkAlertMetrics: every amtsbote metric that deploy/prometheus/amtsbote-alerts.yml
// names is one the gateway exposes (a histogram by its _bucket, _count or _sum
// series), so a renamed metric cannot leave an alert that never fires. (The rules' logic has its own unit
// tests: make deploy-check.)
// troubleOnly are the series a healthy gateway (of this test: without peers)
// does not have: the breaker state names only endpoints that are not closed
// (broker/breaker.go setGauge), and the tracker's counters and its peers'
// trust series exist only with peers configured
// (gateway.TestPeerOfficesRepliesReachThePortal reads the counters,
// federation.TestPeerTrustedUntilFollowsItsSuccessor the trust series),
// the problem documents' counter has a series only from the first refusal
// (gateway.TestRefusalsAreCountedByProblemType reads it).
// checkAlertMetrics takes them from the code instead.
var troubleOnly = map[string]bool{"amtsbote_endpoint_breaker_state": true,
	"amtsbote_federation_questions_total": true, "amtsbote_federation_replies_total": true,
	"amtsbote_federation_peer_trusted_until_timestamp_seconds": true, "amtsbote_http_problems_total": true}

func checkAlertMetrics(t *testing.T, exposed map[string]bool) {
	if t.Failed() {
		return
	}
	rules, err := os.ReadFile("../deploy/prometheus/amtsbote-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`amtsbote_\w+`).FindAll(rules, -1)
	if len(names) < 10 {
		t.Fatalf("only %d metric names in the alert rules", len(names))
	}
	registered := sourceMetricNames(t)
	for _, n := range names {
		name := string(n)
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
		if troubleOnly[name] && registered[name] {
			continue
		}
		if !exposed[name] && !exposed[base] {
			t.Errorf("the alert rules use %s, which the gateway does not expose (exposed: %v)", name, slices.Sorted(maps.Keys(exposed)))
		}
	}
}

// TestIntakeYieldFollowsTheConfiguration: on the defaults intake may yield to
// delivery (where there are two slots or more to share), with
// limits.yield_backlog negative it never does; the metrics are there either way.
func TestIntakeYieldFollowsTheConfiguration(t *testing.T) {
	for _, c := range []struct {
		backlog int
		want    bool
	}{{0, runtime.GOMAXPROCS(0) >= 2}, {-1, false}} {
		f := start(t, func(cfg *config.Config) { cfg.Limits.YieldBacklog = c.backlog })
		if got := f.g.Yield != nil; got != c.want {
			t.Errorf("yield_backlog %d: intake yields %v, want %v", c.backlog, got, c.want)
		}
		if f.g.Yield != nil && f.g.Yield.High != intake.DefaultYieldBacklog {
			t.Errorf("yield_backlog 0 yields above %d, want the default %d", f.g.Yield.High, intake.DefaultYieldBacklog)
		}
		resp, err := http.Get(f.g.URL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, name := range []string{"amtsbote_intake_yielding", "amtsbote_intake_yields_total"} {
			if !regexp.MustCompile(`(?m)^` + name + ` 0$`).Match(body) {
				t.Errorf("yield_backlog %d: no %s 0 in /metrics", c.backlog, name)
			}
		}
	}
}

// TestStoreThatDoesNotOpenIsAnError: a store that cannot be opened (here one a
// newer build wrote; likewise one another gateway holds, or one without
// permission) is a start error that says why. The opened *store.DB went into the
// store interface even when nil, and closing it on the way out panicked, hiding
// the cause (an operator audit, 2026-12-04).
func TestStoreThatDoesNotOpenIsAnError(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "amtsbote.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("schema"), []byte("99"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Listen = "127.0.0.1:0"
	// The development PKI the store was started with: a store without one is
	// refused before it is opened (TestStoreWithoutItsDevPKIIsRefused).
	if _, err := signing.EnsureDevPKI(filepath.Join(dir, "pki"), cfg.GatewayID); err != nil {
		t.Fatal(err)
	}
	g, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		_ = g.Shutdown(context.Background())
		t.Fatal("started on a store of a newer schema")
	}
	if !strings.Contains(err.Error(), `schema version "99"`) {
		t.Fatalf("the error does not say why: %v", err)
	}
	// A newer build's file is no lock: the hint "is a gateway running on it?" sent
	// an operator back from a failed upgrade to look for one (an audit, 2026-12-05).
	if !errors.Is(err, store.ErrNewerSchema) || strings.Contains(err.Error(), "gateway running") || !strings.Contains(err.Error(), "backup taken before the upgrade") {
		t.Fatalf("a newer build's store: %v", err)
	}
	if _, _, err := OpenStoreToRead(context.Background(), cfg, slog.New(slog.DiscardHandler)); !errors.Is(err, store.ErrNewerSchema) {
		t.Fatalf("a newer build's store opened to read: %v", err)
	}
}

// TestStoreHeldByAnotherProcessSaysSo: the hint belongs to a file another
// process holds.
func TestStoreHeldByAnotherProcessSaysSo(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := store.Open(dir, store.Options{OpenTimeout: 100 * time.Millisecond}); !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "gateway running") {
		t.Fatalf("a store another process holds: %v", err)
	}
}

// TestGatewayIDMustBeTheCertificates: receipts name gateway_id and are signed
// with pki.gateway_cert; an operator's certificate for another name started
// without a word and signed receipts as someone else (an operator audit).
func TestGatewayIDMustBeTheCertificates(t *testing.T) {
	pki := signingtest.NewPKI(t)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.PKI = config.PKI{GatewayKey: pki.Gateway.KeyFile, GatewayCert: pki.Gateway.CertFile, TrustDir: pki.TrustDir}
	cfg.GatewayID = pki.Gateway.Name + "-by"
	g, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		_ = g.Shutdown(context.Background())
		t.Fatal("started with a certificate for another gateway")
	}
	if !strings.Contains(err.Error(), "pki.gateway_cert") || !strings.Contains(err.Error(), cfg.GatewayID) {
		t.Fatalf("the error does not say what differs: %v", err)
	}
}

// TestLinksWithoutPublicURLAreWarnedOf: without public_url the gateway builds
// its links from the listen address. On a wildcard address they open nowhere,
// and on loopback a mailbox notice's link opens only on the gateway's machine;
// clerks got such links without a word at start.
func TestLinksWithoutPublicURLAreWarnedOf(t *testing.T) {
	smtp := config.Default()
	smtp.Mailbox.SMTP.Addr = "mail.example:587"
	for _, tc := range []struct {
		addr string
		cfg  config.Config
		warn bool
	}{
		{"0.0.0.0:8080", config.Default(), true},
		{"[::]:8080", config.Default(), true},
		{"127.0.0.1:8080", smtp, true},
		{"127.0.0.1:8080", config.Default(), false}, // a single machine's demo: links work there
		{"10.0.0.5:8080", smtp, false},
	} {
		ap, err := netip.ParseAddrPort(tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := unusableLinks(net.TCPAddrFromAddrPort(ap), tc.cfg); (got != "") != tc.warn {
			t.Errorf("%s (smtp %q): %q, want a warning %v", tc.addr, tc.cfg.Mailbox.SMTP.Addr, got, tc.warn)
		}
	}
}
