// Package peer is the channel to another state's gateway (Portalverbund): one attempt
// forwards the portal's exact signed package in a forwarding envelope signed by this
// gateway (federation.Envelope) and takes the peer's signed Eingangsbestaetigung as
// the answer. From then on the peer owns the delivery; the package is "forwarded"
// here and the peer's events come back through federation.Tracker.
//
// Failures are classified for the broker: an unreachable peer, a 5xx or a clock-skew
// refusal are transient (retried with backoff, then held, visible to operators); a
// refusal (unknown service there, no office, a loop) is permanent, and the peer's
// reason is the public reason the portal reads.
package peer

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/internal/repeatlimit"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/beevik/etree"
)

// Records is what the adapter needs of the broker (broker.Broker implements it): the
// record of the submission it forwards (its area, its origin when it came from
// another peer) and a way to record the peer's receipt before Deliver returns.
type Records interface {
	Submission(id string) (*submission.Submission, error)
	IntakeReceipt(id string) ([]byte, error)
	RecordForwarded(id string, f submission.Forward, peerReceipt []byte) (*submission.Submission, error)
}

// Options configure the adapter.
type Options struct {
	Self    string // this gateway's id
	Client  *federation.Client
	Peers   []config.Peer
	Records Records // nil: the Delivery alone (tests of the contract)
	Logger  *slog.Logger
	// SignerCert finds the portal's certificate in the signed package (default
	// federation.SignerCertificate).
	SignerCert func(pkg []byte) (*x509.Certificate, error)
}

// Adapter forwards packages to peer gateways.
type Adapter struct {
	opt  Options
	gate adapters.Gate
	// clockLog says a peer's receipt dated outside its clock_skew once an
	// hour per peer: a clock that is off stays off for a while, and every
	// forwarding meanwhile would say it again.
	clockLog repeatlimit.Keyed[string]
}

// New returns the adapter.
func New(o Options) (*Adapter, error) {
	if o.Client == nil || o.Self == "" {
		return nil, errors.New("peer: client and own gateway id are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SignerCert == nil {
		o.SignerCert = federation.SignerCertificate
	}
	return &Adapter{opt: o, clockLog: repeatlimit.Keyed[string]{Every: time.Hour}}, nil
}

// Channel implements adapters.Adapter.
func (a *Adapter) Channel() string { return channel.Peer }

// Close implements adapters.Adapter.
func (a *Adapter) Close() error {
	a.gate.Close()
	return nil
}

// PeerFor chooses the peer for a place: the one serving the longest prefix of its
// ARS, else the one serving the Land of the peer office ("peer-<Land>").
func PeerFor(peers []config.Peer, ars, officeID string) (config.Peer, bool) {
	c := config.Config{Peers: peers}
	if ars != "" {
		if p, ok := c.PeerFor(ars); ok {
			return p, true
		}
	}
	if land, ok := strings.CutPrefix(officeID, "peer-"); ok {
		for _, p := range peers {
			if slices.Contains(p.Lands, land) {
				return p, true
			}
		}
	}
	return config.Peer{}, false
}

// target names the peer of one delivery: the Target's endpoint when the
// configuration gives one, else the configured peer serving the place.
func (a *Adapter) target(d adapters.Delivery, s *submission.Submission) (config.Peer, error) {
	if d.Target.Endpoint != "" {
		id := d.Target.Params["peer"]
		if p, ok := a.opt.Client.Trust.Peer(id); ok {
			p.BaseURL = d.Target.Endpoint
			return p, nil
		}
		return config.Peer{}, adapters.Permanent("the peer of this channel is not configured", fmt.Errorf("params.peer %q is no configured peer", id))
	}
	ars := ""
	if s != nil {
		ars = s.AreaARS
	}
	p, ok := PeerFor(a.opt.Peers, ars, d.OfficeID)
	if !ok {
		return config.Peer{}, adapters.Permanent("no peer gateway is configured for the place", fmt.Errorf("no peer for %s (ARS %q)", d.OfficeID, ars))
	}
	return p, nil
}

// Deliver implements adapters.Adapter: one hop.
func (a *Adapter) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, error) {
	if err := a.gate.Begin(ctx, "peer"); err != nil {
		return adapters.Confirmation{}, err
	}
	defer a.gate.Leave()
	var s *submission.Submission
	if a.opt.Records != nil {
		var err error
		if s, err = a.opt.Records.Submission(d.SubmissionID); err != nil {
			return adapters.Confirmation{}, fmt.Errorf("peer: read submission: %w", err)
		}
	}
	p, err := a.target(d, s)
	if err != nil {
		return adapters.Confirmation{}, err
	}
	env := &federation.Envelope{ForwardingID: d.ID, Sender: d.Sender, MessageID: d.MessageID, LeikaKey: d.LeikaKey}
	var chain []federation.Hop
	receivedAt := d.CreatedAt
	if s != nil {
		env.AreaARS = s.AreaARS
		receivedAt = s.ReceivedAt
		if s.Origin != nil {
			for _, h := range s.Origin.Chain {
				chain = append(chain, federation.Hop{Gateway: h.Gateway, SubmissionID: h.SubmissionID, At: h.At})
			}
			env.ReceiptSHA256 = s.Origin.ReceiptSHA256
		} else if r, err := a.opt.Records.IntakeReceipt(s.ID); err == nil {
			env.ReceiptSHA256 = hexSHA(r)
		} else {
			return adapters.Confirmation{}, fmt.Errorf("peer: read intake receipt: %w", err)
		}
	}
	if env.ReceiptSHA256 == "" {
		env.ReceiptSHA256 = hexSHA([]byte(d.ID)) // no record (contract tests): a stable stand-in
	}
	chain = append(chain, federation.Hop{Gateway: a.opt.Self, SubmissionID: d.SubmissionID, At: receivedAt})
	for _, h := range chain {
		if h.Gateway == p.ID {
			return adapters.Confirmation{}, adapters.Permanent(fmt.Sprintf("forwarding loop: gateway %s passed this package on already", p.ID),
				fmt.Errorf("chain %v", env.Gateways()))
		}
	}
	if len(chain)+1 > federation.MaxHops {
		return adapters.Confirmation{}, adapters.Permanent(fmt.Sprintf("too many forwarding hops (at most %d gateways)", federation.MaxHops), nil)
	}
	env.Chain = chain
	rc, err := d.Package(ctx)
	if err != nil {
		return adapters.Confirmation{}, fmt.Errorf("peer: open package: %w", err)
	}
	pkg, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return adapters.Confirmation{}, fmt.Errorf("peer: read package: %w", err)
	}
	if env.SenderCert, err = a.opt.SignerCert(pkg); err != nil {
		return adapters.Confirmation{}, adapters.Permanent("the package's signing certificate cannot be read", err)
	}
	env.Package = pkg
	parts, err := referencedParts(pkg, d.Attachments)
	if err != nil {
		return adapters.Confirmation{}, adapters.Permanent("the package's attachment references cannot be read", err)
	}
	ans, err := a.opt.Client.Forward(ctx, p, env, parts...)
	if err != nil {
		return adapters.Confirmation{}, err
	}
	if ans.ClockOff != 0 && a.clockLog.Allow(p.ID, time.Now()) {
		// Taken all the same (federation.Answer.At): the peer has the package.
		// Its status answers are refused for their time meanwhile, so its
		// offices' news does not come until the clocks agree again.
		a.opt.Logger.Warn("the peer gateway's receipt is dated further from this gateway's clock than its clock_skew; recorded with this gateway's time: check both clocks (NTP)",
			"peer", p.ID, "submission", d.SubmissionID, "receipt_time", ans.Receipt.Time.UTC().Format(time.RFC3339), "off", ans.ClockOff.Round(time.Second).String(), "clock_skew", p.Skew().String())
	}
	f := submission.Forward{Peer: p.ID, PeerSubmissionID: ans.Receipt.SubmissionID, At: ans.At, ReceiptSHA256: hexSHA(ans.Raw)}
	if a.opt.Records != nil {
		// Recorded before returning: the broker's own record of this attempt then finds
		// the package forwarded and drops it. A crash before this commit repeats the
		// hop, and the peer answers the same receipt.
		if _, err := a.opt.Records.RecordForwarded(d.SubmissionID, f, ans.Raw); err != nil {
			return adapters.Confirmation{}, fmt.Errorf("peer: record the peer's receipt: %w", err)
		}
	}
	a.opt.Logger.Info("package forwarded", "submission", d.SubmissionID, "peer", p.ID, "peer_submission", f.PeerSubmissionID, "duplicate", ans.Duplicate)
	return adapters.Confirmation{Receiver: p.ID, At: ans.At, Reference: ans.Receipt.SubmissionID, Pending: true}, nil
}

// Confirmed implements adapters.Confirmer: has the peer's office the package? Asked
// by the broker only for a package left handed over (the adapter records the
// forwarding itself, so normally none is).
func (a *Adapter) Confirmed(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, bool, error) {
	var s *submission.Submission
	if a.opt.Records != nil {
		s, _ = a.opt.Records.Submission(d.SubmissionID)
	}
	p, err := a.target(d, s)
	if err != nil {
		return adapters.Confirmation{}, false, err
	}
	rp, err := a.opt.Client.Status(ctx, p, []federation.Ref{{Sender: d.Sender, MessageID: d.MessageID}})
	if err != nil {
		return adapters.Confirmation{}, false, err
	}
	for _, it := range rp.Items {
		if it.Sender != d.Sender || it.MessageID != d.MessageID {
			continue
		}
		switch it.State {
		case "delivered", "accepted", "rejected":
			at := time.Now().UTC()
			if it.DeliveredAt != nil {
				at = *it.DeliveredAt
			}
			gw := it.ReceiverGateway
			if gw == "" {
				gw = p.ID
			}
			return adapters.Confirmation{Receiver: submission.ReceiverAt(it.Receiver, gw), At: at, Reference: it.SubmissionID}, true, nil
		}
	}
	return adapters.Confirmation{}, false, nil
}

// Changes implements adapters.Confirmer: the peer nudges the tracker, not the broker.
func (a *Adapter) Changes() <-chan struct{} { return nil }

// referencedParts are the attachments the package names by reference
// (<Anlage ID="…" Referenz="cid:…">), each with the Content-ID the package gives
// it: the next gateway's intake matches parts to Anlagen by it and checks each
// against the size and SHA-256 in the signed package. Inline attachments travel
// inside the package. The package was verified and parsed when it was accepted;
// this only finds the references again.
func referencedParts(pkg []byte, atts []adapters.Attachment) ([]federation.Part, error) {
	if len(atts) == 0 {
		return nil, nil
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(pkg); err != nil {
		return nil, err
	}
	byID := make(map[string]adapters.Attachment, len(atts))
	for _, a := range atts {
		byID[a.ID] = a
	}
	root := doc.Root()
	if root == nil {
		return nil, errors.New("the package has no root element")
	}
	// Only the package's own Anlagen (Antragspaket/Anlagen/Anlage, in its
	// namespace): the portal's form data may hold elements of any name, an
	// "Anlage" with a "Referenz" among them, which are no attachments.
	var refs []*etree.Element
	for _, as := range root.ChildElements() {
		if as.Tag != "Anlagen" || as.NamespaceURI() != paket.Namespace {
			continue
		}
		for _, an := range as.ChildElements() {
			if an.Tag == "Anlage" && an.NamespaceURI() == paket.Namespace && an.SelectAttr("Referenz") != nil {
				refs = append(refs, an)
			}
		}
	}
	var parts []federation.Part
	for _, an := range refs {
		cid, err := paket.CID(an.SelectAttrValue("Referenz", ""))
		if err != nil {
			return nil, err
		}
		id := an.SelectAttrValue("ID", "")
		a, ok := byID[id]
		if !ok || a.Open == nil {
			return nil, fmt.Errorf("attachment %q: referenced by the package, but not stored with it", id)
		}
		parts = append(parts, federation.Part{ContentID: cid, MimeType: a.MimeType, Open: a.Open})
	}
	return parts, nil
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
