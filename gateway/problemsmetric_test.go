package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
)

// TestRefusalsAreCountedByProblemType: amtsbote_http_requests_total had only
// the status, so a portal whose signing key the trust store does not know
// (every package 403 untrusted-signer) looked like any other rise of 4xx. Each
// problem document is now counted by route and type: a tampered package, an
// unknown signer, a package as JSON, a wrong portal token, on a real gateway;
// an accepted package counts nothing, and every type here is a listed one.
func TestRefusalsAreCountedByProblemType(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	valid, err := f.portal.Sign(f.example())
	if err != nil {
		t.Fatal(err)
	}
	if res, err := f.portal.SubmitRaw(ctx, valid); err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit: %v %+v", err, res)
	}
	unknown, err := f.pki.Untrusted.Signer.Sign(f.example().Element())
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.portal.Sign(f.example())
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(other, []byte("Iris"), []byte("Eris"), 1)
	for _, tc := range []struct {
		ctype string
		body  []byte
		typ   string
	}{
		{"application/xml", tampered, problem.TypeInvalidSignature},
		{"application/xml", unknown, problem.TypeUntrustedSigner},
		{"application/xml", unknown, problem.TypeUntrustedSigner},
		{"application/json", valid, problem.TypeUnsupportedMedia},
	} {
		if resp, body := post(t, f.g.URL(), tc.ctype, tc.body); problemOf(t, resp, body).Type != tc.typ {
			t.Fatalf("%s: %d %s, want %s", tc.ctype, resp.StatusCode, body, tc.typ)
		}
	}
	wrongToken := &portal.Client{BaseURL: f.g.URL(), Signer: f.pki.Portal.Signer, Token: "not-amt24s-token"}
	if _, err := wrongToken.Status(ctx, "01a2b3"); err == nil {
		t.Fatal("a status read with a wrong portal token was answered")
	}

	body := waitForSeries(t, f.g.URL(),
		`amtsbote_http_problems_total{route="/v1/submissions",type="invalid-signature"} 1`,
		`amtsbote_http_problems_total{route="/v1/submissions",type="untrusted-signer"} 2`,
		`amtsbote_http_problems_total{route="/v1/submissions",type="unsupported-media"} 1`,
		`amtsbote_http_problems_total{route="/v1/submissions/{id}",type="unauthenticated"} 1`,
	)
	if n := strings.Count(body, "\namtsbote_http_problems_total{"); n != 4 {
		t.Errorf("%d problem series, want the 4 above (a 201 is none):\n%s", n, grepLines(body, "amtsbote_http_problems_total"))
	}
	// The status counter keeps its labels (route, status, soap_fault).
	if !strings.Contains(body, `amtsbote_http_requests_total{route="/v1/submissions",soap_fault="",status="403"} 3`) {
		t.Errorf("the requests counter:\n%s", grepLines(body, `amtsbote_http_requests_total{route="/v1/submissions"`))
	}
}

// TestPeerRefusalsAreCountedByProblemType: a forwarding envelope signed by a
// gateway this one does not trust as a peer (a peer's key changed, say) is
// counted as federation/untrusted-peer on the federation's route, the one
// amtsbote_http_requests_total has (the face's mount).
func TestPeerRefusalsAreCountedByProblemType(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn) // trusts sn, not the stranger
	by.start(t)
	stranger := newFedNode(t, "amtsbote-xx")
	msg := paket.NewMessageID()
	code, b := stranger.forwardRaw(t, by, msg, stranger.signedPackage(t, msg, paket.Ort{ARS: "091620000000"}))
	var p problem.Problem
	_ = json.Unmarshal(b, &p)
	if code != http.StatusForbidden || p.Type != federation.TypeUntrustedPeer {
		t.Fatalf("the stranger's envelope: %d %s", code, b)
	}
	waitForSeries(t, by.url(), `amtsbote_http_problems_total{route="`+federation.PathPrefix+`/*",type="federation/untrusted-peer"} 1`)
}

// waitForSeries scrapes base's /metrics until it has each of the series lines
// and returns that body. A request is counted when its handler returns, which
// can be after the client has read the answer (a refusal that still drains the
// request's body).
func waitForSeries(t *testing.T, base string, lines ...string) string {
	t.Helper()
	var body string
	waitFor(t, strings.Join(lines, ", ")+" in /metrics", func() bool {
		body = scrapeMetrics(t, base)
		for _, l := range lines {
			if !strings.Contains(body, l+"\n") {
				return false
			}
		}
		return true
	})
	return body
}
