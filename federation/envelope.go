// Package federation is the Portalverbund: gateways of different states hand each
// other application packages. It holds the wire format (the signed forwarding
// envelope and the signed status question and answer, with their XSD), the client a
// forwarding gateway uses, the HTTP handler of the receiving gateway, and the tracker
// that asks the peers about forwarded packages until their office decided.
//
// Trust: every document is an enveloped XMLDSig signed by the gateway that sends it;
// the receiver accepts it only from a certificate its trust store holds for the peer
// role (signing.RolePeer) whose CommonName is a configured peer, and only if its
// time is within the configured clock skew. See docs/federation.md.
package federation

import (
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
	"github.com/google/uuid"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/store"
)

// Namespace is the XML namespace of the Portalverbund documents.
const Namespace = "urn:amtsbote:weiterleitung:1"

// XSD is the schema of the three documents, embedded so the API can publish it.
//
//go:embed weiterleitung-v1.xsd
var XSD []byte

// XSDFileName is the name under which XSD is published.
const XSDFileName = "weiterleitung-v1.xsd"

// MaxHops bounds the chain of gateways one package may pass (the first gateway
// included). Germany has 16 states: a package needs one hop, at most two when a
// state's gateway forwards for a region; more is a misconfigured directory.
const MaxHops = 4

// Paths of the federation endpoint, under the peer's base URL.
const (
	PathPrefix  = "/federation/v1"
	PathForward = PathPrefix + "/weiterleitungen"
	PathStatus  = PathPrefix + "/status"
	PathSchema  = PathPrefix + "/schema/" + XSDFileName
	ContentType = "application/xml"
)

// ErrMalformed: a document that is not of the one accepted shape.
var ErrMalformed = errors.New("federation: malformed document")

// Hop is one gateway on the package's way.
type Hop struct {
	Gateway      string
	SubmissionID string
	At           time.Time
}

// Envelope is the forwarding envelope (Weiterleitung) as the code sees it.
type Envelope struct {
	ForwardingID  string    // stable for every attempt: the forwarder's delivery id
	From, To      string    // gateway ids
	At            time.Time // when this attempt was signed
	Sender        string    // the portal that signed the package
	MessageID     string    // its NachrichtID
	LeikaKey      string
	AreaARS       string // optional
	ReceiptSHA256 string // of the first gateway's Eingangsbestaetigung
	Chain         []Hop  // first gateway first; the last is From
	SenderCert    *x509.Certificate
	Package       []byte // the portal's signed package, unchanged
}

// PackageSHA256 is the hex digest of the package.
func (e *Envelope) PackageSHA256() string { return hexSHA(e.Package) }

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Gateways lists the chain's gateway ids.
func (e *Envelope) Gateways() []string {
	out := make([]string, len(e.Chain))
	for i, h := range e.Chain {
		out[i] = h.Gateway
	}
	return out
}

func newDoc(root string) *etree.Element {
	el := etree.NewElement(root)
	el.CreateAttr("xmlns", Namespace)
	el.CreateAttr("ID", "_"+uuid.NewString())
	el.CreateAttr("Version", "1")
	return el
}

func add(parent *etree.Element, tag, text string) *etree.Element {
	c := parent.CreateElement(tag)
	c.SetText(text)
	return c
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// clip keeps s within n runes, free of control characters and of runes XML cannot
// carry (U+FFFE, U+FFFF), and trimmed (schema type Text). Cleaned first, then
// trimmed, so what the reader trims is gone here already: a text of nothing but
// such characters comes out empty, and a writer leaves the optional element out
// (an empty one would make the receiver refuse the whole document).
func clip(s string, n int) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || !xmlChar(r) {
			return ' '
		}
		return r
	}, s))
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n-1])) + "…"
}

// xmlChar is XML 1.0's Char production (a Go string's invalid bytes are
// utf8.RuneError, U+FFFD, which is one).
func xmlChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// addText adds an optional Text element: s cleaned and clipped to n runes, or
// nothing when nothing is left of it.
func addText(parent *etree.Element, tag, s string, n int) *etree.Element {
	s = clip(s, n)
	if s == "" {
		return nil
	}
	return add(parent, tag, s)
}

// Element builds the unsigned envelope.
func (e *Envelope) Element() (*etree.Element, error) {
	if len(e.Chain) == 0 || e.Chain[len(e.Chain)-1].Gateway != e.From {
		return nil, fmt.Errorf("%w: the chain must end with the forwarding gateway %s", ErrMalformed, e.From)
	}
	if e.SenderCert == nil || len(e.Package) == 0 {
		return nil, fmt.Errorf("%w: sender certificate and package are required", ErrMalformed)
	}
	root := newDoc("Weiterleitung")
	add(root, "WeiterleitungID", e.ForwardingID)
	add(root, "Von", e.From)
	add(root, "An", e.To)
	add(root, "Zeitpunkt", ts(e.At))
	add(root, "Absender", e.Sender)
	add(root, "NachrichtID", e.MessageID)
	add(root, "LeiKaSchluessel", e.LeikaKey)
	if e.AreaARS != "" {
		add(root, "Gebiet", e.AreaARS)
	}
	add(root, "EingangsbestaetigungSHA256", e.ReceiptSHA256)
	weg := root.CreateElement("Weg")
	for _, h := range e.Chain {
		st := weg.CreateElement("Station")
		add(st, "Gateway", h.Gateway)
		add(st, "EinreichungID", h.SubmissionID)
		add(st, "Zeitpunkt", ts(h.At))
	}
	add(root, "Absenderzertifikat", base64.StdEncoding.EncodeToString(e.SenderCert.Raw))
	p := add(root, "Antragspaket", base64.StdEncoding.EncodeToString(e.Package))
	p.CreateAttr("SHA256", e.PackageSHA256())
	p.CreateAttr("Groesse", strconv.Itoa(len(e.Package)))
	return root, nil
}

// Sign builds and signs the envelope.
func (e *Envelope) Sign(s *signing.Signer) ([]byte, error) {
	el, err := e.Element()
	if err != nil {
		return nil, err
	}
	return s.Sign(el)
}

// reader walks the child elements of a verified root in order, strictly.
type reader struct {
	kids []*etree.Element
	i    int
	path string
	err  error
}

func newReader(el *etree.Element, path string) *reader {
	r := &reader{path: path}
	for _, c := range el.ChildElements() {
		if c.Space == "ds" || c.NamespaceURI() == signing.NamespaceDSig {
			continue // the verifier removed it; defensive
		}
		r.kids = append(r.kids, c)
	}
	return r
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s: %s", ErrMalformed, r.path, fmt.Sprintf(format, args...))
	}
}

func (r *reader) peek(tag string) bool {
	return r.err == nil && r.i < len(r.kids) && r.kids[r.i].Tag == tag && r.kids[r.i].NamespaceURI() == Namespace
}

func (r *reader) elem(tag string) *etree.Element {
	if !r.peek(tag) {
		got := "the end"
		if r.i < len(r.kids) {
			got = "<" + r.kids[r.i].Tag + ">"
		}
		r.fail("want <%s>, found %s", tag, got)
		return nil
	}
	e := r.kids[r.i]
	r.i++
	return e
}

func (r *reader) text(tag string, max int) string {
	e := r.elem(tag)
	if e == nil {
		return ""
	}
	if len(e.ChildElements()) > 0 {
		r.fail("<%s> must hold text only", tag)
		return ""
	}
	t := strings.TrimSpace(e.Text())
	if t == "" || utf8.RuneCountInString(t) > max {
		r.fail("<%s> must hold 1 to %d characters", tag, max)
	}
	return t
}

func (r *reader) opt(tag string, max int) string {
	if !r.peek(tag) {
		return ""
	}
	return r.text(tag, max)
}

func (r *reader) time(tag string) time.Time {
	s := r.text(tag, 64)
	if r.err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		r.fail("<%s>: %v", tag, err)
	}
	return t.UTC()
}

func (r *reader) end() {
	if r.err == nil && r.i < len(r.kids) {
		r.fail("unexpected <%s>", r.kids[r.i].Tag)
	}
}

func checkRoot(root *etree.Element, tag string) error {
	if root == nil || root.Tag != tag || root.NamespaceURI() != Namespace {
		name := "nothing"
		if root != nil {
			name = "<" + root.FullTag() + ">"
		}
		return fmt.Errorf("%w: want <%s> in %s, found %s", ErrMalformed, tag, Namespace, name)
	}
	if v := root.SelectAttrValue("Version", ""); v != "1" {
		return fmt.Errorf("%w: <%s> Version %q, want 1", ErrMalformed, tag, v)
	}
	return nil
}

// ParseEnvelope reads an envelope from a verified root (signing.Verified.Root): only
// what the forwarding gateway signed.
func ParseEnvelope(root *etree.Element) (*Envelope, error) {
	if err := checkRoot(root, "Weiterleitung"); err != nil {
		return nil, err
	}
	r := newReader(root, "Weiterleitung")
	e := &Envelope{}
	e.ForwardingID = r.text("WeiterleitungID", 500)
	e.From = r.text("Von", 200)
	e.To = r.text("An", 200)
	e.At = r.time("Zeitpunkt")
	e.Sender = r.text("Absender", 500)
	e.MessageID = r.text("NachrichtID", 500)
	e.LeikaKey = r.text("LeiKaSchluessel", 14)
	e.AreaARS = r.opt("Gebiet", 12)
	e.ReceiptSHA256 = r.text("EingangsbestaetigungSHA256", 64)
	if weg := r.elem("Weg"); weg != nil {
		wr := newReader(weg, "Weiterleitung/Weg")
		for wr.peek("Station") {
			st := newReader(wr.elem("Station"), "Weiterleitung/Weg/Station")
			h := Hop{Gateway: st.text("Gateway", 200), SubmissionID: st.text("EinreichungID", 500), At: st.time("Zeitpunkt")}
			st.end()
			if st.err != nil {
				return nil, st.err
			}
			e.Chain = append(e.Chain, h)
		}
		wr.end()
		if wr.err != nil {
			return nil, wr.err
		}
	}
	certB64 := r.text("Absenderzertifikat", 64<<10)
	pe := r.elem("Antragspaket")
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	if len(e.Chain) == 0 || len(e.Chain) > 2*MaxHops {
		return nil, fmt.Errorf("%w: Weg must list 1 to %d gateways", ErrMalformed, 2*MaxHops)
	}
	if e.Chain[len(e.Chain)-1].Gateway != e.From {
		return nil, fmt.Errorf("%w: the last station of Weg is %s, not the forwarding gateway %s", ErrMalformed, e.Chain[len(e.Chain)-1].Gateway, e.From)
	}
	if !store.IsHexDigest(e.ReceiptSHA256) {
		return nil, fmt.Errorf("%w: EingangsbestaetigungSHA256 is not a lower-case hex SHA-256", ErrMalformed)
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(certB64), ""))
	if err != nil {
		return nil, fmt.Errorf("%w: Absenderzertifikat: %v", ErrMalformed, err)
	}
	if e.SenderCert, err = x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("%w: Absenderzertifikat: %v", ErrMalformed, err)
	}
	if len(pe.ChildElements()) > 0 {
		return nil, fmt.Errorf("%w: Antragspaket must hold base64 text only", ErrMalformed)
	}
	e.Package, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(pe.Text()), ""))
	if err != nil || len(e.Package) == 0 {
		return nil, fmt.Errorf("%w: Antragspaket is not base64: %v", ErrMalformed, err)
	}
	if got := e.PackageSHA256(); pe.SelectAttrValue("SHA256", "") != got {
		return nil, fmt.Errorf("%w: Antragspaket differs from its SHA256 attribute", ErrMalformed)
	}
	if pe.SelectAttrValue("Groesse", "") != strconv.Itoa(len(e.Package)) {
		return nil, fmt.Errorf("%w: Antragspaket differs from its Groesse attribute", ErrMalformed)
	}
	return e, nil
}

// SenderCertPEM returns the portal certificate as PEM (for a pinned trust store).
func (e *Envelope) SenderCertPEM() []byte { return signing.CertPEM(e.SenderCert) }
