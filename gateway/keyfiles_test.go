package gateway

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// issueFor writes a certificate for key issued by the test PKI's CA with the given
// validity and key usage, and returns its file.
func issueFor(t *testing.T, pki *signingtest.PKI, key crypto.Signer, cn string, from, to time.Time, ku x509.KeyUsage) string {
	t.Helper()
	c := pki.Issue(t, key, cn, from, to, ku)
	f := filepath.Join(t.TempDir(), cn+".pem")
	writeTestFile(t, f, signing.CertPEM(c), 0o644)
	return f
}

func writeTestFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func readTestFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openssl runs the real tool an operator converts keys with.
func openssl(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
}

// startWithKeys starts a gateway on the test PKI's trust store with the given
// gateway key and certificate files (and edit's changes), logging into log.
func startWithKeys(t *testing.T, pki *signingtest.PKI, keyFile, certFile string, log *slog.Logger, edit ...func(*config.Config)) (*Gateway, error) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.GatewayID = pki.Gateway.Name
	cfg.PKI = config.PKI{GatewayKey: keyFile, GatewayCert: certFile, TrustDir: pki.TrustDir}
	for _, e := range edit {
		e(&cfg)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	g, err := Start(context.Background(), cfg, log)
	if err == nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = g.Shutdown(ctx)
		})
	}
	return g, err
}

// TestStartRefusesUnusableGatewayKeys walks through what goes wrong when an operator
// installs the state's own PKI: each mistake stops the start with a message that
// names the setting, the file and the fix. Before, an expired certificate, one not
// yet valid and one without digitalSignature started and signed every receipt with
// a certificate that no verifier accepts; a world-readable key was taken without a
// word; and an encrypted key, a DER file and a certificate in the key's place all
// said "no private key in PEM data".
func TestStartRefusesUnusableGatewayKeys(t *testing.T) {
	pki := signingtest.NewPKI(t)
	gw := pki.Gateway
	dir := t.TempDir()
	now := time.Now()
	key := filepath.Join(dir, "gateway-key.pem")
	writeTestFile(t, key, readTestFile(t, gw.KeyFile), 0o640)

	loose := filepath.Join(dir, "loose-key.pem")
	writeTestFile(t, loose, readTestFile(t, gw.KeyFile), 0o644)
	encrypted := filepath.Join(dir, "encrypted-key.pem")
	openssl(t, "pkcs8", "-topk8", "-in", gw.KeyFile, "-out", encrypted, "-passout", "pass:geheim")
	der := filepath.Join(dir, "key.der")
	openssl(t, "pkey", "-in", gw.KeyFile, "-outform", "DER", "-out", der)
	caFirst := filepath.Join(dir, "ca-first.pem")
	writeTestFile(t, caFirst, append(signing.CertPEM(pki.CA), signing.CertPEM(gw.Cert)...), 0o644)
	ds := x509.KeyUsageDigitalSignature
	// A bundle whose intermediate has ended (an old one left after the CA's
	// renewal): the receipts' KeyInfo carries it, and the start said nothing.
	_, oldCA := signingtest.SelfSigned(t, "Alte Zwischen-CA", now.AddDate(-3, 0, 0), now.AddDate(0, 0, -1))
	endedChain := filepath.Join(dir, "ended-chain.pem")
	writeTestFile(t, endedChain, append(signing.CertPEM(gw.Cert), signing.CertPEM(oldCA)...), 0o644)

	for _, tc := range []struct {
		name, key, cert string
		want            []string
	}{
		{"expired certificate", key, issueFor(t, pki, gw.Key, gw.Name, now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0), ds),
			[]string{"pki.gateway_cert", "expired on", "renewed certificate"}},
		{"certificate not yet valid", key, issueFor(t, pki, gw.Key, gw.Name, now.AddDate(1, 0, 0), now.AddDate(2, 0, 0), ds),
			[]string{"pki.gateway_cert", "valid only from", "clock"}},
		{"certificate without digitalSignature", key, issueFor(t, pki, gw.Key, gw.Name, now.Add(-time.Hour), now.AddDate(1, 0, 0), x509.KeyUsageKeyEncipherment),
			[]string{"pki.gateway_cert", "lacks key usage digitalSignature", "keyUsage = critical, digitalSignature"}},
		{"key readable by everyone", loose, gw.CertFile,
			[]string{"pki.gateway_key", loose, "mode 0644", "chmod 0640"}},
		{"encrypted key", encrypted, gw.CertFile,
			[]string{"pki.gateway_key", encrypted, "encrypted with a passphrase", "openssl pkey"}},
		{"DER key", der, gw.CertFile,
			[]string{"pki.gateway_key", der, "no PEM data", "-inform DER"}},
		{"key and certificate swapped", gw.CertFile, key,
			[]string{"pki.gateway_key", gw.CertFile, "holds a certificate", "swapped"}},
		{"certificate of another key", key, pki.Portal.CertFile,
			[]string{"pki.gateway_cert", pki.Portal.CertFile, "does not belong to the key in " + key}},
		{"chain with an ended intermediate", key, endedChain,
			[]string{"pki.gateway_cert (chain certificate 2)", endedChain, "Alte Zwischen-CA", "expired on"}},
		{"chain with the CA first", key, caFirst,
			[]string{"pki.gateway_cert", caFirst, "certificate 2", "must start with the gateway's own certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := startWithKeys(t, pki, tc.key, tc.cert, nil)
			if err == nil {
				t.Fatal("the gateway started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	// What the unit asks for (root:amtsbote 0640) starts.
	if _, err := startWithKeys(t, pki, key, gw.CertFile, nil); err != nil {
		t.Fatalf("key 0640: %v", err)
	}
}

// TestStartWarnsOfExpiringCertificateAndEmptyTrust: a gateway certificate that ends
// within a month and a trust store that trusts no sender still start, but the log
// says so with the file and what to do, instead of the first failed receipt check
// or the first refused portal telling.
func TestStartWarnsOfExpiringCertificateAndEmptyTrust(t *testing.T) {
	pki := signingtest.NewPKI(t)
	gw := pki.Gateway
	now := time.Now()
	cert := issueFor(t, pki, gw.Key, gw.Name, now.Add(-time.Hour), now.Add(10*24*time.Hour), x509.KeyUsageDigitalSignature)
	empty := t.TempDir()
	var logs bytes.Buffer
	_, err := startWithKeys(t, pki, gw.KeyFile, cert, slog.New(slog.NewTextHandler(&logs, nil)), func(c *config.Config) {
		c.PKI.TrustDir = empty
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"certificate expires soon", "file=" + cert, "days_left=", "trusts no portal and no peer gateway", "trust_dir=" + empty} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("the log does not say %q:\n%s", w, logs.String())
		}
	}
}

// TestStartRefusesUnusableTLSFiles: the REST API's TLS pair is checked before the
// store and the bus start, and an expired server certificate or a key every user
// can read is refused instead of served.
func TestStartRefusesUnusableTLSFiles(t *testing.T) {
	pki := signingtest.NewPKI(t)
	gw := pki.Gateway
	now := time.Now()
	dir := t.TempDir()
	key := filepath.Join(dir, "tls-key.pem")
	writeTestFile(t, key, readTestFile(t, gw.KeyFile), 0o600)
	loose := filepath.Join(dir, "tls-loose.pem")
	writeTestFile(t, loose, readTestFile(t, gw.KeyFile), 0o604)
	expired := issueFor(t, pki, gw.Key, "localhost", now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0), x509.KeyUsageDigitalSignature)
	// An encrypted TLS key said only "tls: failed to parse private key"; it is
	// explained as the gateway key's is.
	encrypted := filepath.Join(dir, "tls-key-encrypted.pem")
	openssl(t, "pkcs8", "-topk8", "-in", gw.KeyFile, "-out", encrypted, "-passout", "pass:geheim")
	if err := os.Chmod(encrypted, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cert, key string
		want            []string
	}{
		{"expired server certificate", expired, key, []string{"tls.cert_file", expired, "expired on"}},
		{"key readable by everyone", gw.CertFile, loose, []string{"tls.key_file", loose, "mode 0604"}},
		{"certificate of another key", pki.Portal.CertFile, key, []string{"tls.cert_file (" + pki.Portal.CertFile + ") and tls.key_file (" + key + ")"}},
		{"encrypted key", gw.CertFile, encrypted, []string{"tls.key_file", encrypted, "encrypted with a passphrase", "openssl pkey"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var data string
			_, err := startWithKeys(t, pki, gw.KeyFile, gw.CertFile, nil, func(c *config.Config) {
				c.TLS = config.TLS{REST: true, CertFile: tc.cert, KeyFile: tc.key}
				data = c.DataDir
			})
			if err == nil {
				t.Fatal("the gateway started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if _, err := os.Stat(filepath.Join(data, "amtsbote.db")); err == nil {
				t.Error("the store was opened before the TLS files were checked")
			}
		})
	}
}
