package signing

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrTrustConfig reports an unreadable or inconsistent trust directory.
var ErrTrustConfig = errors.New("signing: bad trust store")

// Trust directory layout: for each role a subdirectory (Role.Dir: portals, peers,
// offices, gateways) of *.pem files, each of which may hold several CERTIFICATE
// blocks: CA certificates become trust anchors of that role, non-CA certificates
// are pinned leaves (trusted as they are, e.g. self-signed portal certificates).
// <dir>/crl/ holds CRLs, each of which must be signed by one of the CA
// certificates: *.pem with X509 CRL blocks, and *.crl and *.der as a CA
// publishes them (DER, or PEM). Other files are ignored.
//
// CRLDir is the subdirectory holding CRLs.
const CRLDir = "crl"

// TrustStore holds, per role, the trust anchors and pinned leaf certificates plus
// the revocations. Reads use an immutable snapshot behind an atomic pointer, so
// Verify never waits for Reload, Add or Revoke; those build a new snapshot and swap
// it in only if everything in it is valid.
type TrustStore struct {
	dir string

	mu      sync.Mutex // serialises writers
	added   []roleCert // programmatic additions, kept across Reload
	revoked []revocation
	cur     atomic.Pointer[trustSnapshot]
	gen     uint64 // counts the snapshots put in force; Commit checks it
}

type roleCert struct {
	role Role
	cert *x509.Certificate
	// pinOnly trusts cert as it is and never as an anchor, even if it is a CA
	// (TrustStoreFromPEM's signing certificates).
	pinOnly bool
}

type revocation struct {
	issuer []byte // raw subject of the issuer
	serial *big.Int
}

func (r revocation) key() string { return string(r.issuer) + "|" + r.serial.String() }

type roleTrust struct {
	roots   *x509.CertPool
	cas     []*x509.Certificate
	pinned  map[[32]byte]*x509.Certificate
	nPinned int
}

type trustSnapshot struct {
	roles   map[Role]*roleTrust
	revoked map[string]bool
	crls    []CRLInfo
	// cache of successful chain checks keyed by leaf certificate and role (not by the
	// intermediates presented: a chain once proven stays proven, and keying by them
	// would let anyone grow the cache with junk intermediates); it lives
	// in the snapshot, so any change to the trust store starts with an empty cache.
	cache  sync.Map
	cached atomic.Int64
}

type cachedTrust struct {
	ident     Identity
	notBefore time.Time
	notAfter  time.Time
	chain     []*x509.Certificate
}

// NewTrustStore returns an empty in-memory trust store (fill it with Add).
func NewTrustStore() *TrustStore {
	ts := &TrustStore{}
	ts.cur.Store(&trustSnapshot{roles: map[Role]*roleTrust{}, revoked: map[string]bool{}})
	return ts
}

// LoadTrustStore reads the trust directory (layout: see Role.Dir and CRLDir).
func LoadTrustStore(dir string) (*TrustStore, error) {
	ts := NewTrustStore()
	ts.dir = dir
	if err := ts.Reload(); err != nil {
		return nil, err
	}
	return ts, nil
}

// TrustStoreFromPEM builds an in-memory store for role from PEM data: the
// "just give me the gateway certificate" trust source of offline verification.
// If the data holds any leaf (non-CA) certificate, it is a file of signing
// certificates: every leaf is pinned, and so is every self-signed CA:TRUE
// certificate with digitalSignature that issued no other certificate in the
// data (what `openssl req -x509` makes: a gateway certificate, pinned as the
// trust directory pins it), wherever it stands; the other CA certificates are
// chain certificates and ignored — otherwise a gateway.pem that carries its CA
// would make everything that CA issued (portal certificates too) trusted. Pinning
// every signing certificate, not just the first, is what a key rotation needs: a
// portal keeps one file with the gateway's current and earlier certificates
// (each maybe followed by its chain), in any order, and receipts signed with an
// earlier key still verify against it. The mode was once decided by the first
// block, which dropped a self-signed earlier certificate after a CA-issued one
// and refused the file in the other order. If the data holds only CA
// certificates, they all become anchors.
func TrustStoreFromPEM(role Role, pemData []byte) (*TrustStore, error) {
	certs, err := ParseCertificatesPEM(pemData)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTrustConfig, err)
	}
	ts := NewTrustStore()
	if !slices.ContainsFunc(certs, func(c *x509.Certificate) bool { return !c.IsCA }) {
		for _, c := range certs {
			if err := ts.Add(role, c); err != nil {
				return nil, err
			}
		}
		return ts, nil
	}
	for _, c := range certs {
		if c.IsCA && !(selfSignedSigner(c) && !issuesAny(c, certs)) {
			continue // a chain certificate: never an anchor here
		}
		if err := ts.pin(role, c); err != nil {
			return nil, err
		}
	}
	return ts, nil
}

// selfSignedSigner says whether c is self-signed and may sign documents: the
// CA:TRUE certificates openssl req -x509 makes, pinned as they are.
func selfSignedSigner(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil &&
		c.KeyUsage&x509.KeyUsageDigitalSignature != 0
}

// issuesAny says whether ca issued one of the other certificates in certs.
func issuesAny(ca *x509.Certificate, certs []*x509.Certificate) bool {
	for _, c := range certs {
		if c != ca && !c.Equal(ca) && bytes.Equal(c.RawIssuer, ca.RawSubject) && c.CheckSignatureFrom(ca) == nil {
			return true
		}
	}
	return false
}

// Dir returns the directory the store reads, "" for an in-memory store.
func (ts *TrustStore) Dir() string { return ts.dir }

// Certificates returns every trusted CA and pinned certificate, of every role,
// each once (the store keeps them once instead of in every package, store/known.go).
func (ts *TrustStore) Certificates() []*x509.Certificate {
	var out []*x509.Certificate
	seen := map[string]bool{}
	add := func(c *x509.Certificate) {
		if !seen[string(c.Raw)] {
			seen[string(c.Raw)] = true
			out = append(out, c)
		}
	}
	for _, rt := range ts.cur.Load().roles {
		for _, c := range rt.cas {
			add(c)
		}
		for _, c := range rt.pinned {
			add(c)
		}
	}
	return out
}

// Reload re-reads the directory and swaps the new state in atomically. On any
// error the old state stays in force and the error says which file is bad.
func (ts *TrustStore) Reload() error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.rebuild()
}

// ErrTrustChanged is Commit's error when the store changed after Prepare.
var ErrTrustChanged = errors.New("signing: the trust store changed since the reload was prepared")

// TrustUpdate is the trust directory read and checked by Prepare, not yet in force.
type TrustUpdate struct {
	ts   *TrustStore
	snap *trustSnapshot
	gen  uint64
}

// Prepare reads and checks the directory as Reload does but leaves the store as it
// is: a reload of the trust store together with other files (the gateway's
// directory) commits it only once every part is valid, so that a bad file in one
// part changes none (a bad PEM in portals/ left a new directory in force, and a
// bad directory file a new trust store, while the reload said nothing changed).
func (ts *TrustStore) Prepare() (*TrustUpdate, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	snap, err := ts.build()
	if err != nil {
		return nil, err
	}
	return &TrustUpdate{ts: ts, snap: snap, gen: ts.gen}, nil
}

// Commit puts the prepared state in force. When Add, Revoke or another reload
// changed the store since Prepare it changes nothing and returns ErrTrustChanged
// (the prepared state would undo that change).
func (u *TrustUpdate) Commit() error {
	ts := u.ts
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.gen != u.gen {
		return fmt.Errorf("%w; reload again", ErrTrustChanged)
	}
	ts.install(u.snap)
	return nil
}

// Add trusts cert for role without touching the directory; it survives Reload.
func (ts *TrustStore) Add(role Role, cert *x509.Certificate) error {
	return ts.add(roleCert{role: role, cert: cert})
}

// pin trusts cert for role as it is, never as an anchor of what it issued.
func (ts *TrustStore) pin(role Role, cert *x509.Certificate) error {
	return ts.add(roleCert{role: role, cert: cert, pinOnly: true})
}

func (ts *TrustStore) add(rc roleCert) error {
	role, cert := rc.role, rc.cert
	if cert == nil {
		return fmt.Errorf("%w: nil certificate", ErrTrustConfig)
	}
	if role.Dir() == "" {
		return fmt.Errorf("%w: unknown role %q", ErrTrustConfig, role)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.added = append(ts.added, rc)
	if err := ts.rebuild(); err != nil {
		ts.added = ts.added[:len(ts.added)-1]
		return err
	}
	return nil
}

// Revoke distrusts cert (by issuer and serial number) in every role, whether it is a
// chained leaf, an intermediate or a pinned certificate; it survives Reload.
func (ts *TrustStore) Revoke(cert *x509.Certificate) error {
	if cert == nil {
		return fmt.Errorf("%w: nil certificate", ErrTrustConfig)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.revoked = append(ts.revoked, revocation{cert.RawIssuer, cert.SerialNumber})
	if err := ts.rebuild(); err != nil {
		ts.revoked = ts.revoked[:len(ts.revoked)-1]
		return err
	}
	return nil
}

// Count reports how many anchors and pinned certificates role has (for logs).
func (ts *TrustStore) Count(role Role) (roots, pinned int) {
	rt := ts.cur.Load().roles[role]
	if rt == nil {
		return 0, 0
	}
	return len(rt.cas), rt.nPinned
}

// rebuild builds a new snapshot and puts it in force; ts.mu is held.
func (ts *TrustStore) rebuild() error {
	snap, err := ts.build()
	if err != nil {
		return err
	}
	ts.install(snap)
	return nil
}

// install puts snap in force; ts.mu is held.
func (ts *TrustStore) install(snap *trustSnapshot) {
	ts.cur.Store(snap)
	ts.gen++
}

// build reads the directory and the programmatic changes into a new snapshot,
// checking everything, without putting it in force; ts.mu is held.
func (ts *TrustStore) build() (*trustSnapshot, error) {
	snap := &trustSnapshot{roles: map[Role]*roleTrust{}, revoked: map[string]bool{}}
	get := func(r Role) *roleTrust {
		rt := snap.roles[r]
		if rt == nil {
			rt = &roleTrust{roots: x509.NewCertPool(), pinned: map[[32]byte]*x509.Certificate{}}
			snap.roles[r] = rt
		}
		return rt
	}
	addCert := func(r Role, c *x509.Certificate, pinOnly bool) {
		rt := get(r)
		if c.BasicConstraintsValid && c.IsCA && !pinOnly {
			rt.roots.AddCert(c)
			rt.cas = append(rt.cas, c)
			selfSigned := bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
			if !selfSigned || c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
				return
			}
			// A self-signed CA:TRUE certificate that may sign is also pinned as is.
		}
		h := sha256.Sum256(c.Raw)
		if _, dup := rt.pinned[h]; !dup {
			rt.nPinned++
		}
		rt.pinned[h] = c
	}
	if ts.dir != "" {
		if st, err := os.Stat(ts.dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%w: %s is not a readable directory", ErrTrustConfig, ts.dir)
		}
		for _, r := range Roles() {
			files, err := pemFiles(filepath.Join(ts.dir, r.Dir()))
			if err != nil {
				return nil, err
			}
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					return nil, fmt.Errorf("%w: %w", ErrTrustConfig, err)
				}
				certs, err := ParseCertificatesPEM(data)
				if err != nil {
					return nil, fmt.Errorf("%w: %s: %w", ErrTrustConfig, f, err)
				}
				for _, c := range certs {
					addCert(r, c, false)
				}
			}
		}
	}
	for _, a := range ts.added {
		addCert(a.role, a.cert, a.pinOnly)
	}
	for _, r := range ts.revoked {
		snap.revoked[r.key()] = true
	}
	if ts.dir != "" {
		files, err := crlFiles(filepath.Join(ts.dir, CRLDir))
		if err != nil {
			return nil, err
		}
		var cas []*x509.Certificate
		for _, rt := range snap.roles {
			cas = append(cas, rt.cas...)
		}
		for _, f := range files {
			infos, err := loadCRLFile(f, cas, snap.revoked)
			if err != nil {
				return nil, err
			}
			snap.crls = append(snap.crls, infos...)
		}
	}
	return snap, nil
}

// pemFiles lists the *.pem files of dir.
func pemFiles(dir string) ([]string, error) {
	return filesIn(dir, func(name string) bool { return strings.HasSuffix(name, ".pem") })
}

// filesIn lists the files of dir whose names match; a dir that is not there
// has none.
func filesIn(dir string, match func(name string) bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTrustConfig, err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && match(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// crlFiles lists the CRL files of dir: *.pem, and *.crl and *.der as a CA
// publishes its CRL (DER, or PEM). Only *.pem was read, and a CRL saved as
// the CA's ca.crl was passed over in silence — the reload said "reloaded" and
// what it revokes stayed trusted (an operator's walk through
// docs/federation.md, 2026-12-06).
func crlFiles(dir string) ([]string, error) {
	return filesIn(dir, func(name string) bool {
		switch strings.ToLower(filepath.Ext(name)) {
		case ".pem", ".crl", ".der":
			return true
		}
		return false
	})
}

// crlBlocks are the DER CRLs in a CRL file: its X509 CRL blocks, or, for a
// file that is no PEM and not named *.pem, the whole file.
func crlBlocks(path string, data []byte) [][]byte {
	var ders [][]byte
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "X509 CRL" {
			ders = append(ders, block.Bytes)
		}
	}
	if len(ders) == 0 && !strings.EqualFold(filepath.Ext(path), ".pem") && !bytes.Contains(data, []byte("-----BEGIN")) {
		ders = append(ders, data)
	}
	return ders
}

func loadCRLFile(path string, cas []*x509.Certificate, revoked map[string]bool) ([]CRLInfo, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTrustConfig, err)
	}
	var infos []CRLInfo
	for _, der := range crlBlocks(path, data) {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrTrustConfig, path, err)
		}
		var issuer *x509.Certificate
		for _, ca := range cas {
			if crl.CheckSignatureFrom(ca) == nil {
				issuer = ca
				break
			}
		}
		if issuer == nil {
			return nil, fmt.Errorf("%w: %s: CRL of %q is not signed by any trusted CA", ErrTrustConfig, path, crl.Issuer.String())
		}
		for _, e := range crl.RevokedCertificateEntries {
			revoked[revocation{issuer.RawSubject, e.SerialNumber}.key()] = true
		}
		key := sha256.Sum256(issuer.RawSubjectPublicKeyInfo)
		infos = append(infos, CRLInfo{File: filepath.Base(path), Issuer: issuer.Subject.CommonName, IssuerKey: hex.EncodeToString(key[:8]), NextUpdate: crl.NextUpdate})
	}
	if len(infos) == 0 {
		return nil, fmt.Errorf("%w: %s: no X509 CRL block", ErrTrustConfig, path)
	}
	return infos, nil
}

// CRLInfo is one CRL the trust store uses.
type CRLInfo struct {
	File   string // its file in crl/
	Issuer string // the CA's common name
	// IssuerKey tells the CA's keys apart (the first 8 bytes of the SHA-256 of
	// its public key, hex): at a CA's key rollover the old and the new CA
	// certificate bear one name, and each key has its own CRLs.
	IssuerKey string
	// NextUpdate is when the CA promises the next CRL (zero: the CRL names none).
	// After it the store still uses this one: revocations the CA made since are
	// not known here until a fresh CRL is put in crl/ and the store reloaded.
	NextUpdate time.Time
}

// CRLs lists the CRLs in use now.
func (ts *TrustStore) CRLs() []CRLInfo {
	return slices.Clone(ts.cur.Load().crls)
}

// EarliestEnd is, per role, the earliest NotAfter among the certificates the
// store trusts for it (CAs and pinned certificates) that have not ended at now;
// roles without such a certificate are missing. When that certificate ends, what
// chains to it alone is refused. Ended certificates are left out on purpose: the
// docs tell operators to keep a retired gateway certificate in gateways/ (old
// receipts verify against it) and an expired peer's in peers/, and counting them
// pinned the value in the past, so the expiry alert fired for good and could no
// longer warn about the certificate that really ends next (Ended counts them).
func (ts *TrustStore) EarliestEnd(now time.Time) map[Role]time.Time {
	out := map[Role]time.Time{}
	for role, rt := range ts.cur.Load().roles {
		consider := func(c *x509.Certificate) {
			if !c.NotAfter.After(now) {
				return
			}
			if end, ok := out[role]; !ok || c.NotAfter.Before(end) {
				out[role] = c.NotAfter
			}
		}
		for _, c := range rt.cas {
			consider(c)
		}
		for _, c := range rt.pinned {
			consider(c)
		}
	}
	return out
}

// Ended counts, per role that has trusted certificates, those (CAs and pinned,
// each once) whose NotAfter has passed at now, 0 included. They verify only
// documents checked as of an earlier time (amtsbote verify -at).
func (ts *TrustStore) Ended(now time.Time) map[Role]int {
	out := map[Role]int{}
	for role, rt := range ts.cur.Load().roles {
		seen := map[string]bool{}
		out[role] = 0 // a series per role, so the alerts' metric always exists
		count := func(c *x509.Certificate) {
			if c.NotAfter.After(now) || seen[string(c.Raw)] {
				return
			}
			seen[string(c.Raw)] = true
			out[role]++
		}
		for _, c := range rt.cas {
			count(c)
		}
		for _, c := range rt.pinned {
			count(c)
		}
	}
	return out
}

// VerifyCertificate decides whether leaf (with optional intermediates from the
// document) is trusted at time now for one of roles (all roles if none). The
// first role in order that trusts it wins.
func (ts *TrustStore) VerifyCertificate(leaf *x509.Certificate, intermediates []*x509.Certificate, now time.Time, roles ...Role) (Identity, error) {
	return ts.verifyCert(leaf, intermediates, now, roles)
}

func (ts *TrustStore) verifyCert(leaf *x509.Certificate, intermediates []*x509.Certificate, now time.Time, roles []Role) (Identity, error) {
	if len(roles) == 0 {
		roles = Roles()
	}
	snap := ts.cur.Load()
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return Identity{}, fmt.Errorf("%w: certificate %q lacks key usage digitalSignature", ErrUntrustedSigner, leaf.Subject.CommonName)
	}
	if leaf.Subject.CommonName == "" {
		return Identity{}, fmt.Errorf("%w: certificate has no subject CommonName to identify the client", ErrUntrustedSigner)
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return Identity{}, fmt.Errorf("%w: certificate %q is not valid at %s (valid %s to %s)", ErrUntrustedSigner,
			leaf.Subject.CommonName, now.UTC().Format(time.RFC3339), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if snap.revoked[revocation{leaf.RawIssuer, leaf.SerialNumber}.key()] {
		return Identity{}, fmt.Errorf("%w: certificate %q (serial %s) is revoked", ErrUntrustedSigner, leaf.Subject.CommonName, leaf.SerialNumber)
	}
	h := sha256.Sum256(leaf.Raw)
	var lastErr error
	for _, r := range roles {
		rt := snap.roles[r]
		if rt == nil {
			continue
		}
		if _, ok := rt.pinned[h]; ok {
			return Identity{ID: leaf.Subject.CommonName, Role: r, Certificate: leaf}, nil
		}
		if len(rt.cas) == 0 {
			continue
		}
		if leaf.IsCA {
			// A CA key issues certificates; it signs documents only if its very
			// certificate is pinned (self-signed certificates made with openssl
			// usually say CA:TRUE).
			lastErr = fmt.Errorf("CA certificate used as signing certificate")
			continue
		}
		key := cacheKey(h, r)
		if v, ok := snap.cache.Load(key); ok {
			ct := v.(*cachedTrust)
			if !now.Before(ct.notBefore) && !now.After(ct.notAfter) {
				return ct.ident, nil
			}
		}
		pool := x509.NewCertPool()
		for _, c := range intermediates {
			pool.AddCert(c)
		}
		chains, err := leaf.Verify(x509.VerifyOptions{
			Roots:         rt.roots,
			Intermediates: pool,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			lastErr = err
			continue
		}
		for _, chain := range chains {
			if revokedIn(snap, chain) {
				lastErr = fmt.Errorf("a certificate of the chain is revoked")
				continue
			}
			ct := &cachedTrust{ident: Identity{ID: leaf.Subject.CommonName, Role: r, Certificate: leaf}, chain: chain}
			ct.notBefore, ct.notAfter = leaf.NotBefore, leaf.NotAfter
			for _, c := range chain {
				if c.NotBefore.After(ct.notBefore) {
					ct.notBefore = c.NotBefore
				}
				if c.NotAfter.Before(ct.notAfter) {
					ct.notAfter = c.NotAfter
				}
			}
			if snap.cached.Load() < maxCachedChains {
				if _, loaded := snap.cache.LoadOrStore(key, ct); !loaded {
					snap.cached.Add(1)
				}
			}
			return ct.ident, nil
		}
	}
	if lastErr != nil {
		return Identity{}, fmt.Errorf("%w: certificate %q: %w", ErrUntrustedSigner, leaf.Subject.CommonName, lastErr)
	}
	return Identity{}, fmt.Errorf("%w: certificate %q is not trusted for %v", ErrUntrustedSigner, leaf.Subject.CommonName, roles)
}

func revokedIn(snap *trustSnapshot, chain []*x509.Certificate) bool {
	for _, c := range chain {
		if snap.revoked[revocation{c.RawIssuer, c.SerialNumber}.key()] {
			return true
		}
	}
	return false
}

// maxCachedChains bounds the chain cache; only certificates that really chain to
// a trusted root get in, so this is far above any real population.
const maxCachedChains = 100_000

func cacheKey(leaf [32]byte, r Role) string { return string(leaf[:]) + "|" + string(r) }
