package broker

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// startLogged runs a broker over real bbolt and embedded JetStream whose log the
// test reads; it is stopped, and the bus closed, at the test's end.
func startLogged(t *testing.T, cfg Config, as ...adapters.Adapter) (*Broker, *bus.Bus, *testenv.Buffer) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(dir+"/store", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	bs, err := bus.Start(context.Background(), bus.Options{StoreDir: dir + "/js"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bs.Close() })
	logs := &testenv.Buffer{}
	cfg.ExclusiveConsumer, cfg.QueueInMemory = true, true
	b := New(cfg, db, bs.JS, adapters.NewRegistry(as...), testChannels, fakeSigner{}, slog.New(slog.NewTextHandler(logs, nil)), nil)
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Stop(ctx)
	})
	return b, bs, logs
}

// TestBusAwayIsLoggedOnce: while NATS is away every publish fails, and the relay
// said so every second (some 17,000 lines a day of an outage, an observability
// audit found; amtsbote_bus_connected and its alert carry the state). It says
// so once a minute now.
func TestBusAwayIsLoggedOnce(t *testing.T) {
	b, bs, logs := startLogged(t, Config{})
	_ = bs.Close() // NATS away
	receiveN(t, b, "away", 3)
	// Long enough for the relay's one-second tick to try again four times.
	time.Sleep(4500 * time.Millisecond)
	out := logs.String()
	if n := strings.Count(out, "queue failed"); n != 1 {
		t.Fatalf("%d warnings about failed publishes in 4.5 s, want 1:\n%s", n, out)
	}
}

// TestReceiversWordsStayOutOfTheLog: an office's answer can quote the
// application (a validator: "Antrag von Erika Mustermann, geb. …: Pflichtfeld
// fehlt"), and the broker logged the whole error of a failed attempt and of a
// channel given up — into the log, where neither the retention nor an erasure
// reaches. The log names the status; the words stay in the case's events, where
// the admin console shows them and an erasure or the retention ends them.
func TestReceiversWordsStayOutOfTheLog(t *testing.T) {
	const words = "Antrag von Erika Mustermann, geb. 12.08.1964, Heidestrasse 17"
	office := &scripted{channel: "primary", answers: []error{
		&webhook.StatusError{StatusCode: 503, Snippet: words + ": bitte später"},
		adapters.Permanent("receiver answered HTTP 422", &webhook.StatusError{StatusCode: 422, Snippet: words + ": Pflichtfeld fehlt"}),
	}}
	b, _, logs := startLogged(t, Config{Workers: 2, MaxAttempts: 3, BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
		AttemptTimeout: 2 * time.Second}, office)
	id := receiveN(t, b, "words", 1)[0]
	waitState(t, b, id, submission.StateHeld)
	// The broker logs the channel given up right after recording it.
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "HTTP 422") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	out := logs.String()
	if strings.Contains(out, "Mustermann") {
		t.Fatalf("the receiver's words are in the log:\n%s", out)
	}
	for _, want := range []string{"HTTP 503", "HTTP 422"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the log does not say %s (the check above proves nothing):\n%s", want, out)
		}
	}
	evs, err := b.Log(id)
	if err != nil {
		t.Fatal(err)
	}
	kept := false
	for _, e := range evs {
		kept = kept || strings.Contains(e.Note, "Mustermann")
	}
	if !kept {
		t.Fatalf("the receiver's words are not in the events either: %+v", evs)
	}
}

// TestAttemptSeriesExistFromTheStart: every channel's attempt outcomes are
// series at 0 before the first attempt. A series first seen at 1 has no
// increase for Prometheus: after a restart the first delivery went uncounted
// while the first package was counted, and AmtsboteDeliveriesStalled paged
// (the rule's promtool test "a restart at night" shows the rule's side).
func TestAttemptSeriesExistFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	got := testenv.Series(t, reg, "amtsbote_delivery_attempts_total")
	for _, ch := range channel.All() {
		for _, outcome := range []string{"ok", "transient", "permanent"} {
			if v, ok := got["amtsbote_delivery_attempts_total channel="+ch+" outcome="+outcome]; !ok || v != 0 {
				t.Errorf("no series at 0 for channel %s, outcome %s", ch, outcome)
			}
		}
	}
}

// TestGoneKeepsNoReceiversWordsInTheEndpointBook: a 410's body may quote the
// applicant; the book of disabled endpoints (endpoints.json, or the cluster's
// bucket) kept it word for word, where no retention or erasure reaches (an
// audit, 2026-12-05). It keeps the status; the words are in the case's event.
func TestGoneKeepsNoReceiversWordsInTheEndpointBook(t *testing.T) {
	const words = "Antrag von Erika Mustermann, geb. 12.08.1964: Verfahren eingestellt"
	office := &scripted{channel: "primary", answers: []error{
		adapters.Permanent("endpoint gone (HTTP 410)", &webhook.StatusError{StatusCode: 410, Snippet: words}),
	}}
	dir := t.TempDir()
	cfg := testConfig
	cfg.EndpointsFile = filepath.Join(dir, "endpoints.json")
	e := startWith(t, dir, cfg, office)
	a, err := e.b.Receive(context.Background(), intake("gone-words", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.b, a.Submission.ID, submission.StateHeld)
	raw, err := os.ReadFile(cfg.EndpointsFile)
	if err != nil || strings.Contains(string(raw), "Mustermann") || !strings.Contains(string(raw), "410") {
		t.Fatalf("endpoints.json: %v\n%s", err, raw)
	}
	evs, _ := e.b.Log(a.Submission.ID)
	kept := false
	for _, ev := range evs {
		kept = kept || strings.Contains(ev.Note, "Mustermann")
	}
	if !kept {
		t.Fatalf("the receiver's words are not in the event either (the check above proves nothing): %+v", evs)
	}
}

// TestErasureIsLogged: an erasure left no trace outside the store, so after a
// restore from a backup taken before it the operator could not tell which
// erasures to repeat (docs/operations.md asks for that; an audit, 2026-12-05).
// The log says which case, whose office and by whom — not the note, which may
// name the applicant.
func TestErasureIsLogged(t *testing.T) {
	office := &scripted{channel: "primary", answers: []error{adapters.Permanent("receiver answered HTTP 422", nil)}}
	b, _, logs := startLogged(t, Config{Workers: 1, MaxAttempts: 1, AttemptTimeout: 2 * time.Second}, office)
	id := receiveN(t, b, "erase-log", 1)[0]
	waitState(t, b, id, submission.StateHeld)
	if _, err := b.Erase(context.Background(), id, "m.meier (admin API)", "Löschantrag von Erika Mustermann"); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "case erased") || !strings.Contains(out, id) || !strings.Contains(out, "m.meier") || strings.Contains(out, "Mustermann") {
		t.Fatalf("the erasure's log line:\n%s", out)
	}
}
