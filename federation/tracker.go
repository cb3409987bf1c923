package federation

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/submission"
)

// Tracker is the forwarding gateway's side of "events back": it asks each peer, with
// a signed status question, about the packages forwarded to it whose office has not
// decided yet, and records what the peer reports (delivered, accepted, rejected, or a
// peer_status event). The question is repeated at the peer's poll interval and early
// when the peer nudges (at most once per NudgeGap); after a restart the open
// packages are found in the store again. Nothing is lost when either gateway is down: the receiving gateway's
// record is the truth, and the forwarding gateway keeps asking until it is final.
type Tracker struct {
	Client  *Client
	Broker  *broker.Broker
	Peers   []config.Peer
	Offices []string // the peer offices ("peer-<Land>") whose submissions are forwarded
	Log     *slog.Logger

	mu    sync.Mutex
	open  map[string]string // submission id -> peer id
	kick  chan struct{}
	wg    sync.WaitGroup
	stop  context.CancelFunc
	begun bool
}

// Observe is registered with broker.Observe: a forwarded package becomes open.
func (t *Tracker) Observe(s *submission.Submission, e submission.Event) {
	if e.Type != submission.EventForwarded || s.Forward == nil {
		return
	}
	t.mu.Lock()
	if t.open == nil {
		t.open = map[string]string{}
	}
	t.open[s.ID] = s.Forward.Peer
	t.mu.Unlock()
	t.Kick()
}

// Kick asks the peers soon: at once, or when a NudgeGap has passed since a peer's
// last question (coalesced).
func (t *Tracker) Kick() {
	t.mu.Lock()
	if t.kick == nil {
		t.kick = make(chan struct{}, 1)
	}
	k := t.kick
	t.mu.Unlock()
	select {
	case k <- struct{}{}:
	default:
	}
}

// Start loads the open packages and starts asking. Close stops.
func (t *Tracker) Start(ctx context.Context) error {
	if t.Log == nil {
		t.Log = slog.Default()
	}
	subs, err := t.Broker.Forwarded(ctx, t.Offices)
	if err != nil {
		return err
	}
	t.mu.Lock()
	if t.open == nil {
		t.open = map[string]string{}
	}
	if t.kick == nil {
		t.kick = make(chan struct{}, 1)
	}
	for _, s := range subs {
		t.open[s.ID] = s.Forward.Peer
	}
	t.begun = true
	t.mu.Unlock()
	runCtx, cancel := context.WithCancel(context.Background())
	t.stop = cancel
	t.wg.Add(1)
	go t.run(runCtx)
	return nil
}

// Close stops the tracker and waits for it.
func (t *Tracker) Close() error {
	if t.stop != nil {
		t.stop()
	}
	t.wg.Wait()
	return nil
}

func (t *Tracker) tick() time.Duration {
	d := time.Duration(0)
	for _, p := range t.Peers {
		if d == 0 || p.Poll() < d {
			d = p.Poll()
		}
	}
	if d <= 0 {
		d = config.DefaultPeerPollInterval
	}
	return max(d, 50*time.Millisecond)
}

// NudgeGap is the least time between two questions to one peer that a kick (a
// peer's nudge, a new forwarding) may cause: however many nudges come, a peer is
// asked early at most once per gap (or per its poll interval, if that is shorter).
// The nudge needs no credentials, so it must not be worth more than that; a second
// is still quick for a decision to reach the portal. A kick within the gap is
// not lost: the early question follows when the gap has passed.
const NudgeGap = time.Second

func nudgeGap(p config.Peer) time.Duration { return min(NudgeGap, p.Poll()) }

func (t *Tracker) run(ctx context.Context) {
	defer t.wg.Done()
	tk := time.NewTicker(t.tick())
	defer tk.Stop()
	last := map[string]time.Time{}
	early := map[string]bool{} // peers kicked since their last question
	wake := time.NewTimer(time.Hour)
	wake.Stop()
	defer wake.Stop()
	for {
		t.mu.Lock()
		kick := t.kick
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		case <-wake.C:
		case <-kick:
			for _, p := range t.Peers {
				early[p.ID] = true
			}
		}
		if next := t.pollDue(ctx, last, early); !next.IsZero() {
			wake.Reset(time.Until(next))
		}
	}
}

// pollDue asks every peer whose interval has passed, and every kicked one whose
// last question is a gap ago; it returns when the next kicked peer's gap ends
// (zero: none waits).
func (t *Tracker) pollDue(ctx context.Context, last map[string]time.Time, early map[string]bool) time.Time {
	t.mu.Lock()
	byPeer := map[string][]string{}
	for id, peer := range t.open {
		byPeer[peer] = append(byPeer[peer], id)
	}
	t.mu.Unlock()
	now := time.Now()
	var next time.Time
	for peerID := range early {
		if len(byPeer[peerID]) == 0 {
			delete(early, peerID) // nothing to ask about
		}
	}
	for peerID, ids := range byPeer {
		p, ok := t.Client.Trust.Peer(peerID)
		if !ok {
			continue // a peer no longer configured: its packages stay as they are
		}
		since := now.Sub(last[peerID])
		if since < p.Poll() && (!early[peerID] || since < nudgeGap(p)) {
			if early[peerID] {
				if at := last[peerID].Add(nudgeGap(p)); next.IsZero() || at.Before(next) {
					next = at
				}
			}
			continue
		}
		last[peerID] = now
		delete(early, peerID)
		t.poll(ctx, p, ids)
	}
	return next
}

// Poll asks one peer about the given submissions once (also used by tests).
func (t *Tracker) poll(ctx context.Context, p config.Peer, ids []string) {
	for start := 0; start < len(ids); start += MaxQuery {
		batch := ids[start:min(start+MaxQuery, len(ids))]
		subs := map[Ref]*submission.Submission{}
		var refs []Ref
		for _, id := range batch {
			s, err := t.Broker.Submission(id)
			if err != nil || s.Forward == nil || s.State.Final() {
				t.done(id)
				continue
			}
			ref := Ref{Sender: s.Sender, MessageID: s.MessageID}
			subs[ref] = s
			refs = append(refs, ref)
		}
		if len(refs) == 0 {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		rp, err := t.Client.Status(qctx, p, refs)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				t.Log.Warn("asking peer gateway about forwarded packages failed; will ask again", "peer", p.ID, "count", len(refs), "err", err)
			}
			return
		}
		for _, it := range rp.Items {
			s, ok := subs[it.Ref]
			if !ok || it.State == StateUnknown || it.State == "" {
				continue
			}
			u := submission.PeerStatus{Peer: p.ID, State: submission.State(it.State), Receiver: it.Receiver, DeliveredAt: it.DeliveredAt, Detail: it.Note}
			if it.Decision != nil {
				u.Decision = &submission.Decision{Outcome: it.Decision.Outcome, Reason: it.Decision.Reason, At: it.Decision.At, Actor: it.Decision.Actor}
			}
			cur, err := t.Broker.RecordPeerStatus(s.ID, u)
			if err != nil {
				t.Log.Error("record the peer's status", "submission", s.ID, "peer", p.ID, "err", err)
				continue
			}
			if cur != nil && cur.State.Final() {
				t.done(s.ID)
			}
		}
	}
}

func (t *Tracker) done(id string) {
	t.mu.Lock()
	delete(t.open, id)
	t.mu.Unlock()
}

// Open reports how many forwarded packages wait for their peer's decision.
func (t *Tracker) Open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.open)
}
