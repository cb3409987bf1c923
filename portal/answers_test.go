package portal_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// TestRetryIsAnsweredWithTheFirstReceipt: the same package sent again (the
// portal did not see the first answer) is taken once (promise 2). The client
// must read the gateway's 200 as accepted, say it is a duplicate, and hand over
// the receipt; a portal that took the 200 for a refusal would tell the citizen
// to apply again. The status read carries the portal's token: without it the
// gateway answers 401, which reaches the caller as a ReadError.
func TestRetryIsAnsweredWithTheFirstReceipt(t *testing.T) {
	g, pki := startGateway(t, nil)
	c := &portal.Client{BaseURL: g.URL(), Signer: pki.Portal.Signer, Token: "portal-token"}
	svc := gewerbe(t)
	p := paket.Example(svc.Key)
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	raw, err := c.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := c.SubmitRaw(ctx, raw)
	if err != nil || first.Status != http.StatusCreated || !first.Accepted() || first.Duplicate || len(first.Receipt) == 0 {
		t.Fatalf("first: %v %+v", err, first)
	}
	again, err := c.SubmitRaw(ctx, raw)
	if err != nil || again.Status != http.StatusOK || !again.Accepted() || !again.Duplicate || again.Problem != nil ||
		again.SubmissionID != first.SubmissionID || !bytes.Equal(again.Receipt, first.Receipt) {
		t.Fatalf("again: %v %+v, want 200, accepted, a duplicate with the first receipt", err, again)
	}
	if st, err := c.Status(ctx, first.SubmissionID); err != nil || st.ID != first.SubmissionID {
		t.Fatalf("status with the portal's token: %v %+v", err, st)
	}
	stranger := &portal.Client{BaseURL: g.URL(), Token: "wrong"}
	var re *portal.ReadError
	if _, err := stranger.Status(ctx, first.SubmissionID); !errors.As(err, &re) || re.Problem.Status != http.StatusUnauthorized {
		t.Fatalf("status with a wrong token: %v, want a ReadError of 401", err)
	}
}

// TestBusyGatewaySaysWhenToRetry: a 503 carries Retry-After (docs/problems.md,
// unavailable: the gateway is overloaded or cannot store now); the client hands it to the
// portal, which must wait that long before it sends the same package again.
// The gateway's own overload is hard to provoke on demand, so a server on
// loopback answers as it does.
func TestBusyGatewaySaysWhenToRetry(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"type":"https://amtsbote.de/problems/unavailable","title":"Service Unavailable","status":503}`))
	}))
	defer srv.Close()
	pki := signingtest.NewPKI(t)
	c := &portal.Client{BaseURL: srv.URL, Signer: pki.Portal.Signer}
	res, err := c.SubmitRaw(context.Background(), []byte("<Antragspaket/>"))
	if err != nil || res.Accepted() || res.Status != http.StatusServiceUnavailable || res.RetryAfter != "7" || res.Problem == nil {
		t.Fatalf("%v %+v, want 503 with Retry-After 7", err, res)
	}
}
