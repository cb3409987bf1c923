package gateway

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/fileperm"
	"github.com/amtsbote/amtsbote/signing"
)

// Start-up checks of the operator's key and certificate files.
//
// A production install brings its own PKI, and every mistake made with it used to
// surface late or not at all: an expired gateway certificate, or one without key
// usage digitalSignature, started fine and signed every Eingangsbestaetigung with a
// certificate no verifier accepts (the 201 promised a receipt that proves nothing);
// a private key readable by every user of the machine was taken without a word; an
// encrypted key, a DER file or a certificate in the key's place all said "no
// private key in PEM data"; a chain file with the CA first said the CA "does not
// belong to the key" without naming a file. The checks below refuse what cannot
// work, name the setting, the file and the fix, and warn a month before a
// certificate expires.

// certExpiryWarning is how long before its end a certificate in use is warned about:
// time for a CA to issue the next one and for portals to add it to their trust.
const certExpiryWarning = 30 * 24 * time.Hour

// checkKeyFileMode refuses a private key file that users other than its owner and
// group may read or write. The service reads its keys through the group (the unit:
// root:amtsbote 0640); a key every local user can read is a leaked key.
func checkKeyFileMode(setting, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", setting, err)
	}
	if m := fi.Mode().Perm(); m&0o007 != 0 {
		return fmt.Errorf("%s: %s is a private key that every user of this machine may access (mode %04o); restrict it: chmod 0640 %s (owner root, group of the service user) or 0600", setting, path, m, path)
	}
	return nil
}

// checkTrustedFiles refuses to start (or reload) with a file or folder that
// decides whom the gateway trusts while every user of the machine may change it:
// the trust store (a certificate put into portals/ makes its holder a portal),
// the directory files (they say where an office's applications go) and the CA
// files (whose servers and clients are believed). Until an audit (2026-12-06)
// a trust store folder of mode 0777 was taken without a word. Key files have
// their stricter check above; the configuration file is checked by serve.
func checkTrustedFiles(c *config.Config) error {
	type file struct{ setting, path string }
	files := []file{
		{"pki.trust_dir", c.PKI.TrustDir},
		{"tls.client_ca_file", c.TLS.ClientCAFile},
		{"tls.outbound_ca_file", c.TLS.OutboundCAFile},
		{"xta.root_ca_file", c.XTA.RootCAFile},
	}
	for i, f := range c.Directory.Files {
		files = append(files, file{fmt.Sprintf("directory.files[%d]", i), f})
	}
	for i, p := range c.Peers {
		files = append(files, file{fmt.Sprintf("peers[%d].certificate", i), p.Certificate})
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if err := fileperm.WritableByOthers(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.setting, err)
		}
	}
	return nil
}

// loadOperatorSigner loads the operator's gateway key and certificate chain like
// signing.LoadSigner, with errors that name the setting and file and say what to do.
func loadOperatorSigner(keyFile, certFile string) (*signing.Signer, error) {
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki.gateway_key: %w", err)
	}
	key, err := signing.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki.gateway_key: %s: %w", keyFile, explainKeyFile(keyPEM, err))
	}
	// Only a file that holds a key is judged by its mode: a certificate in its place
	// is world-readable as it should be, and the message must say what it is.
	if err := checkKeyFileMode("pki.gateway_key", keyFile); err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("pki.gateway_cert: %w", err)
	}
	chain, err := signing.ParseCertificatesPEM(certPEM)
	if err != nil {
		if _, kerr := signing.ParsePrivateKeyPEM(certPEM); kerr == nil {
			err = errors.New("it holds a private key, no certificate; are pki.gateway_key and pki.gateway_cert swapped?")
		}
		return nil, fmt.Errorf("pki.gateway_cert: %s: %w", certFile, err)
	}
	if !samePublicKey(key, chain[0]) {
		for i, c := range chain[1:] {
			if samePublicKey(key, c) {
				return nil, fmt.Errorf("pki.gateway_cert: %s: its certificate %d (%q) belongs to the key in %s, but the first one (%q) does not; the file must start with the gateway's own certificate, followed by its chain", certFile, i+2, c.Subject.CommonName, keyFile, chain[0].Subject.CommonName)
			}
		}
		return nil, fmt.Errorf("pki.gateway_cert: %s: the certificate %q (serial %s) does not belong to the key in %s (pki.gateway_key); install the certificate issued for this key", certFile, chain[0].Subject.CommonName, chain[0].SerialNumber, keyFile)
	}
	s, err := signing.NewSigner(key, chain)
	if err != nil {
		return nil, fmt.Errorf("pki.gateway_key: %s: %w", keyFile, err)
	}
	return s, nil
}

func samePublicKey(key crypto.Signer, c *x509.Certificate) bool {
	eq, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(c.PublicKey)
}

// explainKeyFile turns the parser's error about a key file into what the operator
// did and how to mend it; err is returned as it is when none of the usual mistakes
// fits.
func explainKeyFile(data []byte, err error) error {
	var types []string
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] == "4,ENCRYPTED" {
			return errors.New("the private key is encrypted with a passphrase, which the gateway cannot ask for; store it unencrypted (openssl pkey -in ENCRYPTED.pem -out KEY.pem) and protect the file by its permissions (0640, group of the service user)")
		}
		types = append(types, b.Type)
	}
	switch {
	case len(types) == 0:
		return errors.New("no PEM data (a DER file? convert it: openssl pkey -inform DER -in KEY.der -out KEY.pem)")
	case strings.Contains(err.Error(), "unknown elliptic curve"), strings.Contains(err.Error(), "unsupported elliptic curve"):
		return fmt.Errorf("%w: the gateway signs with RSA (at least 2048 bits) or ECDSA on P-256, P-384 or P-521; Brainpool and other curves are not supported", err)
	}
	for _, t := range types {
		if t == "CERTIFICATE" {
			return fmt.Errorf("it holds a certificate, no private key (PEM blocks: %s); are pki.gateway_key and pki.gateway_cert swapped?", strings.Join(types, ", "))
		}
	}
	if strings.Contains(err.Error(), "no private key") {
		return fmt.Errorf("no private key (PEM blocks: %s; read are PRIVATE KEY, RSA PRIVATE KEY and EC PRIVATE KEY)", strings.Join(types, ", "))
	}
	return err
}

// checkCertificateInUse refuses a certificate the gateway would present or sign
// with although nobody accepts it now: outside its validity, or (for a signing
// certificate, digitalSignature true) without key usage digitalSignature, which
// every verifier of receipts requires (docs/signing.md, "Trust store"). It warns
// when the certificate ends within certExpiryWarning.
func checkCertificateInUse(setting, file string, c *x509.Certificate, digitalSignature bool, now time.Time, log *slog.Logger) error {
	const day = "2006-01-02 15:04 MST"
	switch {
	case now.Before(c.NotBefore):
		return fmt.Errorf("%s: %s: the certificate %q is valid only from %s (now %s); what the gateway signed or served with it would be refused until then: check the machine's clock or install a certificate valid now", setting, file, c.Subject.CommonName, c.NotBefore.UTC().Format(day), now.UTC().Format(day))
	case now.After(c.NotAfter):
		return fmt.Errorf("%s: %s: the certificate %q expired on %s; what the gateway signed or served with it would be refused: install a renewed certificate (docs/operations.md, \"Rotating the gateway key and certificates\")", setting, file, c.Subject.CommonName, c.NotAfter.UTC().Format(day))
	case digitalSignature && c.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return fmt.Errorf("%s: %s: the certificate %q lacks key usage digitalSignature, so every receipt signed with it would be refused as untrusted; have it issued with keyUsage = critical, digitalSignature", setting, file, c.Subject.CommonName)
	}
	if left := c.NotAfter.Sub(now); left < certExpiryWarning {
		log.Warn("certificate expires soon; renew it (docs/operations.md, \"Rotating the gateway key and certificates\")",
			"setting", setting, "file", file, "subject", c.Subject.CommonName, "not_after", c.NotAfter.UTC().Format(time.RFC3339), "days_left", int(left.Hours()/24))
	}
	return nil
}

// checkTLSFiles loads the TLS key pairs the configuration names (the server's, the
// XTA push client's, and the NATS client's) before anything else starts: a mistake there used to be
// found only after the store and the bus were open, and an expired certificate was
// served without a word.
func (g *Gateway) checkTLSFiles(now time.Time) error {
	c := g.Config
	for _, p := range []struct{ certSetting, keySetting, cert, key string }{
		{"tls.cert_file", "tls.key_file", c.TLS.CertFile, c.TLS.KeyFile},
		{"xta.client_cert_file", "xta.client_key_file", c.XTA.ClientCertFile, c.XTA.ClientKeyFile},
		{"nats.tls.cert_file", "nats.tls.key_file", c.NATS.TLS.CertFile, c.NATS.TLS.KeyFile},
	} {
		if p.cert == "" || p.key == "" {
			continue
		}
		if err := checkKeyFileMode(p.keySetting, p.key); err != nil {
			return err
		}
		pair, err := tls.LoadX509KeyPair(p.cert, p.key)
		if err != nil {
			// A key file that holds no usable key is explained as the gateway key's
			// is: an encrypted TLS key said only "tls: failed to parse private key".
			if keyPEM, rerr := os.ReadFile(p.key); rerr == nil {
				if _, kerr := signing.ParsePrivateKeyPEM(keyPEM); kerr != nil {
					return fmt.Errorf("%s: %s: %w", p.keySetting, p.key, explainKeyFile(keyPEM, err))
				}
			}
			return fmt.Errorf("%s (%s) and %s (%s): %w", p.certSetting, p.cert, p.keySetting, p.key, err)
		}
		leaf := pair.Leaf
		if leaf == nil {
			if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
				return fmt.Errorf("%s: %s: %w", p.certSetting, p.cert, err)
			}
		}
		if err := checkCertificateInUse(p.certSetting, p.cert, leaf, false, now, g.Log); err != nil {
			return err
		}
	}
	return nil
}

// warnEmptyTrust says at start when the trust store trusts no sender at all: every
// package would then be refused as from an untrusted signer, and the operator
// learns it from the first portal's complaint. A missing role folder (portals/,
// peers/) reads as empty, so this is also what a misplaced trust_dir looks like.
func (g *Gateway) warnEmptyTrust() {
	pr, pp := g.Trust.Count(signing.RolePortal)
	er, ep := g.Trust.Count(signing.RolePeer)
	if pr+pp+er+ep == 0 {
		g.Log.Warn("the trust store trusts no portal and no peer gateway: every package will be refused (403 untrusted signer); put the portals' CA or certificates into portals/ and reload",
			"trust_dir", g.Config.PKI.TrustDir)
	}
}
