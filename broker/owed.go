package broker

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// Withdrawals owed. An erasure is not done while the case folder waits in the
// office's share, and neither is the clerk's takeover while a late case folder
// does (withdraw.go). A withdrawal whose share did not answer (down, unmounted,
// hanging) used to be said once — in the erasure's answer, a WARN line, the
// case's history — and then waited for an operator to erase the case again;
// one a crash cut short between the erasure's commit and the question to the
// share was not even said. The data protection officer's "erased" was not true
// until someone remembered.
//
// Now the record says what is owed (Submission.WithdrawalsOwed), written in the
// transaction that makes the copy unwanted, and cleared in the one that records
// what the withdrawal found. The gateway keeps the cases it knows to owe one
// (owedSet) and asks their shares again, a minute after the first answer that
// did not come, then less and less often, up to once an hour (owedDelay), until
// each answers. After a restart, and on the other gateways of a cluster, the
// retention's next run (every record, hourly by default) finds the marks again;
// a gateway without the background retention looks at every record once
// after its start instead (findOwedAfterStart).
// The gauge amtsbote_withdrawals_owed counts what this gateway knows to owe;
// the alert AmtsboteWithdrawalOwed fires when it stays above zero.
//
// A withdrawal asked again goes the same way as the first (Broker.withdraw):
// bounded by the attempt timeout, not sent to a share on which one hangs, its
// outcome in the case's history once (recordWithdrawal). A channel no longer
// configured for the office settles the mark with an event that says the
// gateway cannot reach the copy: asking again would never end.

// How often the gateway looks for owed withdrawals that are due, and how long
// it waits before asking a share again: owedFirst after it noted the case, then
// twice as long each time, at most owedMax. Variables, for tests.
var (
	owedEvery = 30 * time.Second
	owedFirst = time.Minute
	owedMax   = time.Hour
)

// owedDelay is the wait before asking again after tries questions.
func owedDelay(tries int) time.Duration {
	if tries > 20 {
		return owedMax
	}
	return min(owedFirst<<tries, owedMax)
}

// owedSet holds the cases this gateway knows to owe a withdrawal, each with
// when to ask next. In memory: the records are the truth, and a case noted
// twice or after its mark was cleared costs one read (retryOwed drops it).
type owedSet struct {
	mu sync.Mutex
	m  map[string]*owedEntry
}

type owedEntry struct {
	next  time.Time
	tries int
}

// note adds case id, to be asked about owedFirst after now; a case already
// there keeps its turn.
func (o *owedSet) note(id string, now time.Time) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]*owedEntry{}
	}
	if _, ok := o.m[id]; !ok {
		o.m[id] = &owedEntry{next: now.Add(owedFirst)}
	}
	return len(o.m)
}

// split returns the cases whose turn has come by now, giving each its next
// turn, and those still waiting for it, each in id order.
func (o *owedSet) split(now time.Time) (due, waiting []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, e := range o.m {
		if e.next.After(now) {
			waiting = append(waiting, id)
			continue
		}
		e.tries++
		e.next = now.Add(owedDelay(e.tries))
		due = append(due, id)
	}
	sort.Strings(due)
	sort.Strings(waiting)
	return due, waiting
}

// drop removes case id and returns how many are left.
func (o *owedSet) drop(id string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, id)
	return len(o.m)
}

// size is how many cases the set holds.
func (o *owedSet) size() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.m)
}

// noteOwed notes case id as owing a withdrawal (owedSet.note) and counts it.
func (b *Broker) noteOwed(id string) {
	b.metrics.withdrawalsOwed.Set(float64(b.owed.note(id, time.Now())))
}

// forgetOwed forgets case id (owedSet.drop): its record owes nothing.
func (b *Broker) forgetOwed(id string) {
	b.metrics.withdrawalsOwed.Set(float64(b.owed.drop(id)))
}

// noteOwedOf notes s if its record owes a withdrawal (the retention's scan).
func (b *Broker) noteOwedOf(s *submission.Submission) {
	if len(s.WithdrawalsOwed) > 0 {
		b.noteOwed(s.ID)
	}
}

// findOwedAfterStart notes the owed withdrawals of every record once
// (findOwed), after (owedEvery at the start: the retry loop's first round), on a
// gateway without the background retention (Config.RetentionEvery 0:
// `amtsbote gc` from cron, whose offline broker asks no share), whose scan
// finds them otherwise after a start (GCWith). Without it, a crash between an
// erasure's commit and its question, or a restart while a share was down, left
// the mark in the record with no gateway to ask. Not at once: the start's own
// reads (the outbox re-published, the first confirmation round) go first, and
// on a big store this one takes minutes.
func (b *Broker) findOwedAfterStart(after time.Duration) {
	defer b.loops.Done()
	t := time.NewTimer(after)
	defer t.Stop()
	select {
	case <-b.ctx.Done():
		return
	case <-t.C:
	}
	b.findOwed()
}

// findOwed notes the owed withdrawals of every record (noteOwedOf).
func (b *Broker) findOwed() {
	err := b.db.Scan(func(s *submission.Submission) bool {
		b.noteOwedOf(s)
		return b.ctx.Err() == nil
	})
	if err != nil && b.ctx.Err() == nil {
		b.log.Error("owed withdrawals: cannot read the records after the start; a case folder an erasure or a clerk's takeover left in a share before the start is asked about only after the next start", "err", err)
	}
}

// retryOwed asks again about every owed withdrawal whose turn has come: for
// each channel its record still names, unless an attempt of the case runs on
// this gateway (its end withdraws what it hands over, tellLateHandOver). Each
// records its own outcome (recordWithdrawal).
//
// It waits for each answer, at most the attempt timeout, as an erasure of a
// case and its Nachreichungen does (withdrawCopies): the hung-share guard
// (withdrawHung) marks a share hung only once a question has gone unanswered
// for that long, and questions sent side by side all went to a share that
// hangs in the kernel — one goroutine stuck for good per owed case of the
// office (after a restart, every erasure a crash cut short) instead of one.
func (b *Broker) retryOwed() {
	now := time.Now()
	due, waiting := b.owed.split(now)
	b.forgetSettledElsewhere(waiting)
	for _, id := range due {
		if b.ctx != nil && b.ctx.Err() != nil {
			break // stopping: the marks stay for the next start
		}
		s, err := b.db.Get(id)
		if errors.Is(err, store.ErrNotFound) || err == nil && len(s.WithdrawalsOwed) == 0 {
			b.forgetOwed(id)
			continue
		}
		if err != nil {
			b.log.Warn("owed withdrawal: cannot read the case; asking again later", "submission", id, "err", err)
			continue
		}
		if _, busy := b.inflight.Load(id); busy {
			continue
		}
		for _, ch := range s.WithdrawalsOwed {
			w, ok := b.withdrawer(ch)
			if !ok {
				// Not on this gateway (a channel removed from its
				// configuration's adapters): the mark stays for one that
				// has it, and the gauge says it is owed.
				continue
			}
			b.sayUnwithdrawn("owed withdrawal", s, b.withdraw(w, s, ch, actorAskedAgain, true, nil))
		}
	}
	b.metrics.withdrawalsOwed.Set(float64(b.owed.size()))
}

// forgetSettledElsewhere forgets the cases waiting for their turn whose
// record owes nothing any more: another gateway of the cluster (or an erasure
// asked again there) settled them. Their turn could be an hour away, and the
// gauge — which the alert reads as the maximum over the gateways — said owed
// until then. One read per case this gateway knows to owe: a handful.
func (b *Broker) forgetSettledElsewhere(waiting []string) {
	for _, id := range waiting {
		if b.ctx != nil && b.ctx.Err() != nil {
			return
		}
		s, err := b.db.Get(id)
		if errors.Is(err, store.ErrNotFound) || err == nil && len(s.WithdrawalsOwed) == 0 {
			b.forgetOwed(id)
		}
	}
}

// actorAskedAgain is the actor of the withdrawal events of an owed withdrawal
// the gateway asked again by itself.
const actorAskedAgain = "gateway (asked again)"

// errWithdrawStopping: the gateway is stopping; the record keeps the mark, and
// the withdrawal is asked again after the start.
var errWithdrawStopping = errors.New("broker: the gateway is stopping; the withdrawal is asked again after its start")

// trackWithdrawal counts a withdrawal's goroutine for Stop (awaitWithdrawals),
// false once Stop has begun to wait: then none is started.
func (b *Broker) trackWithdrawal() bool {
	b.withdrawMu.Lock()
	defer b.withdrawMu.Unlock()
	if b.withdrawClosed {
		return false
	}
	b.withdrawing.Add(1)
	return true
}

// withdrawStopWait bounds how long Stop waits for withdrawals under way: one
// on a share that hangs in the kernel never returns, and its mark makes the
// next start ask again.
const withdrawStopWait = 5 * time.Second

// awaitWithdrawals waits, after the broker's context ended (which ends every
// withdrawal's that is not stuck in the kernel), for the withdrawals under way
// to record their outcome, at most withdrawStopWait or until ctx ends: the
// store closes after Stop, and an outcome that came after that was lost (its
// event, a late case folder's count).
func (b *Broker) awaitWithdrawals(ctx context.Context) {
	b.withdrawMu.Lock()
	b.withdrawClosed = true
	b.withdrawMu.Unlock()
	done := make(chan struct{})
	go func() { b.withdrawing.Wait(); close(done) }()
	t := time.NewTimer(withdrawStopWait)
	defer t.Stop()
	select {
	case <-done:
	case <-ctx.Done():
	case <-t.C:
		b.log.Warn("stopping: a withdrawal from an office's share has not returned (the share hangs); the case keeps its mark, and the withdrawal is asked again after the start")
	}
}
