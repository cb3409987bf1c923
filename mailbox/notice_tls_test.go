package mailbox

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/internal/outbound"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// privateCA writes a CA and a server certificate for 127.0.0.1 it issued, as a
// state network's mail server has: the CA's file and the server's pair.
func privateCA(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, caKey := signingtest.Certify(t, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Landesnetz CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}, nil, nil)
	cert, key := signingtest.Certify(t, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mail.landesnetz.example"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, caKey)
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "smtp.pem"), filepath.Join(dir, "smtp-key.pem")
	for f, b := range map[string][]byte{
		caFile:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}),
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// TestNoticeSMTPServerOfPrivateCA: an SMTP server in the state network whose
// STARTTLS certificate comes from the state's own CA. STARTTLS verified it
// against the system's roots only, with no setting for that CA, so no notice
// went out. With tls.outbound_ca_file's roots it goes; without them the failure
// is a WARN that names the setting.
func TestNoticeSMTPServerOfPrivateCA(t *testing.T) {
	bin := mailpitBinary(t)
	caFile, certFile, keyFile := privateCA(t)
	smtpAddr := freeAddr(t)
	mp := startMailpit(t, bin, smtpAddr, "--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, "--smtp-require-starttls")
	send := func(out *outbound.Config) error {
		m := &Mailbox{opts: Options{SMTP: SMTPConfig{Addr: smtpAddr, From: "postfach@gateway.example", RequireTLS: true, Outbound: out},
			smtpTimeout: 10 * time.Second}}
		return m.sendMail(t.Context(), notice{To: noticeAddr, Subject: "Neuer Antrag", Body: "x", Created: time.Now()})
	}

	var logs testenv.Buffer
	plain, err := outbound.Load("", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := send(plain); !outbound.IsVerifyError(err) {
		t.Fatalf("STARTTLS with the system's roots alone: %v, want a certificate verification error", err)
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, outbound.Setting) || !strings.Contains(l, smtpAddr) {
		t.Fatalf("no warning naming %s and the server: %q", outbound.Setting, l)
	}

	withCA, err := outbound.Load(caFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := send(withCA); err != nil {
		t.Fatalf("STARTTLS with the state CA in %s: %v", outbound.Setting, err)
	}
	if n := len(mp.messages(t)); n != 1 {
		t.Fatalf("%d mails at the server, want 1", n)
	}
}
