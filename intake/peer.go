package intake

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/submission"
)

// Errors of a forwarded package (Portalverbund).
var (
	// ErrLoop: the package has been at this gateway already, or would go back to a
	// gateway it passed.
	ErrLoop = errors.New("intake: forwarding loop")
	// ErrHopLimit: the package has passed as many gateways as allowed.
	ErrHopLimit = errors.New("intake: too many forwarding hops")
	// ErrSenderNotVouched: the package is not signed by the certificate the
	// forwarding gateway named, or by another sender than it named.
	ErrSenderNotVouched = errors.New("intake: the package's signer is not the one the forwarding gateway vouched for")
)

// Forwarded is a package a peer gateway forwarded, as its verified envelope says.
type Forwarded struct {
	// Package is the portal's signed package, exactly as the portal sent it.
	Package []byte
	// Sender and SenderCert are the portal and its signing certificate as the
	// forwarding gateway verified them. The portal's certificate authority need not be
	// trusted here: the package's own signature is checked against exactly this
	// certificate, and the peer's signature on the envelope vouches for it.
	Sender     string
	SenderCert *x509.Certificate
	// MessageID and LeikaKey are the envelope's word on the package it carries
	// (its NachrichtID and LeiKa key). They must be the package's own: the
	// forwarding gateway asks about the package's status, and its operator looks
	// for it, by what its envelope said (ErrEnvelopeMismatch).
	MessageID, LeikaKey string
	// Origin names the forwarding gateway and the chain of gateways passed so far.
	Origin submission.Origin
	// Self is this gateway's id; MaxHops bounds the chain (this gateway included).
	Self    string
	MaxHops int
	// NextPeer names the peer gateway a place in another state goes to from here
	// (by its ARS), so a package that would go back into the chain is refused now,
	// while the forwarding gateway waits for the answer. nil: no such check here (the
	// peer adapter still refuses to forward into the chain).
	NextPeer func(ars string) (gatewayID string, ok bool)
	// Parts are the attachments the package references (Referenz="cid:..."), as
	// the forwarding gateway sent them after the envelope; nil for a package
	// with inline attachments only.
	Parts Parts
}

// SubmitForwarded is Submit for a package a peer gateway forwarded: the package's
// own signature is verified (against the certificate the peer vouched for), only the
// verified element is read, the Absender must be the vouched sender, and the package
// is routed in this gateway's directory and received durably with its Origin. The
// idempotency key is the ORIGINAL sender and NachrichtID, so a repeated hop gets the
// first receipt and never makes a second submission.
func (p *Pipeline) SubmitForwarded(ctx context.Context, f Forwarded) (*broker.Received, error) {
	chain := f.Origin.Gateways()
	if slices.Contains(chain, f.Self) {
		return nil, fmt.Errorf("%w: the package passed this gateway (%s) already: %v", ErrLoop, f.Self, chain)
	}
	if f.MaxHops > 0 && len(chain)+1 > f.MaxHops {
		return nil, fmt.Errorf("%w: the package passed %d gateways already (at most %d)", ErrHopLimit, len(chain), f.MaxHops)
	}
	// The vouched certificate is the only trust anchor for this package. Set up
	// before the slot: a slot is for the CPU-heavy part only (slots.go).
	if f.SenderCert == nil {
		return nil, fmt.Errorf("%w: no certificate", ErrSenderNotVouched)
	}
	ts := signing.NewTrustStore()
	if err := ts.Add(signing.RolePortal, f.SenderCert); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSenderNotVouched, err)
	}
	opts := signing.VerifyOptions{}
	if p.Verifier != nil {
		opts = p.Verifier.Options()
	}
	// The certificate must have been valid when the first gateway took the package
	// and gave the portal its 201, not now: a hop comes later when the peer was down
	// or the package held and redelivered, and an application accepted then must not
	// become undeliverable because the portal's certificate expired meanwhile. The
	// time is the first station of the way, the peer's word like the certificate
	// itself; never later than this gateway's clock.
	if first := f.Origin.Chain; len(first) > 0 && !first[0].At.IsZero() {
		clock := opts.Now
		if clock == nil {
			clock = time.Now
		}
		if at := first[0].At; at.Before(clock()) {
			opts.Now = func() time.Time { return at }
		}
	}
	verifier := signing.NewVerifier(ts, opts)
	var v *signing.Verified
	var pk *paket.Paket
	err := p.checkInSlot(ctx, func() (err error) {
		doc, err := paket.ScanNormalized(f.Package, p.Limits) // as SubmitParts
		if err != nil {
			return err
		}
		v, err = verifier.Verify(doc, signing.RolePortal)
		if err != nil {
			if errors.Is(err, signing.ErrUntrustedSigner) {
				return fmt.Errorf("%w: %w", ErrSenderNotVouched, err)
			}
			return err
		}
		pk, err = paket.Parse(v.Root, p.Limits)
		return err
	})
	if err != nil {
		return nil, err
	}
	if pk.Kopf.Absender != v.Signer.ID || pk.Kopf.Absender != f.Sender {
		return nil, fmt.Errorf("%w: Absender %q, certificate %q, vouched sender %q", ErrSenderMismatch, pk.Kopf.Absender, v.Signer.ID, f.Sender)
	}
	if pk.Kopf.NachrichtID != f.MessageID || pk.Kopf.Leistung.Schluessel != f.LeikaKey {
		return nil, fmt.Errorf("%w: the envelope names NachrichtID %q and LeiKa key %q, the package %q and %q",
			ErrEnvelopeMismatch, f.MessageID, f.LeikaKey, pk.Kopf.NachrichtID, pk.Kopf.Leistung.Schluessel)
	}
	// Onward to a third state only if that closes no loop and stays within the limit.
	onPeer := func(route *routing.Route) error {
		if f.MaxHops > 0 && len(chain)+2 > f.MaxHops {
			return fmt.Errorf("%w: forwarding on to Land %s would make %d hops (at most %d)", ErrHopLimit, route.Peer.Land, len(chain)+2, f.MaxHops)
		}
		if f.NextPeer != nil && route.Area != nil {
			if next, ok := f.NextPeer(route.Area.ARS); ok && slices.Contains(chain, next) {
				return fmt.Errorf("%w: the office for %s is in Land %s, whose gateway %s passed the package on already (chain %v)",
					ErrLoop, route.Area.Name, route.Peer.Land, next, chain)
			}
		}
		return nil
	}
	origin := f.Origin
	return p.receive(ctx, pk, v.Signer, f.Package, ApplicationDigest(v.Canonical), onPeer, &origin, f.Parts)
}
