package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/submission"
)

// Withdrawing the copy outside the gateway. Every channel but one serves a
// case's bytes from the store, so removing them there (an erasure, the
// retention) reaches the office's every way to them: it gets 410 from then on.
// The transfer folder's case folder is a copy in the office's share that waits
// there until the office's import takes it: readable by everyone with access to
// the share, and an import that came after the erasure would process an
// application that no longer exists. Such a channel's adapter is an
// adapters.Withdrawer, and the erasure asks it to remove the copy the office has
// not taken (withdrawCopies). What it found goes into the case's event log
// (EventWithdrawal) and the erasure's answer; a copy the office took is the
// office's and stays.
//
// The question goes to a share that may hang (a hard NFS mount whose server is
// gone blocks in the kernel, deaf to every context), so the erasure waits for
// it at most AttemptTimeout and then answers "unreachable"; the question goes on
// alone and records its outcome when it returns. While one has run longer than
// that, no other withdrawal goes to the same office's channel: a hung share
// costs one goroutine (watchWithdrawal). An erasure asked again asks again
// (alreadyRemoved changes nothing about that).
//
// A withdrawal is owed until it is done (owed.go): the transaction that makes
// the copy unwanted — the erasure's, the late hand-over's — names the channel
// in the record (Submission.WithdrawalsOwed), and the one that records what
// the withdrawal found clears it. One the share did not answer is asked again
// by the gateway itself, less and less often, until it answers; after a
// restart the retention's next run finds the marks again (without the
// background retention, a look of its own after the start). Before, it waited for
// an operator to erase the case again, and a crash between the erasure's
// commit and its withdrawal left the case folder in the share with nothing to
// say so.

// WithdrawUnreachable is the outcome of a withdrawal that did not answer, or
// failed: the copy may still wait for the office; the gateway asks again
// (owed.go), and erasing again asks at once.
const WithdrawUnreachable = "unreachable"

// ChannelWithdrawal is what an erasure did to the copy of a case on one channel
// that keeps one outside the gateway (adapters.Withdrawer).
type ChannelWithdrawal struct {
	Channel string
	// Outcome is an adapters.WithdrawOutcome ("removed", "removedBefore",
	// "taken", "none") or WithdrawUnreachable.
	Outcome string
	// Reference names the copy as the office knows it (the case folder).
	Reference string
	// Leftovers: a failed attempt's leftover (a temporary folder) went too.
	Leftovers bool
	// Err says why an unreachable withdrawal failed (adapters.LogReason of it
	// is what the log shows).
	Err error
}

// copyOf says which copy a withdrawal is of, for its words (withdrawalEvent,
// the log): late, a late case folder (lateFolder); erased, of a case whose
// bytes are gone.
type copyOf struct{ late, erased bool }

// copyOfCase is the copyOf of a withdrawal of case s.
func copyOfCase(s *submission.Submission) copyOf {
	return copyOf{late: lateFolder(s), erased: s.BytesRemovedAt != nil}
}

// Reason is why an unreachable withdrawal failed, as the log and the admin API
// say it (adapters.LogReason: the gateway's words, no receiver's); "" if it
// did not.
func (w ChannelWithdrawal) Reason() string {
	if w.Err == nil {
		return ""
	}
	return adapters.LogReason(w.Err)
}

// errWithdrawNoAnswer: the withdrawal did not return within the attempt
// timeout; it goes on alone and records its outcome when it returns.
var errWithdrawNoAnswer = errors.New("broker: the channel did not answer the withdrawal in time; it goes on and records its outcome in the case's history when it returns")

// errWithdrawBusy: an earlier withdrawal from the same office's channel has not
// returned within the attempt timeout (its share hangs), so this one was not
// asked.
var errWithdrawBusy = errors.New("broker: an earlier withdrawal from this office's channel has not returned")

// errWithdrawAttemptUnderWay: an attempt of the case runs on this gateway (one
// a clerk's takeover came too late to stop). It holds the case until it ends,
// and a case folder it hands over then is withdrawn at once (tellLateHandOver),
// so the erasure does not wait for it.
var errWithdrawAttemptUnderWay = errors.New("broker: an attempt under way holds the case; a case folder it hands over is withdrawn when it ends")

// errWithdrawUnconfigured: the channel is no longer configured for the office,
// so there is no address to withdraw from.
var errWithdrawUnconfigured = errors.New("broker: the channel is no longer configured for the office")

// withdrawCopies withdraws the copies of s on every channel it was offered on
// (its targets up to the current one) whose adapter keeps one outside the
// gateway, waiting for each at most the attempt timeout, and returns what
// happened. actor is the erasure's.
func (b *Broker) withdrawCopies(s *submission.Submission, actor string) []ChannelWithdrawal {
	var out []ChannelWithdrawal
	for _, ch := range b.copyChannels(s) {
		w, _ := b.withdrawer(ch)
		var got ChannelWithdrawal
		if _, busy := b.inflight.Load(s.ID); busy {
			got = ChannelWithdrawal{Channel: ch, Outcome: WithdrawUnreachable, Err: errWithdrawAttemptUnderWay}
		} else {
			got = b.withdraw(w, s, ch, actor, true, nil)
		}
		if got.AskedAgain() {
			b.noteOwed(s.ID)
		}
		b.sayUnwithdrawn("erasure", s, got)
		out = append(out, got)
	}
	return out
}

// copyChannels are the channels case s was offered on (its targets up to the
// current one) whose adapter keeps a copy outside the gateway: those an
// erasure withdraws from (and owes a withdrawal on until then). None on a
// broker of an offline command, which has no channel to ask.
func (b *Broker) copyChannels(s *submission.Submission) []string {
	if b.adapters == nil {
		return nil
	}
	var out []string
	for i := 0; i <= s.TargetIndex && i < len(s.Targets); i++ {
		ch := s.Targets[i].Channel
		if slices.Contains(out, ch) {
			continue
		}
		if _, ok := b.withdrawer(ch); ok {
			out = append(out, ch)
		}
	}
	return out
}

// withdraw asks w to withdraw the copy of s on channel ch and records the
// outcome in s's event log; wait says whether the caller waits for it (at most
// the attempt timeout) or lets it go on alone.
//
// told, if not nil, hears the outcome once, for a caller that does not wait
// (a late case folder's metric and log line): when the withdrawal returns, or,
// if it has not within the attempt timeout, as unreachable (errWithdrawNoAnswer)
// — a hung share must not keep the operator from hearing of the folder.
func (b *Broker) withdraw(w adapters.Withdrawer, s *submission.Submission, ch, actor string, wait bool, told func(ChannelWithdrawal)) ChannelWithdrawal {
	of := copyOfCase(s)
	failed := func(err error) ChannelWithdrawal {
		return ChannelWithdrawal{Channel: ch, Outcome: WithdrawUnreachable, Err: err}
	}
	tell := func(got ChannelWithdrawal) {
		if told != nil {
			told(got)
		}
	}
	target, ok := b.channels.Target(s.OfficeID, ch)
	if !ok {
		got := failed(errWithdrawUnconfigured)
		b.countWithdrawal(got, of)
		b.recordWithdrawal(s.ID, got, of, actor)
		tell(got)
		return got
	}
	key := askKey{s.OfficeID, ch}
	if b.withdrawHung(key) {
		got := failed(errWithdrawBusy)
		b.countWithdrawal(got, of)
		if !wait {
			// Nobody will ask again for it (the retention, a late case
			// folder): the history says it is still to be done.
			b.recordWithdrawal(s.ID, got, of, actor)
			if told == nil { // told logs it itself
				b.log.Warn("the case's copy waiting for the office on the channel could not be withdrawn; "+of.tryAgain(),
					"submission", s.ID, "office", s.OfficeID, "channel", ch, "err", got.Reason())
			}
		}
		tell(got)
		return got
	}
	if !b.trackWithdrawal() {
		// The record keeps its mark (set when the copy became unwanted).
		got := failed(errWithdrawStopping)
		tell(got)
		return got
	}
	d := b.delivery(s, target)
	done := make(chan ChannelWithdrawal, 1)
	base := b.ctx
	if base == nil { // not started
		base = context.Background()
	}
	ctx, cancel := context.WithTimeout(base, b.cfg.AttemptTimeout)
	hung, returned := b.watchWithdrawal(key)
	go func() {
		defer b.withdrawing.Done()
		defer cancel()
		wd, err := w.Withdraw(ctx, d)
		returned()
		got := ChannelWithdrawal{Channel: ch, Outcome: string(wd.Outcome), Reference: wd.Reference, Leftovers: wd.Leftovers}
		if err != nil {
			got = failed(fmt.Errorf("broker: withdraw %s from %s: %w", s.ID, ch, err))
			if !wait && told == nil {
				// Nobody waits to say it: the log does (told logs it itself).
				b.log.Warn("the case's copy waiting for the office on the channel could not be withdrawn; "+of.tryAgain(),
					"submission", s.ID, "office", s.OfficeID, "channel", ch, "err", got.Reason())
			}
		}
		// Recorded here, not by the caller: a withdrawal the caller stopped
		// waiting for records its outcome when it returns.
		b.countWithdrawal(got, of)
		b.recordWithdrawal(s.ID, got, of, actor)
		done <- got
	}()
	await := func() ChannelWithdrawal {
		t := time.NewTimer(b.cfg.AttemptTimeout)
		defer t.Stop()
		select {
		case got := <-done:
			return got
		case <-base.Done():
			// The gateway stops: a question stuck in the kernel must not
			// hold Stop for the attempt timeout (the retry loop waits here,
			// retryOwed). The withdrawal records its outcome if it returns
			// in time (awaitWithdrawals); the mark stays otherwise.
			select {
			case got := <-done:
				return got
			default:
				return failed(errWithdrawStopping)
			}
		case <-t.C:
			select {
			case got := <-done: // it came with the deadline
				return got
			default:
				hung()
				return failed(errWithdrawNoAnswer)
			}
		}
	}
	if wait {
		return await()
	}
	if told != nil {
		go func() { told(await()) }()
	}
	return failed(errWithdrawNoAnswer)
}

// watchWithdrawal marks the office's channel key as hung once a withdrawal
// from it has run for the attempt timeout, until it returns (the func it
// gives, called when it does): while one is hung, no other is started there
// (withdrawHung), so a share that hangs in the kernel costs one goroutine, not
// one per erasure. Withdrawals that answer run side by side.
//
// hung marks it at once (idempotent): the caller that stops waiting for it
// calls it, so that what it does next (an erasure asked again at once) finds
// the mark, which the timer's goroutine may not have set yet.
func (b *Broker) watchWithdrawal(key askKey) (hung, returned func()) {
	var done, marked bool
	hung = func() {
		b.withdrawMu.Lock()
		defer b.withdrawMu.Unlock()
		if !done && !marked {
			marked = true
			if b.hungWithdrawals == nil {
				b.hungWithdrawals = map[askKey]int{}
			}
			b.hungWithdrawals[key]++
		}
	}
	t := time.AfterFunc(b.cfg.AttemptTimeout, hung)
	return hung, func() {
		t.Stop()
		b.withdrawMu.Lock()
		defer b.withdrawMu.Unlock()
		done = true
		if marked {
			if b.hungWithdrawals[key]--; b.hungWithdrawals[key] <= 0 {
				delete(b.hungWithdrawals, key)
			}
		}
	}
}

// withdrawHung reports whether a withdrawal from the office's channel key has
// not returned within the attempt timeout (watchWithdrawal).
func (b *Broker) withdrawHung(key askKey) bool {
	b.withdrawMu.Lock()
	defer b.withdrawMu.Unlock()
	return b.hungWithdrawals[key] > 0
}

// withdrawalEvent is the event that says what a withdrawal did, false when
// there is nothing to say (nothing there, or removed before: said then) —
// unless the withdrawal was owed (Submission.WithdrawalsOwed), whose end is
// always said: the history's last word on the copy must not stay "could not
// be withdrawn" once it is settled, and the transaction that clears the mark
// needs its event. A late case folder's (copyOf.late) says so in its own
// words: the clerk has the case, and what matters is whether the office's
// import gets it a second time.
func withdrawalEvent(got ChannelWithdrawal, of copyOf, owed bool, actor string, now time.Time) (submission.Event, bool) {
	ev := submission.Event{At: now, Type: submission.EventWithdrawal, Channel: got.Channel, Actor: actor}
	ref := ""
	if got.Reference != "" {
		ref = " (" + got.Reference + ")"
	}
	if got.Outcome == WithdrawUnreachable && !got.AskedAgain() {
		// Nothing to ask again: the gateway no longer knows the folder.
		ev.Detail = "the copy waiting for the office on channel " + got.Channel + " " + unwithdrawnPhrase +
			": the channel is no longer configured for the office, and the gateway does not know where the copy is; the office's IT has to take it out of the share"
		ev.Note = adapters.LogReason(got.Err)
		return ev, true
	}
	if owed && got.Outcome == string(adapters.WithdrawnBefore) {
		// Asked again after an answer that did not come, or a crash: it
		// was removed meanwhile (the withdrawal that did not answer in
		// time, another gateway's), before the office took it.
		got.Outcome = string(adapters.WithdrawRemoved)
	}
	if of.late && (got.Reference != "" || got.Outcome == WithdrawUnreachable || owed && got.Outcome == string(adapters.WithdrawNothing)) {
		on := " (" + got.Reference + ", channel " + got.Channel + ")"
		if got.Reference == "" {
			on = " (channel " + got.Channel + ")"
		}
		switch got.Outcome {
		case string(adapters.WithdrawRemoved):
			ev.Detail = LateFolderDetail + on + " " + removedPhrase + "'s import took it: the office's system does not get the case"
		case string(adapters.WithdrawTaken):
			ev.Detail = LateFolderDetail + on + " had been taken by the office's import before it could be withdrawn: the office's system has the case as well"
			if of.erased {
				ev.Detail += ", with what the erasure removed here"
			}
		case WithdrawUnreachable:
			ev.Detail = LateFolderDetail + on + " " + unwithdrawnPhrase + ": " + of.tryAgain()
			if got.Err != nil {
				ev.Note = adapters.LogReason(got.Err)
			}
		case string(adapters.WithdrawNothing):
			// Asked again after a share that did not answer: nothing of
			// the case is left there (taken out by hand, ledger record and
			// all). Said in the late folder's words, not as an erasure's
			// finding (withdrawalEnd): the clerk's page reads them.
			ev.Detail = LateFolderDetail + on + " " + goneLatePhrase + ": whether the office's import read it first is not known"
		default:
			return withdrawalEnd(ev, got, owed)
		}
		return ev, true
	}
	switch got.Outcome {
	case string(adapters.WithdrawRemoved):
		if got.Reference == "" {
			ev.Detail = "the leftover of a failed attempt on channel " + got.Channel + " was removed; the office never had the case there"
		} else {
			ev.Detail = "the copy waiting for the office on channel " + got.Channel + ref + " " + removedPhrase + " took it: the office does not get the case there"
		}
	case string(adapters.WithdrawTaken):
		ev.Detail = "the office had taken its copy on channel " + got.Channel + ref + " before: that copy is the office's, and the erasure does not reach it"
	case WithdrawUnreachable:
		ev.Detail = "the copy waiting for the office on channel " + got.Channel + " " + unwithdrawnPhrase + " now: " + of.tryAgain()
		if got.Err != nil {
			ev.Note = adapters.LogReason(got.Err)
		}
	default:
		return withdrawalEnd(ev, got, owed)
	}
	return ev, true
}

// withdrawalEnd is withdrawalEvent's event of an outcome that has nothing of
// its own to say (none, removed before): said only for an owed withdrawal,
// which ends with it.
func withdrawalEnd(ev submission.Event, got ChannelWithdrawal, owed bool) (submission.Event, bool) {
	if !owed {
		return ev, false
	}
	switch got.Outcome {
	case string(adapters.WithdrawNothing):
		ev.Detail = "asked for the case's copy waiting for the office on channel " + got.Channel + ": there is none"
	default: // removedBefore of a copy whose name the channel did not give, or whose removal the history says already (recordWithdrawal)
		ev.Detail = "asked for the case's copy waiting for the office on channel " + got.Channel + ": it had been removed before"
	}
	return ev, true
}

// The withdrawal event's words that the clerk's page reads (RemovedCopy,
// LateFolderWithdrawal): one constant for the writing and the reading, so the
// two cannot drift apart.
const (
	// LateFolderDetail begins the detail of a withdrawal event of a late case
	// folder: one a transfer attempt put into the office's share after a
	// clerk took the case over (Submission.HandedOverAfterTakeover).
	LateFolderDetail = "the case folder that reached the office's share after the case was taken over in the web mailbox"
	// removedPhrase is in the detail of every withdrawal that removed a copy
	// the office had not taken.
	removedPhrase = "was removed before the office"
	// unwithdrawnPhrase is in the detail of every withdrawal that could not
	// be done.
	unwithdrawnPhrase = "could not be withdrawn"
	// goneLatePhrase is in the detail of the withdrawal of a late case folder
	// that found nothing of the case in the share any more.
	goneLatePhrase = "was no longer in the share when the gateway asked again"
)

// RemovedCopy reports whether e is a withdrawal event that removed a copy of
// the case the office had not taken (a case folder, not only an attempt's
// leftover): the office does not get the case there.
func RemovedCopy(e submission.Event) bool {
	return e.Type == submission.EventWithdrawal && strings.Contains(e.Detail, removedPhrase)
}

// LateFolderWithdrawal reports whether e is the withdrawal event of a late
// case folder (LateFolderDetail), and what it found: removed (RemovedCopy),
// taken (the import had it first), unreachable, or none (gone from the share
// when the gateway asked again, by whom is not known).
func LateFolderWithdrawal(e submission.Event) (outcome string, ok bool) {
	if e.Type != submission.EventWithdrawal || !strings.HasPrefix(e.Detail, LateFolderDetail) {
		return "", false
	}
	switch {
	case RemovedCopy(e):
		return string(adapters.WithdrawRemoved), true
	case strings.Contains(e.Detail, unwithdrawnPhrase):
		return WithdrawUnreachable, true
	case strings.Contains(e.Detail, goneLatePhrase):
		return string(adapters.WithdrawNothing), true
	}
	return string(adapters.WithdrawTaken), true
}

// lateFolder reports whether a withdrawal of case s is that of a late case
// folder: a transfer attempt put it into the share after a clerk took the
// case over. Of such a case, the one copy a withdrawal can find is that
// folder: the takeover stopped every other.
func lateFolder(s *submission.Submission) bool {
	return s.HandedOverAfterTakeover() && s.TakenOverFrom != ""
}

// sayUnwithdrawn logs, at WARN, a withdrawal of case s that could not be
// done, with what comes next: the gateway asks again (tryAgain), or, for a
// channel no longer configured for the office, it cannot and the office's IT
// has to. by names who asked (an erasure, the gateway asking again). Nothing
// for a withdrawal that was done, or that the gateway's stop kept from being
// asked (the mark stays for the start).
func (b *Broker) sayUnwithdrawn(by string, s *submission.Submission, got ChannelWithdrawal) {
	switch {
	case got.Outcome != WithdrawUnreachable || errors.Is(got.Err, errWithdrawStopping):
	case !got.AskedAgain():
		b.log.Warn(by+": the case's copy waiting for the office on the channel cannot be withdrawn: the channel is no longer configured for the office; the office's IT has to take it out of the share",
			"submission", s.ID, "office", s.OfficeID, "channel", got.Channel)
	default:
		b.log.Warn(by+": the case's copy waiting for the office on the channel could not be withdrawn now; "+copyOfCase(s).tryAgain(),
			"submission", s.ID, "office", s.OfficeID, "channel", got.Channel, "err", got.Reason())
	}
}

// AskedAgain reports whether the gateway asks again about a withdrawal that
// could not be done (owed.go): every one but that of a channel no longer
// configured for the office, whose copy the gateway cannot find.
func (w ChannelWithdrawal) AskedAgain() bool {
	return w.Outcome == WithdrawUnreachable && !errors.Is(w.Err, errWithdrawUnconfigured)
}

// Withdrawn reports whether the copy is gone from the office's side without
// the office having taken it: removed now or before.
func (w ChannelWithdrawal) Withdrawn() bool {
	return w.Outcome == string(adapters.WithdrawRemoved) || w.Outcome == string(adapters.WithdrawnBefore)
}

// tryAgain says how a withdrawal that could not be done is tried again: the
// gateway asks again by itself (owed.go), less and less often, until the
// share answers. Meanwhile the office's import may take a late case folder of
// a case the clerk processes; the office's IT can take it out of the share
// first.
func (of copyOf) tryAgain() string {
	if of.late && !of.erased {
		return "the gateway asks again until the share answers; the office's import may take it meanwhile, and the office's IT can take it out of the share first"
	}
	return "the gateway asks again until the share answers (erasing the case again asks at once)"
}

// recordWithdrawal records what a withdrawal of case id did (withdrawalEvent)
// in one store transaction, with the owed mark (Submission.WithdrawalsOwed):
// an outcome settles it, a withdrawal that could not be done sets it (one
// whose mark a build before it never set) and leaves the case to the
// gateway's asking again (owed.go). The same event is not recorded twice (a
// repeated erasure of a case whose copy the office took, every time the
// gateway asks a share that is down), unless it settles the mark.
func (b *Broker) recordWithdrawal(id string, got ChannelWithdrawal, of copyOf, actor string) {
	if got.Outcome == WithdrawUnreachable && (errors.Is(got.Err, errWithdrawNoAnswer) || errors.Is(got.Err, errWithdrawAttemptUnderWay)) {
		return // the withdrawal itself, or the attempt's end, records the outcome
	}
	evs, err := b.db.Events(id)
	if err != nil {
		b.log.Error("record a withdrawal: read the case's events", "submission", id, "err", err)
		return
	}
	recorded := func(ev submission.Event) bool {
		for _, e := range evs {
			if e.Type == submission.EventWithdrawal && e.Channel == ev.Channel && e.Detail == ev.Detail {
				return true
			}
		}
		return false
	}
	// owes is what the record owes after the transaction, or as it stands
	// when the transaction writes nothing: taken from the record on every
	// run of fn (the cluster's store runs it again after a concurrent
	// change), never left from an earlier run.
	owes := false
	if err := b.change(id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		owes = len(cur.WithdrawalsOwed) > 0
		owed := cur.OwesWithdrawal(got.Channel)
		ev, ok := withdrawalEvent(got, of, owed, actor, now)
		if ok && owed && got.Outcome == string(adapters.WithdrawnBefore) && recorded(ev) {
			// Owed again after the removal was said (an erasure of a case
			// whose late case folder the gateway had withdrawn): this
			// withdrawal only found it gone. withdrawalEvent's "removed"
			// would be a second removal, by this actor, that never was.
			ev, ok = withdrawalEnd(submission.Event{At: now, Type: submission.EventWithdrawal, Channel: got.Channel, Actor: actor}, got, true)
		}
		if !ok {
			return nil, nil
		}
		settles := !got.AskedAgain()
		switch {
		case settles:
			if !cur.SettleWithdrawal(got.Channel) && recorded(ev) {
				return nil, nil
			}
		case cur.OweWithdrawal(got.Channel):
			// Not owed yet (a record of a build before the mark): the
			// event goes in even when said before, with the mark.
		case recorded(ev):
			return nil, nil
		}
		owes = len(cur.WithdrawalsOwed) > 0
		return []submission.Event{ev}, nil
	}); err != nil {
		b.log.Error("record a withdrawal", "submission", id, "channel", got.Channel, "outcome", got.Outcome, "err", err)
		return
	}
	if owes {
		b.noteOwed(id)
		return
	}
	// Settled (or never owed): the gateway owes nothing of the case from
	// now, not from its next turn to be asked again, which is up to owedMax
	// away — the gauge, and the alert on it, said otherwise until then.
	b.forgetOwed(id)
}

// withdrawLate withdraws, without waiting for it, the copy on channel ch that a
// transfer attempt a clerk's takeover came too late to stop put into the
// office's share (Submission.HandedOverAfterTakeover) of case s: at once when
// the gateway learns of the folder (tellLateHandOver) — the clerk has the
// case, and the takeover promised her that the Fachverfahren does not get it
// —, and again when the retention removes the bytes of such a case (a folder
// the first withdrawal could not reach). actor is the event's. told, if not
// nil, hears the outcome once (withdraw), also when there is nothing to ask
// (unreachable).
func (b *Broker) withdrawLate(s *submission.Submission, ch, actor string, told func(ChannelWithdrawal)) {
	unreachable := func(err error) {
		if told != nil {
			told(ChannelWithdrawal{Channel: ch, Outcome: WithdrawUnreachable, Err: err})
		}
	}
	if b.adapters == nil {
		// The offline gc's broker has no channels: the folder waits for an
		// erasure of the case on the running gateway.
		b.log.Warn("a late case folder of a case whose bytes were removed may wait in the office's transfer folder; this command cannot reach it: erase the case on the running gateway",
			"submission", s.ID, "office", s.OfficeID, "channel", ch)
		unreachable(errWithdrawNoChannel)
		return
	}
	w, ok := b.withdrawer(ch)
	if !ok {
		unreachable(errWithdrawNoChannel)
		return
	}
	b.withdraw(w, s, ch, actor, false, told)
}

// countWithdrawal counts what a withdrawal found (amtsbote_withdrawals_total).
func (b *Broker) countWithdrawal(got ChannelWithdrawal, of copyOf) {
	c := "erased"
	if of.late {
		c = "late"
	}
	b.metrics.withdrawals.WithLabelValues(got.Channel, c, got.Outcome).Inc()
}

// withdrawer is the adapter of channel ch if it keeps a copy outside the
// gateway it can withdraw (adapters.Withdrawer).
func (b *Broker) withdrawer(ch string) (adapters.Withdrawer, bool) {
	if b.adapters == nil {
		return nil, false // a broker of an offline command: no channel to ask
	}
	ad, ok := b.adapters.Get(ch)
	if !ok {
		return nil, false
	}
	w, ok := ad.(adapters.Withdrawer)
	return w, ok
}

// errWithdrawNoChannel: no adapter here can withdraw from the channel (the
// offline gc, a channel not on this gateway).
var errWithdrawNoChannel = errors.New("broker: no channel on this gateway can withdraw the copy")

// LateFolderEvent is the withdrawal event the gateway records when it has
// withdrawn, or tried to, a late case folder of a case (tellLateHandOver):
// got's outcome in the late folder's words, erased saying whether the case's
// bytes are gone. For test desks (broker/desktest) that set such a case up
// for the clerk's page, so that the page is tested against the words the
// gateway writes.
func LateFolderEvent(got ChannelWithdrawal, erased bool, actor string, now time.Time) (submission.Event, bool) {
	// Owed: the late hand-over's transaction owes the withdrawal
	// (recordHandOver), so every withdrawal of the folder the gateway records
	// is one of an owed copy.
	return withdrawalEvent(got, copyOf{late: true, erased: erased}, true, actor, now)
}
