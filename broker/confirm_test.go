package broker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/internal/testenv"
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
