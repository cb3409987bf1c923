// Package intake is the path of one package from raw bytes to a durable acceptance:
// structural limits, signature verification against the trust store, parsing of the
// verified element only, the sender check, routing through the directory, and
// broker.Accept. It knows no HTTP, so the API, the peer gateway and the bench share it.
package intake

import (
	"context"
	"errors"
	"fmt"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/store"
)

// ErrSenderMismatch: the package's Absender is not the identity of its signer.
var ErrSenderMismatch = errors.New("intake: Absender does not match the signing certificate")

// Endpoints yields an office's configured push endpoint for a channel ("" when the
// operator configured none, then the directory's endpoint is used).
type Endpoints interface {
	Endpoint(officeID, channel string) string
}

// Pipeline turns raw package bytes into an accepted submission. Safe for concurrent use.
type Pipeline struct {
	Limits    paket.Limits
	Verifier  *signing.Verifier
	Directory *routing.Store
	Broker    *broker.Broker
	Adapters  *adapters.Registry
	Endpoints Endpoints
}

// Submit runs the whole intake. Errors wrap the sentinels of paket, signing and
// routing (and ErrSenderMismatch) so the caller can tell the client what was wrong;
// anything else is the gateway's own failure.
func (p *Pipeline) Submit(ctx context.Context, raw []byte) (*broker.Accepted, error) {
	if err := paket.Scan(raw, p.Limits); err != nil {
		return nil, err
	}
	v, err := p.Verifier.Verify(raw, signing.RolePortal)
	if err != nil {
		return nil, err
	}
	// From here on only the verified element is read: anything outside the signed
	// bytes could have been added by anyone.
	pk, err := paket.Parse(v.Root, p.Limits)
	if err != nil {
		return nil, err
	}
	if pk.Kopf.Absender != v.Signer.ID {
		return nil, fmt.Errorf("%w: Absender %q, certificate %q", ErrSenderMismatch, pk.Kopf.Absender, v.Signer.ID)
	}
	// A retry of a message we already accepted gets its first receipt, even if the
	// directory changed in between.
	if a, err := p.Broker.Lookup(pk.Kopf.Absender, pk.Kopf.NachrichtID); err == nil {
		return a, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	route, err := p.Directory.Current().Resolve(pk.Kopf.Leistung.Schluessel, pk.Kopf.Ort.Query())
	if err != nil {
		return nil, err
	}
	in := broker.Intake{
		MessageID: pk.Kopf.NachrichtID, Sender: pk.Kopf.Absender, SignerID: v.Signer.ID,
		LeikaKey: route.Service.Key, ServiceName: route.Service.Name, Place: pk.Kopf.Ort.Query(),
		Package: raw,
	}
	if route.Area != nil {
		in.AreaARS, in.AreaName = route.Area.ARS, route.Area.Name
	}
	if route.Office != nil {
		in.OfficeID, in.OfficeName = route.Office.ID, route.Office.Name
	} else if route.Peer != nil {
		in.OfficeID, in.OfficeName = "peer-"+route.Peer.Land, "Peer gateway "+route.Peer.GatewayID
	}
	in.Targets = p.targets(in.OfficeID, route)
	for _, a := range pk.Anlagen {
		if a.Inhalt == nil && a.Referenz != "" {
			// multipart/related intake (cid: parts) is not built yet; accepting the
			// package would store an attachment without its bytes.
			return nil, &paket.FieldError{Field: "Antragspaket/Anlagen/Anlage[@ID='" + a.ID + "']/Referenz",
				Reason: "attachments by reference (cid:) are not accepted yet; send the content inline (Inhalt)"}
		}
		in.Attachments = append(in.Attachments, broker.AttachmentIn{
			Meta:    store.AttachmentMeta{ID: a.ID, FileName: a.Dateiname, MimeType: a.MimeType, Size: a.Groesse, SHA256: a.SHA256},
			Content: a.Inhalt,
		})
	}
	return p.Broker.Accept(ctx, in)
}

// targets is the channel plan: the office's channels in the directory's order of
// preference, limited to channels this gateway has an adapter for. A push channel's
// address comes only from the operator's configuration, together with its secret: the
// directory says which channels an office has, but an address found there alone (often
// sample data) is never called.
func (p *Pipeline) targets(officeID string, r *routing.Route) []store.TargetRef {
	var out []store.TargetRef
	chans := r.Channels
	if r.Peer != nil && len(chans) == 0 {
		chans = []routing.Channel{{Kind: "peer", Endpoint: r.Peer.BaseURL}}
	}
	for _, c := range chans {
		if p.Adapters != nil {
			if _, ok := p.Adapters.Get(c.Kind); !ok {
				continue
			}
		}
		ep := ""
		if p.Endpoints != nil {
			ep = p.Endpoints.Endpoint(officeID, c.Kind)
		}
		if ep == "" {
			continue
		}
		out = append(out, store.TargetRef{Channel: c.Kind, Endpoint: ep})
	}
	return out
}
