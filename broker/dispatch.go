package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/store"
)

// handle is the JetStream callback (called serially). It enforces two bounds: the
// number of concurrent attempts (Workers, a semaphore that also pushes back on
// consumption) and the attempts per office (PerOffice). A message for an office that
// has its share running waits in that office's short line, which the office's own
// workers drain as they finish; only when the line is full does it go back to
// JetStream with a delay. A fast office keeps its throughput; an office whose
// endpoint hangs holds at most PerOffice workers.
func (b *Broker) handle(msg jetstream.Msg) {
	office := officeOf(msg.Subject())
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
			b.process(next)
		}
	}()
}

// officeOf returns the office token of a subject deliver.<channel>.<office>.
func officeOf(subject string) string {
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		return subject[i+1:]
	}
	return subject
}

// maxWaitingPerOffice bounds an office's line of messages held in memory.
const maxWaitingPerOffice = 64

type officeLine struct {
	running int
	waiting []jetstream.Msg
	// full counts messages sent back because the line was full since the office last
	// made progress; their delay doubles with it, so a hung office with a large backlog
	// does not churn the queue while a fast one is slowed for a second at most.
	full int
}

// admitOffice reports whether msg may start now; otherwise it was put in the
// office's line or sent back to JetStream.
func (b *Broker) admitOffice(office string, msg jetstream.Msg) bool {
	b.officeMu.Lock()
	l := b.lines[office]
	if l == nil {
		l = &officeLine{}
		b.lines[office] = l
	}
	if l.running < b.cfg.PerOffice {
		l.running++
		b.officeMu.Unlock()
		return true
	}
	if len(l.waiting) < maxWaitingPerOffice {
		l.waiting = append(l.waiting, msg)
		b.officeMu.Unlock()
		_ = msg.InProgress()
		return false
	}
	delay := time.Second << min(l.full/maxWaitingPerOffice, 5)
	l.full++
	b.officeMu.Unlock()
	_ = msg.NakWithDelay(min(delay, b.cfg.AttemptTimeout))
	return false
}

// nextForOffice hands a finishing worker the office's next waiting message, or
// releases the office's slot. While draining, waiting messages go back to JetStream.
func (b *Broker) nextForOffice(office string) jetstream.Msg {
	b.admit.RLock()
	draining := b.draining
	b.admit.RUnlock()
	b.officeMu.Lock()
	l := b.lines[office]
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
	defer b.loops.Done()
	t := time.NewTicker(ackWait / 3)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
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
}

func (b *Broker) process(msg jetstream.Msg) {
	var m queueMsg
	if err := json.Unmarshal(msg.Data(), &m); err != nil || m.ID == "" {
		b.log.Error("unreadable queue message dropped", "subject", msg.Subject())
		_ = msg.Term()
		return
	}
	// Two queue messages for one submission (a re-publish after a restart) must not
	// run two attempts at once; the later one comes back after a pause.
	if _, busy := b.inflight.LoadOrStore(m.ID, struct{}{}); busy {
		_ = msg.NakWithDelay(5 * time.Second)
		return
	}
	defer b.inflight.Delete(m.ID)

	s, err := b.db.Get(m.ID)
	if errors.Is(err, store.ErrNotFound) {
		_ = msg.Term()
		return
	}
	if err != nil {
		b.log.Error("load submission", "submission", m.ID, "err", err)
		_ = msg.NakWithDelay(b.cfg.BackoffBase)
		return
	}
	if !s.State.Dispatchable() || m.Gen < s.Generation {
		_ = msg.Ack() // done already, or superseded by a newer queue message
		return
	}
	if wait := time.Until(s.NextAttemptAt); wait > 0 {
		_ = msg.NakWithDelay(wait)
		return
	}
	target, _ := s.CurrentTarget()
	ad, ok := b.adapters.Get(target.Channel)
	if !ok {
		b.nextChannel(msg, s, target, "no adapter for channel "+target.Channel)
		return
	}
	d := b.delivery(s, target)
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.AttemptTimeout)
	stopBeat := heartbeat(msg, ackWait/3)
	start := time.Now()
	conf, err := ad.Deliver(ctx, d)
	cancel()
	stopBeat()
	b.metrics.observeAttempt(target.Channel, err, time.Since(start))
	switch {
	case err == nil:
		b.delivered(msg, s, target, conf)
	case b.ctx.Err() != nil:
		// Shutting down: the attempt was cut short by us, not by the receiver. It does
		// not count; the message comes back after the restart.
		_ = msg.NakWithDelay(time.Second)
	case adapters.IsPermanent(err):
		b.nextChannel(msg, s, target, err.Error())
	default:
		b.failed(msg, s, target, err)
	}
}

// heartbeat tells JetStream the message is still being worked on until stop is called.
func heartbeat(msg jetstream.Msg, every time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

func (b *Broker) delivery(s *store.Submission, t store.TargetRef) adapters.Delivery {
	open := func(digest string) func(context.Context) (io.ReadCloser, error) {
		return func(ctx context.Context) (io.ReadCloser, error) { return b.db.Blobs.Open(ctx, digest) }
	}
	atts := make([]adapters.Attachment, len(s.Attachments))
	for i, a := range s.Attachments {
		atts[i] = adapters.Attachment{ID: a.ID, FileName: a.FileName, MimeType: a.MimeType, Size: a.Size, SHA256: a.SHA256, Open: open(a.SHA256)}
	}
	return adapters.Delivery{
		ID: s.DeliveryID, SubmissionID: s.ID, MessageID: s.MessageID, Sender: s.Sender,
		LeikaKey: s.LeikaKey, ServiceName: s.ServiceName, OfficeID: s.OfficeID, OfficeName: s.OfficeName,
		Target:  adapters.Target{Channel: t.Channel, Endpoint: t.Endpoint, Secret: b.secrets.Secret(s.OfficeID, t.Channel)},
		Attempt: s.Attempts + 1, CreatedAt: s.ReceivedAt,
		PackageSHA256: s.PackageSHA256, PackageSize: s.PackageSize,
		Package: open(s.PackageSHA256), Attachments: atts,
	}
}

func (b *Broker) delivered(msg jetstream.Msg, s *store.Submission, t store.TargetRef, conf adapters.Confirmation) {
	if conf.At.IsZero() {
		conf.At = time.Now().UTC()
	}
	if err := b.markDelivered(s.ID, t, conf, func(cur *store.Submission) bool {
		return cur.State.Dispatchable() && cur.Generation == s.Generation
	}); err != nil {
		b.log.Error("record delivery", "submission", s.ID, "err", err)
		_ = msg.NakWithDelay(b.cfg.BackoffBase)
		return
	}
	_ = msg.Ack()
}

// markDelivered signs the Zustellbestaetigung and records the delivery, if still
// applicable (cond) — the office may have fetched or decided meanwhile. Receipt and
// event are written in one transaction, by whichever confirmation comes first.
func (b *Broker) markDelivered(id string, t store.TargetRef, conf adapters.Confirmation, cond func(*store.Submission) bool) error {
	cur, err := b.db.Get(id)
	if err != nil {
		return err
	}
	if cur.DeliveredAt != nil || !cond(cur) {
		return nil
	}
	at := conf.At.UTC()
	cur.DeliveredAt, cur.Receiver = &at, conf.Receiver
	receipt, err := b.signer.SignDelivery(cur, t, conf)
	if err != nil {
		return fmt.Errorf("sign delivery receipt: %w", err)
	}
	var evs []store.Event
	s, changed, err := b.db.UpdateWithReceipt(id, ReceiptDelivery, receipt, func(s *store.Submission) ([]store.Event, error) {
		evs = nil
		if s.DeliveredAt != nil || !cond(s) {
			return nil, nil
		}
		s.DeliveredAt, s.Receiver = &at, conf.Receiver
		if !s.State.Final() {
			s.State = store.StateDelivered
		}
		s.NextAttemptAt = time.Time{}
		detail := "receiver " + conf.Receiver
		if conf.Reference != "" {
			detail += ", reference " + conf.Reference
		}
		evs = []store.Event{{Type: store.EventDelivered, Channel: t.Channel, Attempt: s.Attempts + 1, Detail: detail}}
		return evs, nil
	})
	if err != nil {
		return err
	}
	if changed {
		b.emit(s, evs)
	}
	return nil
}

func (b *Broker) failed(msg jetstream.Msg, s *store.Submission, t store.TargetRef, cause error) {
	if s.Attempts+1 >= b.cfg.MaxAttempts {
		b.nextChannel(msg, s, t, fmt.Sprintf("gave up after %d attempts: %v", s.Attempts+1, cause))
		return
	}
	delay := b.backoff(s.Attempts + 1)
	var evs []store.Event
	cur, err := b.db.Update(s.ID, func(cur *store.Submission) ([]store.Event, error) {
		if !cur.State.Dispatchable() || cur.Generation != s.Generation {
			return nil, nil
		}
		cur.Attempts++
		cur.TotalAttempts++
		cur.State = store.StateRetrying
		cur.NextAttemptAt = time.Now().UTC().Add(delay)
		evs = []store.Event{{Type: store.EventAttemptFailed, Channel: t.Channel, Attempt: cur.Attempts,
			Detail: fmt.Sprintf("%v; next attempt in %s", cause, delay.Round(time.Millisecond))}}
		return evs, nil
	})
	if err != nil {
		b.log.Error("record failed attempt", "submission", s.ID, "err", err)
		_ = msg.NakWithDelay(delay)
		return
	}
	b.log.Info("delivery attempt failed", "submission", s.ID, "channel", t.Channel, "attempt", cur.Attempts, "retry_in", delay, "err", cause)
	b.emit(cur, evs)
	_ = msg.NakWithDelay(delay)
}

// nextChannel gives up on the current channel and moves to the office's next one, or
// holds the package for pickup when none is left.
func (b *Broker) nextChannel(msg jetstream.Msg, s *store.Submission, t store.TargetRef, reason string) {
	var evs []store.Event
	cur, err := b.db.Update(s.ID, func(cur *store.Submission) ([]store.Event, error) {
		if !cur.State.Dispatchable() || cur.Generation != s.Generation {
			evs = nil
			return nil, nil
		}
		cur.TotalAttempts++
		evs = []store.Event{{Type: store.EventChannelFailed, Channel: t.Channel, Attempt: cur.Attempts + 1, Detail: reason}}
		cur.TargetIndex++
		cur.Attempts = 0
		cur.NextAttemptAt = time.Time{}
		if next, ok := cur.CurrentTarget(); ok {
			cur.State = store.StateQueued
			cur.Generation++
			evs = append(evs, store.Event{Type: store.EventFallback, Channel: next.Channel, Detail: "falling back from " + t.Channel})
		} else {
			cur.State = store.StateHeld
			evs = append(evs, store.Event{Type: store.EventHeld, Detail: "no channel left; ready for pickup by the office"})
		}
		return evs, nil
	})
	if err != nil {
		b.log.Error("record channel failure", "submission", s.ID, "err", err)
		_ = msg.NakWithDelay(b.cfg.BackoffBase)
		return
	}
	b.log.Warn("delivery channel failed for good", "submission", s.ID, "channel", t.Channel, "reason", reason)
	b.emit(cur, evs)
	_ = msg.Term()
	if cur.State.Dispatchable() {
		b.enqueue(cur.ID)
	}
}
