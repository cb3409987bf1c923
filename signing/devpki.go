package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DevPKI lists the files of the development PKI EnsureDevPKI manages.
type DevPKI struct {
	Dir         string
	CACert      string
	CAKey       string
	GatewayKey  string
	GatewayCert string
	PortalKey   string
	PortalCert  string
	TrustDir    string
	Created     bool // true if this call generated the files
	// ReceiptKey describes the gateway's signing key as found on disk or just
	// generated ("ECDSA P-256", "RSA-3072", "RSA-2048" for an older PKI), so that
	// callers can say what the receipts are signed with.
	ReceiptKey string
}

// KeyType is the kind of receipt (gateway) key the development PKI generates.
type KeyType string

// The receipt key types of the development PKI.
const (
	// KeyECDSA is ECDSA P-256 (ecdsa-sha256): a signature costs tens of microseconds
	// instead of the milliseconds of RSA, at a strength (~128 bit) that BSI TR-02102
	// and SOG-IS accept beyond 2030. The default.
	KeyECDSA KeyType = "ecdsa"
	// KeyRSA is RSA-3072 (rsa-sha256), the smallest size BSI TR-02102 accepts for new
	// systems. For relying parties whose tools cannot verify ECDSA (npm xml-crypto).
	KeyRSA KeyType = "rsa"
)

// DefaultReceiptKey is the receipt key type a new development PKI gets.
const DefaultReceiptKey = KeyECDSA

// DefaultRSABits is the size of a new RSA receipt key (BSI TR-02102-1: >= 3000
// bits for new systems; SOG-IS ended RSA-2048's suitability at the end of 2025).
const DefaultRSABits = 3072

// ParseKeyType reads a receipt key type ("ecdsa" or "rsa"; "" is the default).
func ParseKeyType(s string) (KeyType, error) {
	switch KeyType(s) {
	case "":
		return DefaultReceiptKey, nil
	case KeyECDSA, KeyRSA:
		return KeyType(s), nil
	}
	return "", fmt.Errorf("%w: receipt key type %q: want %q or %q", ErrSignerConfig, s, KeyECDSA, KeyRSA)
}

// DevPKIOptions choose the keys of a development PKI that does not exist yet; they
// are ignored for one that does (its keys are used as they are).
type DevPKIOptions struct {
	// ReceiptKey is the type of the gateway's signing key ("" means DefaultReceiptKey).
	ReceiptKey KeyType
	// RSABits is the size of an RSA receipt key (0 means DefaultRSABits). Smaller
	// sizes exist to reproduce installations made before RSA-3072 (RSA-2048); below
	// 2048 is refused.
	RSABits int
}

// DevPortalID is the client id of the demo portal EnsureDevPKI creates.
const DevPortalID = "amt24"

func devPaths(dir string) *DevPKI {
	return &DevPKI{
		Dir:         dir,
		CACert:      filepath.Join(dir, "dev-ca.pem"),
		CAKey:       filepath.Join(dir, "dev-ca-key.pem"),
		GatewayKey:  filepath.Join(dir, "gateway-key.pem"),
		GatewayCert: filepath.Join(dir, "gateway.pem"),
		PortalKey:   filepath.Join(dir, "portal-"+DevPortalID+"-key.pem"),
		PortalCert:  filepath.Join(dir, "portal-"+DevPortalID+".pem"),
		TrustDir:    filepath.Join(dir, "trust"),
	}
}

// HasDevPKI reports whether dir holds a development PKI (its gateway
// certificate, the file EnsureDevPKIWith writes last), without creating one: the
// gateway asks before EnsureDevPKI would make a new one beside a store whose
// receipts the old one signed.
func HasDevPKI(dir string) (bool, error) {
	_, err := os.Stat(devPaths(dir).GatewayCert)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dev PKI: %w", err)
	}
	return true, nil
}

// EnsureDevPKI is EnsureDevPKIWith with the default options: a new development
// PKI gets an ECDSA P-256 receipt key.
func EnsureDevPKI(dir, gatewayID string) (*DevPKI, error) {
	return EnsureDevPKIWith(dir, gatewayID, DevPKIOptions{})
}

// EnsureDevPKIWith creates, on first call, a development CA (RSA-2048), a gateway
// signing key and certificate (CN=gatewayID; ECDSA P-256 or RSA-3072 as o says), a
// demo portal key and certificate (RSA-2048, CN=amt24) and a trust directory with
// the CA as portal root and the gateway certificate under gateways/ (so `amtsbote
// verify` trusts our own receipts).
//
// Later calls load nothing new and return the same paths with Created=false,
// whatever o says: an existing gateway key is used as it is, of whatever type and
// size, because its certificate may already be trusted by portals and peers, and
// regenerating it silently would break them. If the gateway certificate's CN
// differs from gatewayID it says so instead of silently signing as someone else.
// Keys are written 0600.
//
// The CA and the portal stay RSA: the portal stands for third-party portals, which
// may sign with npm xml-crypto (RSA only), and the CA's signature is checked only
// once per chain and trust snapshot (cached), so its key type costs nothing per
// package.
//
// These are development keys: the CA key sits next to the certificates.
func EnsureDevPKIWith(dir, gatewayID string, o DevPKIOptions) (*DevPKI, error) {
	if gatewayID == "" {
		return nil, fmt.Errorf("%w: empty gateway id", ErrSignerConfig)
	}
	kt, err := ParseKeyType(string(o.ReceiptKey))
	if err != nil {
		return nil, err
	}
	rsaBits := o.RSABits
	if rsaBits == 0 {
		rsaBits = DefaultRSABits
	}
	if rsaBits < 2048 {
		return nil, fmt.Errorf("%w: RSA receipt key of %d bits, need >= 2048", ErrSignerConfig, rsaBits)
	}
	p := devPaths(dir)
	if _, err := os.Stat(p.GatewayCert); err == nil {
		s, err := LoadSigner(p.GatewayKey, p.GatewayCert)
		if err != nil {
			return nil, fmt.Errorf("dev PKI in %s is damaged: %w", dir, err)
		}
		if cn := s.Certificate().Subject.CommonName; cn != gatewayID {
			return nil, fmt.Errorf("%w: dev PKI in %s belongs to gateway %q, not %q", ErrSignerConfig, dir, cn, gatewayID)
		}
		p.ReceiptKey = s.KeyDescription()
		return p, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("dev PKI: %w", err)
	}
	for _, d := range []string{dir, p.TrustDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("dev PKI: %w", err)
		}
	}
	for _, sub := range []string{RolePortal.Dir(), RolePeer.Dir(), RoleOffice.Dir(), RoleGateway.Dir(), CRLDir} {
		if err := os.MkdirAll(filepath.Join(p.TrustDir, sub), 0o750); err != nil {
			return nil, fmt.Errorf("dev PKI: %w", err)
		}
	}
	now := time.Now().Add(-time.Hour)
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("dev PKI: CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "amtsbote dev CA (" + gatewayID + ")", Organization: []string{"amtsbote development"}},
		NotBefore:             now,
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caCert, err := issue(caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("dev PKI: CA certificate: %w", err)
	}
	leaf := func(cn string, gen func() (crypto.Signer, error)) (crypto.Signer, *x509.Certificate, error) {
		k, err := gen()
		if err != nil {
			return nil, nil, err
		}
		c, err := issue(&x509.Certificate{
			Subject:               pkix.Name{CommonName: cn, Organization: []string{"amtsbote development"}},
			NotBefore:             now,
			NotAfter:              now.AddDate(5, 0, 0),
			KeyUsage:              x509.KeyUsageDigitalSignature,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
			BasicConstraintsValid: true,
		}, caCert, k.Public(), caKey)
		return k, c, err
	}
	rsaKey := func(bits int) func() (crypto.Signer, error) {
		return func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, bits) }
	}
	gwGen := func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }
	if kt == KeyRSA {
		gwGen = rsaKey(rsaBits)
	}
	gwKey, gwCert, err := leaf(gatewayID, gwGen)
	if err != nil {
		return nil, fmt.Errorf("dev PKI: gateway key: %w", err)
	}
	ptKey, ptCert, err := leaf(DevPortalID, rsaKey(2048))
	if err != nil {
		return nil, fmt.Errorf("dev PKI: portal key: %w", err)
	}
	writes := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{p.CAKey, keyPEM(caKey), 0o600},
		{p.GatewayKey, keyPEM(gwKey), 0o600},
		{p.PortalKey, keyPEM(ptKey), 0o600},
		{p.CACert, CertPEM(caCert), 0o644},
		{p.PortalCert, append(CertPEM(ptCert), CertPEM(caCert)...), 0o644},
		{filepath.Join(p.TrustDir, RolePortal.Dir(), "dev-ca.pem"), CertPEM(caCert), 0o644},
		{filepath.Join(p.TrustDir, RoleGateway.Dir(), "gateway.pem"), CertPEM(gwCert), 0o644},
		// Last: its presence marks a complete dev PKI.
		{p.GatewayCert, append(CertPEM(gwCert), CertPEM(caCert)...), 0o644},
	}
	for _, w := range writes {
		if err := writeFileAtomic(w.path, w.data, w.mode); err != nil {
			return nil, fmt.Errorf("dev PKI: %w", err)
		}
	}
	p.Created = true
	p.ReceiptKey = KeyDescription(gwKey.Public())
	return p, nil
}

func issue(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// CertPEM encodes a certificate as PEM.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(k crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		// Only reachable for key types we never generate.
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// DevTLS lists the development TLS files EnsureDevTLS manages: a server certificate
// for the loopback names and one client certificate per office, all issued by the
// development CA (which is what the XTA listener accepts as client CA).
type DevTLS struct {
	ServerCert, ServerKey string
	ClientCert, ClientKey string // of the office named in the call
}

// EnsureDevTLS creates, if missing, the development TLS server certificate
// (localhost, 127.0.0.1, ::1) and a TLS client certificate for officeID (CN), both
// from the development CA of p, valid two years. Later calls reuse the files.
func EnsureDevTLS(p *DevPKI, officeID string) (*DevTLS, error) {
	t, _, err := RenewDevTLS(p, officeID, time.Time{})
	return t, err
}

// RenewDevTLS is EnsureDevTLS that also issues again each certificate whose
// validity ends before renewBefore, or that cannot be read: reused for ever, the
// two-year pair ended and was served without a word, and every XTA client's
// handshake failed. renewed names the certificate files it issued again (not the
// ones it created because they were missing).
func RenewDevTLS(p *DevPKI, officeID string, renewBefore time.Time) (t *DevTLS, renewed []string, err error) {
	t = &DevTLS{
		ServerCert: filepath.Join(p.Dir, "tls-server.pem"), ServerKey: filepath.Join(p.Dir, "tls-server-key.pem"),
		ClientCert: filepath.Join(p.Dir, "tls-client-"+officeID+".pem"), ClientKey: filepath.Join(p.Dir, "tls-client-"+officeID+"-key.pem"),
	}
	_, errS := os.Stat(t.ServerCert)
	_, errC := os.Stat(t.ClientCert)
	if !renewBefore.IsZero() {
		for _, f := range []struct {
			file string
			err  *error
		}{{t.ServerCert, &errS}, {t.ClientCert, &errC}} {
			if *f.err == nil && !devCertValidAt(f.file, renewBefore) {
				*f.err = errors.New("ends before " + renewBefore.Format(time.RFC3339))
				renewed = append(renewed, f.file)
			}
		}
	}
	if errS == nil && errC == nil {
		return t, nil, nil
	}
	keyData, err := os.ReadFile(p.CAKey)
	if err != nil {
		return nil, nil, fmt.Errorf("dev CA: %w", err)
	}
	caKey, err := ParsePrivateKeyPEM(keyData)
	if err != nil {
		return nil, nil, fmt.Errorf("dev CA: %w", err)
	}
	certData, err := os.ReadFile(p.CACert)
	if err != nil {
		return nil, nil, fmt.Errorf("dev CA: %w", err)
	}
	cas, err := ParseCertificatesPEM(certData)
	if err != nil {
		return nil, nil, fmt.Errorf("dev CA: %w", err)
	}
	caCert := cas[0]
	now := time.Now().Add(-time.Hour)
	mk := func(certPath, keyPath string, tmpl *x509.Certificate) error {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return err
		}
		tmpl.NotBefore, tmpl.NotAfter = now, now.AddDate(2, 0, 0)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		tmpl.BasicConstraintsValid = true
		c, err := issue(tmpl, caCert, k.Public(), caKey)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(keyPath, keyPEM(k), 0o600); err != nil {
			return err
		}
		return writeFileAtomic(certPath, append(CertPEM(c), CertPEM(caCert)...), 0o644)
	}
	if errS != nil {
		if err := mk(t.ServerCert, t.ServerKey, &x509.Certificate{
			Subject:     pkix.Name{CommonName: "localhost", Organization: []string{"amtsbote development"}},
			DNSNames:    []string{"localhost"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			return nil, nil, err
		}
	}
	if errC != nil {
		if err := mk(t.ClientCert, t.ClientKey, &x509.Certificate{
			Subject:     pkix.Name{CommonName: officeID, Organization: []string{"amtsbote development"}},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}); err != nil {
			return nil, nil, err
		}
	}
	return t, renewed, nil
}

// devCertValidAt reports whether the first certificate in file is still valid at
// the time at; an unreadable one is not.
func devCertValidAt(file string, at time.Time) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	certs, err := ParseCertificatesPEM(b)
	if err != nil || len(certs) == 0 {
		return false
	}
	return !at.After(certs[0].NotAfter)
}
