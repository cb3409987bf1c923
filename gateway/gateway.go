// Package gateway assembles one running amtsbote process from its configuration: the
// development PKI and credentials on first start, the store, the embedded bus, the
// adapters, the broker, the directory, the intake pipeline and the HTTP server. The
// `serve` and `demo` commands and the end-to-end tests all start the gateway here, so
// what is tested is what runs.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtsbote/amtsbote/internal/buildstamp"
	"github.com/amtsbote/amtsbote/internal/outbound"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/internal/httpmetrics"
	"github.com/amtsbote/amtsbote/internal/repeatlimit"
	"github.com/amtsbote/amtsbote/mailbox"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/submission"
)

// Gateway is one running process. Create with Start; stop with Shutdown.
type Gateway struct {
	Config    config.Config
	Log       *slog.Logger
	PKI       *signing.DevPKI // nil when the operator configured their own keys
	DevTLS    *signing.DevTLS // the development TLS files, when XTA runs on the dev PKI
	CredsFile string          // dev credentials file, if one was written or read
	Broker    *broker.Broker
	Directory *routing.Store
	Trust     *signing.TrustStore
	Signer    *signing.Signer
	Pipeline  *intake.Pipeline
	Yield     *intake.Yield // nil: intake never leaves slots to delivery
	Mailbox   *mailbox.Mailbox

	db       store.Store
	reg      *prometheus.Registry // what /metrics serves
	bus      *bus.Bus
	adapters *adapters.Registry
	channels *officeChannels
	// outbound verifies the servers the gateway calls (webhooks, peers, portals'
	// callbacks, SMTP) with tls.outbound_ca_file's CAs beside the system's roots.
	outbound *outbound.Config
	xtaAddr  string // the XTA listener's address, when XTA is on
	// httpMetrics count every face's requests: the REST API's listener and the
	// XTA face's own (amtsbote_http_requests_total, AmtsboteServerErrors).
	httpMetrics *httpmetrics.Metrics
	// bodies bounds the request bodies held in memory at once (limits.body_memory):
	// the portal API's packages and the web mailbox's reply files share it.
	bodies *httpbody.Budget
	// mounts are the faces besides the REST API, by path prefix (see api.Options.Mounts).
	mounts map[string]http.Handler
	// closers are closed on shutdown after the broker stopped, last added first.
	closers  []func() error
	srv      *http.Server
	ln       net.Listener
	serveErr chan error
	draining chan struct{}
	once     sync.Once
	reloadMu sync.Mutex // one Reload at a time (SIGHUP, the admin API, a cluster's broadcast)
	cluster  *cluster   // cluster mode: the reload's broadcast and the list of gateways (reload.go)
	// storeDown is why the cluster's store did not answer the last probe, nil
	// while it does (cluster mode only; watchStore).
	storeDown atomic.Pointer[error]
	// disk keeps a single node not ready from a refused write until its data
	// disk takes writes again with room to spare (disk.go).
	disk diskGate
	// receipts signs the receipts; its Valid is the signing certificate's
	// validity now (checkCertificate).
	receipts broker.GatewaySigner
	// clock, if set, is the clock of the signing certificate's validity (now):
	// tests move it past the certificate's end.
	clock atomic.Pointer[func() time.Time]
	// certInvalidLog, certSoonLog space checkCertificate's lines: an hour while
	// the certificate is not valid, a day while it ends soon.
	certInvalidLog, certSoonLog repeatlimit.Limit
	checkPeer                   func(config.Peer) error // federation.Trust.CheckPeer (setupPeers); nil without peers
}

// Metrics gathers what /metrics serves (the bench reads the gateway's own
// histograms from it without going through HTTP).
func (g *Gateway) Metrics() prometheus.Gatherer { return g.reg }

// Start builds everything and starts serving HTTP. On error, whatever was started is
// stopped again.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger) (g *Gateway, err error) {
	return startOn(ctx, cfg, log, nil)
}

// startOn is Start serving on ln when it is not nil (then cfg.Listen must name ln's
// address). Tests whose gateways must know each other's addresses before either
// starts hold a listener from the beginning: a port picked, closed and bound seconds
// later (keys, NATS and the store come first) was taken in between under CI's
// parallel packages ("bind: address already in use", CI 2026-12-05).
func startOn(ctx context.Context, cfg config.Config, log *slog.Logger, ln net.Listener) (g *Gateway, err error) {
	if log == nil {
		log = slog.Default()
	}
	cfg.Resolve()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	g = &Gateway{Config: cfg, Log: log, serveErr: make(chan error, 1), draining: make(chan struct{}), mounts: map[string]http.Handler{}}
	// Every error return below sets the named result g to nil: the cleanup needs
	// its own reference, or a start-up error ends in a nil-pointer panic that hides
	// the cause.
	parts := g
	defer func() {
		if err != nil {
			close(parts.draining) // ends the store's probe, if it runs
			parts.closeParts(context.Background())
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	// A wrong CA file stops the start: otherwise every call to a server of that
	// CA fails for hours as an ordinary retry.
	if g.outbound, err = outbound.Load(cfg.TLS.OutboundCAFile, log); err != nil {
		return nil, fmt.Errorf("configuration: %s: %w", outbound.Setting, err)
	}
	if err := g.setupKeys(); err != nil {
		return nil, err
	}
	if err := g.setupCredentials(); err != nil {
		return nil, err
	}
	cfg = g.Config

	g.bus, err = bus.Start(ctx, bus.Options{
		URL: cfg.NATS.URL, Listen: cfg.NATS.Listen, StoreDir: filepath.Join(cfg.DataDir, "jetstream"),
		MaxMemory: cfg.NATS.MaxMemory, MaxStore: cfg.NATS.MaxStore, TLS: natsTLS(cfg), Logger: log,
	})
	if err != nil {
		return nil, err
	}
	// Each opened store goes into g.db only when it opened: a nil *store.DB in the
	// interface is not a nil interface, and closing it on the way out panicked,
	// hiding why the store did not open (locked by another gateway, a newer
	// schema, no permission).
	if cfg.Store.Backend == config.StoreJetStream {
		// Cluster mode: the records and bytes live in replicated JetStream storage,
		// so any gateway serves any submission and none holds the only copy.
		js, err := jsstore.Open(ctx, g.bus.JS, jsstore.Options{Replicas: cfg.NATS.Replicas})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		g.db = js
		go g.watchStore(js)
	} else {
		db, err := store.Open(cfg.DataDir, store.Options{BatchSize: cfg.Store.BatchSize, BatchDelay: cfg.Store.BatchDelay, Known: g.knownCertificates(), Logger: log})
		if err != nil {
			return nil, fmt.Errorf("store in %s: %w", cfg.DataDir, err)
		}
		g.db = db
		// A full data disk makes the node not ready, and only a write that
		// succeeds makes it ready again: one is tried while none does.
		watched := make(chan struct{})
		go g.watchWrites(db, watched)
		g.closers = append(g.closers, func() error { <-watched; return nil })
		// The first start after a restore says from when the store is.
		if err := store.LogRestore(cfg.DataDir, log); err != nil {
			log.Warn("the note of a restore could not be read or removed", "err", err)
		}
	}
	if ln != nil {
		g.ln = ln
	} else if g.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if g.Config.PublicURL == g.scheme()+"://"+cfg.Listen {
		// Listen may name port 0; links in notifications need the real one.
		g.Config.PublicURL = g.scheme() + "://" + g.ln.Addr().String()
		cfg.PublicURL = g.Config.PublicURL
		if cfg.Store.Backend == config.StoreJetStream {
			// Every link an office gets then names this gateway, not the load
			// balancer: while it is down, the office's fetches wait for it.
			log.Warn("cluster mode without public_url: links in office notifications name this gateway; set public_url to the load balancer's address (docs/cluster.md)", "public_url", cfg.PublicURL)
		} else if why := unusableLinks(g.ln.Addr(), cfg); why != "" {
			log.Warn("no public_url: "+why+"; set public_url to the address offices and clerks reach (docs/operations.md)", "public_url", cfg.PublicURL)
		}
	}
	g.warnExposure(g.ln.Addr(), log)
	reg := prometheus.NewRegistry()
	g.reg = reg
	g.httpMetrics = httpmetrics.New()
	reg.MustRegister(g.httpMetrics.Collectors()...)
	reg.MustRegister(
		// Beside the usual Go series, go_sched_latencies_seconds: how long
		// goroutines wait for a CPU once runnable. Its share above 1 or 10 ms says
		// the node's CPUs are the limit before intake's slots do (the open loop
		// found a 201's tail there, docs/performance.md).
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/sched/latencies:seconds$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Which build runs here: in a rolling upgrade of a cluster, which node is on
	// which (the usual *_build_info convention: constant 1, the facts as labels).
	bi := buildstamp.Read()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "amtsbote_build_info",
		Help:        "The build of the running gateway: version (release or Git commit), revision (Go's VCS stamp, if any), goversion. Always 1.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "revision": bi.Revision, "goversion": bi.GoVersion}},
		func() float64 { return 1 }))
	log.Info("amtsbote starting", "version", bi.String(), "go", bi.GoVersion, "store", cfg.Store.Backend)
	if bi.OlderGo() {
		log.Warn("built with a Go release whose standard library has vulnerabilities this gateway reaches: rebuild with make build",
			"go", bi.GoVersion, "fixed_in", buildstamp.FixedGo)
	}
	// The backlog, the packages waiting for an office's confirmation, those
	// waiting for a person and the cases waiting for their office's decision,
	// counted from the store's indexes: the same numbers on
	// every node of a cluster (alert on max, not sum). A scrape lists each at most
	// every 10 s, and waits for a listing at most indexWait, none while the
	// store is known out of reach: such a store must not make /metrics, and with
	// it every other series, fail.
	watch := func(state string, list func() ([]string, error)) *indexWatch {
		return &indexWatch{state: state, list: list, get: g.db.Get}
	}
	// A handed-over or held case whose bytes an operator erased waits for nothing
	// (the office can no longer fetch it, a replay has nothing to send): not
	// counted, or AmtsboteUnconfirmedForDays and AmtsbotePackagesHeld would fire
	// for it for ever.
	held, waiting, handedOver := watch("held", store.IDsOf(notErased(g.db.Get, g.db.Held))), watch("waiting", g.db.Outbox),
		watch("handed_over", store.IDsOf(notErased(g.db.Get, g.db.HandedOver)))
	// Delivered and not decided where the office decides here (the office API,
	// the mailbox): a Fachverfahren that fetched and died before deciding
	// leaves such a case for good (AmtsboteUndecidedForDays). The index holds
	// no erased case and none XTA or a transfer folder took, which never decide.
	// An entry an older build left after deciding its case is passed over, as
	// the admin's list passes over it (indexWatch.current).
	undecided := watch("delivered_undecided", store.IDsOf(g.db.Undecided))
	undecided.current = (*submission.Submission).AwaitsDecision
	indexes := newIndexWatches(10*time.Second, g.storeUnreachable, waiting, handedOver, held, undecided)
	// No listing runs after the store is closed (closers run before).
	g.closers = append(g.closers, func() error { indexes.stop(); return nil })
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "amtsbote_submissions_held",
			Help: "Submissions waiting for a person: no channel of the office could deliver them (counted from the store's index)."},
			held.count),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "amtsbote_submissions_waiting",
			Help: "Submissions waiting for a delivery attempt (queued or retrying), counted from the store's outbox."},
			waiting.count),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "amtsbote_submissions_handed_over",
			Help: "Submissions handed to a channel, waiting for the office's confirmation, counted from the store's index."},
			handedOver.count),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "amtsbote_submissions_delivered_undecided",
			Help: "Submissions the office took by the office API or the web mailbox and has not decided (accepted or rejected) nor marked processed, counted from the store's index; not those XTA, a transfer folder or a peer gateway delivered, which take no decision here."},
			undecided.count),
		newOldestCollector(waiting, handedOver, held, undecided))
	// The bus carries the work queue: without it packages are still accepted
	// (into the outbox) but none is delivered, and /readyz says only "degraded"
	// with 200, which no load balancer or scrape of the other series shows. An
	// alert needs a series of its own (AmtsboteBusDisconnected).
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "amtsbote_bus_connected",
		Help: "1 while the gateway is connected to its NATS server (the work queue; in cluster mode also the store), 0 while not: packages wait in the outbox and none is delivered."},
		func() float64 {
			if g.bus.Healthy() {
				return 1
			}
			return 0
		}))
	// How long a write takes to become durable, on either store; bbolt's commits too.
	reg.MustRegister(g.db.Collectors()...)
	// The room left for them: on a single node the store's file and blobs, in
	// either mode the mailbox's file, the endpoint states, the embedded NATS
	// server's files. Before, that was the node exporter's part alone, which
	// the rule file cannot use: it does not know on which mount data_dir lies.
	reg.MustRegister(newDiskCollector(cfg.DataDir))
	if db, ok := g.db.(interface{ CommitStats() store.CommitStats }); ok {
		// How well group commit shares the disk's flushes: writes per commit.
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "amtsbote_store_commits_total", Help: "Group commits of the bbolt store (two device flushes each)."},
				func() float64 { return float64(db.CommitStats().Commits) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "amtsbote_store_commit_writes_total", Help: "Writes (intakes, state changes) carried by those commits."},
				func() float64 { return float64(db.CommitStats().Writes) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "amtsbote_store_commit_failures_total", Help: "Commits of the bbolt store the data file refused (no space, I/O error): their writers got an error and nothing of them was stored."},
				func() float64 { return float64(db.CommitStats().Failed) }))
	}
	if db, ok := g.db.(interface{ Stats() jsstore.Stats }); ok {
		// Cluster mode: how often writes raced another gateway or lost their
		// acknowledgement (a leader change, a killed node), and how many of those
		// were found committed after all instead of being applied twice.
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "amtsbote_store_write_conflicts_total", Help: "JetStream store writes refused because another writer changed the key first (read again and rerun)."},
				func() float64 { return float64(db.Stats().Conflicts) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "amtsbote_store_unacknowledged_writes_total", Help: "JetStream store writes without an acknowledgement (timeouts, leader changes)."},
				func() float64 { return float64(db.Stats().Ambiguous) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "amtsbote_store_recognised_writes_total", Help: "Unacknowledged writes later found committed by their operation id, so not applied twice."},
				func() float64 { return float64(db.Stats().Recognised) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "amtsbote_store_stale_listings_total", Help: "Index listings started again, and blob listings completed from the stream leader, because the replica serving them lagged behind the latest writes."},
				func() float64 { return float64(db.Stats().StaleListings) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "amtsbote_store_newer_keys_dropped_total", Help: "Cases written without the keys a gateway of a newer build had stored in them, because with them the case's document would exceed the store's record limit (a rolling upgrade; docs/cluster.md)."},
				func() float64 { return float64(db.Stats().NewerDropped) }))
	}

	g.adapters, err = newAdapters(cfg, log, g.outbound)
	if err != nil {
		return nil, err
	}
	g.channels = newOfficeChannels(cfg.Offices, g.adapters)
	// A gateway whose truth is its own bbolt file but whose NATS is shared gets a work
	// queue of its own; otherwise another gateway would take its queue messages for
	// packages it does not hold.
	queue := ""
	if cfg.NATS.URL != "" && cfg.Store.Backend != config.StoreJetStream {
		if queue, err = nodeID(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	parallel := map[string]int{}
	for id, o := range cfg.Offices {
		if o.Parallel > 0 {
			parallel[id] = o.Parallel
		}
	}
	g.receipts = broker.GatewaySigner{Signer: g.Signer, GatewayID: cfg.GatewayID, Now: g.now}
	g.Broker = broker.New(broker.Config{
		GatewayID: cfg.GatewayID, Workers: cfg.Delivery.Workers, PerOffice: cfg.Delivery.PerOffice, OfficeParallel: parallel, MaxAttempts: cfg.Delivery.MaxAttempts,
		Line:        peerLines(cfg.Peers), // a peer's offices share its cap
		BackoffBase: cfg.Delivery.BackoffBase, BackoffMax: cfg.Delivery.BackoffMax,
		Schedule:         broker.ScheduleFor(cfg.Delivery.ScheduleSpec()),
		BreakerThreshold: cfg.Delivery.BreakerThreshold, BreakerCooldown: cfg.Delivery.BreakerCooldown,
		EndpointsFile: filepath.Join(cfg.DataDir, "endpoints.json"), SharedEndpoints: cfg.Store.Backend == config.StoreJetStream, Registerer: reg,
		AttemptTimeout: cfg.Delivery.AttemptTimeout, TransferMinRate: cfg.Delivery.TransferMinRate, Replicas: cfg.NATS.Replicas,
		ExclusiveConsumer: cfg.NATS.URL == "", QueueInMemory: cfg.NATS.URL == "", Queue: queue,
		Retention: RetentionOf(cfg), RetentionEvery: cfg.Retention.Every, QueueCheckEvery: cfg.Delivery.QueueCheck,
		// A replay takes the office's plan as intake makes it now (the pipeline is
		// built below; a replay comes only once the gateway serves).
		Plan: func(office string) []submission.Target { return g.Pipeline.Plan(office) },
	}, g.db, g.bus.JS, g.adapters, g.channels, g.receipts, log, broker.NewMetrics(reg))

	base, err := routing.Builtin()
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	g.Directory = routing.NewStore(base)
	if len(cfg.Directory.Files) > 0 {
		if err := g.Directory.ReloadFiles(cfg.Directory.Files...); err != nil {
			return nil, fmt.Errorf("directory: %w", err)
		}
	}

	lim := paket.Limits{
		MaxBytes: cfg.Limits.MaxBodyBytes, MaxDepth: cfg.Limits.MaxDepth, MaxElements: cfg.Limits.MaxElements,
		MaxAttributes: cfg.Limits.MaxAttributes, MaxAttachments: cfg.Limits.MaxAttachments,
		MaxAttachmentBytes: cfg.Limits.MaxAttachmentBytes,
		MaxReferencedBytes: cfg.Limits.MaxReferencedAttachmentBytes, MaxReferencedTotal: cfg.Limits.MaxReferencedPackageBytes,
	}
	verifier := signing.NewVerifier(g.Trust, signing.VerifyOptions{
		MaxBytes: cfg.Limits.MaxBodyBytes, MaxDepth: cfg.Limits.MaxDepth,
		MaxElements: cfg.Limits.MaxElements, MaxAttributes: cfg.Limits.MaxAttributes,
	})
	g.Pipeline = &intake.Pipeline{
		Limits: lim, Verifier: verifier, Directory: g.Directory, Broker: g.Broker, Channels: g.channels,
		LastResort: channel.Mailbox, Slots: intake.NewSlots(cfg.Limits.VerifyParallel),
		Metrics: intake.NewMetrics(reg), Log: log,
	}
	slots := g.Pipeline.Slots
	if cfg.Limits.YieldBacklog >= 0 {
		high := cfg.Limits.YieldBacklog
		if high == 0 {
			high = intake.DefaultYieldBacklog
		}
		g.Yield = intake.NewYield(slots, g.Broker.Behind, high, log)
	}
	yield := g.Yield
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "amtsbote_intake_waiting",
			Help: "Packages waiting for a verification slot (limits.verify_parallel): intake is using every slot."},
			func() float64 { return float64(slots.Waiting()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "amtsbote_intake_busy_total",
			Help: "Packages refused with 503 because no verification slot came free in time (overload)."},
			func() float64 { return float64(slots.Refused()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "amtsbote_intake_yielding",
			Help: "Verification slots intake leaves to delivery now: packages wait for offices that answer fast while the CPU is full (limits.yield_backlog)."},
			func() float64 { return float64(yield.Yielding()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "amtsbote_intake_yields_total",
			Help: "How often intake started to leave verification slots to delivery."},
			func() float64 { return float64(yield.Times()) }))

	g.bodies = httpbody.NewBudget(cfg.Limits.BodyMemoryBytes(), intake.DefaultSlotWait)
	if err := g.setupFaces(ctx); err != nil {
		return nil, err
	}
	// Only now is every channel's adapter registered (faces add theirs): checked
	// before delivery starts, so no package meets a channel that is not there yet.
	if err := checkChannels(cfg.Offices, g.adapters); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	warnTokenOnly(cfg, log)
	for _, w := range directoryMismatches(cfg, g.Directory.Current()) {
		log.Warn("configuration and directory disagree: " + w)
	}
	g.warnConfig() // startwarn.go
	if err := g.Broker.Start(ctx); err != nil {
		return nil, err
	}
	if g.Yield != nil {
		yctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); g.Yield.Run(yctx) }()
		g.closers = append(g.closers, func() error { stop(); <-done; return nil })
	}

	// After the faces: on the development PKI setupXTA chose the TLS files.
	if err := reg.Register(newTrustCollector(g.Trust)); err != nil {
		return nil, err
	}
	if err := g.registerCertificateExpiry(reg); err != nil {
		return nil, err
	}
	// The start's check warned of a certificate that ends soon; the watch repeats
	// that once a day, and says when it has ended.
	g.certInvalidLog.Every, g.certSoonLog.Every = time.Hour, 24*time.Hour
	g.certSoonLog.Allow(g.now())
	go g.watchCertificate()

	if cfg.Store.Backend == config.StoreJetStream {
		// A reload at any gateway reaches every gateway (reload.go).
		if err := g.joinCluster(ctx); err != nil {
			return nil, err
		}
	}

	portals, offices := map[string]string{}, map[string][]string{}
	for id, p := range cfg.Portals {
		portals[id] = p.Token
	}
	for id, o := range cfg.Offices {
		offices[id] = o.APITokens() // token, or each of tokens during a rotation
	}
	var backup func(context.Context, io.Writer) error
	if db, ok := g.db.(*store.DB); ok {
		backup = func(ctx context.Context, w io.Writer) error {
			_, err := db.Backup(ctx, w)
			return err
		}
	}
	handler := api.New(api.Options{
		Pipeline: g.Pipeline, Broker: g.Broker, Directory: g.Directory, Backup: backup,
		Clients:      api.NewClients(cfg.AdminToken, portals, offices),
		MaxBodyBytes: cfg.Limits.MaxBodyBytes, BodyBudget: g.bodies,
		Logger: log, Registry: reg, HTTPMetrics: g.httpMetrics,
		// A multipart upload: the root, every referenced part, and their framing.
		MaxUploadBytes: cfg.Limits.MaxBodyBytes + lim.Effective().MaxReferencedTotal + 1<<20,
		UploadWindow:   cfg.HTTP.ReadTimeout, UploadMinRate: cfg.HTTP.UploadMinRate, WriteTimeout: cfg.HTTP.WriteTimeout,
		Reload: g.ReloadAll, Ready: g.ready, StoreDown: g.storeUnreachable, Schemas: schemas(), Mounts: g.mounts,
	})
	// ReadTimeout and WriteTimeout bound every ordinary request. A multipart upload of
	// gigabytes outlives them by far (2 GiB at 50 Mbit/s: six minutes): its handler
	// replaces the fixed read deadline by a progress rule (read_timeout ×
	// upload_min_rate bytes per read_timeout, api.submitMultipart) and lifts the
	// write deadline until it answers. ReadHeaderTimeout bounds every request's
	// headers, so slow headers (slowloris) stay bounded, and a slow body must still
	// keep the minimum rate.
	g.srv = &http.Server{
		Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: cfg.HTTP.ReadTimeout, WriteTimeout: cfg.HTTP.WriteTimeout, IdleTimeout: 2 * time.Minute,
		// api enforces api.MaxHeaderBytes itself and answers with a problem document;
		// net/http's own (plain-text) 431 only applies above this.
		MaxHeaderBytes: api.ServerMaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.TLS.REST {
		// The REST API over TLS; office client certificates are optional here (the
		// pull API authenticates by token), required only on the XTA ports.
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file: %w", err)
		}
		g.srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		go func() { g.serveErr <- g.srv.ServeTLS(g.ln, "", "") }()
	} else {
		go func() { g.serveErr <- g.srv.Serve(g.ln) }()
	}
	log.Info("amtsbote listening", "addr", g.ln.Addr().String(), "data", cfg.DataDir, "gateway", cfg.GatewayID,
		"adapters", g.adapters.Channels(), "directory", g.Directory.Current().Counts())
	return g, nil
}

// URL is the base URL the gateway serves on (the real port when Listen used :0).
func (g *Gateway) URL() string { return g.scheme() + "://" + g.ln.Addr().String() }

func (g *Gateway) scheme() string {
	if g.Config.TLS.REST {
		return "https"
	}
	return "http"
}

// Done yields the HTTP server's fatal error, if it stops by itself.
func (g *Gateway) Done() <-chan error { return g.serveErr }

// Reload re-reads the directory files and the trust store and puts both in
// force, or neither: each is read and checked completely first, and only when
// both are valid are both swapped. Before, the directory was swapped before the
// trust store was read, so a bad PEM in the trust store left the new directory
// in force while the answer (and the SIGHUP log) said nothing had changed.
func (g *Gateway) Reload() error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	// As at start: a folder made writable for everyone since is no source of trust.
	if err := checkTrustedFiles(&g.Config); err != nil {
		return err
	}
	trust, trustErr := g.Trust.Prepare()
	if trustErr != nil {
		trustErr = fmt.Errorf("trust store: %w", trustErr)
	}
	commitTrust := func() error {
		if trustErr != nil {
			return trustErr
		}
		if err := trust.Commit(); err != nil {
			return fmt.Errorf("trust store: %w", err)
		}
		return nil
	}
	if len(g.Config.Directory.Files) == 0 {
		return commitTrust()
	}
	committed := false
	err := g.Directory.ReloadFilesWith(func() error { committed = true; return commitTrust() }, g.Config.Directory.Files...)
	switch {
	case err == nil:
		// A new directory may have dropped or renamed an office the
		// configuration still names.
		for _, w := range directoryMismatches(g.Config, g.Directory.Current()) {
			g.Log.Warn("configuration and directory disagree: " + w)
		}
		return nil
	case committed:
		return err // the trust store's, from commitTrust
	default:
		return errors.Join(fmt.Errorf("directory: %w", err), trustErr)
	}
}

// ready: draining is not ready; a bus that is down is degraded only — intake goes on
// into the store's outbox (the store is the truth) and delivery resumes when the
// bus is back.
func (g *Gateway) ready() (api.Readiness, error) {
	select {
	case <-g.draining:
		return api.Readiness{}, errors.New("draining")
	default:
	}
	var r api.Readiness
	// A gateway whose certificate is not valid takes no new package (intake
	// refuses it: its receipt would verify nowhere) but goes on serving the
	// offices: their pull API, mailbox and XTA face, and deliveries. Not ready,
	// it was taken out of the load balancer, every node of a cluster at once
	// (they share the certificate), and the offices could fetch nothing (a
	// review, 2026-12-05); degraded, portals get intake's own 503 with its
	// reason.
	if err := g.checkCertificate(); err != nil {
		r.Degraded = append(r.Degraded, err.Error())
	}
	// In cluster mode the store is in NATS: without a connection, or connected but
	// without a leader for the store's stream (a cluster that lost its quorum), no
	// package can be taken.
	if err := g.storeUnreachable(); err != nil {
		return r, err
	}
	// A single node whose data disk refuses writes can keep no promise: intake
	// answers 503, and what offices do — fetch, decide, open a case in the
	// mailbox — and every delivery's outcome are writes too. Degraded, it stayed
	// in the load balancer, which went on sending portals to it while other
	// nodes had room; reads alone (a portal's status) are no reason to stay.
	if err := g.writesRefused(); err != nil {
		return r, err
	}
	if !g.bus.Healthy() {
		r.Degraded = append(r.Degraded, "message bus not connected: packages are accepted and wait in the outbox; delivery resumes when it is back")
	}
	return r, nil
}

// unusableLinks says why links built from the listen address addr (no
// public_url) do not work for those who get them, or "". A wildcard address
// (0.0.0.0, [::]) is no address to open; a loopback one opens only on this
// machine, which a clerk reading a mailbox notice in her webmail is not on.
func unusableLinks(addr net.Addr, cfg config.Config) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return ""
	}
	switch {
	case ta.IP.IsUnspecified():
		return "links in office notifications and mailbox notices name " + ta.String() + ", which opens nowhere"
	case ta.IP.IsLoopback() && cfg.Mailbox.SMTP.Addr != "":
		return "the mailbox notices' links name " + ta.String() + ", which opens only on this machine"
	}
	return ""
}

// storeUnreachable is why the cluster's store is out of reach now, or nil (always
// nil for a single node, whose store is its own file).
func (g *Gateway) storeUnreachable() error {
	if g.Config.Store.Backend != config.StoreJetStream {
		return nil
	}
	if !g.bus.Healthy() {
		return errors.New("not connected to the NATS cluster that holds the store")
	}
	if p := g.storeDown.Load(); p != nil {
		return fmt.Errorf("the NATS cluster does not answer for the store: %w", *p)
	}
	return nil
}

// storeProbeEvery is how often watchStore asks the cluster's store; a probe
// that has no answer within it counts as failed.
const storeProbeEvery = 2 * time.Second

// watchStore probes the cluster's store until the gateway drains, so that
// readiness says when the cluster has no quorum: the connection alone says
// nothing about that, and /readyz said ready while every request waited out
// the store's timeout and failed.
func (g *Gateway) watchStore(js *jsstore.Store) {
	probe := func() {
		ctx, cancel := context.WithTimeout(context.Background(), storeProbeEvery)
		err := js.Reachable(ctx)
		cancel()
		switch was := g.storeDown.Load(); {
		case err != nil && was == nil:
			g.storeDown.Store(&err)
			g.Log.Warn("the cluster's store does not answer: not ready", "err", err)
		case err != nil:
			g.storeDown.Store(&err)
		case was != nil:
			g.storeDown.Store(nil)
			g.Log.Info("the cluster's store answers again: ready")
		}
	}
	probe()
	g.untilDrained(storeProbeEvery, probe)
}

// untilDrained calls fn every d until the gateway drains: the rhythm of its
// watchers (the cluster's store, the data disk, the gateway certificate).
func (g *Gateway) untilDrained(d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-g.draining:
			return
		case <-t.C:
		}
		fn()
	}
}

// Shutdown drains: stop taking requests (in-flight ones finish), let running delivery
// attempts finish, then close the bus and the store. Safe to call more than once.
func (g *Gateway) Shutdown(ctx context.Context) error {
	var err error
	g.once.Do(func() {
		close(g.draining)
		if g.srv != nil {
			if e := g.srv.Shutdown(ctx); e != nil {
				err = e
			}
		}
		g.closeParts(ctx)
		g.Log.Info("amtsbote stopped")
	})
	return err
}

func (g *Gateway) closeParts(ctx context.Context) {
	if g.ln != nil && g.srv == nil {
		_ = g.ln.Close()
	}
	if g.Broker != nil {
		_ = g.Broker.Stop(ctx)
	}
	if g.adapters != nil {
		_ = g.adapters.Close()
	}
	for i := len(g.closers) - 1; i >= 0; i-- {
		_ = g.closers[i]()
	}
	if g.db != nil {
		_ = g.db.Close()
	}
	if g.bus != nil {
		_ = g.bus.Close()
	}
}

func schemas() map[string][]byte {
	return map[string][]byte{
		paket.XSDFileName: paket.XSD,
	}
}

// nodeID is this data folder's stable random id (created on first start): the name
// of its own work queue when it shares a NATS server with other gateways.
func nodeID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("node id: %w", err)
	}
	id := randomToken()[:16]
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	return id, nil
}

// RetentionOf is the broker's retention from the configuration.
func RetentionOf(cfg config.Config) broker.Retention {
	return broker.Retention{PackageBytes: cfg.Retention.PackageBytes, Records: cfg.Retention.Records, Unanswered: cfg.Retention.Unanswered,
		CompactMinFree: cfg.Retention.CompactMinFree}
}
