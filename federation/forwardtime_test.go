package federation

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/signing"
)

// TestForwardWaitsWhileOwnCertificateIsNotValid: an envelope signed after this
// gateway's certificate ended went out, the peer refused it as from an untrusted
// peer (403, permanent), and the package was held. No envelope goes out now, and
// the failure is transient: the package waits for the renewed certificate.
func TestForwardWaitsWhileOwnCertificateIsNotValid(t *testing.T) {
	w := newWorld(t)
	env := w.envelope(t)
	var sent atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		sent.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		rw.Header().Set("Content-Type", "application/problem+json")
		rw.WriteHeader(403)
		_, _ = rw.Write([]byte(`{"type":"` + TypeUntrustedPeer + `","status":403,"detail":"certificate is not valid"}`))
	}))
	defer srv.Close()
	peer := w.peerOfA
	peer.BaseURL = srv.URL
	ended := w.a.Signer.Certificate().NotAfter.Add(time.Minute)
	c := &Client{Self: w.a.Name, Signer: w.a.Signer, Trust: w.trustA, Now: func() time.Time { return ended }}
	_, err := c.Forward(context.Background(), peer, env)
	if err == nil || adapters.IsPermanent(err) || sent.Load() != 0 {
		t.Fatalf("forwarding after this gateway's certificate ended: %v (permanent %v), %d envelopes sent; want a transient failure and none sent", err, adapters.IsPermanent(err), sent.Load())
	}
}

// TestInlineForwardHasTheAttemptsTime: gateway/peers.go builds the federation client with
// &http.Client{Timeout: delivery.attempt_timeout}. A forwarding without parts
// (inline attachments, up to 32 MiB package = 43 MiB envelope) is then cut at
// attempt_timeout, although the broker gives the attempt attempt_timeout plus
// its bytes at transfer_min_rate (broker/dispatch.go attemptTimeout) — the
// multipart path lifted the client timeout, the plain one did not (an audit,
// 2026-12-05). Both are bounded by the broker's context alone now.
func TestInlineForwardHasTheAttemptsTime(t *testing.T) {
	w := newWorld(t)
	env := w.envelope(t)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(1500 * time.Millisecond) // the envelope's bytes on a slow link / the peer's intake
		doc, err := w.b.Signer.SignReceipt(signing.Receipt{Kind: signing.KindEingang, SubmissionID: "peer-sub-1", MessageID: env.MessageID,
			Sender: env.Sender, LeikaKey: env.LeikaKey, OfficeID: "muenchen", OfficeName: "München", GatewayID: w.b.Name,
			Time: time.Now().UTC(), PackageSHA256: env.PackageSHA256()})
		if err != nil {
			t.Error(err)
		}
		rw.WriteHeader(201)
		_, _ = rw.Write(doc)
	}))
	defer srv.Close()
	peer := w.peerOfA
	peer.BaseURL = srv.URL
	// As gateway/peers.go wires it, with attempt_timeout = 1s.
	c := &Client{Self: w.a.Name, Signer: w.a.Signer, Trust: w.trustA, HTTP: &http.Client{Timeout: time.Second}}
	// The broker's budget for this attempt: attempt_timeout + bytes/transfer_min_rate, here 10 s.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Forward(ctx, peer, env); err != nil {
		t.Fatalf("forwarding within the broker's attempt budget (10 s) failed after the client's fixed 1 s: %v", err)
	}
}
