// Package broker is the core of the gateway: it accepts verified and routed packages
// durably, moves their delivery through JetStream, calls the delivery adapters, decides
// retries, fallbacks and dead ends, and records every step in the event log. It knows
// no HTTP and no XML; intake (verification, routing) happens before Accept.
//
// Durability: Accept returns only after the package bytes and the record are fsynced
// (blob files, then one bbolt transaction). The JetStream queue is a work list derived
// from the store's outbox; on Start, and every Config.QueueCheckEvery, every outbox
// entry the queue holds no message for is published again (queuecheck.go; JetStream
// dedups by Nats-Msg-Id within its window, and the dispatcher ignores stale messages),
// so a crash at any point loses nothing and at worst repeats a delivery with the same
// delivery id. A full queue refuses new messages rather than dropping old ones; the
// outbox keeps what did not fit.
//
// Retries belong here, not in adapters: an adapter makes one attempt and says whether
// its failure is permanent; the broker schedules the next attempt by its schedule
// (Config.Schedule, or exponential backoff; JetStream NakWithDelay), never earlier
// than the receiver's Retry-After, and after the last attempt or a permanent failure
// moves to the office's next channel. A circuit breaker per endpoint (office +
// channel) pauses attempts to an endpoint that keeps failing, and an endpoint that
// answered 410 Gone is disabled until an operator enables it (breaker.go). With no channel left the package is held for the
// office to fetch by API: nothing disappears.
package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/internal/keylock"
	"github.com/amtsbote/amtsbote/internal/repeatlimit"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// Sentinel errors at the package boundary.
var (
	ErrNotFound  = store.ErrNotFound
	ErrConflict  = store.ErrConflict
	ErrForbidden = errors.New("not addressed to this office")
	ErrStopped   = errors.New("broker stopped")
	// ErrUnavailable: the store cannot take the package, or a change of a
	// submission, now (a full disk, a write failure). Nothing was accepted or
	// recorded; the caller should retry later.
	ErrUnavailable = errors.New("storage cannot take writes now")
	// ErrUnreadable: stored bytes (a package, an attachment) cannot be read now (a
	// cluster that lost its quorum, a blob whose chunks are missing).
	ErrUnreadable = errors.New("stored bytes cannot be read now")
	// ErrTooLarge: stored bytes larger than the caller said it would read whole
	// (ReadPackage); nothing was read or recorded.
	ErrTooLarge = errors.New("stored bytes larger than the caller reads whole")
	// ErrStoreUnavailable: the store cannot be reached now (store.ErrUnavailable:
	// cluster mode without quorum or connection); a read or change may be tried
	// again later.
	ErrStoreUnavailable = store.ErrUnavailable
	// ErrGatewayCertificate: the gateway's signing certificate is outside its
	// validity now (GatewaySigner.Valid), so a receipt signed with it verifies
	// nowhere; nothing was accepted, the caller should retry once the operator
	// installed a valid one.
	ErrGatewayCertificate = errors.New("the gateway certificate is not valid now")
)

// Stream and consumer names in JetStream.
const (
	StreamName   = "DELIVER"
	ConsumerName = "dispatch"
	subjectRoot  = "deliver"
)

// Config tunes delivery. Zero values take the defaults noted.
type Config struct {
	GatewayID string // who signs receipts; default "amtsbote"
	Workers   int    // concurrent delivery attempts; default 8
	// PerOffice caps the concurrent attempts to one office, so an office whose endpoint
	// hangs cannot take every worker; default Workers/4, at least 1.
	PerOffice int
	// OfficeParallel sets the cap of single offices (by office id) apart from
	// PerOffice: more for a Fachverfahren that takes many deliveries at once, fewer
	// for one that does not. At most Workers.
	OfficeParallel map[string]int
	// Line names the line an office's attempts wait in and the cap they share
	// (PerOffice, or OfficeParallel of the line's name): offices with one
	// endpoint behind them share one, as the peer offices ("peer-<Land>") of a
	// peer gateway that serves several Länder do. Each had a cap of its own, so
	// a peer that hangs took a cap per Land it serves — four Länder, every
	// worker of the default 8 with per_office 2 — and this gateway's own offices
	// waited. nil: every office its own line.
	Line func(office string) string
	// Schedule is the delay before each retry on one channel (±10 % jitter): after
	// len(Schedule)+1 attempts the package moves to the office's next channel. The
	// gateway's default is StandardSchedule (about three days). nil: exponential
	// backoff (BackoffBase doubling up to BackoffMax, MaxAttempts attempts), which
	// tests and the demo use to retry fast.
	Schedule    []time.Duration
	MaxAttempts int           // exponential only: attempts per channel before falling back; default 8
	BackoffBase time.Duration // exponential only: first retry delay; default 2s
	BackoffMax  time.Duration // exponential only: cap of the delay; default 5m
	// A receiver's Retry-After (429, 503) is honoured either way: no retry comes
	// earlier than it asked, up to 24 hours.

	// BreakerThreshold is the number of consecutive transient failures of one
	// endpoint (office + channel) that open its circuit breaker: no attempts go
	// there until BreakerCooldown is over, then one probe at a time, and a success
	// closes it. Waiting packages keep their attempt counts. Default 5; negative: off.
	BreakerThreshold int
	BreakerCooldown  time.Duration // default 1m
	// EndpointsFile persists the endpoints disabled after a 410 Gone, so a restart
	// keeps them disabled (a JSON file, written atomically). Empty: memory only.
	EndpointsFile string
	// SharedEndpoints keeps them in the JetStream bucket EndpointsBucket instead,
	// shared by every gateway on the same JetStream store (cluster mode): a 410
	// seen by one disables the channel on all, an operator's enable at one enables
	// it on all. EndpointsFile is then not read.
	SharedEndpoints bool
	// TimeScale multiplies every delay the broker waits on its own account: retry
	// schedule, Retry-After, breaker cool-down (tests compress a day into seconds).
	// Events still state the nominal delay. Default 1.
	TimeScale float64
	// Registerer receives the endpoint gauge (amtsbote_endpoint_breaker_state);
	// nil: not registered.
	Registerer prometheus.Registerer

	AttemptTimeout time.Duration // one adapter call; default 30s
	// TransferMinRate lengthens an attempt by the bytes it carries (attemptTimeout);
	// default 1 MiB/s.
	TransferMinRate int64
	StreamMaxBytes  int64 // JetStream stream size cap; default 256 MiB
	// ConfirmEvery is how often channels that confirm later (adapters.Confirmer) are
	// asked about handed-over packages when they signal nothing; default 5s.
	ConfirmEvery time.Duration
	Replicas     int // JetStream replicas (cluster); default 1
	// ExclusiveConsumer says this process is the only user of the dispatch consumer
	// (the embedded server). Start then recreates the consumer, so messages a killed
	// predecessor had in flight are delivered at once instead of after AckWait.
	ExclusiveConsumer bool
	// QueueInMemory keeps the work queue in memory (the embedded single node): it is
	// derived from the store's outbox and re-published at every start, so writing it
	// to disk as well bought nothing but flushes — and a disk that is full stopped
	// delivery of what was already accepted.
	QueueInMemory bool
	// Queue, when set, gives this process a work queue of its own (stream
	// DELIVER_<Queue>, subjects dlv-<Queue>.>): for gateways that keep their truth in
	// a local store but share a NATS server, so one never takes the other's queue
	// messages for packages it does not hold. Empty: the shared queue (embedded
	// server, or the replicated store where every gateway holds every package).
	Queue string
	// Retention is applied every RetentionEvery (0: not in the background; `amtsbote
	// gc` runs it once).
	Retention      Retention
	RetentionEvery time.Duration
	// QueueCheckEvery is how often the outbox is compared with the queue: an accepted
	// package the queue holds no message for is published again (queuecheck.go).
	// Default 2m; negative: never.
	QueueCheckEvery time.Duration
	// Plan, when set, is the office's channel plan as intake would make it now
	// (the directory's channels, limited to those configured, the mailbox last);
	// nil when the office is not in the directory. A replay (Redeliver) takes it:
	// the plan fixed at intake held a package again whose office the operator had
	// just given the channel it lacked.
	Plan func(officeID string) []submission.Target
}

func (c *Config) defaults() {
	if c.GatewayID == "" {
		c.GatewayID = "amtsbote"
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.PerOffice <= 0 {
		c.PerOffice = max(1, c.Workers/4)
	}
	// Lines are keyed by the office's subject token.
	parallel := make(map[string]int, len(c.OfficeParallel))
	for office, n := range c.OfficeParallel {
		if n > 0 {
			parallel[token(office)] = min(n, c.Workers)
		}
	}
	c.OfficeParallel = parallel
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 8
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 2 * time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 5 * time.Minute
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 30 * time.Second
	}
	if c.TransferMinRate <= 0 {
		c.TransferMinRate = 1 << 20
	}
	if c.StreamMaxBytes <= 0 {
		c.StreamMaxBytes = 256 << 20
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.ConfirmEvery <= 0 {
		c.ConfirmEvery = 5 * time.Second
	}
	if c.BreakerThreshold == 0 {
		c.BreakerThreshold = 5
	}
	if c.BreakerCooldown <= 0 {
		c.BreakerCooldown = time.Minute
	}
	if c.TimeScale <= 0 {
		c.TimeScale = 1
	}
	if c.QueueCheckEvery == 0 {
		c.QueueCheckEvery = 2 * time.Minute
	}
}

// Channels resolves one channel of an office to what an attempt needs: endpoint,
// secret and parameters, read together from the configuration at the time of the
// attempt (never frozen at intake), so a rotated endpoint and its new secret always
// travel together. ok=false: the office has no such channel configured (any more).
type Channels interface {
	Target(officeID, channel string) (t adapters.Target, ok bool)
}

// ChannelsFunc adapts a function to Channels.
type ChannelsFunc func(officeID, channel string) (adapters.Target, bool)

// Target implements Channels.
func (f ChannelsFunc) Target(o, c string) (adapters.Target, bool) { return f(o, c) }

// ReceiptSigner signs the receipts the broker issues.
type ReceiptSigner interface {
	SignIntake(s *submission.Submission) ([]byte, error)
	SignDelivery(s *submission.Submission, channel string, conf submission.Confirmation) ([]byte, error)
}

// Receipt kinds as stored.
const (
	ReceiptIntake   = "Eingangsbestaetigung"
	ReceiptDelivery = "Zustellbestaetigung"
)

// Broker is safe for concurrent use. Create with New, then Start; Stop drains.
type Broker struct {
	cfg      Config
	stream   string // the JetStream stream of the work queue
	root     string // its subject root
	db       store.Store
	js       jetstream.JetStream
	adapters *adapters.Registry
	channels Channels
	signer   ReceiptSigner
	log      *slog.Logger
	metrics  *Metrics

	ctx     context.Context
	cancel  context.CancelFunc
	consume jetstream.ConsumeContext
	pending chan outboxEntry
	rescan  atomic.Bool
	// inflight holds, per submission id, the attempt under way on this node
	// (from the queue message's start to its outcome recorded): a second
	// message for it waits, and a clerk's takeover cancels it (stopAttempt).
	// The value is the attempt's context.CancelCauseFunc.
	inflight sync.Map
	// replyKeys makes Reply's look for a reply's message id and its store one
	// step on this node, per case and id (Reply says why).
	replyKeys keylock.Locks
	// instance names this broker in the takeover stop messages it sends
	// (clusterstop.go), stopSub is its subscription to those of its queue
	// namespace from Start to Stop, and stopWarn and badStopWarn limit the log
	// lines of stop messages not sent and not understood.
	instance    string
	stopSub     *nats.Subscription
	stopWarn    repeatlimit.Limit
	badStopWarn repeatlimit.Limit

	attempts sync.WaitGroup
	// admit orders attempts.Add (handle) before attempts.Wait (Stop): JetStream's
	// consume Stop is asynchronous, so the callback can still run while Stop waits.
	admit    sync.RWMutex
	draining bool
	loops    sync.WaitGroup
	sem      chan struct{}
	// recording bounds the successful attempts whose outcome is being recorded
	// after their office slot was given on (dispatch.go handle).
	recording chan struct{}
	stopped   atomic.Bool

	officeMu sync.Mutex
	lines    map[string]*officeLine // per office: running attempts and waiting messages

	obsMu     sync.RWMutex
	observers []func(*submission.Submission, submission.Event)

	ends *endpoints // circuit breakers and disabled endpoints (breaker.go)

	// asking holds the office and channel pairs (askKey) whose confirmation
	// question has not returned (confirm.go checkHandedOver).
	asking sync.Map
	// troubleLogs limits, per office and channel (askKey) whose confirmation
	// questions failed or hung in the last round, its log line (confirm.go
	// reportTrouble).
	troubleLogs repeatlimit.Keyed[askKey]
	// askFrom holds, per office and channel (askKey) whose last confirmation
	// round passed over some of its packages, the id the next round starts at
	// (confirm.go checkHandedOver), so that slowly failing cases early in id
	// order do not use up the office's time every round.
	askFrom sync.Map
	// withdrawnTold holds the office and channel pairs (askKey) whose forwarded
	// packages were said, once, to wait on a channel no longer configured.
	withdrawnTold sync.Map
	// hungWithdrawals counts, per office and channel (askKey), the
	// withdrawals of an erased case's copy that have run longer than the
	// attempt timeout and not returned (withdraw.go watchWithdrawal).
	withdrawMu      sync.Mutex
	hungWithdrawals map[askKey]int
	// withdrawing counts the withdrawals under way, for Stop
	// (awaitWithdrawals), which sets withdrawClosed (under withdrawMu) before
	// it waits: no withdrawal starts after that.
	withdrawing    sync.WaitGroup
	withdrawClosed bool
	// owed holds the cases this gateway knows to owe a withdrawal (owed.go).
	owed owedSet

	// unqueued holds, per outbox entry the last queue check found without a
	// queue message, the generation it found (queuecheck.go publishMissing).
	unqueuedMu sync.Mutex
	unqueued   map[string]int
	// stepped holds, per submission, a retry whose NextAttemptAt lay beyond its
	// schedule (a clock step; dispatch.go retryWait).
	stepped sync.Map

	// readClock reads the wall clock and the monotonic one together; the
	// background retention checks the one against the other (clockGuard).
	// Tests set it.
	readClock func() clockReading
	clock     clockGuard
}

// New builds a broker. Nothing runs until Start.
func New(cfg Config, db store.Store, js jetstream.JetStream, reg *adapters.Registry, channels Channels, signer ReceiptSigner, log *slog.Logger, m *Metrics) *Broker {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	if channels == nil {
		channels = ChannelsFunc(func(string, string) (adapters.Target, bool) { return adapters.Target{}, false })
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	stream, root := StreamName, subjectRoot
	if cfg.Queue != "" {
		stream, root = StreamName+"_"+token(cfg.Queue), "dlv-"+token(cfg.Queue)
	}
	ends := newEndpoints(cfg.BreakerThreshold, time.Duration(float64(cfg.BreakerCooldown)*cfg.TimeScale), cfg.EndpointsFile, cfg.Registerer)
	ends.probeWait = cfg.AttemptTimeout
	began := time.Now()
	return &Broker{
		readClock: func() clockReading {
			n := time.Now()
			return clockReading{wall: n.UTC(), mono: n.Sub(began)} // UTC drops the monotonic reading, Sub uses it
		},
		stream: stream, root: root,
		cfg: cfg, db: db, js: js, adapters: reg, channels: channels, signer: signer, log: log, metrics: m,
		pending:     make(chan outboxEntry, 4096),
		lines:       map[string]*officeLine{},
		sem:         make(chan struct{}, cfg.Workers),
		recording:   make(chan struct{}, 4*cfg.Workers),
		ends:        ends,
		troubleLogs: repeatlimit.Keyed[askKey]{Every: troubleLogEvery},
		instance:    newID(),
		stopWarn:    repeatlimit.Limit{Every: stopWarnEvery},
		badStopWarn: repeatlimit.Limit{Every: stopWarnEvery},
	}
}

// Observe registers fn to be called after every committed event (for progress output,
// metrics, portal callbacks). fn runs on the broker's goroutines and must not block.
func (b *Broker) Observe(fn func(*submission.Submission, submission.Event)) {
	b.obsMu.Lock()
	b.observers = append(b.observers, fn)
	b.obsMu.Unlock()
}

func (b *Broker) emit(s *submission.Submission, evs []submission.Event) {
	b.obsMu.RLock()
	obs := b.observers
	b.obsMu.RUnlock()
	for _, e := range evs {
		for _, fn := range obs {
			fn(s, e)
		}
	}
}

// Start creates the stream and consumer if needed, re-publishes the outbox and starts
// the relay and the dispatcher.
func (b *Broker) Start(ctx context.Context) error {
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if err := b.start(ctx); err != nil {
		b.cancel() // ends what start began (the endpoints' watch)
		return err
	}
	return nil
}

func (b *Broker) start(ctx context.Context) error {
	if b.cfg.SharedEndpoints {
		book, err := openKVBook(ctx, b.js, b.cfg.Replicas)
		if err != nil {
			return err
		}
		b.ends.book = book
	}
	if err := b.ends.load(b.ctx); err != nil {
		return err
	}
	sc := jetstream.StreamConfig{
		Name:       b.stream,
		Subjects:   []string{b.root + ".>"},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		MaxBytes:   b.cfg.StreamMaxBytes,
		MaxMsgSize: 4 << 10, // ids only: a payload here is a bug
		Duplicates: 2 * time.Minute,
		Replicas:   b.cfg.Replicas,
		// A full queue refuses the next message; the package stays in the outbox and
		// the relay or the queue check publishes it when there is room. The default,
		// DiscardOld, dropped the oldest waiting messages without a word.
		Discard: jetstream.DiscardNew,
	}
	if b.cfg.QueueInMemory {
		sc.Storage, sc.MaxBytes = jetstream.MemoryStorage, min(sc.MaxBytes, memoryQueueBytes)
		// A stream kept on disk by an earlier version cannot change its storage; it is
		// only a copy of the outbox, so it is dropped and rebuilt from there.
		if st, err := b.js.Stream(ctx, b.stream); err == nil && st.CachedInfo().Config.Storage != jetstream.MemoryStorage {
			if err := b.js.DeleteStream(ctx, b.stream); err != nil {
				return fmt.Errorf("broker: drop the on-disk queue: %w", err)
			}
		}
	}
	if err := bus.Settle(ctx, func(c context.Context) error { _, err := b.js.CreateOrUpdateStream(c, sc); return err }); err != nil {
		return fmt.Errorf("broker: stream: %w", err)
	}
	if b.cfg.ExclusiveConsumer {
		if err := b.js.DeleteConsumer(ctx, b.stream, ConsumerName); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("broker: reset consumer: %w", err)
		}
	}
	cc := jetstream.ConsumerConfig{
		Durable:   ConsumerName,
		AckPolicy: jetstream.AckExplicitPolicy,
		// Short, kept alive by InProgress while an attempt runs: after a crash of one
		// cluster member its messages return to the others within AckWait.
		AckWait:    ackWait,
		MaxDeliver: -1, // the broker counts attempts in bbolt and decides itself
		// A message Nak'ed with a retry delay stays pending; with a bound here, an office
		// that is down for a while would fill it and stall every other office. The
		// worker semaphore bounds concurrency instead.
		MaxAckPending: -1,
		Replicas:      b.cfg.Replicas,
		MemoryStorage: b.cfg.QueueInMemory,
	}
	var cons jetstream.Consumer
	if err := bus.Settle(ctx, func(c context.Context) (err error) {
		cons, err = b.js.CreateOrUpdateConsumer(c, b.stream, cc)
		return err
	}); err != nil {
		return fmt.Errorf("broker: consumer: %w", err)
	}
	// The outbox is re-published in the background: a gateway with a large backlog
	// (an office down for a day) must take packages again at once, not after reading
	// every waiting record.
	b.loops.Add(4)
	go b.republishAtStart()
	go b.relay()
	go b.every(ackWait/3, b.keepWaitingAlive)
	go b.watchConfirmations()
	if b.cfg.RetentionEvery > 0 {
		b.clock.agree(b.readClock()) // the first run is checked against the start
		b.loops.Add(1)
		go b.every(b.cfg.RetentionEvery, func() { b.applyRetention(b.cfg.Retention) })
	}
	if b.cfg.QueueCheckEvery > 0 {
		b.loops.Add(1)
		go b.every(b.cfg.QueueCheckEvery, b.checkQueue)
	}
	b.loops.Add(1)
	go b.every(owedEvery, b.retryOwed)
	if b.cfg.RetentionEvery <= 0 {
		// No retention run will find the owed withdrawals of before the
		// start (owed.go): the gateway looks for them once itself.
		b.loops.Add(1)
		go b.findOwedAfterStart(owedEvery)
	}
	// Before the first attempt: a clerk's takeover on another gateway stops any
	// attempt this one runs (clusterstop.go).
	if err := b.listenForStops(); err != nil {
		return err
	}
	consume, err := cons.Consume(b.handle, jetstream.PullMaxMessages(b.cfg.Workers*2))
	if err != nil {
		b.stopListening()
		return fmt.Errorf("broker: consume: %w", err)
	}
	b.consume = consume
	return nil
}

// Stop stops taking new work, waits for running attempts (bounded by ctx) and returns.
// Accepted packages whose delivery did not finish stay in the outbox for the next Start.
func (b *Broker) Stop(ctx context.Context) error {
	if !b.stopped.CompareAndSwap(false, true) {
		return nil
	}
	if b.consume != nil {
		b.consume.Stop()
	}
	b.admit.Lock()
	b.draining = true
	b.admit.Unlock()
	done := make(chan struct{})
	go func() { b.attempts.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if b.cancel != nil { // nil when Start never ran (a gateway that failed to start)
		b.cancel()
	}
	b.loops.Wait()
	b.awaitWithdrawals(ctx)
	// After the drain: a takeover elsewhere stops an attempt this node is
	// still finishing.
	b.stopListening()
	return err
}

// memoryQueueBytes caps the in-memory queue: ids only (about 230 bytes a message
// with subject and Nats-Msg-Id), so some 140,000 waiting packages fit; beyond that
// the outbox keeps them until the queue has room (Discard: DiscardNew).
const memoryQueueBytes = 32 << 20

// ackWait is how long JetStream waits for a message's ack; process sends InProgress
// every ackWait/3 while an attempt runs.
const ackWait = 15 * time.Second

// queueMsg is the only thing that travels through NATS: a reference, never bytes.
type queueMsg struct {
	ID  string `json:"id"`
	Gen int    `json:"gen"`
}

// subject is the queue subject of a package: <root>.<channel>.<id>.<office>. The
// office token keys the dispatcher's per-office lines; the id lets the queue check
// ask the stream which accepted packages it holds a message for (queuecheck.go). The
// office stays the last token, where builds before the id read it: in a cluster
// being upgraded node by node, every node still finds the office of every message.
func (b *Broker) subject(channel, id, office string) string {
	return b.root + "." + token(channel) + "." + token(id) + "." + token(office)
}

// token makes a string safe as one NATS subject token.
func token(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

// enqueue hands a package that waits for an attempt to the relay without blocking
// the caller; if the relay is backed up it falls back to a full outbox scan. The
// entry carries what the queue message needs, as the caller has just stored it, so
// the relay does not read the record again (a quarter of a closed loop's record
// decoding); should the record change before the publish, the message is stale,
// which the dispatcher acks as done or superseded like any other.
func (b *Broker) enqueue(s *submission.Submission) {
	t, _ := s.CurrentTarget()
	select {
	case b.pending <- outboxEntry{id: s.ID, office: s.OfficeID, channel: t.Channel, gen: s.Generation, state: s.State}:
	default:
		b.rescan.Store(true)
	}
}

// relay publishes newly accepted submissions, retrying failed publishes, and scans
// the outbox when asked to. The outbox in bbolt is what counts; the relay only makes
// sure JetStream knows about it.
func (b *Broker) relay() {
	defer b.loops.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var retry []outboxEntry
	var rescanWait time.Duration // grows while rescans fail (a full queue, NATS away)
	var nextRescan time.Time
	// While NATS is away every publish fails, for hours perhaps: the log says so
	// once a minute (amtsbote_bus_connected and its alert say it all the time),
	// not every tick, which was 17,000 lines a day (an observability audit).
	warned := &repeatlimit.Limit{Every: time.Minute}
	for {
		select {
		case <-b.ctx.Done():
			return
		case e := <-b.pending:
			if _, err := b.publishEntry(b.ctx, e); err != nil {
				if len(retry) == 0 && warned.Allow(time.Now()) {
					b.log.Warn("publish to queue failed; will retry", "submission", e.id, "err", err)
				}
				retry = append(retry, e)
			}
		case now := <-tick.C:
			if len(retry) > maxRetry {
				// Many failed publishes (a full queue): one rescan publishes them
				// all, oldest first, instead of one request per id every second.
				retry = retry[:0]
				b.rescan.Store(true)
			}
			if now.After(nextRescan) && b.rescan.Swap(false) {
				if _, err := b.republishOutbox(b.ctx); err != nil {
					b.rescan.Store(true)
					rescanWait = min(max(2*rescanWait, time.Second), maxRescanWait)
					nextRescan = now.Add(rescanWait)
					if warned.Allow(now) {
						b.log.Warn("publishing the outbox to the queue failed; tried again later", "in", rescanWait.String(), "err", err)
					}
				} else {
					rescanWait = 0
				}
			}
			keep := retry[:0]
			var lastErr error
			for _, e := range retry {
				if _, err := b.publishEntry(b.ctx, e); err != nil {
					keep, lastErr = append(keep, e), err
				}
			}
			if lastErr != nil && warned.Allow(now) {
				// One line, not one per package: a full queue fails them all.
				b.log.Warn("publishes to queue failed; will retry", "waiting", len(keep), "err", lastErr)
			}
			if lastErr == nil && len(retry) > 0 {
				b.log.Info("publishes to the queue go through again", "published", len(retry))
				warned.Reset()
			}
			retry = keep
		}
	}
}

// maxRetry bounds the relay's list of failed publishes; maxRescanWait the pause
// between failing outbox rescans (each lists the outbox and the queue; a full queue
// of some 140,000 messages does not run dry in that time).
const (
	maxRetry      = 256
	maxRescanWait = 10 * time.Second
)

// publishEntry puts e's queue message on the queue, waiting at most publishTimeout.
// The message id makes a second publish of the same generation within the
// stream's duplicate window a no-op, which dup reports: the stream kept nothing.
func (b *Broker) publishEntry(ctx context.Context, e outboxEntry) (dup bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	body, _ := json.Marshal(queueMsg{ID: e.id, Gen: e.gen})
	msgID := jetstream.WithMsgID(b.root + "." + fmt.Sprintf("%s.%d", e.id, e.gen))
	ack, err := b.js.Publish(ctx, b.subject(e.channel, e.id, e.office), body, msgID)
	if err != nil {
		return false, fmt.Errorf("broker: publish %s: %w", e.id, err)
	}
	return ack.Duplicate, nil
}

// republishAtStart puts every outbox entry on the queue again, oldest first; a
// failure leaves it to the relay's rescan.
func (b *Broker) republishAtStart() {
	defer b.loops.Done()
	start := time.Now()
	n, err := b.republishOutbox(b.ctx)
	if err != nil {
		if b.ctx.Err() == nil {
			b.log.Warn("re-publishing the outbox after start failed; the relay retries", "published", n, "err", err)
			b.rescan.Store(true)
		}
		return
	}
	if n > 0 {
		b.log.Info("outbox re-published after start", "count", n, "took", time.Since(start).Round(time.Millisecond))
	}
}

// republishOutbox publishes every outbox entry that waits for an attempt and has no
// queue message, oldest first.
func (b *Broker) republishOutbox(ctx context.Context) (int, error) {
	return b.publishMissing(ctx, time.Time{}, nil)
}

// newID returns a time-ordered id, so listings come out oldest first.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

// deliveryNamespace is the UUID namespace of delivery ids (DeliveryID).
var deliveryNamespace = uuid.MustParse("6f0c2a1e-52b4-4c5e-9a51-3d1c0f2b7a90")

// DeliveryID is the delivery id of the package a sender made under a message id
// at a gateway: a name-based UUID (version 5) of the three, not a random one. A
// submission is one per sender and message id at a gateway (the idempotency
// key), so nothing else changes; but after a restore from a backup taken
// before the package came, the portal sends it again, and the repeat is a new
// submission — with a random id the offices' systems, which drop duplicates by
// the delivery id (webhook-id, the transfer ledger, docs/webhook.md), took it
// for a second application (an audit of disaster recovery, 2026-12-05). The
// gateway's id is part of the name: a peer gateway's submission of a
// forwarded package has a delivery id of its own.
func DeliveryID(gatewayID, sender, messageID string) string {
	return uuid.NewSHA1(deliveryNamespace, []byte(gatewayID+"\x00"+sender+"\x00"+messageID)).String()
}

// backoff returns the delay before attempt n+1 after n failed attempts: exponential,
// capped, with ±20% jitter so retries of many packages do not arrive in lockstep.
func (b *Broker) backoff(n int) time.Duration {
	d := b.cfg.BackoffBase
	for i := 1; i < n && d < b.cfg.BackoffMax; i++ {
		d *= 2
	}
	if d > b.cfg.BackoffMax {
		d = b.cfg.BackoffMax
	}
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}
