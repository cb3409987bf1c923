// Package outbound holds what the gateway's outgoing TLS connections share —
// offices' webhooks, peer gateways, portals' callbacks and the SMTP server of the
// mailbox notices: the roots that verify the servers (the system's plus the CAs
// of tls.outbound_ca_file, for a state network's own CA) and a warning when a
// server's certificate does not verify. Without the setting a state-internal CA
// failed every attempt as "certificate signed by unknown authority", logged at
// INFO among ordinary retries, until packages fell back to the mailbox.
package outbound

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/amtsbote/amtsbote/internal/repeatlimit"
)

// Setting is the configuration setting that names the extra roots.
const Setting = "tls.outbound_ca_file"

// Hint tells the operator what to do about a server certificate that does not
// verify.
const Hint = "if the server's certificate comes from a private (e.g. the state's) CA, name that CA in " + Setting + " (PEM, added to the system's roots) and restart the gateway"

// warnEvery is how often one endpoint's certificate failure is logged.
const warnEvery = time.Minute

// maxEndpoints bounds the limiters kept (endpoints are configured, so few; an
// unexpected flood only loses the once-a-minute bound for the surplus).
const maxEndpoints = 4096

// Config is the outgoing TLS of one gateway. The nil *Config is valid: the
// system's roots, and no warnings.
type Config struct {
	roots *x509.CertPool // nil: the system's
	file  string
	log   *slog.Logger

	limits repeatlimit.Keyed[string] // per endpoint
}

// Load returns the outgoing TLS with the system's roots plus the certificates of
// the PEM file caFile ("" : the system's roots alone). A file that cannot be read,
// holds no certificate, a block that is not a certificate or a certificate that
// does not parse is refused, so a wrong file stops the start instead of every
// attempt. Warnings go to log (nil: slog.Default()).
func Load(caFile string, log *slog.Logger) (*Config, error) {
	if log == nil {
		log = slog.Default()
	}
	c := &Config{file: caFile, log: log, limits: repeatlimit.Keyed[string]{Every: warnEvery, Max: maxEndpoints}}
	if caFile == "" {
		return c, nil
	}
	certs, err := readCerts(caFile)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		return nil, fmt.Errorf("the system's roots: %w", err)
	}
	for _, cert := range certs {
		pool.AddCert(cert)
	}
	c.roots = pool
	return c, nil
}

func readCerts(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: a %s block; the file holds CA certificates (PEM CERTIFICATE blocks) only", file, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", file, len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE block", file)
	}
	return certs, nil
}

// Roots is the pool that verifies servers; nil means the system's roots.
func (c *Config) Roots() *x509.CertPool {
	if c == nil {
		return nil
	}
	return c.roots
}

// TLS returns a client TLS configuration for serverName ("" : taken from the
// address, as net/http does) with the roots.
func (c *Config) TLS(serverName string) *tls.Config {
	return &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12, RootCAs: c.Roots()}
}

// Transport returns a transport like http.DefaultTransport with the roots whose
// certificate failures are warned about (Saw) as what's (e.g. "peer").
func (c *Config) Transport(what string) http.RoundTripper {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = c.TLS("")
	return c.Watch(tr, what)
}

// Watch wraps rt so that a failed request whose server certificate did not
// verify is warned about (Saw). The nil *Config returns rt.
func (c *Config) Watch(rt http.RoundTripper, what string) http.RoundTripper {
	if c == nil {
		return rt
	}
	return &watched{rt: rt, c: c, what: what}
}

type watched struct {
	rt   http.RoundTripper
	c    *Config
	what string
}

func (w *watched) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := w.rt.RoundTrip(req)
	if err != nil {
		w.c.Saw(w.what, req.URL.Host, err)
	}
	return resp, err
}

// CloseIdleConnections passes the call on (http.Client.CloseIdleConnections).
func (w *watched) CloseIdleConnections() {
	if ci, ok := w.rt.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// Saw logs err at WARN, with the setting to use, if it says the certificate of
// the server at endpoint (host[:port]) did not verify; at most once a minute per
// endpoint, since a delivery retries for hours. Other errors are left to the caller.
func (c *Config) Saw(what, endpoint string, err error) {
	if c == nil || !IsVerifyError(err) || !c.limits.Allow(endpoint, time.Now()) {
		return
	}
	args := []any{"what", what, "endpoint", endpoint, "err", err, "hint", Hint}
	if c.file != "" {
		args = append(args, "outbound_ca_file", c.file)
	}
	c.log.Warn("outbound TLS: the server's certificate does not verify", args...)
}

// IsVerifyError says whether err is (or wraps) a failed verification of a
// server's certificate: an unknown authority, an invalid (expired, not a CA,
// ...) certificate or one for another name.
func IsVerifyError(err error) bool {
	// crypto/x509 returns its errors as values; crypto/tls wraps them in a
	// *tls.CertificateVerificationError.
	var (
		ua x509.UnknownAuthorityError
		ci x509.CertificateInvalidError
		he x509.HostnameError
		cv *tls.CertificateVerificationError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &he)
}
