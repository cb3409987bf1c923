// Package adaptertest is the conformance suite every delivery adapter runs.
//
// An adapter package calls Run from one of its own tests with a Harness that knows how
// to build the adapter and a receiver for it (an HTTP server, a folder, a peer gateway
// stub). The suite then checks the promises of the adapters.Adapter contract that the
// broker relies on: one attempt per call, correct permanent/transient classification,
// a stable delivery id, ctx honoured, safe concurrency, Close semantics and no secret
// in any error or log line. Keeping these checks in one place means a new channel
// cannot quietly weaken a promise that the broker's retry and fallback logic assumes.
package adaptertest

import (
	"log/slog"
	"testing"

	"github.com/amtsbote/amtsbote/adapters"
)

// Mode is how a receiver built by the harness answers a delivery.
type Mode int

const (
	// ModeAccept takes the delivery over (HTTP 2xx, file written, message stored).
	ModeAccept Mode = iota
	// ModeTransient fails in a way a later retry can cure (HTTP 503, disk full,
	// peer unreachable).
	ModeTransient
	// ModePermanent refuses in a way no retry can cure (HTTP 400/410, folder not a
	// directory, unknown office at the peer).
	ModePermanent
	// ModeHang never answers until the caller's ctx is cancelled or the test ends.
	ModeHang
)

func (m Mode) String() string {
	switch m {
	case ModeAccept:
		return "accept"
	case ModeTransient:
		return "transient"
	case ModePermanent:
		return "permanent"
	case ModeHang:
		return "hang"
	}
	return "unknown"
}

// Features tells the suite what a channel can and cannot do, so that one suite fits
// channels as different as a webhook (notifies only) and a transfer folder (writes
// the bytes, cannot hang).
type Features struct {
	// CarriesPackage: the receiver gets the package bytes themselves. The suite then
	// demands they equal what Delivery.Package yields, byte for byte.
	CarriesPackage bool
	// CarriesAttachments: the receiver gets the attachment bytes (Received.Attachments).
	CarriesAttachments bool
	// NoHang: the channel has no receiver that can block (a local folder). The suite
	// then leaves out the cases that need ModeHang; an already cancelled ctx is still
	// checked.
	NoHang bool
	// Concurrency is how many Deliver calls the concurrency case runs at once
	// (default 32).
	Concurrency int
	// ConfirmsLater: the channel hands the package over and the office confirms
	// afterwards (a folder import). Deliver then answers Confirmation.Pending, the
	// adapter implements adapters.Confirmer, and the harness's receivers implement
	// ConfirmingReceiver. Without it, Pending must never be set.
	ConfirmsLater bool
	// KeepsCopy: a copy of the package waits at the receiver, outside the
	// gateway, until the office takes it (a case folder in a transfer folder).
	// An erasure reaches it only through adapters.Withdrawer, so the adapter
	// must be one, its receivers WithdrawingReceivers, and the suite checks the
	// contract (Withdrawal). Without it, the adapter must be no Withdrawer: the
	// office reads the bytes from the gateway, where an erasure removes them.
	KeepsCopy bool
}

// ConfirmingReceiver is a receiver whose office confirms after the hand-over.
type ConfirmingReceiver interface {
	Receiver
	// Confirm makes the office confirm the delivery with this id, the way it really
	// would (the import moves the case folder away, writes the marker, ...).
	Confirm(t testing.TB, deliveryID string)
}

// WithdrawingReceiver is a ConfirmingReceiver of a channel whose adapter is an
// adapters.Withdrawer: a copy of the package waits at the receiver until the
// office takes it (a case folder in the office's share).
type WithdrawingReceiver interface {
	ConfirmingReceiver
	// Waiting reports whether a copy of the delivery with this id waits for the
	// office, untaken, as the office itself would find it (a case folder its
	// import would pick up).
	Waiting(t testing.TB, deliveryID string) bool
}

// Received is what a receiver saw of one delivery attempt, as the receiver itself
// decoded it (never what the adapter claims it sent).
type Received struct {
	DeliveryID   string
	SubmissionID string
	// PackageSHA256 is the hex digest of the package bytes the receiver got, or, on a
	// channel that only announces the package, the digest it announced; "" if neither.
	PackageSHA256 string
	// Package holds the bytes if the channel carries them (Features.CarriesPackage).
	Package []byte
	// AttachmentSHA256 maps attachment id to the hex digest received or announced.
	AttachmentSHA256 map[string]string
	// Attachments maps attachment id to its bytes if the channel carries them.
	Attachments map[string][]byte
	// Problem is non-empty when the receiver found the attempt defective (bad
	// signature, malformed body, missing file). Any Problem fails the suite.
	Problem string
}

// Receiver is one receiving side built by the harness.
type Receiver interface {
	// Target is what the broker would hand the adapter to reach this receiver. Its
	// Secret must be non-empty if the channel uses one: the suite hunts for it in
	// errors and logs.
	Target() adapters.Target
	// Received lists every attempt that reached the receiver so far, in any mode,
	// in arrival order. It must be safe to call concurrently with deliveries. A
	// ModeHang receiver records an attempt as soon as it arrives, before blocking:
	// the suite waits for that record before it cancels.
	Received() []Received
}

// Harness builds adapters and receivers for one channel.
//
// Both constructors register their teardown with t.Cleanup. A ModeHang receiver must
// release its blocked requests in that cleanup so that tearing down never waits for a
// ctx nobody will cancel.
type Harness interface {
	Features() Features
	// NewAdapter returns a fresh adapter that logs to logger. The suite closes it.
	NewAdapter(t testing.TB, logger *slog.Logger) adapters.Adapter
	// NewReceiver returns a fresh receiver that answers in the given mode.
	NewReceiver(t testing.TB, mode Mode) Receiver
}

// DeliveryPreparer is an optional extension of Harness for channels whose receiver
// needs more than the suite's generic Delivery (e.g. an office id the peer knows).
// The suite calls it on every Delivery it builds, before the first Deliver.
type DeliveryPreparer interface {
	PrepareDelivery(d *adapters.Delivery)
}
