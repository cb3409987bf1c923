package gateway

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// TestCertificateExpiryOnMetrics: a gateway certificate that ends in five days
// started without a word, and nothing on /metrics said when it would end; after
// that every receipt the gateway signs is refused by portals and peers. The end
// is exported for the alert (AmtsboteCertificateExpiring) and named in the log at
// start.
func TestCertificateExpiryOnMetrics(t *testing.T) {
	dir := t.TempDir()
	end := time.Now().Add(5 * 24 * time.Hour).Truncate(time.Second)
	var logs testenv.Buffer
	f := startLogged(t, slog.New(slog.NewTextHandler(&logs, nil)), func(c *config.Config) {
		c.PKI.GatewayKey, c.PKI.GatewayCert = shortLivedCert(t, dir, c.GatewayID, end)
	})
	got := scrapeValue(t, f.g.URL(), `amtsbote_certificate_expiry_timestamp_seconds{certificate="gateway"}`)
	want := strconv.FormatInt(end.Unix(), 10)
	if v, err := strconv.ParseFloat(got, 64); err != nil || int64(v) != end.Unix() {
		t.Fatalf("gateway certificate's end on /metrics: %q, want %s", got, want)
	}
	if l := logs.String(); strings.Count(l, "expires soon") != 1 || !strings.Contains(l, "setting=pki.gateway_cert") {
		t.Fatalf("the start does not name the certificate that ends soon:\n%s", l)
	}
}

// TestGatewayCertificateEndsWhileRunning: the start refuses an ended gateway
// certificate, but the gateway runs for longer than its certificate. From its
// end it went on answering 201 with receipts that verify nowhere, /readyz said
// ready, and the log said nothing. Now a new package is refused with 503
// gateway-certificate-expired (nothing stored), a repeat still gets the first
// receipt (signed while the certificate was valid), /readyz is not ready and
// says why, and the log has an error. The gateway's clock is moved past the
// certificate's end instead of waiting for it.
func TestGatewayCertificateEndsWhileRunning(t *testing.T) {
	var logs testenv.Buffer
	f := startLogged(t, slog.New(slog.NewTextHandler(&logs, nil)))
	raw, err := f.portal.Sign(f.example())
	if err != nil {
		t.Fatal(err)
	}
	first, err := f.portal.SubmitRaw(context.Background(), raw)
	if err != nil || first.Status != 201 {
		t.Fatalf("before the end: %v %+v", err, first)
	}
	ended := f.pki.Gateway.Cert.NotAfter.Add(time.Second)
	clock := func() time.Time { return ended }
	f.g.clock.Store(&clock)

	res, err := f.portal.Submit(context.Background(), f.example())
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 503 || res.Problem == nil || res.Problem.Type != problem.TypeGatewayCertificate || res.RetryAfter == "" || len(res.Receipt) != 0 {
		t.Fatalf("a new package after the gateway certificate ended: status %d %+v (Retry-After %q), want 503 %s", res.Status, res.Problem, res.RetryAfter, problem.TypeGatewayCertificate)
	}
	again, err := f.portal.SubmitRaw(context.Background(), raw)
	if err != nil || again.Status != 200 || !bytes.Equal(again.Receipt, first.Receipt) {
		t.Fatalf("a repeat of a package accepted before the end: %v %+v, want 200 with the first receipt", err, again)
	}
	n := 0
	f.g.Broker.InState("", func(s *storeSubmission) bool { n++; return true })
	if n != 1 {
		t.Fatalf("%d submissions stored, want only the one accepted before the end", n)
	}
	resp, err := http.Get(f.g.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Degraded, not unready: the offices' faces behind the load balancer go on
	// (a review: unready took every node of a cluster out at once).
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"degraded"`) || !strings.Contains(string(body), "gateway certificate") || !strings.Contains(string(body), "ended") {
		t.Fatalf("/readyz after the gateway certificate ended: %d %s, want 200 degraded naming the certificate", resp.StatusCode, body)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "the gateway certificate is not valid") {
		t.Fatalf("nothing in the log says the gateway certificate ended:\n%s", l)
	}
}

// TestCertificateEndingSoonIsWarnedDaily: the "expires soon" warning came once,
// at start; a gateway that runs for months had it only in an old journal when
// its certificate ended. It comes again once a day while it runs.
func TestCertificateEndingSoonIsWarnedDaily(t *testing.T) {
	dir := t.TempDir()
	end := time.Now().Add(5 * 24 * time.Hour)
	var logs testenv.Buffer
	f := startLogged(t, slog.New(slog.NewTextHandler(&logs, nil)), func(c *config.Config) {
		c.PKI.GatewayKey, c.PKI.GatewayCert = shortLivedCert(t, dir, c.GatewayID, end)
	})
	at := func(d time.Duration) {
		later := time.Now().Add(d)
		clock := func() time.Time { return later }
		f.g.clock.Store(&clock)
		if err := f.g.checkCertificate(); err != nil {
			t.Fatalf("the certificate is not valid %v from now: %v", d, err)
		}
	}
	at(time.Hour)
	if got := strings.Count(logs.String(), "expires soon"); got != 1 {
		t.Fatalf("%d warnings within the day of the start, want the start's one:\n%s", got, logs.String())
	}
	at(25 * time.Hour)
	if got := strings.Count(logs.String(), "expires soon"); got != 2 {
		t.Fatalf("%d warnings a day after the start, want 2:\n%s", got, logs.String())
	}
}

// TestChainCertificateEndingSoonIsWarnedDaily: the daily warning looked at the
// leaf only, while an intermediate of the chain ending first turns intake to
// 503 as well (a review).
func TestChainCertificateEndingSoonIsWarnedDaily(t *testing.T) {
	dir := t.TempDir()
	var logs testenv.Buffer
	f := startLogged(t, slog.New(slog.NewTextHandler(&logs, nil)), func(c *config.Config) {
		var certFile string
		c.PKI.GatewayKey, certFile = shortLivedCert(t, dir, c.GatewayID, time.Now().AddDate(1, 0, 0))
		_, mid := signingtest.SelfSigned(t, "Zwischen-CA", time.Now().AddDate(-1, 0, 0), time.Now().Add(5*24*time.Hour))
		chain := filepath.Join(dir, "chain.pem")
		if err := os.WriteFile(chain, append(readTestFile(t, certFile), signing.CertPEM(mid)...), 0o600); err != nil {
			t.Fatal(err)
		}
		c.PKI.GatewayCert = chain
	})
	later := time.Now().Add(25 * time.Hour)
	clock := func() time.Time { return later }
	f.g.clock.Store(&clock)
	if err := f.g.checkCertificate(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(logs.String(), "subject=Zwischen-CA"); got != 2 {
		t.Errorf("%d warnings naming the intermediate (the start's and a day later), want 2:\n%s", got, logs.String())
	}
}

// shortLivedCert writes a self-signed ECDSA key and certificate for cn that end
// at end, and returns their files.
func shortLivedCert(t *testing.T, dir, cn string, end time.Time) (keyFile, certFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: end, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, certFile = filepath.Join(dir, "gateway-key.pem"), filepath.Join(dir, "gateway.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return keyFile, certFile
}

// TestTrustStoreDatesOnMetrics: a CRL past its next update is still used, so
// revocations since are unknown, and a trusted CA that ends turns its portals'
// packages into 403s; neither showed anywhere. Both are on /metrics for the
// alerts (AmtsboteCRLOutdated, AmtsboteTrustedCertificateExpiring), and follow
// a reload of the trust store.
func TestTrustStoreDatesOnMetrics(t *testing.T) {
	f := start(t)
	caKey := sha256.Sum256(signingtest.NewPKI(t).CA.RawSubjectPublicKeyInfo)
	series := `amtsbote_trust_crl_next_update_timestamp_seconds{file="ca.pem",issuer="signingtest CA",issuer_key="` + hex.EncodeToString(caKey[:8]) + `"}`
	value := func(series string) time.Time {
		t.Helper()
		v, err := strconv.ParseFloat(scrapeValue(t, f.g.URL(), series), 64)
		if err != nil {
			t.Fatalf("%s: %v", series, err)
		}
		return time.Unix(int64(v), 0)
	}
	if next := value(series); !next.After(time.Now()) {
		t.Fatalf("the test PKI's CRL: next update %s, want in the future", next)
	}
	if end := value(`amtsbote_trust_certificate_expiry_timestamp_seconds{role="portals"}`); !end.After(time.Now()) {
		t.Fatalf("portals' trust ends %s", end)
	}
	// The CA's CRL of yesterday, due yesterday: the operator forgot to fetch it.
	stale := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(2),
		ThisUpdate: stale.Add(-24 * time.Hour), NextUpdate: stale}, f.pki.CA, f.pki.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.pki.TrustDir, "crl", "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.g.Reload(); err != nil {
		t.Fatal(err)
	}
	if next := value(series); !next.Equal(stale) {
		t.Fatalf("after the reload: next update %s, want %s", next, stale)
	}
}

// TestTrustExpiryIgnoresKeptRetiredCertificate: docs/operations.md ("Rotating the
// gateway key") keeps the retired gateway certificate in trust/gateways/ for old
// receipts; the expiry series took its end, in the past, so
// AmtsboteTrustedCertificateExpiring fired for good and could no longer warn about
// the certificate in use. The series skips ended certificates; a gauge counts them.
func TestTrustExpiryIgnoresKeptRetiredCertificate(t *testing.T) {
	f := start(t)
	now := time.Now()
	_, retired := signingtest.SelfSigned(t, f.pki.Gateway.Name, now.AddDate(-2, 0, 0), now.AddDate(0, 0, -1))
	if err := os.WriteFile(filepath.Join(f.pki.TrustDir, "gateways", "gateway-2024.pem"), signing.CertPEM(retired), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.g.Reload(); err != nil {
		t.Fatal(err)
	}
	end := scrapeValue(t, f.g.URL(), `amtsbote_trust_certificate_expiry_timestamp_seconds{role="gateways"}`)
	if want := strconv.FormatInt(f.pki.Gateway.Cert.NotAfter.Unix(), 10); !sameFloat(t, end, want) {
		t.Fatalf("gateways' trust ends %s, want the certificate in use's end %s (the retired one ended %s)", end, want, retired.NotAfter.Format(time.RFC3339))
	}
	if n := scrapeValue(t, f.g.URL(), `amtsbote_trust_certificates_ended{role="gateways"}`); n != "1" {
		t.Fatalf("ended certificates for gateways: %q, want 1", n)
	}
}

// sameFloat says whether two numbers from /metrics are equal.
func sameFloat(t *testing.T, got, want string) bool {
	t.Helper()
	g, err := strconv.ParseFloat(got, 64)
	if err != nil {
		t.Fatalf("%q: %v", got, err)
	}
	w, err := strconv.ParseFloat(want, 64)
	if err != nil {
		t.Fatal(err)
	}
	return g == w
}

// TestBuildInfoOnMetrics: which build runs on a node is on /metrics
// (amtsbote_build_info), for a rolling upgrade of a cluster.
func TestBuildInfoOnMetrics(t *testing.T) {
	f := start(t)
	resp, err := http.Get(f.g.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "amtsbote_build_info{") && strings.Contains(line, `version="dev"`) && strings.HasSuffix(line, " 1") {
			return
		}
	}
	t.Fatalf("no amtsbote_build_info with version=\"dev\" on /metrics")
}

// TestDevTLSEndingIsIssuedAgain: on the development PKI the XTA listener's TLS
// pair (two years) was made once and reused for ever; once it ended the gateway
// started without a word and every XTA client's handshake failed ("certificate
// has expired"). A pair that has ended, or ends within 30 days, is issued again
// from the development CA at start, and the log says so.
func TestDevTLSEndingIsIssuedAgain(t *testing.T) {
	pkiDir := filepath.Join(t.TempDir(), "pki")
	dev, err := signing.EnsureDevPKI(pkiDir, "gw-dev")
	if err != nil {
		t.Fatal(err)
	}
	dt, err := signing.EnsureDevTLS(dev, DemoOfficeID)
	if err != nil {
		t.Fatal(err)
	}
	caKeyPEM, err := os.ReadFile(dev.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := signing.ParsePrivateKeyPEM(caKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(dev.CACert)
	if err != nil {
		t.Fatal(err)
	}
	cas, err := signing.ParseCertificatesPEM(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	// The files of two years ago: the server's ended yesterday, the client's
	// ends in ten days.
	replace := func(certFile, keyFile string, tmpl *x509.Certificate) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.KeyUsage, tmpl.BasicConstraintsValid = x509.KeyUsageDigitalSignature, true
		der, err := x509.CreateCertificate(rand.Reader, tmpl, cas[0], k.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		kd, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
		writeTestFile(t, certFile, append(signing.CertPEM(c), signing.CertPEM(cas[0])...), 0o644)
	}
	replace(dt.ServerCert, dt.ServerKey, &x509.Certificate{SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().AddDate(-2, 0, -1), NotAfter: time.Now().AddDate(0, 0, -1), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	replace(dt.ClientCert, dt.ClientKey, &x509.Certificate{SerialNumber: big.NewInt(100), Subject: pkix.Name{CommonName: DemoOfficeID},
		NotBefore: time.Now().AddDate(-2, 0, 10), NotAfter: time.Now().AddDate(0, 0, 10), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})

	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.GatewayID = "gw-dev"
	cfg.PKI.Dir = pkiDir
	cfg.XTA.Listen = "127.0.0.1:0"
	var logs testenv.Buffer
	g, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown(context.Background()) })
	pool := x509.NewCertPool()
	pool.AddCert(cas[0])
	clientPair, err := tls.LoadX509KeyPair(g.DevTLS.ClientCert, g.DevTLS.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(clientPair.Leaf.NotAfter); left < 365*24*time.Hour {
		t.Errorf("the client certificate ending in ten days was kept (%s left)", left.Round(time.Hour))
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(g.XTAURL(), XTAPath), "https://"),
		&tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{clientPair}})
	if err != nil {
		t.Fatalf("XTA handshake with the development PKI's pair: %v", err)
	}
	_ = conn.Close()
	if !strings.Contains(logs.String(), "issued again from the development CA") {
		t.Errorf("the log does not say the development pair was issued again:\n%s", logs.String())
	}
}
