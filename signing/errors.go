package signing

import (
	"crypto/x509"
	"errors"

	"github.com/beevik/etree"
)

// Sentinel errors at the package boundary. Every error Verify returns wraps exactly
// one of them, so callers (the HTTP intake) can map them to stable problem types
// with errors.Is.
var (
	// ErrMalformed: the bytes are not a document we are willing to look at
	// (not well-formed, DOCTYPE, duplicate attributes or IDs, missing root ID, ...).
	ErrMalformed = errors.New("signing: malformed document")
	// ErrNoSignature: the document carries no ds:Signature at all.
	ErrNoSignature = errors.New("signing: no signature")
	// ErrInvalidSignature: a signature is present but it is not of the one accepted
	// shape, or its digest or signature value does not match.
	ErrInvalidSignature = errors.New("signing: invalid signature")
	// ErrUntrustedSigner: the signature may be intact, but the certificate is not
	// trusted for any of the requested roles (unknown, expired, revoked, wrong key usage).
	ErrUntrustedSigner = errors.New("signing: untrusted signer")
	// ErrLimit: the document exceeds a configured limit (bytes, depth, elements, attributes).
	ErrLimit = errors.New("signing: limit exceeded")
)

// PresentedError is an error about a document's signer that carries the
// certificate the document presented (its KeyInfo's leaf), for the log line of
// a refusal: an operator setting up a new peer or portal tells a certificate
// missing from the trust store from a revoked, expired or misnamed one by it.
// The certificate is the document's claim, not checked (the signature may not
// have been either). errors.Is sees the wrapped Err.
type PresentedError struct {
	Certificate *x509.Certificate
	Err         error
}

func (e *PresentedError) Error() string { return e.Err.Error() }
func (e *PresentedError) Unwrap() error { return e.Err }

// Presented returns the certificate err carries (PresentedError), nil if none.
func Presented(err error) *x509.Certificate {
	var pe *PresentedError
	if errors.As(err, &pe) {
		return pe.Certificate
	}
	return nil
}

// Role is the kind of party a certificate is trusted for.
type Role string

// The roles of the trust store. RoleGateway holds gateway certificates that sign
// receipts (our own, for offline verification).
const (
	RolePortal  Role = "portal"
	RolePeer    Role = "peer"
	RoleOffice  Role = "office"
	RoleGateway Role = "gateway"
)

// Roles lists every role in the order Verify tries them when none is given.
func Roles() []Role { return []Role{RolePortal, RolePeer, RoleOffice, RoleGateway} }

// Dir returns the role's subdirectory of the trust directory ("" for an unknown role):
// portals, peers, offices, gateways.
func (r Role) Dir() string {
	switch r {
	case RolePortal:
		return "portals"
	case RolePeer:
		return "peers"
	case RoleOffice:
		return "offices"
	case RoleGateway:
		return "gateways"
	}
	return ""
}

// Identity is who signed: the certificate's Subject CommonName is the client id
// (for a portal it must equal the package's Absender; the caller checks that).
type Identity struct {
	ID          string
	Role        Role
	Certificate *x509.Certificate
}

// Verified is the outcome of a successful verification.
type Verified struct {
	// Root is re-parsed from the canonical bytes that were digested (the signed root
	// without its ds:Signature). Nothing outside it is authenticated.
	Root *etree.Element
	// Canonical is exactly the digested byte sequence Root was parsed from.
	Canonical []byte
	Signer    Identity
}
