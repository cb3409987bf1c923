package broker

import (
	"context"
	"errors"
	"fmt"
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

// WithdrawUnreachable is the outcome of a withdrawal that did not answer, or
// failed: the copy may still wait for the office; erasing again tries again.
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
	if b.adapters == nil {
		return nil // a broker of an offline command: no channel to ask
	}
	var out []ChannelWithdrawal
	seen := map[string]bool{}
	for i := 0; i <= s.TargetIndex && i < len(s.Targets); i++ {
		ch := s.Targets[i].Channel
		if seen[ch] {
			continue
		}
		seen[ch] = true
		ad, ok := b.adapters.Get(ch)
		if !ok {
			continue
		}
		w, ok := ad.(adapters.Withdrawer)
		if !ok {
			continue
		}
		var got ChannelWithdrawal
		if _, busy := b.inflight.Load(s.ID); busy {
			got = ChannelWithdrawal{Channel: ch, Outcome: WithdrawUnreachable, Err: errWithdrawAttemptUnderWay}
		} else {
			got = b.withdraw(w, s, ch, actor, true)
		}
		if got.Outcome == WithdrawUnreachable {
			b.log.Warn("erasure: the case's copy waiting for the office on the channel could not be withdrawn; erase again to try again",
				"submission", s.ID, "office", s.OfficeID, "channel", ch, "err", adapters.LogReason(got.Err))
		}
		out = append(out, got)
	}
	return out
}

// withdraw asks w to withdraw the copy of s on channel ch and records the
// outcome in s's event log; wait says whether the caller waits for it (at most
// the attempt timeout) or lets it go on alone.
func (b *Broker) withdraw(w adapters.Withdrawer, s *submission.Submission, ch, actor string, wait bool) ChannelWithdrawal {
	failed := func(err error) ChannelWithdrawal {
		return ChannelWithdrawal{Channel: ch, Outcome: WithdrawUnreachable, Err: err}
	}
	target, ok := b.channels.Target(s.OfficeID, ch)
	if !ok {
		got := failed(errWithdrawUnconfigured)
		b.recordWithdrawal(s.ID, got, actor)
		return got
	}
	key := askKey{s.OfficeID, ch}
	if b.withdrawHung(key) {
		got := failed(errWithdrawBusy)
		if !wait {
			// Nobody will ask again for it (the retention, a late case
			// folder): the history says it is still to be done.
			b.recordWithdrawal(s.ID, got, actor)
			b.log.Warn("the case's copy waiting for the office on the channel could not be withdrawn; erase the case to try again",
				"submission", s.ID, "office", s.OfficeID, "channel", ch, "err", got.Reason())
		}
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
		defer cancel()
		wd, err := w.Withdraw(ctx, d)
		returned()
		got := ChannelWithdrawal{Channel: ch, Outcome: string(wd.Outcome), Reference: wd.Reference, Leftovers: wd.Leftovers}
		if err != nil {
			got = failed(fmt.Errorf("broker: withdraw %s from %s: %w", s.ID, ch, err))
			if !wait {
				// Nobody waits to say it: the log does.
				b.log.Warn("the case's copy waiting for the office on the channel could not be withdrawn; erase the case to try again",
					"submission", s.ID, "office", s.OfficeID, "channel", ch, "err", got.Reason())
			}
		}
		// Recorded here, not by the caller: a withdrawal the caller stopped
		// waiting for records its outcome when it returns.
		b.recordWithdrawal(s.ID, got, actor)
		done <- got
	}()
	if !wait {
		return ChannelWithdrawal{Channel: ch, Outcome: WithdrawUnreachable, Err: errWithdrawNoAnswer}
	}
	t := time.NewTimer(b.cfg.AttemptTimeout)
	defer t.Stop()
	select {
	case got := <-done:
		return got
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
// there is nothing to say (nothing there, or removed before: said then).
func withdrawalEvent(got ChannelWithdrawal, actor string, now time.Time) (submission.Event, bool) {
	ev := submission.Event{At: now, Type: submission.EventWithdrawal, Channel: got.Channel, Actor: actor}
	ref := ""
	if got.Reference != "" {
		ref = " (" + got.Reference + ")"
	}
	switch got.Outcome {
	case string(adapters.WithdrawRemoved):
		if got.Reference == "" {
			ev.Detail = "the leftover of a failed attempt on channel " + got.Channel + " was removed; the office never had the case there"
		} else {
			ev.Detail = "the copy waiting for the office on channel " + got.Channel + ref + " was removed before the office took it: the office does not get the case there"
		}
	case string(adapters.WithdrawTaken):
		ev.Detail = "the office had taken its copy on channel " + got.Channel + ref + " before: that copy is the office's, and the erasure does not reach it"
	case WithdrawUnreachable:
		ev.Detail = "the copy waiting for the office on channel " + got.Channel + " could not be withdrawn now; erasing again tries again"
		if got.Err != nil {
			ev.Note = adapters.LogReason(got.Err)
		}
	default:
		return ev, false
	}
	return ev, true
}

// recordWithdrawal records what a withdrawal of case id did (withdrawalEvent)
// in one store transaction, once: the same event is not recorded twice (a
// repeated erasure of a case whose copy the office took, or whose share is
// down).
func (b *Broker) recordWithdrawal(id string, got ChannelWithdrawal, actor string) {
	if _, ok := withdrawalEvent(got, actor, time.Time{}); !ok {
		return
	}
	if got.Outcome == WithdrawUnreachable && (errors.Is(got.Err, errWithdrawNoAnswer) || errors.Is(got.Err, errWithdrawAttemptUnderWay)) {
		return // the withdrawal itself, or the attempt's end, records the outcome
	}
	evs, err := b.db.Events(id)
	if err != nil {
		b.log.Error("record a withdrawal: read the case's events", "submission", id, "err", err)
		return
	}
	probe, _ := withdrawalEvent(got, actor, time.Time{})
	for _, e := range evs {
		if e.Type == submission.EventWithdrawal && e.Channel == probe.Channel && e.Detail == probe.Detail {
			return
		}
	}
	if err := b.change(id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		ev, _ := withdrawalEvent(got, actor, now)
		return []submission.Event{ev}, nil
	}); err != nil {
		b.log.Error("record a withdrawal", "submission", id, "channel", got.Channel, "outcome", got.Outcome, "err", err)
	}
}

// withdrawLate withdraws, without waiting for it, the copy on channel ch that a
// transfer attempt a clerk's takeover came too late to stop put into the
// office's share (Submission.HandedOverAfterTakeover) of case s, whose bytes
// are gone: erased while the attempt held the case, so the erasure could not
// reach the folder (tellLateHandOver), or removed by the retention. actor is
// the event's.
func (b *Broker) withdrawLate(s *submission.Submission, ch, actor string) {
	if b.adapters == nil {
		// The offline gc's broker has no channels: the folder waits for an
		// erasure of the case on the running gateway.
		b.log.Warn("a late case folder of a case whose bytes were removed may wait in the office's transfer folder; this command cannot reach it: erase the case on the running gateway",
			"submission", s.ID, "office", s.OfficeID, "channel", ch)
		return
	}
	ad, ok := b.adapters.Get(ch)
	if !ok {
		return
	}
	if w, ok := ad.(adapters.Withdrawer); ok {
		b.withdraw(w, s, ch, actor, false)
	}
}
