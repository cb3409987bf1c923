package broker

import (
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/submission"
)

var _ ReceiptSigner = GatewaySigner{}

// GatewaySigner issues the gateway's receipts with its signing key.
type GatewaySigner struct {
	Signer    *signing.Signer
	GatewayID string
}

func (g GatewaySigner) receipt(kind signing.ReceiptKind, s *submission.Submission) signing.Receipt {
	return signing.Receipt{
		Kind: kind, SubmissionID: s.ID, MessageID: s.MessageID, Sender: s.Sender, LeikaKey: s.LeikaKey,
		OfficeID: s.OfficeID, OfficeName: s.OfficeName, GatewayID: g.GatewayID,
		Time: s.ReceivedAt, PackageSHA256: s.PackageSHA256,
	}
}

// SignIntake signs the Eingangsbestaetigung: the gateway received this package.
// It names the channel the package will be delivered on.
func (g GatewaySigner) SignIntake(s *submission.Submission) ([]byte, error) {
	r := g.receipt(signing.KindEingang, s)
	if t, ok := s.CurrentTarget(); ok {
		r.Channel = t.Channel
	}
	return g.Signer.SignReceipt(r)
}

// SignDelivery signs the Zustellbestaetigung: the office's system confirmed receipt.
func (g GatewaySigner) SignDelivery(s *submission.Submission, channel string, c submission.Confirmation) ([]byte, error) {
	r := g.receipt(signing.KindZustellung, s)
	r.Time = c.At
	r.DeliveryID, r.Channel, r.Receiver = s.DeliveryID, channel, c.Receiver
	if r.Receiver == "" {
		r.Receiver = s.OfficeID
	}
	return g.Signer.SignReceipt(r)
}
