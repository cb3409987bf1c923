package broker

import (
	"context"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
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

// confirmsLater reports whether the channel's adapter is an adapters.Confirmer.
func (b *Broker) confirmsLater(channel string) bool {
	a, ok := b.adapters.Get(channel)
	if !ok {
		return false
	}
	_, ok = a.(adapters.Confirmer)
	return ok
}

// checkHandedOver asks once about each submission handed over to a channel
// that confirms later. The index entry names the channel, so the records of the
// others are not read: a gateway whose mailboxes and XTA boxes hold tens of
// thousands of handed-over packages read every one of them every ConfirmEvery,
// and again on every change a folder signalled.
func (b *Broker) checkHandedOver() {
	entries, err := b.db.HandedOver()
	if err != nil {
		b.log.Error("list handed-over submissions", "err", err)
		return
	}
	for _, e := range entries {
		if b.ctx.Err() != nil {
			return
		}
		if e.Known && !b.confirmsLater(e.Channel) {
			continue
		}
		id := e.ID
		s, err := b.db.Get(id)
		if err != nil || s.State != submission.StateHandedOver {
			continue
		}
		ref, _ := s.CurrentTarget()
		a, ok := b.adapters.Get(ref.Channel)
		if !ok {
			continue
		}
		c, ok := a.(adapters.Confirmer)
		if !ok {
			continue
		}
		target, _ := b.channels.Target(s.OfficeID, ref.Channel)
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.AttemptTimeout)
		conf, done, err := c.Confirmed(ctx, b.delivery(s, target))
		cancel()
		if err != nil {
			b.log.Warn("ask channel for confirmation", "submission", id, "channel", ref.Channel, "err", err)
			continue
		}
		if !done {
			continue
		}
		if err := b.confirm(id, toConfirmation(conf), func(cur *submission.Submission, now time.Time, sc submission.Confirmation) ([]submission.Event, error) {
			return cur.Confirm(now, ref.Channel, sc)
		}); err != nil {
			b.log.Error("record confirmation", "submission", id, "err", err)
		}
	}
}
