package broker

import (
	"context"
	"errors"
	"testing"

	"github.com/amtsbote/amtsbote/submission"
)

// TestQueueMessageForADeliveredCaseMakesNoAttempt: a queue message of the
// current generation can outlive its need. Here an attempt hangs, the office
// fetches the package by API meanwhile (delivered, same generation), and the
// attempt then fails transiently, which sends the message back. When it comes
// again the case needs no delivery: it is acked without an attempt. Made anyway,
// the office got the package a second time, and its system a duplicate to sort
// out.
func TestQueueMessageForADeliveredCaseMakesNoAttempt(t *testing.T) {
	ad := &scripted{channel: "primary", block: make(chan struct{}), answers: []error{errors.New("503 from receiver")}}
	e := start(t, t.TempDir(), ad)
	ctx := context.Background()
	// The attempt is under way (its adapter call blocks) before the office fetches.
	id := e.receiveUnderWay(t, "fetched-while-pushed")
	_, rc, err := e.b.OpenPackage(ctx, "office-a", id, Pickup{Channel: "api", Receiver: "office-a (pull API)"})
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	waitState(t, e.b, id, submission.StateDelivered)
	close(ad.block) // the hung attempt fails transiently: its message goes back
	stream, err := e.bus.JS.Stream(ctx, e.b.stream)
	if err != nil {
		t.Fatal(err)
	}
	// The message comes again and is acked (a work queue keeps it until then).
	eventually(t, "the queue message acked", func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	if n := len(ad.deliveries()); n != 1 {
		t.Fatalf("the channel was called %d times for a case its office had fetched; want 1", n)
	}
	s, err := e.b.Submission(id)
	if err != nil || s.State != submission.StateDelivered || s.DeliveredVia != "api" {
		t.Fatalf("case %+v %v", s, err)
	}
}
