package peer

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/adaptertest"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// harness: the adapter forwards as "gw-test"; each receiver is a stub peer gateway
// "portal-ec" that verifies the envelope with the federation package, decodes the
// package itself, and answers in its mode (a receipt, 503, 422, or nothing).
type harness struct {
	pki *signingtest.PKI
}

const stubPeer = "portal-ec"

func (h *harness) Features() adaptertest.Features {
	return adaptertest.Features{CarriesPackage: true, ConfirmsLater: true}
}

func (h *harness) NewAdapter(t testing.TB, logger *slog.Logger) adapters.Adapter {
	return h.adapter(t, logger, nil)
}

// adapter is the harness's adapter with the broker's records rec (nil: none, as
// the conformance suite runs it).
func (h *harness) adapter(t testing.TB, logger *slog.Logger, rec Records) *Adapter {
	store := signing.NewTrustStore()
	if err := store.Add(signing.RolePeer, h.pki.PortalECDSA.Cert); err != nil {
		t.Fatal(err)
	}
	peers := []config.Peer{{ID: stubPeer, Lands: []string{"09"}, BaseURL: "http://unused.invalid"}}
	trust, err := federation.NewTrust(federation.TrustOptions{Self: h.pki.Gateway.Name, Peers: peers, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	portalCert := h.pki.Portal.Cert
	a, err := New(Options{Self: h.pki.Gateway.Name, Peers: peers, Records: rec, Logger: logger,
		Client:     &federation.Client{Self: h.pki.Gateway.Name, Signer: h.pki.Gateway.Signer, Trust: trust, HTTP: &http.Client{}},
		SignerCert: func([]byte) (*x509.Certificate, error) { return portalCert, nil }, // the suite's packages are unsigned
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type stub struct {
	t       testing.TB
	mode    adaptertest.Mode
	srv     *httptest.Server
	trust   *federation.Trust
	signer  *signing.Signer
	release chan struct{}
	// receiptOff moves the time of its receipts off the clock (set before
	// the first forwarding): a peer whose clock is wrong.
	receiptOff time.Duration

	mu        sync.Mutex
	got       []adaptertest.Received
	byMessage map[federation.Ref]string // -> delivery id
	confirmed map[string]bool
}

func (h *harness) NewReceiver(t testing.TB, mode adaptertest.Mode) adaptertest.Receiver {
	store := signing.NewTrustStore()
	if err := store.Add(signing.RolePeer, h.pki.Gateway.Cert); err != nil {
		t.Fatal(err)
	}
	trust, err := federation.NewTrust(federation.TrustOptions{Self: stubPeer, Store: store,
		Peers: []config.Peer{{ID: h.pki.Gateway.Name, Lands: []string{"14"}, BaseURL: "http://unused.invalid"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := &stub{t: t, mode: mode, trust: trust, signer: h.pki.PortalECDSA.Signer, release: make(chan struct{}),
		byMessage: map[federation.Ref]string{}, confirmed: map[string]bool{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.release)
		s.srv.Close()
	})
	return s
}

func (s *stub) Target() adapters.Target {
	return adapters.Target{Channel: channel.Peer, Endpoint: s.srv.URL, Params: map[string]string{"peer": stubPeer}}
}

func (s *stub) Received() []adaptertest.Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]adaptertest.Received(nil), s.got...)
}

func (s *stub) Confirm(t testing.TB, deliveryID string) {
	s.mu.Lock()
	s.confirmed[deliveryID] = true
	s.mu.Unlock()
}

func (s *stub) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	switch r.URL.Path {
	case federation.PathForward:
		s.forward(w, r, body)
	case federation.PathStatus:
		s.status(w, body)
	default:
		http.NotFound(w, r)
	}
}

func (s *stub) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	rec := adaptertest.Received{}
	v, _, err := s.trust.Verify(body, "")
	var env *federation.Envelope
	if err == nil {
		env, err = federation.ParseEnvelope(v.Root)
	}
	if err == nil {
		err = s.trust.CheckTime(config.Peer{}, env.At)
	}
	if err != nil {
		rec.Problem = "envelope: " + err.Error()
	} else {
		sum := sha256.Sum256(env.Package)
		rec.DeliveryID, rec.SubmissionID = env.ForwardingID, env.Chain[len(env.Chain)-1].SubmissionID
		rec.PackageSHA256, rec.Package = hex.EncodeToString(sum[:]), env.Package
	}
	s.mu.Lock()
	s.got = append(s.got, rec)
	if env != nil {
		s.byMessage[federation.Ref{Sender: env.Sender, MessageID: env.MessageID}] = env.ForwardingID
	}
	s.mu.Unlock()
	switch s.mode {
	case adaptertest.ModeHang:
		select {
		case <-r.Context().Done():
		case <-s.release:
		}
		return
	case adaptertest.ModeTransient:
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case adaptertest.ModePermanent:
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(map[string]any{"type": "https://amtsbote.de/problems/unknown-service", "status": 422, "detail": "routing: unknown service"})
		return
	}
	if env == nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	doc, err := s.signer.SignReceipt(signing.Receipt{Kind: signing.KindEingang, SubmissionID: "stub-" + env.ForwardingID, MessageID: env.MessageID,
		Sender: env.Sender, LeikaKey: env.LeikaKey, OfficeID: "stub-office", OfficeName: "Stub office", GatewayID: stubPeer,
		Time: time.Now().Add(s.receiptOff).UTC(), PackageSHA256: env.PackageSHA256()})
	if err != nil {
		s.t.Error(err)
		return
	}
	w.Header().Set("Content-Type", federation.ContentType)
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(doc)
}

// query is the signed status question in body, or nil with the refusal written.
func (s *stub) query(w http.ResponseWriter, body []byte) *federation.Query {
	v, _, err := s.trust.Verify(body, "")
	if err != nil {
		w.WriteHeader(http.StatusForbidden)
		return nil
	}
	q, err := federation.ParseQuery(v.Root)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return nil
	}
	return q
}

func (s *stub) status(w http.ResponseWriter, body []byte) {
	q := s.query(w, body)
	if q == nil {
		return
	}
	rp := &federation.Report{From: stubPeer, To: q.From, At: time.Now().UTC()}
	s.mu.Lock()
	for _, ref := range q.Refs {
		st := federation.Status{Ref: ref, State: federation.StateUnknown}
		if id, ok := s.byMessage[ref]; ok {
			st.State, st.SubmissionID = "queued", "stub-"+id
			if s.confirmed[id] {
				at := time.Now().UTC()
				st.State, st.Receiver, st.DeliveredAt = "delivered", "Stub office", &at
			}
		}
		rp.Items = append(rp.Items, st)
	}
	s.mu.Unlock()
	doc, err := rp.Sign(s.signer)
	if err != nil {
		s.t.Error(err)
		return
	}
	_, _ = w.Write(doc)
}

func TestConformance(t *testing.T) {
	adaptertest.Run(t, &harness{pki: signingtest.NewPKI(t)})
}

func TestPeerFor(t *testing.T) {
	peers := []config.Peer{
		{ID: "by", Lands: []string{"09"}},
		{ID: "muc", Areas: []string{"09162"}},
	}
	for _, c := range []struct{ ars, office, want string }{
		{"091620000000", "peer-09", "muc"},
		{"095640000000", "peer-09", "by"},
		{"", "peer-09", "by"},
		{"061234", "peer-06", ""},
	} {
		p, ok := PeerFor(peers, c.ars, c.office)
		if (c.want == "") == ok || p.ID != c.want {
			t.Errorf("PeerFor(%q, %q) = %q %v, want %q", c.ars, c.office, p.ID, ok, c.want)
		}
	}
}
