// Package intake is the path of one package from raw bytes to a durable acceptance:
// structural limits, signature verification against the trust store, parsing of the
// verified element only, the sender check, routing through the directory, and
// broker.Accept. It knows no HTTP, so the API, the peer gateway and the bench share it.
package intake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/xmlscan"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// ErrEnvelopeMismatch: a forwarded package's envelope names another NachrichtID
// or LeiKa key than the signed package it carries (a peer's defect, or a hostile
// peer's: the package would be tracked under one name and be another).
var ErrEnvelopeMismatch = errors.New("intake: the forwarding envelope does not name the package it carries")

// ErrSenderMismatch: the package's Absender is not the identity of its signer.
var ErrSenderMismatch = errors.New("intake: Absender does not match the signing certificate")

// ErrMessageIDTaken: a portal's package whose Absender and NachrichtID name a
// package another state's gateway forwarded here (portal ids are one namespace
// across states). It is no repeat of the portal's own: its receipt is not the
// portal's to read, and the portal's package is not taken.
var ErrMessageIDTaken = fmt.Errorf("%w: the NachrichtID names a package another state's gateway forwarded here under the same Absender; send the package with a new NachrichtID", broker.ErrConflict)

// ErrMessageIDReused: a package whose Absender and NachrichtID name an earlier
// package of another application. It got the earlier package's 200 and receipt,
// and was stored nowhere: a portal that reused a NachrichtID (a counter reset, a
// bug) lost a citizen's application while it read "accepted". A repeat is the
// same application (ApplicationDigest): signed anew, or built anew with another
// Erstellt, it is still the repeat.
var ErrMessageIDReused = fmt.Errorf("%w: the NachrichtID names an earlier package of this Absender with other content; a NachrichtID names one application: send this one with a new NachrichtID", broker.ErrConflict)

// ApplicationDigest names the application a verified package carries: the SHA-256
// of its canonical signed bytes from Kopf/Leistung on — service, place, the
// citizen's data, Fachdaten and attachments — leaving out what a portal's retry may
// make anew: the root's ID, NachrichtID (the key itself), Erstellt and Absender (the
// sender is the other key), and the signature, which the canonical bytes never hold.
// A portal that timed out and built the package again (a new Erstellt, an ECDSA
// signature that differs every time) sends the same application; one that reused
// a NachrichtID for another citizen's does not. canonical is the verifier's
// (signing.Verified.Canonical); "" when it has no Kopf/Leistung.
//
// Leistung is found by structure, not by searching for its name: a namespace
// declaration on the element, or a URI holding "Leistung>", made a byte search
// start at the end tag (the service left out: another service under a used id was
// answered as the repeat) or in the root's start tag (a review, 2026-12-05).
func ApplicationDigest(canonical []byte) string {
	start := kopfLeistung(canonical)
	if start < 0 {
		return ""
	}
	sum := sha256.Sum256(canonical[start:])
	return applicationDigestPrefix + hex.EncodeToString(sum[:])
}

// applicationDigestPrefix marks the digest of ApplicationDigest. Records of the
// builds of 2026-12-05 afternoon kept another digest as "SHA-256:…"; a repeat of
// such a record is not compared by it (sameApplication).
const applicationDigestPrefix = "app-sha256:"

// kopfLeistung is the offset of the start tag of the root's Kopf's first Leistung
// child in canonical XML, or -1, by xmlscan's walk of the markup (canonical XML
// has no CDATA or DTD; its attribute values never hold a '"').
func kopfLeistung(b []byte) int {
	depth, inKopf, at := 0, false, -1
	xmlscan.Walk(b, func(t xmlscan.Tag) bool {
		switch t.Kind {
		case xmlscan.End:
			depth--
			inKopf = inKopf && depth > 1
		case xmlscan.Start:
			depth++
			switch local := localName(t.Name); {
			case depth == 2 && local == "Kopf":
				inKopf = true
			case depth == 3 && inKopf && local == "Leistung":
				at = t.Offset
				return false
			}
			if t.Empty {
				depth--
			}
		}
		return true
	})
	return at
}

// localName is name without its namespace prefix.
func localName(name []byte) string {
	if c := bytes.IndexByte(name, ':'); c >= 0 {
		name = name[c+1:]
	}
	return string(name)
}

// sameApplication says whether a package (its application, ApplicationDigest) is
// a repeat of the stored submission s. A record without such a digest — written
// before 2026-12-05, or by a build of that afternoon that kept the signature's
// digest ("SHA-256:…") — cannot tell: its repeat is answered as its build did,
// with the first receipt. A 409 there would tell a portal whose retry was built or
// signed anew to send the application again under a new NachrichtID, and the
// office would get it twice.
func sameApplication(s *submission.Submission, content string) bool {
	if !strings.HasPrefix(s.ContentDigest, applicationDigestPrefix) || content == "" {
		return true
	}
	return s.ContentDigest == content
}

// Channels says which channels of an office this gateway can deliver on: the
// channel has an adapter and the office's configuration for it (see broker.Channels).
type Channels interface {
	Usable(officeID, channel string) bool
}

// Pipeline turns raw package bytes into an accepted submission. Safe for concurrent use.
type Pipeline struct {
	Limits    paket.Limits
	Verifier  *signing.Verifier
	Directory *routing.Store
	Broker    *broker.Broker
	Channels  Channels
	// LastResort is the channel every office has as its last one (the mailbox), so no
	// accepted package is left where no person sees it; "" = none.
	LastResort string
	// Slots bounds the packages verified at once (slots.go); nil: no bound.
	Slots *Slots
	// Metrics time intake's stages (metrics.go); nil: not timed.
	Metrics *Metrics
	// Log gets what intake must tell an operator outside an answer; nil: nothing.
	Log *slog.Logger
	// PeerFor returns the configured peer gateway that serves the place (its ARS)
	// of a package for another state's office ("peer-<Land>"), the one the peer
	// channel forwards it to; ok false when none does. nil: no peer gateway is
	// configured, and such a package is refused.
	PeerFor func(ars, officeID string) (peer Peer, ok bool)
	// HoldRefresh is how often a request refreshes the attachment blobs it has
	// stored until its record commits (parts.go); 0: store.HoldRefresh.
	HoldRefresh time.Duration
}

// Peer is a configured peer gateway: its id (the CN of its certificate) and name.
type Peer struct{ ID, Name string }

// officeName is how the record and the receipt name another state's office: the
// peer gateway the package goes to.
func (p Peer) officeName() string {
	if p.Name == "" || p.Name == p.ID {
		return "Peer gateway " + p.ID
	}
	return "Peer gateway " + p.Name + " (" + p.ID + ")"
}

func hasChannel(ts []submission.Target, name string) bool {
	for _, t := range ts {
		if t.Channel == name {
			return true
		}
	}
	return false
}

// Submit runs the whole intake. Errors wrap the sentinels of paket, signing and
// routing (and ErrSenderMismatch) so the caller can tell the client what was wrong;
// anything else is the gateway's own failure.
func (p *Pipeline) Submit(ctx context.Context, raw []byte) (*broker.Received, error) {
	return p.SubmitParts(ctx, raw, nil)
}

// SubmitParts is Submit for a multipart/related request (RFC 2387): raw is its root
// part, the signed package; parts yields the other parts, the attachments the
// package names by Referenz="cid:...". They are read only after the package's
// signature, sender and route are checked, so a package that would be refused
// anyway costs no upload to disk. parts nil: a plain application/xml request.
func (p *Pipeline) SubmitParts(ctx context.Context, raw []byte, parts Parts) (*broker.Received, error) {
	var v *signing.Verified
	var pk *paket.Paket
	var first *broker.Received // a repeat of an accepted package whose signer is refused now
	err := p.checkInSlot(ctx, func() (err error) {
		// The signature is checked on the document as XML processors read it
		// (ScanNormalized); the bytes stored and handed on are raw.
		doc, err := paket.ScanNormalized(raw, p.Limits)
		if err != nil {
			return err
		}
		if v, err = p.Verifier.Verify(doc, signing.RolePortal); err != nil {
			if !errors.Is(err, signing.ErrUntrustedSigner) {
				return err
			}
			// A retry of a package accepted while its certificate was valid gets
			// its first receipt (acceptedBefore), not a final refusal.
			var lerr error
			if first, v, lerr = p.acceptedBefore(raw, doc); lerr != nil {
				return lerr
			} else if first == nil {
				return err
			}
		}
		// From here on only the verified element is read: anything outside the
		// signed bytes could have been added by anyone.
		pk, err = paket.Parse(v.Root, p.Limits)
		return err
	})
	if err != nil {
		return nil, err
	}
	if pk.Kopf.Absender != v.Signer.ID {
		return nil, fmt.Errorf("%w: Absender %q, certificate %q", ErrSenderMismatch, pk.Kopf.Absender, v.Signer.ID)
	}
	if first != nil {
		return p.repeat(first, nil, ApplicationDigest(v.Canonical))
	}
	return p.receive(ctx, pk, v.Signer, raw, ApplicationDigest(v.Canonical), nil, nil, parts)
}

// receive is the part of intake after verification that a portal's package and a
// package forwarded by a peer share: the idempotency fast path, routing, the channel
// plan, the attachments and broker.Receive. onPeer, if set, may refuse a route that
// goes on to another state's peer (loop and hop-limit guard); origin is the
// forwarding record of a forwarded package; content names its signed content
// (ApplicationDigest).
func (p *Pipeline) receive(ctx context.Context, pk *paket.Paket, signer signing.Identity, raw []byte, content string, onPeer func(*routing.Route) error, origin *submission.Origin, parts Parts) (*broker.Received, error) {
	defer p.Metrics.since(stageAccept, time.Now())
	// A retry of a message we already accepted gets its first receipt, even if the
	// directory changed in between.
	if a, err := p.Broker.Lookup(pk.Kopf.Absender, pk.Kopf.NachrichtID); err == nil {
		return p.repeat(a, origin, content)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	// A new package only while its receipt can be signed with a certificate valid
	// now (broker.ErrGatewayCertificate); a repeat above gets the first receipt,
	// signed when it was.
	if err := p.Broker.CanSign(); err != nil {
		return nil, err
	}
	dir := p.Directory.Current()
	place := placeOf(dir, pk.Kopf.Ort)
	in := broker.Intake{
		MessageID: pk.Kopf.NachrichtID, Sender: pk.Kopf.Absender, SignerID: signer.ID,
		LeikaKey: pk.Kopf.Leistung.Schluessel, ServiceName: pk.Kopf.Leistung.Bezeichnung, Place: place,
		Package: raw, ContentDigest: content, Origin: origin,
	}
	if signer.Certificate != nil {
		in.SignerCert = signer.Certificate.Raw
	}
	var dest Destination
	toCase := false
	if pk.Kopf.Bezug != "" {
		// A Nachreichung goes to its case, not through the directory.
		var err error
		if dest, toCase, err = p.followUp(dir, pk, origin, &in); err != nil {
			return nil, err
		}
	}
	if !toCase {
		// With intake's decision: a key this directory does not know, at a place of
		// several states none of whose peer gateways is configured, is refused as
		// unknown, not sent back to the citizen to choose a place (ResolveWith).
		route, err := dir.ResolveWith(pk.Kopf.Leistung.Schluessel, place, func(rt *routing.Route) error {
			_, err := p.Destination(rt)
			return err
		})
		if err != nil {
			return nil, err
		}
		in.LeikaKey = route.Service.Key
		if !route.ServiceUnknown {
			// This directory's name; one for a service only the peer's
			// knows is the package's own (signed; the receipt names the key
			// only).
			in.ServiceName = route.Service.Name
		}
		if route.Area != nil {
			in.AreaARS, in.AreaName = route.Area.ARS, route.Area.Name
		}
		if route.Peer != nil && route.Office == nil && onPeer != nil {
			if err := onPeer(route); err != nil {
				return nil, err
			}
		}
		if dest, err = p.Destination(route); err != nil {
			return nil, err
		}
	}
	in.OfficeID, in.OfficeName, in.Targets = dest.OfficeID, dest.OfficeName, dest.Targets
	atts, held, err := p.attachments(ctx, pk, parts)
	if err != nil {
		p.discard(held)
		return nil, err
	}
	in.Attachments = atts
	// The streamed blobs are fresh for every deleter until Receive has committed
	// (holding says why); one gone meanwhile is a retry, never a 201 without it.
	if err := held.refresh(ctx); err != nil {
		p.discard(held)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("intake: %w", err)
		}
		// %v: a blob's ErrNotFound is not the client's resource missing (404).
		return nil, fmt.Errorf("intake: %w: a stored attachment is gone before its record committed, send the package again: %v", broker.ErrUnavailable, err)
	}
	rec, err := p.Broker.Receive(ctx, in)
	if err != nil {
		// No record references the streamed blobs: remove what this request created.
		p.discard(held)
		return nil, err
	}
	held.end()
	if !rec.Created {
		// Another package under the same id came in between.
		return p.repeat(rec, origin, content)
	}
	return rec, nil
}

// followUp decides where a Nachreichung goes — a package whose Kopf/Bezug
// names an earlier application of its sender (the applicant's answer to a
// Rückfrage, documents sent later): to the office that has that case, under
// its case id (in.CaseID), and not through the directory (toCase): a
// directory that moved the service to another office since must not split
// the case, and the Nachreichung's own service and place say nothing about
// where the case is. A case a clerk took over in the web mailbox takes it
// there. A case forwarded to a peer gateway takes it to that gateway, which
// resolves the Bezug itself against the case it has (refused before the 201
// when this gateway has no connection to it any more). A case whose office
// left the directory has no plan to send it by: the directory decides then
// (toCase false), and the case id stays. A Bezug that names no application
// of this sender, or one a peer gateway forwarded here when this package came
// from the portal itself (or from another peer), is 422 invalid-field: the
// portal names what its applicant has, and never learns here of another
// portal's cases.
func (p *Pipeline) followUp(dir *routing.Directory, pk *paket.Paket, origin *submission.Origin, in *broker.Intake) (dest Destination, toCase bool, err error) {
	field := &paket.FieldError{Field: "Antragspaket/Kopf/Bezug",
		Reason: "names no earlier application of this portal (its NachrichtID, as the gateway acknowledged it)"}
	earlier, err := p.Broker.FindMessage(pk.Kopf.Absender, pk.Kopf.Bezug)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return dest, false, field
	case err != nil:
		return dest, false, err
	case (earlier.Origin == nil) != (origin == nil) || earlier.Origin != nil && earlier.Origin.Gateway != origin.Gateway:
		return dest, false, field
	}
	in.CaseID = earlier.Case()
	if earlier.Forward != nil {
		// To the state's gateway the case went to (the peer of its area and
		// office, as for the application): there is the office.
		if p.PeerFor != nil {
			if _, ok := p.PeerFor(earlier.AreaARS, earlier.OfficeID); !ok {
				return dest, false, fmt.Errorf("%w: the case %s went to gateway %s, and this gateway has no connection to that state's gateway now",
					routing.ErrNoResponsibleOffice, earlier.Case(), earlier.Forward.Peer)
			}
		}
		in.AreaARS, in.AreaName = earlier.AreaARS, earlier.AreaName
		return Destination{OfficeID: earlier.OfficeID, OfficeName: earlier.OfficeName, Targets: []submission.Target{{Channel: channel.Peer}}}, true, nil
	}
	plan := p.Plan(earlier.OfficeID)
	if plan == nil {
		return dest, false, nil
	}
	if earlier.TakenOverFrom != "" && p.LastResort != "" && hasChannel(plan, p.LastResort) {
		// A clerk took the case over in the web mailbox: she works on it
		// there, and the office's system was told to drop it. Its
		// Nachreichung goes to her, not to that system.
		plan = []submission.Target{{Channel: p.LastResort}}
	}
	in.AreaARS, in.AreaName = earlier.AreaARS, earlier.AreaName
	if k, ok := dir.Service(pk.Kopf.Leistung.Schluessel); ok {
		in.ServiceName = k.Name
	}
	return Destination{OfficeID: earlier.OfficeID, OfficeName: earlier.OfficeName, Targets: plan}, true, nil
}

// repeat answers a package whose sender and NachrichtID name a stored
// submission: its first receipt when it is a repeat of it (counted), a 409 when
// the id names a package another state's gateway forwarded here (a portal's own
// package then) or another application.
func (p *Pipeline) repeat(first *broker.Received, origin *submission.Origin, content string) (*broker.Received, error) {
	if origin == nil && first.Submission.Origin != nil {
		return nil, ErrMessageIDTaken
	}
	if !sameApplication(first.Submission, content) {
		return nil, ErrMessageIDReused
	}
	p.Broker.Repeated()
	return first, nil
}

// placeOf is the place the package names, as one query for the directory: its
// most precise field (paket.Ort.Query), except where a postcode comes with a name.
// A postcode several municipalities share is narrowed by the name ("01877
// Bischofswerda"), when the directory knows the pair; otherwise the postcode's
// candidates go back for the citizen to choose. And a name that is another
// municipality than the postcode's is read with it: the directory refuses a pair
// that does not fit ("01067 Leipzig"), where the postcode alone had silently won.
// A postcode the directory does not know goes with its name ("01001 Dresden"), and
// a Kreis's key with a postcode or name inside the Kreis is that municipality.
func placeOf(d *routing.Directory, o paket.Ort) string {
	q := o.Query()
	if o.ARS != "" && (o.PLZ != "" || strings.TrimSpace(o.Name) != "") {
		// A key above the municipalities (a padded Kreis key) with a postcode or name
		// of a municipality inside it: the municipality, where the Kreis alone made a
		// municipal service ambiguous. A bare name that is the Kreis's own
		// ("Bautzen") may name the Kreis; it and any other key are not second-guessed.
		if k, err := d.Place(o.ARS); err == nil && k.Level < routing.LevelGemeinde &&
			!(o.PLZ == "" && strings.EqualFold(strings.TrimSpace(o.Name), k.ShortName())) {
			inner := placeOf(d, paket.Ort{PLZ: o.PLZ, Name: o.Name})
			if a, err := d.Place(inner); err == nil && a.Within(k) {
				return inner
			}
		}
		return q
	}
	if o.ARS != "" || o.AGS != "" || o.PLZ == "" || strings.TrimSpace(o.Name) == "" {
		return q
	}
	both := o.PLZ + " " + strings.TrimSpace(o.Name)
	byPLZ, err := d.Place(o.PLZ)
	switch {
	case errors.Is(err, routing.ErrAmbiguousPlace):
		if _, err := d.Place(both); err == nil {
			return both
		}
		return q
	case errors.Is(err, routing.ErrUnknownPlace):
		// A postcode the table lacks (a Postfach's, a new one): the name decides,
		// as the directory reads the pair for lookup and /v1/resolve. The postcode
		// alone was refused as unknown while both routed the package.
		return both
	case err != nil:
		return q
	}
	if byName, err := d.Place(o.Name); err == nil && byName != byPLZ {
		return both
	}
	return q
}

// Destination is where intake sends a package on a route: the office as the
// record and the receipt name it, and its channel plan.
type Destination struct {
	OfficeID, OfficeName string
	Targets              []submission.Target
	// Peer is the configured peer gateway a package for another state's office
	// goes to (PeerFor); nil for an office of this gateway. The directory's peer
	// entry for the Land may be another gateway (the built-in ones are sample
	// data), so /v1/resolve, /v1/routes and lookup name this one, as the receipt does.
	Peer *Peer
}

// Destination is intake's decision on a route: the office and its channel plan,
// or an error wrapping routing.ErrNoResponsibleOffice when no package may be
// acknowledged on it (routing.ErrUnknownService for a service this directory does
// not know, routed to another state's peer: Route.ServiceUnknown). lookup, /v1/resolve and /v1/routes ask it too: they
// promised routes (another state's office with no peer gateway for the place)
// that intake then refused. It reads only Channels, LastResort and PeerFor, so a
// Pipeline with just those answers for a configuration no gateway runs (lookup).
func (p *Pipeline) Destination(route *routing.Route) (Destination, error) {
	var d Destination
	switch {
	case route.Office != nil:
		d.OfficeID, d.OfficeName = route.Office.ID, route.Office.Name
		d.Targets = p.lastResort(p.targets(d.OfficeID, route))
		return d, nil
	case route.Peer == nil:
		d.Targets = p.targets(d.OfficeID, route)
		return d, nil
	}
	d.OfficeID = "peer-" + route.Peer.Land
	d.Targets = p.targets(d.OfficeID, route)
	var peer Peer
	served := false
	if p.PeerFor != nil {
		ars := ""
		if route.Area != nil {
			ars = route.Area.ARS
		}
		peer, served = p.PeerFor(ars, d.OfficeID)
		// The configured peer, not the directory's (the built-in one is sample
		// data): the receipt named a gateway that does not exist.
		d.OfficeName = peer.officeName()
	}
	if len(d.Targets) == 0 || !served {
		// Never acknowledge what cannot be routed: a package for another state's office
		// with no way to that state's gateway would wait for nobody. The office
		// "peer-<Land>" has the peer channel when a peer serves any of the Land, but
		// one that serves only some Kreise (areas) does not serve the others: such a
		// package was acknowledged, then held after a permanent failure.
		area := ""
		if route.Area != nil {
			area = route.Area.Name
		}
		if route.ServiceUnknown {
			// The peer would have been asked about a service this directory does not
			// know (routing rule 1); with no peer to ask, rule 1's answer stands.
			return Destination{}, fmt.Errorf("%w: %s is not in this gateway's directory; %s is in Land %s (%s), whose gateway's directory may know it, but this gateway has no connection to that state's gateway for this place",
				routing.ErrUnknownService, route.Service.Key, area, route.Peer.Land, route.Peer.Name)
		}
		return Destination{}, fmt.Errorf("%w: the responsible office for %s in %s is in Land %s (%s), and this gateway has no connection to that state's gateway for this place",
			routing.ErrNoResponsibleOffice, route.Service.Name, area, route.Peer.Land, route.Peer.Name)
	}
	d.Peer = &peer
	return d, nil
}

// lastResort ends an office's plan with the channel that reaches a person (the
// web mailbox): a package whose other channels all fail for good still reaches
// the office.
func (p *Pipeline) lastResort(ts []submission.Target) []submission.Target {
	if p.LastResort != "" && !hasChannel(ts, p.LastResort) {
		ts = append(ts, submission.Target{Channel: p.LastResort})
	}
	return ts
}

// Plan is an office's channel plan as intake makes it now, from the current
// directory and configuration; nil when the directory does not know the office
// (a peer gateway's "peer-<Land>"). An operator's replay takes it
// (broker.Config.Plan), so a package held for a channel its office lacked
// goes to the channel the operator has given the office since.
func (p *Pipeline) Plan(officeID string) []submission.Target {
	o, ok := p.Directory.Current().Office(officeID)
	if !ok {
		return nil
	}
	return p.lastResort(p.targets(officeID, &routing.Route{Office: o, Channels: o.Channels}))
}

// targets is the channel plan: the office's channels in the directory's order of
// preference, limited to those this gateway can deliver on. A channel's address comes
// only from the operator's configuration, together with its secret, and is read at
// each attempt: the directory says which channels an office has, but an address found
// there alone (often sample data) is never called.
func (p *Pipeline) targets(officeID string, r *routing.Route) []submission.Target {
	var out []submission.Target
	chans := r.Channels
	if r.Peer != nil && len(chans) == 0 {
		chans = []routing.Channel{{Kind: routing.KindPeer, Endpoint: r.Peer.BaseURL}}
	}
	for _, c := range chans {
		if p.Channels == nil || !p.Channels.Usable(officeID, c.Kind) {
			continue
		}
		out = append(out, submission.Target{Channel: c.Kind})
	}
	return out
}
