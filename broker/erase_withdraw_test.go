package broker

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/transfer"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/submission"
)

// transferEnv is a broker delivering to a real transfer folder (share) on disk,
// whose confirmation rounds run only when the test calls checkHandedOver.
type transferEnv struct {
	e     *env
	share string
	logs  *testenv.Buffer
}

func startTransfer(t *testing.T) transferEnv {
	t.Helper()
	dir := t.TempDir()
	te := transferEnv{share: filepath.Join(dir, "share"), logs: &testenv.Buffer{}}
	if err := os.Mkdir(te.share, 0o750); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(te.logs, nil))
	ad, err := transfer.New(transfer.Options{Logger: log, NoWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ad.Close() })
	if err := ad.CheckTarget(adapters.Target{Channel: channel.Transfer, Endpoint: te.share}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig
	cfg.ConfirmEvery = time.Hour // the test asks (checkHandedOver)
	te.e = startEnvWith(t, dir, cfg, transferTo(te.share), nil, fakeSigner{}, log, ad)
	return te
}

// handedOver receives a case for the transfer folder and waits until its case
// folder is there; it returns the case's id and the folder's name.
func (te transferEnv) handedOver(t *testing.T, msg string) (id, folder string) {
	t.Helper()
	r, err := te.e.b.Receive(context.Background(), intake(msg, channel.Transfer))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, te.e.b, r.Submission.ID, submission.StateHandedOver)
	folders := te.caseFolders(t)
	if len(folders) != 1 {
		t.Fatalf("case folders in the share: %v, want one", folders)
	}
	return r.Submission.ID, folders[0]
}

// caseFolders lists what the office's import sees in the share.
func (te transferEnv) caseFolders(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(te.share)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// withdrawals returns the case's withdrawal events.
func withdrawals(t *testing.T, b *Broker, id string) []submission.Event {
	t.Helper()
	evs, err := b.Log(id)
	if err != nil {
		t.Fatal(err)
	}
	return submission.OfType(evs, submission.EventWithdrawal)
}

// TestErasureWithdrawsTheUntakenCaseFolder: the erasure of a case whose case
// folder waits in the office's transfer folder removes the folder — the
// applicant's data lay in the share, and the import would have processed an
// application that no longer exists. The answer and the case's history say
// so; the case is never recorded as delivered afterwards (the folder gone was
// the import's confirmation before); erasing again finds it removed before and
// records nothing more.
func TestErasureWithdrawsTheUntakenCaseFolder(t *testing.T) {
	noEraseGrace(t)
	te := startTransfer(t)
	b := te.e.b
	id, folder := te.handedOver(t, "erase-untaken")

	res, err := b.Erase(context.Background(), id, "m.meier (admin API)", "Löschantrag")
	if err != nil {
		t.Fatal(err)
	}
	want := ChannelWithdrawal{Channel: channel.Transfer, Outcome: string(adapters.WithdrawRemoved), Reference: folder}
	if len(res.Withdrawals) != 1 || res.Withdrawals[0] != want {
		t.Fatalf("erasure's withdrawals %+v, want %+v", res.Withdrawals, want)
	}
	if got := te.caseFolders(t); len(got) != 0 {
		t.Fatalf("the share after the erasure: %v, want no case folder", got)
	}
	ws := withdrawals(t, b, id)
	if len(ws) != 1 || ws[0].Channel != channel.Transfer || ws[0].Actor != "m.meier (admin API)" ||
		!strings.Contains(ws[0].Detail, folder) || !strings.Contains(ws[0].Detail, "removed before the office took it") {
		t.Fatalf("withdrawal events %+v, want one saying the untaken folder %s was removed", ws, folder)
	}

	b.checkHandedOver() // the folder is gone: before, that was the import's confirmation
	s, err := b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != submission.StateHandedOver || s.DeliveredAt != nil {
		t.Fatalf("after a confirmation round: %s (delivered %v), want still handed over, never delivered", s.State, s.DeliveredAt)
	}

	again, err := b.Erase(context.Background(), id, "m.meier (admin API)", "")
	if err != nil || !again.Already {
		t.Fatalf("erasing again: %+v %v", again, err)
	}
	if len(again.Withdrawals) != 1 || again.Withdrawals[0].Outcome != string(adapters.WithdrawnBefore) {
		t.Fatalf("erasing again: withdrawals %+v, want removed before", again.Withdrawals)
	}
	if ws := withdrawals(t, b, id); len(ws) != 1 {
		t.Errorf("erasing again recorded %d withdrawal events, want still one", len(ws))
	}
}

// TestErasureLeavesTheCaseFolderTheOfficeTook: the office's import took the
// case folder before the erasure; its copy is the office's. The erasure says
// so (answer and history, once however often it is asked), removes nothing,
// and the import's confirmation still counts.
func TestErasureLeavesTheCaseFolderTheOfficeTook(t *testing.T) {
	noEraseGrace(t)
	te := startTransfer(t)
	b := te.e.b
	id, folder := te.handedOver(t, "erase-taken")
	imported := filepath.Join(t.TempDir(), folder)
	if err := os.Rename(filepath.Join(te.share, folder), imported); err != nil { // the import
		t.Fatal(err)
	}
	for i := range 2 {
		res, err := b.Erase(context.Background(), id, "m.meier (admin API)", "")
		if err != nil {
			t.Fatal(err)
		}
		want := ChannelWithdrawal{Channel: channel.Transfer, Outcome: string(adapters.WithdrawTaken), Reference: folder}
		if len(res.Withdrawals) != 1 || res.Withdrawals[0] != want {
			t.Fatalf("erasure #%d: withdrawals %+v, want %+v", i+1, res.Withdrawals, want)
		}
	}
	if _, err := os.Stat(filepath.Join(imported, transfer.PackageFile)); err != nil {
		t.Errorf("the office's copy: %v", err)
	}
	ws := withdrawals(t, b, id)
	if len(ws) != 1 || !strings.Contains(ws[0].Detail, "office had taken") {
		t.Fatalf("withdrawal events %+v, want one saying the office had taken it", ws)
	}
	b.checkHandedOver()
	if s, _ := b.Submission(id); s == nil || s.State != submission.StateDelivered {
		t.Fatalf("after a confirmation round: %+v, want delivered (the import took it)", s)
	}
}

// hungWithdrawal is a channel that keeps a copy outside the gateway on a share
// whose server stopped answering: Withdraw blocks in the kernel, deaf to its
// context, until the test lets it go.
type hungWithdrawal struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	calls   sync.WaitGroup
}

func (h *hungWithdrawal) Channel() string { return "hungshare" }
func (h *hungWithdrawal) Deliver(context.Context, adapters.Delivery) (adapters.Confirmation, error) {
	return adapters.Confirmation{Receiver: "share", Reference: "20261207-case", Pending: true}, nil
}
func (h *hungWithdrawal) Close() error { return nil }
func (h *hungWithdrawal) Withdraw(context.Context, adapters.Delivery) (adapters.Withdrawal, error) {
	h.calls.Add(1)
	defer h.calls.Done()
	h.once.Do(func() { close(h.entered) })
	<-h.release // no select on ctx: a stat on a hard NFS mount does not see it
	return adapters.Withdrawal{Outcome: adapters.WithdrawRemoved, Reference: "20261207-case"}, nil
}

// TestErasureDoesNotHangOnAHungShare: the office's share hangs. The erasure
// answers within the attempt timeout all the same, says the copy could not be
// withdrawn (answer and log), and a repeat meanwhile does not pile up a second
// hung question; once the share answers, the withdrawal records what it did in
// the case's history.
func TestErasureDoesNotHangOnAHungShare(t *testing.T) {
	noEraseGrace(t)
	h := &hungWithdrawal{entered: make(chan struct{}), release: make(chan struct{})}
	logs := &testenv.Buffer{}
	cfg := testConfig
	cfg.AttemptTimeout = 300 * time.Millisecond
	e := startEnvWith(t, t.TempDir(), cfg, testChannels, nil, fakeSigner{}, slog.New(slog.NewTextHandler(logs, nil)), h)
	released := false
	defer func() {
		if !released {
			close(h.release)
		}
	}()
	r, err := e.b.Receive(context.Background(), intake("erase-hung", "hungshare"))
	if err != nil {
		t.Fatal(err)
	}
	id := r.Submission.ID
	waitState(t, e.b, id, submission.StateHandedOver)

	done := make(chan EraseResult, 1)
	go func() {
		res, err := e.b.Erase(context.Background(), id, "operator", "")
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	var res EraseResult
	select {
	case res = <-done:
	case <-time.After(30 * time.Second): // a hang, not a speed: the bound is 300 ms
		t.Fatal("the erasure hangs with the share")
	}
	<-h.entered
	if len(res.Withdrawals) != 1 || res.Withdrawals[0].Outcome != WithdrawUnreachable || !errors.Is(res.Withdrawals[0].Err, errWithdrawNoAnswer) {
		t.Fatalf("erasure on a hung share: withdrawals %+v, want unreachable, no answer", res.Withdrawals)
	}
	if s, _ := e.b.Submission(id); s == nil || s.BytesRemovedAt == nil {
		t.Fatal("the erasure on a hung share did not remove the bytes")
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "could not be withdrawn") || !strings.Contains(l, id) {
		t.Errorf("no WARN naming the case:\n%s", l)
	}

	again, err := e.b.Erase(context.Background(), id, "operator", "")
	if err != nil || !again.Already || len(again.Withdrawals) != 1 || !errors.Is(again.Withdrawals[0].Err, errWithdrawBusy) {
		t.Fatalf("erasing again while the share hangs: %+v %v, want unreachable without a second question", again.Withdrawals, err)
	}

	close(h.release)
	released = true
	h.calls.Wait()
	eventually(t, "the withdrawal's outcome in the case's history", func() bool {
		for _, ev := range withdrawals(t, e.b, id) {
			if strings.Contains(ev.Detail, "removed before the office took it") {
				return true
			}
		}
		return false
	})
}

// TestLateCaseFolderOfAnErasedCaseIsWithdrawn: a transfer attempt a clerk's
// takeover came too late to stop held the case while it was erased — the
// erasure could not get at the folder, which the attempt then renamed into the
// share. The gateway withdraws it at once, and the history says so.
func TestLateCaseFolderOfAnErasedCaseIsWithdrawn(t *testing.T) {
	h := holdTransferAtRename(t)
	id := h.takenOverAtTheRename(t, "late-then-withdrawn", func(id string) {
		if _, err := h.e.b.Erase(context.Background(), id, "operator", ""); err != nil {
			t.Fatal(err)
		}
	})
	eventually(t, "the late case folder's withdrawal", func() bool {
		ents, _ := os.ReadDir(h.share)
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") {
				return false
			}
		}
		for _, ev := range withdrawals(t, h.e.b, id) {
			if out, _ := LateFolderWithdrawal(ev); out == string(adapters.WithdrawRemoved) && ev.Actor == "gateway (after the erasure)" {
				return true
			}
		}
		return false
	})
}

// TestRetentionWithdrawsTheLateCaseFolderOnly: the retention removes the
// bytes only of cases the office has, and a transfer case the office has is
// one whose case folder its import took: that copy is the office's. The one
// untaken case folder of such a case is a late hand-over after a clerk's
// takeover (the clerk has the case; the folder is a second copy no import
// should process): when the retention removes the case's bytes, that folder
// goes too, and the history says so. (The gateway withdraws such a folder at
// once when it learns of it; here the share did not answer then.)
func TestRetentionWithdrawsTheLateCaseFolderOnly(t *testing.T) {
	var failed sync.Once
	h := holdTransferAtRenameWith(t, nil, func(ad *transfer.Adapter) adapters.Adapter {
		return &failFirstWithdraw{Adapter: ad, once: &failed}
	})
	id := h.takenOverAtTheRename(t, "late-then-retained", nil)
	eventually(t, "the first withdrawal's failure recorded", func() bool {
		for _, ev := range withdrawals(t, h.e.b, id) {
			if out, _ := LateFolderWithdrawal(ev); out == WithdrawUnreachable {
				return true
			}
		}
		return false
	})
	s, _ := stillTheClerks(t, h.e.b, id)
	if !s.HandedOverAfterTakeover() {
		t.Fatal("no late hand-over: the test would prove nothing")
	}
	year := 365 * 24 * time.Hour
	r := Retention{Unanswered: year, BlobGrace: time.Nanosecond, CompactMinFree: -1}
	if rep, err := h.e.b.GC(context.Background(), s.DeliveredAt.Add(year), r); err != nil || rep.BytesRemoved != 1 {
		t.Fatalf("retention a year after the delivery: %+v %v", rep, err)
	}
	eventually(t, "the late case folder's withdrawal by the retention", func() bool {
		ents, _ := os.ReadDir(h.share)
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") {
				return false
			}
		}
		for _, ev := range withdrawals(t, h.e.b, id) {
			if out, _ := LateFolderWithdrawal(ev); ev.Actor == "retention" && out == string(adapters.WithdrawRemoved) {
				return true
			}
		}
		return false
	})
}

// TestErasureOfAnUnmountedShareIsTriedAgain: the office's share is not
// mounted when the case is erased (its mount point is an empty folder). The
// bytes go, the answer and the history say the case folder could not be
// withdrawn — an empty mount point is neither "taken" nor "nothing" —, and the
// same erasure once the share is back (alreadyRemoved) withdraws it.
func TestErasureOfAnUnmountedShareIsTriedAgain(t *testing.T) {
	noEraseGrace(t)
	te := startTransfer(t)
	b := te.e.b
	id, folder := te.handedOver(t, "erase-unmounted")
	away := te.share + "-unmounted"
	if err := os.Rename(te.share, away); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(te.share, 0o750); err != nil { // the bare mount point
		t.Fatal(err)
	}
	res, err := b.Erase(context.Background(), id, "operator", "")
	if err != nil || res.Submission.BytesRemovedAt == nil {
		t.Fatalf("erasure with the share unmounted: %+v %v, want the bytes removed", res, err)
	}
	if len(res.Withdrawals) != 1 || res.Withdrawals[0].Outcome != WithdrawUnreachable || res.Withdrawals[0].Reason() == "" {
		t.Fatalf("withdrawals with the share unmounted: %+v, want unreachable with a reason", res.Withdrawals)
	}
	if ents, _ := os.ReadDir(te.share); len(ents) != 0 {
		t.Errorf("the erasure wrote into the bare mount point: %v", ents)
	}
	if ws := withdrawals(t, b, id); len(ws) != 1 || !strings.Contains(ws[0].Detail, "could not be withdrawn") {
		t.Errorf("withdrawal events %+v, want one saying it could not be withdrawn", ws)
	}

	if err := os.Remove(te.share); err != nil { // mounted again
		t.Fatal(err)
	}
	if err := os.Rename(away, te.share); err != nil {
		t.Fatal(err)
	}
	if got := te.caseFolders(t); len(got) != 1 || got[0] != folder {
		t.Fatalf("case folders with the share back: %v", got)
	}
	again, err := b.Erase(context.Background(), id, "operator", "")
	if err != nil || !again.Already || len(again.Withdrawals) != 1 || again.Withdrawals[0].Outcome != string(adapters.WithdrawRemoved) {
		t.Fatalf("erasing again with the share back: %+v %v, want the case folder removed", again, err)
	}
	if got := te.caseFolders(t); len(got) != 0 {
		t.Errorf("case folders after the repeated erasure: %v", got)
	}
}

// failFirstWithdraw is the transfer adapter whose first withdrawal finds the
// share not answering.
type failFirstWithdraw struct {
	*transfer.Adapter
	once *sync.Once
}

func (a *failFirstWithdraw) Withdraw(ctx context.Context, d adapters.Delivery) (adapters.Withdrawal, error) {
	var err error
	a.once.Do(func() { err = errors.New("transfer: stat share: host is down") })
	if err != nil {
		return adapters.Withdrawal{}, err
	}
	return a.Adapter.Withdraw(ctx, d)
}
