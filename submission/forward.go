package submission

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/channel"
)

// The Portalverbund: a package for an office in another state is forwarded to that
// state's gateway (a peer), which receives it like a portal's, delivers it and
// answers. Two records take part:
//
//   - at the forwarding gateway the submission moves from queued (channel peer) to
//     forwarded (Forwarded), and then follows what the peer reports (PeerUpdate):
//     delivered when the peer's office has the package, accepted or rejected when it
//     decided;
//   - at the receiving gateway the submission is an ordinary one whose Origin names
//     the forwarding gateway and the chain of gateways the package passed.

// Event types of the Portalverbund. Stable, like the others.
const (
	// EventForwarded: the peer gateway received the package and answered with its
	// signed Eingangsbestaetigung; it owns the delivery from now on.
	EventForwarded = "forwarded"
	// EventPeerStatus: the peer reported a state that changes nothing here (held at
	// the peer, forwarded onward, retrying), shown so the portal sees where it stands.
	EventPeerStatus = "peer_status"
	// EventArrivedFromPeer: at the receiving gateway, the package came from a peer.
	EventArrivedFromPeer = "arrived_from_peer"
)

// Hop is one gateway the package passed on its way, in order: the gateway, its
// submission id there, and when it received the package.
type Hop struct {
	Gateway      string    `json:"gateway"`
	SubmissionID string    `json:"submissionId"`
	At           time.Time `json:"at"`
}

// Origin is how a forwarded package came to this gateway.
type Origin struct {
	// Gateway is the peer that forwarded it here (the signer of the envelope).
	Gateway string `json:"gateway"`
	// SubmissionID is the submission at that gateway.
	SubmissionID string `json:"submissionId"`
	// Chain lists every gateway the package passed before this one, the first (the
	// portal's own gateway) first; the last is Gateway.
	Chain []Hop `json:"chain"`
	// ReceiptSHA256 is the hex SHA-256 of the first gateway's signed
	// Eingangsbestaetigung: the portal's receipt this forwarding continues.
	ReceiptSHA256 string    `json:"receiptSha256"`
	ForwardedAt   time.Time `json:"forwardedAt"`
	// EnvelopeSHA256 is the hex SHA-256 of the signed envelope as received.
	EnvelopeSHA256 string `json:"envelopeSha256,omitempty"`
}

// Gateways lists the gateway ids of the chain.
func (o *Origin) Gateways() []string {
	out := make([]string, 0, len(o.Chain))
	for _, h := range o.Chain {
		out = append(out, h.Gateway)
	}
	return out
}

// Forward is what this gateway knows of a package it forwarded.
type Forward struct {
	Peer             string    `json:"peer"`             // the peer gateway's id
	PeerSubmissionID string    `json:"peerSubmissionId"` // its submission id
	At               time.Time `json:"at"`               // when the peer received it (its receipt)
	ReceiptSHA256    string    `json:"receiptSha256"`    // of the peer's signed Eingangsbestaetigung
	// PeerState is the state the peer last reported; PeerCheckedAt when.
	PeerState     State     `json:"peerState,omitempty"`
	PeerCheckedAt time.Time `json:"peerCheckedAt,omitzero"`
	// ReceiverGateway is the gateway where the office that took the package is:
	// Peer, or a gateway the peer forwarded it on to (its report says which).
	ReceiverGateway string `json:"receiverGateway,omitempty"`
}

// PeerStatus is what a peer reports about a package forwarded to it.
type PeerStatus struct {
	Peer  string
	State State
	// Receiver is who took the package (delivered and later), named with the
	// gateway where it is (ReceiverAt); a name without it is taken as at Gateway.
	Receiver string
	// Gateway is where the receiver is when that is not the peer: the peer
	// forwarded the package on (two hops). "" is the peer itself.
	Gateway     string
	DeliveredAt *time.Time // when the peer's office had it
	Decision    *Decision  // the office's decision, when it decided
	Detail      string     // a short public note (why it is held, where it went on)
}

// Forwarded records that the peer gateway received the package (its signed
// Eingangsbestaetigung). Legal while the package waits for delivery or is handed
// over; a repeat for the same peer changes nothing.
func (s *Submission) Forwarded(now time.Time, f Forward) ([]Event, error) {
	if s.Forward != nil {
		if s.Forward.Peer == f.Peer && s.Forward.PeerSubmissionID == f.PeerSubmissionID {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: already forwarded to %s", ErrIllegal, s.Forward.Peer)
	}
	switch s.State {
	case StateQueued, StateRetrying, StateHandedOver:
	default:
		return nil, fmt.Errorf("%w: forward a submission that is %s", ErrIllegal, s.State)
	}
	t, _ := s.CurrentTarget()
	if f.At.IsZero() {
		f.At = now
	}
	f.At = f.At.UTC()
	f.PeerState = StateQueued
	f.PeerCheckedAt = now
	s.Forward = &f
	s.State = StateForwarded
	s.NextAttemptAt = time.Time{}
	s.Receiver = f.Peer
	return []Event{{At: now, Type: EventForwarded, Channel: t.Channel, Attempt: s.Attempts + 1,
		Detail: fmt.Sprintf("to gateway %s, its submission %s", f.Peer, f.PeerSubmissionID)}}, nil
}

// ReceiverAt names who took a forwarded package together with the gateway where
// it is ("office koeln-amt (webhook) at gateway amtsbote-nw"); a name that ends so
// already is kept, so each gateway on a longer way names the office's gateway
// once. An empty name is "office".
func ReceiverAt(receiver, gateway string) string {
	if receiver == "" {
		receiver = "office"
	}
	if strings.HasSuffix(receiver, " at gateway "+gateway) {
		return receiver
	}
	return receiver + " at gateway " + gateway
}

// ImpliesDelivery reports whether applying u would record the delivery (the peer's
// office has the package and this record does not know it yet).
func (s *Submission) ImpliesDelivery(u PeerStatus) bool {
	return s.DeliveredAt == nil && peerHasIt(u.State)
}

func peerHasIt(st State) bool {
	return st == StateDelivered || st == StateAccepted || st == StateRejected
}

// PeerUpdate applies what the peer reported about a forwarded package: the delivery
// when its office has it, the decision when it decided (both as the peer says, with
// the office named at the gateway where it is: the peer, or the gateway the peer
// forwarded the package on to), and any other new state as a peer_status event. A
// report that says nothing new changes nothing.
func (s *Submission) PeerUpdate(now time.Time, u PeerStatus) ([]Event, error) {
	if s.Forward == nil {
		return nil, fmt.Errorf("%w: peer status for a submission that was not forwarded", ErrIllegal)
	}
	if u.Peer != "" && u.Peer != s.Forward.Peer {
		return nil, fmt.Errorf("%w: status from %s for a package forwarded to %s", ErrIllegal, u.Peer, s.Forward.Peer)
	}
	var evs []Event
	peer := s.Forward.Peer
	gw := u.Gateway // where the office is
	if gw == "" {
		gw = peer
	}
	if s.DeliveredAt == nil && peerHasIt(u.State) {
		c := Confirmation{Receiver: ReceiverAt(u.Receiver, gw), At: now}
		if u.DeliveredAt != nil {
			c.At = *u.DeliveredAt
		}
		d := s.deliver(now, "peer", 0, c)
		d[0].Detail = c.detail()
		if gw != peer {
			d[0].Detail += ", forwarded there by gateway " + peer
		}
		s.Forward.ReceiverGateway = gw
		evs = append(evs, d...)
	}
	if u.Decision != nil && (u.State == StateAccepted || u.State == StateRejected) {
		if s.Decision != nil {
			if s.Decision.Outcome != u.Decision.Outcome {
				return nil, fmt.Errorf("%w: the peer reports %s after %s", ErrIllegal, u.Decision.Outcome, s.Decision.Outcome)
			}
		} else {
			actor := u.Decision.Actor
			if actor == "" {
				actor = "office"
			}
			if !strings.HasSuffix(actor, " at "+gw) {
				actor += " at " + gw // named so already by a gateway on the way
			}
			de, err := s.decide(now, "", u.Decision.Outcome, u.Decision.Reason, actor)
			if err != nil {
				return nil, err
			}
			if !u.Decision.At.IsZero() {
				// The peer's clock: bounded to [delivered, now] as the delivery
				// is (deliver); RecordedAt stays this gateway's own time.
				s.Decision.At = ClampTime(u.Decision.At, *s.DeliveredAt, now).UTC()
			}
			evs = append(evs, de...)
		}
	}
	if u.State != "" && u.State != s.Forward.PeerState {
		old := s.Forward.PeerState
		s.Forward.PeerState = u.State
		s.Forward.PeerCheckedAt = now
		if len(evs) == 0 {
			var note string
			if u.Detail != "" {
				note = clip(u.Detail, 300)
			}
			evs = append(evs, Event{At: now, Type: EventPeerStatus, Channel: "peer", Detail: peerStatusDetail(peer, u.State, note),
				Note: fmt.Sprintf("peer state %s -> %s", old, u.State)})
		}
	}
	return evs, nil
}

// AddPeerReply records a reply of the office at the peer gateway (a Bescheid, a
// Rückfrage) that the peer reported for a package forwarded to it and that this
// gateway fetched: the portal reads it here as it reads its own offices' replies,
// and the package's office answers where it is. r.MessageID is the peer's id of
// the reply: the same reply reported again changes nothing. Only the peer the
// package went to may add one (ErrIllegal otherwise). A reply implies that the
// peer's office has the package, whether or not its delivery is recorded here
// yet. r.At is the peer's clock, bounded to [forwarded, now] as a decision's is.
func (s *Submission) AddPeerReply(now time.Time, peer string, r Reply) ([]Event, error) {
	if s.Forward == nil {
		return nil, fmt.Errorf("%w: a peer's reply to a submission that was not forwarded", ErrIllegal)
	}
	if peer != s.Forward.Peer {
		return nil, fmt.Errorf("%w: a reply from gateway %s to a package forwarded to %s", ErrIllegal, peer, s.Forward.Peer)
	}
	if r.MessageID == "" {
		return nil, fmt.Errorf("%w: a peer's reply without its id", ErrIllegal)
	}
	for _, have := range s.Replies {
		if have.ID == r.ID || have.MessageID == r.MessageID {
			return nil, nil
		}
	}
	if len(s.Replies) >= MaxReplies {
		return nil, fmt.Errorf("%w: more than %d replies", ErrIllegal, MaxReplies)
	}
	r.Channel = channel.Peer
	if r.At.IsZero() {
		r.At = now
	}
	r.At = ClampTime(r.At, s.Forward.At, now).UTC()
	s.Replies = append(s.Replies, r)
	gw := cmp.Or(s.Forward.ReceiverGateway, peer)
	return []Event{{At: now, Type: EventReplied, Channel: channel.Peer, Actor: r.Actor,
		Detail: r.Kind + " " + r.ID + " from gateway " + gw}}, nil
}

// ArrivedFromPeer is the event that records the Origin of a forwarded package.
func ArrivedFromPeer(now time.Time, o *Origin) Event {
	return Event{At: now, Type: EventArrivedFromPeer, Channel: "peer", Actor: o.Gateway,
		Detail: fmt.Sprintf("forwarded by gateway %s (its submission %s); chain %s", o.Gateway, o.SubmissionID, strings.Join(o.Gateways(), " > "))}
}

func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
