package federation

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/repeatlimit"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// Tracker is the forwarding gateway's side of "events back": it asks each peer, with
// a signed status question, about the packages forwarded to it whose office has not
// decided yet, and records what the peer reports (delivered, accepted, rejected, or a
// peer_status event). The question is repeated at the peer's poll interval and early
// when the peer nudges (at most once per NudgeGap); after a restart the open
// packages are found in the store again. Nothing is lost when either gateway is
// down: the receiving gateway's record is the truth, and the forwarding gateway
// keeps asking until it is final.
//
// Every configured peer has a goroutine of its own, with at most one question in
// flight: a peer that hangs (up to QuestionTimeout per batch) delays only the
// packages forwarded to it. Close cancels the questions in flight and waits.
//
// It also asks about packages held here after their peer channel failed
// (PeerOf set): a forwarding whose every answer was lost — the peer stored the
// package and acknowledged it, and each answer arrived after the attempt's time
// or not at all — ends held here while the peer's office works on it, and the
// portal saw "held" and never the office's decision. Every HeldEvery poll
// intervals those packages are named in the next question to their peer; one
// the peer knows (it forwarded it there, so the peer answers with its state) is
// delivered again, which the peer answers with its first receipt: the package
// is forwarded here as it is there, and followed as every other. One the peer
// does not know stays held for the operator.
//
// A decided package is asked about further, for the replies of its office (a
// Bescheid usually comes after the decision), until ReplyWindow has passed since
// the decision or its bytes are removed: soon after the decision as often as an
// open one, then less and less often (lateGap), at once on a nudge while the
// decision is less than a day old, and at once whenever the peer names it in a
// signed Aenderungsmeldung (Changed). Each reply the peer announces is fetched and
// stored (replies.go).
type Tracker struct {
	Client  *Client
	Broker  *broker.Broker
	Peers   []config.Peer
	Offices []string // the peer offices ("peer-<Land>") whose submissions are forwarded
	Log     *slog.Logger
	// PeerOf names the peer a package's peer channel forwards it to (the peer
	// adapter's choice, peer.PeerFor); nil leaves held packages alone.
	PeerOf func(s *submission.Submission) (config.Peer, bool)
	// ReplyWindow is how long after its decision a forwarded package is asked
	// about for its office's replies: as long as its bytes are kept here
	// (retention.package_bytes). 0: DefaultReplyWindow.
	ReplyWindow time.Duration
	// Metrics count the questions and the replies fetched, per peer; nil: none.
	Metrics *Metrics
	// Lease, where several gateways share the store (a cluster:
	// store.Leaser's TryLease), hands one of them each poll interval's turn
	// to ask a peer (takeTurn); nil: every question is asked.
	Lease func(ctx context.Context, name string, slot time.Time, ttl time.Duration) (held bool, release func(), err error)

	replyLog repeatlimit.Limit // a reply that cannot be fetched is said once a minute
	leaseLog repeatlimit.Limit // a lease the store could not answer is said once a minute
	// now is the clock of the lines about a peer that answers no question
	// (answered) and of the interval whose lease is asked for (takeTurn);
	// nil: time.Now. Tests set it.
	now func() time.Time

	mu      sync.Mutex
	late    map[string]*lateEntry // decided, asked for replies: submission id -> when
	lateRef map[Ref]string        // the same by the packages' Ref (Changed)
	open    map[string]string     // submission id -> peer id
	held    map[string]string     // held here after a peer channel: submission id -> peer id, asked once
	lacks   map[string]time.Time  // held packages their peer said it lacks, and when
	// requeued are the held packages heldThere forwarded again (1), and those
	// held again after it, said once (2); until a forwarding of theirs is
	// recorded (Observe).
	requeued map[string]int
	kicks    map[string]chan struct{}          // peer id -> its loop's kick (coalesced)
	retries  map[string]map[string]*fetchRetry // submission id -> peer reply id -> its failed fetches
	down     map[string]*peerDown              // peer id -> since when it answers no question
	wg       sync.WaitGroup
	stop     context.CancelFunc
}

// QuestionTimeout bounds one status question (a batch of up to MaxQuery packages).
const QuestionTimeout = 30 * time.Second

// NudgeGap is the least time between two questions to one peer that a kick (a
// peer's nudge, a new forwarding) may cause: however many nudges come, a peer is
// asked early at most once per gap (or per its poll interval, if that is shorter).
// The nudge needs no credentials, so it must not be worth more than that; a second
// is still quick for a decision to reach the portal. A kick within the gap is
// not lost: the early question follows when the gap has passed.
const NudgeGap = time.Second

// minPoll is the shortest poll interval the tracker keeps.
const minPoll = 50 * time.Millisecond

// HeldEvery is how many of the shortest poll interval pass between two looks at
// the packages held after a peer channel (at the default interval of 10 s: every
// 100 s). Such a package is rare and waits for a person anyway; the look reads
// the held packages' records.
const HeldEvery = 10

// maxHeldAsked bounds the held packages named in one round of questions.
const maxHeldAsked = 4 * MaxQuery

// LacksAgain is how long a held package its peer said it lacks is not named
// again.
const LacksAgain = time.Hour

// DefaultReplyWindow is Tracker.ReplyWindow's default: the retention's default
// for a case's bytes after its decision.
const DefaultReplyWindow = 90 * 24 * time.Hour

// lateKicked: a nudge asks at once about the packages decided less than this ago
// (older ones wait for their turn, so that a nudge costs a question or two).
const lateKicked = 24 * time.Hour

// maxLateGap is the longest time between two questions about a decided package.
const maxLateGap = 12 * time.Hour

// lateEntry is a decided package still asked about for replies.
type lateEntry struct {
	peer    string
	ref     Ref
	decided time.Time // this gateway's time of the decision
	next    time.Time // when it is asked next
}

// lateGap is the time between two questions about a package decided age ago: a
// tenth of its age, at least the poll interval and at most maxLateGap — about
// 250 questions over 90 days, most of them in its first days.
func lateGap(age, poll time.Duration) time.Duration {
	return max(poll, min(age/10, maxLateGap))
}

func (t *Tracker) replyWindow() time.Duration {
	if t.ReplyWindow > 0 {
		return t.ReplyWindow
	}
	return DefaultReplyWindow
}

func pollOf(p config.Peer) time.Duration   { return max(p.Poll(), minPoll) }
func nudgeGap(p config.Peer) time.Duration { return min(NudgeGap, pollOf(p)) }

// Observe is registered with broker.Observe: a forwarded package becomes open, and
// its peer is asked soon.
func (t *Tracker) Observe(s *submission.Submission, e submission.Event) {
	if e.Type != submission.EventForwarded || s.Forward == nil {
		return
	}
	t.mu.Lock()
	t.openLocked(s)
	delete(t.requeued, s.ID) // forwarded again with success (heldThere)
	t.mu.Unlock()
	t.kickPeer(s.Forward.Peer)
}

// openLocked notes the forwarded package s among the open ones; t.mu is held.
func (t *Tracker) openLocked(s *submission.Submission) {
	if t.open == nil {
		t.open = map[string]string{}
	}
	t.open[s.ID] = s.Forward.Peer
}

// Changed is registered as the Receiver's Changed: the peer named the packages
// forwarded to it that changed (a signed Aenderungsmeldung, changes.go). Those
// among the decided ones are due at once, and the peer is asked soon, as on a
// nudge (within NudgeGap). Open ones are named in every question anyway.
//
// A package this tracker does not follow is looked up in the store (adopt): in
// a cluster each gateway's tracker follows the packages it forwarded itself and
// those it found at its start, and the nudge reaches whichever gateway the load
// balancer picks; while the gateway that forwarded a package was down, nobody
// asked about it and the portal waited for its decision (an audit, 2026-12-06).
// Packages forwarded to another peer, or not here at all, are passed over.
// Each package is looked up once, and none after ctx ended (the peer that sent
// the Aenderungsmeldung has gone): in a cluster without quorum a read waits up
// to the store's timeout, and the handler went on with 100 of them, long after
// the peer had given up and while a shutdown waited for it.
func (t *Tracker) Changed(ctx context.Context, peer string, refs []Ref) {
	now := time.Now()
	var unknown []Ref
	t.mu.Lock()
	for _, r := range refs[:min(len(refs), MaxChanges)] {
		id, ok := t.lateRef[r]
		if !ok {
			if !slices.Contains(unknown, r) {
				unknown = append(unknown, r)
			}
			continue
		}
		if e := t.late[id]; e.peer == peer && e.next.After(now) {
			e.next = now
		}
	}
	t.mu.Unlock()
	for _, r := range unknown {
		if ctx.Err() != nil {
			break
		}
		t.adopt(peer, r)
	}
	t.kickPeer(peer)
}

// adopt follows the package ref forwarded to peer if this tracker does not yet
// (take). One store read: the signed Aenderungsmeldung that names it bounds how
// many.
func (t *Tracker) adopt(peer string, ref Ref) {
	s, err := t.Broker.FindMessage(ref.Sender, ref.MessageID)
	if err != nil || s.Forward == nil || s.Forward.Peer != peer {
		return
	}
	t.take(s)
}

// Adopt follows the forwarded package id if this tracker does not yet: another
// gateway of a cluster forwarded it and said so (the gateway relays a core
// NATS message, at most once; Changed and a restart cover one that is lost).
// One store read per message; an id not in the store (a gateway with a store of
// its own on the same NATS) or a package not forwarded is passed over.
func (t *Tracker) Adopt(id string) {
	s, err := t.Broker.Submission(id)
	if err != nil || s.Forward == nil {
		return
	}
	t.take(s)
}

// take follows the forwarded package s unless this tracker does already: as an
// open one, or as a decided one due at once whose office's replies may still
// come. A package forwarded to a peer that is not configured (any more) is not
// taken, and take says so: no goroutine asks that peer, and one held among the
// open packages was memory no question ever freed and a follow counted in no
// series (Start says it at WARN).
func (t *Tracker) take(s *submission.Submission) bool {
	if !t.configured(s.Forward.Peer) {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.open[s.ID]; ok {
		return true
	}
	if _, ok := t.late[s.ID]; ok {
		return true
	}
	if !s.State.Final() {
		t.openLocked(s)
		return true
	}
	if t.repliesMayCome(s) {
		t.lateLocked(s, time.Now())
	}
	return true
}

// configured says whether peer is one of t.Peers.
func (t *Tracker) configured(peer string) bool {
	return slices.ContainsFunc(t.Peers, func(p config.Peer) bool { return p.ID == peer })
}

// lands are the Länder (ARS prefixes) whose places may go to a peer office
// ("peer-<Land>", intake).
var lands = []string{"01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15", "16"}

// startOffices are the peer offices whose forwarded packages Start looks at:
// Offices, and the peer office of every other Land, where packages forwarded
// to a peer that no longer serves it (taken out of the configuration) may
// wait. Those are said, not followed (take).
func (t *Tracker) startOffices() []string {
	out := slices.Clone(t.Offices)
	for _, l := range lands {
		if id := wire.PeerOfficePrefix + l; !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// Kick asks every peer soon: at once, or when a NudgeGap has passed since its last
// question (coalesced). A nudge names no peer, so it kicks them all.
func (t *Tracker) Kick() {
	for _, p := range t.Peers {
		t.kickPeer(p.ID)
	}
}

func (t *Tracker) kickPeer(id string) {
	select {
	case t.kickOf(id) <- struct{}{}:
	default:
	}
}

func (t *Tracker) kickOf(id string) chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.kicks == nil {
		t.kicks = map[string]chan struct{}{}
	}
	k := t.kicks[id]
	if k == nil {
		k = make(chan struct{}, 1)
		t.kicks[id] = k
	}
	return k
}

// Start loads the open packages and starts asking, one goroutine per peer. Close
// stops.
func (t *Tracker) Start(ctx context.Context) error {
	t.replyLog.Every = time.Minute
	t.leaseLog.Every = time.Minute
	if err := t.load(ctx); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	t.stop = cancel
	for _, p := range t.Peers {
		t.wg.Add(1)
		go t.follow(runCtx, p, t.kickOf(p.ID))
	}
	if t.PeerOf != nil && len(t.Peers) > 0 {
		t.wg.Add(1)
		go t.watchHeld(runCtx)
	}
	return nil
}

// load takes the forwarded packages of the store to follow (take), and says at
// WARN, per peer no longer configured, how many forwarded to it nobody follows.
func (t *Tracker) load(ctx context.Context) error {
	if t.Log == nil {
		t.Log = slog.Default()
	}
	subs, err := t.Broker.Forwarded(ctx, t.startOffices(), time.Now().Add(-t.replyWindow()))
	if err != nil {
		return err
	}
	type counts struct{ open, decided int }
	unfollowed := map[string]*counts{} // peer no longer configured -> its packages
	for _, s := range subs {
		if t.take(s) { // a decided one is asked about at the first question
			continue
		}
		n := unfollowed[s.Forward.Peer]
		if n == nil {
			n = &counts{}
			unfollowed[s.Forward.Peer] = n
		}
		if s.State.Final() {
			n.decided++
		} else {
			n.open++
		}
	}
	for _, peer := range slices.Sorted(maps.Keys(unfollowed)) {
		n := unfollowed[peer]
		t.Log.Warn("packages forwarded to a peer gateway that is no longer configured are followed by nobody: the portal reads them as forwarded, and their office's decision (open) and replies (decided) do not come; configure the peer again under this id to follow them (amtsbote admin list -state forwarded lists them)",
			"peer", peer, "open", n.open, "decided", n.decided)
	}
	return nil
}

// SayUnfollowed is the start's look of a gateway without peers, where no
// tracker runs: packages forwarded before, to peers all taken out since, are
// said as Start says them. replyWindow as Tracker.ReplyWindow.
func SayUnfollowed(ctx context.Context, b *broker.Broker, log *slog.Logger, replyWindow time.Duration) error {
	return (&Tracker{Broker: b, Log: log, ReplyWindow: replyWindow}).load(ctx)
}

// watchHeld looks at the held packages every HeldEvery shortest poll intervals
// (the first time at once: a package held before a restart).
func (t *Tracker) watchHeld(ctx context.Context) {
	defer t.wg.Done()
	every := time.Duration(HeldEvery) * pollOf(t.Peers[0])
	for _, p := range t.Peers[1:] {
		every = min(every, time.Duration(HeldEvery)*pollOf(p))
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		t.findHeld(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// findHeld notes the packages held after a peer channel that were never recorded
// as forwarded, with their peer, and kicks those peers.
func (t *Tracker) findHeld(ctx context.Context) {
	found := map[string]string{}
	seen := map[string]bool{}
	t.mu.Lock()
	lacks := maps.Clone(t.lacks)
	t.mu.Unlock()
	err := t.Broker.InState(submission.StateHeld, func(s *submission.Submission) bool {
		seen[s.ID] = true
		if at, ok := lacks[s.ID]; ok && time.Since(at) < LacksAgain {
			return ctx.Err() == nil
		}
		if s.Forward == nil && s.BytesRemovedAt == nil && slices.ContainsFunc(s.Targets, func(tg submission.Target) bool { return tg.Channel == channel.Peer }) {
			if p, ok := t.PeerOf(s); ok {
				found[s.ID] = p.ID
			}
		}
		return len(found) < maxHeldAsked && ctx.Err() == nil
	})
	if err != nil {
		if ctx.Err() == nil {
			t.Log.Warn("listing the packages held after a peer channel failed; will look again", "err", err)
		}
		return
	}
	if len(found) < maxHeldAsked {
		// A whole look: forget what the peers lacked of packages no longer held.
		t.mu.Lock()
		maps.DeleteFunc(t.lacks, func(id string, _ time.Time) bool { return !seen[id] })
		// Held again and said, and not held now: replayed by an operator, or
		// deleted. (One forwarded again is not held for a moment; Observe
		// forgets it once its forwarding is recorded.)
		maps.DeleteFunc(t.requeued, func(id string, n int) bool { return n > 1 && !seen[id] })
		t.mu.Unlock()
	}
	if len(found) == 0 {
		return
	}
	t.mu.Lock()
	if t.held == nil {
		t.held = map[string]string{}
	}
	maps.Copy(t.held, found)
	t.mu.Unlock()
	for _, peer := range found {
		t.kickPeer(peer)
	}
}

// Close stops the tracker and waits for it.
func (t *Tracker) Close() error {
	if t.stop != nil {
		t.stop()
	}
	t.wg.Wait()
	return nil
}

// follow asks one peer about its open packages at its poll interval, and early
// when kicked, but not within a NudgeGap of the last question.
func (t *Tracker) follow(ctx context.Context, p config.Peer, kick <-chan struct{}) {
	defer t.wg.Done()
	var last time.Time // when the last question began
	early := false     // kicked since
	lost := 0          // turns another gateway took in a row (takeTurn)
	timer := time.NewTimer(pollOf(p))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
			early = true
		case <-timer.C:
		}
		due := last.Add(pollOf(p))
		if early {
			due = last.Add(nudgeGap(p))
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			continue
		}
		kicked := early
		early = false
		ids := t.openOf(p.ID, kicked)
		if len(ids) == 0 {
			// Nothing to ask about: no question, and no gap for the next kick.
			timer.Reset(pollOf(p))
			continue
		}
		var release func() // this interval's lease, if this gateway took it
		if !kicked {
			mine, rel := t.turn(ctx, p, &lost)
			if !mine {
				// Another gateway of the cluster asks in this interval.
				timer.Reset(t.nextTurn(p))
				continue
			}
			release = rel
		}
		last = time.Now()
		t.ask(ctx, p, ids, release)
		if t.leased(p) {
			timer.Reset(t.nextTurn(p))
		} else {
			timer.Reset(time.Until(last.Add(pollOf(p))))
		}
	}
}

// A cluster's gateways share one store and, through the forwarded message
// (gateway/peers_cluster.go), follow the same packages: each asked the peer
// about all of them at every poll interval, so a peer got as many questions
// as the cluster has gateways, each about the same packages (up to 500 a
// question, each a record read there). Now the question on the timer is asked
// by one gateway per interval: the first to take the interval's lease
// (lease.federation-poll.<peer>.<interval's start>). Each tries at a random
// moment in the first half of the interval, so the turn goes round: a gateway
// that missed the forwarded message of a package (at most once) follows it
// alone, and must get turns too. A question a kick causes (a nudge, a new
// forwarding, an Aenderungsmeldung: each reaches one gateway) is asked by
// that gateway at once, as before. Without an answer from the store the
// gateway asks: a question too many costs the peer a question, one too few
// delays a portal. Poll intervals under a second (tests) are not leased: the
// lease's slot is a second.

// A question asked in a turn that fails gives the interval's lease back
// (ask), so that a gateway that has not tried for this interval yet may take
// it and ask: what failed may be this gateway's own (its network, its
// outbound TLS files, its clock, a peer's node behind the load balancer).
// The lease was kept, and the interval was lost for every gateway of the
// cluster (an audit, 2026-12-06). store.Leaser says the same of every holder
// whose run failed, and the retention does it too. A peer that is down is
// then asked by each gateway that finds the interval free, up to one question
// per gateway an interval — what it got before the turns, and only while
// every question fails.

// leased says whether questions to p on the timer take turns (takeTurn).
func (t *Tracker) leased(p config.Peer) bool {
	return t.Lease != nil && pollOf(p) >= time.Second
}

// takeTurn says whether this gateway asks p on the timer in the current poll
// interval: the interval's lease is its (release gives it back), or there is
// no lease to take (release nil).
func (t *Tracker) takeTurn(ctx context.Context, p config.Peer) (mine bool, release func()) {
	if !t.leased(p) {
		return true, nil
	}
	slot := t.clock().Truncate(pollOf(p))
	held, release, err := t.Lease(ctx, "federation-poll."+p.ID, slot, 2*pollOf(p))
	if ctx.Err() != nil {
		// Closed while the store was asked: no question, and no record read
		// for one (each read bounded by the store's timeout alone).
		return false, nil
	}
	if err != nil {
		if t.leaseLog.Allow(time.Now()) {
			t.Log.Warn("could not ask the store whose turn it is to ask the peer gateway; asking (at most one such line a minute)", "peer", p.ID, "err", err)
		}
		return true, nil
	}
	if !held {
		return false, nil
	}
	return true, release
}

// MaxLostTurns is how many turns in a row a gateway leaves to the others
// before it asks on the timer all the same. The first to try takes a turn, and
// an interval's start is each gateway's own clock: one whose clock runs half
// an interval ahead of the others' takes nearly every turn, and a package
// another gateway follows alone (it missed the forwarded message) waited for
// a kick (an audit, 2026-12-06). With it such a package waits at most this
// many intervals and one (110 s at the default 10 s); in step, with three
// gateways, a gateway loses eleven in a row in about one interval of a
// hundred, and the peer gets a question more then.
const MaxLostTurns = 10

// turn is takeTurn with a bound on the turns lost in a row (MaxLostTurns),
// counted in lost.
func (t *Tracker) turn(ctx context.Context, p config.Peer, lost *int) (mine bool, release func()) {
	if mine, release := t.takeTurn(ctx, p); mine {
		*lost = 0
		return true, release
	}
	if ctx.Err() != nil {
		return false, nil
	}
	if *lost++; *lost > MaxLostTurns {
		*lost = 0
		return true, nil
	}
	return false, nil
}

// ask asks p about ids (poll) in a turn whose lease release gives back (nil:
// none taken), and gives it back if a question failed, for another gateway
// to ask in this interval. Not after Close: the question was cut short, not
// failed, and a shutdown does not wait for the store.
func (t *Tracker) ask(ctx context.Context, p config.Peer, ids []string, release func()) {
	if err := t.poll(ctx, p, ids); err != nil && release != nil && ctx.Err() == nil {
		release()
	}
}

// nextTurn is the time until this gateway tries for the next interval's turn
// to ask p: a random moment in its first half.
func (t *Tracker) nextTurn(p config.Peer) time.Duration {
	poll := pollOf(p)
	next := time.Now().Truncate(poll).Add(poll + rand.N(poll/2))
	return time.Until(next)
}

// openOf lists the open packages forwarded to the peer, those held here that it
// may have (findHeld), and the decided ones whose turn has come (all decided
// less than lateKicked ago when kicked). Maps are read in no order, so a
// question of more than MaxQuery packages, or an answer with more replies than
// it may carry, names others first every time.
func (t *Tracker) openOf(peer string, kicked bool) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ids []string
	for _, m := range []map[string]string{t.open, t.held} {
		for id, p := range m {
			if p == peer {
				ids = append(ids, id)
			}
		}
	}
	now := time.Now()
	for id, e := range t.late {
		if e.peer == peer && (!now.Before(e.next) || kicked && now.Sub(e.decided) < lateKicked) {
			ids = append(ids, id)
		}
	}
	return ids
}

// stillAsked says whether the decided package s is still asked about for its
// office's replies, and if so moves it from the open packages to the decided
// ones (or keeps it there), to be asked next after lateGap.
func (t *Tracker) stillAsked(s *submission.Submission, p config.Peer) bool {
	if !t.repliesMayCome(s) {
		t.done(s.ID)
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.open, s.ID)
	e := t.lateLocked(s, time.Time{})
	e.next = time.Now().Add(lateGap(time.Since(e.decided), pollOf(p)))
	return true
}

// repliesMayCome says whether the decided package s is asked about for its
// office's replies: its bytes are kept and its decision is within ReplyWindow.
func (t *Tracker) repliesMayCome(s *submission.Submission) bool {
	return s.BytesRemovedAt == nil && s.Decision != nil && time.Since(s.Decision.DecidedLocally()) < t.replyWindow()
}

// lateLocked notes s among the decided packages asked about (next: when),
// unless it is there; t.mu is held.
func (t *Tracker) lateLocked(s *submission.Submission, next time.Time) *lateEntry {
	if t.late == nil {
		t.late = map[string]*lateEntry{}
	}
	e := t.late[s.ID]
	if e == nil {
		e = &lateEntry{peer: s.Forward.Peer, ref: Ref{Sender: s.Sender, MessageID: s.MessageID}, decided: s.Decision.DecidedLocally(), next: next}
		t.late[s.ID] = e
		if t.lateRef == nil {
			t.lateRef = map[Ref]string{}
		}
		t.lateRef[e.ref] = s.ID
	}
	return e
}

// Poll asks one peer about the given submissions once (also used by tests) and
// returns the error of a question that failed; nil if every one was answered
// (or none asked).
func (t *Tracker) poll(ctx context.Context, p config.Peer, ids []string) error {
	var fetch []announced
	asked, failed := false, error(nil) // a question was put (not cut short by Close); the one that failed
	for start := 0; start < len(ids); start += MaxQuery {
		batch := ids[start:min(start+MaxQuery, len(ids))]
		subs := map[Ref]*submission.Submission{}
		var refs []Ref
		have := map[Ref]int{} // replies asked for: those after the ones here
		for _, id := range batch {
			if ctx.Err() != nil {
				// Closed: each read waits up to the store's timeout (a cluster's
				// store out of reach), and a shutdown waited for every one.
				return failed
			}
			s, err := t.Broker.Submission(id)
			// Taken off the held list whatever the record says now: one
			// forwarded meanwhile (an operator's redeliver) or deleted stayed
			// on it for good, named in every question after.
			wasHeld := t.askHeld(id)
			if err == nil && s.Forward == nil && wasHeld {
				if s.State == submission.StateHeld {
					ref := Ref{Sender: s.Sender, MessageID: s.MessageID}
					subs[ref] = s
					refs = append(refs, ref)
				}
				continue
			}
			if err != nil && !errors.Is(err, broker.ErrNotFound) {
				// The store could not answer now (a cluster without quorum for a
				// moment): asked about at the next question. It was dropped, and
				// nobody asked about it again until a restart.
				continue
			}
			if err != nil || s.Forward == nil || s.State.Final() && !t.stillAsked(s, p) {
				t.done(id)
				continue
			}
			ref := Ref{Sender: s.Sender, MessageID: s.MessageID}
			subs[ref] = s
			refs = append(refs, ref)
			if s.BytesRemovedAt == nil {
				// A case erased here takes no reply (ErrBytesRemoved): asked for,
				// each one the peer's office sent was fetched and refused at every
				// poll until the office decided, and counted as the peer's failure.
				have[ref] = heldPrefix(s)
			}
		}
		if len(refs) == 0 {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, QuestionTimeout)
		rp, err := t.Client.StatusWithReplies(qctx, p, refs, have)
		cancel()
		if ctx.Err() == nil {
			t.Metrics.asked(p.ID, err) // not a question cut short by Close
			asked, failed = true, err
		}
		if err != nil {
			break // the replies announced to the batches before are fetched
		}
		for _, it := range rp.Items {
			s, ok := subs[it.Ref]
			if !ok || it.State == "" {
				continue
			}
			if s.Forward == nil {
				t.heldThere(p, s, it.State)
				continue
			}
			if it.State == StateUnknown {
				t.unknown(p, s)
				continue
			}
			u := submission.PeerStatus{Peer: p.ID, State: submission.State(it.State), Gateway: it.ReceiverGateway, DeliveredAt: it.DeliveredAt, Detail: it.Note}
			switch u.State {
			case submission.StateDelivered, submission.StateAccepted, submission.StateRejected:
				// The office has it: named with the gateway where it is, in this
				// gateway's Zustellbestaetigung as in its record.
				u.Receiver = submission.ReceiverAt(it.Receiver, cmp.Or(it.ReceiverGateway, p.ID))
			}
			if it.Decision != nil {
				u.Decision = &submission.Decision{Outcome: it.Decision.Outcome, Reason: it.Decision.Reason, At: it.Decision.At, Actor: it.Decision.Actor}
			}
			cur, err := t.Broker.RecordPeerStatus(s.ID, u)
			if err != nil {
				t.Log.Error("record the peer's status", "submission", s.ID, "peer", p.ID, "err", err)
				continue
			}
			if len(it.Replies) > 0 {
				fetch = append(fetch, announced{s, it, have[it.Ref]})
			}
			if cur != nil && cur.State.Final() {
				t.stillAsked(cur, p)
			}
		}
	}
	if asked {
		t.answered(p, failed)
	}
	// The replies' bytes after every answer is recorded: a Bescheid of 64 MiB on
	// a slow link held back the states of the packages after it in the answer,
	// and every later batch's question.
	for _, f := range fetch {
		if !t.fetchReplies(ctx, p, f.s, f.it, f.from) {
			break // the peer does not answer now: the rest at the next question
		}
	}
	return failed
}

// A peer that answers no question (down, unreachable, refusing, an answer that
// does not verify) was said at WARN at every poll: every 10 s, 8,640 lines a
// day of a peer's outage. Now its first failed question is said at once, and
// while it fails again at most once a minute (DownSaidEvery, as the outbound TLS
// and the reply-fetch lines), with how long and how many questions; the first
// question it answers again is said once at INFO. Per gateway: in a cluster each
// says what its own questions met.

// DownSaidEvery is the least time between two lines about one peer that still
// answers no question.
const DownSaidEvery = time.Minute

// peerDown is a peer whose last question failed: since when, how many
// questions in a row, and when that was last said.
type peerDown struct {
	since  time.Time
	failed int
	said   repeatlimit.Limit
}

func (t *Tracker) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

// answered notes the outcome of one poll of p (err: the question that failed;
// nil: all were answered) and says a change of state in the log.
func (t *Tracker) answered(p config.Peer, err error) {
	now := t.clock()
	t.mu.Lock()
	d := t.down[p.ID]
	if err == nil {
		delete(t.down, p.ID)
		t.mu.Unlock()
		if d != nil {
			t.Log.Info("peer gateway answers status questions again", "peer", p.ID,
				"down_for", now.Sub(d.since).Round(time.Second).String(), "failed_questions", d.failed)
		}
		return
	}
	if d == nil {
		d = &peerDown{since: now, said: repeatlimit.Limit{Every: DownSaidEvery}}
		if t.down == nil {
			t.down = map[string]*peerDown{}
		}
		t.down[p.ID] = d
	}
	d.failed++
	failed, since := d.failed, d.since
	say := d.said.Allow(now)
	t.mu.Unlock()
	if !say {
		return
	}
	// The message's start is what the alert AmtsbotePeerUnanswered names.
	t.Log.Warn("asking peer gateway about forwarded packages failed; will ask again (said when it begins, then at most once a minute while it lasts, and when it answers again)",
		"peer", p.ID, "down_for", now.Sub(since).Round(time.Second).String(), "failed_questions", failed, "err", err)
}

// announced is a package whose status answer announced replies, those after
// the first from of the peer's list.
type announced struct {
	s    *submission.Submission
	it   Status
	from int
}

// heldPrefix is how many of the peer's replies to the forwarded package s, from
// its first on, s holds: the question asks for those after them. A reply keeps
// its place in the peer's list (Reply.PeerSeq), as fetchReplies goes on past
// one that fails: the count of replies held asked past the failed one, which
// nobody fetched again — not this gateway after a restart, nor another of a
// cluster. Replies without a place (stored by a build that fetched them in
// order and stopped at a failure) are the peer's first ones, in their order.
func heldPrefix(s *submission.Submission) int {
	held := make(map[int]bool, len(s.Replies))
	for i, r := range s.Replies {
		held[cmp.Or(r.PeerSeq, i+1)] = true
	}
	n := 0
	for held[n+1] {
		n++
	}
	return n
}

// unknown records, once, that the peer does not know a package it acknowledged
// with its signed receipt: it lost it (a restore from an older backup, a store
// replaced) or forgot it too early. It was skipped, and the package stayed
// "delivered" here with nothing more ever coming, seen by nobody. Now its event
// log says so (the portal reads it), the operator's log warns once, and the
// peer is still asked (it may find it again). Within two poll intervals of the
// receipt an answer "unknown" is taken for a peer still settling, not a loss.
func (t *Tracker) unknown(p config.Peer, s *submission.Submission) {
	if s.Forward.PeerState == StateUnknown || time.Since(s.Forward.At) < 2*pollOf(p) {
		return
	}
	t.Log.Warn("a peer gateway does not know a package it acknowledged: ask its operator (the package's bytes stay here until the retention removes them)",
		"peer", p.ID, "submission", s.ID, "peer_submission", s.Forward.PeerSubmissionID)
	u := submission.PeerStatus{Peer: p.ID, State: StateUnknown,
		Detail: "the gateway does not know this package although it acknowledged it on " + s.Forward.At.UTC().Format(time.RFC3339)}
	if _, err := t.Broker.RecordPeerStatus(s.ID, u); err != nil {
		t.Log.Error("record the peer's status", "submission", s.ID, "peer", p.ID, "err", err)
	}
}

func (t *Tracker) done(id string) {
	t.mu.Lock()
	delete(t.open, id)
	delete(t.retries, id)
	if e := t.late[id]; e != nil {
		// The Ref's index entry only if it is this package's: a case erased
		// here and a new one under the same sender and NachrichtID left the
		// new one unindexed, and the peer's Aenderungsmeldung did not bring
		// its question forward.
		if t.lateRef[e.ref] == id {
			delete(t.lateRef, e.ref)
		}
		delete(t.late, id)
	}
	t.mu.Unlock()
}

// fetchReplies fetches and stores the replies the peer announced for s that s
// does not hold, oldest first; the answer lists those after the first from of
// the peer's list, and each is stored with its place in it. One that fails
// (said once a minute) is tried again later (fetchFailed) and the next ones
// are fetched meanwhile: a reply the peer cannot send as announced held back
// every reply after it, a Bescheid behind a damaged Rückfrage for good. The
// question asks from the first the case lacks (heldPrefix), so the failed one
// is announced again.
//
// A fetch that does not reach the peer — unreachable, a 5xx or 429, no answer
// or no bytes within its time — ends the round: it returns false, and poll
// fetches nothing more until the next question. Each fetch has its own time
// (up to 17 minutes for 64 MiB), and a peer whose reply endpoint hung was
// asked for every announced reply in turn, up to 1,000 an answer: its next
// status question, and the decisions of every package forwarded there, waited
// that long (an audit, 2026-12-07). What the peer refuses (404, 410) or sends
// other than announced is that reply's fault, and the next ones are fetched.
func (t *Tracker) fetchReplies(ctx context.Context, p config.Peer, s *submission.Submission, it Status, from int) bool {
	if s.BytesRemovedAt != nil {
		return true // not asked for (poll); a peer that announces them anyway is not followed
	}
	for i, a := range it.Replies {
		if ctx.Err() != nil {
			return false
		}
		if slices.ContainsFunc(s.Replies, func(r submission.Reply) bool { return r.MessageID == a.ID }) {
			continue
		}
		if !t.fetchDue(s.ID, a.ID) {
			continue // failed before, and its next try has not come (fetchFailed)
		}
		// Time by size, as a forwarding's: 64 MiB at 64 KiB/s.
		fctx, cancel := context.WithTimeout(ctx, QuestionTimeout+time.Duration(a.Size/(64<<10))*time.Second)
		rc, err := t.Client.FetchReply(fctx, p, it.Ref, a)
		if err == nil {
			var r submission.Reply
			r, err = t.Broker.RecordPeerReply(fctx, s.ID, p.ID, submission.Reply{Kind: a.Kind, MessageID: a.ID,
				ContentType: a.ContentType, FileName: a.FileName, Size: a.Size, SHA256: a.SHA256, At: a.At, Actor: a.Actor, PeerSeq: from + i + 1}, rc)
			rc.Close()
			if err == nil {
				t.Log.Info("a reply of the office at the peer gateway is here for the portal", "submission", s.ID, "peer", p.ID, "reply", r.ID, "kind", r.Kind, "size", r.Size)
			}
		}
		timedOut := fctx.Err() != nil // read before cancel, which sets it
		cancel()
		if ctx.Err() != nil {
			return false
		}
		t.Metrics.fetched(p.ID, err)
		if err == nil {
			t.fetchDone(s.ID, a.ID)
			continue
		}
		next := t.fetchFailed(s.ID, a.ID)
		gone := timedOut || peerNotAnswering(err)
		if t.replyLog.Allow(time.Now()) {
			t.Log.Warn("fetching a reply from the peer gateway failed; will ask again (at most one such line a minute)",
				"submission", s.ID, "peer", p.ID, "peer_reply", a.ID, "next_try_in", next.Round(time.Second).String(),
				"rest_at_next_question", gone, "err", err)
		}
		if gone {
			return false
		}
	}
	return true
}

// peerNotAnswering says whether err, a failed fetch of a reply, says the peer
// does not answer now (any fetch would fail alike) rather than that this reply
// cannot be had.
func peerNotAnswering(err error) bool {
	var (
		un *UnreachableError
		st *StatusError
		ut *untrustedPeer
		ne net.Error
	)
	return errors.As(err, &un) || errors.As(err, &st) || errors.As(err, &ut) || errors.As(err, &ne)
}

// A reply the peer announces but cannot send as announced (its stored bytes
// damaged, this gateway's disk full) was fetched again at every question: up to
// 64 MiB every poll interval, 10 s by default, for as long as it failed. Its
// next try now waits FetchRetryFirst after the first failure, twice as long
// after each further one, at most FetchRetryMax: half the window of the alert
// AmtsbotePeerRepliesFailing (failures and nothing stored in an hour), which
// must see one in every hour while it lasts. The replies after it do not wait
// (fetchReplies).
const (
	FetchRetryFirst = 30 * time.Second
	FetchRetryMax   = 30 * time.Minute
)

// fetchRetry is a reply whose fetch failed: how often, and when it is tried
// next.
type fetchRetry struct {
	fails int
	next  time.Time
}

// fetchDue says whether reply of submission id may be fetched now.
func (t *Tracker) fetchDue(id, reply string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.retries[id][reply]
	return r == nil || !time.Now().Before(r.next)
}

// fetchFailed notes a failed fetch of reply of submission id and returns the
// time until its next try.
func (t *Tracker) fetchFailed(id, reply string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.retries == nil {
		t.retries = map[string]map[string]*fetchRetry{}
	}
	if t.retries[id] == nil {
		t.retries[id] = map[string]*fetchRetry{}
	}
	r := t.retries[id][reply]
	if r == nil {
		r = &fetchRetry{}
		t.retries[id][reply] = r
	}
	r.fails++
	wait := min(FetchRetryFirst<<min(r.fails-1, 10), FetchRetryMax)
	r.next = time.Now().Add(wait)
	return wait
}

// fetchDone forgets the failures of reply of submission id: it was stored.
func (t *Tracker) fetchDone(id, reply string) {
	t.mu.Lock()
	delete(t.retries[id], reply)
	if len(t.retries[id]) == 0 {
		delete(t.retries, id)
	}
	t.mu.Unlock()
}

// askHeld takes a held package off the list to ask about (it is named in one
// question; the next look at the held packages names it again if it is still
// held), and says whether it was on it.
func (t *Tracker) askHeld(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.held[id]
	delete(t.held, id)
	return ok
}

// heldThere acts on the peer's answer about a package held here after its peer
// channel: if the peer has it (any state but unknown), it is delivered again, and
// the peer answers the repeated forwarding with its first receipt.
//
// Once per package and run of the gateway (requeued): when the repeat fails
// for good as well — the peer's first receipt, signed with the certificate it
// had then, does not verify once that certificate was replaced in peers/ or
// has ended — the package was held again, named at the next look, forwarded
// again and held again, every HeldEvery poll intervals for good, three events
// a time (an audit, 2026-12-07). Held again, it stays held for the operator.
func (t *Tracker) heldThere(p config.Peer, s *submission.Submission, state string) {
	if state == StateUnknown || state == "" {
		// Not there: not named again for a while, so that the packages the peer
		// lacks (oldest first in the held index) do not fill every look's
		// maxHeldAsked and leave a newer one never asked about.
		t.mu.Lock()
		if t.lacks == nil {
			t.lacks = map[string]time.Time{}
		}
		t.lacks[s.ID] = time.Now()
		t.mu.Unlock()
		return
	}
	t.mu.Lock()
	if t.requeued == nil {
		t.requeued = map[string]int{}
	}
	n := t.requeued[s.ID]
	if n > 0 {
		// Held again after it was forwarded again: not named for a while
		// (as one the peer lacks), and not forwarded again by itself.
		if t.lacks == nil {
			t.lacks = map[string]time.Time{}
		}
		t.lacks[s.ID] = time.Now()
	}
	t.requeued[s.ID] = min(n+1, 2)
	t.mu.Unlock()
	if n > 1 {
		return // said
	}
	if n == 1 {
		t.Log.Warn("a package held here is at the peer gateway, but forwarding it again did not bring the peer's receipt either: it stays held for the operator (its held reason says why; amtsbote admin replay forwards it again)",
			"submission", s.ID, "peer", p.ID, "peer_state", state)
		return
	}
	t.Log.Info("a package held here is at the peer gateway (a forwarding's answer was lost): forwarding it again for the peer's receipt",
		"submission", s.ID, "peer", p.ID, "peer_state", state)
	if _, err := t.Broker.RedeliverBecause(s.ID, "gateway "+t.Client.Trust.Self(),
		"requeued: gateway "+p.ID+" has the package (an earlier forwarding's answer did not arrive); forwarded again for its receipt"); err != nil {
		// Not forwarded again (the store did not answer, say): not counted
		// either, or the next look took it for one whose repeat failed too
		// and left it held for good.
		t.mu.Lock()
		delete(t.requeued, s.ID)
		t.mu.Unlock()
		t.Log.Warn("could not deliver again a held package the peer gateway has; tried again at the next look, or an operator's redeliver does it", "submission", s.ID, "peer", p.ID, "err", err)
	}
}

// Open reports how many forwarded packages wait for their peer's decision.
func (t *Tracker) Open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.open)
}
