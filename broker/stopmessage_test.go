package broker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/testenv"
)

// stopCount reads one outcome of amtsbote_takeover_stop_messages_total.
func stopCount(t *testing.T, b *Broker, outcome string) float64 {
	t.Helper()
	var m dto.Metric
	if err := b.metrics.stopMessages.WithLabelValues(outcome).(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// heldAttempts is an adapter whose attempts report their context by
// submission id and then wait for their context's end (or release).
type heldAttempts struct {
	channel string
	mu      sync.Mutex
	ctxs    map[string]context.Context
	started chan string
	release chan struct{}
}

func (h *heldAttempts) Channel() string { return h.channel }
func (h *heldAttempts) Close() error    { return nil }
func (h *heldAttempts) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, error) {
	h.mu.Lock()
	h.ctxs[d.SubmissionID] = ctx
	h.mu.Unlock()
	h.started <- d.SubmissionID
	select {
	case <-h.release:
		return adapters.Confirmation{Receiver: h.channel + " test"}, nil
	case <-ctx.Done():
		return adapters.Confirmation{}, errors.New(h.channel + ": " + ctx.Err().Error())
	}
}

func (h *heldAttempts) ctx(id string) context.Context {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ctxs[id]
}

// TestStopMessagesStopOnlyTheirQueuesAttemptOfTheirID: a stop message stops
// nothing but the attempt its well-formed id names, on the brokers of its own
// queue namespace. A gateway with a queue of its own (Config.Queue: its truth
// in its own store, the NATS server shared) is not stopped by a message of the
// shared queue's gateways or of another gateway's queue, even for an id it
// runs an attempt for; and a message on its own subject whose id is missing,
// malformed, not canonical, or that is no stop message at all stops nothing,
// is counted as ignored and said once (the log line is limited). A last, good
// message for a second attempt shows that the ones before it were read (one
// subscription reads in order) and that a stop does reach this broker.
func TestStopMessagesStopOnlyTheirQueuesAttemptOfTheirID(t *testing.T) {
	ad := &heldAttempts{channel: "primary", ctxs: map[string]context.Context{}, started: make(chan string, 2), release: make(chan struct{})}
	logs := &testenv.Buffer{}
	cfg := testConfig
	cfg.Queue, cfg.PerOffice, cfg.AttemptTimeout = "gw-b", 2, time.Minute
	e := startEnvWith(t, t.TempDir(), cfg, testChannels, nil, fakeSigner{}, slog.New(slog.NewTextHandler(logs, nil)), ad)
	t.Cleanup(func() { close(ad.release) })
	target, err := e.b.Receive(context.Background(), intake("not-to-be-stopped", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	control, err := e.b.Receive(context.Background(), intake("stopped-last", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	<-ad.started
	<-ad.started
	id := target.Submission.ID

	msg := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := msg(stopMsg{ID: id, From: "another-gateway"})
	own := e.b.stopSubject()
	sends := []struct {
		subject string
		body    []byte
	}{
		{New(Config{}, nil, nil, nil, nil, nil, nil, nil).stopSubject(), good},              // the shared queue's
		{New(Config{Queue: "gw-a"}, nil, nil, nil, nil, nil, nil, nil).stopSubject(), good}, // another gateway's queue
		{own, []byte(id)}, // the id, but no stop message
		{own, msg(stopMsg{From: "another-gateway"})},
		{own, msg(stopMsg{ID: "../" + id})},
		{own, msg(stopMsg{ID: strings.ToUpper(id)})},
		{own, msg(stopMsg{ID: "urn:uuid:" + id})},
		{own, msg(map[string]string{"id": id, "padding": strings.Repeat("x", maxStopMsg)})},
	}
	if own == sends[0].subject || own == sends[1].subject {
		t.Fatalf("the queues' subjects are not apart: %s", own)
	}
	nc := e.bus.NC
	for _, s := range sends {
		if err := nc.Publish(s.subject, s.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Publish(own, msg(stopMsg{ID: control.Submission.ID, From: "another-gateway"})); err != nil {
		t.Fatal(err)
	}
	cctx := ad.ctx(control.Submission.ID)
	select {
	case <-cctx.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the good stop message after the others did not stop its attempt")
	}
	if cause := context.Cause(cctx); !errors.Is(cause, errTakenOver) {
		t.Fatalf("the control attempt ended by %v, want the takeover's stop", cause)
	}
	if err := ad.ctx(id).Err(); err != nil {
		t.Errorf("a message of another queue or without a well-formed id stopped the attempt: %v (%v)", err, context.Cause(ad.ctx(id)))
	}
	if got, want := stopCount(t, e.b, "ignored"), float64(len(sends)-2); got != want {
		t.Errorf("%v stop messages counted as ignored, want %v", got, want)
	}
	if got := stopCount(t, e.b, "received"); got != 1 {
		t.Errorf("%v stop messages counted as received, want 1 (the control)", got)
	}
	if n := strings.Count(logs.String(), "names no submission id"); n != 1 {
		t.Errorf("%d log lines of ignored stop messages, want 1 (they are limited to one a minute):\n%s", n, logs.String())
	}
	// The control case was taken over by nobody: a stop that named it (a bug,
	// a stranger on the subject) cost its attempt, not its delivery. The
	// message went back, and its next delivery, finding the case not
	// delivered, tries again (it was acked and waited for the queue check).
	select {
	case again := <-ad.started:
		if again != control.Submission.ID {
			t.Errorf("a new attempt of %s, want the stopped control %s", again, control.Submission.ID)
		}
	case <-time.After(20 * time.Second):
		t.Error("the case whose attempt a stop message ended without a takeover got no new attempt")
	}
}

// TestTakeoverWithoutNATSStopsTheLocalAttempt: the stop message is a best
// effort on top of the local stop. With the connection to NATS closed, a
// clerk's takeover commits and stops the attempt on its own gateway all the
// same; the message that could not be sent is counted and said at WARN, not
// the takeover's failure.
func TestTakeoverWithoutNATSStopsTheLocalAttempt(t *testing.T) {
	ad := &heldAttempts{channel: channel.Webhook, ctxs: map[string]context.Context{}, started: make(chan string, 1), release: make(chan struct{})}
	logs := &testenv.Buffer{}
	cfg := testConfig
	cfg.AttemptTimeout = time.Minute
	e := startEnvWith(t, t.TempDir(), cfg, testChannels, nil, fakeSigner{}, slog.New(slog.NewTextHandler(logs, nil)), ad)
	t.Cleanup(func() { close(ad.release) })
	r, err := e.b.Receive(context.Background(), intake("taken-while-nats-is-away", channel.Webhook, channel.Mailbox))
	if err != nil {
		t.Fatal(err)
	}
	id := <-ad.started
	if id != r.Submission.ID {
		t.Fatalf("attempt of %s, want %s", id, r.Submission.ID)
	}
	e.bus.NC.Close()

	s, rc, err := e.b.OpenPackage(context.Background(), "office-a", id, Pickup{Channel: channel.Mailbox, Receiver: "anna (Behördenpostfach)"})
	if err != nil {
		t.Fatalf("the takeover with NATS away: %v", err)
	}
	rc.Close()
	if s.TakenOverFrom != channel.Webhook {
		t.Fatalf("taken over from %q, want webhook", s.TakenOverFrom)
	}
	if cause := context.Cause(ad.ctx(id)); !errors.Is(cause, errTakenOver) {
		t.Errorf("the local attempt after the takeover: %v, want stopped by it", cause)
	}
	eventually(t, "the unsent stop message counted", func() bool { return stopCount(t, e.b, "unsent") == 1 })
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "could not be told to stop") {
		t.Errorf("the unsent stop message was not said at WARN:\n%s", l)
	}
}
