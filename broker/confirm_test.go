package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/submission"
)

// brokenLedger is the error text of a share whose ledger folder cannot be read.
const brokenLedger = "read ledger: open: not a directory"

// failingShare is a folder channel whose questions fail for one office, as a
// transfer share whose ledger cannot be read does (a stale NFS or SMB mount, a
// folder replaced by a file); every other office's answer.
type failingShare struct {
	scripted
	badOffice string
	slow      time.Duration // how long a failing question takes
	broken    atomic.Bool
	asked     sync.Map // office -> *atomic.Int64
}

func (f *failingShare) Confirmed(_ context.Context, d adapters.Delivery) (adapters.Confirmation, bool, error) {
	n, _ := f.asked.LoadOrStore(d.OfficeID, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	if d.OfficeID == f.badOffice && f.broken.Load() {
		time.Sleep(f.slow)
		return adapters.Confirmation{}, false, errors.New("transfer: reading the transfer folder failed: " + brokenLedger)
	}
	return adapters.Confirmation{}, false, nil
}

func (f *failingShare) Changes() <-chan struct{} { return nil }

func (f *failingShare) count(office string) int64 {
	n, _ := f.asked.LoadOrStore(office, new(atomic.Int64))
	return n.(*atomic.Int64).Load()
}

// startConfirming runs a broker over the store under dir (handedOver wrote it)
// with the folder channel f, whose log the test reads, and waits until the
// confirmation round at start is over: office-b, the last in id order, has
// been asked and its question has returned.
func startConfirming(t *testing.T, dir string, cfg Config, f *failingShare) (*Broker, *testenv.Buffer) {
	t.Helper()
	logs := &testenv.Buffer{}
	b := startEnvWith(t, dir, cfg, testChannels, nil, fakeSigner{}, slog.New(slog.NewTextHandler(logs, nil)), f).b
	eventually(t, "the round at start", func() bool {
		_, busy := b.asking.Load(askKey{"office-b", "transfer"})
		return f.count("office-b") >= 1 && !busy
	})
	return b, logs
}

// TestConfirmFailuresLoggedOncePerOffice: a transfer share whose ledger cannot
// be read made every confirmation round (every 5 s) log one warning per case
// handed over to it — 1,000 cases at an office with a stale mount, some 17
// million lines a day. The round now says it once per office and channel, at
// most once a minute, with the number of cases, and once that the questions
// answer again. Quick failures still ask every case: one case's bad ledger
// record must not hold back the office's later ones.
func TestConfirmFailuresLoggedOncePerOffice(t *testing.T) {
	dir := t.TempDir()
	handedOver(t, dir, handed{"office-bad", "transfer", 4}, handed{"office-b", "transfer", 1})
	cfg := testConfig
	cfg.ConfirmEvery = time.Hour // the round at start, then the ones this test runs
	f := &failingShare{scripted: scripted{channel: "transfer"}, badOffice: "office-bad"}
	f.broken.Store(true)
	b, logs := startConfirming(t, dir, cfg, f)
	asked := f.count("office-bad")
	for range 3 {
		b.checkHandedOver()
	}
	if n := f.count("office-bad") - asked; n != 12 {
		t.Fatalf("the failing share was asked %d times in 3 rounds, want all its 4 cases each round", n)
	}
	if n := strings.Count(logs.String(), brokenLedger); n != 1 {
		t.Fatalf("%d log lines about the failing share in 4 rounds, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "office=office-bad channel=transfer failed=4 not_asked=0") {
		t.Fatalf("the line does not name the office and its 4 cases:\n%s", logs)
	}
	f.broken.Store(false)
	b.checkHandedOver()
	b.checkHandedOver()
	if n := strings.Count(logs.String(), "confirmation questions answer again"); n != 1 {
		t.Fatalf("%d lines say the share answers again, want 1:\n%s", n, logs)
	}
	// A new fault is news at once.
	f.broken.Store(true)
	b.checkHandedOver()
	if n := strings.Count(logs.String(), brokenLedger); n != 2 {
		t.Fatalf("a new fault after the share answered again: %d lines in all, want 2:\n%s", n, logs)
	}
}

// TestSlowFailuresHoldNoOtherOffice: failing questions that take long (a soft
// mount that answers EIO after its retries) are asked only until together they
// took longer than one attempt may; the office's other cases wait for the next
// round and the other offices are asked at once, as for a share that hangs.
func TestSlowFailuresHoldNoOtherOffice(t *testing.T) {
	dir := t.TempDir()
	handedOver(t, dir, handed{"office-bad", "transfer", 10}, handed{"office-b", "transfer", 1})
	cfg := testConfig
	cfg.ConfirmEvery = time.Hour
	cfg.AttemptTimeout = 200 * time.Millisecond
	f := &failingShare{scripted: scripted{channel: "transfer"}, badOffice: "office-bad", slow: 70 * time.Millisecond}
	f.broken.Store(true)
	b, logs := startConfirming(t, dir, cfg, f)
	bad, other := f.count("office-bad"), f.count("office-b")
	b.checkHandedOver()
	// 70 ms each: the third failure passes the 200 ms (or a question that does
	// not return within them stops the office's questions sooner).
	if n := f.count("office-bad") - bad; n > 3 {
		t.Fatalf("a share whose questions fail slowly was asked %d times in a round, want at most 3", n)
	}
	if n := f.count("office-b") - other; n != 1 {
		t.Fatalf("office-b asked %d times in the round, want 1", n)
	}
	if !strings.Contains(logs.String(), "not_asked=") || strings.Contains(logs.String(), "not_asked=0") {
		t.Fatalf("the log does not say how many cases were passed over:\n%s", logs)
	}
}

// badFirstCases is a folder channel whose first three cases of office-bad to be
// asked fail for good, each slowly (a corrupt ledger record each on a slow
// share); every other case answers at once, not confirmed yet.
type badFirstCases struct {
	failingShare
	mu      sync.Mutex
	bad     map[string]bool
	healthy map[string]int // office-bad's other cases: how often asked
}

func (f *badFirstCases) Confirmed(_ context.Context, d adapters.Delivery) (adapters.Confirmation, bool, error) {
	n, _ := f.asked.LoadOrStore(d.OfficeID, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	f.mu.Lock()
	if d.OfficeID == f.badOffice && len(f.bad) < 3 {
		f.bad[d.SubmissionID] = true
	}
	isBad := f.bad[d.SubmissionID]
	if d.OfficeID == f.badOffice && !isBad {
		f.healthy[d.SubmissionID]++
	}
	f.mu.Unlock()
	if isBad {
		time.Sleep(f.slow)
		return adapters.Confirmation{}, false, errors.New("transfer: reading the transfer folder failed: " + brokenLedger)
	}
	return adapters.Confirmation{}, false, nil
}

// TestSlowFailuresHoldNoLaterCase: the failed questions to an office that took
// longer together than one attempt may skip its other cases for the round, and
// every round began with the first id. Three cases that failed for good, each a
// bit slowly, used up the office's time in every round: its later cases, ones
// the office may long have imported, were never asked again and never got
// delivered or a Zustellbestaetigung (a review). Each round now starts where the
// office's previous one stopped, and the starting point is an id: the case it
// names may be gone by the next round (confirmed here in between).
func TestSlowFailuresHoldNoLaterCase(t *testing.T) {
	dir := t.TempDir()
	handedOver(t, dir, handed{"office-bad", "transfer", 10}, handed{"office-b", "transfer", 1})
	cfg := testConfig
	cfg.ConfirmEvery = time.Hour // the round at start, then the ones this test runs
	// 70 ms each: the third failure passes the 200 ms and skips the rest.
	cfg.AttemptTimeout = 200 * time.Millisecond
	f := &badFirstCases{failingShare: failingShare{scripted: scripted{channel: "transfer"}, badOffice: "office-bad", slow: 70 * time.Millisecond},
		bad: map[string]bool{}, healthy: map[string]int{}}
	b := startEnvWith(t, dir, cfg, testChannels, nil, fakeSigner{}, slog.New(slog.NewTextHandler(io.Discard, nil)), f).b
	// A question that took longer than the attempt goes on alone; the round
	// waits for none, so the test does, lest the next round's first question
	// find the office still being asked.
	idle := func() {
		eventually(t, "office-bad's questions returned", func() bool {
			_, busy := b.asking.Load(askKey{"office-bad", "transfer"})
			return !busy
		})
	}
	eventually(t, "the round at start", func() bool {
		_, busy := b.asking.Load(askKey{"office-b", "transfer"})
		return f.count("office-b") >= 1 && !busy
	})
	idle()
	f.mu.Lock()
	startedHealthy := len(f.healthy)
	f.mu.Unlock()
	if startedHealthy != 0 {
		// Only if a round got past the three failures: the test proves nothing then.
		t.Fatalf("the round at start asked %d of office-bad's healthy cases, want none behind its 3 slow failures", startedHealthy)
	}
	// The office confirms its fourth case (the first one passed over) between
	// rounds: the next round starts at the id after it.
	fourth := "01900000-0003-7000-8000-000000000000"
	if err := b.confirm(fourth, submission.Confirmation{Receiver: "transfer"}, func(cur *submission.Submission, now time.Time, sc submission.Confirmation) ([]submission.Event, error) {
		return cur.Confirm(now, "transfer", sc)
	}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		b.checkHandedOver()
		idle()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.healthy[fourth] != 0 {
		t.Fatalf("the confirmed case was asked again: %v", f.healthy)
	}
	if len(f.healthy) != 6 {
		t.Fatalf("after 4 rounds %d of office-bad's 6 healthy cases still handed over were asked (%v); the rest wait for good behind 3 cases that keep failing slowly",
			len(f.healthy), f.healthy)
	}
}
