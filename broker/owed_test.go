package broker

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/transfer"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/submission"
)

// askOwedNow makes an owed withdrawal's turn come at once (owedFirst is a
// minute on a gateway) for the rest of the test.
func askOwedNow(t *testing.T) {
	t.Helper()
	first := owedFirst
	owedFirst = 0
	t.Cleanup(func() { owedFirst = first })
}

// owedGauge reads amtsbote_withdrawals_owed.
func owedGauge(t *testing.T, b *Broker) float64 {
	t.Helper()
	var m dto.Metric
	if err := b.metrics.withdrawalsOwed.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// waitForEvents waits until the case's history satisfies done and returns it.
func waitForEvents(t *testing.T, b *Broker, id string, done func([]submission.Event) bool) []submission.Event {
	t.Helper()
	var evs []submission.Event
	eventually(t, "the case's history", func() bool {
		var err error
		if evs, err = b.Log(id); err != nil {
			t.Fatal(err)
		}
		return done(evs)
	})
	return evs
}

// unmount puts the share away and leaves its bare mount point; the func it
// returns mounts it again.
func (te transferEnv) unmount(t *testing.T) (mount func()) {
	t.Helper()
	away := te.share + "-unmounted"
	if err := os.Rename(te.share, away); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(te.share, 0o750); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := os.Remove(te.share); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(away, te.share); err != nil {
			t.Fatal(err)
		}
	}
}

// owes reads whether case id's record owes a withdrawal on the transfer
// channel, and nothing else.
func owes(t *testing.T, b *Broker, id string) bool {
	t.Helper()
	s, err := b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case len(s.WithdrawalsOwed) == 0:
		return false
	case slices.Equal(s.WithdrawalsOwed, []string{channel.Transfer}):
		return true
	}
	t.Fatalf("owed %v, want the transfer channel or none", s.WithdrawalsOwed)
	return false
}

// TestErasureOfAnUnmountedShareIsAskedAgainByTheGateway: the office's share
// is not mounted when the case is erased. The erasure's answer and the
// history say the case folder could not be withdrawn and that the gateway
// asks again; the record owes the withdrawal and the gauge counts it. Once
// the share is back, the gateway's own asking removes the folder — nobody
// has to remember to erase again —, says so in the history, and the mark and
// the gauge go back to none.
func TestErasureOfAnUnmountedShareIsAskedAgainByTheGateway(t *testing.T) {
	noEraseGrace(t)
	askOwedNow(t)
	te := startTransfer(t)
	b := te.e.b
	id, folder := te.handedOver(t, "erase-asked-again")
	mount := te.unmount(t)
	res, err := b.Erase(context.Background(), id, "operator", "")
	if err != nil || len(res.Withdrawals) != 1 || res.Withdrawals[0].Outcome != WithdrawUnreachable {
		t.Fatalf("erasure with the share unmounted: %+v %v, want the withdrawal unreachable", res.Withdrawals, err)
	}
	ws := withdrawals(t, b, id)
	if len(ws) != 1 || !strings.Contains(ws[0].Detail, "could not be withdrawn") || !strings.Contains(ws[0].Detail, "the gateway asks again") {
		t.Fatalf("withdrawal events %+v, want one saying the gateway asks again", ws)
	}
	if !owes(t, b, id) || b.owed.size() != 1 || owedGauge(t, b) != 1 {
		t.Fatalf("after the erasure: owed %v, known %d, gauge %v; want the withdrawal owed", owes(t, b, id), b.owed.size(), owedGauge(t, b))
	}

	// Asked again while the share is still away: the same answer, said once.
	b.retryOwed()
	eventually(t, "the second question answered", func() bool {
		return counterOf(t, b.metrics.withdrawals, channel.Transfer, "erased", WithdrawUnreachable) == 2
	})
	if ws := withdrawals(t, b, id); len(ws) != 1 || !owes(t, b, id) {
		t.Fatalf("asked again with the share away: %d withdrawal events (want still one), owed %v", len(ws), owes(t, b, id))
	}

	mount()
	b.retryOwed()
	evs := waitForEvents(t, b, id, func(evs []submission.Event) bool {
		return len(submission.OfType(evs, submission.EventWithdrawal)) == 2
	})
	ws = submission.OfType(evs, submission.EventWithdrawal)
	if !RemovedCopy(ws[1]) || ws[1].Actor != actorAskedAgain || !strings.Contains(ws[1].Detail, folder) {
		t.Errorf("withdrawal asked again: %+v, want the case folder %s removed by the gateway", ws[1], folder)
	}
	if got := te.caseFolders(t); len(got) != 0 {
		t.Errorf("case folders after the gateway asked again: %v", got)
	}
	if owes(t, b, id) {
		t.Error("the record still owes the withdrawal")
	}
	b.retryOwed()
	if b.owed.size() != 0 || owedGauge(t, b) != 0 {
		t.Errorf("known owed %d, gauge %v after the withdrawal; want none", b.owed.size(), owedGauge(t, b))
	}
}

// TestOwedWithdrawalOutlivesACrash: the gateway crashes after the erasure's
// commit, before it asked the share (or restarts while the share is down). The
// record's mark is all that is left; the retention's next run finds it, and
// the gateway then withdraws the case folder.
func TestOwedWithdrawalOutlivesACrash(t *testing.T) {
	noEraseGrace(t)
	askOwedNow(t)
	te := startTransfer(t)
	b := te.e.b
	id, folder := te.handedOver(t, "erase-crash")
	if _, err := b.eraseRecord(id, "operator", ""); err != nil { // the commit, then the crash
		t.Fatal(err)
	}
	if !owes(t, b, id) {
		t.Fatal("the erasure's commit did not note the owed withdrawal")
	}
	if b.owed.size() != 0 {
		t.Fatal("the test needs a gateway that does not know of the case yet")
	}
	b.retryOwed()
	if got := te.caseFolders(t); len(got) != 1 || got[0] != folder {
		t.Fatalf("the share before the retention's run: %v, want the case folder %s still there", got, folder)
	}

	if _, err := b.GC(context.Background(), time.Now(), Retention{CompactMinFree: -1}); err != nil {
		t.Fatal(err)
	}
	if b.owed.size() != 1 {
		t.Fatalf("after the retention's run the gateway knows %d owed, want the erased case", b.owed.size())
	}
	b.retryOwed()
	waitForEvents(t, b, id, func(evs []submission.Event) bool {
		return len(submission.OfType(evs, submission.EventWithdrawal)) == 1
	})
	if ws := withdrawals(t, b, id); !RemovedCopy(ws[0]) || ws[0].Actor != actorAskedAgain {
		t.Errorf("withdrawal events %+v, want the case folder removed by the gateway", ws)
	}
	if got := te.caseFolders(t); len(got) != 0 {
		t.Errorf("case folders: %v, want none", got)
	}
	if owes(t, b, id) {
		t.Error("the record still owes the withdrawal")
	}
}

// TestOwedWithdrawalOfNothingIsSettledAndSaid: an erased case whose channel
// holds nothing of it (the office's share was emptied by its IT, say) settles
// its mark, and the history says the gateway found nothing — not silence
// after "could not be withdrawn".
func TestOwedWithdrawalOfNothingIsSettledAndSaid(t *testing.T) {
	noEraseGrace(t)
	te := startTransfer(t)
	b := te.e.b
	id, _ := te.handedOver(t, "erase-nothing")
	if _, err := b.eraseRecord(id, "operator", ""); err != nil {
		t.Fatal(err)
	}
	b.recordWithdrawal(id, ChannelWithdrawal{Channel: channel.Transfer, Outcome: string(adapters.WithdrawNothing)}, copyOf{erased: true}, actorAskedAgain)
	ws := withdrawals(t, b, id)
	if len(ws) != 1 || !strings.Contains(ws[0].Detail, "there is none") || RemovedCopy(ws[0]) {
		t.Fatalf("withdrawal events %+v, want one saying there is none", ws)
	}
	if owes(t, b, id) {
		t.Error("the record still owes the withdrawal")
	}
	// Said once: a second answer of the same with nothing owed records nothing.
	b.recordWithdrawal(id, ChannelWithdrawal{Channel: channel.Transfer, Outcome: string(adapters.WithdrawNothing)}, copyOf{erased: true}, actorAskedAgain)
	if ws := withdrawals(t, b, id); len(ws) != 1 {
		t.Errorf("%d withdrawal events, want one", len(ws))
	}
}

// TestOwedWithdrawalOfAnUnconfiguredChannelEnds: the office's transfer
// channel was removed from the configuration after the hand-over. The gateway
// no longer knows the folder, so asking again would never end: the mark is
// settled, and the history says the office's IT has to take the copy out.
func TestOwedWithdrawalOfAnUnconfiguredChannelEnds(t *testing.T) {
	noEraseGrace(t)
	te := startTransfer(t)
	b := te.e.b
	id, _ := te.handedOver(t, "erase-unconfigured")
	if _, err := b.eraseRecord(id, "operator", ""); err != nil {
		t.Fatal(err)
	}
	got := ChannelWithdrawal{Channel: channel.Transfer, Outcome: WithdrawUnreachable, Err: errWithdrawUnconfigured}
	b.recordWithdrawal(id, got, copyOf{erased: true}, "operator")
	ws := withdrawals(t, b, id)
	if len(ws) != 1 || !strings.Contains(ws[0].Detail, "no longer configured") || !strings.Contains(ws[0].Detail, "office's IT has to take it out") {
		t.Fatalf("withdrawal events %+v, want one saying the office's IT has to take the copy out", ws)
	}
	if owes(t, b, id) {
		t.Error("the record still owes a withdrawal the gateway cannot make")
	}
}

// TestStopWaitsForAWithdrawalUnderWay: a withdrawal the erasure stopped
// waiting for (its share slow) returns while the gateway stops: Stop waits for
// it, so its outcome reaches the history before the store closes.
func TestStopWaitsForAWithdrawalUnderWay(t *testing.T) {
	noEraseGrace(t)
	h := &hungWithdrawal{entered: make(chan struct{}), release: make(chan struct{})}
	cfg := testConfig
	cfg.AttemptTimeout = 100 * time.Millisecond
	e := startEnvWith(t, t.TempDir(), cfg, testChannels, nil, fakeSigner{}, slog.New(slog.NewTextHandler(&testenv.Buffer{}, nil)), h)
	r, err := e.b.Receive(context.Background(), intake("erase-then-stop", "hungshare"))
	if err != nil {
		t.Fatal(err)
	}
	id := r.Submission.ID
	waitState(t, e.b, id, submission.StateHandedOver)
	res, err := e.b.Erase(context.Background(), id, "operator", "")
	if err != nil || len(res.Withdrawals) != 1 || !errors.Is(res.Withdrawals[0].Err, errWithdrawNoAnswer) {
		t.Fatalf("erasure: %+v %v, want the withdrawal still under way", res.Withdrawals, err)
	}
	<-h.entered
	stopped := make(chan error, 1)
	go func() { stopped <- e.b.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a withdrawal was under way", err)
	case <-time.After(50 * time.Millisecond): // absence of a return, not a speed
	}
	close(h.release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if ws := withdrawals(t, e.b, id); len(ws) != 1 || !RemovedCopy(ws[0]) {
		t.Errorf("withdrawal events after Stop %+v, want the withdrawal's outcome", ws)
	}
	if owes(t, e.b, id) {
		t.Error("the record still owes the withdrawal")
	}
	// A withdrawal asked after Stop is not started: the mark stays for the
	// next start.
	s, err := e.b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.b.withdraw(h, s, "hungshare", "operator", true, nil); !errors.Is(got.Err, errWithdrawStopping) {
		t.Errorf("withdrawal after Stop: %+v, want none started", got)
	}
}

// TestOwedDelayGrows: the gateway asks a share that does not answer less and
// less often, up to once an hour.
func TestOwedDelayGrows(t *testing.T) {
	prev := time.Duration(0)
	for tries := 1; tries < 100; tries++ {
		d := owedDelay(tries)
		if d < prev || d > owedMax || d <= 0 {
			t.Fatalf("owedDelay(%d) = %s after %s", tries, d, prev)
		}
		prev = d
	}
	if prev != owedMax {
		t.Errorf("owedDelay ends at %s, want %s", prev, owedMax)
	}
	var o owedSet
	now := time.Now()
	o.note("b", now)
	o.note("a", now)
	due := func(now time.Time) []string {
		d, _ := o.split(now)
		return d
	}
	if got := due(now); len(got) != 0 {
		t.Errorf("due at once: %v", got)
	}
	if got := due(now.Add(owedFirst)); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("due after owedFirst: %v", got)
	}
	if got := due(now.Add(owedFirst)); len(got) != 0 {
		t.Errorf("due again at once: %v", got)
	}
	o.note("a", now) // noted again: keeps its turn
	if o.drop("a") != 1 || o.size() != 1 {
		t.Errorf("after drop: %d", o.size())
	}
}

// TestSettledWithdrawalLeavesTheGaugeAtOnce: a withdrawal the gateway knows
// to be owed is settled before its turn to be asked again has come — the
// operator erased the case again once the share was back, which asks at once.
// The record owes nothing from that transaction on, and neither does the
// gateway: the gauge (and the alert on it) goes back to zero then, not at the
// case's next turn, which is up to an hour later on a share that was down
// long.
func TestSettledWithdrawalLeavesTheGaugeAtOnce(t *testing.T) {
	noEraseGrace(t)
	te := startTransfer(t)
	b := te.e.b
	id, _ := te.handedOver(t, "erase-settled-early")
	mount := te.unmount(t)
	if _, err := b.Erase(context.Background(), id, "operator", ""); err != nil {
		t.Fatal(err)
	}
	if !owes(t, b, id) || b.owed.size() != 1 || owedGauge(t, b) != 1 {
		t.Fatalf("after the erasure on the unmounted share: owed %v, known %d, gauge %v", owes(t, b, id), b.owed.size(), owedGauge(t, b))
	}
	mount()
	res, err := b.Erase(context.Background(), id, "operator", "") // asks at once
	if err != nil || len(res.Withdrawals) != 1 || res.Withdrawals[0].Outcome != string(adapters.WithdrawRemoved) {
		t.Fatalf("erasing again with the share back: %+v %v, want the case folder removed", res.Withdrawals, err)
	}
	if owes(t, b, id) {
		t.Fatal("the record still owes the withdrawal")
	}
	if b.owed.size() != 0 || owedGauge(t, b) != 0 {
		t.Errorf("the withdrawal is done, yet the gateway knows %d owed (gauge %v) until the case's next turn", b.owed.size(), owedGauge(t, b))
	}
}

// restart stops the gateway and starts it again over the same store, queue
// and share, with cfg and chans (nil: the share as the transfer channel): a
// crash's restart, as far as the records go.
func (te transferEnv) restart(t *testing.T, cfg Config, chans Channels) transferEnv {
	t.Helper()
	dir := te.e.dir
	te.e.stop()
	log := slog.New(slog.NewTextHandler(te.logs, nil))
	ad, err := transfer.New(transfer.Options{Logger: log, NoWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ad.Close() })
	cfg.ConfirmEvery = time.Hour // the test asks (checkHandedOver)
	if chans == nil {
		chans = transferTo(te.share)
	}
	te.e = startEnvWith(t, dir, cfg, chans, nil, fakeSigner{}, log, ad)
	return te
}

// TestOwedWithdrawalFoundAtStartWithoutTheRetention: a gateway without the
// background retention (retention.every 0: the operator runs `amtsbote gc`
// from cron, whose offline broker asks no share) crashes after an erasure's
// commit, before its question. The retention's run that finds the marks
// after a start never comes; the gateway looks for them itself after its
// start, and withdraws the case folder.
func TestOwedWithdrawalFoundAtStartWithoutTheRetention(t *testing.T) {
	noEraseGrace(t)
	askOwedNow(t)
	te := startTransfer(t)
	if te.e.b.cfg.RetentionEvery > 0 {
		t.Fatal("the test needs a gateway without the background retention")
	}
	id, folder := te.handedOver(t, "erase-crash-no-retention")
	if _, err := te.e.b.eraseRecord(id, "operator", ""); err != nil { // the commit, then the crash
		t.Fatal(err)
	}
	every := owedEvery
	owedEvery = 10 * time.Millisecond // the look after the start, and the retry loop, come at once
	t.Cleanup(func() { owedEvery = every })
	te = te.restart(t, testConfig, nil)
	b := te.e.b
	ws := waitForEvents(t, b, id, func(evs []submission.Event) bool {
		return len(submission.OfType(evs, submission.EventWithdrawal)) == 1
	})
	ws = submission.OfType(ws, submission.EventWithdrawal)
	if !RemovedCopy(ws[0]) || ws[0].Actor != actorAskedAgain || !strings.Contains(ws[0].Detail, folder) {
		t.Errorf("withdrawal events %+v, want the case folder %s removed by the gateway asking again", ws, folder)
	}
	if got := te.caseFolders(t); len(got) != 0 {
		t.Errorf("case folders: %v, want none", got)
	}
	if owes(t, b, id) {
		t.Error("the record still owes the withdrawal")
	}
	eventually(t, "the gateway to forget the settled case", func() bool { return b.owed.size() == 0 })
}

// hungShareOf is hungWithdrawal counting the questions that reached the
// share.
type hungShareOf struct {
	hungWithdrawal
	asked atomic.Int32
}

func (h *hungShareOf) Withdraw(ctx context.Context, d adapters.Delivery) (adapters.Withdrawal, error) {
	h.asked.Add(1)
	return h.hungWithdrawal.Withdraw(ctx, d)
}

// TestOwedWithdrawalsOnAHungShareCostOneQuestion: an office's share hangs
// (a hard NFS mount whose server is gone) while the gateway owes the
// withdrawal of several of its cases — erasures cut short by a crash, found
// by the retention. Asking them again sends one question to the share, not
// one per case: each question stuck in the kernel is a goroutine for good,
// and the hung-share guard (withdrawHung) holds the others back only once
// the first has run for the attempt timeout.
func TestOwedWithdrawalsOnAHungShareCostOneQuestion(t *testing.T) {
	noEraseGrace(t)
	askOwedNow(t)
	h := &hungShareOf{hungWithdrawal: hungWithdrawal{entered: make(chan struct{}), release: make(chan struct{})}}
	cfg := testConfig
	cfg.AttemptTimeout = 100 * time.Millisecond
	e := startEnvWith(t, t.TempDir(), cfg, testChannels, nil, fakeSigner{}, slog.New(slog.NewTextHandler(&testenv.Buffer{}, nil)), h)
	b := e.b
	var ids []string
	for _, msg := range []string{"hung-owed-1", "hung-owed-2", "hung-owed-3"} {
		r, err := b.Receive(context.Background(), intake(msg, "hungshare"))
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, b, r.Submission.ID, submission.StateHandedOver)
		if _, err := b.eraseRecord(r.Submission.ID, "operator", ""); err != nil { // the commit, then the crash
			t.Fatal(err)
		}
		ids = append(ids, r.Submission.ID)
	}
	if _, err := b.GC(context.Background(), time.Now(), Retention{CompactMinFree: -1}); err != nil {
		t.Fatal(err)
	}
	if b.owed.size() != len(ids) {
		t.Fatalf("the gateway knows %d owed, want %d", b.owed.size(), len(ids))
	}
	b.retryOwed()
	<-h.entered
	close(h.release) // the share answers again: what was asked returns
	b.withdrawing.Wait()
	if n := h.asked.Load(); n != 1 {
		t.Fatalf("the hung share was asked %d times for the cases the gateway owes, want once", n)
	}
	// The one asked is settled once the share answered; the others were not
	// sent and are still owed, and known, for the next turn.
	settled := 0
	for _, id := range ids {
		s, err := b.Submission(id)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.WithdrawalsOwed) == 0 {
			settled++
		}
	}
	if settled != 1 || b.owed.size() != len(ids)-1 {
		t.Errorf("settled %d, known owed %d; want the one asked settled and the others still owed", settled, b.owed.size())
	}
}

// TestErasureOfAnUnconfiguredChannelOwesNothing: the office's transfer
// channel was taken out of the gateway's configuration after the hand-over.
// The erasure cannot withdraw the case folder and settles the mark (the
// history tells the office's IT to take it out); the gateway does not count
// the case as owed, nor log that it asks again: it never will.
func TestErasureOfAnUnconfiguredChannelOwesNothing(t *testing.T) {
	noEraseGrace(t)
	te := startTransfer(t)
	id, _ := te.handedOver(t, "erase-unconfigured-channel")
	noTransfer := ChannelsFunc(func(office, ch string) (adapters.Target, bool) {
		if ch == channel.Transfer {
			return adapters.Target{}, false // the office's transfer folder no longer configured
		}
		return testChannels(office, ch)
	})
	te = te.restart(t, testConfig, noTransfer)
	b := te.e.b
	res, err := b.Erase(context.Background(), id, "operator", "")
	if err != nil || len(res.Withdrawals) != 1 || !errors.Is(res.Withdrawals[0].Err, errWithdrawUnconfigured) {
		t.Fatalf("erasure: %+v %v, want the withdrawal unconfigured", res.Withdrawals, err)
	}
	if owes(t, b, id) {
		t.Error("the record owes a withdrawal the gateway cannot make")
	}
	if b.owed.size() != 0 || owedGauge(t, b) != 0 {
		t.Errorf("the gateway knows %d owed (gauge %v), want none", b.owed.size(), owedGauge(t, b))
	}
	if l := te.logs.String(); strings.Contains(l, "the gateway asks again") {
		t.Errorf("the log says the gateway asks again:\n%s", l)
	}
}

// TestStopDoesNotWaitOutAHungShareAskedAgain: the gateway asks a share again
// about an owed withdrawal, and the share hangs in the kernel. Stop does not
// wait the attempt timeout for that question (the retry loop is one of the
// loops Stop waits for): the record keeps its mark, and the withdrawal is
// asked again after the start.
func TestStopDoesNotWaitOutAHungShareAskedAgain(t *testing.T) {
	noEraseGrace(t)
	askOwedNow(t)
	every := owedEvery
	owedEvery = 10 * time.Millisecond // the loop asks at once
	t.Cleanup(func() { owedEvery = every })
	h := &hungShareOf{hungWithdrawal: hungWithdrawal{entered: make(chan struct{}), release: make(chan struct{})}}
	cfg := testConfig
	cfg.AttemptTimeout = time.Hour // far beyond the test: the question hangs for its whole length
	e := startEnvWith(t, t.TempDir(), cfg, testChannels, nil, fakeSigner{}, slog.New(slog.NewTextHandler(&testenv.Buffer{}, nil)), h)
	b := e.b
	r, err := b.Receive(context.Background(), intake("hung-owed-stop", "hungshare"))
	if err != nil {
		t.Fatal(err)
	}
	id := r.Submission.ID
	waitState(t, b, id, submission.StateHandedOver)
	if _, err := b.eraseRecord(id, "operator", ""); err != nil {
		t.Fatal(err)
	}
	b.noteOwed(id)
	<-h.entered // the loop asked; the share hangs
	stopped := make(chan error, 1)
	go func() { stopped <- b.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a hang, not a speed: the question hangs for an hour
		t.Fatal("Stop waits for the question to a hung share")
	}
	if s, err := b.Submission(id); err != nil || !slices.Equal(s.WithdrawalsOwed, []string{"hungshare"}) {
		t.Errorf("after Stop: %v, want the record still owing the withdrawal", err)
	}
	close(h.release)
}

// TestOwedSettledElsewhereLeavesTheGauge: a case this gateway knows to owe a
// withdrawal, whose turn is an hour away, is settled by another gateway of
// the cluster (here: its record written as that gateway's recording leaves
// it). The next round of this gateway forgets it without asking the share, so
// the gauge and the alert do not say owed for that hour.
func TestOwedSettledElsewhereLeavesTheGauge(t *testing.T) {
	noEraseGrace(t)
	te := startTransfer(t)
	b := te.e.b
	id, folder := te.handedOver(t, "erase-settled-elsewhere")
	mount := te.unmount(t)
	if _, err := b.Erase(context.Background(), id, "operator", ""); err != nil {
		t.Fatal(err)
	}
	if b.owed.size() != 1 || owedGauge(t, b) != 1 {
		t.Fatalf("after the erasure: known %d, gauge %v; want the case owed", b.owed.size(), owedGauge(t, b))
	}
	mount()
	// The other gateway's withdrawal and its record.
	b.recordWithdrawal(id, ChannelWithdrawal{Channel: channel.Transfer, Outcome: string(adapters.WithdrawTaken), Reference: folder}, copyOf{erased: true}, actorAskedAgain)
	b.owed.note(id, time.Now()) // this gateway still knows it, its turn far off
	if b.owed.size() != 1 {
		t.Fatal("the test needs the case still known here")
	}
	asked := counterOf(t, b.metrics.withdrawals, channel.Transfer, "erased", string(adapters.WithdrawTaken))
	b.retryOwed()
	if b.owed.size() != 0 || owedGauge(t, b) != 0 {
		t.Errorf("after a round: known %d, gauge %v; want none", b.owed.size(), owedGauge(t, b))
	}
	if got := counterOf(t, b.metrics.withdrawals, channel.Transfer, "erased", string(adapters.WithdrawTaken)); got != asked {
		t.Errorf("the round asked the share (%v withdrawals counted, want %v)", got, asked)
	}
}
