package broker

import (
	"fmt"
	"time"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/submission"
)

var _ ReceiptSigner = GatewaySigner{}

// GatewaySigner issues the gateway's receipts with its signing key.
type GatewaySigner struct {
	Signer    *signing.Signer
	GatewayID string
	// Now is the clock the certificate's validity is checked by (Valid); nil:
	// time.Now.
	Now func() time.Time
}

// Valid says why the signing certificate is outside its validity now
// (ErrGatewayCertificate), or nil. The start refuses such a certificate, but a
// gateway runs for longer than its certificate: from its end every receipt it
// signed verified nowhere, and the 201s went on without a word.
func (g GatewaySigner) Valid() error {
	now := time.Now()
	if g.Now != nil {
		now = g.Now()
	}
	c := g.Signer.Certificate()
	// The chain after the leaf goes into every receipt's KeyInfo: an intermediate
	// that ends makes verifiers anchoring on the root refuse them as well.
	for _, ca := range g.Signer.Chain()[1:] {
		if now.After(ca.NotAfter) {
			return fmt.Errorf("%w: the chain certificate %q of the gateway certificate ended at %s: receipts signed with it verify nowhere; install the CA's current chain (pki.gateway_cert) and restart the gateway",
				ErrGatewayCertificate, ca.Subject.CommonName, ca.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	switch {
	case now.After(c.NotAfter):
		return fmt.Errorf("%w: the certificate %q ended at %s: receipts signed with it verify nowhere; install a renewed certificate (pki.gateway_cert) and restart the gateway",
			ErrGatewayCertificate, c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return fmt.Errorf("%w: the certificate %q is valid only from %s (now %s): check the machine's clock",
			ErrGatewayCertificate, c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

func (g GatewaySigner) receipt(kind signing.ReceiptKind, s *submission.Submission) signing.Receipt {
	return signing.Receipt{
		Kind: kind, SubmissionID: s.ID, MessageID: s.MessageID, Sender: s.Sender, LeikaKey: s.LeikaKey,
		OfficeID: s.OfficeID, OfficeName: s.OfficeName, GatewayID: g.GatewayID,
		Time: s.ReceivedAt, PackageSHA256: s.PackageSHA256,
	}
}

// SignIntake signs the Eingangsbestaetigung: the gateway received this package.
// It names the channel the package will be delivered on. Outside the
// certificate's validity it signs nothing (ErrGatewayCertificate): the package
// is not accepted, rather than accepted with a receipt its relying parties
// must refuse.
func (g GatewaySigner) SignIntake(s *submission.Submission) ([]byte, error) {
	if err := g.Valid(); err != nil {
		return nil, err
	}
	r := g.receipt(signing.KindEingang, s)
	if t, ok := s.CurrentTarget(); ok {
		r.Channel = t.Channel
	}
	return g.Signer.SignReceipt(r)
}

// SignDelivery signs the Zustellbestaetigung: the office's system confirmed receipt.
// It signs outside the certificate's validity too: the office has the package
// by then, and a delivery that could not be recorded would be delivered again;
// such a receipt does not verify (docs/signing.md, "The gateway certificate
// ends while the gateway runs").
func (g GatewaySigner) SignDelivery(s *submission.Submission, channel string, c submission.Confirmation) ([]byte, error) {
	r := g.receipt(signing.KindZustellung, s)
	r.Time = c.At
	r.DeliveryID, r.Channel, r.Receiver = s.DeliveryID, channel, c.Receiver
	if r.Receiver == "" {
		r.Receiver = s.OfficeID
	}
	return g.Signer.SignReceipt(r)
}

// CanSign says why an Eingangsbestaetigung cannot be signed now
// (ErrGatewayCertificate: GatewaySigner.Valid), or nil: intake asks before it
// routes a new package and reads its parts, and readiness says it. A signer
// without such a check always can.
func (b *Broker) CanSign() error {
	if v, ok := b.signer.(interface{ Valid() error }); ok {
		return v.Valid()
	}
	return nil
}
