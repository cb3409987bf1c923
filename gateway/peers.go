package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/adapters/peer"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// setupPeers connects this gateway to the gateways of other states (Portalverbund,
// docs/federation.md): the peer channel (an adapter forwarding packages in signed
// envelopes), the federation endpoint other gateways forward to, and the tracker that
// asks the peers about forwarded packages until their office decided.
//
// A place in another state is routed to "peer-<Land>" (intake); that office has the
// peer channel exactly when a configured peer serves the Land (or part of it), so a
// package for a state without a peer is refused at intake (422), never held for
// nobody.
func (g *Gateway) setupPeers(ctx context.Context) error {
	cfg := g.Config
	if len(cfg.Peers) == 0 {
		// Packages forwarded before every peer was taken out wait for nobody:
		// said at start, as the tracker says those of one peer taken out.
		if err := federation.SayUnfollowed(ctx, g.Broker, g.Log, cfg.Retention.PackageBytes); err != nil {
			g.Log.Warn("could not look for packages forwarded to peer gateways no longer configured", "err", err)
		}
		return nil
	}
	// What the envelope of a package of the largest size needs (the package is
	// base64 in it); the receiving side refuses larger bodies before reading them.
	maxBytes := federation.EnvelopeBytes(cfg.Limits.MaxBodyBytes)
	trust, err := federation.NewTrust(federation.TrustOptions{Self: cfg.GatewayID, Peers: cfg.Peers, Store: g.Trust, MaxBytes: maxBytes})
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	g.checkPeer = trust.CheckPeer // asked at start and after each reload (startwarn.go)
	timeout := cfg.Delivery.AttemptTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	client := &federation.Client{Self: cfg.GatewayID, Signer: g.Signer, Trust: trust, HTTP: &http.Client{Timeout: timeout, Transport: g.outbound.Transport("peer")}}
	ad, err := peer.New(peer.Options{Self: cfg.GatewayID, Client: client, Peers: cfg.Peers, Records: g.Broker, Logger: g.Log})
	if err != nil {
		return err
	}
	g.adapters.Register(ad)

	// The peer offices: "peer-<Land>" has the peer channel for every Land a peer
	// serves. officeChannels reads offices from one map; the peer offices join it.
	offices := make(map[string]config.OfficeClient, len(cfg.Offices)+16)
	for id, o := range cfg.Offices {
		offices[id] = o
	}
	var peerOffices []string
	for land := range servedLands(cfg.Peers) {
		id := "peer-" + land
		offices[id] = config.OfficeClient{Channels: map[string]config.Channel{channel.Peer: {Params: map[string]string{"land": land}}}}
		peerOffices = append(peerOffices, id)
	}
	sort.Strings(peerOffices)
	g.channels.set(offices)
	// Intake refuses a place no peer serves (a Land only partly served: areas)
	// before its 201, as the adapter would find no peer for it afterwards.
	g.Pipeline.PeerFor = peerFor(cfg.Peers)

	tracker := &federation.Tracker{Client: client, Broker: g.Broker, Peers: cfg.Peers, Offices: peerOffices, Log: g.Log,
		PeerOf: func(s *submission.Submission) (config.Peer, bool) {
			return peer.PeerFor(cfg.Peers, s.AreaARS, s.OfficeID)
		},
		// Replies are asked for while the case's bytes are kept here: a reply
		// to a case whose bytes are gone could not be stored (nor read).
		ReplyWindow: cfg.Retention.PackageBytes, Metrics: federation.NewMetrics(cfg.Peers)}
	if l, ok := g.db.(store.Leaser); ok {
		// Gateways sharing the store take turns asking on the timer
		// (federation.Tracker.Lease).
		tracker.Lease = l.TryLease
	}
	g.reg.MustRegister(tracker.Metrics.Collectors()...)
	g.reg.MustRegister(tracker.Collector())
	g.Broker.Observe(tracker.Observe)
	nextPeer := func(ars string) (string, bool) {
		p, ok := cfg.PeerFor(ars)
		return p.ID, ok
	}
	g.mounts[federation.PathPrefix] = &federation.Receiver{
		Trust: trust, Signer: g.Signer, Pipeline: g.Pipeline, Broker: g.Broker,
		MaxBytes: maxBytes, NextPeer: nextPeer, Nudged: tracker.Kick, Changed: tracker.Changed, Log: g.Log, StoreDown: g.storeUnreachable,
		// Bodies held in memory at once, before and while they are checked: two
		// envelopes of the largest size, or many ordinary ones; beyond, 503.
		Bodies: federation.DefaultBodies(maxBytes),
		// Beyond those, one more envelope's room that only the addresses
		// trusted peers sent signed documents from may take (junk filling
		// Bodies holds up no peer); behind a proxy, the client's address.
		TrustedProxies: cfg.HTTP.Proxies(),
		PeerAddresses:  peerAddresses(cfg.Peers),
		// A peer's status questions one at a time (429 beyond), counted here.
		Metrics: tracker.Metrics,
		// A forwarding with attachments: the envelope, every referenced part, and
		// their framing, under the portal API's progress rule.
		Uploads: federation.Uploads{MaxBytes: maxBytes + g.Pipeline.Limits.Effective().MaxReferencedTotal + 1<<20,
			Window: cfg.HTTP.ReadTimeout, MinRate: cfg.HTTP.UploadMinRate, WriteTimeout: cfg.HTTP.WriteTimeout},
	}
	// A package that came from a peer: tell that peer when its state changes or
	// its office replies, naming the package in a signed Aenderungsmeldung, so it
	// asks at once instead of at its next poll or the decided package's turn
	// (best effort; it asks anyway).
	nc := &federation.Client{Self: client.Self, Signer: client.Signer, Trust: client.Trust,
		HTTP: &http.Client{Timeout: 5 * time.Second, Transport: g.outbound.Transport("peer nudge")}}
	nctx, cancel := context.WithCancel(context.Background())
	ids := make([]string, len(cfg.Peers))
	for i, p := range cfg.Peers {
		ids[i] = p.ID
	}
	nudges := startNudger(nctx, ids, nudgeRetry, func(ctx context.Context, peer string, refs []federation.Ref) error {
		p, ok := cfg.PeerByID(peer)
		if !ok {
			return nil
		}
		err := nc.Changed(ctx, p, refs)
		if err != nil {
			g.Log.Debug("nudge peer", "peer", peer, "err", err)
		}
		return err
	})
	g.Broker.Observe(func(s *submission.Submission, e submission.Event) {
		if s.Origin == nil {
			return
		}
		switch e.Type {
		case submission.EventDelivered, submission.EventAccepted, submission.EventRejected, submission.EventHeld, submission.EventForwarded,
			submission.EventReplied: // the forwarding gateway fetches the reply for its portal
		default:
			return
		}
		nudges.note(s.Origin.Gateway, federation.Ref{Sender: s.Sender, MessageID: s.MessageID})
	})
	// Listening before the start's look into the store: a forwarding by
	// another gateway in between is heard.
	unshare, err := g.shareForwardings(tracker)
	if err != nil {
		cancel()
		return fmt.Errorf("gateway: listen for the other gateways' forwardings: %w", err)
	}
	if err := tracker.Start(ctx); err != nil {
		unshare()
		cancel()
		return err
	}
	g.closers = append(g.closers, func() error {
		unshare()
		cancel()
		nudges.wait()
		return tracker.Close()
	})
	g.Log.Info("Portalverbund: peers configured", "peers", len(cfg.Peers), "peer_offices", peerOffices)
	return nil
}

// peerFor is intake's PeerFor over the configured peers: the peer the peer
// channel forwards a package to (peer.PeerFor), by its configured id and name.
func peerFor(peers []config.Peer) func(ars, officeID string) (intake.Peer, bool) {
	return func(ars, officeID string) (intake.Peer, bool) {
		p, ok := peer.PeerFor(peers, ars, officeID)
		return intake.Peer{ID: p.ID, Name: p.Name}, ok
	}
}

// servedLands lists the Länder the peers serve, entirely or in part.
func servedLands(peers []config.Peer) map[string]bool {
	out := map[string]bool{}
	for _, p := range peers {
		for _, l := range p.Lands {
			out[l] = true
		}
		for _, a := range p.Areas {
			if len(a) >= 2 {
				out[a[:2]] = true
			}
		}
	}
	return out
}

// peerLines is the broker's Line over the peer offices: the offices of the
// Länder one peer gateway serves share one line and one cap (delivery.per_office),
// as they reach one gateway; so do those of peers that share a Land (areas),
// whose packages wait in one office's line anyway. A peer that hung and served
// four Länder took four caps, every worker of the default (8 workers, 2 per
// office), and this gateway's own offices waited until its attempts ended; a
// peer serving all the other Länder took them at any setting. nil where every
// peer office is a line of its own.
func peerLines(peers []config.Peer) func(office string) string {
	line := map[string]string{} // peer office -> its line's name (a peer office)
	var find func(string) string
	find = func(o string) string {
		if l, ok := line[o]; ok && l != o {
			r := find(l)
			line[o] = r
			return r
		}
		return o
	}
	for _, p := range peers {
		first := ""
		for land := range servedLands([]config.Peer{p}) {
			o := find(wire.PeerOfficePrefix + land)
			switch {
			case first == "":
				first = o
			case o < first:
				line[first], first = o, o
			case o > first:
				line[o] = first
			}
		}
	}
	shared := false
	for o := range line {
		line[o] = find(o)
		shared = shared || line[o] != o
	}
	if !shared {
		return nil
	}
	return func(office string) string {
		if l, ok := line[office]; ok {
			return l
		}
		return office
	}
}

// nudger tells the peers of packages that came from them that those changed
// here (a signed Aenderungsmeldung each), every peer by a goroutine and a line
// of its own. One goroutine told them one after the other, each telling ended
// after 5 s: a peer whose endpoint hung held up every other peer's nudges by
// that much at every round, and the changes behind them filled the one line
// of 256 and were dropped (an audit, 2026-12-07). Best effort, tried a few
// times: a peer asks anyway, at its poll interval.
type nudger struct {
	lines map[string]chan federation.Ref // peer id -> the changes it is to be told of
	wg    sync.WaitGroup
}

// startNudger tells each of peers, by send, of the changes noted for it, until
// ctx ends. A telling that failed (the peer's endpoint down for a moment, its
// 429 while it answers a question of ours, a timeout) is tried again after
// retry, doubling, nudgeTries times in all, with the changes noted meanwhile:
// dropped at once, a decided package's news and its Bescheid waited for the
// package's turn at the peer, up to 12 hours. After the last try they are
// dropped; the peer asks anyway.
func startNudger(ctx context.Context, peers []string, retry time.Duration, send func(ctx context.Context, peer string, refs []federation.Ref) error) *nudger {
	n := &nudger{lines: make(map[string]chan federation.Ref, len(peers))}
	for _, p := range peers {
		line := make(chan federation.Ref, 256)
		n.lines[p] = line
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			var refs []federation.Ref // a telling that failed, to be tried again
			tries := 0
			for {
				if len(refs) == 0 {
					select {
					case <-ctx.Done():
						return
					case first := <-line:
						refs = []federation.Ref{first}
					}
				} else {
					t := time.NewTimer(retry << (tries - 1))
					select {
					case <-ctx.Done():
						t.Stop()
						return
					case <-t.C:
					}
				}
				refs = waiting(refs, line)
				if err := send(ctx, p, refs); err != nil && ctx.Err() == nil && tries+1 < nudgeTries {
					tries++
					continue
				}
				refs, tries = nil, 0
			}
		}()
	}
	return n
}

// nudgeTries is how often a telling is tried (startNudger); nudgeRetry the
// wait before the second try: 2, 4, 8, 16 s, half a minute in all.
const (
	nudgeTries = 5
	nudgeRetry = 2 * time.Second
)

// note notes a change for peer; none for a peer not configured, and none when
// its line is full.
func (n *nudger) note(peer string, ref federation.Ref) {
	select {
	case n.lines[peer] <- ref: // a nil line (no such peer) takes nothing
	default:
	}
}

// wait waits for the nudger's goroutines to end (its ctx ended).
func (n *nudger) wait() { n.wg.Wait() }

// waiting is refs and the changes waiting behind them, each package once, in
// the order they came.
func waiting(refs []federation.Ref, more <-chan federation.Ref) []federation.Ref {
	seen := make(map[federation.Ref]bool, len(refs))
	out := refs[:0]
	for _, r := range refs {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	for {
		select {
		case r := <-more:
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		default:
			return out
		}
	}
}

// peerAddresses are the addresses the peers' operators named (peers[].addresses).
func peerAddresses(peers []config.Peer) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range peers {
		out = append(out, p.From()...)
	}
	return out
}
