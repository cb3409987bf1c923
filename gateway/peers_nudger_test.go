package gateway

import (
	"context"
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
	n := startNudger(ctx, []string{"amtsbote-hangs", "amtsbote-by"}, func(ctx context.Context, peer string, refs []federation.Ref) {
		if peer == "amtsbote-hangs" {
			close(hung)
			<-ctx.Done() // hangs until the gateway stops
			return
		}
		told <- refs
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
