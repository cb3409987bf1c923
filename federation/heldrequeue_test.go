package federation

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// failingUpdates is a store whose writes of records fail while fail is set, as
// a cluster's store does without quorum.
type failingUpdates struct {
	store.Store
	fail atomic.Bool
}

func (f *failingUpdates) Update(id string, fn func(*submission.Submission) ([]submission.Event, error)) (*submission.Submission, error) {
	if f.fail.Load() {
		return nil, fmt.Errorf("jsstore: write %s: %w", id, store.ErrUnavailable)
	}
	return f.Store.Update(id, fn)
}

// TestHeldPackageWhoseRequeueFailedIsRequeuedAtTheNextLook: a held package the
// peer has is forwarded again once per run (heldThere). When that requeue was
// not even written (the store did not answer), the package counted as
// requeued all the same: at the next look it was taken for one whose repeat
// had failed too, said so at WARN and left held for the operator for good,
// though it was never forwarded again.
func TestHeldPackageWhoseRequeueFailedIsRequeuedAtTheNextLook(t *testing.T) {
	st := &failingUpdates{Store: storetest.OpenBolt(t)}
	id := "01900000-0003-7000-8000-000000000001"
	s, evs := submission.New(submission.Params{ID: id, DeliveryID: "d" + id, MessageID: "o-1", Sender: "amt24", SignerID: "amt24",
		LeikaKey: "99000000000000", ServiceName: "Test", Place: "X", AreaName: "X", OfficeID: "peer-09", OfficeName: "peer-09",
		PackageSHA256: fmt.Sprintf("%064x", 1), PackageSize: 10}, time.Now().UTC()) // no channel: held
	if _, _, _, err := st.Create(context.Background(), s, evs, broker.ReceiptIntake, []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	b := broker.New(broker.Config{Plan: func(string) []submission.Target { return []submission.Target{{Channel: "peer"}} }}, st, nil, nil, nil, nil, nil, nil)
	tr := &Tracker{Client: &Client{Trust: &Trust{self: "sh"}}, Broker: b, Peers: []config.Peer{{ID: "by"}}, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	held, err := st.Get(id)
	if err != nil || held.State != submission.StateHeld {
		t.Fatalf("the package is %v (%v), want held", held, err)
	}

	st.fail.Store(true)
	tr.heldThere(tr.Peers[0], held, "delivered") // the requeue is not written
	st.fail.Store(false)
	if cur, _ := st.Get(id); cur.State != submission.StateHeld {
		t.Fatalf("after a requeue the store did not write, the package is %s", cur.State)
	}
	tr.heldThere(tr.Peers[0], held, "delivered") // the next look
	if cur, _ := st.Get(id); cur.State != submission.StateQueued {
		t.Fatalf("at the next look the package is %s, want queued (forwarded again): its first requeue was never written\n%s", cur.State, logs.String())
	}
}
