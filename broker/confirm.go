package broker

import (
	"context"
	"errors"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/internal/repeatlimit"
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

// errStillAsking: the question did not return within the attempt timeout, or
// an earlier one to the same office and channel has not returned yet.
var errStillAsking = errors.New("broker: a confirmation question to this office and channel has not returned")

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
			return adapters.Confirmation{}, false, errStillAsking
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
}

// skips reports whether the office's channel gets no more questions this round:
// one did not return, or its failed ones took longer together than one attempt
// may. Quick failures do not skip: one bad case (a corrupt ledger record) would
// otherwise hold back the office's later cases for good, as the index is in id
// order; slow ones would hold back every other office's confirmations.
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
func (b *Broker) checkHandedOver() {
	entries, err := b.db.HandedOver()
	if err != nil {
		b.log.Error("list handed-over submissions", "err", err)
		return
	}
	// What went wrong per office and channel this round, said once after it
	// (reportTrouble); the pairs that answered at least once.
	trouble := map[askKey]*askTrouble{}
	answered := map[askKey]bool{}
	for _, e := range entries {
		if b.ctx.Err() != nil {
			return
		}
		if e.Known {
			if _, r := b.reachOf(e.Office, e.Channel); r == reaches {
				if !b.confirmsLater(e.Channel) {
					continue
				}
				if t := trouble[askKey{e.Office, e.Channel}]; t.skips(b.cfg.AttemptTimeout) {
					t.notAsked++
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
		key := askKey{s.OfficeID, ref.Channel}
		if t := trouble[key]; t.skips(b.cfg.AttemptTimeout) {
			t.notAsked++
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
			if errors.Is(err, errStillAsking) {
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
	b.reportTrouble(trouble, answered, time.Now())
}

// reportTrouble logs, per office and channel, that its confirmation questions
// failed or did not return this round, at most once per troubleLogEvery while it
// lasts, with how many packages it concerned; and once that they answer again.
func (b *Broker) reportTrouble(trouble map[askKey]*askTrouble, answered map[askKey]bool, now time.Time) {
	for key, t := range trouble {
		l, _ := b.troubleLogs.LoadOrStore(key, &repeatlimit.Limit{Every: troubleLogEvery})
		if !l.(*repeatlimit.Limit).Allow(now) {
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
	b.troubleLogs.Range(func(k, _ any) bool {
		key := k.(askKey)
		if trouble[key] != nil {
			return true
		}
		b.troubleLogs.Delete(key)
		if answered[key] {
			b.log.Info("confirmation questions answer again", "office", key.office, "channel", key.channel)
		}
		return true
	})
}
