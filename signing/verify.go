package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/signing/internal/c14n"
)

// VerifyOptions bounds the work one Verify call may do. Zero fields take the
// defaults below, which fit an Antragspaket with 100 inline attachments.
type VerifyOptions struct {
	MaxBytes      int64 // whole document; default 64 MiB
	MaxDepth      int   // element nesting; default 64
	MaxElements   int   // default 200,000
	MaxAttributes int   // per element; default 64
	// Now is the clock for certificate validity; default time.Now.
	Now func() time.Time
}

// Default limits.
const (
	DefaultMaxBytes      = 64 << 20
	DefaultMaxDepth      = 64
	DefaultMaxElements   = 200_000
	DefaultMaxAttributes = 64
)

func (o VerifyOptions) withDefaults() VerifyOptions {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxElements <= 0 {
		o.MaxElements = DefaultMaxElements
	}
	if o.MaxAttributes <= 0 {
		o.MaxAttributes = DefaultMaxAttributes
	}
	return o
}

// Verifier checks enveloped signatures against a trust store. It is safe for
// concurrent use.
type Verifier struct {
	ts   *TrustStore
	opts VerifyOptions
}

// NewVerifier returns a Verifier; a nil trust store trusts nobody.
func NewVerifier(ts *TrustStore, opts VerifyOptions) *Verifier {
	if ts == nil {
		ts = NewTrustStore()
	}
	return &Verifier{ts: ts, opts: opts.withDefaults()}
}

// Options returns the effective limits.
func (v *Verifier) Options() VerifyOptions { return v.opts }

// At is v with its clock stopped at t: the same trust store and limits, the
// certificates' validity checked at t. For a document that was verified at t
// before and comes again (a portal's retry of an accepted package after its
// certificate ended): its trust and revocation are still checked as of now.
func (v *Verifier) At(t time.Time) *Verifier {
	opts := v.opts
	opts.Now = func() time.Time { return t }
	return &Verifier{ts: v.ts, opts: opts}
}

// Verify checks doc and, on success, returns the signed root re-parsed from the
// digested canonical bytes plus the signer's identity for the first of roles that
// trusts the certificate (all roles if none are given).
//
// The one accepted shape: a single ds:Signature anywhere in the document, and it is
// a direct child of the root; SignedInfo with an allowed C14N method, an RSA or
// ECDSA SHA-2 signature method and exactly one Reference whose URI is "" or
// "#"+root/@ID; transforms exactly [enveloped] or [enveloped, C14N]; SHA-2 digest;
// the signing certificate in KeyInfo/X509Data. Everything else is refused.
func (v *Verifier) Verify(doc []byte, roles ...Role) (res *Verified, err error) {
	defer func() {
		// Defence in depth: a bug in a parser below must cost a request, not the process.
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("%w: internal error while verifying: %v", ErrMalformed, r)
		}
	}()
	now := time.Now()
	if v.opts.Now != nil {
		now = v.opts.Now()
	}
	root, err := v.parse(doc)
	if err != nil {
		return nil, err
	}
	sig, rootID, err := v.checkTree(root)
	if err != nil {
		return nil, err
	}
	si, err := parseSignature(sig, rootID)
	if err != nil {
		return nil, err
	}
	leaf, inter, err := si.certificates()
	if err != nil {
		return nil, err
	}
	ident, err := v.ts.verifyCert(leaf, inter, now, roles)
	if err != nil {
		return nil, &PresentedError{Certificate: leaf, Err: err}
	}

	buf := getBuf()
	defer putBuf(buf)

	// SignedInfo first: cheap, and a forged document usually fails here already.
	if err := c14n.Canonicalize(buf, si.signedInfo, si.c14nMethod, nil); err != nil {
		return nil, fmt.Errorf("%w: canonicalizing SignedInfo: %w", ErrMalformed, err)
	}
	if err := checkSignatureValue(leaf, si, buf.Bytes()); err != nil {
		return nil, err
	}

	buf.Reset()
	if err := c14n.Canonicalize(buf, root, si.refMethod, sig); err != nil {
		return nil, fmt.Errorf("%w: canonicalizing the root: %w", ErrMalformed, err)
	}
	h := si.digestHash.New()
	h.Write(buf.Bytes())
	if subtle.ConstantTimeCompare(h.Sum(nil), si.digestValue) != 1 {
		return nil, fmt.Errorf("%w: digest of <%s ID=%q> does not match the signed DigestValue", ErrInvalidSignature, root.Tag, rootID)
	}
	canonical := bytes.Clone(buf.Bytes())
	signed := etree.NewDocument()
	signed.ReadSettings = etree.ReadSettings{PreserveDuplicateAttrs: true, MaxDepth: v.opts.MaxDepth + 2}
	if err := signed.ReadFromBytes(canonical); err != nil || signed.Root() == nil {
		// Cannot happen for output of our own canonicalizer; refuse rather than guess.
		return nil, fmt.Errorf("%w: canonical form does not re-parse: %v", ErrMalformed, err)
	}
	return &Verified{Root: signed.Root(), Canonical: canonical, Signer: ident}, nil
}

// c14nBufs holds the buffers canonical forms are written into to be hashed or
// checked, by the verifier and the signer alike; package-wide, so a Verifier made
// per request (a peer's forwarded package) shares them too.
var c14nBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuf() *bytes.Buffer { return c14nBufs.Get().(*bytes.Buffer) }

// putBuf keeps b for the next use unless a big document grew it beyond 4 MiB.
func putBuf(b *bytes.Buffer) {
	if b.Cap() <= 4<<20 {
		b.Reset()
		c14nBufs.Put(b)
	}
}

// parse refuses DTDs before parsing and then reads the document with duplicate
// attributes preserved (etree would otherwise silently keep the last one, while
// other XML stacks reject the document: a parser differential).
func (v *Verifier) parse(doc []byte) (*etree.Element, error) {
	if int64(len(doc)) > v.opts.MaxBytes {
		return nil, fmt.Errorf("%w: document of %d bytes exceeds %d", ErrLimit, len(doc), v.opts.MaxBytes)
	}
	if bytes.Contains(doc, []byte("<!DOCTYPE")) || bytes.Contains(doc, []byte("<!ENTITY")) {
		return nil, fmt.Errorf("%w: DOCTYPE and entity declarations are not accepted", ErrMalformed)
	}
	// A UTF-8 byte order mark (Windows tools write one) is not content; etree would
	// report it as text before the XML declaration.
	doc = bytes.TrimPrefix(doc, []byte("\xEF\xBB\xBF"))
	if err := precount(doc, v.opts.MaxElements, v.opts.MaxAttributes); err != nil {
		return nil, err
	}
	d := etree.NewDocument()
	d.ReadSettings = etree.ReadSettings{
		PreserveDuplicateAttrs: true,
		MaxDepth:               v.opts.MaxDepth,
		CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
			if strings.EqualFold(charset, "utf-8") {
				return input, nil
			}
			return nil, fmt.Errorf("encoding %q is not accepted, only UTF-8", charset)
		},
	}
	if err := d.ReadFromBytes(doc); err != nil {
		if errors.Is(err, etree.ErrMaxDepth) {
			return nil, fmt.Errorf("%w: nesting deeper than %d", ErrLimit, v.opts.MaxDepth)
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var root *etree.Element
	for i, t := range d.Child {
		switch t := t.(type) {
		case *etree.Element:
			if root != nil {
				return nil, fmt.Errorf("%w: more than one top-level element", ErrMalformed)
			}
			root = t
		case *etree.CharData:
			if !t.IsWhitespace() {
				return nil, fmt.Errorf("%w: text outside the root element", ErrMalformed)
			}
		case *etree.Comment:
		case *etree.ProcInst:
			if i != 0 || t.Target != "xml" {
				return nil, fmt.Errorf("%w: processing instruction <?%s?> is not accepted", ErrMalformed, t.Target)
			}
		default:
			return nil, fmt.Errorf("%w: %T outside the root element", ErrMalformed, t)
		}
	}
	if root == nil {
		return nil, fmt.Errorf("%w: no root element", ErrMalformed)
	}
	return root, nil
}

// walkState carries the tree checks through one pass over every element.
type walkState struct {
	opts     VerifyOptions
	elements int
	ids      map[string]int // values of ID attributes
	otherIDs []string       // values of Id/id/xml:id attributes (other tools' ID names)
	sigs     []*etree.Element
}

// checkTree enforces the limits and the document-wide rules in one pass and
// returns the only ds:Signature and the root's ID.
func (v *Verifier) checkTree(root *etree.Element) (*etree.Element, string, error) {
	w := &walkState{opts: v.opts, ids: map[string]int{}}
	if err := w.walk(root, 1, nil); err != nil {
		return nil, "", err
	}
	a := rootIDAttr(root)
	if a == nil || a.Value == "" {
		return nil, "", fmt.Errorf("%w: root element <%s> has no %s attribute", ErrMalformed, root.Tag, idAttributeName)
	}
	rootID := a.Value
	if w.ids[rootID] > 1 {
		return nil, "", fmt.Errorf("%w: ID %q occurs %d times", ErrMalformed, rootID, w.ids[rootID])
	}
	for _, id := range w.otherIDs {
		if id == rootID {
			return nil, "", fmt.Errorf("%w: another element carries an Id/id/xml:id equal to the root ID %q", ErrMalformed, rootID)
		}
	}
	switch {
	case len(w.sigs) == 0:
		return nil, "", fmt.Errorf("%w: no ds:Signature element", ErrNoSignature)
	case len(w.sigs) > 1:
		return nil, "", fmt.Errorf("%w: %d ds:Signature elements, exactly one is accepted", ErrInvalidSignature, len(w.sigs))
	case w.sigs[0].Parent() != root:
		return nil, "", fmt.Errorf("%w: ds:Signature is not a direct child of the root element", ErrInvalidSignature)
	}
	return w.sigs[0], rootID, nil
}

func (w *walkState) walk(el *etree.Element, depth int, scope []binding) error {
	w.elements++
	if w.elements > w.opts.MaxElements {
		return fmt.Errorf("%w: more than %d elements", ErrLimit, w.opts.MaxElements)
	}
	if depth > w.opts.MaxDepth {
		return fmt.Errorf("%w: nesting deeper than %d", ErrLimit, w.opts.MaxDepth)
	}
	if len(el.Attr) > w.opts.MaxAttributes {
		return fmt.Errorf("%w: element <%s> has %d attributes, more than %d", ErrLimit, el.Tag, len(el.Attr), w.opts.MaxAttributes)
	}
	for i, a := range el.Attr {
		for _, b := range el.Attr[:i] {
			if a.Space == b.Space && a.Key == b.Key {
				return fmt.Errorf("%w: duplicate attribute %s on <%s>", ErrMalformed, a.FullKey(), el.Tag)
			}
		}
		switch {
		case a.Space == "" && a.Key == "xmlns":
			scope = append(scope, binding{"", a.Value})
		case a.Space == "xmlns":
			scope = append(scope, binding{a.Key, a.Value})
		case a.Space == "" && a.Key == idAttributeName:
			w.ids[a.Value]++
			if w.ids[a.Value] > 1 {
				return fmt.Errorf("%w: duplicate ID %q", ErrMalformed, a.Value)
			}
		case (a.Space == "" && (a.Key == "Id" || a.Key == "id")) || (a.Space == "xml" && a.Key == "id"):
			w.otherIDs = append(w.otherIDs, a.Value)
		}
	}
	if el.Tag == "Signature" {
		uri, _ := lookupBinding(scope, el.Space)
		if uri == NamespaceDSig {
			w.sigs = append(w.sigs, el)
		}
	}
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.Element:
			if err := w.walk(t, depth+1, scope); err != nil {
				return err
			}
		case *etree.CharData, *etree.Comment:
		case *etree.ProcInst:
			return fmt.Errorf("%w: processing instruction <?%s?> is not accepted", ErrMalformed, t.Target)
		default:
			return fmt.Errorf("%w: %T inside <%s>", ErrMalformed, t, el.Tag)
		}
	}
	return nil
}

type binding struct{ prefix, uri string }

func lookupBinding(scope []binding, prefix string) (string, bool) {
	if prefix == "xml" {
		return c14n.XMLNamespace, true
	}
	for i := len(scope) - 1; i >= 0; i-- {
		if scope[i].prefix == prefix {
			return scope[i].uri, true
		}
	}
	return "", false
}

// sigInfo is the parsed, shape-checked content of the one ds:Signature.
type sigInfo struct {
	signedInfo  *etree.Element
	c14nMethod  c14n.Method
	sigAlg      sigAlg
	refMethod   c14n.Method
	digestHash  crypto.Hash
	digestValue []byte
	sigValue    []byte
	certs       [][]byte
}

const maxKeyInfoCerts = 8

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSignature, fmt.Sprintf(format, args...))
}

// dsChildren returns the element children of el, requiring each to be in the
// XMLDSig namespace and no non-whitespace text between them.
func dsChildren(el *etree.Element) ([]*etree.Element, error) {
	var out []*etree.Element
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.Element:
			if t.NamespaceURI() != NamespaceDSig {
				return nil, invalid("unexpected element <%s> in ds:%s", t.FullTag(), el.Tag)
			}
			out = append(out, t)
		case *etree.CharData:
			if !t.IsWhitespace() {
				return nil, invalid("unexpected text in ds:%s", el.Tag)
			}
		}
	}
	return out, nil
}

// dsText returns the text of a leaf element of the signature.
func dsText(el *etree.Element) (string, error) {
	var sb strings.Builder
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.CharData:
			sb.WriteString(t.Data)
		case *etree.Element:
			return "", invalid("unexpected element inside ds:%s", el.Tag)
		}
	}
	return sb.String(), nil
}

func decodeB64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r':
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.Strict().DecodeString(s)
}

func algorithm(el *etree.Element) string {
	for _, a := range el.Attr {
		if a.Space == "" && a.Key == "Algorithm" {
			return a.Value
		}
	}
	return ""
}

func expect(els []*etree.Element, i int, tag string) (*etree.Element, bool) {
	if i < len(els) && els[i].Tag == tag {
		return els[i], true
	}
	return nil, false
}

func parseSignature(sig *etree.Element, rootID string) (*sigInfo, error) {
	kids, err := dsChildren(sig)
	if err != nil {
		return nil, err
	}
	si := &sigInfo{}
	var ok bool
	if si.signedInfo, ok = expect(kids, 0, "SignedInfo"); !ok {
		return nil, invalid("ds:Signature must start with ds:SignedInfo")
	}
	sv, ok := expect(kids, 1, "SignatureValue")
	if !ok {
		return nil, invalid("ds:SignatureValue missing")
	}
	ki, ok := expect(kids, 2, "KeyInfo")
	if !ok {
		return nil, fmt.Errorf("%w: ds:KeyInfo with the signing certificate is required", ErrUntrustedSigner)
	}
	if len(kids) > 3 {
		return nil, invalid("ds:%s after ds:KeyInfo is not accepted (no ds:Object)", kids[3].Tag)
	}
	text, err := dsText(sv)
	if err != nil {
		return nil, err
	}
	if si.sigValue, err = decodeB64(text); err != nil || len(si.sigValue) == 0 {
		return nil, invalid("SignatureValue is not base64")
	}

	sik, err := dsChildren(si.signedInfo)
	if err != nil {
		return nil, err
	}
	cm, ok := expect(sik, 0, "CanonicalizationMethod")
	if !ok {
		return nil, invalid("ds:CanonicalizationMethod missing")
	}
	if si.c14nMethod, err = c14nOf(cm); err != nil {
		return nil, err
	}
	sm, ok := expect(sik, 1, "SignatureMethod")
	if !ok {
		return nil, invalid("ds:SignatureMethod missing")
	}
	if len(sm.ChildElements()) != 0 {
		return nil, invalid("ds:SignatureMethod parameters are not accepted")
	}
	if si.sigAlg, ok = signatureAlgs[algorithm(sm)]; !ok {
		return nil, invalid("signature method %q is not accepted", algorithm(sm))
	}
	if len(sik) != 3 || sik[2].Tag != "Reference" {
		return nil, invalid("exactly one ds:Reference is accepted, SignedInfo has %d elements after SignatureMethod", len(sik)-2)
	}
	if err := si.parseReference(sik[2], rootID); err != nil {
		return nil, err
	}

	kik, err := dsChildren(ki)
	if err != nil {
		return nil, err
	}
	for _, k := range kik {
		if k.Tag != "X509Data" {
			continue // KeyName, KeyValue: never trusted, ignored
		}
		xd, err := dsChildren(k)
		if err != nil {
			return nil, err
		}
		for _, x := range xd {
			if x.Tag != "X509Certificate" {
				continue
			}
			t, err := dsText(x)
			if err != nil {
				return nil, err
			}
			der, err := decodeB64(t)
			if err != nil {
				return nil, fmt.Errorf("%w: X509Certificate is not base64", ErrUntrustedSigner)
			}
			si.certs = append(si.certs, der)
		}
	}
	if len(si.certs) == 0 {
		return nil, fmt.Errorf("%w: no ds:X509Certificate in KeyInfo", ErrUntrustedSigner)
	}
	if len(si.certs) > maxKeyInfoCerts {
		// Chain building cost grows with every candidate; real chains are short.
		return nil, fmt.Errorf("%w: %d certificates in KeyInfo, at most %d", ErrUntrustedSigner, len(si.certs), maxKeyInfoCerts)
	}
	return si, nil
}

func c14nOf(el *etree.Element) (c14n.Method, error) {
	m, ok := c14n.MethodFor(algorithm(el))
	if !ok {
		return 0, invalid("canonicalization %q is not accepted", algorithm(el))
	}
	for _, t := range el.ChildElements() {
		// Exclusive C14N may carry an InclusiveNamespaces element; only an empty
		// PrefixList means the same thing as none.
		if m == c14n.Exclusive10 && t.Tag == "InclusiveNamespaces" && t.NamespaceURI() == c14n.AlgExclusive10 &&
			len(t.ChildElements()) == 0 && strings.TrimSpace(t.SelectAttrValue("PrefixList", "")) == "" {
			continue
		}
		return 0, invalid("canonicalization parameters <%s> are not accepted", t.FullTag())
	}
	return m, nil
}

func (si *sigInfo) parseReference(ref *etree.Element, rootID string) error {
	var uri *etree.Attr
	for i := range ref.Attr {
		if ref.Attr[i].Space == "" && ref.Attr[i].Key == "URI" {
			uri = &ref.Attr[i]
		}
	}
	if uri == nil {
		return invalid("ds:Reference without URI is not accepted")
	}
	if uri.Value != "" && uri.Value != "#"+rootID {
		return invalid("ds:Reference URI %q does not point at the root (ID %q)", uri.Value, rootID)
	}
	kids, err := dsChildren(ref)
	if err != nil {
		return err
	}
	i := 0
	si.refMethod = c14n.Inclusive10 // the default node-set to octets conversion
	if tr, ok := expect(kids, 0, "Transforms"); ok {
		i++
		ts, err := dsChildren(tr)
		if err != nil {
			return err
		}
		if len(ts) == 0 || len(ts) > 2 {
			return invalid("%d transforms, accepted are [enveloped] or [enveloped, C14N]", len(ts))
		}
		for j, t := range ts {
			if t.Tag != "Transform" {
				return invalid("unexpected <%s> in ds:Transforms", t.Tag)
			}
			alg := algorithm(t)
			if j == 0 {
				if alg != AlgEnveloped || len(t.ChildElements()) != 0 {
					return invalid("first transform must be enveloped-signature, got %q", alg)
				}
				continue
			}
			if si.refMethod, err = c14nOf(t); err != nil {
				return err
			}
		}
	} else {
		return invalid("the enveloped-signature transform is required")
	}
	dm, ok := expect(kids, i, "DigestMethod")
	if !ok {
		return invalid("ds:DigestMethod missing")
	}
	if si.digestHash, ok = digestAlgs[algorithm(dm)]; !ok || len(dm.ChildElements()) != 0 {
		return invalid("digest method %q is not accepted", algorithm(dm))
	}
	dv, ok := expect(kids, i+1, "DigestValue")
	if !ok || len(kids) != i+2 {
		return invalid("ds:Reference must end with ds:DigestValue")
	}
	text, err := dsText(dv)
	if err != nil {
		return err
	}
	if si.digestValue, err = decodeB64(text); err != nil || len(si.digestValue) != si.digestHash.Size() {
		return invalid("DigestValue is not a base64 %v digest", si.digestHash)
	}
	return nil
}

// certificates parses KeyInfo's certificates: the leaf is the first non-CA one
// (xmlsec1 may write the chain in any order), the rest are intermediates.
func (si *sigInfo) certificates() (*x509.Certificate, []*x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, der := range si.certs {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: KeyInfo certificate does not parse: %w", ErrUntrustedSigner, err)
		}
		certs = append(certs, c)
	}
	li := 0
	for i, c := range certs {
		if !c.IsCA {
			li = i
			break
		}
	}
	leaf := certs[li]
	var inter []*x509.Certificate
	for i, c := range certs {
		if i != li {
			inter = append(inter, c)
		}
	}
	return leaf, inter, nil
}

func checkSignatureValue(leaf *x509.Certificate, si *sigInfo, signedInfo []byte) error {
	h := si.sigAlg.hash.New()
	h.Write(signedInfo)
	sum := h.Sum(nil)
	switch pub := leaf.PublicKey.(type) {
	case *rsa.PublicKey:
		if si.sigAlg.kind != algKindRSA {
			return invalid("signature method does not match the RSA key")
		}
		if pub.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA key of %d bits, need >= 2048", ErrUntrustedSigner, pub.N.BitLen())
		}
		if err := rsa.VerifyPKCS1v15(pub, si.sigAlg.hash, sum, si.sigValue); err != nil {
			return invalid("signature value does not verify with the certificate's key")
		}
	case *ecdsa.PublicKey:
		if si.sigAlg.kind != algKindECDSA {
			return invalid("signature method does not match the ECDSA key")
		}
		n := (pub.Curve.Params().BitSize + 7) / 8
		if len(si.sigValue) != 2*n {
			return invalid("ECDSA signature value has %d bytes, want %d (raw r||s)", len(si.sigValue), 2*n)
		}
		r := new(big.Int).SetBytes(si.sigValue[:n])
		s := new(big.Int).SetBytes(si.sigValue[n:])
		if !ecdsa.Verify(pub, sum, r, s) {
			return invalid("signature value does not verify with the certificate's key")
		}
	default:
		return fmt.Errorf("%w: unsupported key type %T", ErrUntrustedSigner, pub)
	}
	return nil
}
