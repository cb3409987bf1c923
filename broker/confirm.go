package broker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// watchConfirmations asks the adapters that confirm later (adapters.Confirmer) about
// every handed-over submission: at ConfirmEvery and whenever an adapter signals a
// change. The handed-over index lives in the store, so after a restart nothing is
// forgotten; the adapter answers from the receiver's side (the case folder is gone),
// never from memory.
func (b *Broker) watchConfirmations() {
	defer b.loops.Done()
	var changes []<-chan struct{}
	for _, name := range b.adapters.Channels() {
		a, _ := b.adapters.Get(name)
		if c, ok := a.(adapters.Confirmer); ok && c.Changes() != nil {
			changes = append(changes, c.Changes())
		}
	}
	kick := make(chan struct{}, 1)
	for _, ch := range changes {
		go func(ch <-chan struct{}) {
			for {
				select {
				case <-b.ctx.Done():
					return
				case <-ch:
					select {
					case kick <- struct{}{}:
					default:
					}
				}
			}
		}(ch)
	}
	t := time.NewTicker(b.cfg.ConfirmEvery)
	defer t.Stop()
	for {
		b.checkHandedOver()
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
	}
}

// askKey names an office's channel for the confirmation questions.
type askKey struct{ office, channel string }

// errStillAsking: an earlier question to the same office and channel has not
// returned yet, so this one was not put.
var errStillAsking = errors.New("broker: a confirmation question to this office and channel has not returned")

// errNoAnswer: the question was put but did not return within the attempt
// timeout; it goes on alone. Told apart from errStillAsking because the round
// moves its starting point past a case that was asked, not past one that was not.
var errNoAnswer = errors.New("broker: the confirmation question did not return within the attempt timeout")

// ask puts one confirmation question, bounded by the attempt timeout whether or
// not the adapter heeds its context: a transfer folder's stat on a share whose
// server hangs blocks in the kernel, and one office's hung share held every
// other office's confirmations for as long (for ever on a hard mount). A
// question that does not return in time goes on alone; until it has returned,
// no other question goes to the same office and channel, so a hung share costs
// one goroutine, not one per package per round.
func (b *Broker) ask(c adapters.Confirmer, key askKey, d adapters.Delivery) (adapters.Confirmation, bool, error) {
	if _, busy := b.asking.LoadOrStore(key, true); busy {
		return adapters.Confirmation{}, false, errStillAsking
	}
	type answer struct {
		conf adapters.Confirmation
		done bool
		err  error
	}
	got := make(chan answer, 1)
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.AttemptTimeout)
	defer cancel()
	go func() {
		conf, done, err := c.Confirmed(ctx, d)
		b.asking.Delete(key) // before the answer: the caller's next question may be to the same pair
		got <- answer{conf, done, err}
	}()
	select {
	case a := <-got:
		return a.conf, a.done, a.err
	case <-ctx.Done():
		select {
		case a := <-got: // it came with the deadline
			return a.conf, a.done, a.err
		default:
			return adapters.Confirmation{}, false, errNoAnswer
		}
	}
}

// confirmsLater reports whether the channel's adapter is an adapters.Confirmer.
func (b *Broker) confirmsLater(channel string) bool {
	a, ok := b.adapters.Get(channel)
	if !ok {
		return false
	}
	_, ok = a.(adapters.Confirmer)
	return ok
}

// withdrawn moves a case handed over to a channel the office no longer has on to
// its next channel, as a package waiting for such a channel is (dispatch): the
// office may have it from the channel already (a clerk may then see it twice),
// but no confirmation can come from there any more, and a case that waits for
// one for ever reaches no one. A package forwarded to a peer gateway is that
// gateway's to deliver (Forward): it stays, and the log says why its status no
// longer moves.
func (b *Broker) withdrawn(s *submission.Submission, channel string) {
	if s.Forward != nil {
		if _, told := b.withdrawnTold.LoadOrStore(askKey{s.OfficeID, channel}, true); !told {
			b.log.Warn("channel no longer configured for the office: the status of packages forwarded on it no longer moves",
				"office", s.OfficeID, "channel", channel)
		}
		return
	}
	why := submission.Reason{Public: "channel " + channel + " is no longer configured for the office; its confirmation cannot be asked for",
		Internal: "handed over to " + channel + " before the channel was taken from the office's configuration; the office may have the package from there already"}
	b.moveOn(s, channel, "channel no longer configured for the office: a package handed over on it goes on with the office's channels as configured now",
		func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
			return cur.ChannelWithdrawn(now, why, b.planOf(cur.OfficeID))
		})
}

// moveOn records change for a handed-over package that goes on (withdrawn,
// reoffer), says so in the log and queues the package.
func (b *Broker) moveOn(s *submission.Submission, channel, msg string, change func(cur *submission.Submission, now time.Time) ([]submission.Event, error)) {
	cur, err := b.changeSub(s.ID, change)
	if err != nil {
		b.log.Error("record a handed-over package going on", "submission", s.ID, "channel", channel, "err", err)
		return
	}
	b.log.Warn(msg, "submission", s.ID, "office", s.OfficeID, "channel", channel)
	if cur != nil && cur.State.Dispatchable() {
		b.enqueue(cur)
	}
}

// reach is how a channel a package waits on handed over stands for its office now.
type reach int

const (
	reaches    reach = iota // configured, and the office fetches there (or it confirms later)
	reachGone               // taken from the office's configuration, or from the gateway
	reachMoved              // configured, but the office no longer fetches where the package waits
)

// reachOf says how the channel ch stands for the office, with its target as
// configured now. Map look-ups only: it runs for every handed-over package.
func (b *Broker) reachOf(office, ch string) (adapters.Target, reach) {
	target, ok := b.channels.Target(office, ch)
	if !ok {
		return target, reachGone
	}
	a, ok := b.adapters.Get(ch)
	if !ok {
		return target, reachGone
	}
	if r, ok := a.(adapters.Reacher); ok && !r.Reaches(office, target) {
		return target, reachMoved
	}
	return target, reaches
}

// reoffer delivers a package handed over on a channel that no longer reaches
// its office (adapters.Reacher) again, with the office's channels as configured
// now (Submission.Reoffer).
func (b *Broker) reoffer(s *submission.Submission, channel string) {
	why := submission.Reason{Public: "channel " + channel + " no longer reaches the office where the package waited; delivered again with the office's channels as configured now",
		Internal: "handed over to " + channel + " before its configuration changed (an XTA office moved to push, the office's mailbox users removed); the office may have fetched it from there already"}
	b.moveOn(s, channel, "channel no longer reaches the office where a handed-over package waits: delivering it again as configured now",
		func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
			return cur.Reoffer(now, why, b.planOf(cur.OfficeID))
		})
}

// troubleLogEvery is how often the log says, per office and channel, that its
// confirmation questions keep failing or do not return.
const troubleLogEvery = time.Minute

// askTrouble is what went wrong with the confirmation questions to one office's
// channel in one round.
type askTrouble struct {
	failed   int           // questions that returned an error
	took     time.Duration // how long those took together
	reason   string        // the first one's (adapters.LogReason)
	hung     bool          // a question did not return within the attempt timeout
	notAsked int           // packages passed over this round for the failures or the hang
	next     string        // the first of them in the round's order: where the next round starts
}

// pass notes the package id passed over this round.
func (t *askTrouble) pass(id string) {
	t.notAsked++
	if t.next == "" {
		t.next = id
	}
}

// skips reports whether the office's channel gets no more questions this round:
// one did not return, or its failed ones took longer together than one attempt
// may. Quick failures do not skip: one bad case (a corrupt ledger record) would
// otherwise hold back the office's later cases for good; slow ones would hold
// back every other office's confirmations. The cases a skip passes over come
// first in the next round (checkHandedOver), so slow ones do not hold back the
// office's later cases for good either.
func (t *askTrouble) skips(limit time.Duration) bool {
	return t != nil && (t.hung || t.took > limit)
}

// checkHandedOver asks once about each submission handed over to a channel
// that confirms later. The index entry names the office and the channel, so
// the records of the others are not read: a gateway whose mailboxes and XTA
// boxes hold tens of thousands of handed-over packages read every one of them
// every ConfirmEvery, and again on every change a folder signalled. A package
// whose channel no longer reaches its office (taken from the configuration, an
// XTA office moved to push, the office's mailbox users removed) goes on, on
// every channel, whether it confirms later or not: the office's fetch was
// the only way on for those that do not, and it cannot come.
//
// The packages are asked in id order, but each office's channel starts where
// its previous round stopped (askFrom) and wraps around: a round that passed
// over an office's packages (askTrouble.skips) began with the same cases every
// time, and three cases whose questions kept failing slowly used up the office's
// time in every round, so its later cases, ones the office had taken, were never
// asked and never confirmed. Now every case is asked within a bounded number of
// rounds. The starting point is an id, not a position: a case confirmed or gone
// meanwhile moves the start to the next id after it. Rounds run one after the
// other (watchConfirmations); askFrom is a sync.Map all the same.
func (b *Broker) checkHandedOver() {
	entries, err := b.db.HandedOver()
	if err != nil {
		b.log.Error("list handed-over submissions", "err", err)
		return
	}
	// In id order whatever the store's listing order (the wrap-around needs one
	// order from round to round); bbolt's already is.
	slices.SortFunc(entries, func(x, y store.Waiting) int { return strings.Compare(x.ID, y.ID) })
	from := map[askKey]string{}
	b.askFrom.Range(func(k, v any) bool {
		from[k.(askKey)] = v.(string)
		return true
	})
	// before reports whether the package id comes before where its office's
	// channel starts this round: it is asked after the others, at the end.
	before := func(key askKey, id string) bool {
		f, ok := from[key]
		return ok && id < f
	}
	// What went wrong per office and channel this round, said once after it
	// (reportTrouble); the pairs that answered at least once.
	trouble := map[askKey]*askTrouble{}
	answered := map[askKey]bool{}
	// The packages that come before their pair's starting point are appended
	// to the list as they are met (so in id order) and asked after the rest.
	list, first := entries, len(entries)
	for i := 0; i < len(list); i++ {
		if b.ctx.Err() != nil {
			return
		}
		e, wrapped := list[i], i >= first
		if e.Known {
			if !wrapped && before(askKey{e.Office, e.Channel}, e.ID) {
				list = append(list, e)
				continue
			}
			if _, r := b.reachOf(e.Office, e.Channel); r == reaches {
				if !b.confirmsLater(e.Channel) {
					continue
				}
				if t := trouble[askKey{e.Office, e.Channel}]; t.skips(b.cfg.AttemptTimeout) {
					t.pass(e.ID)
					continue
				}
			}
		}
		id := e.ID
		s, err := b.db.Get(id)
		if err != nil || s.State != submission.StateHandedOver {
			continue
		}
		ref, _ := s.CurrentTarget()
		key := askKey{s.OfficeID, ref.Channel}
		if !e.Known && !wrapped && before(key, id) {
			// An index entry written before entries named their office: its
			// record tells, and it waits for the end as a known one does.
			list = append(list, e)
			continue
		}
		target, r := b.reachOf(s.OfficeID, ref.Channel)
		switch r {
		case reachGone:
			// The operator took the channel from the office's configuration. It was
			// asked with an empty address, and every round logged a reason nobody had
			// configured ("not an absolute folder path") for every such case, which
			// waited handed over for ever.
			b.withdrawn(s, ref.Channel)
			continue
		}
		a, _ := b.adapters.Get(ref.Channel)
		c, ok := a.(adapters.Confirmer)
		if !ok {
			if r == reachMoved {
				b.reoffer(s, ref.Channel)
			}
			continue
		}
		// A channel that confirms later is asked first, also when it no longer
		// reaches the office: a clerk may have opened the package in the mailbox
		// before the office's last user was removed, and offered again it was
		// held, with no Zustellbestaetigung for a package the office had (a
		// review).
		if t := trouble[key]; t.skips(b.cfg.AttemptTimeout) {
			t.pass(id)
			continue
		}
		began := time.Now()
		conf, done, err := b.ask(c, key, b.delivery(s, target))
		if err != nil {
			// Said once per office and channel after the round, not per case: a
			// broken share with 1,000 cases logged 1,000 lines every 5 seconds.
			t := trouble[key]
			if t == nil {
				t = &askTrouble{}
				trouble[key] = t
			}
			switch {
			case errors.Is(err, errStillAsking):
				// Not asked: the next round starts with it.
				t.hung = true
				t.pass(id)
				continue
			case errors.Is(err, errNoAnswer):
				// Asked: the next round starts after it, so a case whose
				// question hangs holds back no other case for good.
				t.hung = true
				continue
			}
			t.failed++
			t.took += time.Since(began)
			if t.reason == "" {
				t.reason = adapters.LogReason(err)
			}
			continue
		}
		answered[key] = true
		if !done {
			if r == reachMoved {
				b.reoffer(s, ref.Channel)
			}
			continue
		}
		if err := b.confirm(id, toConfirmation(conf), func(cur *submission.Submission, now time.Time, sc submission.Confirmation) ([]submission.Event, error) {
			return cur.Confirm(now, ref.Channel, sc)
		}); err != nil {
			b.log.Error("record confirmation", "submission", id, "err", err)
		}
	}
	b.moveStarts(trouble)
	b.reportTrouble(trouble, answered, time.Now())
}

// moveStarts sets where each office's channel starts the next round: at the
// first package this round passed over; where it started this round if the
// round got all the way round (with failures: the office's cases keep their
// turns); at the first id again for a pair without trouble (or without
// packages any more), which keeps askFrom as small as the trouble.
func (b *Broker) moveStarts(trouble map[askKey]*askTrouble) {
	for key, t := range trouble {
		if t.next != "" {
			b.askFrom.Store(key, t.next)
		}
	}
	b.askFrom.Range(func(k, _ any) bool {
		if trouble[k.(askKey)] == nil {
			b.askFrom.Delete(k)
		}
		return true
	})
}

// reportTrouble logs, per office and channel, that its confirmation questions
// failed or did not return this round, at most once per troubleLogEvery while it
// lasts, with how many packages it concerned; and once that they answer again.
func (b *Broker) reportTrouble(trouble map[askKey]*askTrouble, answered map[askKey]bool, now time.Time) {
	for key, t := range trouble {
		if !b.troubleLogs.Allow(key, now) {
			continue
		}
		if t.hung {
			b.log.Warn("confirmation question does not return; the office's other handed-over packages wait for a later round",
				"office", key.office, "channel", key.channel, "not_asked", t.notAsked)
		}
		if t.failed > 0 {
			b.log.Warn("confirmation questions failed; the packages stay handed over and are asked again",
				"office", key.office, "channel", key.channel, "failed", t.failed, "not_asked", t.notAsked, "err", t.reason)
		}
	}
	for _, key := range b.troubleLogs.Forget(func(key askKey) bool { return trouble[key] != nil }) {
		if answered[key] {
			b.log.Info("confirmation questions answer again", "office", key.office, "channel", key.channel)
		}
	}
}
