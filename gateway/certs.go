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
// the TLS server certificate (XTA listener, REST with tls.rest) and the XTA
// client certificate. They are read once at start, so the values are those in
// use. An expired gateway certificate makes every receipt one that portals and
// peers refuse, an expired TLS certificate locks the offices out; without a
// series nothing told the operator beforehand. The label names the setting, so
// it has at most three values.
func (g *Gateway) registerCertificateExpiry(reg prometheus.Registerer) error {
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "amtsbote_certificate_expiry_timestamp_seconds",
		Help: "When a certificate the gateway presents ends (Unix time; the earliest end of its chain): gateway (pki.gateway_cert), tls (tls.cert_file), xta_client (xta.client_cert_file)."},
		[]string{"certificate"})
	ends := map[string]time.Time{}
	if g.Signer != nil {
		ends["gateway"] = earliestEnd(g.Signer.Chain())
	}
	for name, file := range map[string]string{"tls": g.Config.TLS.CertFile, "xta_client": g.Config.XTA.ClientCertFile} {
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
	var end time.Time
	for _, c := range chain {
		if end.IsZero() || c.NotAfter.Before(end) {
			end = c.NotAfter
		}
	}
	return end
}
