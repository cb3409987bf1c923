package broker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/transfer"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// TestHandOverAfterTakeoverIsRecorded: a transfer attempt that a clerk's
// takeover did not stop — it ran on another gateway of a cluster, or the
// takeover came in the moment of the rename — puts its case folder into the
// office's share after the case became the clerk's. Its hand-over was stale
// and dropped without a word: the office's import took the application the
// clerk was processing, and nobody knew. Now it is recorded on the case (a
// handed_over event on channel transfer, after the takeover's delivered event,
// with the operator's note; HandedOverAfterTakeoverAt) while the case stays the clerk's,
// counted, and logged at WARN naming the case and the office; a second report
// of the same hand-over records nothing more.
func TestHandOverAfterTakeoverIsRecorded(t *testing.T) {
	h := holdTransferAtRename(t)
	e := h.e
	id := h.takenOverAtTheRename(t, "taken-while-renamed", nil)

	s, evs := stillTheClerks(t, e.b, id)
	last := evs[len(evs)-1]
	if last.Type == submission.EventWithdrawal { // the late folder's withdrawal, which may have come by now
		last = evs[len(evs)-2]
		evs = evs[:len(evs)-1]
	}
	if !s.HandedOverAfterTakeover() || !s.IsHandOverAfterTakeover(last) {
		t.Errorf("the record does not say the case folder reached the share: %v", s.HandedOverAfterTakeoverAt)
	}
	folder := lateFolderName(t, s, evs)
	if last.Type != submission.EventHandedOver || last.Channel != channel.Transfer || !strings.HasPrefix(folder, "20") ||
		!strings.Contains(last.Note, "taken over") {
		t.Errorf("last event %+v, want the hand-over on transfer naming the case folder, with the operator's note", last)
	}
	if evs[len(evs)-2].Type != submission.EventDelivered || evs[len(evs)-2].Channel != channel.Mailbox {
		t.Errorf("the event before the hand-over: %+v, want the takeover's delivery", evs[len(evs)-2])
	}
	// Counted and logged once its withdrawal answered (takeover_withdraw_test.go).
	if withdrawn, stayed := lateTold(t, e.b); withdrawn+stayed != 1 {
		t.Errorf("amtsbote_delivery_handed_over_after_takeover_total = %v, want 1", withdrawn+stayed)
	}
	if l := h.logs.String(); !strings.Contains(l, "after a clerk took the case over") || !strings.Contains(l, id) {
		t.Errorf("no line naming the case:\n%s", l)
	}
	evs, _ = e.b.Log(id)

	// The same outcome recorded again (a retry of the recording) adds nothing.
	gen := s.Generation
	if _, err := e.b.changeSub(id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.HandOver(now, gen, submission.Confirmation{Receiver: "transfer folder"})
	}); err != nil {
		t.Fatal(err)
	}
	s2, err := e.b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if evs2, _ := e.b.Log(id); len(evs2) != len(evs) || !s2.HandedOverAfterTakeoverAt.Equal(*s.HandedOverAfterTakeoverAt) {
		t.Errorf("a repeated hand-over changed the case: %d events (was %d), handed over %v (was %v)", len(evs2), len(evs), s2.HandedOverAfterTakeoverAt, s.HandedOverAfterTakeoverAt)
	}
}

// counterOf reads the counter of vec with the given label values.
func counterOf(t *testing.T, vec *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	if err := vec.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestUnrecordedHandOverFoundAfterTakeover: a transfer attempt renamed its
// case folder into the office's share and the gateway never learned of it —
// it crashed just after the rename (the ledger's pending record says a
// hand-over began, the temporary folder is gone: docs/transfer.md "How the
// gateway knows what it wrote"), or the final ledger record could not be
// written — so the case stayed queued, and a clerk took it over. The
// delivery's next attempt, which would have found the pending record and
// recorded the hand-over, never starts for a case that is delivered: its
// queue message was acknowledged unlooked, and the case folder lay in the
// share while the clerk's page said the Fachverfahren would not get it. Now
// the dispatcher asks the transfer folder about that delivery when the
// message of a case taken over from it comes back, and records what it finds
// as the late hand-over (event, HandedOverAfterTakeoverAt, metric, WARN).
func TestUnrecordedHandOverFoundAfterTakeover(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	if err := os.Mkdir(share, 0o750); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	ad, err := transfer.New(transfer.Options{Logger: log, NoWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ad.Close() })
	if err := ad.CheckTarget(adapters.Target{Channel: channel.Transfer, Endpoint: share}); err != nil {
		t.Fatal(err)
	}
	chans := transferTo(share)
	var e *env
	lost := &lostAnswer{Adapter: ad, then: func(d adapters.Delivery) {
		// What a crash after the rename leaves in the ledger: the pending
		// record, no temporary folder.
		asCrashedAfterRename(t, share, d)
		// The clerk's takeover, as the gateway that served her page (or this
		// one after its restart) commits it: the case is still queued.
		if _, err := e.b.db.Update(d.SubmissionID, func(cur *submission.Submission) ([]submission.Event, error) {
			return cur.Confirm(time.Now().UTC(), channel.Mailbox, submission.Confirmation{Receiver: "anna (Behördenpostfach)"})
		}); err != nil {
			t.Error(err)
		}
	}}
	e = startEnvWith(t, dir, testConfig, chans, nil, fakeSigner{}, log, lost)

	r, err := e.b.Receive(ctx, intake("lost-hand-over", channel.Transfer, channel.Mailbox))
	if err != nil {
		t.Fatal(err)
	}
	id := r.Submission.ID
	eventually(t, "the hand-over recorded after the takeover", func() bool {
		s, err := e.b.Submission(id)
		return err == nil && s.HandedOverAfterTakeover()
	})
	s, evs := stillTheClerks(t, e.b, id)
	if last := evs[len(evs)-1]; last.Type != submission.EventHandedOver || last.Channel != channel.Transfer || !s.IsHandOverAfterTakeover(last) {
		t.Errorf("last event %+v, want the late hand-over on transfer", last)
	}
	// The folder found is withdrawn as the attempt's own late hand-over is
	// (takeover_withdraw_test.go): counted as withdrawn, logged at INFO, in
	// the history, gone from the share.
	wantLateTold(t, e.b, 1, 0)
	if l := logs.String(); !strings.Contains(l, "level=INFO") || !strings.Contains(l, "was withdrawn before the office's import took it") || !strings.Contains(l, id) ||
		strings.Contains(l, "may process it as well") {
		t.Errorf("want an INFO line naming the case and its withdrawn folder, no WARN:\n%s", l)
	}
	evs, _ = e.b.Log(id)
	ws := submission.OfType(evs, submission.EventWithdrawal)
	if len(ws) != 1 || !RemovedCopy(ws[0]) {
		t.Errorf("withdrawal events %+v, want the late folder removed", ws)
	}
	ents, _ := os.ReadDir(share)
	for _, ent := range ents {
		if !strings.HasPrefix(ent.Name(), ".") {
			t.Errorf("left in the share: %s, want the found folder withdrawn", ent.Name())
		}
	}
}

// lostAnswer is the transfer adapter whose first successful attempt is lost
// to the gateway: then runs, and the attempt fails as the final ledger
// record's write does (the share full just then) or as a crash would end it.
type lostAnswer struct {
	*transfer.Adapter
	once sync.Once
	then func(adapters.Delivery)
}

func (a *lostAnswer) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, error) {
	c, err := a.Adapter.Deliver(ctx, d)
	lost := false
	if err == nil {
		a.once.Do(func() { lost = true })
	}
	if !lost {
		return c, err
	}
	a.then(d)
	return adapters.Confirmation{}, errors.New("transfer: write ledger: no space left on device")
}

// asCrashedAfterRename turns the ledger record of delivery d in share back
// into the pending record written just before the rename: the state a crash
// between the rename and the final record leaves.
func asCrashedAfterRename(t *testing.T, share string, d adapters.Delivery) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(share, transfer.LedgerDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		p := filepath.Join(share, transfer.LedgerDir, ent.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		if err := json.Unmarshal(b, &rec); err != nil || rec["delivery_id"] != d.ID {
			continue
		}
		rec["pending_case"], rec["case"] = rec["case"], ""
		delete(rec, "handovers")
		delete(rec, "handover_count")
		b, err = json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no ledger record of delivery %s", d.ID)
}

// TestLateHandOverTellsAfterALostAck: the late hand-over's commit lands but
// the store answers an error (a cluster's lost acknowledgement); the next try
// finds the hand-over recorded and records nothing. The operator was not told
// (no WARN, no count, no alert) though the case folder is in the share; now a
// try that recorded it counts for the whole recording.
func TestLateHandOverTellsAfterALostAck(t *testing.T) {
	lost := &lostAckOnLateHandOver{}
	h := holdTransferAtRenameOver(t, func(db *store.DB) store.Store {
		lost.Store = db
		return lost
	})
	e := h.e
	id := h.takenOverAtTheRename(t, "taken-and-ack-lost", nil)
	if !lost.lost.Load() {
		t.Fatal("the store never answered the late hand-over's commit with an error")
	}
	s, err := e.b.Submission(id)
	if err != nil || !s.HandedOverAfterTakeover() {
		t.Fatalf("the late hand-over is not recorded: %v, %v", s, err)
	}
	if withdrawn, stayed := lateTold(t, e.b); withdrawn+stayed != 1 {
		t.Errorf("amtsbote_delivery_handed_over_after_takeover_total = %v, want 1", withdrawn+stayed)
	}
	if l := h.logs.String(); !strings.Contains(l, "after a clerk took the case over") {
		t.Errorf("no WARN line for the late hand-over whose first commit answered an error:\n%s", l)
	}
}

// lostAckOnLateHandOver commits the first write that records a late
// hand-over, then answers an error, as a store whose acknowledgement was lost.
type lostAckOnLateHandOver struct {
	store.Store
	lost atomic.Bool
}

func (s *lostAckOnLateHandOver) Update(id string, fn func(*submission.Submission) ([]submission.Event, error)) (*submission.Submission, error) {
	var late bool
	sub, err := s.Store.Update(id, func(cur *submission.Submission) ([]submission.Event, error) {
		evs, err := fn(cur)
		late = len(evs) > 0 && cur.HandedOverAfterTakeover()
		return evs, err
	})
	if err == nil && late && s.lost.CompareAndSwap(false, true) {
		return nil, errors.New("store: the commit's acknowledgement was lost")
	}
	return sub, err
}

// takenOverAtTheRename receives a case for the transfer folder (message id
// msg), lets its attempt reach the rename, takes the case over as another
// gateway of the cluster commits it — the same transition on the shared
// store, and no stop reaches this attempt —, runs then (if not nil) on the
// case taken over, and lets the attempt finish.
func (h heldTransfer) takenOverAtTheRename(t *testing.T, msg string, then func(id string)) string {
	t.Helper()
	r, err := h.e.b.Receive(context.Background(), intake(msg, channel.Transfer, channel.Mailbox))
	if err != nil {
		t.Fatal(err)
	}
	id := r.Submission.ID
	<-h.held
	if _, err := h.e.b.db.Update(id, func(cur *submission.Submission) ([]submission.Event, error) {
		return cur.Confirm(time.Now().UTC(), channel.Mailbox, submission.Confirmation{Receiver: "anna (Behördenpostfach)"})
	}); err != nil {
		t.Fatal(err)
	}
	if then != nil {
		then(id)
	}
	close(h.release)
	eventually(t, "the attempt's end", func() bool {
		_, busy := h.e.b.inflight.Load(id)
		return !busy
	})
	return id
}

// stillTheClerks is the record and events of case id after a late hand-over,
// failing unless the case is still the clerk's: delivered by the mailbox,
// taken over from the transfer folder.
func stillTheClerks(t *testing.T, b *Broker, id string) (*submission.Submission, []submission.Event) {
	t.Helper()
	s, err := b.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != submission.StateDelivered || s.DeliveredVia != channel.Mailbox || s.TakenOverFrom != channel.Transfer {
		t.Errorf("after the late hand-over: %s via %q, taken over from %q; want the clerk's", s.State, s.DeliveredVia, s.TakenOverFrom)
	}
	evs, err := b.Log(id)
	if err != nil {
		t.Fatal(err)
	}
	return s, evs
}

// TestLateHandOverOfAnErasedCaseSaysSo: a case erased after the takeover
// whose case folder then reaches the share has its bytes there again; the
// log line says the case was erased, and so does the count (erased="true"),
// so the operator knows, if the folder is not withdrawn (withdrawn="false",
// the alert), that the erasure is not complete until it is gone too.
func TestLateHandOverOfAnErasedCaseSaysSo(t *testing.T) {
	h := holdTransferAtRename(t)
	h.takenOverAtTheRename(t, "taken-then-erased", func(id string) {
		if _, err := h.e.b.Erase(context.Background(), id, "operator", ""); err != nil {
			t.Fatal(err)
		}
	})
	eventually(t, "the late hand-over told", func() bool {
		return counterOf(t, h.e.b.metrics.lateHandOvers, channel.Transfer, "true", "true")+
			counterOf(t, h.e.b.metrics.lateHandOvers, channel.Transfer, "true", "false") > 0
	})
	line := ""
	for _, l := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(l, "after a clerk took the case over") {
			line = l
		}
	}
	if !strings.Contains(line, "erased=true") {
		t.Errorf("the late hand-over's WARN of an erased case does not say it was erased: %q", line)
	}
	if n := counterOf(t, h.e.b.metrics.lateHandOvers, channel.Transfer, "true", "true"); n != 1 {
		t.Errorf(`amtsbote_delivery_handed_over_after_takeover_total{erased="true",withdrawn="true"} = %v, want 1`, n)
	}
}
