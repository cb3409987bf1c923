package federation

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
)

// Errors of the trust checks; each wraps one of these.
var (
	// ErrUntrustedPeer: the document is not signed by a configured peer with a
	// certificate the trust store holds for the peer role (unknown, revoked, expired,
	// not the pinned one, or a signer that claims to be someone else).
	ErrUntrustedPeer = errors.New("federation: not signed by a trusted peer gateway")
	// ErrClockSkew: the document's time is further from ours than the peer's window.
	ErrClockSkew = errors.New("federation: time outside the tolerated clock skew")
	// ErrMisdirected: the document is addressed to another gateway.
	ErrMisdirected = errors.New("federation: addressed to another gateway")
)

// Trust decides whether a document comes from a configured peer. Safe for
// concurrent use.
type Trust struct {
	self  string
	peers map[string]config.Peer
	// pinned are the certificates of peers[].certificate, by peer: the peer
	// signs with one of them (several while it rotates its key).
	pinned   map[string][]*x509.Certificate
	store    *signing.TrustStore
	verifier *signing.Verifier
	now      func() time.Time
}

// TrustOptions configure Trust.
type TrustOptions struct {
	Self  string // this gateway's id
	Peers []config.Peer
	// Store is the gateway's trust store: peer certificates are trusted for
	// signing.RolePeer (its peers/ folder, or the certificate files of the
	// configuration, which NewTrust adds).
	Store *signing.TrustStore
	// MaxBytes bounds one document (an envelope carries a whole package in base64;
	// default EnvelopeBytes of paket's default package limit).
	MaxBytes int64
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// NewTrust loads the peers' certificate files (adding them to the store for the peer
// role) and returns the checker.
func NewTrust(o TrustOptions) (*Trust, error) {
	t := &Trust{self: o.Self, peers: map[string]config.Peer{}, pinned: map[string][]*x509.Certificate{}, store: o.Store, now: o.Now}
	if t.now == nil {
		t.now = time.Now
	}
	for _, p := range o.Peers {
		t.peers[p.ID] = p
		if p.Certificate == "" {
			continue
		}
		data, err := os.ReadFile(p.Certificate)
		if err != nil {
			return nil, fmt.Errorf("peers %s: certificate: %w", p.ID, err)
		}
		certs, err := signing.ParseCertificatesPEM(data)
		if err != nil {
			return nil, fmt.Errorf("peers %s: certificate %s: %w", p.ID, p.Certificate, err)
		}
		// Every leaf of the file is the peer's: its current one, and during a
		// rotation of its key the next (or the last) beside it. With one only,
		// both states had to restart at the same moment, and what the peer
		// signed in between was refused for good (an audit, 2026-12-05). The
		// CA certificates of another name (a "fullchain" file as CAs hand them
		// out) are skipped: never pinned, never made anchors of the peer role.
		// A self-signed certificate of the peer (CA:TRUE, as openssl req -x509
		// makes it) is the peer's own.
		var pins []*x509.Certificate
		for i, c := range certs {
			if c.IsCA && c.Subject.CommonName != p.ID {
				continue
			}
			if c.Subject.CommonName != p.ID {
				return nil, fmt.Errorf("peers %s: certificate %d of %s belongs to %q", p.ID, i+1, p.Certificate, c.Subject.CommonName)
			}
			if err := o.Store.Add(signing.RolePeer, c); err != nil {
				return nil, fmt.Errorf("peers %s: %w", p.ID, err)
			}
			pins = append(pins, c)
		}
		if len(pins) == 0 {
			return nil, fmt.Errorf("peers %s: certificate %s holds no certificate of the peer itself, only CA certificates", p.ID, p.Certificate)
		}
		t.pinned[p.ID] = pins
	}
	max := o.MaxBytes
	if max <= 0 {
		max = EnvelopeBytes(paket.DefaultLimits().MaxBytes)
	}
	t.verifier = signing.NewVerifier(o.Store, signing.VerifyOptions{MaxBytes: max, Now: o.Now})
	return t, nil
}

// Self is this gateway's id.
func (t *Trust) Self() string { return t.self }

// Peer returns a configured peer.
func (t *Trust) Peer(id string) (config.Peer, bool) {
	p, ok := t.peers[id]
	return p, ok
}

// Verify checks the signature of doc against the peer role and that the signer is a
// configured peer (and, if its certificate was configured, signed with exactly that
// one). want, if not empty, is the peer the document must come from.
func (t *Trust) Verify(doc []byte, want string) (*signing.Verified, config.Peer, error) {
	return t.verify(t.verifier, doc, want)
}

// verify is Verify with the certificates' validity checked by verifier's clock.
func (t *Trust) verify(verifier *signing.Verifier, doc []byte, want string) (*signing.Verified, config.Peer, error) {
	v, err := verifier.Verify(doc, signing.RolePeer)
	if err != nil {
		if errors.Is(err, signing.ErrUntrustedSigner) {
			return nil, config.Peer{}, fmt.Errorf("%w: %w", ErrUntrustedPeer, err)
		}
		return nil, config.Peer{}, err
	}
	p, ok := t.peers[v.Signer.ID]
	if !ok {
		return nil, config.Peer{}, presented(v, fmt.Errorf("%w: %q is not a configured peer", ErrUntrustedPeer, v.Signer.ID))
	}
	if want != "" && v.Signer.ID != want {
		return nil, config.Peer{}, presented(v, fmt.Errorf("%w: signed by %q, expected %q", ErrUntrustedPeer, v.Signer.ID, want))
	}
	if pins := t.pinned[p.ID]; pins != nil && !slices.ContainsFunc(pins, func(c *x509.Certificate) bool { return bytes.Equal(c.Raw, v.Signer.Certificate.Raw) }) {
		return nil, config.Peer{}, presented(v, fmt.Errorf("%w: %q signed with another certificate than the configured one", ErrUntrustedPeer, p.ID))
	}
	return v, p, nil
}

// VerifyRepeatReceipt verifies p's answer to a repeated forwarding (HTTP 200):
// its first Eingangsbestaetigung of the package, which may be older than the
// certificate it signs with now. since is when the package came to this
// gateway.
//
// A receipt that verifies now is taken as Verify takes it. One that does not
// is verified as of its own Zeitpunkt: a peer rotates its key, its old
// certificate ends, and its first receipt of a package whose answer was lost
// then verified nowhere, so the package stayed held here for good while the
// peer had it and its office worked on it. Verified so, the certificate must
// have been valid at that time and must be trusted for the peer role today
// (in peers/ or peers[].certificate, and not revoked by today's CRLs: removed
// or revoked, the operator withdrew it); and the time must lie after the
// package came here and not after now, each within p's clock_skew — the peer
// cannot have received the package before this gateway did, so an ended key
// vouches only for packages that came here while it was valid, never for a
// later one. The verified receipt must carry the time it was verified at.
func (t *Trust) VerifyRepeatReceipt(doc []byte, p config.Peer, since time.Time) (*signing.Verified, error) {
	v, _, err := t.Verify(doc, p.ID)
	if err == nil || !errors.Is(err, ErrUntrustedPeer) {
		return v, err
	}
	at, ok := receiptTime(doc)
	if !ok {
		return nil, err
	}
	now := t.now()
	if at.Before(since.Add(-p.Skew())) || at.After(now.Add(p.Skew())) {
		return nil, fmt.Errorf("%w; as a repeat's first receipt it is dated %s, outside the time from the package's arrival here (%s) to now",
			err, at.UTC().Format(time.RFC3339), since.UTC().Format(time.RFC3339))
	}
	v, _, errAt := t.verify(t.verifier.At(at), doc, p.ID)
	if errAt != nil {
		return nil, fmt.Errorf("%w; as a repeat's first receipt, at its time %s: %w", err, at.UTC().Format(time.RFC3339), errAt)
	}
	if r, perr := signing.ParseReceipt(v.Root); perr != nil || !r.Time.Equal(at) {
		return nil, fmt.Errorf("%w: the signed receipt's time is not the one it was verified at (%s)", ErrUntrustedPeer, at.UTC().Format(time.RFC3339))
	}
	return v, nil
}

// receiptTime reads the Zeitpunkt of a receipt before it is verified: the
// first child of that name of the root in the receipt namespace. Only the time
// to verify at is taken from it; the verified receipt must say the same.
func receiptTime(doc []byte) (time.Time, bool) {
	dec := xml.NewDecoder(bytes.NewReader(doc))
	depth, in := 0, false
	for {
		tok, err := dec.Token()
		if err != nil {
			return time.Time{}, false
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 && e.Name.Space != signing.NamespaceReceipt {
				return time.Time{}, false
			}
			in = depth == 2 && e.Name.Space == signing.NamespaceReceipt && e.Name.Local == "Zeitpunkt"
		case xml.CharData:
			if in {
				at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(e)))
				return at, err == nil
			}
		case xml.EndElement:
			if in {
				return time.Time{}, false
			}
			depth--
		}
	}
}

// presented is err with the certificate v was signed with (signing.PresentedError),
// for the refusal's log line (presentedBy).
func presented(v *signing.Verified, err error) error {
	return &signing.PresentedError{Certificate: v.Signer.Certificate, Err: err}
}

// CheckPeer is asked before anything is sent to p: can an answer of p verify now?
// Its answers must be signed with a certificate the trust store holds for the peer
// role, so a peer none of whose certificates is trusted now — revoked, expired, or
// removed from the trust store's peers/ folder and reloaded — gets nothing: not a
// package it could keep, not a question about one.
//
// A peer with a configured certificate (peers[].certificate) must sign with that
// one, so that one must be trusted. Otherwise, if the store holds certificates with
// the peer's id as their CommonName (its leaf in peers/), one of them must be
// trusted for the peer role now. If it holds none, the peer can only be trusted
// through a CA of the peer role (a CA in peers/, which docs/federation.md advises
// against): then its certificate is known only from its answer, checked as before.
func (t *Trust) CheckPeer(p config.Peer) error {
	now := t.now()
	if pins := t.pinned[p.ID]; pins != nil {
		// One the peer may answer with is enough: the other of a rotation may
		// not be valid yet, or no more.
		var last error
		for _, pin := range pins {
			if _, last = t.store.VerifyCertificate(pin, nil, now, signing.RolePeer); last == nil {
				return nil
			}
		}
		return fmt.Errorf("%w: the configured certificate of %s: %w", ErrUntrustedPeer, p.ID, last)
	}
	var last error
	for _, c := range t.store.Certificates() {
		if c.Subject.CommonName != p.ID {
			continue
		}
		_, err := t.store.VerifyCertificate(c, nil, now, signing.RolePeer)
		if err == nil {
			return nil
		}
		last = err
	}
	if last != nil {
		return fmt.Errorf("%w: no certificate of %s is trusted for the peer role now: %w", ErrUntrustedPeer, p.ID, last)
	}
	if cas, _ := t.store.Count(signing.RolePeer); cas > 0 {
		return nil
	}
	return fmt.Errorf("%w: the trust store holds no certificate of %s for the peer role", ErrUntrustedPeer, p.ID)
}

// TrustedUntil is when the last of p's own certificates that are trusted for the
// peer role now ends (the configured ones of peers[].certificate, or those with
// its id as CommonName in the trust store): from then on nothing is sent to p
// and nothing of it taken (CheckPeer), unless a successor is trusted by then.
// ok is false when none is trusted now, and when p is known only through a CA
// of the peer role (its certificate is seen only in its answers).
func (t *Trust) TrustedUntil(p config.Peer) (until time.Time, ok bool) {
	now := t.now()
	certs := t.pinned[p.ID]
	if certs == nil {
		for _, c := range t.store.Certificates() {
			if c.Subject.CommonName == p.ID {
				certs = append(certs, c)
			}
		}
	}
	for _, c := range certs {
		if _, err := t.store.VerifyCertificate(c, nil, now, signing.RolePeer); err == nil && c.NotAfter.After(until) {
			until, ok = c.NotAfter, true
		}
	}
	return until, ok
}

// CheckTime accepts at if it lies within the peer's clock skew of now.
func (t *Trust) CheckTime(p config.Peer, at time.Time) error {
	d := t.now().Sub(at)
	if d < 0 {
		d = -d
	}
	if d > p.Skew() {
		return fmt.Errorf("%w: %s is %s away from this gateway's clock (tolerated: %s)", ErrClockSkew, at.UTC().Format(time.RFC3339), d.Round(time.Second), p.Skew())
	}
	return nil
}

// CheckAddressed accepts a document addressed to this gateway.
func (t *Trust) CheckAddressed(to string) error {
	if to != t.self {
		return fmt.Errorf("%w: addressed to %q, this is %q", ErrMisdirected, to, t.self)
	}
	return nil
}

// SignerCertificate returns the signing certificate a signed package carries in its
// KeyInfo (the first non-CA certificate, the rule the verifier uses). The package was
// verified at intake; the certificate travels in the envelope so that the next
// gateway can verify the package's own signature against exactly it.
func SignerCertificate(pkg []byte) (*x509.Certificate, error) {
	doc := etree.NewDocument()
	doc.ReadSettings.Permissive = false
	if err := doc.ReadFromBytes(pkg); err != nil {
		return nil, fmt.Errorf("%w: package: %v", ErrMalformed, err)
	}
	root := doc.Root()
	if root == nil {
		return nil, fmt.Errorf("%w: package has no root", ErrMalformed)
	}
	var certs []*x509.Certificate
	for _, sig := range root.ChildElements() {
		if sig.Tag != "Signature" || sig.NamespaceURI() != signing.NamespaceDSig {
			continue
		}
		for _, e := range sig.FindElements(".//X509Certificate") {
			der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(e.Text()), ""))
			if err != nil {
				return nil, fmt.Errorf("%w: KeyInfo certificate: %v", ErrMalformed, err)
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, fmt.Errorf("%w: KeyInfo certificate: %v", ErrMalformed, err)
			}
			certs = append(certs, c)
		}
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: package carries no signing certificate", ErrMalformed)
	}
	for _, c := range certs {
		if !c.IsCA {
			return c, nil
		}
	}
	return certs[0], nil
}

// presentedBy returns, as log attributes, the certificate err says the refused
// document presented (signing.PresentedError): subject, issuer, serial (hex, as
// openssl x509 -serial prints it) and SHA-256 fingerprint (hex, as openssl x509
// -fingerprint -sha256, without colons) — no personal data of a citizen, and
// nothing else of the document. None: nil.
func presentedBy(err error) []any {
	c := signing.Presented(err)
	if c == nil {
		return nil
	}
	fp := sha256.Sum256(c.Raw)
	return []any{"cert_subject", c.Subject.String(), "cert_issuer", c.Issuer.String(),
		"cert_serial", fmt.Sprintf("%X", c.SerialNumber), "cert_sha256", hex.EncodeToString(fp[:])}
}
