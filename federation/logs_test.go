package federation

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/signing/signingtest"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// capture is a slog handler that keeps every record, for tests that count
// log lines.
type capture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.recs = append(c.recs, r.Clone())
	c.mu.Unlock()
	return nil
}
func (c *capture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *capture) WithGroup(string) slog.Handler      { return c }

// count is how many records of level begin with msg.
func (c *capture) count(level slog.Level, msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.recs {
		if r.Level == level && strings.HasPrefix(r.Message, msg) {
			n++
		}
	}
	return n
}

// attrs are the attributes of the last record of level beginning with msg.
func (c *capture) attrs(level slog.Level, msg string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]string{}
	for i := len(c.recs) - 1; i >= 0; i-- {
		if r := c.recs[i]; r.Level == level && strings.HasPrefix(r.Message, msg) {
			r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
			break
		}
	}
	return m
}

// peerServer is w's peer b answering status questions, 503 while down is
// set; asked, if set, counts the questions.
func peerServer(t *testing.T, w *world, down *atomic.Bool, asked *atomic.Int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if asked != nil {
			asked.Add(1)
		}
		if down.Load() {
			http.Error(rw, "stopping", http.StatusServiceUnavailable)
			return
		}
		// An answer about another package: verified, and nothing recorded.
		doc, err := (&Report{From: w.b.Name, To: w.a.Name, At: time.Now().UTC(),
			Items: []Status{{Ref: Ref{"amt24", "other"}, State: StateUnknown}}}).Sign(w.b.Signer)
		if err != nil {
			t.Error(err)
		}
		rw.Header().Set("Content-Type", ContentType)
		_, _ = rw.Write(doc)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// forwardedTo stores a package forwarded to peer, the n-th, and returns its id.
func forwardedTo(t *testing.T, db store.Store, peer string, n int) string {
	t.Helper()
	id := fmt.Sprintf("01900000-0001-7000-8000-%012d", n)
	s, evs := submission.New(submission.Params{ID: id, DeliveryID: "d" + id, MessageID: fmt.Sprintf("m-%d", n), Sender: "amt24", SignerID: "amt24",
		LeikaKey: "99000000000000", ServiceName: "Test", Place: "München", AreaName: "München", OfficeID: "peer-09", OfficeName: "peer-09",
		Targets: []submission.Target{{Channel: "peer"}}, PackageSHA256: fmt.Sprintf("%064x", n), PackageSize: 10}, time.Now().UTC())
	if _, _, _, err := db.Create(context.Background(), s, evs, broker.ReceiptIntake, []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Update(id, func(c *submission.Submission) ([]submission.Event, error) {
		return c.Forwarded(time.Now().UTC(), submission.Forward{Peer: peer, PeerSubmissionID: fmt.Sprintf("b-%d", n)})
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestPeerDownIsSaidOncePerChange: a peer that answers no question was said
// at WARN at every poll (every 10 s of a long outage). Its first failed
// question is said at once, further ones at most once a minute with how long
// it lasts, and the first answer again once at INFO; a new outage is news.
func TestPeerDownIsSaidOncePerChange(t *testing.T) {
	w := newWorld(t)
	var down atomic.Bool
	peer := w.peerOfA
	peer.BaseURL = peerServer(t, w, &down, nil).URL
	db := storetest.OpenBolt(t)
	id := forwardedTo(t, db, peer.ID, 1)
	logs := &capture{}
	clock := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	tr := &Tracker{Broker: broker.New(broker.Config{}, db, nil, nil, nil, nil, nil, nil), Peers: []config.Peer{peer},
		Client: &Client{Self: w.a.Name, Signer: w.a.Signer, Trust: w.trustA}, Log: slog.New(logs),
		now: func() time.Time { return clock }}
	tr.open = map[string]string{id: peer.ID}

	const warn, info = "asking peer gateway about forwarded packages failed", "peer gateway answers status questions again"
	poll := func(step time.Duration, wantWarn, wantInfo int) {
		t.Helper()
		clock = clock.Add(step)
		tr.poll(context.Background(), peer, []string{id})
		if n, m := logs.count(slog.LevelWarn, warn), logs.count(slog.LevelInfo, info); n != wantWarn || m != wantInfo {
			t.Fatalf("at %s: %d WARN and %d INFO lines about the peer, want %d and %d", clock.Format(time.TimeOnly), n, m, wantWarn, wantInfo)
		}
	}
	poll(0, 0, 0) // answered: nothing to say
	down.Store(true)
	poll(10*time.Second, 1, 0) // the outage begins: said at once
	for range 5 {
		poll(10*time.Second, 1, 0) // within the minute: not again
	}
	poll(10*time.Second, 2, 0) // a minute after the first line
	if a := logs.attrs(slog.LevelWarn, warn); a["peer"] != peer.ID || a["down_for"] != "1m0s" || a["failed_questions"] != "7" || !strings.Contains(a["err"], "503") {
		t.Errorf("the repeated line says %v, want the peer, 1m0s, 7 questions and the failure", a)
	}
	poll(10*time.Second, 2, 0)
	down.Store(false)
	poll(10*time.Second, 2, 1) // back: said once
	if a := logs.attrs(slog.LevelInfo, info); a["peer"] != peer.ID || a["down_for"] != "1m20s" || a["failed_questions"] != "8" {
		t.Errorf("the line of its return says %v, want the peer, 1m20s and 8 questions", a)
	}
	poll(10*time.Second, 2, 1)
	down.Store(true)
	poll(time.Second, 3, 1) // a new outage is news at once
}

// TestUntrustedRefusalSaysWhoAndWhy: an untrusted-peer refusal's line named
// neither the certificate presented nor the reason, and the operator of a new
// peer could not tell a certificate missing from the trust store from a
// revoked one or a signer claiming another gateway. It names both (subject,
// issuer, serial, SHA-256 fingerprint: no personal data); other refusals keep
// their reasons, which may name a package, out of the log.
func TestUntrustedRefusalSaysWhoAndWhy(t *testing.T) {
	w := newWorld(t)
	logs := &capture{}
	h := &Receiver{Trust: w.trustB, Signer: w.b.Signer, Log: slog.New(logs)}
	const refused = "federation request refused"
	sign := func(e Envelope, p *signingtest.Party) []byte {
		doc, err := e.Sign(p.Signer)
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	says := func(what string, doc []byte, cert *x509.Certificate, reason string) {
		t.Helper()
		if code, typ := forwardTo(h, ContentType, doc); code != http.StatusForbidden || typ != TypeUntrustedPeer {
			t.Fatalf("%s: %d %s, want 403 %s", what, code, typ, TypeUntrustedPeer)
		}
		a := logs.attrs(slog.LevelInfo, refused)
		fp := sha256.Sum256(cert.Raw)
		want := map[string]string{"type": TypeUntrustedPeer, "cert_subject": cert.Subject.String(), "cert_issuer": cert.Issuer.String(),
			"cert_serial": fmt.Sprintf("%X", cert.SerialNumber), "cert_sha256": hex.EncodeToString(fp[:])}
		for k, v := range want {
			if a[k] != v {
				t.Errorf("%s: the line's %s is %q, want %q", what, k, a[k], v)
			}
		}
		if !strings.Contains(a["reason"], reason) {
			t.Errorf("%s: the line's reason %q does not say %q", what, a["reason"], reason)
		}
	}
	says("an unknown signer", sign(w.fromUntrusted(t), w.pki.Untrusted), w.pki.Untrusted.Cert, w.pki.Untrusted.Name)
	liar := *w.envelope(t)
	liar.From = "amtsbote-sn"
	liar.Chain = []Hop{{Gateway: "amtsbote-sn", SubmissionID: "s", At: time.Now()}}
	says("a peer claiming another", sign(liar, w.a), w.a.Cert, `says it is from "amtsbote-sn"`)
	// Windows line ends in the certificate's base64, as some signers write it.
	crlf := bytes.ReplaceAll(sign(liar, w.a), []byte("<ds:X509Certificate>"), []byte("<ds:X509Certificate>&#13;\n"))
	if !bytes.Contains(crlf, []byte("&#13;")) {
		t.Fatal("no ds:X509Certificate to put a CR into")
	}
	says("a peer claiming another, with CRLF", crlf, w.a.Cert, `says it is from "amtsbote-sn"`)
	if err := w.storeB.Revoke(w.a.Cert); err != nil {
		t.Fatal(err)
	}
	says("a revoked peer", sign(*w.envelope(t), w.a), w.a.Cert, "revoked")

	n := logs.count(slog.LevelInfo, refused)
	if code, typ := forwardTo(h, ContentType, []byte("<x/>")); code == http.StatusForbidden {
		t.Fatalf("junk: %d %s", code, typ)
	}
	if a := logs.attrs(slog.LevelInfo, refused); logs.count(slog.LevelInfo, refused) != n+1 || a["reason"] != "" || a["cert_sha256"] != "" {
		t.Errorf("a refusal of another type says %v", a)
	}
}

// TestPeerRefusalLogReasonLeavesOutItsWords: a peer's refusal is logged by the
// broker ("delivery channel failed for good", adapters.LogReason) with the
// peer, status and type; the peer's detail, which quotes what the package
// said (a place as the applicant wrote it, a part's Content-ID made of a file
// name), stays in the case's events and goes to the portal. It was in the log
// twice: in the permanent reason and in the refusal's own text.
func TestPeerRefusalLogReasonLeavesOutItsWords(t *testing.T) {
	const words = `routing: unknown place: "Vogelbeerzyxwgasse 17, Quellenmeyer-Zyxw"`
	err := classify("gateway-bw", 422, problemDoc{Type: "https://amtsbote.de/problems/unknown-place", Detail: words})
	if !adapters.IsPermanent(err) || !strings.Contains(adapters.PublicReason(err), "Quellenmeyer") || !strings.Contains(err.Error(), "Quellenmeyer") {
		t.Fatalf("refusal: %v (public %q)", err, adapters.PublicReason(err))
	}
	lr := adapters.LogReason(err)
	if strings.Contains(lr, "Quellenmeyer") || strings.Contains(lr, "Vogelbeer") {
		t.Errorf("log reason quotes the peer's words: %q", lr)
	}
	for _, want := range []string{"gateway-bw", "422", "unknown-place"} {
		if !strings.Contains(lr, want) {
			t.Errorf("log reason %q lacks %q", lr, want)
		}
	}
}

// TestForwardingPartFailureLogReasonLeavesOutItsContentID: an attachment part
// that cannot be read while the forwarding is sent (its blob gone, the disk
// failing) failed the request, and the broker's log line ("delivery attempt
// failed", adapters.LogReason) quoted the part's Content-ID, which a portal
// may make of the file's name: the applicant's data.
func TestForwardingPartFailureLogReasonLeavesOutItsContentID(t *testing.T) {
	w := newWorld(t)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		rw.WriteHeader(http.StatusBadRequest)
	}))
	defer srv.Close()
	peer := w.peerOfA
	peer.BaseURL = srv.URL
	c := &Client{Self: w.a.Name, Signer: w.a.Signer, Trust: w.trustA, HTTP: srv.Client()}
	const cid = "Personalausweis_Quellenmeyer-Zyxw.pdf@amt24.example"
	_, err := c.Forward(context.Background(), peer, w.envelope(t), Part{ContentID: cid, MimeType: "application/pdf",
		Open: func(context.Context) (io.ReadCloser, error) { return nil, errors.New("blob: not found") }})
	if err == nil {
		t.Fatal("a forwarding whose part cannot be read went through")
	}
	if lr := adapters.LogReason(err); strings.Contains(lr, "Quellenmeyer") {
		t.Errorf("log reason quotes the part's Content-ID: %q", lr)
	}
}
