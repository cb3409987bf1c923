package peer

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/adaptertest"
	"github.com/amtsbote/amtsbote/signing/signingtest"
	"github.com/amtsbote/amtsbote/submission"
)

// records is the broker's side as the adapter sees it: one submission, its
// intake receipt, and the forwardings recorded.
type records struct {
	origin     *submission.Origin
	receiptErr error
	recordErr  error
	recorded   []submission.Forward
}

func (r *records) Submission(id string) (*submission.Submission, error) {
	return &submission.Submission{ID: id, Origin: r.origin, ReceivedAt: time.Now().UTC()}, nil
}

func (r *records) IntakeReceipt(string) ([]byte, error) {
	if r.receiptErr != nil {
		return nil, r.receiptErr
	}
	return []byte("<Eingangsbestaetigung/>"), nil
}

func (r *records) RecordForwarded(_ string, f submission.Forward, _ []byte) (*submission.Submission, error) {
	if r.recordErr != nil {
		return nil, r.recordErr
	}
	r.recorded = append(r.recorded, f)
	return nil, nil
}

// hopSetup is the conformance harness's adapter with the broker's records, and
// an accepting stub peer "portal-ec".
func hopSetup(t *testing.T, rec Records) (*Adapter, *stub) {
	t.Helper()
	h := &harness{pki: signingtest.NewPKI(t)}
	s := h.NewReceiver(t, adaptertest.ModeAccept).(*stub)
	a := h.adapter(t, slog.New(slog.DiscardHandler), rec)
	t.Cleanup(func() { _ = a.Close() })
	return a, s
}

func chainOf(gws ...string) *submission.Origin {
	o := &submission.Origin{Gateway: gws[len(gws)-1], SubmissionID: "sub-there", ReceiptSHA256: strings.Repeat("ab", 32)}
	for i, g := range gws {
		o.Chain = append(o.Chain, submission.Hop{Gateway: g, SubmissionID: "sub-" + g, At: time.Now().Add(-time.Duration(len(gws)-i) * time.Minute).UTC()})
	}
	return o
}

// TestRefusedWithoutAHop: the forwardings that cannot be right are refused
// permanently before anything is sent — back to a gateway the package passed
// (a loop), past federation.MaxHops gateways, to a params.peer that is no
// configured peer, without the intake receipt the envelope continues — and
// the peer sees no request.
func TestRefusedWithoutAHop(t *testing.T) {
	for name, c := range map[string]struct {
		rec       *records
		peerParam string
		permanent bool
	}{
		"loop":              {rec: &records{origin: chainOf(stubPeer)}, permanent: true},
		"too many hops":     {rec: &records{origin: chainOf("gw-sn", "gw-by", "gw-he")}, permanent: true},
		"unknown peer":      {rec: &records{}, peerParam: "portal-xx", permanent: true},
		"no intake receipt": {rec: &records{receiptErr: errors.New("store: not found")}},
	} {
		t.Run(name, func(t *testing.T) {
			a, s := hopSetup(t, c.rec)
			d := adaptertest.NewDelivery(s.Target())
			if c.peerParam != "" {
				d.Target.Params = map[string]string{"peer": c.peerParam}
			}
			_, err := a.Deliver(t.Context(), d)
			if err == nil || adapters.IsPermanent(err) != c.permanent {
				t.Fatalf("Deliver: %v, want an error (permanent %v)", err, c.permanent)
			}
			if n := len(s.Received()); n != 0 {
				t.Fatalf("the peer saw %d requests", n)
			}
			if len(c.rec.recorded) != 0 {
				t.Fatalf("recorded as forwarded: %+v", c.rec.recorded)
			}
		})
	}
}

// TestLongestAllowedChainIsForwarded: a chain one short of MaxHops with this
// gateway, the peer being the last, is forwarded and recorded (the bound above
// is not off by one the other way).
func TestLongestAllowedChainIsForwarded(t *testing.T) {
	rec := &records{origin: chainOf("gw-sn", "gw-by")}
	a, s := hopSetup(t, rec)
	c, err := a.Deliver(t.Context(), adaptertest.NewDelivery(s.Target()))
	if err != nil || c.Receiver != stubPeer {
		t.Fatalf("Deliver: %+v %v", c, err)
	}
	if len(rec.recorded) != 1 || rec.recorded[0].Peer != stubPeer {
		t.Fatalf("recorded: %+v", rec.recorded)
	}
}

// TestUnrecordedForwardingFails: the peer's receipt is recorded before Deliver
// returns (the broker's own record of the attempt then finds the package
// forwarded). A record that fails is a failed attempt, transient: answered as
// success, the broker would record a hand-over with no forwarding behind it.
// The retry repeats the hop; the peer answers the same receipt.
func TestUnrecordedForwardingFails(t *testing.T) {
	rec := &records{recordErr: errors.New("store: disk full")}
	a, s := hopSetup(t, rec)
	_, err := a.Deliver(t.Context(), adaptertest.NewDelivery(s.Target()))
	if err == nil || adapters.IsPermanent(err) || !errors.Is(err, rec.recordErr) {
		t.Fatalf("Deliver: %v, want a transient error wrapping the store's", err)
	}
	if n := len(s.Received()); n != 1 {
		t.Fatalf("the peer saw %d requests, want 1", n)
	}
}
