package mailbox

import (
	"context"
	"fmt"
	"net/mail"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/channel"
)

// Adapter returns the mailbox channel (channel.Mailbox) for the broker's registry.
//
// Deliver records the arrival and queues the e-mail notice in one transaction of
// mailbox.db and returns at once with Confirmation.Pending: the package is visible in
// the mailbox through the OfficeDesk already, and the office confirms it when a person
// opens it. The adapter also implements adapters.Confirmer, answering from the
// mailbox's record of who opened the package first; with the broker the detail page
// confirms through the OfficeDesk directly, so the Confirmer is the second path.
//
// Target.Endpoint is the office's notice e-mail address (empty: no notice).
func (m *Mailbox) Adapter() adapters.Adapter { return m.adapter }

type adapter struct {
	m *Mailbox

	gate adapters.Gate
}

var (
	_ adapters.Adapter   = (*adapter)(nil)
	_ adapters.Confirmer = (*adapter)(nil)
	_ adapters.Checker   = (*adapter)(nil)
)

func (a *adapter) Channel() string { return channel.Mailbox }

// CheckTarget implements adapters.Checker: the endpoint, if set, must be one plain
// e-mail address.
func (a *adapter) CheckTarget(t adapters.Target) error {
	if t.Endpoint == "" {
		return nil
	}
	if _, err := noticeAddress(t.Endpoint); err != nil {
		return &adapters.TargetError{Field: "endpoint", Reason: err.Error()}
	}
	return nil
}

// noticeAddress accepts exactly one bare address ("poststelle@amt.example").
func noticeAddress(s string) (string, error) {
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", fmt.Errorf("the notice address %q is not one plain e-mail address", s)
	}
	return addr.Address, nil
}

func (a *adapter) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, error) {
	if err := a.gate.Begin(ctx, "mailbox"); err != nil {
		return adapters.Confirmation{}, err
	}
	defer a.gate.Leave()

	m := a.m
	if d.SubmissionID == "" || d.OfficeID == "" {
		return adapters.Confirmation{}, adapters.Permanent("delivery without submission or office id", nil)
	}
	if !m.offices[d.OfficeID] {
		// Nobody could ever open it here: let the broker fall back or hold it for the
		// office's pull API, instead of a package that waits unseen.
		return adapters.Confirmation{}, adapters.Permanent("the office has no mailbox user", nil)
	}
	var n *notice
	if d.Target.Endpoint != "" {
		to, err := noticeAddress(d.Target.Endpoint)
		if err != nil {
			return adapters.Confirmation{}, adapters.Permanent("the notice address is not an e-mail address", nil)
		}
		if m.opts.SMTP.Addr != "" {
			now := m.now().UTC()
			subj, body := m.noticeText(d)
			n = &notice{SubmissionID: d.SubmissionID, OfficeID: d.OfficeID, To: to, Subject: subj, Body: body, Created: now, NextAt: now}
		}
	}
	now := m.now().UTC()
	var fault func() error
	if m.opts.storeFault != nil {
		ep := d.Target.Endpoint
		fault = func() error { return m.opts.storeFault(ep) }
	}
	queued, err := m.db.handOver(
		arrival{SubmissionID: d.SubmissionID, OfficeID: d.OfficeID, DeliveryID: d.ID, First: now},
		handOver{At: now, DeliveryID: d.ID, Attempt: d.Attempt, Endpoint: d.Target.Endpoint},
		n, fault)
	if err != nil {
		// The mailbox's own store failed: a later attempt can succeed.
		return adapters.Confirmation{}, fmt.Errorf("mailbox: record arrival: %w", err)
	}
	if queued {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
	m.log.Info("package in mailbox", "submission", d.SubmissionID, "office", d.OfficeID, "delivery", d.ID, "notice_queued", queued)
	return adapters.Confirmation{Receiver: "Behördenpostfach " + d.OfficeID, At: now, Pending: true}, nil
}

var _ adapters.Reacher = (*adapter)(nil)

// Reaches implements adapters.Reacher: a package in the mailbox of an office
// without a user waits for nobody.
func (a *adapter) Reaches(officeID string, _ adapters.Target) bool { return a.m.offices[officeID] }

// Confirmed implements adapters.Confirmer: the package is confirmed once a person of
// the office opened it in the mailbox.
func (a *adapter) Confirmed(_ context.Context, d adapters.Delivery) (adapters.Confirmation, bool, error) {
	o, ok, err := a.m.db.opened(d.SubmissionID)
	if err != nil {
		return adapters.Confirmation{}, false, fmt.Errorf("mailbox: %w", err)
	}
	if !ok || o.OfficeID != d.OfficeID {
		return adapters.Confirmation{}, false, nil
	}
	return adapters.Confirmation{Receiver: receiverName(o.User), At: o.At}, true, nil
}

func (a *adapter) Changes() <-chan struct{} { return a.m.changes }

func (a *adapter) Close() error {
	a.gate.Close()
	return nil
}

// receiverName is how a mailbox user appears as the receiver of a delivery.
func receiverName(user string) string { return user + actorSuffix }

// actorSuffix marks a person acting in the mailbox in receipts and the event log.
const actorSuffix = " (Behördenpostfach)"
