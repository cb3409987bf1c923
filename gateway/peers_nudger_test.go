package gateway

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/federation"
)

// TestNudgesToAHangingPeerHoldUpNoOther: a receiving gateway tells each peer
// that forwarded a package when it changed (a signed Aenderungsmeldung). The
// peers were told one after the other by one goroutine, each telling ended
// after 5 s: a peer whose endpoint hung held up the nudges of every other
// peer by that much at every round, and the changes behind them filled the
// one buffer and were dropped. Each peer is told on its own now.
func TestNudgesToAHangingPeerHoldUpNoOther(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hung := make(chan struct{})
	told := make(chan []federation.Ref, 10)
	n := startNudger(ctx, []string{"amtsbote-hangs", "amtsbote-by"}, nudgeRetry, func(ctx context.Context, peer string, refs []federation.Ref) error {
		if peer == "amtsbote-hangs" {
			close(hung)
			<-ctx.Done() // hangs until the gateway stops
			return ctx.Err()
		}
		told <- refs
		return nil
	})
	n.note("amtsbote-hangs", federation.Ref{Sender: "amt24", MessageID: "m-1"})
	<-hung
	n.note("amtsbote-by", federation.Ref{Sender: "amt24", MessageID: "m-2"})
	n.note("amtsbote-gone", federation.Ref{Sender: "amt24", MessageID: "m-3"}) // no such peer: nobody told
	select {
	case refs := <-told:
		if len(refs) != 1 || refs[0].MessageID != "m-2" {
			t.Errorf("amtsbote-by was told of %v, want m-2", refs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("amtsbote-by was not told while another peer hung")
	}
	cancel()
	n.wait()
}

// TestFailedNudgeIsTriedAgain: a telling the peer did not take (its endpoint
// down for a moment, a 429 while it answers a question of ours) was dropped,
// and the decided package's news waited for its turn at the peer, up to 12
// hours. Now it is tried again, with what was noted meanwhile, nudgeTries
// times in all; after that it is dropped, and the next change is told afresh.
func TestFailedNudgeIsTriedAgain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m1 := federation.Ref{Sender: "amt24", MessageID: "m-1"}
	m2 := federation.Ref{Sender: "amt24", MessageID: "m-2"}
	m3 := federation.Ref{Sender: "amt24", MessageID: "m-3"}
	calls := make(chan []federation.Ref)
	answers := make(chan error)
	n := startNudger(ctx, []string{"amtsbote-by"}, time.Millisecond, func(ctx context.Context, peer string, refs []federation.Ref) error {
		select {
		case calls <- append([]federation.Ref(nil), refs...):
		case <-ctx.Done(): // the test ended early
			return ctx.Err()
		}
		select {
		case err := <-answers:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	defer n.wait()
	defer cancel()
	down := errors.New("peer down")

	n.note("amtsbote-by", m1)
	if got := <-calls; !slices.Equal(got, []federation.Ref{m1}) {
		t.Fatalf("first telling: %v", got)
	}
	n.note("amtsbote-by", m2) // noted while the first telling is under way
	answers <- down
	if got := <-calls; !slices.Equal(got, []federation.Ref{m1, m2}) {
		t.Fatalf("second try: %v, want m-1 again and m-2 noted meanwhile", got)
	}
	answers <- nil // taken: nothing more to tell
	n.note("amtsbote-by", m3)
	if got := <-calls; !slices.Equal(got, []federation.Ref{m3}) {
		t.Fatalf("after a telling taken: %v, want m-3 alone", got)
	}
	for i := 1; i < nudgeTries; i++ {
		answers <- down
		if got := <-calls; !slices.Equal(got, []federation.Ref{m3}) {
			t.Fatalf("try %d: %v, want m-3 again", i+1, got)
		}
	}
	answers <- down // the last try: dropped
	n.note("amtsbote-by", m1)
	if got := <-calls; !slices.Equal(got, []federation.Ref{m1}) {
		t.Fatalf("after the last try: %v, want m-1 alone (m-3 dropped)", got)
	}
	answers <- nil
}
