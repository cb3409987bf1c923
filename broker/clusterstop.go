package broker

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
)

// A clerk's takeover stops the push attempt under way for the case on every
// gateway of a cluster, not only on the one that committed it. The attempt
// runs where the queue message went, which in a cluster is any gateway; the
// local cancel (stopAttempt) reached only this process, and a transfer
// attempt on another gateway renamed its case folder into the office's share
// after the takeover, so the office's import took the case the clerk was
// processing. After the takeover's commit the broker publishes the case's id
// on a core NATS subject of its queue namespace (stopSubject); every broker
// listens there from Start to Stop and cancels its own attempt for the id,
// with the same cause as the local stop, so the dispatcher ends it the same
// way (no attempt_failed, nothing for the breaker, the message back for a
// second: its next delivery finds the case delivered and acks it).
//
// Core NATS, at most once: the message is a best effort on top of the local
// stop, which stays. A message lost (a gateway cut off from NATS at the time)
// leaves that gateway's attempt to complete as before; a JetStream stream
// would deliver it after the attempt was long over. The brokers of every mode
// listen, a single node too: one subscription, one goroutine, and one publish
// per takeover cost nothing a clerk or the dispatcher notices (measured: see
// docs/architecture.md), and one code path for all modes is tested by every
// takeover test.

// stopSubjectRoot is the root of the takeover stop subjects. It lies outside
// every stream's subjects: under the work queue's root (deliver.>) the stream
// would store each message.
const stopSubjectRoot = "amtsbote.takeover"

// stopSubject is the subject of this broker's queue namespace: the brokers of
// the shared queue (amtsbote.takeover.deliver) hear each other, and a gateway
// with a queue of its own (Config.Queue, amtsbote.takeover.dlv-<queue>) hears
// only itself, as no other gateway runs its attempts.
func (b *Broker) stopSubject() string { return stopSubjectRoot + "." + b.root }

// stopMsg is a takeover stop message: the case's id and the sending broker,
// nothing of the case or the clerk (no office, no name).
type stopMsg struct {
	ID string `json:"id"`
	// From is the sending broker's instance id: it hears its own message and
	// has stopped its own attempt already (a second stop would do nothing, but
	// would be logged and counted as one from elsewhere).
	From string `json:"from,omitempty"`
}

// maxStopMsg bounds a stop message a broker decodes: an id and an instance id
// in JSON are under 100 bytes.
const maxStopMsg = 512

// stopWarnEvery limits the log lines of failed or ignored stop messages: while
// NATS is away every takeover fails to send one, and amtsbote_bus_connected
// says so all the time.
const stopWarnEvery = time.Minute

// WellFormedID says whether id is a submission id as the broker makes them
// (newID): a UUID in its canonical form. Only that is looked up.
func WellFormedID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

// stopEverywhere stops the attempt for the case id on this node and tells the
// other brokers of the queue namespace to stop theirs, after a clerk's
// takeover of the case was committed.
//
// The message goes out on a goroutine of its own: nats.go buffers a publish
// while the connection is away, but writes through when its buffer is full (a
// stalled connection), for up to its write deadline of a minute, and the
// clerk's page must not wait for that. Its failure is logged and counted,
// never the takeover's.
func (b *Broker) stopEverywhere(id string) {
	b.stopAttempt(id)
	if b.js == nil { // a broker built without a bus (tests of the store alone)
		return
	}
	go b.announceStop(id)
}

// announceStop publishes the stop message for id.
func (b *Broker) announceStop(id string) {
	body, err := json.Marshal(stopMsg{ID: id, From: b.instance})
	if err == nil {
		err = b.js.Conn().Publish(b.stopSubject(), body)
	}
	if err != nil {
		b.metrics.stopMessages.WithLabelValues("unsent").Inc()
		if b.stopWarn.Allow(time.Now()) {
			b.log.Warn("takeover: the other gateways could not be told to stop their attempt for the case; one under way on another gateway completes",
				"submission", id, "err", fmt.Errorf("broker: publish takeover stop: %w", err))
		}
		return
	}
	b.metrics.stopMessages.WithLabelValues("sent").Inc()
}

// heardStop handles a stop message: it stops the attempt for its id on this
// node, if one runs, as a local takeover does. Nothing else is taken from the
// message, and anything that is not a stop message of a well-formed id does
// nothing; neither does an id no attempt here runs for. The payload is not
// logged: it may be anything.
func (b *Broker) heardStop(m *nats.Msg) {
	var sm stopMsg
	if len(m.Data) > maxStopMsg || json.Unmarshal(m.Data, &sm) != nil || !WellFormedID(sm.ID) {
		b.metrics.stopMessages.WithLabelValues("ignored").Inc()
		if b.badStopWarn.Allow(time.Now()) {
			b.log.Warn("takeover: a stop message that names no submission id was ignored", "subject", m.Subject, "bytes", len(m.Data))
		}
		return
	}
	if sm.From == b.instance {
		return // ours: stopEverywhere stopped the attempt here already
	}
	b.metrics.stopMessages.WithLabelValues("received").Inc()
	if b.stopAttempt(sm.ID) {
		b.log.Info("takeover: a clerk took the case over on another gateway; the attempt under way here stops", "submission", sm.ID)
	}
}

// listenForStops subscribes to the stop messages of the queue namespace.
func (b *Broker) listenForStops() error {
	sub, err := b.js.Conn().Subscribe(b.stopSubject(), b.heardStop)
	if err != nil {
		return fmt.Errorf("broker: subscribe to takeover stops: %w", err)
	}
	b.stopSub = sub
	return nil
}

// stopListening ends the subscription of listenForStops, if there is one.
func (b *Broker) stopListening() {
	if b.stopSub == nil {
		return
	}
	// An error says the connection is closed: it holds no subscription then.
	_ = b.stopSub.Unsubscribe()
	b.stopSub = nil
}
