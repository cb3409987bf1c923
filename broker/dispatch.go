package broker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// handle is the JetStream callback (called serially). It enforces two bounds: the
// number of concurrent attempts (Workers, a semaphore that also pushes back on
// consumption) and the attempts per office (PerOffice, or the office's own
// OfficeParallel) — per line, where Config.Line puts several offices behind one
// endpoint into one. A message for an office that has its share running waits in that
// office's line, which the office's own workers drain as they finish; only when the
// line is full does it go back to JetStream with a delay. A fast office keeps its
// throughput, also through a backlog (its line may be long); an office whose
// endpoint hangs holds at most its share of the workers and a short line.
func (b *Broker) handle(msg jetstream.Msg) {
	office := officeOf(msg.Subject())
	if b.cfg.Line != nil {
		office = b.cfg.Line(office) // its line: shared by offices behind one endpoint
	}
	if !b.admitOffice(office, msg) {
		return
	}
	select {
	case b.sem <- struct{}{}:
	case <-b.ctx.Done():
		b.finishOffice(office) // drops its line too; messages there are Nak'ed
		_ = msg.Nak()
		return
	}
	b.admit.RLock()
	if b.draining {
		b.admit.RUnlock()
		<-b.sem
		b.finishOffice(office)
		_ = msg.Nak() // comes back to the next process
		return
	}
	b.attempts.Add(1)
	b.admit.RUnlock()
	go func() {
		defer b.attempts.Done()
		defer func() { <-b.sem }()
		for next := msg; next != nil; next = b.nextForOffice(office) {
			record := b.process(next)
			if record == nil {
				continue
			}
			// The office answered: its slot goes to its next package now, while
			// the answer is recorded (a commit shared with others, and its receipt)
			// beside it. Holding the slot through the commit made the per-office
			// cap, not the office, the limit of one office's deliveries: 4 slots
			// × (attempt + commit) (issue #12). recording bounds the commits in
			// flight; a full one makes this worker wait.
			b.recording <- struct{}{}
			b.attempts.Add(1) // the counter is > 0 here (this attempt): no race with Stop's Wait
			go func() {
				defer b.attempts.Done()
				defer func() { <-b.recording }()
				record()
			}()
		}
	}()
}

// officeOf returns the office token of a queue subject <root>.<channel>.<id>.<office>
// (or <root>.<channel>.<office>, as published by builds before the id): the last.
func officeOf(subject string) string {
	return subject[strings.LastIndexByte(subject, '.')+1:]
}

// An office's line of messages held in memory is short (maxWaitingPerOffice)
// unless the office moves it fast: it finished an attempt within progressWindow
// and its attempts have been finishing less than fastGap apart on average. Then
// the line may grow to maxWaitingFast. A message beyond the line goes back to
// JetStream with a delay (1 s, doubling while the office makes no progress).
//
// Why two lengths: with a backlog, the short line of a fast office drained in
// milliseconds and the office then sat idle until the sent-back messages returned
// after their delay — delivery went silent for seconds while the office answered
// at once (issue #12). A line of 1,024 lasts a fast office longer than the delay.
// A slow or hung office keeps the short line: what it holds waits in memory,
// kept alive by heartbeats, and is handed back only when its attempts end. Waiting
// for room in the consume callback instead was tried and dropped: the callback is
// serial, so a backlog for one office would have held up every other office's new
// packages until that backlog had drained (TestBacklogDoesNotHoldUpOtherOffices).
const (
	maxWaitingPerOffice = 64
	maxWaitingFast      = 1024
	progressWindow      = time.Second
	fastGap             = 250 * time.Millisecond
)

type officeLine struct {
	running int
	waiting []jetstream.Msg
	// full counts messages sent back because the line was full since the office last
	// made progress; their delay doubles with it, so a hung office with a large backlog
	// does not churn the queue.
	full int
	// progress is when the office last finished an attempt; gap the moving average
	// of the time between two such finishes.
	progress time.Time
	gap      time.Duration
	// created is when the line was made (its office's first attempt started).
	created time.Time
}

// capacity is how many messages the office's line may hold now. A line whose
// office has not finished an attempt yet counts as fast for its first fastGap: a
// gateway starting with a backlog pulls hundreds of messages before the first
// attempt ends, and a short line would send most of them back for a second.
func (l *officeLine) capacity(now time.Time) int {
	fast := now.Sub(l.progress) < progressWindow && l.gap < fastGap
	if l.progress.IsZero() {
		fast = now.Sub(l.created) < fastGap
	}
	if fast {
		return maxWaitingFast
	}
	return maxWaitingPerOffice
}

// Behind is the number of packages waiting in this node's lines for offices
// that take them fast (their lines are long, capacity above): work that waits for
// this gateway, not for the office. A slow or unanswering office's line does not
// count, nor do messages the queue still holds. intake.Yield reads it to give
// delivery CPU when the two compete.
func (b *Broker) Behind() int {
	now := time.Now()
	n := 0
	b.officeMu.Lock()
	for _, l := range b.lines {
		if l.capacity(now) == maxWaitingFast {
			n += len(l.waiting)
		}
	}
	b.officeMu.Unlock()
	return n
}

// finished notes that one of the office's attempts finished.
func (l *officeLine) finished(now time.Time) {
	if !l.progress.IsZero() {
		l.gap = l.gap - l.gap/8 + now.Sub(l.progress)/8
	}
	l.progress = now
}

// admitOffice reports whether msg may start now; otherwise it was put in the
// office's line or sent back to JetStream.
func (b *Broker) admitOffice(office string, msg jetstream.Msg) bool {
	b.officeMu.Lock()
	l := b.lines[office]
	if l == nil {
		l = &officeLine{created: time.Now()}
		b.lines[office] = l
	}
	if l.running < b.parallel(office) {
		l.running++
		b.officeMu.Unlock()
		return true
	}
	if len(l.waiting) < l.capacity(time.Now()) {
		l.waiting = append(l.waiting, msg)
		b.officeMu.Unlock()
		_ = msg.InProgress()
		return false
	}
	delay := time.Second << min(l.full/maxWaitingPerOffice, 5)
	l.full++
	b.officeMu.Unlock()
	b.metrics.lineFull.Inc()
	_ = msg.NakWithDelay(min(delay, b.cfg.AttemptTimeout))
	return false
}

// parallel is the cap of concurrent attempts to the office with this subject token.
func (b *Broker) parallel(office string) int {
	if n, ok := b.cfg.OfficeParallel[office]; ok {
		return n
	}
	return b.cfg.PerOffice
}

// nextForOffice hands a finishing worker the office's next waiting message, or
// releases the office's slot. While draining, waiting messages go back to JetStream.
func (b *Broker) nextForOffice(office string) jetstream.Msg {
	b.admit.RLock()
	draining := b.draining
	b.admit.RUnlock()
	b.officeMu.Lock()
	l := b.lines[office]
	l.finished(time.Now())
	if !draining && len(l.waiting) > 0 {
		next := l.waiting[0]
		l.waiting = l.waiting[1:]
		l.full = 0
		b.officeMu.Unlock()
		return next
	}
	b.officeMu.Unlock()
	b.finishOffice(office)
	return nil
}

// finishOffice releases one running slot of the office; when the office has nothing
// running any more, its line is handed back to JetStream.
func (b *Broker) finishOffice(office string) {
	b.officeMu.Lock()
	l := b.lines[office]
	l.running--
	var back []jetstream.Msg
	if l.running <= 0 {
		back = l.waiting
		delete(b.lines, office)
	}
	b.officeMu.Unlock()
	for _, m := range back {
		_ = m.Nak()
	}
}

// keepWaitingAlive tells JetStream that messages in office lines are still being
// worked on, so they are not redelivered while they wait.
func (b *Broker) keepWaitingAlive() {
	b.officeMu.Lock()
	var all []jetstream.Msg
	for _, l := range b.lines {
		all = append(all, l.waiting...)
	}
	b.officeMu.Unlock()
	for _, m := range all {
		_ = m.InProgress()
	}
}

// every runs fn every d until the broker stops; the caller counted it in b.loops.
func (b *Broker) every(d time.Duration, fn func()) {
	defer b.loops.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}

// process makes one delivery attempt. After a successful attempt it returns the
// recording of it (the delivered state with its receipt, then the ack), to be run
// after the office's slot is given on; otherwise it has recorded the outcome itself
// and returns nil.
func (b *Broker) process(msg jetstream.Msg) (record func()) {
	var m queueMsg
	if err := json.Unmarshal(msg.Data(), &m); err != nil || m.ID == "" {
		b.log.Error("unreadable queue message dropped", "subject", msg.Subject())
		_ = msg.Term()
		return nil
	}
	// Two queue messages for one submission (a re-publish after a restart) must not
	// run two attempts at once; the later one comes back after a pause. The guard
	// holds until the outcome is recorded, and keeps the way to stop the attempt:
	// a clerk's takeover in the web mailbox cancels its context (stopAttempt), so
	// that no case reaches the office's system that the clerk now processes.
	actx, stop := context.WithCancelCause(b.ctx)
	if _, busy := b.inflight.LoadOrStore(m.ID, stop); busy {
		stop(nil)
		_ = msg.NakWithDelay(5 * time.Second)
		return nil
	}
	defer func() {
		if record == nil {
			b.inflight.Delete(m.ID)
			stop(nil)
		}
	}()

	s, err := b.db.Get(m.ID)
	if errors.Is(err, store.ErrNotFound) {
		// Never dropped on the first "not here": a queue shared with a process that
		// holds other records (a misconfiguration the gateway avoids with its own
		// queue) or a store not yet caught up must not lose a package. Only a
		// message no store has known for many rounds is given up, loudly.
		if md, mdErr := msg.Metadata(); mdErr == nil && md.NumDelivered >= unknownGiveUp {
			b.log.Error("queue message for a submission no store knows; dropped", "submission", m.ID, "deliveries", md.NumDelivered)
			_ = msg.Term()
			return nil
		}
		b.log.Warn("queue message for a submission this store does not know; retried", "submission", m.ID)
		_ = msg.NakWithDelay(unknownRetry)
		return nil
	}
	if err != nil {
		b.log.Error("load submission", "submission", m.ID, "err", err)
		_ = msg.NakWithDelay(b.cfg.BackoffBase)
		return nil
	}
	if !s.State.Dispatchable() || m.Gen < s.Generation {
		b.stepped.Delete(m.ID)
		if s.LateHandOverPossible(m.Gen) {
			// The message of a case a clerk took over from the transfer folder,
			// back after a failed or lost attempt: was its case folder renamed
			// into the share all the same?
			b.lookForLateHandOver(msg, s, m.Gen)
			return nil
		}
		_ = msg.Ack() // done already, or superseded by a newer queue message
		return nil
	}
	if wait := b.retryWait(s); wait > 0 {
		_ = msg.NakWithDelay(wait)
		return nil
	}
	ref, _ := s.CurrentTarget()
	ad, ok := b.adapters.Get(ref.Channel)
	if !ok {
		b.channelGone(msg, s, submission.Reason{Public: "channel " + ref.Channel + " is not available on this gateway"})
		return nil
	}
	// Endpoint, secret and parameters are read now, together: a rotation between
	// intake and this attempt sends the package to the new endpoint with the new secret.
	target, ok := b.channels.Target(s.OfficeID, ref.Channel)
	if !ok {
		b.channelGone(msg, s, submission.Reason{Public: "channel " + ref.Channel + " is no longer configured for the office"})
		return nil
	}
	// An endpoint that answered 410 Gone is skipped until an operator enables it; an
	// open circuit breaker keeps the package waiting without using up an attempt.
	key, addr := endpointKey{s.OfficeID, ref.Channel}, endpointID(target)
	dis, off, reenabled, perr := b.ends.isDisabled(key, addr)
	if reenabled {
		b.log.Info("disabled endpoint enabled again: the configuration moved the channel to another address", "office", s.OfficeID, "channel", ref.Channel, "persist_err", perr)
	}
	if off {
		b.nextChannel(msg, s, submission.Reason{
			Public:   "channel " + ref.Channel + " is disabled for this office (its endpoint answered 410 Gone); an operator must enable it again",
			Internal: "disabled since " + dis.At.Format(time.RFC3339) + ": " + dis.Reason,
		})
		return nil
	}
	if ok, wait, why := b.ends.allow(key, addr, time.Now()); !ok {
		// Counted: a package kept from an office that asked to be called later is
		// no attempt, and without the count AmtsboteDeliveriesStalled took the
		// quiet of a Retry-After window for delivery having stopped.
		b.metrics.deferred.WithLabelValues(ref.Channel, why).Inc()
		b.deferred(s, why, wait)
		_ = msg.NakWithDelay(wait)
		return nil
	}
	d := b.delivery(s, target)
	ctx, cancel := context.WithTimeout(actx, b.attemptTimeout(s))
	stopBeat := heartbeat(msg, ackWait/3)
	start := time.Now()
	conf, err := ad.Deliver(ctx, d)
	cancel()
	stopBeat()
	takenOver := err != nil && errors.Is(context.Cause(actx), errTakenOver)
	if !takenOver {
		b.metrics.observeAttempt(ref.Channel, err, time.Since(start))
	}
	switch {
	case err == nil:
		// Also after a takeover that came too late to stop it (the case folder
		// renamed, the notification sent): the outcome is then stale, except a
		// case folder's hand-over, which is recorded as the one after the
		// takeover (Submission.HandOver on the delivered record, tellLateHandOver).
		b.ends.success(key)
		return func() {
			defer stop(nil)
			defer b.inflight.Delete(m.ID)
			b.delivered(msg, s, conf)
		}
	case b.ctx.Err() != nil:
		// Shutting down: the attempt was cut short by us, not by the receiver. It does
		// not count; the message comes back after the restart.
		b.ends.release(key)
		_ = msg.NakWithDelay(time.Second)
	case takenOver:
		// A clerk took the case over in the web mailbox and the takeover stopped
		// the attempt (stopAttempt). Not the receiver's failure: no
		// attempt_failed event, nothing counted against the endpoint's breaker
		// or in the attempts metric, no error logged. The message goes back
		// for a moment rather than being acked: its next delivery reads the
		// record, finds the case delivered (the clerk's) and acks it as stale,
		// while a stop that named a case not taken over — a stop message from a
		// bug or a stranger on the subject (clusterstop.go) — costs a second,
		// not a stranded case until the queue check.
		b.ends.release(key)
		b.stepped.Delete(m.ID)
		b.log.Info("delivery attempt stopped: a clerk took the case over in the web mailbox", "submission", s.ID, "channel", ref.Channel)
		_ = msg.NakWithDelay(time.Second)
	case adapters.Gone(err):
		b.ends.release(key)
		why := reasonOf(err)
		// The book keeps what the log may say (the status), not the receiver's
		// words: endpoints.json, or the cluster's bucket, is reached by no
		// retention or erasure, and a 410 body may quote the applicant (an
		// audit, 2026-12-05). The words are in the case's event.
		if perr := b.ends.disable(key, addr, time.Now(), why.Log); perr != nil {
			b.log.Error("persist disabled endpoint; it is disabled until this process ends", "office", s.OfficeID, "channel", ref.Channel, "err", perr)
		}
		b.log.Warn("endpoint gone: channel disabled until an operator enables it", "office", s.OfficeID, "channel", ref.Channel)
		// The portal's detail stays the receiver's status; the operator's note says
		// what follows (later packages' events say the channel is disabled).
		why.Internal = "endpoint gone: channel " + ref.Channel + " disabled for the office until an operator enables it; " + why.Internal
		why.Log = "endpoint gone: channel " + ref.Channel + " disabled for the office until an operator enables it; " + why.Log
		b.nextChannel(msg, s, why)
	case adapters.IsPermanent(err):
		b.ends.release(key)
		b.nextChannel(msg, s, reasonOf(err))
	default:
		var ra time.Duration
		if d, ok := adapters.RetryAfter(err); ok {
			ra = b.scaled(min(d, maxRetryAfter))
		}
		now := time.Now()
		if b.ends.failure(key, now, ra) {
			b.log.Warn("circuit breaker opened: attempts to the endpoint pause", "office", s.OfficeID, "channel", ref.Channel,
				"cooldown", b.cfg.BreakerCooldown)
		}
		b.failed(msg, s, err, b.ends.holds(key, now))
	}
	return nil
}

// retryWait is how long s must still wait for its next attempt. NextAttemptAt
// is a wall time: after the clock stepped back (NTP correcting a clock that ran a
// day ahead), or written by a gateway whose clock runs ahead, it lies further
// ahead than the failure scheduled, and every retry waited for the whole step. A
// wait beyond the scheduled delay (RetryDelay; for records without it, the
// longest delay the schedule or a Retry-After could have given) is such a step:
// it is logged once, and the retry waits the scheduled delay from when this
// gateway first saw it, by its monotonic clock (Broker.stepped).
func (b *Broker) retryWait(s *submission.Submission) time.Duration {
	wait := time.Until(s.NextAttemptAt)
	if wait <= 0 {
		if s.Attempts > 0 {
			// Only a retry can have been stepped; a first attempt, every
			// package's, does not touch the map.
			b.stepped.Delete(s.ID)
		}
		return 0
	}
	limit := s.RetryDelay
	if limit <= 0 {
		limit = b.scaled(b.maxRetryDelay(s.Attempts))
	}
	if wait <= limit {
		return wait
	}
	key := steppedRetry{gen: s.Generation, attempts: s.Attempts}
	if v, ok := b.stepped.Load(s.ID); ok && v.(steppedRetry).gen == key.gen && v.(steppedRetry).attempts == key.attempts {
		if wait = time.Until(v.(steppedRetry).due); wait > 0 {
			return wait
		}
		b.stepped.Delete(s.ID)
		return 0
	}
	key.due = time.Now().Add(limit)
	b.stepped.Store(s.ID, key)
	b.log.Warn("next attempt lies further ahead than its schedule allows: the clock was stepped back since the failure, or the gateway that recorded it runs ahead; waiting the scheduled delay",
		"submission", s.ID, "next_attempt_at", s.NextAttemptAt, "scheduled", limit, "step", (wait - limit).Round(time.Second))
	return limit
}

// steppedRetry is a retry whose NextAttemptAt lay beyond its schedule
// (retryWait): the attempt it is for and when it is due by the monotonic clock.
type steppedRetry struct {
	gen, attempts int
	due           time.Time
}

// pruneStepped forgets stepped retries due more than an hour ago: their queue
// message went to another gateway of a cluster, or the package on.
func (b *Broker) pruneStepped() {
	b.stepped.Range(func(k, v any) bool {
		if time.Since(v.(steppedRetry).due) > time.Hour {
			b.stepped.Delete(k)
		}
		return true
	})
}

// reasonOf splits a delivery error into what the portal may read and what only
// operators see. Both are clipped: they become event text in the submission's
// record, kept for as long as the record (in cluster mode within one document of
// bounded size), and an adapter's error may carry what an office's system said.
func reasonOf(err error) submission.Reason {
	return submission.Reason{Public: clip(adapters.PublicReason(err), maxReasonRunes), Internal: clip(err.Error(), maxReasonRunes),
		Log: clip(adapters.LogReason(err), maxReasonRunes)}
}

// maxReasonRunes bounds each text of a failed attempt's event: with at most
// MaxAttempts attempts per channel, a record's event log stays far below the
// cluster store's document limit (1 MiB by default) however talkative an office is.
const maxReasonRunes = 2000

// clip cuts s to at most n runes, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// How a queue message for an unknown submission is retried before it is given up.
const (
	unknownRetry  = 30 * time.Second
	unknownGiveUp = 20
)

// heartbeat tells JetStream the message is still being worked on until stop is called.
// A timer, not a goroutine with a ticker: nearly every attempt ends long before the
// first beat, and a goroutine per attempt had to be scheduled just to exit (6 % of
// the scheduler latency in an open-loop trace at 600 packages/s).
func heartbeat(msg jetstream.Msg, every time.Duration) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(every, func() {
		_ = msg.InProgress()
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(every)
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

func (b *Broker) delivery(s *submission.Submission, t adapters.Target) adapters.Delivery {
	open := func(digest string) func(context.Context) (io.ReadCloser, error) {
		return func(ctx context.Context) (io.ReadCloser, error) { return b.db.Blobs().Open(ctx, digest) }
	}
	atts := make([]adapters.Attachment, len(s.Attachments))
	for i, a := range s.Attachments {
		atts[i] = adapters.Attachment{ID: a.ID, FileName: a.FileName, MimeType: a.MimeType, Size: a.Size, SHA256: a.SHA256, Open: open(a.SHA256)}
	}
	return adapters.Delivery{
		ID: s.DeliveryID, SubmissionID: s.ID, CaseID: s.CaseID, MessageID: s.MessageID, Sender: s.Sender,
		LeikaKey: s.LeikaKey, ServiceName: s.ServiceName, OfficeID: s.OfficeID, OfficeName: s.OfficeName,
		Target: t, Attempt: s.Attempts + 1, CreatedAt: s.ReceivedAt,
		PackageSHA256: s.PackageSHA256, PackageSize: s.PackageSize,
		Package: open(s.PackageSHA256), Attachments: atts,
	}
}

func toConfirmation(c adapters.Confirmation) submission.Confirmation {
	return submission.Confirmation{Receiver: c.Receiver, At: c.At, Reference: c.Reference}
}

// delivered records the outcome of a successful attempt: the delivery with its
// Zustellbestaetigung, or the hand-over when the office confirms later.
//
// The office has the package by now, and a Nak would have it delivered again. So a
// store that fails to record the outcome gets recordTries tries here, with the
// retry backoff between them (the heartbeat keeps the message ours), before the
// message goes back; and it goes back with a delay that grows with each delivery of
// it, so a store that stays broken costs the office a duplicate now and then, not
// one every BackoffBase. amtsbote_delivery_unrecorded_total counts each time.
func (b *Broker) delivered(msg jetstream.Msg, s *submission.Submission, c adapters.Confirmation) {
	id, gen, snap := s.ID, s.Generation, s
	var late *submission.Submission // the hand-over landed on a case a clerk had taken over
	record := func() error {
		if c.Pending {
			// Once late, late for every later try: a try whose commit
			// landed but answered an error (a cluster's lost ack) leaves the
			// next one finding the hand-over recorded, and the operator
			// must hear of it all the same.
			l, err := b.recordHandOver(id, gen, toConfirmation(c))
			if l != nil {
				late = l
			}
			return err
		}
		// The first try signs from the snapshot of the attempt (and changes it); a
		// later one reads the record again.
		_, err := b.confirmSub(id, snap, toConfirmation(c), func(cur *submission.Submission, now time.Time, conf submission.Confirmation) ([]submission.Event, error) {
			return cur.Delivered(now, gen, conf)
		})
		snap = nil
		return err
	}
	err := record()
	if err == nil {
		b.tellLateHandOver(late)
		_ = msg.Ack()
		return
	}
	stopBeat := heartbeat(msg, ackWait/3)
	for try := 1; err != nil && try < recordTries; try++ {
		b.log.Warn("record delivery failed; trying again", "submission", id, "try", try, "err", err)
		select {
		case <-time.After(b.backoff(try)):
		case <-b.ctx.Done():
		}
		if b.ctx.Err() != nil {
			break
		}
		err = record()
	}
	stopBeat()
	if err == nil {
		b.tellLateHandOver(late)
		_ = msg.Ack()
		return
	}
	b.metrics.unrecorded.Inc()
	n := recordTries
	if md, mdErr := msg.Metadata(); mdErr == nil {
		n += int(md.NumDelivered)
	}
	delay := b.backoff(n)
	b.log.Error("record delivery failed; the office has the package and will get it again", "submission", id, "retry_in", delay, "err", err)
	_ = msg.NakWithDelay(delay)
}

// tellLateHandOver withdraws, when late, the case folder a transfer attempt
// put into the office's share after a clerk had taken the case over
// (submission.HandedOverAfterTakeover), and tells the operator of it only if
// the folder stays: the takeover promised the clerk that the Fachverfahren
// does not get the case, and the folder is a second copy no import should
// process. The withdrawal is the erasure's (withdraw.go): atomic against the
// import's pickup, bounded by the attempt timeout, not started while the
// office's share hangs; its outcome goes into the case's history (a
// withdrawal event, which the clerk's page reads). Withdrawn, it is counted
// with withdrawn="true" and logged at INFO: nobody has to do anything. Taken
// by the import first, or not withdrawn (the share did not answer), it is
// counted with withdrawn="false", which the alert reads, and logged at WARN:
// the import may process the application beside the clerk, and someone should
// tell the office which case folder to leave alone. The log names the case,
// the office and the channel, never the applicant. late is the record as the
// recording left it (nil: nothing to tell): a case erased meanwhile says so,
// for its case folder holds what the erasure removed here.
//
// It does not wait for the withdrawal: it runs where the dispatcher records
// the attempt's outcome, and a hung share must not hold the queue message.
func (b *Broker) tellLateHandOver(late *submission.Submission) {
	if late == nil {
		return
	}
	ch := ""
	if t, ok := late.CurrentTarget(); ok {
		ch = t.Channel
	}
	erased := late.BytesRemovedAt != nil
	attrs := []any{"submission", late.ID, "office", late.OfficeID, "channel", ch}
	if erased {
		attrs = append(attrs, "erased", true)
	}
	actor := "gateway (after the takeover)"
	if erased {
		// The erasure could not reach this case folder: the attempt held the
		// case while it was erased.
		actor = "gateway (after the erasure)"
	}
	b.withdrawLate(late, ch, actor, func(got ChannelWithdrawal) {
		// By erasure too: the alert says that the erasure is not complete
		// until the office's IT removes the folder (the log line alone said
		// it before).
		b.metrics.lateHandOvers.WithLabelValues(ch, strconv.FormatBool(erased), strconv.FormatBool(got.Withdrawn())).Inc()
		if got.Withdrawn() {
			b.log.Info("case folder handed over after a clerk took the case over in the web mailbox was withdrawn before the office's import took it", attrs...)
			return
		}
		a := append(slices.Clip(attrs), "withdrawal", got.Outcome)
		if got.Err != nil {
			a = append(a, "err", got.Reason())
		}
		b.log.Warn("case folder handed over after a clerk took the case over in the web mailbox: the office's import may process it as well", a...)
	})
}

// recordHandOver records the hand-over of the attempt of generation gen
// (Submission.HandOver); late, when it was the one after a clerk's takeover
// (Submission.HandedOverAfterTakeover), is a copy of the record as the
// transition left it, for tellLateHandOver — also with an error, since a
// commit can land and answer one (a cluster's lost ack), and the try after it
// finds nothing left to record.
func (b *Broker) recordHandOver(id string, gen int, c submission.Confirmation) (late *submission.Submission, err error) {
	err = b.change(id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		evs, err := cur.HandOver(now, gen, c)
		late = nil
		// Events on a record that has its late hand-over are that hand-over's:
		// an ordinary one needs a case still on its way, which a taken-over
		// case is not.
		if len(evs) > 0 && cur.HandedOverAfterTakeover() {
			// Its withdrawal is owed from this transaction on (owed.go): a
			// crash before tellLateHandOver asks leaves the mark.
			if t, ok := cur.CurrentTarget(); ok {
				if _, ok := b.withdrawer(t.Channel); ok {
					cur.OweWithdrawal(t.Channel)
				}
			}
			late = cur.Clone()
		}
		return evs, err
	})
	return late, err
}

// lookForLateHandOver asks the channel of a case a clerk took over from the
// transfer folder whether an attempt of generation gen put its case folder
// into the office's share without this gateway learning of it: a crash just
// after the rename, a final ledger record that could not be written, an
// outcome the store did not take (docs/transfer.md). The delivery's next
// attempt would have found that and recorded the hand-over; a case that is
// delivered gets none, and its queue message, back after the failure's delay
// or the restart, was acknowledged unlooked — the case folder lay in the share
// unrecorded while the clerk's page said the Fachverfahren would not get it.
// What is found is recorded as the hand-over after the takeover
// (Submission.HandOver, tellLateHandOver). A look that fails (the share
// unreachable — often why the clerk took the case over) is made again: the
// message goes back with a delay, up to BackoffMax apart, for lateLookFor
// after the takeover; then the gateway gives up and says so at WARN.
func (b *Broker) lookForLateHandOver(msg jetstream.Msg, s *submission.Submission, gen int) {
	ref, _ := s.CurrentTarget()
	ad, ok := b.adapters.Get(ref.Channel)
	finder, finds := ad.(adapters.HandOverFinder)
	target, configured := b.channels.Target(s.OfficeID, ref.Channel)
	if !ok || !finds || !configured {
		_ = msg.Ack() // nothing here can look
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.attemptTimeout(s))
	c, found, err := finder.HandedOver(ctx, b.delivery(s, target))
	cancel()
	if err == nil && found {
		var late *submission.Submission
		late, err = b.recordHandOver(s.ID, gen, toConfirmation(c))
		b.tellLateHandOver(late)
	}
	if err != nil {
		if s.DeliveredAt == nil || time.Since(*s.DeliveredAt) < lateLookFor {
			n := 1
			if md, mdErr := msg.Metadata(); mdErr == nil {
				n = int(md.NumDelivered)
			}
			delay := b.backoff(n)
			// INFO: the share is down, which its other cases' attempts say
			// louder; the give-up below is what an operator must hear of.
			b.log.Info("cannot look whether the case folder of a case taken over in the web mailbox reached the transfer folder; looking again later",
				"submission", s.ID, "office", s.OfficeID, "retry_in", delay, "err", adapters.LogReason(err))
			_ = msg.NakWithDelay(delay)
			return
		}
		b.log.Warn("gave up looking whether the case folder of a case taken over in the web mailbox reached the transfer folder: if the folder holds one of this case, the office's import may process it as well",
			"submission", s.ID, "office", s.OfficeID, "looked_for", lateLookFor.String(), "err", adapters.LogReason(err))
	}
	_ = msg.Ack()
}

// lateLookFor is how long after a takeover lookForLateHandOver keeps trying
// to look into a transfer folder that does not answer: a day, so a share down
// over night is looked into when it is back, and a message of a case that
// left the transfer folder for good does not circle for ever.
const lateLookFor = 24 * time.Hour

// recordTries is how often delivered tries to record an outcome before the package
// goes back to the queue (and so to the office again).
const recordTries = 4

// change applies one lifecycle transition in one store transaction and tells the
// observers. A stale outcome (the submission moved on meanwhile) changes nothing and
// is no error.
func (b *Broker) change(id string, fn func(cur *submission.Submission, now time.Time) ([]submission.Event, error)) error {
	_, err := b.changeSub(id, fn)
	return err
}

func (b *Broker) changeSub(id string, fn func(cur *submission.Submission, now time.Time) ([]submission.Event, error)) (*submission.Submission, error) {
	return b.commit(id, "", nil, func(cur *submission.Submission) ([]submission.Event, error) {
		return fn(cur, time.Now().UTC())
	})
}

// removeBytes is changeSub for a transition that removes the case's bytes (an
// erasure, the retention): in the same store transaction the text from outside
// the gateway goes from the case's earlier events (submission.DropOutsideText),
// an office's error text that may quote the applicant. The events stay for
// retention.records, and for a case no office answers that never starts.
func (b *Broker) removeBytes(id string, fn func(cur *submission.Submission, now time.Time) ([]submission.Event, error)) (*submission.Submission, error) {
	return b.commitWith(id, "", nil, submission.DropOutsideText, func(cur *submission.Submission) ([]submission.Event, error) {
		return fn(cur, time.Now().UTC())
	})
}

// commit runs one lifecycle transition in one store transaction, with a receipt of
// the given kind when receipt is not nil (only the writer whose change wins leaves
// its receipt), then tells the observers. A stale outcome (the submission moved on
// meanwhile) changes nothing and is no error; an illegal one is ErrConflict.
func (b *Broker) commit(id, kind string, receipt []byte, fn func(cur *submission.Submission) ([]submission.Event, error)) (*submission.Submission, error) {
	return b.commitWith(id, kind, receipt, nil, fn)
}

// commitWith is commit that, with a redact, writes through
// store.Store.UpdateRedacting (removeBytes; no receipt then).
func (b *Broker) commitWith(id, kind string, receipt []byte, redact func(*submission.Event) bool, fn func(cur *submission.Submission) ([]submission.Event, error)) (*submission.Submission, error) {
	var applied []submission.Event
	var fnErr error
	write := func(cur *submission.Submission) ([]submission.Event, error) {
		applied, fnErr = fn(cur)
		return applied, fnErr
	}
	var s *submission.Submission
	var changed bool
	var err error
	switch {
	case redact != nil:
		s, err = b.db.UpdateRedacting(id, write, redact)
		changed = len(applied) > 0
	case receipt == nil:
		s, err = b.db.Update(id, write)
		changed = len(applied) > 0
	default:
		s, changed, err = b.db.UpdateWithReceipt(id, kind, receipt, write)
	}
	if errors.Is(err, submission.ErrStale) {
		return s, nil
	}
	if err != nil && fnErr == nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrUnavailable) {
		// The change was fine and the store could not write it (a full disk, a
		// failing write): nothing was recorded, and the same call later may work.
		// An office's decision, pickup or reply answered 500 "internal error"
		// here, where the portal's intake of the same failure answers 503.
		return nil, fmt.Errorf("broker: record %s: %w: %w", id, ErrUnavailable, err)
	}
	if err != nil {
		return nil, asConflict(err)
	}
	if changed {
		b.emit(s, applied)
	}
	return s, nil
}

// asConflict reports an illegal transition as the broker's ErrConflict.
func asConflict(err error) error {
	if errors.Is(err, submission.ErrIllegal) {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

// confirm records a delivery with its signed Zustellbestaetigung. The receipt is
// signed from the record as the transition will leave it and stored in the same
// transaction as the delivered event, by whichever confirmation wins (a push and a
// pull by the office can race); a crash in between repeats the delivery with the
// same delivery id, never leaves one without its receipt.
func (b *Broker) confirm(id string, c submission.Confirmation, transition func(cur *submission.Submission, now time.Time, c submission.Confirmation) ([]submission.Event, error)) error {
	_, err := b.confirmSub(id, nil, c, transition)
	return err
}

// confirmSub is confirm returning the record. snap, if not nil, is a copy of the
// record the caller read moments ago and no longer needs (the transition changes
// it); the receipt is signed from it instead of reading the record again: a
// delivery worker has it from the attempt's start, and the second read was 5 % of
// the gateway's CPU in the closed-loop bench. The receipt is kept only if the same
// transition on the stored record wins, as with a fresh read (the record may
// change between any read and the commit).
func (b *Broker) confirmSub(id string, snap *submission.Submission, c submission.Confirmation, transition func(cur *submission.Submission, now time.Time, c submission.Confirmation) ([]submission.Event, error)) (*submission.Submission, error) {
	given := c.At
	for try := 0; ; try++ {
		now := time.Now().UTC()
		c.At = given
		if c.At.IsZero() {
			c.At = now
		}
		// Sign from a copy taken through the same transition, outside the
		// transaction (signing takes milliseconds; the transaction must not).
		cur := snap
		if cur == nil || try > 0 {
			var err error
			if cur, err = b.db.Get(id); err != nil {
				return nil, err
			}
		}
		evs, err := transition(cur, now, c)
		if errors.Is(err, submission.ErrStale) || (err == nil && len(evs) == 0) {
			return cur, nil
		}
		if err != nil {
			return nil, asConflict(err)
		}
		// The receipt names the time the record keeps: the transition clamps a
		// time from another clock (a peer's, an office system's) to between the
		// hand-over and now, and the Zustellbestaetigung signed the unclamped one
		// — "delivered" 100 days before the intake for a peer whose clock ran
		// behind, while the status API said otherwise (an audit, 2026-12-05).
		if cur.DeliveredAt != nil {
			c.At = *cur.DeliveredAt
		}
		receipt, err := b.signer.SignDelivery(cur, evs[0].Channel, c)
		if err != nil {
			return nil, fmt.Errorf("sign delivery receipt: %w", err)
		}
		s, err := b.commit(id, ReceiptDelivery, receipt, func(s *submission.Submission) ([]submission.Event, error) {
			evs, err := transition(s, now, c)
			if err == nil && len(evs) > 0 && s.DeliveredAt != nil && !s.DeliveredAt.Equal(c.At) {
				// The record moved while the receipt was signed (the dispatcher
				// handed the package over, which raises the lower bound): the
				// signed time is not the one it would keep. Sign again. Never
				// commit it: after three re-signs it was committed anyway, and
				// the Zustellbestaetigung named another time than deliveredAt
				// (docs/signing.md promises the same one).
				return nil, errResign
			}
			return evs, err
		})
		if errors.Is(err, errResign) {
			if try+1 < resignTries {
				continue
			}
			// Nothing recorded; every caller retries a transient error: an
			// office's pickup gets 503 and asks again, a push delivery records
			// again (and goes back to the queue), the confirmation round and
			// the peer tracker ask again next time.
			return nil, fmt.Errorf("broker: record %s: %w: the record changed each of %d times its delivery receipt was signed: %w",
				id, ErrUnavailable, resignTries, err)
		}
		return s, err
	}
}

// resignTries bounds how often confirmSub signs a delivery receipt for a record
// that keeps moving. A move takes another writer's transition in the
// milliseconds of the signing; more than a few in a row do not happen but
// under a writer gone wrong, and the loop must end.
const resignTries = 10

// errResign ends a confirmation's commit whose signed receipt names another
// time than the record would keep; confirmSub signs again.
var errResign = errors.New("broker: the delivery receipt's time changed while it was signed")

// failed records a transient failure of s's attempt and schedules the next one.
// hold (real time) is how long the endpoint keeps every attempt away now (its
// circuit breaker open, a Retry-After): the next attempt comes no earlier than
// that, and the event says so. It said the schedule's delay ("next attempt in
// 5s") while the breaker held the package for its minute's cool-down, and the
// office's IT read a promise the gateway did not keep.
func (b *Broker) failed(msg jetstream.Msg, s *submission.Submission, cause error, hold time.Duration) {
	if s.Attempts+1 >= b.maxAttempts() {
		why := reasonOf(cause)
		why.Public = fmt.Sprintf("gave up after %d attempts: %s", s.Attempts+1, why.Public)
		b.nextChannel(msg, s, why)
		return
	}
	nominal := b.retryDelay(s.Attempts+1, cause)
	delay := b.scaled(nominal)
	gen := s.Generation
	t, _ := s.CurrentTarget()
	why := reasonOf(cause)
	if hold > delay {
		// The queue message stays away as long as the endpoint does (with the
		// jitter allow gives the waiting messages), so the record's
		// nextAttemptAt is the hold's end, on every gateway of a cluster. When
		// the cool-down is over one attempt probes the endpoint; that may be
		// another package's, and its failure pauses the endpoint again: the
		// time is a lower bound (Reason.Paused).
		delay = hold + b.ends.jitter()
		nominal = b.unscaled(delay)
		why.Paused = true
	}
	if delay != nominal {
		why.NextIn = nominal // the event states the schedule's delay, not the compressed one
	}
	err := b.change(s.ID, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.AttemptFailed(now, gen, why, now.Add(delay))
	})
	if err != nil {
		b.log.Error("record failed attempt", "submission", s.ID, "err", err)
		_ = msg.NakWithDelay(delay)
		return
	}
	b.log.Info("delivery attempt failed", "submission", s.ID, "channel", t.Channel, "attempt", s.Attempts+1, "retry_in", nominal.String(), "err", adapters.LogReason(cause))
	_ = msg.NakWithDelay(delay)
}

// deferred tells s's record that the office's endpoint keeps its attempt away
// for wait (real time, as long as its queue message now stays away; why is
// allow's reason): a package whose attempt_failed said "next attempt in 5s" when
// another package's failure opened the breaker was held back for the
// cool-down (or a Retry-After's hour) in silence, and its history and
// nextAttemptAt promised what the gateway did not keep. The record's
// nextAttemptAt moves to the hold's end with one queued event stating it "at the
// earliest" (submission.Defer): once per stated next attempt, so that a breaker
// that opens again after every failed probe of an office down for a day does
// not add an event a cool-down to every waiting case. A half-open endpoint's
// probe wait is left out: the probe's outcome decides within seconds, and a
// failed probe opens the breaker, which this then says.
func (b *Broker) deferred(s *submission.Submission, why string, wait time.Duration) {
	if why != deferBreaker && why != deferRetryAfter {
		return
	}
	until := time.Now().Add(wait)
	gen, attempts := s.Generation, s.TotalAttempts
	if !s.NextAttemptAt.Before(until) || s.Deferred == (submission.Deferral{Generation: gen, TotalAttempts: attempts}) {
		return // the record says as much already: no write
	}
	r := submission.Reason{Public: "the office's endpoint is failing"}
	if why == deferRetryAfter {
		r.Public = "the office's endpoint asked to be called later"
	}
	err := b.change(s.ID, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		r := r
		// The time left from the event's own time: the hold's end is fixed
		// (until), and the wait stated from when it was computed, before the
		// write, was that much too long on a compressed clock (a test's
		// 1 ms of waiting for the store stated as a second).
		if left := max(until.Sub(now), 0); b.unscaled(left) != left {
			r.NextIn = b.unscaled(left) // the event states simulated time on a compressed clock, as failed does
		}
		return cur.Defer(now, gen, attempts, r, until)
	})
	switch {
	case errors.Is(err, submission.ErrStale):
		// An attempt, a takeover or a redelivery changed the package since it
		// was read: what it says now is newer than this deferral.
	case err != nil:
		// The message stays away all the same; the record keeps the earlier time.
		b.log.Error("record deferred attempt", "submission", s.ID, "err", err)
	}
}

// nextChannel gives up on the current channel and moves to the office's next one, or
// holds the package when none is left.
func (b *Broker) nextChannel(msg jetstream.Msg, s *submission.Submission, why submission.Reason) {
	gen := s.Generation
	b.giveUpChannel(msg, s, why, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.ChannelFailed(now, gen, why)
	})
}

// channelGone is nextChannel for a channel the office no longer has: the package
// goes on with the office's channels as configured now (Submission.ChannelGone).
func (b *Broker) channelGone(msg jetstream.Msg, s *submission.Submission, why submission.Reason) {
	gen := s.Generation
	b.giveUpChannel(msg, s, why, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.ChannelGone(now, gen, why, b.planOf(cur.OfficeID))
	})
}

// planOf is the office's channel plan as configured now (Config.Plan), nil
// without one.
func (b *Broker) planOf(officeID string) []submission.Target {
	if b.cfg.Plan == nil {
		return nil
	}
	return b.cfg.Plan(officeID)
}

func (b *Broker) giveUpChannel(msg jetstream.Msg, s *submission.Submission, why submission.Reason, change func(cur *submission.Submission, now time.Time) ([]submission.Event, error)) {
	t, _ := s.CurrentTarget()
	cur, err := b.changeSub(s.ID, change)
	if err != nil {
		b.log.Error("record channel failure", "submission", s.ID, "err", err)
		_ = msg.NakWithDelay(b.cfg.BackoffBase)
		return
	}
	b.log.Warn("delivery channel failed for good", "submission", s.ID, "channel", t.Channel, "reason", cmp.Or(why.Log, why.Public))
	_ = msg.Term()
	if cur != nil && cur.State.Dispatchable() {
		b.enqueue(cur)
	}
}

// attemptTimeout is how long one delivery attempt of s may take: AttemptTimeout,
// plus its package's and attachments' bytes at TransferMinRate. An adapter that
// pushes a 2 GiB attachment (XTA, a peer gateway) needs minutes, not the 30
// seconds that suit a webhook; a hung receiver still frees the worker in bounded
// time (the heartbeat keeps the queue message meanwhile).
func (b *Broker) attemptTimeout(s *submission.Submission) time.Duration {
	n := s.PackageSize
	for _, a := range s.Attachments {
		n += a.Size
	}
	return b.cfg.AttemptTimeout + time.Duration(float64(n)/float64(b.cfg.TransferMinRate)*float64(time.Second))
}
