package peer

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters/adaptertest"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// TestPeerReceiptOffTheClockIsRecordedWithThisGatewaysTime: the peer's
// receipt is dated by its clock, which was recorded as when the peer received
// the package however far off it was — a peer two hours ahead had its
// packages received in the future here, and nothing said its clock was
// wrong. The receipt is taken (the peer has the package), the forwarding is
// recorded at this gateway's time, and the log says so once an hour per peer.
func TestPeerReceiptOffTheClockIsRecordedWithThisGatewaysTime(t *testing.T) {
	var logs testenv.Buffer
	h := &harness{pki: signingtest.NewPKI(t)}
	s := h.NewReceiver(t, adaptertest.ModeAccept).(*stub)
	s.receiptOff = 2 * time.Hour // beyond the default clock_skew of 5 minutes
	rec := &records{}
	a := h.adapter(t, slog.New(slog.NewTextHandler(&logs, nil)), rec)
	t.Cleanup(func() { _ = a.Close() })

	for range 2 {
		before := time.Now()
		c, err := a.Deliver(t.Context(), adaptertest.NewDelivery(s.Target()))
		after := time.Now()
		if err != nil {
			t.Fatalf("Deliver: %v, want the receipt taken", err)
		}
		f := rec.recorded[len(rec.recorded)-1]
		if f.At.Before(before) || f.At.After(after) || c.At.Before(before) || c.At.After(after) {
			t.Errorf("recorded as received by the peer at %s (confirmation %s), want this gateway's clock, %s to %s", f.At, c.At, before, after)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN msg=\"the peer gateway's receipt is dated further from this gateway's clock"); n != 1 {
		t.Errorf("the log says the peer's clock %d times for two forwardings, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "peer="+stubPeer) {
		t.Errorf("the log does not name the peer:\n%s", logs.String())
	}
}
