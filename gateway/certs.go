package gateway

import (
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/signing"
)

// registerCertificateExpiry exports when each certificate the gateway presents
// ends: the gateway certificate that signs receipts and federation documents,
// the TLS server certificate (XTA listener, REST with tls.rest), the XTA
// client certificate and the NATS client certificate. They are read once at start, so the values are those in
// use. An expired gateway certificate makes every receipt one that portals and
// peers refuse, an expired TLS certificate locks the offices out; without a
// series nothing told the operator beforehand. The label names the setting, so
// it has at most four values.
func (g *Gateway) registerCertificateExpiry(reg prometheus.Registerer) error {
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "amtsbote_certificate_expiry_timestamp_seconds",
		Help: "When a certificate the gateway presents ends (Unix time; the earliest end of its chain): gateway (pki.gateway_cert), tls (tls.cert_file), xta_client (xta.client_cert_file), nats_client (nats.tls.cert_file)."},
		[]string{"certificate"})
	ends := map[string]time.Time{}
	if g.Signer != nil {
		ends["gateway"] = earliestEnd(g.Signer.Chain())
	}
	for name, file := range map[string]string{"tls": g.Config.TLS.CertFile, "xta_client": g.Config.XTA.ClientCertFile, "nats_client": g.Config.NATS.TLS.CertFile} {
		if file == "" {
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("certificate expiry: %w", err)
		}
		chain, err := signing.ParseCertificatesPEM(b)
		if err != nil {
			return fmt.Errorf("certificate expiry: %s: %w", file, err)
		}
		ends[name] = earliestEnd(chain)
	}
	// The log's warning at start is checkCertificateInUse's, which names the
	// setting and the file.
	for name, end := range ends {
		gauge.WithLabelValues(name).Set(float64(end.Unix()))
	}
	return reg.Register(gauge)
}

// earliestEnd is the earliest NotAfter of a chain: where it stops verifying.
func earliestEnd(chain []*x509.Certificate) time.Time {
	if len(chain) == 0 {
		return time.Time{}
	}
	return firstToEnd(chain).NotAfter
}

// trustCollector exports, at every scrape, what the trust store in use holds
// (after a reload too): when each CRL's issuer promised the next one, per role
// the earliest end of a trusted certificate that has not ended yet, and per role
// how many trusted certificates have ended. A CRL past its next update is still
// used, so revocations since are not known; a portals' CA that ends turns every
// package of its portals into a 403. Ended certificates stay in the folders by
// design (a retired gateway certificate for old receipts, an expired peer's), so
// they are counted apart and never make the expiry series a date in the past.
// Labels: the CRL's file name in crl/ (the operator's own, few) and the role (four).
type trustCollector struct {
	trust           *signing.TrustStore
	crl, end, ended *prometheus.Desc
}

func newTrustCollector(ts *signing.TrustStore) *trustCollector {
	return &trustCollector{trust: ts,
		crl: prometheus.NewDesc("amtsbote_trust_crl_next_update_timestamp_seconds",
			"When the issuer of a CRL in the trust store's crl/ promised the next one (Unix time); after it, revocations since are unknown until a fresh CRL is put there and the store reloaded.",
			[]string{"file", "issuer", "issuer_key"}, nil),
		end: prometheus.NewDesc("amtsbote_trust_certificate_expiry_timestamp_seconds",
			"The earliest end (Unix time) of a certificate the trust store trusts for a role (portals, peers, offices, gateways) that has not ended yet; a role whose certificates have all ended has no series.",
			[]string{"role"}, nil),
		ended: prometheus.NewDesc("amtsbote_trust_certificates_ended",
			"How many certificates trusted for a role (portals, peers, offices, gateways) have ended; they verify only as of an earlier time (amtsbote verify -at) and may stay, e.g. a retired gateway certificate for old receipts.",
			[]string{"role"}, nil),
	}
}

func (c *trustCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.crl
	ch <- c.end
	ch <- c.ended
}

func (c *trustCollector) Collect(ch chan<- prometheus.Metric) {
	for _, info := range c.trust.CRLs() {
		if info.NextUpdate.IsZero() {
			continue // a CRL that promises nothing cannot be late
		}
		ch <- prometheus.MustNewConstMetric(c.crl, prometheus.GaugeValue, float64(info.NextUpdate.Unix()), info.File, info.Issuer, info.IssuerKey)
	}
	now := time.Now()
	for role, end := range c.trust.EarliestEnd(now) {
		ch <- prometheus.MustNewConstMetric(c.end, prometheus.GaugeValue, float64(end.Unix()), role.Dir())
	}
	for role, n := range c.trust.Ended(now) {
		ch <- prometheus.MustNewConstMetric(c.ended, prometheus.GaugeValue, float64(n), role.Dir())
	}
}
