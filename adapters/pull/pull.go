// Package pull is the channel of an office whose system fetches its packages
// through the pull API and takes no notification: an office network that accepts
// no inbound connection (the common case behind a municipal data centre's
// firewall) polls GET /v1/office/submissions?state=handed_over, as a FIT-Connect
// subscriber polls its destination.
//
// Deliver opens no connection and writes nothing: it hands the package over to
// the pull API, where it already is, and answers Confirmation.Pending. The
// office's first fetch of the package (GET …/package) confirms it through the
// broker's OfficeDesk, which signs the Zustellbestaetigung; until then the package
// is handed_over, listed for the office, and AmtsboteUnconfirmedForDays watches
// an office that stops polling. Before this channel such an office had no
// channel at all, and each of its packages was held: a dead letter to the
// operator, with the alert for one, although nothing had failed.
//
// There is no Confirmer: nothing but the office's fetch can confirm, and the
// fetch tells the broker itself. docs/pull.md is the page for the office's IT.
package pull

import (
	"context"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/channel"
)

// Adapter is the pull channel. The zero value is not usable; use New.
type Adapter struct {
	gate adapters.Gate
	now  func() time.Time
}

// New returns the pull channel's adapter.
func New() *Adapter { return &Adapter{now: time.Now} }

// Channel implements adapters.Adapter.
func (a *Adapter) Channel() string { return channel.API }

// CheckTarget implements adapters.Checker: the channel has no address, secret or
// parameter, and one configured is a mistake — most likely a webhook's URL under
// the wrong name, whose office would never be notified.
func (a *Adapter) CheckTarget(t adapters.Target) error {
	switch {
	case strings.TrimSpace(t.Endpoint) != "":
		return &adapters.TargetError{Field: "endpoint", Reason: "the pull channel has no address (the office fetches; for a notification use channels.webhook)"}
	case t.Secret != "":
		return &adapters.TargetError{Field: "secret", Reason: "the pull channel has no secret (the office authenticates with its token)"}
	case len(t.Params) > 0:
		return &adapters.TargetError{Field: "params", Reason: "the pull channel has no parameters"}
	}
	return nil
}

// Deliver implements adapters.Adapter: the hand-over to the pull API. It never
// reads the package.
func (a *Adapter) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, error) {
	if err := a.gate.Begin(ctx, "pull"); err != nil {
		return adapters.Confirmation{}, err
	}
	defer a.gate.Leave()
	if err := a.CheckTarget(d.Target); err != nil {
		return adapters.Confirmation{}, adapters.Permanent("pull target misconfigured", err)
	}
	return adapters.Confirmation{Pending: true, Receiver: "pull API of office " + d.OfficeID, At: a.now().UTC()}, nil
}

// Close implements adapters.Adapter.
func (a *Adapter) Close() error {
	a.gate.Close()
	return nil
}
