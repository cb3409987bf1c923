package federation

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// peerAnswers is a peer gateway on loopback that answers every forwarding
// with the status and body it is given.
type peerAnswers struct {
	mu     sync.Mutex
	status int
	body   []byte
	srv    *httptest.Server
}

func newPeerAnswers(t *testing.T) *peerAnswers {
	t.Helper()
	p := &peerAnswers{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		p.mu.Lock()
		status, body := p.status, p.body
		p.mu.Unlock()
		w.Header().Set("Content-Type", ContentType)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *peerAnswers) answer(status int, body []byte) {
	p.mu.Lock()
	p.status, p.body = status, body
	p.mu.Unlock()
}

// eingang is the peer's Eingangsbestaetigung for env, signed by s and dated at.
func eingang(t *testing.T, s *signing.Signer, peer string, env *Envelope, at time.Time) []byte {
	t.Helper()
	doc, err := s.SignReceipt(signing.Receipt{Kind: signing.KindEingang, SubmissionID: "peer-sub-1", MessageID: env.MessageID,
		Sender: env.Sender, LeikaKey: env.LeikaKey, OfficeID: "muenchen", OfficeName: "München", GatewayID: peer,
		Time: at.UTC(), PackageSHA256: env.PackageSHA256()})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestRepeatReceiptOfAnEndedPeerCertificateIsTaken: a forwarding whose answer
// was lost is repeated, and the peer answers the repeat (200) with its first
// receipt, signed with the certificate it had then. When the peer has rotated
// its key since and that certificate has ended, the receipt was verified as of
// now, did not verify, and the package stayed held here for good while the
// peer had it and its office worked on it. Now a repeat's receipt is verified
// at its own time when it does not verify now: the certificate must have been
// valid then, must still be trusted for the peer role (in peers/, not revoked),
// and that time must lie between the package's arrival here and now (each
// within the peer's clock_skew), so an ended key vouches for no package that
// came here after it ended. A fresh receipt (201) is verified now, as before.
func TestRepeatReceiptOfAnEndedPeerCertificateIsTaken(t *testing.T) {
	w := newWorld(t)
	now := time.Now()
	day := 24 * time.Hour
	old, oldCert := signingtest.SelfSigned(t, w.b.Name, now.Add(-365*day), now.Add(-day))
	next, nextCert := signingtest.SelfSigned(t, w.b.Name, now.Add(-2*day), now.Add(365*day))
	stranger, _ := signingtest.SelfSigned(t, w.b.Name, now.Add(-365*day), now.Add(-day))
	trustWith := func(certs ...*x509.Certificate) (*Trust, *signing.TrustStore) {
		t.Helper()
		store := signing.NewTrustStore()
		for _, c := range certs {
			if err := store.Add(signing.RolePeer, c); err != nil {
				t.Fatal(err)
			}
		}
		tr, err := NewTrust(TrustOptions{Self: w.a.Name, Peers: []config.Peer{w.peerOfA}, Store: store})
		if err != nil {
			t.Fatal(err)
		}
		return tr, store
	}
	// Both of the peer's certificates are in peers/: the old one stays after
	// it ended, as docs/federation.md says.
	trust, store := trustWith(oldCert, nextCert)
	srv := newPeerAnswers(t)
	peer := w.peerOfA
	peer.BaseURL = srv.srv.URL
	client := &Client{Self: w.a.Name, Signer: w.a.Signer, Trust: trust}
	env := w.envelope(t)
	arrived := now.Add(-3 * day) // the package came here three days ago and was held since
	env.Chain[len(env.Chain)-1].At = arrived
	forward := func(c *Client, status int, doc []byte) (*Answer, error) {
		t.Helper()
		srv.answer(status, doc)
		return c.Forward(context.Background(), peer, env)
	}

	signedThen := now.Add(-2 * day) // the first forwarding reached the peer then
	for _, tc := range []struct {
		name   string
		status int
		doc    []byte
		ok     bool
	}{
		{"a repeat: the first receipt, signed while the old certificate was valid", http.StatusOK, eingang(t, old, w.b.Name, env, signedThen), true},
		{"a repeat signed with the new certificate", http.StatusOK, eingang(t, next, w.b.Name, env, signedThen), true},
		{"a fresh receipt signed with the ended certificate", http.StatusCreated, eingang(t, old, w.b.Name, env, signedThen), false},
		{"a repeat dated after the old certificate ended", http.StatusOK, eingang(t, old, w.b.Name, env, now.Add(-day/2)), false},
		{"a repeat dated before the package came here", http.StatusOK, eingang(t, old, w.b.Name, env, arrived.Add(-time.Hour)), false},
		{"a repeat signed by a certificate of that name not in peers/", http.StatusOK, eingang(t, stranger, w.b.Name, env, signedThen), false},
	} {
		ans, err := forward(client, tc.status, tc.doc)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want taken %v", tc.name, err, tc.ok)
			continue
		}
		if err != nil && (!adapters.IsPermanent(err) || !errors.Is(err, ErrUntrustedPeer)) {
			t.Errorf("%s: %v, want a permanent refusal as untrusted", tc.name, err)
		}
		if err == nil && (!ans.Duplicate || ans.Receipt.Time.Sub(signedThen).Abs() > time.Second) {
			t.Errorf("%s: %+v, want the peer's first receipt of %s", tc.name, ans.Receipt, signedThen)
		}
	}

	firstReceipt := eingang(t, old, w.b.Name, env, signedThen)
	// Revoked since: its signatures are worth nothing, whenever made.
	if err := store.Revoke(oldCert); err != nil {
		t.Fatal(err)
	}
	if _, err := forward(client, http.StatusOK, firstReceipt); err == nil {
		t.Errorf("a repeat signed with a certificate revoked since was taken")
	}
	// Removed from peers/ (the operator withdrew it): not taken either.
	removed, _ := trustWith(nextCert)
	if _, err := forward(&Client{Self: w.a.Name, Signer: w.a.Signer, Trust: removed}, http.StatusOK, firstReceipt); err == nil {
		t.Errorf("a repeat signed with a certificate removed from peers/ was taken")
	}
}

// TestReceiptTimeIsBoundedByThisGatewaysClock: the receipt's time is the
// peer's clock, and it was recorded here as when the peer received the
// package whatever it said. A fresh receipt (201) dated further from this
// gateway's clock than the peer's clock_skew is still taken — the peer has
// the package, and a refusal would only bring the same receipt again — but is
// recorded with this gateway's time and said (ClockOff); one within the skew
// keeps the peer's time. A repeat's is bounded to the package's arrival here
// and now.
func TestReceiptTimeIsBoundedByThisGatewaysClock(t *testing.T) {
	w := newWorld(t)
	srv := newPeerAnswers(t)
	peer := w.peerOfA // clock_skew: a minute
	peer.BaseURL = srv.srv.URL
	client := &Client{Self: w.a.Name, Signer: w.a.Signer, Trust: w.trustA}
	env := w.envelope(t)
	arrived := time.Now().Add(-time.Hour).UTC()
	env.Chain[len(env.Chain)-1].At = arrived

	for _, tc := range []struct {
		name     string
		status   int
		off      time.Duration // of the receipt's time from now
		peerTime bool          // At is the receipt's time
		clockOff bool
	}{
		{"a fresh receipt 30 s ahead", http.StatusCreated, 30 * time.Second, true, false},
		{"a fresh receipt an hour ahead", http.StatusCreated, time.Hour, false, true},
		{"a fresh receipt a day behind", http.StatusCreated, -24 * time.Hour, false, true},
		{"a repeat received 10 minutes ago", http.StatusOK, -10 * time.Minute, true, false},
	} {
		srv.answer(tc.status, eingang(t, w.b.Signer, w.b.Name, env, time.Now().Add(tc.off)))
		before := time.Now()
		ans, err := client.Forward(context.Background(), peer, env)
		after := time.Now()
		if err != nil {
			t.Errorf("%s: %v, want taken", tc.name, err)
			continue
		}
		if got := ans.At.Equal(ans.Receipt.Time); got != tc.peerTime {
			t.Errorf("%s: recorded at %s, the receipt says %s: want the receipt's time %v", tc.name, ans.At, ans.Receipt.Time, tc.peerTime)
		}
		if !tc.peerTime && (ans.At.Before(before) || ans.At.After(after)) {
			t.Errorf("%s: recorded at %s, want this gateway's clock (%s to %s)", tc.name, ans.At, before, after)
		}
		if (ans.ClockOff != 0) != tc.clockOff || tc.clockOff && (ans.ClockOff-tc.off).Abs() > time.Minute {
			t.Errorf("%s: ClockOff %s, want it said %v (%s)", tc.name, ans.ClockOff, tc.clockOff, tc.off)
		}
	}
	// A repeat dated before the package came here (the peer's clock behind
	// then): recorded as received when it came here, not before.
	srv.answer(http.StatusOK, eingang(t, w.b.Signer, w.b.Name, env, arrived.Add(-10*time.Minute)))
	ans, err := client.Forward(context.Background(), peer, env)
	if err != nil {
		t.Fatalf("a repeat dated before the package came here: %v", err)
	}
	if !ans.At.Equal(arrived) || ans.ClockOff != 0 {
		t.Errorf("a repeat dated before the package came here: recorded at %s (ClockOff %s), want %s", ans.At, ans.ClockOff, arrived)
	}
}
