package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

func restoredCount(t *testing.T, b *Broker) int {
	t.Helper()
	var m dto.Metric
	if err := b.metrics.restored.Write(&m); err != nil {
		t.Fatal(err)
	}
	return int(m.GetCounter().GetValue())
}

// lostPublish is a store whose new records the relay never hears of while lose
// is set, as if the process that accepted them had died between its commit and
// its publish (a cluster node that stays down): Receive sees them as not waiting.
// (The store wrapper is not blobCreator, so the bytes go through Blobs().Put.)
type lostPublish struct {
	store.Store
	lose atomic.Bool
}

func (s *lostPublish) Create(ctx context.Context, sub *submission.Submission, evs []submission.Event, kind string, receipt []byte) (*submission.Submission, []byte, bool, error) {
	stored, r, created, err := s.Store.Create(ctx, sub, evs, kind, receipt)
	if err == nil && s.lose.Load() {
		c := *stored
		c.State = submission.StateDelivered
		stored = &c
	}
	return stored, r, created, err
}

// TestQueueCheckRestoresAStrandedPackage: an accepted package with no queue message
// (its node died between commit and publish; the queue lost the message) waits in
// the outbox unseen until the next restart. The queue check finds such packages,
// puts them on the queue once, and each reaches the office once.
func TestQueueCheckRestoresAStrandedPackage(t *testing.T) {
	ctx := context.Background()
	rx := &scripted{channel: "primary"}
	st := &lostPublish{}
	cfg := testConfig
	cfg.QueueCheckEvery = -1 // the test runs the check itself
	b := startOver(t, t.TempDir(), cfg, func(db *store.DB) store.Store { st.Store = db; return st }, rx)
	st.lose.Store(true)
	ids := receiveN(t, b, "stranded", 3)
	st.lose.Store(false)
	time.Sleep(300 * time.Millisecond)
	if n := len(rx.deliveries()); n != 0 {
		t.Fatalf("%d packages delivered before the check: the test strands nothing", n)
	}
	// Records changed within the grace are the relay's: left alone.
	if n, err := b.restoreQueue(ctx, time.Now().Add(-time.Minute)); err != nil || n != 0 {
		t.Fatalf("check within the grace restored %d (%v), want 0", n, err)
	}
	if n, err := b.restoreQueue(ctx, time.Now()); err != nil || n != len(ids) {
		t.Fatalf("check restored %d (%v), want %d", n, err, len(ids))
	}
	for _, id := range ids {
		waitState(t, b, id, submission.StateDelivered)
	}
	if n := len(rx.deliveries()); n != len(ids) {
		t.Fatalf("the office got %d deliveries, want %d", n, len(ids))
	}
	if n := restoredCount(t, b); n != len(ids) {
		t.Fatalf("amtsbote_queue_restored_total = %d, want %d", n, len(ids))
	}
	if n, err := b.restoreQueue(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("second check restored %d (%v), want 0", n, err)
	}
}

// TestQueueCheckCountsOnlyWhatTheStreamKept: a message lost within JetStream's
// duplicate window of its publish (here purged from the stream) cannot be put back
// under the same message id: the stream drops the repeat. The check must not
// count or log that as a restore (it would be counted again by the first check
// after the window, which does restore it).
func TestQueueCheckCountsOnlyWhatTheStreamKept(t *testing.T) {
	ctx := context.Background()
	down := errors.New("office down")
	rx := &scripted{channel: "primary", answers: []error{down, down, down}}
	cfg := testConfig
	cfg.QueueCheckEvery = -1
	cfg.BackoffBase, cfg.BackoffMax = time.Hour, time.Hour
	b := startOver(t, t.TempDir(), cfg, nil, rx)
	ids := receiveN(t, b, "purged", 3)
	for _, id := range ids {
		waitState(t, b, id, submission.StateRetrying)
	}
	st, err := b.js.Stream(ctx, b.stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := b.restoreQueue(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("check within the duplicate window restored %d (%v), want 0", n, err)
	}
	if n := restoredCount(t, b); n != 0 {
		t.Fatalf("amtsbote_queue_restored_total = %d, want 0", n)
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 0 {
		t.Fatalf("stream after the check: %v %+v", err, info)
	}
}

// TestQueueCheckLeavesQueuedPackagesAlone: packages with a queue message are not
// published again, whether they are in an attempt, waiting in their office's line
// or waiting for a retry, however old their record; each reaches the office once.
func TestQueueCheckLeavesQueuedPackagesAlone(t *testing.T) {
	ctx := context.Background()
	hung := &scripted{channel: "primary", block: make(chan struct{})}
	failing := &scripted{channel: "other", answers: []error{errors.New("office b is down")}}
	cfg := testConfig
	cfg.QueueCheckEvery = -1
	cfg.PerOffice = 1
	cfg.BackoffBase, cfg.BackoffMax = time.Hour, time.Hour
	e := startWith(t, t.TempDir(), cfg, hung, failing)
	ids := receiveN(t, e.b, "queued", 4)
	in := intake("retrying", "other")
	in.OfficeID = "office-b"
	r, err := e.b.Receive(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.b, r.Submission.ID, submission.StateRetrying)
	time.Sleep(200 * time.Millisecond) // the hung office's packages are pulled meanwhile
	if n, err := e.b.restoreQueue(ctx, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("check restored %d (%v), want 0", n, err)
	}
	close(hung.block)
	for _, id := range ids {
		waitState(t, e.b, id, submission.StateDelivered)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(hung.deliveries()); n != len(ids) {
		t.Fatalf("the office got %d deliveries, want %d", n, len(ids))
	}
	if n := len(failing.deliveries()); n != 1 {
		t.Fatalf("office b got %d attempts, want 1 (its retry is an hour away)", n)
	}
	if n := restoredCount(t, e.b); n != 0 {
		t.Fatalf("amtsbote_queue_restored_total = %d, want 0", n)
	}
}

// TestOfficeOfSubject: the office token is the last of a queue subject, with the
// id before it and without (a queue kept on disk across an upgrade, and nodes of
// an older build, which read the last token, in a cluster being upgraded).
func TestOfficeOfSubject(t *testing.T) {
	b := &Broker{root: subjectRoot}
	s := &submission.Submission{ID: "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", OfficeID: "office-a",
		Targets: []submission.Target{{Channel: "webhook"}}}
	for _, subject := range []string{b.subject(s.Targets[0].Channel, s.ID, s.OfficeID), "deliver.webhook.office-a", "dlv-node1.webhook.0199a1b2.office-a"} {
		if got := officeOf(subject); got != "office-a" {
			t.Errorf("officeOf(%q) = %q, want office-a", subject, got)
		}
	}
}

// TestFullQueueKeepsPackagesInTheOutbox: a work queue at its size limit refuses the
// next message instead of dropping its oldest ones (JetStream's default), so the
// packages beyond the limit wait in the outbox and are published as room frees; with
// the default, the packages whose messages were dropped waited unseen. The office
// fails the first attempts so that messages wait in the queue for their retry.
func TestFullQueueKeepsPackagesInTheOutbox(t *testing.T) {
	const n, fails = 60, 40
	rx := &scripted{channel: "primary", answers: make([]error, fails)}
	for i := range rx.answers {
		rx.answers[i] = errors.New("not yet")
	}
	cfg := testConfig
	cfg.MaxAttempts = 100
	cfg.BreakerThreshold = -1     // the failures are the test's, not an endpoint's
	cfg.QueueCheckEvery = -1      // the relay alone
	cfg.StreamMaxBytes = 20 * 230 // about 20 messages
	e := startWith(t, t.TempDir(), cfg, rx)
	ids := receiveN(t, e.b, "full", n)
	for _, id := range ids {
		waitState(t, e.b, id, submission.StateDelivered)
	}
	time.Sleep(200 * time.Millisecond)
	ok := map[string]int{}
	for _, d := range rx.deliveries() {
		ok[d.SubmissionID]++
	}
	if got := len(rx.deliveries()); got != n+fails || len(ok) != n {
		t.Fatalf("%d attempts for %d packages, want %d for %d", got, len(ok), n+fails, n)
	}
}

// TestFullQueueWithAThousandWaiting: more failed publishes than the relay keeps one
// by one go to its rescan of the outbox, which publishes them as room frees.
func TestFullQueueWithAThousandWaiting(t *testing.T) {
	const n = 1600
	rx := &scripted{channel: "primary", block: make(chan struct{})}
	cfg := testConfig
	cfg.QueueCheckEvery = -1
	cfg.StreamMaxBytes = 400 * 230
	e := startWith(t, t.TempDir(), cfg, rx)
	ctx := context.Background()
	ids := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				a, err := e.b.Receive(ctx, intake(fmt.Sprintf("many-%d", i), "primary"))
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = a.Submission.ID
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	close(rx.block)
	deadline := time.Now().Add(time.Minute)
	for len(rx.deliveries()) < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	seen := map[string]int{}
	for _, d := range rx.deliveries() {
		seen[d.SubmissionID]++
	}
	if got := len(rx.deliveries()); got != n || len(seen) != n {
		t.Fatalf("%d deliveries of %d packages, want %d of %d", got, len(seen), n, n)
	}
}

// TestFairOrder: the re-publish takes one entry of each office in turn, each
// office oldest first, offices in the order of their oldest entry.
func TestFairOrder(t *testing.T) {
	var in []outboxEntry
	for i := range 5 {
		in = append(in, outboxEntry{id: fmt.Sprintf("a%d", i), office: "a"})
	}
	in = append(in, outboxEntry{id: "b0", office: "b"}, outboxEntry{id: "c0", office: "c"}, outboxEntry{id: "b1", office: "b"})
	var got []string
	for _, e := range fairOrder(in) {
		got = append(got, e.id)
	}
	if want := "a0 b0 c0 a1 b1 a2 a3 a4"; strings.Join(got, " ") != want {
		t.Fatalf("order %q, want %q", strings.Join(got, " "), want)
	}
	if len(fairOrder(nil)) != 0 {
		t.Fatal("entries from nothing")
	}
}

// aheadNode is lostPublish for a gateway whose clock runs ahead (a cluster node
// an hour fast, or this node before NTP stepped its clock back): the stranded
// records carry that clock's times.
type aheadNode struct {
	lostPublish
	ahead time.Duration
}

func (s *aheadNode) Create(ctx context.Context, sub *submission.Submission, evs []submission.Event, kind string, receipt []byte) (*submission.Submission, []byte, bool, error) {
	sub.ReceivedAt = sub.ReceivedAt.Add(s.ahead)
	sub.UpdatedAt = sub.UpdatedAt.Add(s.ahead)
	return s.lostPublish.Create(ctx, sub, evs, kind, receipt)
}

// The check restored an entry only when its UpdatedAt lay a minute behind the
// checking node's clock: a package stranded by a node whose clock ran an hour
// ahead waited unseen for that hour. Two checks in a row finding it without a
// message restore it, whatever its time says.
func TestQueueCheckRestoresAPackageDatedByAClockAhead(t *testing.T) {
	ctx := context.Background()
	rx := &scripted{channel: "primary"}
	st := &aheadNode{ahead: time.Hour}
	cfg := testConfig
	cfg.QueueCheckEvery = -1
	b := startOver(t, t.TempDir(), cfg, func(db *store.DB) store.Store { st.Store = db; return st }, rx)
	st.lose.Store(true)
	ids := receiveN(t, b, "ahead", 2)
	st.lose.Store(false)
	time.Sleep(300 * time.Millisecond)
	// The first check a period later: the records look just written (their
	// time is an hour ahead), so they are left to the relay, and remembered.
	before := time.Now().Add(2 * time.Minute).Add(-queueCheckGrace)
	if n, err := b.restoreQueue(ctx, before); err != nil || n != 0 {
		t.Fatalf("first check restored %d (%v), want 0", n, err)
	}
	// The next one finds them missing again at the same generation.
	if n, err := b.restoreQueue(ctx, before.Add(2*time.Minute)); err != nil || n != len(ids) {
		t.Fatalf("second check restored %d (%v) of %d packages stranded with a clock an hour ahead", n, err, len(ids))
	}
	for _, id := range ids {
		waitState(t, b, id, submission.StateDelivered)
	}
	if n := len(rx.deliveries()); n != len(ids) {
		t.Fatalf("the office got %d deliveries, want %d", n, len(ids))
	}
}
