package gateway

import (
	"crypto/x509"
	"time"
)

// certCheckEvery is how often the running gateway looks at its signing
// certificate (watchCertificate): a field comparison, so the log says an end
// within a minute even when no package and no readiness probe comes.
const certCheckEvery = time.Minute

// now is the gateway's clock for the validity of its own signing certificate;
// tests move it (clock).
func (g *Gateway) now() time.Time {
	if f := g.clock.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
}

// watchCertificate runs checkCertificate every certCheckEvery until the gateway
// drains.
func (g *Gateway) watchCertificate() {
	g.untilDrained(certCheckEvery, func() { _ = g.checkCertificate() })
}

// checkCertificate returns why the signing certificate is not valid now
// (broker.ErrGatewayCertificate), or nil, and says it in the log. The start
// refused an ended certificate and warned of one that ends soon, once; but a
// gateway runs for longer than its certificate, and from its end it answered
// 201 with receipts that verify nowhere, was ready, and logged nothing. Now
// intake refuses new packages (503 gateway-certificate-expired), readiness
// says why, and the log has an error once an hour while it lasts, and the
// "expires soon" warning once a day before.
func (g *Gateway) checkCertificate() error {
	now := g.now()
	err := g.receipts.Valid()
	switch {
	case err != nil:
		if g.certInvalidLog.Allow(now) {
			g.Log.Error("the gateway certificate is not valid: new packages are refused (503) and the gateway is not ready; install a renewed certificate and restart (docs/operations.md, \"Rotating the gateway key and certificates\")",
				"setting", "pki.gateway_cert", "file", g.Config.PKI.GatewayCert, "err", err)
		}
	case firstToEnd(g.Signer.Chain()).NotAfter.Sub(now) < certExpiryWarning:
		// The chain's first end, as Valid refuses at any of them: an intermediate
		// ending before the leaf was not announced (a review).
		if g.certSoonLog.Allow(now) {
			first := firstToEnd(g.Signer.Chain())
			left := first.NotAfter.Sub(now)
			g.Log.Warn("certificate expires soon; renew it (docs/operations.md, \"Rotating the gateway key and certificates\")",
				"setting", "pki.gateway_cert", "file", g.Config.PKI.GatewayCert, "subject", first.Subject.CommonName,
				"not_after", first.NotAfter.UTC().Format(time.RFC3339), "days_left", int(left.Hours()/24))
		}
	}
	return err
}

// firstToEnd is the certificate of chain that ends first.
func firstToEnd(chain []*x509.Certificate) *x509.Certificate {
	first := chain[0]
	for _, c := range chain[1:] {
		if c.NotAfter.Before(first.NotAfter) {
			first = c
		}
	}
	return first
}
