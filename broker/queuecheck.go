package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// The queue check is the safety net under the relay. The relay publishes every
// accepted package once and retries a publish that failed, in memory; a restart
// re-publishes the whole outbox. That leaves packages waiting unseen in two cases:
//   - the process that accepted a package or moved it on to its next channel died
//     between the commit and the publish (a cluster node that stays down);
//   - the queue lost a message (a NATS cluster that lost a replica's data).
//
// Neither is expected, and neither may leave an acknowledged package unseen: every
// QueueCheckEvery the check lists the outbox, then asks the stream which package
// ids it holds a message for (the id is a token of the subject), and publishes
// again every outbox entry that is still waiting for an attempt and has none. Each
// one is counted (amtsbote_queue_restored_total, an alert) and logged: a restore is
// a defect to look into, healed before it cost a package.
//
// Races are harmless by construction: a message published or acked between the two
// listings makes at most one extra queue message, which the dispatcher acks as done
// or superseded (process), and a publish of a generation the relay published
// within JetStream's duplicate window is dropped by the stream. Such a drop is not
// counted as a restore; if the relay's message was lost in the meantime, a check
// after the window (two minutes) restores it.
//
// "Just written" is not only a matter of the record's UpdatedAt: that is the wall
// time of the node that wrote it, and a node whose clock ran ahead (in a cluster,
// plain skew; or this node before NTP stepped its clock back) dates its records
// in the future, where they stayed "just written" for as long as its clock was
// ahead. So a check also remembers the entries it found without a message, and
// the next check restores one it finds missing again at the same generation,
// whatever its time says: one check period is far longer than any publish.

const (
	// queueCheckGrace leaves a record just written to the relay: its publish (or a
	// retried one) is on the way.
	queueCheckGrace = time.Minute
	// publishTimeout bounds one publish; listTimeout the listing of the queue's
	// subjects (paged, some 100,000 a page).
	publishTimeout = 5 * time.Second
	listTimeout    = 30 * time.Second
)

// checkQueue is one queue check of the background loop.
func (b *Broker) checkQueue() {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Minute)
	defer cancel()
	b.pruneStepped()
	n, err := b.restoreQueue(ctx, time.Now().Add(-queueCheckGrace))
	switch {
	case err == nil:
		b.metrics.checks.WithLabelValues("ok").Inc()
	case b.ctx.Err() == nil:
		b.metrics.checks.WithLabelValues("failed").Inc()
		b.log.Warn("queue check did not finish; the next one tries again", "restored", n, "err", err)
	}
}

// restoreQueue is publishMissing for entries last changed before `before`, each
// one counted and logged as a restore.
func (b *Broker) restoreQueue(ctx context.Context, before time.Time) (int, error) {
	return b.publishMissing(ctx, before, func(e outboxEntry) {
		b.metrics.restored.Inc()
		b.log.Warn("accepted package had no queue message; put on the queue again", "submission", e.id, "state", e.state, "generation", e.gen)
	})
}

// publishMissing publishes every outbox entry that waits for an attempt, has no
// queue message and (unless before is zero) was last changed before `before` or
// was found without a message, at the same generation, by the previous such call
// (a check), calling published for each; it returns how many. It is the start's and the
// relay's re-publish as well as the check: an entry the queue holds is not
// published again, so a restart of one cluster node does not double every waiting
// package's message (the duplicate window is only two minutes).
//
// The order is fair between offices: one entry of each office in turn, each
// office's own oldest first (fairOrder). Oldest first across all offices put an
// office's single package behind another office's whole backlog (an office down
// for a day): the queue is consumed in order, so that package waited until the
// backlog had been re-published, one publish after another, while the backlog's
// office was being served. Under load that was seconds
// (TestBacklogDoesNotHoldUpOtherOffices failed now and then on a busy machine).
func (b *Broker) publishMissing(ctx context.Context, before time.Time, published func(outboxEntry)) (int, error) {
	// The outbox first: an entry added after this listing is the relay's, and an
	// entry whose message is acked before the queue listing is no longer waiting.
	ids, err := b.db.Outbox()
	if err != nil {
		return 0, fmt.Errorf("broker: outbox: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	queued, err := b.queuedIDs(ctx)
	if err != nil {
		return 0, err
	}
	// What a publish needs is kept for the ordering, not the records (a backlog
	// may be 100,000 entries). A record that changes before its entry is published
	// makes at most a stale message, which the dispatcher acks (see above).
	var todo []outboxEntry
	check := !before.IsZero()
	var missedBefore, missing map[string]int
	if check {
		b.unqueuedMu.Lock()
		missedBefore = b.unqueued
		b.unqueuedMu.Unlock()
		missing = map[string]int{}
	}
	for _, id := range ids {
		if queued[id] {
			continue
		}
		s, err := b.db.Get(id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("broker: outbox entry %s: %w", id, err)
		}
		if !s.State.Dispatchable() {
			continue
		}
		if check {
			missing[id] = s.Generation
			gen, missed := missedBefore[id]
			if !s.UpdatedAt.Before(before) && (!missed || gen != s.Generation) {
				continue // just written, as far as can be told: the relay's
			}
		}
		t, _ := s.CurrentTarget()
		todo = append(todo, outboxEntry{id: id, office: s.OfficeID, channel: t.Channel, gen: s.Generation, state: s.State})
	}
	if check {
		b.unqueuedMu.Lock()
		b.unqueued = missing
		b.unqueuedMu.Unlock()
	}
	n := 0
	for _, e := range fairOrder(todo) {
		dup, err := b.publishEntry(ctx, e)
		if err != nil {
			return n, err
		}
		if dup {
			// The relay published this generation within the duplicate window: since
			// the listing (a race), or before a message lost since. The stream kept
			// nothing; a check after the window publishes it if it is still missing.
			b.log.Info("outbox entry published within the queue's duplicate window; left to a later check", "submission", e.id, "generation", e.gen)
			continue
		}
		n++
		if published != nil {
			published(e)
		}
	}
	return n, nil
}

// outboxEntry is an outbox entry to publish: what its queue message and the
// ordering need.
type outboxEntry struct {
	id, office, channel string
	gen                 int
	state               submission.State
}

// fairOrder interleaves the offices' entries: the first of every office (offices
// in the order of their oldest entry), then the second of every office, and so on;
// each office keeps its own order.
func fairOrder(es []outboxEntry) []outboxEntry {
	var offices []string
	byOffice := map[string][]outboxEntry{}
	for _, e := range es {
		if _, ok := byOffice[e.office]; !ok {
			offices = append(offices, e.office)
		}
		byOffice[e.office] = append(byOffice[e.office], e)
	}
	out := make([]outboxEntry, 0, len(es))
	for len(offices) > 0 {
		left := offices[:0] // offices with entries after this round
		for _, o := range offices {
			l := byOffice[o]
			out = append(out, l[0])
			if len(l) > 1 {
				byOffice[o] = l[1:]
				left = append(left, o)
			}
		}
		offices = left
	}
	return out
}

// queuedIDs returns the ids of the packages the work queue holds a message for.
func (b *Broker) queuedIDs(ctx context.Context) (map[string]bool, error) {
	// A request whose server was just killed gets no answer at all: each one has
	// its own deadline, so a check fails and the next one runs.
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	st, err := b.js.Stream(ctx, b.stream)
	if err != nil {
		return nil, fmt.Errorf("broker: queue: %w", err)
	}
	// Subjects are <root>.<channel>.<id>.<office>; messages of older builds lack
	// the id and are not listed, so their packages get one extra message here.
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(b.root+".*.*.*"))
	if err != nil {
		return nil, fmt.Errorf("broker: queue subjects: %w", err)
	}
	queued := make(map[string]bool, len(info.State.Subjects))
	for subject := range info.State.Subjects {
		if tok := strings.Split(strings.TrimPrefix(subject, b.root+"."), "."); len(tok) == 3 {
			queued[tok[1]] = true
		}
	}
	return queued, nil
}
