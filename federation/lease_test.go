package federation

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/store/jsstore"
)

// TestAFailedTurnGoesToAnotherGateway: two gateways of a cluster share one
// JetStream store and take turns asking a peer. When the question of the
// turn's holder failed, the lease was kept, and no gateway asked in that
// interval. The holder gives it back, and the other gateway takes the
// interval and asks; one whose question was answered keeps it.
func TestAFailedTurnGoesToAnotherGateway(t *testing.T) {
	b, err := bus.Start(context.Background(), bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	open := func() *jsstore.Store {
		st, err := jsstore.Open(context.Background(), b.JS, jsstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	stA, stB := open(), open()

	w := newWorld(t)
	var down atomic.Bool
	var asked atomic.Int32
	peer := w.peerOfA
	peer.BaseURL = peerServer(t, w, &down, &asked).URL
	peer.PollInterval = 10 * time.Second // leased: a second or more
	id := forwardedTo(t, stA, peer.ID, 1)

	clock := time.Date(2026, 12, 6, 9, 0, 3, 0, time.UTC) // one interval for the whole test
	gateway := func(st *jsstore.Store) *Tracker {
		tr := &Tracker{Broker: broker.New(broker.Config{}, st, nil, nil, nil, nil, nil, nil), Peers: []config.Peer{peer},
			Client: &Client{Self: w.a.Name, Signer: w.a.Signer, Trust: w.trustA}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Lease: st.TryLease, now: func() time.Time { return clock }}
		tr.open = map[string]string{id: peer.ID}
		return tr
	}
	a, bb := gateway(stA), gateway(stB)
	ctx := context.Background()
	var lostA, lostB int

	down.Store(true)
	mineA, release := a.turn(ctx, peer, &lostA)
	if !mineA || release == nil {
		t.Fatalf("the first gateway of the interval did not get its turn (%v) or no lease to give back", mineA)
	}
	a.ask(ctx, peer, []string{id}, release)
	if n := asked.Load(); n != 1 {
		t.Fatalf("the peer got %d questions, want the first gateway's", n)
	}

	down.Store(false)
	mineB, release := bb.turn(ctx, peer, &lostB)
	if !mineB {
		t.Fatal("after the holder's question failed, the other gateway did not get the interval: nobody asks in it")
	}
	bb.ask(ctx, peer, []string{id}, release)
	if n := asked.Load(); n != 2 {
		t.Fatalf("the peer got %d questions, want a second one from the other gateway", n)
	}
	if mine, _ := a.turn(ctx, peer, &lostA); mine {
		t.Error("an interval whose question was answered was handed out again")
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("the peer got %d questions, want 2", n)
	}
}
