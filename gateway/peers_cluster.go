package gateway

import (
	"github.com/nats-io/nats.go"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/submission"
)

// forwardedSubject is the core NATS subject on which a gateway says that it
// forwarded a package to a peer gateway (the message: the submission's id).
//
// Each gateway's tracker asks the peers about the packages it forwarded itself
// (the broker's events are its own) and those it found in the store at its
// start. In a cluster the forwarding runs on whichever gateway took the queue
// message, so while that gateway was down nobody asked about its packages, and
// the portal did not learn the office's decision until one of the others
// restarted. Every gateway listens here and follows what another forwarded
// (Tracker.Adopt: one record read per message). At most once, as the takeover
// stop messages (broker/clusterstop.go): a message lost is made up for by the
// peer's Aenderungsmeldung, which names the package to whichever gateway it
// reaches (Tracker.Changed), and by any gateway's restart. A single node hears
// its own messages and already follows those packages. Gateways with stores of
// their own (bbolt) neither publish nor listen.
const forwardedSubject = "amtsbote.federation.forwarded"

// forwardingsShared: shareForwardings publishes. Off only for a test that shows
// the Aenderungsmeldung's part alone.
var forwardingsShared = true

// shareForwardings publishes the forwardings of this gateway's broker and
// hands those of the others to tracker, until the returned stop. Only where the
// gateways share a store (store.backend jetstream): a gateway with a store of
// its own found none of the others' ids, and read its store for each of their
// forwardings on a shared NATS server, whose permissions, set for its own
// queue's subjects, refused the publish (an error in the log at each).
func (g *Gateway) shareForwardings(tracker *federation.Tracker) (stop func(), err error) {
	if g.Config.Store.Backend != config.StoreJetStream {
		return func() {}, nil
	}
	nc := g.bus.NC
	sub, err := nc.Subscribe(forwardedSubject, func(m *nats.Msg) {
		// Only what a broker makes as an id is looked up.
		if id := string(m.Data); broker.WellFormedID(id) {
			tracker.Adopt(id)
		}
	})
	if err != nil {
		return nil, err
	}
	ids := make(chan string, 256)
	g.Broker.Observe(func(s *submission.Submission, e submission.Event) {
		if e.Type != submission.EventForwarded || !forwardingsShared {
			return
		}
		select {
		case ids <- s.ID:
		default: // at most once anyway
		}
	})
	quit, done := make(chan struct{}), make(chan struct{})
	// A publish writes through when nats.go's buffer is full (a stalled
	// connection), for up to its write deadline: never on the broker's goroutine.
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case id := <-ids:
				if err := nc.Publish(forwardedSubject, []byte(id)); err != nil {
					g.Log.Debug("telling the other gateways of a forwarding", "submission", id, "err", err)
				}
			}
		}
	}()
	return func() {
		close(quit)
		<-done
		_ = sub.Unsubscribe()
	}, nil
}
