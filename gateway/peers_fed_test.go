package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/submission"
)

// The Portalverbund in one test process: gateways of their own (data folder,
// development PKI, directory overlay) talk over loopback HTTP exactly as separate
// processes would; e2e/federation_test.go does the same with built binaries.

const (
	fedService     = "99999001000000" // Mängelmelder
	fedMuenchenARS = "091620000000"
	fedKoelnARS    = "053150000000"
	fedOfficeToken = "office-token-of-a-peer-state-office"
	fedHookSecret  = "whsec_c2VjcmV0LW9mLXRoZS1wZWVyLW9mZmljZS0xMjM0NTY="
)

// fedNode is one gateway of a test federation, configured before it starts.
type fedNode struct {
	id, dir, addr string
	ln            net.Listener // held from newFedNode until the first start
	cfg           config.Config
	offices       string   // directory overlay: homeLands, offices, responsibilities
	dirPeers      []string // directory overlay: its peers entries
	g             *Gateway
}

func newFedNode(t *testing.T, id string) *fedNode {
	t.Helper()
	n := &fedNode{id: id, dir: t.TempDir()}
	// The address must be known before the node starts (its peers name it), so the
	// listener is opened now and handed to the gateway: nobody can take the port in
	// between, as happened to a picked-and-closed one under CI's parallel packages.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() }) // a no-op once the gateway served and closed it
	n.ln, n.addr = ln, ln.Addr().String()
	if _, err := signing.EnsureDevPKI(filepath.Join(n.dir, "pki"), id); err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.GatewayID, c.DataDir, c.Listen = id, filepath.Join(n.dir, "data"), n.addr
	c.PKI.Dir = filepath.Join(n.dir, "pki")
	c.Delivery.BackoffBase = 100 * time.Millisecond
	c.Delivery.BackoffMax = 400 * time.Millisecond
	n.cfg = c
	return n
}

func (n *fedNode) url() string { return "http://" + n.addr }

// peerCertFile is where n trusts peer's gateway certificate (the leaf only).
func (n *fedNode) peerCertFile(peer *fedNode) string {
	return filepath.Join(n.dir, "pki", "trust", "peers", peer.id+".pem")
}

// fedTrust exchanges the gateway certificates of a and b as docs/federation.md
// says: each one's leaf into the other's trust store, folder peers/.
func fedTrust(t *testing.T, a, b *fedNode) {
	t.Helper()
	for _, pair := range [][2]*fedNode{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		data, err := os.ReadFile(filepath.Join(from.dir, "pki", "gateway.pem"))
		if err != nil {
			t.Fatal(err)
		}
		certs, err := signing.ParseCertificatesPEM(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to.peerCertFile(from), signing.CertPEM(certs[0]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// peer configures other as n's peer for the lands, reached at baseURL ("": other's
// own address), asked every poll.
func (n *fedNode) peer(other *fedNode, baseURL string, poll time.Duration, lands ...string) {
	if baseURL == "" {
		baseURL = other.url()
	}
	n.cfg.Peers = append(n.cfg.Peers, config.Peer{ID: other.id, Name: other.id, Lands: lands, BaseURL: baseURL, PollInterval: poll, ClockSkew: 2 * time.Minute})
	for _, l := range lands {
		n.dirPeers = append(n.dirPeers, fmt.Sprintf("  - {land: %q, name: %q, gatewayId: %s, baseUrl: %q}\n", l, other.id, other.id, baseURL))
	}
}

// office makes n the home of one office with a webhook channel at hook, responsible
// for the service in the Kreis (five-digit ARS prefix) of Land land.
func (n *fedNode) office(land, kreis, id, hook string) {
	n.offices = fmt.Sprintf(`homeLands: [%q]
offices:
  - id: %s
    name: "Amt %s"
    kanaele: [{kind: webhook, level: 3}]
responsibilities:
  - {leistung: %q, gebiet: %q, stelle: %s}
`, land, id, id, fedService, kreis, id)
	if n.cfg.Offices == nil {
		n.cfg.Offices = map[string]config.OfficeClient{}
	}
	n.cfg.Offices[id] = config.OfficeClient{Token: fedOfficeToken,
		Channels: map[string]config.Channel{"webhook": {Endpoint: hook, Secret: fedHookSecret}}}
}

func (n *fedNode) start(t *testing.T) {
	t.Helper()
	if ov := n.offices; ov != "" || len(n.dirPeers) > 0 {
		if len(n.dirPeers) > 0 {
			ov += "peers:\n" + strings.Join(n.dirPeers, "")
		}
		f := filepath.Join(n.dir, "overlay.yaml")
		if err := os.WriteFile(f, []byte(ov), 0o644); err != nil {
			t.Fatal(err)
		}
		n.cfg.Directory.Files = []string{f}
	}
	ln := n.ln
	n.ln = nil // a restart binds the address itself
	g, err := startOn(context.Background(), n.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), ln)
	if err != nil {
		t.Fatalf("start %s: %v", n.id, err)
	}
	n.g = g
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
}

// portal is the development portal amt24 of n.
func (n *fedNode) portal(t *testing.T) *portal.Client {
	t.Helper()
	signer, err := signing.LoadSigner(n.g.PKI.PortalKey, n.g.PKI.PortalCert)
	if err != nil {
		t.Fatal(err)
	}
	return &portal.Client{BaseURL: n.url(), Signer: signer, Token: n.g.Config.Portals[signing.DevPortalID].Token}
}

// submit sends a new package of amt24 for the place and wants a 201.
func (n *fedNode) submit(t *testing.T, ars string) string {
	t.Helper()
	return n.submitFollowUp(t, ars, "")
}

// submitFollowUp is submit of a Nachreichung to the application whose
// NachrichtID is bezug ("": a new application).
func (n *fedNode) submitFollowUp(t *testing.T, ars, bezug string) string {
	t.Helper()
	p := paket.ExampleWith(fedService, paket.NewMessageID(), time.Now().UTC().Truncate(time.Second))
	p.Kopf.Ort = paket.Ort{ARS: ars}
	p.Kopf.Bezug = bezug
	res, err := n.portal(t).Submit(context.Background(), p)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit at %s: %v %+v", n.id, err, res)
	}
	return res.SubmissionID
}

func (n *fedNode) sub(t *testing.T, id string) *submission.Submission {
	t.Helper()
	s, err := n.g.Broker.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitState waits for the submission to reach the state.
func (n *fedNode) waitState(t *testing.T, id string, want submission.State) *submission.Submission {
	t.Helper()
	var s *submission.Submission
	waitFor(t, fmt.Sprintf("%s at %s to be %s", id, n.id, want), func() bool {
		s = n.sub(t, id)
		return s.State == want
	})
	return s
}

// decide lets the office at n decide on its submission of the package through the
// office API.
func (n *fedNode) decide(t *testing.T, sender, messageID, outcome string) {
	t.Helper()
	n.decideWith(t, sender, messageID, outcome, "")
}

// fedHook is an office system's webhook endpoint that takes every notification
// and decides later, through the office API (fedNode.decide).
func fedHook(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"fv-1"}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/hook"
}

// fedProxy stands between a gateway and its peer: it counts the requests per
// federation path and can hold status questions (a peer that hangs).
type fedProxy struct {
	srv    *httptest.Server
	counts sync.Map // path -> *atomic.Int64
	hang   atomic.Bool
	// loseForwardings: a forwarding reaches the peer, and its answer is lost on
	// the way back (502 instead).
	loseForwardings atomic.Bool
	// refuseForwardings: a forwarding never reaches the peer (503).
	refuseForwardings atomic.Bool
	hanging           chan struct{} // a held question arrived
	release           chan struct{}
}

func newFedProxy(t *testing.T, target string) *fedProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &fedProxy{hanging: make(chan struct{}, 1), release: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := p.counts.LoadOrStore(r.URL.Path, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
		if r.URL.Path == federation.PathStatus && p.hang.Load() {
			select {
			case p.hanging <- struct{}{}:
			default:
			}
			select {
			case <-r.Context().Done():
			case <-p.release:
			}
			return
		}
		if strings.HasPrefix(r.URL.Path, federation.PathForward) && p.refuseForwardings.Load() {
			_, _ = io.Copy(io.Discard, r.Body)
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		}
		if strings.HasPrefix(r.URL.Path, federation.PathForward) && p.loseForwardings.Load() {
			rp.ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, "the peer's answer was lost", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		close(p.release)
		p.srv.Close()
	})
	return p
}

func (p *fedProxy) count(path string) int64 {
	c, ok := p.counts.Load(path)
	if !ok {
		return 0
	}
	return c.(*atomic.Int64).Load()
}

// gatewaySigner is n's gateway key, the one it signs federation documents with.
func (n *fedNode) gatewaySigner(t *testing.T) *signing.Signer {
	t.Helper()
	pki := filepath.Join(n.dir, "pki")
	s, err := signing.LoadSigner(filepath.Join(pki, "gateway-key.pem"), filepath.Join(pki, "gateway.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signedPackage is a package of n's development portal amt24 for the place.
func (n *fedNode) signedPackage(t *testing.T, messageID string, place paket.Ort) []byte {
	t.Helper()
	pki := filepath.Join(n.dir, "pki")
	s, err := signing.LoadSigner(filepath.Join(pki, "portal-amt24-key.pem"), filepath.Join(pki, "portal-amt24.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p := paket.ExampleWith(fedService, messageID, time.Now().UTC().Truncate(time.Second))
	p.Kopf.Ort = place
	raw, err := s.Sign(p.Element())
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// forwardRaw posts pkg to to's federation endpoint in an envelope n signs, the way
// any implementation of docs/federation.md would, and returns the answer.
func (n *fedNode) forwardRaw(t *testing.T, to *fedNode, messageID string, pkg []byte, edit ...func(*federation.Envelope)) (int, []byte) {
	t.Helper()
	cert, err := federation.SignerCertificate(pkg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	env := &federation.Envelope{ForwardingID: "d-" + paket.NewMessageID(), From: n.id, To: to.id, At: now, Sender: "amt24", MessageID: messageID,
		LeikaKey: fedService, ReceiptSHA256: strings.Repeat("0", 64), SenderCert: cert, Package: pkg,
		Chain: []federation.Hop{{Gateway: n.id, SubmissionID: "s-" + paket.NewMessageID(), At: now}}}
	for _, e := range edit {
		e(env)
	}
	doc, err := env.Sign(n.gatewaySigner(t))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(to.url()+federation.PathForward, federation.ContentType, bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// newMunichPeer returns the Bavarian node "amtsbote-by", not started: the Munich
// office (a webhook), sn and it trusting each other, sn its peer for Saxony.
func newMunichPeer(t *testing.T, sn *fedNode) *fedNode {
	t.Helper()
	by := newFedNode(t, "amtsbote-by")
	fedTrust(t, sn, by)
	by.office("09", "09162", "muenchen-kvr", fedHook(t))
	by.peer(sn, "", time.Hour, "14")
	return by
}

// snAndBy starts Saxony and Bavaria (newMunichPeer); Saxony forwards Bavarian
// places to it and asks about them every 100 ms.
func snAndBy(t *testing.T) (sn, by *fedNode) {
	t.Helper()
	sn = newFedNode(t, "amtsbote-sn")
	by = newMunichPeer(t, sn)
	by.start(t)
	sn.peer(by, "", 100*time.Millisecond, "09")
	sn.start(t)
	return sn, by
}
