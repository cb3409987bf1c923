package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/wire"
)

// The Portalverbund, tested with real binaries on loopback: each gateway has its own
// data folder, development PKI and directory overlay; their gateway certificates are
// exchanged by writing each one into the other's trust store (peers/).

const (
	maengelKey   = "99999001000000" // Mängelmelder: Dresden only in the built-in directory
	muenchenARS  = "091620000000"
	leipzigARS   = "147130000000"
	frankfurtARS = "064120000000"
	saxonyOnly   = "99123000000001" // a service only sn's overlay knows
)

// fedGW is one gateway of a federation test.
type fedGW struct {
	id, dir, data, url string
	port               int
	p                  *proc
}

// newFedGW prepares a gateway's folder and development PKI (the binary finds it).
func newFedGW(t *testing.T, id string) *fedGW {
	t.Helper()
	dir := t.TempDir()
	g := &fedGW{id: id, dir: dir, data: filepath.Join(dir, "data"), port: natstest.FreePorts(t, 1)[0]}
	g.url = fmt.Sprintf("http://127.0.0.1:%d", g.port)
	if _, err := signing.EnsureDevPKI(filepath.Join(g.data, "pki"), id); err != nil {
		t.Fatal(err)
	}
	return g
}

// trustEachOther writes each gateway's certificate (the leaf only: its CA would make
// everything that CA issued a peer) into the other's trust store peers/ folder.
func trustEachOther(t *testing.T, a, b *fedGW) {
	t.Helper()
	for _, pair := range [][2]*fedGW{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		data, err := os.ReadFile(filepath.Join(from.data, "pki", "gateway.pem"))
		if err != nil {
			t.Fatal(err)
		}
		certs, err := signing.ParseCertificatesPEM(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to.data, "pki", "trust", "peers", from.id+".pem"), signing.CertPEM(certs[0]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type fedPeer struct {
	gw    *fedGW
	lands string // YAML list, e.g. `["09"]`
}

// write writes the gateway's configuration and directory overlay.
func (g *fedGW) write(t *testing.T, overlay, offices string, peers ...fedPeer) {
	t.Helper()
	var ps strings.Builder
	if len(peers) > 0 {
		ps.WriteString("peers:\n")
	}
	for _, p := range peers {
		fmt.Fprintf(&ps, "  - {id: %s, lands: %s, base_url: %q, poll_interval: 200ms, clock_skew: 2m}\n", p.gw.id, p.lands, p.gw.url)
	}
	cfg := fmt.Sprintf(`gateway_id: %s
listen: 127.0.0.1:%d
data_dir: %s
delivery:
  backoff_base: 100ms
  backoff_max: 400ms
  max_attempts: 1000
  attempt_timeout: 5s
  breaker_cooldown: 3s
directory:
  files: [%s]
%s%s`, g.id, g.port, g.data, filepath.Join(g.dir, "overlay.yaml"), offices, ps.String())
	if err := os.WriteFile(filepath.Join(g.dir, "amtsbote.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(g.dir, "overlay.yaml"), []byte(overlay), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (g *fedGW) start(t *testing.T) {
	t.Helper()
	g.p = serve(t, g.dir, nil, "-config", filepath.Join(g.dir, "amtsbote.yaml"))
	if g.p.url != g.url {
		t.Fatalf("%s serves on %s, want %s", g.id, g.p.url, g.url)
	}
}

func (g *fedGW) admin(t *testing.T, path string, v any) {
	t.Helper()
	dc, err := gateway.LoadDevCredentials(g.data)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, g.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+dc.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

type adminList struct {
	Submissions []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"submissions"`
}

func officeYAML(id, token, hook string) string {
	return fmt.Sprintf("offices:\n  %s:\n    token: %q\n    channels:\n      webhook: {endpoint: %q, secret: %q}\n", id, token, hook, officeSecret)
}

const (
	officeSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	officeToken  = "office-token-for-the-federation-test"
)

func startOffice(t *testing.T) *fachverfahren.Office {
	t.Helper()
	o, err := fachverfahren.Start(fachverfahren.Options{Token: officeToken, Secret: officeSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

const byOverlay = `homeLands: ["09"]
offices:
  - id: muenchen-kvr
    name: "Landeshauptstadt München, Kreisverwaltungsreferat"
    kanaele: [{kind: webhook, level: 3}]
responsibilities:
  - {leistung: "99999001000000", gebiet: "09162", stelle: muenchen-kvr}
`

func peerEntry(land, name string, g *fedGW) string {
	return fmt.Sprintf("  - {land: %q, name: %q, gatewayId: %s, baseUrl: %q}\n", land, name, g.id, g.url)
}

func submitAt(t *testing.T, c *portal.Client, key, ars string) (*portal.Result, string) {
	t.Helper()
	msg := paket.NewMessageID()
	p := paket.ExampleWith(key, msg, time.Now().UTC().Truncate(time.Second))
	p.Kopf.Ort = paket.Ort{ARS: ars}
	res, err := c.Submit(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return res, msg
}

// waitState polls the portal's status until the state is reached.
func waitState(t *testing.T, c *portal.Client, id string, want wire.State, within time.Duration, logs ...*proc) *wire.StatusView {
	t.Helper()
	deadline := time.Now().Add(within)
	var st *wire.StatusView
	for {
		var err error
		st, err = c.Status(context.Background(), id)
		if err == nil && st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			var lg strings.Builder
			for _, p := range logs {
				lg.WriteString(p.stderr.String())
			}
			t.Fatalf("%s: state %v (err %v), want %s; events %s\n%s", id, stateOf(st), err, want, eventsOf(st), lg.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func stateOf(st *wire.StatusView) wire.State {
	if st == nil {
		return ""
	}
	return st.State
}

func eventsOf(st *wire.StatusView) string {
	if st == nil {
		return ""
	}
	var b strings.Builder
	for _, e := range st.Events {
		fmt.Fprintf(&b, "\n  %s %s %s", e.Type, e.Channel, e.Detail)
	}
	return b.String()
}

func hasEvent(st *wire.StatusView, typ, detailPart string) bool {
	for _, e := range st.Events {
		if e.Type == typ && strings.Contains(e.Detail, detailPart) {
			return true
		}
	}
	return false
}

// TestFederationSaxonyToBavaria: an Amt24 package for München travels sn -> by ->
// office; the office accepts through by's office API; the Amt24 portal sees
// "accepted" in sn's status, with the journey in the event log. A repeated hop is the
// same submission at by; a place in a state without a peer is refused at intake; a
// service by does not know is refused by by, permanently, with by's reason shown.
func TestFederationSaxonyToBavaria(t *testing.T) {
	sn, by := newFedGW(t, "amtsbote-sn"), newFedGW(t, "amtsbote-by")
	trustEachOther(t, sn, by)
	office := startOffice(t)
	sn.write(t, "peers:\n"+peerEntry("09", "Bayern", by)+
		"services:\n  - {key: \""+saxonyOnly+"\", name: \"Nur in Sachsen bekannt\", quelle: test}\n", "", fedPeer{by, `["09"]`})
	by.write(t, byOverlay+"peers:\n"+peerEntry("14", "Sachsen", sn), officeYAML("muenchen-kvr", officeToken, office.URL()), fedPeer{sn, `["14"]`})
	sn.start(t)
	by.start(t)
	amt24 := portalClient(t, sn.data, sn.url)

	res, _ := submitAt(t, amt24, maengelKey, muenchenARS)
	if res.Status != 201 {
		t.Fatalf("submit at sn: %d %+v", res.Status, res.Problem)
	}
	st := waitState(t, amt24, res.SubmissionID, wire.StateAccepted, 60*time.Second, sn.p, by.p)
	for _, want := range [][2]string{{"routed", "peer-09"}, {"forwarded", "to gateway amtsbote-by"}, {"delivered", "at gateway amtsbote-by"}, {"accepted", ""}} {
		if !hasEvent(st, want[0], want[1]) {
			t.Errorf("sn's event log lacks %s %q: %s", want[0], want[1], eventsOf(st))
		}
	}
	if len(office.Processed()) != 1 {
		t.Errorf("the office processed %d packages, want 1", len(office.Processed()))
	}
	for _, o := range office.Processed() {
		if o.Err != nil || !o.Accepted {
			t.Errorf("office outcome %+v", o)
		}
	}
	// sn's own Zustellbestaetigung names the peer channel.
	zb, err := amt24.Receipt(context.Background(), res.SubmissionID, "zustellung")
	if err != nil || !strings.Contains(string(zb), "<Kanal>peer</Kanal>") {
		t.Errorf("Zustellbestaetigung at sn: %v\n%s", err, zb)
	}

	// The portal also gets the Bavarian gateway's own signed Eingangsbestaetigung.
	pr, err := amt24.Receipt(context.Background(), res.SubmissionID, "peer")
	if err != nil || !strings.Contains(string(pr), "Eingangsbestaetigung") || !strings.Contains(string(pr), "ds:Signature") {
		t.Errorf("the peer's receipt at sn: %v\n%s", err, pr)
	}

	// by has exactly one submission; the package's sender is still the portal.
	var l adminList
	by.admin(t, "/v1/admin/submissions", &l)
	if len(l.Submissions) != 1 || l.Submissions[0].State != "accepted" {
		t.Fatalf("by's submissions: %+v", l)
	}
	var bySub struct {
		Submission struct {
			Sender string `json:"sender"`
			Origin struct {
				Gateway string `json:"gateway"`
				Chain   []struct {
					Gateway string `json:"gateway"`
				} `json:"chain"`
			} `json:"origin"`
		} `json:"submission"`
	}
	by.admin(t, "/v1/admin/submissions/"+l.Submissions[0].ID, &bySub)
	if bySub.Submission.Sender != "amt24" || bySub.Submission.Origin.Gateway != "amtsbote-sn" || len(bySub.Submission.Origin.Chain) != 1 {
		t.Errorf("by's record: %+v", bySub)
	}

	// A place in a state without a peer: refused at intake, never acknowledged.
	res, _ = submitAt(t, amt24, maengelKey, frankfurtARS)
	if res.Status != 422 || res.Problem == nil || !strings.Contains(res.Problem.Type, "no-responsible-office") {
		t.Errorf("package for Hessen (no peer): %d %+v", res.Status, res.Problem)
	}

	// A service by does not know: by refuses, sn holds the package and the portal
	// reads by's reason.
	res, _ = submitAt(t, amt24, saxonyOnly, muenchenARS)
	if res.Status != 201 {
		t.Fatalf("submit: %d %+v", res.Status, res.Problem)
	}
	st = waitState(t, amt24, res.SubmissionID, wire.StateHeld, 30*time.Second, sn.p, by.p)
	if !hasEvent(st, "channel_failed", "refused by gateway amtsbote-by") || !hasEvent(st, "channel_failed", saxonyOnly) {
		t.Errorf("the refusal's reason is not in the portal's log: %s", eventsOf(st))
	}
	// sn's log names the refusal by status and type: by's detail quotes what the
	// package said (here the service key; a place as the applicant wrote it
	// elsewhere) and stays in the events (docs/operations.md, "Personal data").
	// The line is written after the state is stored: wait for it, or the
	// check passed on a log that did not have it yet.
	var refusal string
	for deadline := time.Now().Add(10 * time.Second); refusal == ""; time.Sleep(20 * time.Millisecond) {
		for _, line := range strings.Split(sn.p.stderr.String(), "\n") {
			if strings.Contains(line, "delivery channel failed for good") && strings.Contains(line, "amtsbote-by") {
				refusal = line
			}
		}
		if refusal == "" && time.Now().After(deadline) {
			t.Fatalf("sn's log has no line of by's refusal:\n%s", sn.p.stderr.String())
		}
	}
	if strings.Contains(refusal, saxonyOnly) {
		t.Errorf("sn's log quotes by's detail: %s", refusal)
	}
	by.admin(t, "/v1/admin/submissions", &l)
	if len(l.Submissions) != 1 {
		t.Errorf("by stored a refused package: %+v", l)
	}
}

// TestFederationAttachmentsByReference: an Amt24 package for München with an
// attachment by reference (multipart/related at sn) travels sn -> by with the
// attachment as a part after the envelope; by's office fetches it from by and its
// SHA-256 matches the signed package.
func TestFederationAttachmentsByReference(t *testing.T) {
	sn, by := newFedGW(t, "amtsbote-sn"), newFedGW(t, "amtsbote-by")
	trustEachOther(t, sn, by)
	office := startOffice(t)
	sn.write(t, "peers:\n"+peerEntry("09", "Bayern", by), "", fedPeer{by, `["09"]`})
	by.write(t, byOverlay+"peers:\n"+peerEntry("14", "Sachsen", sn), officeYAML("muenchen-kvr", officeToken, office.URL()), fedPeer{sn, `["14"]`})
	sn.start(t)
	by.start(t)
	amt24 := portalClient(t, sn.data, sn.url)

	content := make([]byte, 5<<20+123) // several buffers of every copy on the way
	_, _ = rand.Read(content)
	an, part, err := portal.StreamedAnlage("bauplan", "bauplan.pdf", "application/pdf", func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := paket.ExampleWith(maengelKey, paket.NewMessageID(), time.Now().UTC().Truncate(time.Second))
	p.Kopf.Ort = paket.Ort{ARS: muenchenARS}
	p.Anlagen = append(p.Anlagen, an)
	res, err := amt24.SubmitParts(context.Background(), p, []portal.Part{part})
	if err != nil || res.Status != 201 {
		t.Fatalf("submit at sn: %v %+v", err, res)
	}
	waitState(t, amt24, res.SubmissionID, wire.StateAccepted, 60*time.Second, sn.p, by.p)
	outs := office.Processed()
	if len(outs) != 1 {
		t.Fatalf("the office at by processed %d packages, want 1", len(outs))
	}
	for _, o := range outs {
		if o.Err != nil || o.Attachments != len(p.Anlagen) {
			t.Fatalf("the office at by: %+v, want %d attachments fetched and checked", o, len(p.Anlagen))
		}
	}

	// A forwarding (signed with sn's gateway key) whose part differs from the signed
	// digest: by refuses it as its own intake would, and stores nothing.
	gwSigner, err := signing.LoadSigner(filepath.Join(sn.data, "pki", "gateway-key.pem"), filepath.Join(sn.data, "pki", "gateway.pem"))
	if err != nil {
		t.Fatal(err)
	}
	byCert, err := os.ReadFile(filepath.Join(by.data, "pki", "gateway.pem"))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := signing.ParseCertificatesPEM(byCert)
	if err != nil {
		t.Fatal(err)
	}
	ts := signing.NewTrustStore()
	if err := ts.Add(signing.RolePeer, certs[0]); err != nil {
		t.Fatal(err)
	}
	byPeer := config.Peer{ID: by.id, Lands: []string{"09"}, BaseURL: by.url, ClockSkew: time.Minute}
	trust, err := federation.NewTrust(federation.TrustOptions{Self: sn.id, Peers: []config.Peer{byPeer}, Store: ts})
	if err != nil {
		t.Fatal(err)
	}
	client := &federation.Client{Self: sn.id, Signer: gwSigner, Trust: trust, HTTP: &http.Client{Timeout: time.Minute}}
	p.Kopf.NachrichtID = paket.NewMessageID()
	raw, err := amt24.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	senderCert, err := federation.SignerCertificate(raw)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	env := &federation.Envelope{ForwardingID: "d-wrong-part", Sender: "amt24", MessageID: p.Kopf.NachrichtID, LeikaKey: maengelKey,
		AreaARS: muenchenARS, ReceiptSHA256: strings.Repeat("ab", 32), SenderCert: senderCert, Package: raw,
		Chain: []federation.Hop{{Gateway: sn.id, SubmissionID: "s-wrong-part", At: now}}}
	other := append([]byte{}, content...)
	other[len(other)/2] ^= 1
	_, err = client.Forward(context.Background(), byPeer, env, federation.Part{ContentID: part.ContentID, Open: func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(other)), nil
	}})
	var refused *federation.RefusedError
	if !errors.As(err, &refused) || refused.Status != 422 || !strings.Contains(refused.Reason, "SHA256") {
		t.Fatalf("a forwarding with a part that differs from the signed digest: %v, want a 422 refusal", err)
	}
	var l adminList
	by.admin(t, "/v1/admin/submissions", &l)
	if len(l.Submissions) != 1 {
		t.Fatalf("by stored the refused forwarding: %+v", l)
	}
}

// TestFederationPeerKilled: packages forwarded while the peer is killed with SIGKILL
// and restarted: every one reaches the office once and is accepted; none is lost,
// none is doubled at the peer.
func TestFederationPeerKilled(t *testing.T) {
	sn, by := newFedGW(t, "amtsbote-sn"), newFedGW(t, "amtsbote-by")
	trustEachOther(t, sn, by)
	office := startOffice(t)
	sn.write(t, "peers:\n"+peerEntry("09", "Bayern", by), "", fedPeer{by, `["09"]`})
	by.write(t, byOverlay, officeYAML("muenchen-kvr", officeToken, office.URL()), fedPeer{sn, `["14"]`})
	sn.start(t)
	by.start(t)
	amt24 := portalClient(t, sn.data, sn.url)

	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	submitN := func(n int) {
		defer wg.Done()
		for i := 0; i < n; i++ {
			res, _ := submitAt(t, amt24, maengelKey, muenchenARS)
			if res.Status != 201 {
				t.Errorf("submit: %d %+v", res.Status, res.Problem)
				return
			}
			mu.Lock()
			ids = append(ids, res.SubmissionID)
			mu.Unlock()
		}
	}
	wg.Add(2)
	go submitN(8)
	go submitN(8)
	// Kill the peer while the packages are on their way.
	deadline := time.Now().Add(30 * time.Second)
	for len(office.Processed()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	by.p.kill9(t)
	wg.Wait()
	time.Sleep(500 * time.Millisecond) // sn retries against a dead peer meanwhile
	by.start(t)
	// Every package reaches the office at by (delivered, or already decided).
	var l adminList
	deadline = time.Now().Add(90 * time.Second)
	for {
		by.admin(t, "/v1/admin/submissions", &l)
		open := 0
		for _, s := range l.Submissions {
			if s.State != "delivered" && s.State != "accepted" {
				open++
			}
		}
		if len(l.Submissions) == len(ids) && open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("by has %d submissions (%d not delivered) for %d forwarded packages: %+v\n%s", len(l.Submissions), open, len(ids), l, by.p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The office's own decision POST can die with the killed gateway (the office's
	// client does not retry it): the office decides such a package again now, through
	// by's office API, as a real Fachverfahren would.
	for _, s := range l.Submissions {
		if s.State != "delivered" {
			continue
		}
		req, _ := http.NewRequest(http.MethodPost, by.url+wire.OfficeDecisionPath(s.ID, wire.OutcomeAccepted), strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+officeToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("office accepts %s again: %d", s.ID, resp.StatusCode)
		}
		t.Logf("the office's decision on %s was lost with the killed gateway; decided again", s.ID)
	}
	for _, id := range ids {
		waitState(t, amt24, id, wire.StateAccepted, 90*time.Second, sn.p, by.p)
	}
	by.admin(t, "/v1/admin/submissions", &l)
	if len(l.Submissions) != len(ids) {
		t.Errorf("by has %d submissions for %d forwarded packages", len(l.Submissions), len(ids))
	}
	if n := len(office.Processed()); n > len(ids) {
		t.Errorf("the office processed %d packages, want at most %d", n, len(ids))
	}
	retried := 0
	for _, id := range ids {
		st, err := amt24.Status(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if hasEvent(st, "attempt_failed", "amtsbote-by") {
			retried++
		}
	}
	t.Logf("%d of %d packages show failed attempts while by was down", retried, len(ids))
}

// TestFederationBavariaToSaxony: the reverse direction, a Leipzig office via by.
//
// by's overlay sets homeLands ["09"] and names sn as the peer for Saxony: the
// operator's home lands replace the built-in ones (Saxony's), and outside them
// only the operator's own records answer, so the built-in Saxon offices do not
// (docs/directory.md, rule 8).
func TestFederationBavariaToSaxony(t *testing.T) {
	sn, by := newFedGW(t, "amtsbote-sn"), newFedGW(t, "amtsbote-by")
	trustEachOther(t, sn, by)
	office := startOffice(t)
	snOverlay := "peers:\n" + peerEntry("09", "Bayern", by) + `offices:
  - id: leipzig-ordnungsamt
    name: "Stadt Leipzig, Ordnungsamt"
    kanaele: [{kind: webhook, level: 3}]
responsibilities:
  - {leistung: "99999001000000", gebiet: "14713", stelle: leipzig-ordnungsamt}
`
	sn.write(t, snOverlay, officeYAML("leipzig-ordnungsamt", officeToken, office.URL()), fedPeer{by, `["09"]`})
	by.write(t, byOverlay+"peers:\n"+peerEntry("14", "Sachsen", sn), "", fedPeer{sn, `["14"]`})
	sn.start(t)
	by.start(t)
	// by's own development portal submits at by.
	portalBy := portalClient(t, by.data, by.url)
	res, _ := submitAt(t, portalBy, maengelKey, leipzigARS)
	if res.Status != 201 {
		t.Fatalf("a Leipzig package at by: %d %+v\nby's directory must route Saxony (14) to its peer: an overlay's homeLands [\"09\"] replace the built-in homeLands [\"14\"], and the built-in Saxon responsibilities do not apply outside the home lands (docs/directory.md, rule 8)",
			res.Status, res.Problem)
	}
	st := waitState(t, portalBy, res.SubmissionID, wire.StateAccepted, 60*time.Second, sn.p, by.p)
	if !hasEvent(st, "forwarded", "to gateway amtsbote-sn") {
		t.Errorf("by's log: %s", eventsOf(st))
	}
}

// TestFederationLoopGuard: three gateways whose configurations send a Hessian place
// round in a circle (sn -> by -> he -> sn). he refuses to close the loop; by holds
// the package with he's reason; sn shows it as the peer's status; nothing is stored
// at he, and sn never gets the package back.
func TestFederationLoopGuard(t *testing.T) {
	sn, by, he := newFedGW(t, "amtsbote-sn"), newFedGW(t, "amtsbote-by"), newFedGW(t, "amtsbote-he")
	trustEachOther(t, sn, by)
	trustEachOther(t, by, he)
	trustEachOther(t, he, sn)
	sn.write(t, "", "", fedPeer{by, `["06"]`})
	by.write(t, `homeLands: ["09"]`+"\n", "", fedPeer{sn, `["14"]`}, fedPeer{he, `["06"]`})
	he.write(t, `homeLands: ["05"]`+"\n", "", fedPeer{sn, `["06"]`}, fedPeer{by, `["09"]`})
	sn.start(t)
	by.start(t)
	he.start(t)
	amt24 := portalClient(t, sn.data, sn.url)
	res, _ := submitAt(t, amt24, maengelKey, frankfurtARS)
	if res.Status != 201 {
		t.Fatalf("submit: %d %+v", res.Status, res.Problem)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := amt24.Status(context.Background(), res.SubmissionID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == wire.StateForwarded && hasEvent(st, "peer_status", "held") {
			if !hasEvent(st, "peer_status", "loop") {
				t.Errorf("the peer status does not name the loop: %s", eventsOf(st))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %s: %s\n%s", st.State, eventsOf(st), by.p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var l adminList
	he.admin(t, "/v1/admin/submissions", &l)
	if len(l.Submissions) != 0 {
		t.Errorf("he stored the looping package: %+v", l)
	}
	sn.admin(t, "/v1/admin/submissions", &l)
	if len(l.Submissions) != 1 {
		t.Errorf("the package came back to sn: %+v", l)
	}
	by.admin(t, "/v1/admin/submissions?state=held", &l)
	if len(l.Submissions) != 1 {
		t.Errorf("by holds %+v", l)
	}
}

// TestFederationRepeatedHop: the same hop twice (a forwarding gateway that crashed
// before it recorded the answer) gets the same receipt, and the receiving gateway
// has one submission. The envelope is built here from sn's own key files, the way
// any implementation of docs/federation.md would build it.
func TestFederationRepeatedHop(t *testing.T) {
	sn, by := newFedGW(t, "amtsbote-sn"), newFedGW(t, "amtsbote-by")
	trustEachOther(t, sn, by)
	office := startOffice(t)
	by.write(t, byOverlay, officeYAML("muenchen-kvr", officeToken, office.URL()), fedPeer{sn, `["14"]`})
	by.start(t)
	pki := filepath.Join(sn.data, "pki")
	gwSigner, err := signing.LoadSigner(filepath.Join(pki, "gateway-key.pem"), filepath.Join(pki, "gateway.pem"))
	if err != nil {
		t.Fatal(err)
	}
	portalSigner, err := signing.LoadSigner(filepath.Join(pki, "portal-amt24-key.pem"), filepath.Join(pki, "portal-amt24.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p := paket.ExampleWith(maengelKey, paket.NewMessageID(), time.Now().UTC().Truncate(time.Second))
	p.Kopf.Ort = paket.Ort{ARS: muenchenARS}
	pkg, err := portalSigner.Sign(p.Element())
	if err != nil {
		t.Fatal(err)
	}
	hop := func() (int, []byte) {
		now := time.Now().UTC()
		env := &federation.Envelope{ForwardingID: "dlv-1", From: sn.id, To: by.id, At: now, Sender: "amt24", MessageID: p.Kopf.NachrichtID,
			LeikaKey: maengelKey, ReceiptSHA256: strings.Repeat("0", 64), Chain: []federation.Hop{{Gateway: sn.id, SubmissionID: "sn-sub-1", At: now}},
			SenderCert: portalSigner.Certificate(), Package: pkg}
		doc, err := env.Sign(gwSigner)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(by.url+federation.PathForward, federation.ContentType, strings.NewReader(string(doc)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	c1, r1 := hop()
	c2, r2 := hop()
	if c1 != 201 || c2 != 200 || string(r1) != string(r2) {
		t.Fatalf("first hop %d, repeat %d; same receipt: %v\n%s\n%s", c1, c2, string(r1) == string(r2), r1, r2)
	}
	var l adminList
	by.admin(t, "/v1/admin/submissions", &l)
	if len(l.Submissions) != 1 {
		t.Errorf("by has %d submissions after a repeated hop", len(l.Submissions))
	}
}

// TestFederationPeerDownHeld: with the peer down for longer than the retry budget the
// package is held at the forwarding gateway, visible to operators with the reason;
// after the peer is back an operator's redeliver forwards it, and it is accepted.
func TestFederationPeerDownHeld(t *testing.T) {
	sn, by := newFedGW(t, "amtsbote-sn"), newFedGW(t, "amtsbote-by")
	trustEachOther(t, sn, by)
	office := startOffice(t)
	sn.write(t, "peers:\n"+peerEntry("09", "Bayern", by), "", fedPeer{by, `["09"]`})
	cfg, _ := os.ReadFile(filepath.Join(sn.dir, "amtsbote.yaml"))
	_ = os.WriteFile(filepath.Join(sn.dir, "amtsbote.yaml"), []byte(strings.Replace(string(cfg), "max_attempts: 1000", "max_attempts: 3", 1)), 0o600)
	by.write(t, byOverlay, officeYAML("muenchen-kvr", officeToken, office.URL()), fedPeer{sn, `["14"]`})
	sn.start(t) // by is not running
	amt24 := portalClient(t, sn.data, sn.url)
	res, _ := submitAt(t, amt24, maengelKey, muenchenARS)
	if res.Status != 201 {
		t.Fatalf("submit: %d %+v", res.Status, res.Problem)
	}
	st := waitState(t, amt24, res.SubmissionID, wire.StateHeld, 30*time.Second, sn.p)
	if !hasEvent(st, "attempt_failed", "peer gateway amtsbote-by is not reachable") || !hasEvent(st, "channel_failed", "gave up after 3 attempts") {
		t.Errorf("the portal's log does not say why: %s", eventsOf(st))
	}
	var l adminList
	sn.admin(t, "/v1/admin/submissions?state=held", &l)
	if len(l.Submissions) != 1 {
		t.Fatalf("operators do not see the held package: %+v", l)
	}
	by.start(t)
	dc, err := gateway.LoadDevCredentials(sn.data)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, sn.url+wire.AdminRedeliverPath(res.SubmissionID), nil)
	req.Header.Set("Authorization", "Bearer "+dc.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("redeliver: %d", resp.StatusCode)
	}
	waitState(t, amt24, res.SubmissionID, wire.StateAccepted, 60*time.Second, sn.p, by.p)
}

// TestDemoFederation runs `amtsbote demo -federation` as a user would.
func TestDemoFederation(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := run(t, ctx, dir, "demo", "-federation")
	if err != nil {
		t.Fatalf("demo -federation: %v\n%s", err, out)
	}
	for _, want := range []string{
		"trust: certificate of amtsbote-sn", "routed: Meldung von Mängeln im Stadt- oder Gemeindegebiet in München",
		"FORWARDED across the state border to gateway amtsbote-by", "arrived from a peer: forwarded by gateway amtsbote-sn",
		"Landeshauptstadt München, Kreisverwaltungsreferat", "office decision: accepted",
		"status at amtsbote-sn: accepted", "demo complete: the application crossed from Saxony to Bavaria",
		// The office's Bescheid, sent through Bavaria's office API, back at Saxony's portal.
		"replied api Bescheid", "the office's reply came BACK across the state border: Bescheid",
		"→ accepted → replied", "read at amtsbote-sn (application/pdf", `bytes, named "Bescheid.pdf", channel peer)`, "its Bescheid came back to Saxony's portal",
		// The Nachreichung follows its case across the border; Bavaria files it
		// with the case it has and the office's system is told so.
		"routed: Nachreichung to case ", "-> Peer gateway Bayern (amtsbote-by)", ", a Nachreichung to case ",
		"→ forwarded → delivered → accepted", "followed it across the border to the same office and is accepted",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q\n%s", want, out)
		}
	}
}
