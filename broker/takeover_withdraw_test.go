package broker

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/transfer"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
)

// lateTold waits until the late hand-over of a case has been told — its
// withdrawal answered and the count taken, whatever the outcome — and
// returns the counts by withdrawn (erased="false").
func lateTold(t *testing.T, b *Broker) (withdrawn, stayed float64) {
	t.Helper()
	eventually(t, "the late hand-over's withdrawal told", func() bool {
		return counterOf(t, b.metrics.lateHandOvers, channel.Transfer, "false", "true")+
			counterOf(t, b.metrics.lateHandOvers, channel.Transfer, "false", "false") > 0
	})
	return counterOf(t, b.metrics.lateHandOvers, channel.Transfer, "false", "true"),
		counterOf(t, b.metrics.lateHandOvers, channel.Transfer, "false", "false")
}

// wantLateTold is lateTold that wants these counts.
func wantLateTold(t *testing.T, b *Broker, wantWithdrawn, wantStayed float64) {
	t.Helper()
	if withdrawn, stayed := lateTold(t, b); withdrawn != wantWithdrawn || stayed != wantStayed {
		t.Errorf(`amtsbote_delivery_handed_over_after_takeover_total: withdrawn="true" %v, "false" %v; want %v and %v`, withdrawn, stayed, wantWithdrawn, wantStayed)
	}
}

// lateFolderName is the name of the case folder the late hand-over of the
// case put into the share, as its handed_over event names it.
func lateFolderName(t *testing.T, s *submission.Submission, evs []submission.Event) string {
	t.Helper()
	for _, e := range evs {
		if s.IsHandOverAfterTakeover(e) {
			_, name, ok := strings.Cut(e.Detail, "reference ")
			if !ok || name == "" {
				t.Fatalf("the late hand-over's event names no case folder: %+v", e)
			}
			return name
		}
	}
	t.Fatal("no late hand-over recorded")
	return ""
}

// TestLateCaseFolderIsWithdrawn: a transfer attempt a clerk's takeover came
// too late to stop put its case folder into the share. The gateway withdraws
// it at once — the takeover promised the clerk that the Fachverfahren does
// not get the case —, records that in the case's history (a withdrawal event
// in the late folder's words, which the clerk's page reads), counts it as
// withdrawn (which the alert does not read) and logs it at INFO, no WARN. A
// confirmation round afterwards, and the adapter's own answers, never make
// the withdrawn folder a delivery to the Fachverfahren.
func TestLateCaseFolderIsWithdrawn(t *testing.T) {
	h := holdTransferAtRename(t)
	b := h.e.b
	id := h.takenOverAtTheRename(t, "late-withdrawn", nil)
	wantLateTold(t, b, 1, 0)
	s, evs := stillTheClerks(t, b, id)
	folder := lateFolderName(t, s, evs)
	if ents, err := os.ReadDir(h.share); err != nil {
		t.Fatal(err)
	} else {
		for _, e := range ents {
			if e.Name() != transfer.LedgerDir {
				t.Errorf("left in the share: %s, want the late case folder %s withdrawn", e.Name(), folder)
			}
		}
	}
	ws := submission.OfType(evs, submission.EventWithdrawal)
	if len(ws) != 1 {
		t.Fatalf("withdrawal events %+v, want one", ws)
	}
	if out, ok := LateFolderWithdrawal(ws[0]); !ok || out != string(adapters.WithdrawRemoved) || !RemovedCopy(ws[0]) ||
		ws[0].Channel != channel.Transfer || ws[0].Actor != "gateway (after the takeover)" || !strings.Contains(ws[0].Detail, folder) ||
		strings.Contains(ws[0].Detail, "erasure") {
		t.Errorf("withdrawal event %+v (%q %v), want the late folder %s removed, in the takeover's words", ws[0], out, ok, folder)
	}
	l := h.logs.String()
	if strings.Contains(l, "the office's import may process it as well") || !strings.Contains(l, "was withdrawn before the office's import took it") {
		t.Errorf("want an INFO line saying the late folder was withdrawn and no WARN:\n%s", l)
	}

	// The folder gone was the import's confirmation once: not after a withdrawal.
	ad, _ := b.adapters.Get(channel.Transfer)
	target, _ := b.channels.Target(s.OfficeID, channel.Transfer)
	d := b.delivery(s, target)
	if _, ok, err := ad.(adapters.Confirmer).Confirmed(context.Background(), d); ok || err != nil {
		t.Errorf("Confirmed of the withdrawn folder: ok %v, err %v; want no confirmation", ok, err)
	}
	if _, ok, err := ad.(adapters.HandOverFinder).HandedOver(context.Background(), d); ok || err != nil {
		t.Errorf("HandedOver of the withdrawn folder: ok %v, err %v; want none", ok, err)
	}
	if _, err := ad.Deliver(context.Background(), d); !errors.Is(err, adapters.ErrWithdrawn) {
		t.Errorf("Deliver of the withdrawn delivery: %v, want ErrWithdrawn", err)
	}
	b.checkHandedOver()
	s2, evs2 := stillTheClerks(t, b, id)
	if len(evs2) != len(evs) || s2.Receiver != s.Receiver || !s2.DeliveredAt.Equal(*s.DeliveredAt) {
		t.Errorf("a confirmation round changed the case: %d events (was %d), receiver %q (was %q)", len(evs2), len(evs), s2.Receiver, s.Receiver)
	}
	if n := len(submission.OfType(evs2, submission.EventDelivered)); n != 1 {
		t.Errorf("%d delivered events, want the takeover's only", n)
	}
}

// beforeWithdraw is the transfer adapter with something happening in the
// share just before each withdrawal: the office's import, an unmount.
type beforeWithdraw struct {
	*transfer.Adapter
	then func(adapters.Delivery)
}

func (a *beforeWithdraw) Withdraw(ctx context.Context, d adapters.Delivery) (adapters.Withdrawal, error) {
	a.then(d)
	return a.Adapter.Withdraw(ctx, d)
}

// TestLateCaseFolderTakenByTheImportStays: the office's import took the late
// case folder before the gateway could withdraw it. The folder is the
// office's and stays where the import put it; the history says the import
// had it first, and the operator hears of it as before: counted with
// withdrawn="false" (the alert) and a WARN line naming the case.
func TestLateCaseFolderTakenByTheImportStays(t *testing.T) {
	imported := t.TempDir()
	var share string
	h := holdTransferAtRenameWith(t, nil, func(ad *transfer.Adapter) adapters.Adapter {
		return &beforeWithdraw{Adapter: ad, then: func(adapters.Delivery) {
			ents, err := os.ReadDir(share)
			if err != nil {
				t.Error(err)
				return
			}
			for _, e := range ents {
				if !strings.HasPrefix(e.Name(), ".") { // the import moves the case folder away
					if err := os.Rename(filepath.Join(share, e.Name()), filepath.Join(imported, e.Name())); err != nil {
						t.Error(err)
					}
				}
			}
		}}
	})
	share = h.share
	b := h.e.b
	id := h.takenOverAtTheRename(t, "late-taken", nil)
	wantLateTold(t, b, 0, 1)
	s, evs := stillTheClerks(t, b, id)
	folder := lateFolderName(t, s, evs)
	if _, err := os.Stat(filepath.Join(imported, folder, transfer.PackageFile)); err != nil {
		t.Errorf("the office's copy of the late folder: %v", err)
	}
	ws := submission.OfType(evs, submission.EventWithdrawal)
	if len(ws) != 1 {
		t.Fatalf("withdrawal events %+v, want one", ws)
	}
	if out, ok := LateFolderWithdrawal(ws[0]); !ok || out != string(adapters.WithdrawTaken) || RemovedCopy(ws[0]) || !strings.Contains(ws[0].Detail, folder) {
		t.Errorf("withdrawal event %+v (%q %v), want the late folder %s taken by the import", ws[0], out, ok, folder)
	}
	l := h.logs.String()
	if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "the office's import may process it as well") ||
		!strings.Contains(l, id) || !strings.Contains(l, "withdrawal=taken") {
		t.Errorf("no WARN line naming the case and the import's take:\n%s", l)
	}
}

// unmountedAtTheFirstWithdrawal is holdTransferAtRename whose share is
// unmounted (put away to share+"-unmounted", its bare mount point left) just
// before the gateway's first withdrawal, and stays so until the test mounts it
// again.
func unmountedAtTheFirstWithdrawal(t *testing.T) heldTransfer {
	t.Helper()
	var share string
	var unmounted sync.Once
	h := holdTransferAtRenameWith(t, nil, func(ad *transfer.Adapter) adapters.Adapter {
		return &beforeWithdraw{Adapter: ad, then: func(adapters.Delivery) {
			unmounted.Do(func() {
				if err := os.Rename(share, share+"-unmounted"); err != nil {
					t.Error(err)
				}
				if err := os.Mkdir(share, 0o750); err != nil { // the bare mount point
					t.Error(err)
				}
			})
		}}
	})
	share = h.share
	return h
}

// TestLateCaseFolderOnAnUnreachableShareStays: the office's share is not
// mounted when the gateway withdraws the late case folder (its mount point
// is an empty folder). Nothing is written there, the folder stays in the
// share, the history says it could not be withdrawn, that the gateway asks
// again and that the office's IT can take it out first (not to erase the
// case, whose bytes the clerk needs), and the operator hears of it:
// withdrawn="false" and a WARN line with why. Once the share is back, the
// gateway's asking again removes the folder (owed.go).
func TestLateCaseFolderOnAnUnreachableShareStays(t *testing.T) {
	askOwedNow(t) // owedFirst is a minute on a gateway
	h := unmountedAtTheFirstWithdrawal(t)
	share := h.share
	b := h.e.b
	id := h.takenOverAtTheRename(t, "late-unreachable", nil)
	wantLateTold(t, b, 0, 1)
	if ents, _ := os.ReadDir(share); len(ents) != 0 {
		t.Errorf("the withdrawal wrote into the bare mount point: %v", ents)
	}
	s, evs := stillTheClerks(t, b, id)
	folder := lateFolderName(t, s, evs)
	if _, err := os.Stat(filepath.Join(share+"-unmounted", folder, transfer.PackageFile)); err != nil {
		t.Errorf("the late folder in the share: %v, want it still there", err)
	}
	ws := submission.OfType(evs, submission.EventWithdrawal)
	if len(ws) != 1 {
		t.Fatalf("withdrawal events %+v, want one", ws)
	}
	if out, ok := LateFolderWithdrawal(ws[0]); !ok || out != WithdrawUnreachable || ws[0].Note == "" ||
		!strings.Contains(ws[0].Detail, "the gateway asks again") || !strings.Contains(ws[0].Detail, "office's IT can take it out") ||
		strings.Contains(ws[0].Detail, "erase") {
		t.Errorf("withdrawal event %+v (%q %v), want the late folder unreachable, with why, asked again, for the office's IT", ws[0], out, ok)
	}
	l := h.logs.String()
	if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "the office's import may process it as well") ||
		!strings.Contains(l, id) || !strings.Contains(l, "withdrawal=unreachable") || !strings.Contains(l, " err=") {
		t.Errorf("no WARN line naming the case and why the folder could not be withdrawn:\n%s", l)
	}
	if !slices.Equal(s.WithdrawalsOwed, []string{channel.Transfer}) || b.owed.size() != 1 || owedGauge(t, b) != 1 {
		t.Fatalf("owed: record %v, gateway knows %d (gauge %v); want the transfer channel's withdrawal owed", s.WithdrawalsOwed, b.owed.size(), owedGauge(t, b))
	}

	// The share is mounted again; the case's turn has come.
	if err := os.Remove(share); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(share+"-unmounted", share); err != nil {
		t.Fatal(err)
	}
	b.retryOwed()
	evs = waitForEvents(t, b, id, func(evs []submission.Event) bool {
		return len(submission.OfType(evs, submission.EventWithdrawal)) == 2
	})
	ws = submission.OfType(evs, submission.EventWithdrawal)
	if out, ok := LateFolderWithdrawal(ws[1]); !ok || out != string(adapters.WithdrawRemoved) || ws[1].Actor != actorAskedAgain {
		t.Errorf("withdrawal asked again: %+v (%q %v), want the late folder removed by the gateway asking again", ws[1], out, ok)
	}
	if _, err := os.Stat(filepath.Join(share, folder)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the late folder in the share after the gateway asked again: %v, want it gone", err)
	}
	s, _ = stillTheClerks(t, b, id)
	if len(s.WithdrawalsOwed) != 0 {
		t.Errorf("record still owes %v", s.WithdrawalsOwed)
	}
	b.retryOwed() // finds the mark cleared and forgets the case
	if b.owed.size() != 0 || owedGauge(t, b) != 0 {
		t.Errorf("the gateway still knows %d owed (gauge %v), want none", b.owed.size(), owedGauge(t, b))
	}
	if got := counterOf(t, b.metrics.withdrawals, channel.Transfer, "late", string(adapters.WithdrawRemoved)); got != 1 {
		t.Errorf(`amtsbote_withdrawals_total{copy="late",outcome="removed"} = %v, want 1`, got)
	}
}

// TestLateCaseFolderOnAHungShare: the office's share hangs when the gateway
// withdraws the late case folder (a hard NFS mount: the withdrawal blocks in
// the kernel, deaf to its context). The dispatcher does not wait for it; the
// operator hears of the folder within the attempt timeout all the same
// (withdrawn="false", WARN), no further withdrawal goes to that share while
// it hangs, and once the share answers the withdrawal records what it did —
// the history, which the clerk's page reads, then says the folder was
// removed.
func TestLateCaseFolderOnAHungShare(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	h := holdTransferAtRenameWith(t, nil, func(ad *transfer.Adapter) adapters.Adapter {
		return &hungWithdraw{Adapter: ad, hang: func() { once.Do(func() { <-release }) }}
	})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	b := h.e.b
	id := h.takenOverAtTheRename(t, "late-hung", nil)
	wantLateTold(t, b, 0, 1)
	if l := h.logs.String(); !strings.Contains(l, "the office's import may process it as well") || !strings.Contains(l, "withdrawal=unreachable") || !strings.Contains(l, id) {
		t.Errorf("no WARN line naming the case whose folder's withdrawal hangs:\n%s", l)
	}
	s, _ := stillTheClerks(t, b, id)
	if !b.withdrawHung(askKey{s.OfficeID, channel.Transfer}) {
		t.Error("the hung withdrawal does not keep others from the share")
	}
	if ws := withdrawals(t, b, id); len(ws) != 0 {
		t.Errorf("withdrawal events while it hangs: %+v, want none yet (it records its outcome when it returns)", ws)
	}

	close(release)
	released = true
	eventually(t, "the hung withdrawal's outcome in the history", func() bool {
		ws := withdrawals(t, b, id)
		return len(ws) == 1 && RemovedCopy(ws[0])
	})
	if b.withdrawHung(askKey{s.OfficeID, channel.Transfer}) {
		t.Error("the share is still marked hung after its withdrawal returned")
	}
	for _, e := range (transferEnv{share: h.share}).caseFolders(t) {
		t.Errorf("left in the share: %s", e)
	}
}

// hungWithdraw is the transfer adapter on a share that hangs in the middle of
// a withdrawal: past its looks at the context (a stat or rename on a hard NFS
// mount blocks in the kernel), so that it goes on to the end once the share
// answers, however late.
type hungWithdraw struct {
	*transfer.Adapter
	hang func()
}

func (a *hungWithdraw) Withdraw(ctx context.Context, d adapters.Delivery) (adapters.Withdrawal, error) {
	a.hang()
	return a.Adapter.Withdraw(context.WithoutCancel(ctx), d)
}

// TestErasureAfterTheLateFolderWasWithdrawnClaimsNoRemoval: the gateway
// withdrew a late case folder at once; later the case is erased on request.
// The erasure owes the copy's withdrawal again (it cannot know from the
// record that it is done), asks, and the share answers removed before. The
// history then says that, in the erasure's event that settles the mark — not
// a second "was removed before the office's import took it" with the
// operator as its actor, a removal the erasure did not make.
func TestErasureAfterTheLateFolderWasWithdrawnClaimsNoRemoval(t *testing.T) {
	noEraseGrace(t)
	h := holdTransferAtRename(t)
	b := h.e.b
	id := h.takenOverAtTheRename(t, "late-withdrawn-then-erased", nil)
	wantLateTold(t, b, 1, 0)
	res, err := b.Erase(context.Background(), id, "m.meier (admin API)", "Löschantrag")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Withdrawals) != 1 || res.Withdrawals[0].Outcome != string(adapters.WithdrawnBefore) {
		t.Fatalf("erasure's withdrawals %+v, want the late folder removed before", res.Withdrawals)
	}
	s, err := b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.WithdrawalsOwed) != 0 {
		t.Errorf("the record still owes %v", s.WithdrawalsOwed)
	}
	ws := withdrawals(t, b, id)
	removals := 0
	for _, e := range ws {
		if RemovedCopy(e) {
			removals++
			if e.Actor != "gateway (after the takeover)" {
				t.Errorf("a removal by %q: %+v; the gateway's after the takeover is the only one", e.Actor, e)
			}
		}
	}
	if removals != 1 || len(ws) != 2 || !strings.Contains(ws[1].Detail, "removed before") || ws[1].Actor != "m.meier (admin API)" {
		t.Errorf("withdrawal events %+v, want the gateway's removal and the erasure's finding it removed before", ws)
	}
}

// importThenDown is the transfer adapter whose first withdrawal comes after
// the office's import moved the case folder away, and whose later ones find
// the share down.
type importThenDown struct {
	*transfer.Adapter
	share, imported string
	asked           atomic.Int32
}

func (a *importThenDown) Withdraw(ctx context.Context, d adapters.Delivery) (adapters.Withdrawal, error) {
	if a.asked.Add(1) > 1 {
		return adapters.Withdrawal{}, errors.New("transfer: stat share: host is down")
	}
	ents, err := os.ReadDir(a.share)
	if err != nil {
		return adapters.Withdrawal{}, err
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") { // the import moves the case folder away
			if err := os.Rename(filepath.Join(a.share, e.Name()), filepath.Join(a.imported, e.Name())); err != nil {
				return adapters.Withdrawal{}, err
			}
		}
	}
	return a.Adapter.Withdraw(ctx, d)
}

// TestRetentionLeavesASettledLateCaseFolder: the office's import took a late
// case folder before the gateway could withdraw it; the history says so, and
// nothing is owed. A year later the retention removes the case's bytes while
// the office's share happens to be down. The retention asks only about a late
// case folder whose withdrawal is not settled (one the share did not answer
// about, of a record without the owed mark): this one it leaves alone, and
// the case does not come to owe a withdrawal, nor its history to say the
// folder "could not be withdrawn", nor the alert to fire for two hours, over
// a folder the office had long since.
func TestRetentionLeavesASettledLateCaseFolder(t *testing.T) {
	var ad *importThenDown
	h := holdTransferAtRenameWith(t, nil, func(a *transfer.Adapter) adapters.Adapter {
		ad = &importThenDown{Adapter: a, imported: t.TempDir()}
		return ad
	})
	ad.share = h.share
	b := h.e.b
	id := h.takenOverAtTheRename(t, "late-taken-then-retained", nil)
	wantLateTold(t, b, 0, 1)
	s, _ := stillTheClerks(t, b, id)
	if len(s.WithdrawalsOwed) != 0 {
		t.Fatalf("the import's take left the record owing %v", s.WithdrawalsOwed)
	}
	year := 365 * 24 * time.Hour
	r := Retention{Unanswered: year, BlobGrace: time.Nanosecond, CompactMinFree: -1}
	if rep, err := b.GC(context.Background(), s.DeliveredAt.Add(year), r); err != nil || rep.BytesRemoved != 1 {
		t.Fatalf("retention a year after the delivery: %+v %v", rep, err)
	}
	b.withdrawing.Wait() // what the retention asked, if anything, has answered and recorded
	s, err := b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.WithdrawalsOwed) != 0 || b.owed.size() != 0 {
		t.Errorf("after the retention: record owes %v, gateway knows %d owed; want nothing owed", s.WithdrawalsOwed, b.owed.size())
	}
	for _, e := range withdrawals(t, b, id) {
		if strings.Contains(e.Detail, "could not be withdrawn") {
			t.Errorf("withdrawal event %+v after the retention, for a folder the import took", e)
		}
	}
}

// TestLateCaseFolderTakenOutByHandIsSaidInItsOwnWords: the gateway could not
// reach the share when a late case folder reached it; the office's IT took
// the folder out by hand meanwhile, and its ledger record with it. Asked
// again, the share holds nothing of the case: the mark is settled with an
// event in the late folder's words (LateFolderWithdrawal says none), which
// the clerk's page reads — not an erasure's "there is none" on a case nobody
// erased.
func TestLateCaseFolderTakenOutByHandIsSaidInItsOwnWords(t *testing.T) {
	askOwedNow(t)
	h := unmountedAtTheFirstWithdrawal(t)
	share := h.share
	b := h.e.b
	id := h.takenOverAtTheRename(t, "late-taken-out-by-hand", nil)
	wantLateTold(t, b, 0, 1)
	// The office's IT empties the share of the case: folder and ledger record.
	away := share + "-unmounted"
	ents, err := os.ReadDir(away)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != transfer.LedgerDir {
			if err := os.RemoveAll(filepath.Join(away, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	ledger, err := os.ReadDir(filepath.Join(away, transfer.LedgerDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ledger {
		if err := os.RemoveAll(filepath.Join(away, transfer.LedgerDir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(share); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, share); err != nil { // mounted again
		t.Fatal(err)
	}
	b.retryOwed()
	ws := withdrawals(t, b, id)
	if len(ws) != 2 {
		t.Fatalf("withdrawal events %+v, want the unreachable one and the answer asked again", ws)
	}
	if out, ok := LateFolderWithdrawal(ws[1]); !ok || out != string(adapters.WithdrawNothing) || RemovedCopy(ws[1]) || ws[1].Actor != actorAskedAgain {
		t.Errorf("withdrawal asked again: %+v (%q %v), want the late folder found gone, in its own words", ws[1], out, ok)
	}
	if s, _ := stillTheClerks(t, b, id); len(s.WithdrawalsOwed) != 0 {
		t.Errorf("the record still owes %v", s.WithdrawalsOwed)
	}
}
