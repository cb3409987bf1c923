package broker

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/transfer"
	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/submission"
)

// clusterNode is one gateway's broker in cluster mode, as gateway.New sets it
// up: its own connection to the NATS server at url, the JetStream store every
// node shares, the shared work queue on disk (not exclusive: Start must not
// reset the consumer another node consumes from).
func clusterNode(t *testing.T, url string, cfg Config, chans Channels, log *slog.Logger, as ...adapters.Adapter) *Broker {
	t.Helper()
	ctx := context.Background()
	bs, err := bus.Start(ctx, bus.Options{URL: url, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bs.Close() })
	st, err := jsstore.Open(ctx, bs.JS, jsstore.Options{Prefix: "cluster"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.SharedEndpoints = true
	b := New(cfg, st, bs.JS, adapters.NewRegistry(as...), chans, fakeSigner{}, log, nil)
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Stop(sctx)
	})
	return b
}

// attemptContexts is an adapter (the transfer adapter here) whose attempts
// report the context they run with, so a test can wait for a stop.
type attemptContexts struct {
	*transfer.Adapter
	ctxs chan context.Context
}

func (a *attemptContexts) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, error) {
	a.ctxs <- ctx
	return a.Adapter.Deliver(ctx, d)
}

// TestTakeoverStopsTheAttemptOnAnotherGateway: two gateways of a cluster on
// one NATS server and one JetStream store. Gateway B runs the transfer
// attempt of a case, its case folder written and about to be renamed into the
// office's share, when a clerk takes the case over in the web mailbox served
// by gateway A. The takeover stopped only an attempt on A: B's went on, its
// case folder appeared in the share, and the office's import took the case
// the clerk was processing. Now A tells every gateway by a core NATS message,
// and B stops its attempt as a local takeover does: no case folder in the
// share, no attempt_failed or handed_over event, the case the clerk's on
// channel mailbox, nothing counted against the office's endpoint on B, no
// error logged.
func TestTakeoverStopsTheAttemptOnAnotherGateway(t *testing.T) {
	ctx := context.Background()
	url := natstest.StartSingle(t).URLs()
	share := filepath.Join(t.TempDir(), "share")
	if err := os.Mkdir(share, 0o750); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	held := make(chan string, 1)
	release := make(chan struct{})
	adB, err := transfer.New(transfer.Options{Logger: log, NoWatch: true, BeforeRename: func(tmp string) {
		held <- tmp
		<-release
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = adB.Close() })
	adA, err := transfer.New(transfer.Options{Logger: log, NoWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = adA.Close() })
	for _, ad := range []*transfer.Adapter{adA, adB} {
		if err := ad.CheckTarget(adapters.Target{Channel: channel.Transfer, Endpoint: share}); err != nil {
			t.Fatal(err)
		}
	}
	chans := transferTo(share)
	cfg := testConfig
	cfg.BreakerThreshold = 1         // one failure counted against the office opens it
	cfg.AttemptTimeout = time.Minute // the attempt is held while A starts

	spy := &attemptContexts{Adapter: adB, ctxs: make(chan context.Context, 1)}
	b := clusterNode(t, url, cfg, chans, log.With("node", "b"), spy)
	r, err := b.Receive(ctx, intake("taken-on-another-gateway", channel.Transfer, channel.Mailbox))
	if err != nil {
		t.Fatal(err)
	}
	id := r.Submission.ID
	actx := <-spy.ctxs
	tmp := <-held // B's attempt sits at the rename, its case folder written
	if _, err := os.Stat(filepath.Join(tmp, "index.json")); err != nil {
		t.Fatalf("the held attempt has not written its case: %v", err)
	}
	// A starts only now, so the queue message is B's.
	a := clusterNode(t, url, cfg, chans, log.With("node", "a"), adA)

	clerk := Pickup{Channel: channel.Mailbox, Receiver: "anna (Behördenpostfach)"}
	s, rc, err := a.OpenPackage(ctx, "office-a", id, clerk)
	if err != nil {
		t.Fatalf("the clerk's takeover on A: %v", err)
	}
	rc.Close()
	if s.TakenOverFrom != channel.Transfer {
		t.Fatalf("taken over from %q, want transfer", s.TakenOverFrom)
	}
	if _, here := a.inflight.Load(id); here {
		t.Fatal("the attempt runs on A: the test shows nothing of a stop on another gateway")
	}
	select {
	case <-actx.Done():
	case <-time.After(20 * time.Second):
		t.Error("B's attempt was not stopped by the takeover on A")
	}
	if cause := context.Cause(actx); !errors.Is(cause, errTakenOver) {
		t.Errorf("B's attempt ended by %v, want the takeover's stop", cause)
	}
	close(release)
	eventually(t, "the end of B's attempt", func() bool {
		_, busy := b.inflight.Load(id)
		return !busy
	})

	nothingInTheShare(t, share)
	s, err = b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != submission.StateDelivered || s.DeliveredVia != channel.Mailbox || s.TakenOverFrom != channel.Transfer {
		t.Errorf("after the attempt: %s via %q, taken over from %q; want the clerk's", s.State, s.DeliveredVia, s.TakenOverFrom)
	}
	evs := eventTypes(t, b, id)
	for _, ev := range evs {
		if strings.HasPrefix(ev, submission.EventAttemptFailed) || strings.HasPrefix(ev, submission.EventHandedOver) {
			t.Errorf("event %s after a takeover stopped the attempt: %v", ev, evs)
		}
	}
	if st := b.endpoint("office-a", channel.Transfer); st.State != "" && (st.State != EndpointClosed || st.Failures != 0) {
		t.Errorf("the office's transfer endpoint on B after the takeover: %+v, want closed without failures", st)
	}
	l := logs.String()
	if strings.Contains(l, "level=ERROR") || strings.Contains(l, "circuit breaker") {
		t.Errorf("the takeover's stop was logged as a failure:\n%s", l)
	}
	if !strings.Contains(l, "a clerk took the case over on another gateway") {
		t.Errorf("B did not log the stop from another gateway:\n%s", l)
	}
}
