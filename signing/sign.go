package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/signing/internal/c14n"
)

// ErrSignerConfig reports an unusable key or certificate chain for a Signer.
var ErrSignerConfig = errors.New("signing: bad signer configuration")

// Signer produces enveloped signatures: one ds:Signature appended as the last child
// of the root, one Reference URI="#<root ID>", enveloped + inclusive C14N 1.0
// transforms, SHA-256 digest, and the certificate chain in KeyInfo. The
// SignatureMethod follows the key: RSA-SHA256 (RSA >= 2048 bits), ECDSA-SHA256 for
// P-256, ECDSA-SHA384 for P-384 and ECDSA-SHA512 for P-521 (each curve with the hash
// of its strength; raw r||s as XMLDSig 1.1 requires). So an operator's own key of
// any of these types works without configuring the algorithm.
//
// Inclusive C14N 1.0 is the one method xmlsec1, xml-crypto and goxmldsig all
// verify, and unlike exclusive C14N it also binds namespace prefixes used inside
// attribute values (xsi:type="xs:string").
type Signer struct {
	key     crypto.Signer
	chain   []*x509.Certificate
	alg     string
	hash    crypto.Hash
	ecSize  int // bytes of r and of s for ECDSA keys, 0 for RSA
	certB64 []string
	certLen int // the sum of certB64's lengths
}

// NewSigner checks that chain[0] belongs to key and that the key is strong enough.
func NewSigner(key crypto.Signer, chain []*x509.Certificate) (*Signer, error) {
	if key == nil || len(chain) == 0 || chain[0] == nil {
		return nil, fmt.Errorf("%w: key and at least one certificate are required", ErrSignerConfig)
	}
	s := &Signer{key: key, chain: chain, hash: crypto.SHA256}
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%w: RSA key of %d bits, need >= 2048", ErrSignerConfig, pub.N.BitLen())
		}
		s.alg = AlgRSASHA256
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			s.alg = AlgECDSASHA256
		case elliptic.P384():
			s.alg, s.hash = AlgECDSASHA384, crypto.SHA384
		case elliptic.P521():
			s.alg, s.hash = AlgECDSASHA512, crypto.SHA512
		default:
			return nil, fmt.Errorf("%w: ECDSA curve %s, need P-256, P-384 or P-521", ErrSignerConfig, pub.Curve.Params().Name)
		}
		s.ecSize = (pub.Curve.Params().BitSize + 7) / 8
	default:
		return nil, fmt.Errorf("%w: unsupported key type %T", ErrSignerConfig, pub)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if eq, ok := key.Public().(equaler); !ok || !eq.Equal(chain[0].PublicKey) {
		return nil, fmt.Errorf("%w: certificate %q does not belong to the key", ErrSignerConfig, chain[0].Subject.CommonName)
	}
	for _, c := range chain {
		s.certB64 = append(s.certB64, base64.StdEncoding.EncodeToString(c.Raw))
		s.certLen += len(s.certB64[len(s.certB64)-1])
	}
	return s, nil
}

// LoadSigner reads a PEM private key (PKCS#8, PKCS#1 or SEC 1) and a PEM file with
// the certificate chain, leaf first.
func LoadSigner(keyPEMFile, certPEMFile string) (*Signer, error) {
	keyPEM, err := os.ReadFile(keyPEMFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignerConfig, err)
	}
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSignerConfig, keyPEMFile, err)
	}
	certPEM, err := os.ReadFile(certPEMFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignerConfig, err)
	}
	chain, err := ParseCertificatesPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSignerConfig, certPEMFile, err)
	}
	return NewSigner(key, chain)
}

// ParsePrivateKeyPEM parses the first private key block of PEM data.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no private key in PEM data")
		}
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("key type %T cannot sign", k)
			}
			return s, nil
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(block.Bytes)
		}
	}
}

// ParseCertificatesPEM parses every CERTIFICATE block; it fails if there is none.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate in PEM data")
	}
	return out, nil
}

// SignatureMethod returns the XMLDSig SignatureMethod URI this signer writes.
func (s *Signer) SignatureMethod() string { return s.alg }

// KeyDescription describes the signer's key for logs and messages ("ECDSA P-256",
// "RSA-3072").
func (s *Signer) KeyDescription() string { return KeyDescription(s.key.Public()) }

// KeyDescription describes a public key's type and size ("ECDSA P-256", "RSA-3072").
func KeyDescription(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	}
	return fmt.Sprintf("%T", pub)
}

// Certificate returns the signing (leaf) certificate.
func (s *Signer) Certificate() *x509.Certificate { return s.chain[0] }

// Chain returns the certificate chain written into KeyInfo, leaf first.
func (s *Signer) Chain() []*x509.Certificate { return s.chain }

// Sign signs a copy of root (root itself is not modified) and returns the complete
// signed document: an XML declaration followed by the canonical form of the signed
// root. Writing the canonical form keeps every verifier's parse identical to ours
// (no attribute-value normalisation surprises).
func (s *Signer) Sign(root *etree.Element) ([]byte, error) {
	if root == nil {
		return nil, fmt.Errorf("%w: nil root", ErrMalformed)
	}
	el := root.Copy()
	inheritNamespaces(el, root)
	return s.signOwned(el, s.signBytes)
}

// signOwned is Sign for an element nobody else holds: it signs el itself, which
// gains the Signature, instead of a copy. sign signs the canonical SignedInfo
// (s.signBytes; a deterministic stand-in in the tests that compare this path
// with the receipt writer's).
func (s *Signer) signOwned(el *etree.Element, sign func([]byte) ([]byte, error)) ([]byte, error) {
	id := ""
	if a := rootIDAttr(el); a != nil {
		id = a.Value
	}
	if id == "" {
		return nil, fmt.Errorf("%w: root element <%s> has no %s attribute", ErrMalformed, el.FullTag(), idAttributeName)
	}
	for _, ch := range el.ChildElements() {
		if ch.Tag == "Signature" && ch.NamespaceURI() == NamespaceDSig {
			return nil, fmt.Errorf("%w: root is already signed", ErrMalformed)
		}
	}
	// The first two canonical forms are only hashed: their buffer is pooled. The
	// third is the result, allocated once at about its size.
	buf := getBuf()
	defer putBuf(buf)
	if err := c14n.Canonicalize(buf, el, c14n.Inclusive10, nil); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	unsigned := buf.Len()
	digest := crypto.SHA256.New()
	digest.Write(buf.Bytes())

	sig := el.CreateElement("ds:Signature")
	sig.CreateAttr("xmlns:ds", NamespaceDSig)
	si := sig.CreateElement("ds:SignedInfo")
	si.CreateElement("ds:CanonicalizationMethod").CreateAttr("Algorithm", c14n.AlgInclusive10)
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", s.alg)
	ref := si.CreateElement("ds:Reference")
	ref.CreateAttr("URI", "#"+id)
	tr := ref.CreateElement("ds:Transforms")
	tr.CreateElement("ds:Transform").CreateAttr("Algorithm", AlgEnveloped)
	tr.CreateElement("ds:Transform").CreateAttr("Algorithm", c14n.AlgInclusive10)
	ref.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", AlgSHA256)
	ref.CreateElement("ds:DigestValue").SetText(base64.StdEncoding.EncodeToString(digest.Sum(nil)))
	sv := sig.CreateElement("ds:SignatureValue")
	x509Data := sig.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data")
	for _, c := range s.certB64 {
		x509Data.CreateElement("ds:X509Certificate").SetText(c)
	}

	buf.Reset()
	if err := c14n.Canonicalize(buf, si, c14n.Inclusive10, nil); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	signedInfo := buf.Len()
	value, err := sign(buf.Bytes())
	if err != nil {
		return nil, err
	}
	sv.SetText(base64.StdEncoding.EncodeToString(value))

	// The element, SignedInfo, the value and the certificates, plus the markup
	// around them (some 300 bytes) and the declaration.
	out := bytes.NewBuffer(make([]byte, 0, unsigned+signedInfo+base64.StdEncoding.EncodedLen(len(value))+s.certLen+512))
	out.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
	if err := c14n.Canonicalize(out, el, c14n.Inclusive10, nil); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// signBytes signs the canonical SignedInfo.
func (s *Signer) signBytes(data []byte) ([]byte, error) {
	h := s.hash.New()
	h.Write(data)
	sum := h.Sum(nil)
	raw, err := s.key.Sign(rand.Reader, sum, s.hash)
	if err != nil {
		return nil, fmt.Errorf("signing: sign: %w", err)
	}
	if s.ecSize == 0 {
		return raw, nil
	}
	// crypto.Signer returns ASN.1 DER for ECDSA; XMLDSig 1.1 wants r||s, each
	// left-padded to the curve size.
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(raw, &rs); err != nil {
		return nil, fmt.Errorf("signing: ecdsa signature: %w", err)
	}
	n := s.ecSize
	if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 8*n || rs.S.BitLen() > 8*n {
		// FillBytes would panic; only a broken crypto.Signer (an HSM module) gets here.
		return nil, fmt.Errorf("signing: ecdsa signature: r or s out of range for the curve")
	}
	out := make([]byte, 2*n)
	rs.R.FillBytes(out[:n])
	rs.S.FillBytes(out[n:])
	return out, nil
}

// rootIDAttr returns the unprefixed ID attribute of el, if any.
func rootIDAttr(el *etree.Element) *etree.Attr {
	for i := range el.Attr {
		if el.Attr[i].Space == "" && el.Attr[i].Key == idAttributeName {
			return &el.Attr[i]
		}
	}
	return nil
}

// inheritNamespaces copies onto the detached copy el the namespace declarations
// that root inherits from its ancestors, so that signing an element taken out of
// a larger document keeps its prefixes bound.
func inheritNamespaces(el, root *etree.Element) {
	declared := map[string]bool{}
	for _, a := range el.Attr {
		switch {
		case a.Space == "" && a.Key == "xmlns":
			declared[""] = true
		case a.Space == "xmlns":
			declared[a.Key] = true
		}
	}
	for p := root.Parent(); p != nil; p = p.Parent() {
		for _, a := range p.Attr {
			switch {
			case a.Space == "" && a.Key == "xmlns" && !declared[""]:
				declared[""] = true
				if a.Value != "" {
					el.CreateAttr("xmlns", a.Value)
				}
			case a.Space == "xmlns" && !declared[a.Key]:
				declared[a.Key] = true
				el.CreateAttr("xmlns:"+a.Key, a.Value)
			}
		}
	}
}
