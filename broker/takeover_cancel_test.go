package broker

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/transfer"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// TestTakeoverStopsTransferAttemptUnderWay: a clerk takes a case over in the
// web mailbox while the transfer channel's attempt has written its case
// folder and is about to rename it into the office's share. The attempt went
// on: the case folder appeared in the share, the office's import took it, and
// two people processed one application (the attempt's hand-over was stale and
// dropped, the folder stayed). Now the takeover, once committed, cancels the
// attempt under way, and the adapter gives it up at its point of no return: no
// case folder in the share, no temporary folder, no ledger record; the case is
// the clerk's, without an attempt_failed or handed_over event; the cancel is
// no failure of the office (its breaker, at threshold 1, stays closed) and
// logs no error.
func TestTakeoverStopsTransferAttemptUnderWay(t *testing.T) {
	ctx := context.Background()
	h := holdTransferAtRename(t)
	e, share, held, release, logs := h.e, h.share, h.held, h.release, h.logs

	r, err := e.b.Receive(ctx, intake("taken-while-written", channel.Transfer, channel.Mailbox))
	if err != nil {
		t.Fatal(err)
	}
	id := r.Submission.ID
	tmp := <-held // the attempt sits at the rename, its case folder written
	if _, err := os.Stat(filepath.Join(tmp, "index.json")); err != nil {
		t.Fatalf("the held attempt has not written its case: %v", err)
	}
	s, err := e.b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.BoundForSystem(); got != channel.Transfer {
		t.Fatalf("case bound for %q while its case folder is written, want transfer", got)
	}

	clerk := Pickup{Channel: channel.Mailbox, Receiver: "anna (Behördenpostfach)"}
	s, rc, err := e.b.OpenPackage(ctx, "office-a", id, clerk)
	if err != nil {
		t.Fatalf("the clerk's takeover: %v", err)
	}
	rc.Close()
	if s.TakenOverFrom != channel.Transfer {
		t.Fatalf("taken over from %q, want transfer", s.TakenOverFrom)
	}
	close(release)
	eventually(t, "the attempt's end", func() bool {
		_, busy := e.b.inflight.Load(id)
		return !busy
	})

	nothingInTheShare(t, share)
	s, err = e.b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != submission.StateDelivered || s.DeliveredVia != channel.Mailbox || s.TakenOverFrom != channel.Transfer {
		t.Errorf("after the attempt: %s via %q, taken over from %q; want the clerk's", s.State, s.DeliveredVia, s.TakenOverFrom)
	}
	evs := eventTypes(t, e.b, id)
	for _, ev := range evs {
		if strings.HasPrefix(ev, submission.EventAttemptFailed) || strings.HasPrefix(ev, submission.EventHandedOver) {
			t.Errorf("event %s after a takeover stopped the attempt: %v", ev, evs)
		}
	}
	if st := e.b.endpoint("office-a", channel.Transfer); st.State != "" && (st.State != EndpointClosed || st.Failures != 0) {
		t.Errorf("the office's transfer endpoint after the takeover: %+v, want closed without failures", st)
	}
	if l := logs.String(); strings.Contains(l, "level=ERROR") || strings.Contains(l, "circuit breaker") {
		t.Errorf("the takeover's stop was logged as a failure:\n%s", l)
	}
}

// heldTransfer is a broker whose transfer attempts write their case folder and
// then wait at the rename into the share until release is closed; held gets
// each waiting attempt's temporary folder. The office's breaker opens at one
// failure, so a stop counted against the office would show.
type heldTransfer struct {
	e       *env
	share   string
	held    chan string
	release chan struct{}
	logs    *testenv.Buffer
}

func holdTransferAtRename(t *testing.T) heldTransfer {
	t.Helper()
	return holdTransferAtRenameOver(t, nil)
}

// holdTransferAtRenameOver is holdTransferAtRename with the broker's store
// wrapped by wrap (nil: the store itself).
func holdTransferAtRenameOver(t *testing.T, wrap func(*store.DB) store.Store) heldTransfer {
	t.Helper()
	return holdTransferAtRenameWith(t, wrap, nil)
}

// holdTransferAtRenameWith is holdTransferAtRenameOver with the transfer
// adapter wrapped by wrapAd (nil: the adapter itself), e.g. to let the
// office's import, or an unmounted share, come before a withdrawal.
func holdTransferAtRenameWith(t *testing.T, wrap func(*store.DB) store.Store, wrapAd func(*transfer.Adapter) adapters.Adapter) heldTransfer {
	t.Helper()
	dir := t.TempDir()
	h := heldTransfer{share: filepath.Join(dir, "share"), held: make(chan string, 1), release: make(chan struct{}), logs: &testenv.Buffer{}}
	if err := os.Mkdir(h.share, 0o750); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(h.logs, nil))
	ad, err := transfer.New(transfer.Options{Logger: log, NoWatch: true, BeforeRename: func(tmp string) {
		h.held <- tmp
		<-h.release
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ad.Close() })
	if err := ad.CheckTarget(adapters.Target{Channel: channel.Transfer, Endpoint: h.share}); err != nil {
		t.Fatal(err)
	}
	chans := transferTo(h.share)
	cfg := testConfig
	cfg.BreakerThreshold = 1
	var use adapters.Adapter = ad
	if wrapAd != nil {
		use = wrapAd(ad)
	}
	h.e = startEnvWith(t, dir, cfg, chans, wrap, fakeSigner{}, log, use)
	return h
}

// TestMailboxOpeningCancelsNothing: a clerk opening a case that is no takeover
// (it was on its way to the mailbox itself, whose notice is being sent) leaves
// the attempt under way alone; so does the office system's own fetch of a case
// its webhook is being notified of. Only a takeover stops an attempt.
func TestMailboxOpeningCancelsNothing(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, push string
		by         Pickup
	}{
		{"clerk opens a mailbox case", channel.Mailbox, Pickup{Channel: channel.Mailbox, Receiver: "anna (Behördenpostfach)"}},
		{"system fetches a webhook case", channel.Webhook, Pickup{Channel: channel.API, Receiver: "office office-a (pull API)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ad := &holding{channel: tc.push, started: make(chan context.Context, 1), release: make(chan struct{})}
			e := start(t, t.TempDir(), ad)
			r, err := e.b.Receive(ctx, intake("opened-"+tc.push, tc.push))
			if err != nil {
				t.Fatal(err)
			}
			id := r.Submission.ID
			actx := <-ad.started
			s, rc, err := e.b.OpenPackage(ctx, "office-a", id, tc.by)
			if err != nil {
				t.Fatal(err)
			}
			rc.Close()
			if s.TakenOverFrom != "" {
				t.Fatalf("%s counted as a takeover (from %q)", tc.name, s.TakenOverFrom)
			}
			// The pickup is committed, and a takeover cancels before its pickup
			// returns: the attempt's context is untouched now or never.
			if err := actx.Err(); err != nil {
				t.Fatalf("the attempt under way was cancelled by an opening that is no takeover: %v (%v)", err, context.Cause(actx))
			}
			close(ad.release)
			eventually(t, "the attempt's end", func() bool {
				_, busy := e.b.inflight.Load(id)
				return !busy
			})
			if evs := eventTypes(t, e.b, id); slices.Contains(evs, submission.EventAttemptFailed+":"+tc.push) {
				t.Errorf("events %v", evs)
			}
		})
	}
}

// holding is an adapter whose attempt reports its context on started and then
// waits for release (or its context's end, which it reports as its error).
type holding struct {
	channel string
	started chan context.Context
	release chan struct{}
}

func (h *holding) Channel() string { return h.channel }
func (h *holding) Close() error    { return nil }
func (h *holding) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, error) {
	h.started <- ctx
	select {
	case <-h.release:
		return adapters.Confirmation{Receiver: h.channel + " test", Pending: true}, nil
	case <-ctx.Done():
		return adapters.Confirmation{}, errors.New(h.channel + ": " + ctx.Err().Error())
	}
}

// nothingInTheShare fails unless share holds no case folder and no ledger
// record: an attempt the takeover stopped handed nothing over.
func nothingInTheShare(t *testing.T, share string) {
	t.Helper()
	ents, err := os.ReadDir(share)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if ent.Name() != transfer.LedgerDir {
			t.Errorf("in the share after the takeover: %s", ent.Name())
		}
	}
	if recs, _ := os.ReadDir(filepath.Join(share, transfer.LedgerDir)); len(recs) != 0 {
		t.Errorf("ledger records after the takeover: %v", recs)
	}
}

// transferTo is testChannels with the transfer channel's folder at share.
func transferTo(share string) Channels {
	return ChannelsFunc(func(office, ch string) (adapters.Target, bool) {
		if ch == channel.Transfer {
			return adapters.Target{Channel: ch, Endpoint: share}, true
		}
		return testChannels(office, ch)
	})
}
