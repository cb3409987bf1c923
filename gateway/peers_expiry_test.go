package gateway

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// TestPeerPackageOfACertificateExpiredSinceIntake: the receiving gateway checked
// the portal's certificate, which the forwarding gateway vouches for, against its
// own clock at the hop. A package the first gateway took (201) while the
// certificate was valid became undeliverable when it expired before the hop —
// the peer down for a while, a held package redelivered later: 403
// untrusted-signer, a permanent refusal, the application never reached its
// office. Now the certificate must have been valid when the first gateway took
// the package (the first station of the envelope's way, the peer's word like the
// certificate itself); one that was not valid even then is still refused.
func TestPeerPackageOfACertificateExpiredSinceIntake(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn)
	by.start(t)

	// amt24's certificate of last year, expired a minute ago.
	now := time.Now().UTC()
	portalSigner, cert := signingtest.SelfSigned(t, "amt24", now.AddDate(-1, 0, 0), now.Add(-time.Minute))

	hop := func(receivedAt time.Time) (int, string) {
		t.Helper()
		code, pr, _ := forwardSignedBy(t, sn, by, portalSigner, cert, receivedAt, receivedAt)
		return code, pr.Type + " " + pr.Detail
	}
	// Taken at sn an hour ago, while the certificate was valid.
	if code, why := hop(now.Add(-time.Hour)); code != http.StatusCreated {
		t.Errorf("a package taken while its certificate was valid: %d %s, want 201", code, why)
	}
	// Taken at sn (it says) after the certificate had expired: refused as before.
	if code, why := hop(now); code != http.StatusForbidden || !strings.Contains(why, problem.TypeUntrustedSigner) {
		t.Errorf("a package taken after its certificate expired: %d %s, want 403 %s", code, why, problem.TypeUntrustedSigner)
	}
}

// forwardSignedBy sends by, from sn, a package portalSigner signed (cert its
// certificate) dated packageAt, in an envelope whose first station took it at
// stationAt, and returns the answer's status, its problem (if any) and the
// package's NachrichtID: the certificate's time rules at the hop, with a
// signer the development PKI does not have.
func forwardSignedBy(t *testing.T, sn, by *fedNode, portalSigner *signing.Signer, cert *x509.Certificate, packageAt, stationAt time.Time) (int, problem.Problem, string) {
	t.Helper()
	p := paket.ExampleWith(fedService, paket.NewMessageID(), packageAt.Truncate(time.Second))
	p.Kopf.Ort = paket.Ort{ARS: fedMuenchenARS}
	pkg, err := portalSigner.Sign(p.Element())
	if err != nil {
		t.Fatal(err)
	}
	env := &federation.Envelope{ForwardingID: "d-" + p.Kopf.NachrichtID, From: sn.id, To: by.id, At: time.Now().UTC(),
		Sender: "amt24", MessageID: p.Kopf.NachrichtID, LeikaKey: fedService, ReceiptSHA256: strings.Repeat("0", 64),
		SenderCert: cert, Package: pkg, Chain: []federation.Hop{{Gateway: sn.id, SubmissionID: "s-" + p.Kopf.NachrichtID, At: stationAt}}}
	doc, err := env.Sign(sn.gatewaySigner(t))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(by.url()+federation.PathForward, federation.ContentType, bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var pr problem.Problem
	_ = json.Unmarshal(b, &pr)
	if pr.Type == "" && resp.StatusCode >= 300 {
		pr.Detail = string(b)
	}
	return resp.StatusCode, pr, p.Kopf.NachrichtID
}
