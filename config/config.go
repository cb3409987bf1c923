// Package config holds the gateway's one configuration struct. Defaults run as they
// are (`amtsbote serve` with no file and no flags); a YAML file and then AMTSBOTE_*
// environment variables override them, and the command line overrides the few things
// people change per run.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/store"
	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration. Field names in YAML are snake_case; the
// environment variable of a scalar field is AMTSBOTE_ plus its YAML path in upper
// case joined by "_", e.g. AMTSBOTE_DELIVERY_MAX_ATTEMPTS. Maps (offices, portals)
// are set in YAML only.
type Config struct {
	GatewayID string `yaml:"gateway_id"`
	Listen    string `yaml:"listen"`
	// PublicURL is where offices reach the gateway's API (links in notifications).
	PublicURL string `yaml:"public_url"`
	DataDir   string `yaml:"data_dir"`
	LogLevel  string `yaml:"log_level"`  // debug, info, warn, error
	LogFormat string `yaml:"log_format"` // text or json

	NATS      NATS      `yaml:"nats"`
	Store     Store     `yaml:"store"`
	Limits    Limits    `yaml:"limits"`
	Delivery  Delivery  `yaml:"delivery"`
	PKI       PKI       `yaml:"pki"`
	Directory Directory `yaml:"directory"`
	HTTP      HTTP      `yaml:"http"`

	// AdminToken authorises /v1/admin; empty: generated into the dev credentials.
	AdminToken string                  `yaml:"admin_token"`
	Portals    map[string]PortalClient `yaml:"portals"`
	Offices    map[string]OfficeClient `yaml:"offices"`
	// Peers are the gateways of other states this one exchanges packages with.
	Peers []Peer `yaml:"peers"`
	// Mailbox is the web mailbox every office has as its last channel.
	Mailbox Mailbox `yaml:"mailbox"`
	TLS     TLS     `yaml:"tls"`
	XTA     XTA     `yaml:"xta"`
	// Transfer tunes the transfer-folder channel (docs/transfer.md).
	Transfer Transfer `yaml:"transfer"`
	// Retention: how long what is kept after the office's final answer.
	Retention Retention `yaml:"retention"`
}

// Retention is applied by a background job every Every, and by `amtsbote gc`. The
// periods count from the office's final answer (accepted or rejected); 0 keeps
// forever, and so does a negative period (-1, the off value of durations): the
// operator who writes it means "off", and it is not refused. Bytes are personal data in bulk and go first; the record, its event log
// and its receipts are the proof of what happened and stay longer.
type Retention struct {
	PackageBytes time.Duration `yaml:"package_bytes"` // default 90 days
	Records      time.Duration `yaml:"records"`       // default 10 years
	// Unanswered: the bytes of a case the office has but never answered (a
	// transfer-only office, a system that never decides) are removed this long
	// after its delivery; default 0: kept until an answer or an erasure.
	Unanswered time.Duration `yaml:"unanswered"`
	// Every: default 1h; 0 (or negative) = no background job; else at least
	// MinRetentionEvery, since each run reads every record.
	Every time.Duration `yaml:"every"`
	// CompactMinFree: the bbolt file is rewritten while the gateway runs when at
	// least this many bytes and at least half of it are free (default 64 MiB;
	// negative: never).
	CompactMinFree int64 `yaml:"compact_min_free"`
}

// Transfer tunes the transfer-folder channel (adapters/transfer, docs/transfer.md).
type Transfer struct {
	// LedgerKeep: the gateway's record of a case handed over into an office
	// folder (.amtsbote/<delivery id>.json) is removed this long after the
	// gateway noticed the import's confirmation; kept for ever, one file per
	// case slowed every listing of the folder. At least MinLedgerKeep (the
	// broker must have recorded the confirmation long before); 0: 30 days;
	// negative: kept for ever.
	LedgerKeep time.Duration `yaml:"ledger_keep"`
}

// MinRetentionEvery is the shortest retention.every taken (above 0): each run
// of the retention job reads every record.
const MinRetentionEvery = time.Minute

// MinLedgerKeep is the shortest transfer.ledger_keep taken.
const MinLedgerKeep = 24 * time.Hour

// NATS configures the bus.
type NATS struct {
	URL       string  `yaml:"url"` // external server; empty = embedded
	Listen    string  `yaml:"listen"`
	MaxMemory int64   `yaml:"max_memory"`
	MaxStore  int64   `yaml:"max_store"`
	Replicas  int     `yaml:"replicas"`
	TLS       NATSTLS `yaml:"tls"`
}

// NATSTLS secures the connection to an external NATS cluster whose client port
// speaks TLS (deploy/nats): the CA that issued the servers' certificates (empty:
// the system's roots), and a client certificate for servers that ask for one
// (tls { verify: true }). The URLs may then say tls:// or nats://; either way the
// connection is TLS and the servers' names are checked.
type NATSTLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Set reports whether any TLS setting is given.
func (t NATSTLS) Set() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// Store chooses where the durable truth lives and tunes it. Backend "bbolt" (the
// default) is one file and blob files under data_dir, for a single node;
// "jetstream" keeps it in replicated JetStream storage of the NATS cluster at
// nats.url with nats.replicas, so several gateways share it and none holds the
// only copy (docs/cluster.md).
type Store struct {
	Backend string `yaml:"backend"`
	// BatchSize and BatchDelay tune the bbolt store's group commit: commits start at
	// least batch_delay apart, or sooner once batch_size writes wait (store.Options).
	BatchSize  int           `yaml:"batch_size"`
	BatchDelay time.Duration `yaml:"batch_delay"`
}

// Store backends.
const (
	StoreBBolt     = "bbolt"
	StoreJetStream = "jetstream"
)

// Limits bound what one request may make the gateway do.
type Limits struct {
	MaxBodyBytes       int64 `yaml:"max_body_bytes"`
	MaxDepth           int   `yaml:"max_depth"`
	MaxElements        int   `yaml:"max_elements"`
	MaxAttributes      int   `yaml:"max_attributes"`
	MaxAttachments     int   `yaml:"max_attachments"`
	MaxAttachmentBytes int64 `yaml:"max_attachment_bytes"`
	// MaxReferencedAttachmentBytes and MaxReferencedPackageBytes bound attachments
	// sent by reference as parts of a multipart/related request: one, and all of one
	// package. They are streamed to disk, not held in memory (413 beyond).
	MaxReferencedAttachmentBytes int64 `yaml:"max_referenced_attachment_bytes"`
	MaxReferencedPackageBytes    int64 `yaml:"max_referenced_package_bytes"`
	// VerifyParallel bounds the packages pre-scanned, verified and parsed at once
	// (0: one per CPU, internal/procs; negative: no bound, every request verifies at
	// once as before the slots). A package that finds no slot free within 10 s
	// is refused with 503 and Retry-After (intake/slots.go: without a bound,
	// intake under overload starved delivery).
	VerifyParallel int `yaml:"verify_parallel"`
	// YieldBacklog: while packages wait for offices that answer fast and the CPU
	// is full, intake leaves verification slots to delivery so that it keeps pace
	// (intake/yield.go): from a quarter of this many waiting on, rising in
	// proportion to half the slots at this many and three quarters at twice it.
	// 0: 256; negative: intake never yields.
	YieldBacklog int `yaml:"yield_backlog"`
	// BodyMemory bounds the bytes of packages held in memory at once, from reading
	// a body to the end of its intake (a package is read whole before its
	// signature can be checked, by anyone who can reach the port). A request that
	// finds no room within 10 s is refused with 503. 0: four times
	// max_body_bytes; at least max_body_bytes.
	BodyMemory int64 `yaml:"body_memory"`
}

// BodyMemoryBytes is BodyMemory in effect.
func (l Limits) BodyMemoryBytes() int64 {
	if l.BodyMemory > 0 {
		return l.BodyMemory
	}
	return 4 * l.MaxBodyBytes
}

// Delivery tunes the broker.
type Delivery struct {
	Workers int `yaml:"workers"`
	// PerOffice caps concurrent attempts to one office (0: Workers/4, at least 1;
	// at most Workers), so one office with a hanging endpoint cannot take every
	// worker.
	PerOffice int `yaml:"per_office"`
	// Schedule is the retry schedule on one channel: "standard" (5s, 5m, 30m, 2h, 5h,
	// 10h, 14h, 20h, 24h with ±10 % jitter: ten attempts over about three days, then
	// the office's next channel), "exponential" (backoff_base doubling up to
	// backoff_max, max_attempts attempts), or a comma-separated list of delays
	// ("10s,1m,10m"). Empty: "exponential" when backoff_base is set (configurations
	// from before the schedule, tests, the demo), else "standard".
	Schedule       string        `yaml:"schedule"`
	MaxAttempts    int           `yaml:"max_attempts"`
	BackoffBase    time.Duration `yaml:"backoff_base"` // exponential only (default 2s); at most backoff_max
	BackoffMax     time.Duration `yaml:"backoff_max"`  // exponential only (default 5m)
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
	// TransferMinRate (bytes per second) lengthens an attempt by the size of what
	// it carries: attempt_timeout plus the package's and attachments' bytes at this
	// rate (0: 1 MiB/s, so a 2 GiB attachment may take 34 minutes more). A fixed
	// timeout would cut every push of a big attachment off.
	TransferMinRate int64 `yaml:"transfer_min_rate"`
	// BreakerThreshold is the number of consecutive failures of one office endpoint
	// that open its circuit breaker (0: 5; negative: no breaker); BreakerCooldown how
	// long it stays open before one probe is let through (0: 1m).
	BreakerThreshold int           `yaml:"breaker_threshold"`
	BreakerCooldown  time.Duration `yaml:"breaker_cooldown"`
	// QueueCheck is how often the outbox is compared with the work queue, and an
	// accepted package the queue has no message for is put on it again (0: 2m;
	// negative: never). See docs/operations.md, "The queue check".
	QueueCheck time.Duration `yaml:"queue_check"`
}

// defaultBackoffMax is the broker's backoff_max when it is 0 (broker.Config;
// the two packages import neither the other).
const defaultBackoffMax = 5 * time.Minute

// checkBackoff refuses an explicit backoff_base that no retry would wait: the
// delay starts at backoff_base and is cut to backoff_max, so a base above the
// cap was taken without a word and every retry waited backoff_max — most
// likely the two were swapped. A backoff_max alone below the default base is
// what it says (retries at most that far apart) and is taken.
func (d Delivery) checkBackoff() []error {
	switch {
	case d.BackoffBase <= 0:
		return nil
	case d.BackoffMax > 0 && d.BackoffMax < d.BackoffBase:
		return []error{fmt.Errorf("delivery.backoff_max: %s is less than delivery.backoff_base (%s); every retry would wait backoff_max (swapped?)", d.BackoffMax, d.BackoffBase)}
	case d.BackoffMax == 0 && d.BackoffBase > defaultBackoffMax:
		return []error{fmt.Errorf("delivery.backoff_base: %s is more than delivery.backoff_max (not set: %s); every retry would wait %s, set backoff_max too", d.BackoffBase, defaultBackoffMax, defaultBackoffMax)}
	}
	return nil
}

// Schedule names (see Delivery.Schedule).
const (
	ScheduleStandard    = "standard"
	ScheduleExponential = "exponential"
)

// ScheduleSpec is the retry schedule in effect: Schedule, or its default.
func (d Delivery) ScheduleSpec() string {
	switch {
	case strings.TrimSpace(d.Schedule) != "":
		return strings.TrimSpace(d.Schedule)
	case d.BackoffBase > 0:
		return ScheduleExponential
	}
	return ScheduleStandard
}

func (d Delivery) checkSchedule() error {
	spec := d.ScheduleSpec()
	if spec == ScheduleStandard || spec == ScheduleExponential {
		return nil
	}
	for _, p := range strings.Split(spec, ",") {
		v, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil || v <= 0 {
			return fmt.Errorf("delivery.schedule: %q is neither %q, %q nor a comma-separated list of positive durations", spec, ScheduleStandard, ScheduleExponential)
		}
	}
	return nil
}

// PKI names the gateway's signing key and the trust store. Empty paths mean the
// development PKI under DataDir/pki, created on first start.
type PKI struct {
	Dir         string `yaml:"dir"`
	GatewayKey  string `yaml:"gateway_key"`
	GatewayCert string `yaml:"gateway_cert"`
	TrustDir    string `yaml:"trust_dir"`
}

// Directory lists operator files (XZuFi, YAML overlay) loaded on top of the built-in directory.
type Directory struct {
	Files []string `yaml:"files"`
}

// HTTP tunes the server.
type HTTP struct {
	ReadTimeout     time.Duration `yaml:"read_timeout"`
	WriteTimeout    time.Duration `yaml:"write_timeout"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// UploadMinRate (bytes per second) is the progress rule of multipart uploads,
	// which may take much longer than read_timeout: every read_timeout they must
	// deliver read_timeout × upload_min_rate bytes (default 16 KiB/s).
	UploadMinRate int64 `yaml:"upload_min_rate"`
	// TrustedProxies are the reverse proxies and load balancers in front of the
	// gateway (addresses or CIDR prefixes). Only a request that comes from one of them
	// is believed about its client's address (X-Forwarded-For); the web mailbox's
	// login limits count per client address, and behind a proxy without this every
	// clerk would share the proxy's. Empty: no proxy is trusted.
	TrustedProxies []string `yaml:"trusted_proxies,omitempty"`
}

// Proxies returns TrustedProxies as prefixes (a single address as a /32 or /128);
// entries that do not parse are left out (Validate reports them).
func (h HTTP) Proxies() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range h.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		// ::ffff:10.0.0.0/104 is 10.0.0.0/8: addresses are compared unmapped
		// (clientaddr), and the mapped prefix contained none of them.
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked(), nil
	}
	return p.Masked(), nil
}

// PortalClient is a portal allowed to read the status of its own submissions.
type PortalClient struct {
	Token string `yaml:"token"`
	// Callback, if set, is where the portal wants FIT-Connect new-events callbacks
	// when its applications have news (package callback, docs/operations.md).
	Callback *PortalCallback `yaml:"callback,omitempty"`
}

// PortalCallback is a portal's callback endpoint and its secret (one or more
// "whsec_" keys, newest first; callback-authentication uses the last), as for an
// office's webhook.
type PortalCallback struct {
	Endpoint string `yaml:"endpoint"`
	Secret   string `yaml:"secret"`
}

// OfficeClient is an office's credentials and its delivery channels.
type OfficeClient struct {
	// Token is the office's bearer token for the pull API: one token, taken
	// without the whitespace around it. A blank inside it is part of it (a
	// passphrase such as "correct horse battery staple"): the API compares the
	// whole value a client sends, and a configuration that started with such a
	// token must keep starting and keep authenticating that client. It is
	// never split; a rotation uses Tokens.
	Token string `yaml:"token"`
	// Tokens holds several tokens of the office during a rotation, newest
	// first, each an entry of its own and each valid: an office whose system
	// runs as several instances switches them one after the other, and with a
	// single token one of them was refused (401) until the next restart. A
	// list rather than a separator inside token, because any separator is a
	// character a token in use may already contain. Either token or tokens,
	// not both (Validate).
	Tokens []string `yaml:"tokens,omitempty"`
	// Parallel caps the delivery attempts to this office at once (0: delivery.per_office;
	// at most delivery.workers): more for a Fachverfahren that takes many deliveries
	// at once and drains a backlog faster, fewer for one that does not.
	Parallel int `yaml:"parallel,omitempty"`
	// Channels configures the office's channels by name (channel.Webhook, ...): where
	// the gateway delivers, with which secret and parameters. Endpoint, secret and
	// parameters are read together at each delivery attempt.
	Channels map[string]Channel `yaml:"channels,omitempty"`
	// Webhook is the older spelling of channels.webhook, still accepted; Resolve
	// moves it there.
	Webhook *Webhook `yaml:"webhook,omitempty"`
}

// APITokens returns the office's bearer tokens for the pull API, each without
// the whitespace around it and none empty: token, or the entries of tokens
// (newest first). Validate refuses a configuration with both; were they both
// set anyway, both are returned, so that no configured token is silently
// ignored.
func (o OfficeClient) APITokens() []string {
	var out []string
	for _, tok := range append([]string{o.Token}, o.Tokens...) {
		if tok = strings.TrimSpace(tok); tok != "" {
			out = append(out, tok)
		}
	}
	return out
}

// Channel is one configured channel of an office.
type Channel struct {
	Endpoint string `yaml:"endpoint,omitempty"` // URL, folder, XTA identifier, e-mail address: the channel says
	// Secret is never logged. For the webhook channel: one or more "whsec_" keys
	// separated by spaces, newest first during a rotation; webhook-signature
	// carries a signature under each, callback-authentication under the last
	// (oldest) only (docs/webhook.md, "Key rotation").
	Secret string            `yaml:"secret,omitempty"`
	Params map[string]string `yaml:"params,omitempty"`
}

// Webhook is the older form of an office's webhook channel.
type Webhook struct {
	URL    string `yaml:"url"`
	Secret string `yaml:"secret"`
}

// Channel returns the office's configuration of a channel, if any.
func (o OfficeClient) Channel(name string) (Channel, bool) {
	c, ok := o.Channels[name]
	return c, ok
}

// Normalized moves the older webhook spelling into channels (unless both are set,
// which Validate reports).
func (o OfficeClient) Normalized() OfficeClient {
	if o.Webhook == nil {
		return o
	}
	if _, both := o.Channels[channel.Webhook]; both {
		return o
	}
	o = o.WithChannel(channel.Webhook, Channel{Endpoint: o.Webhook.URL, Secret: o.Webhook.Secret})
	o.Webhook = nil
	return o
}

// WithChannel returns a copy of o with channel name set to c (maps are not shared).
func (o OfficeClient) WithChannel(name string, c Channel) OfficeClient {
	m := make(map[string]Channel, len(o.Channels)+1)
	for k, v := range o.Channels {
		m[k] = v
	}
	m[name] = c
	o.Channels = m
	return o
}

// Default returns the configuration that runs with nothing else given.
func Default() Config {
	return Config{
		GatewayID: "amtsbote-sn",
		Listen:    "127.0.0.1:8080",
		DataDir:   "./data",
		LogLevel:  "info",
		LogFormat: "text",
		NATS:      NATS{MaxMemory: 64 << 20, MaxStore: 1 << 30, Replicas: 1},
		Store:     Store{Backend: StoreBBolt, BatchSize: store.DefaultBatchSize, BatchDelay: store.DefaultBatchDelay},
		Retention: Retention{PackageBytes: 90 * 24 * time.Hour, Records: 10 * 365 * 24 * time.Hour, Every: time.Hour},
		Transfer:  Transfer{LedgerKeep: 30 * 24 * time.Hour},
		Limits: Limits{
			MaxBodyBytes: 32 << 20, MaxDepth: 64, MaxElements: 200_000, MaxAttributes: 64,
			MaxAttachments: 100, MaxAttachmentBytes: 20 << 20,
			MaxReferencedAttachmentBytes: 2 << 30, MaxReferencedPackageBytes: 4 << 30,
		},
		Delivery: Delivery{Workers: 8, MaxAttempts: 8, AttemptTimeout: 30 * time.Second, QueueCheck: 2 * time.Minute},
		HTTP:     HTTP{ReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second, ShutdownTimeout: 20 * time.Second, UploadMinRate: 16 << 10},
	}
}

// Load builds the configuration: defaults, then the YAML file (if path is not
// empty), then the environment. It does not validate; call Validate.
func Load(path string, environ []string) (Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		err = dec.Decode(&c)
		if err != nil && !errors.Is(err, io.EOF) { // an empty file is fine
			err = readableYAMLError(err)
		}
		if errors.Is(err, errOnlyOffDurations) {
			// Every refusal was a bare 0 or negative number for a duration
			// (durations.go): read the file again with those as seconds.
			c = Default()
			err = decodeWithOffDurations(b, &c)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	if err := applyEnv(&c, environ); err != nil {
		return c, err
	}
	return c, nil
}

// Resolve fills the derived defaults that depend on other fields.
func (c *Config) Resolve() {
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen
		if c.TLS.REST {
			c.PublicURL = "https://" + c.Listen
		}
	}
	if c.XTA.AuthorID == "" {
		c.XTA.AuthorID = "amtsbote:" + c.GatewayID
	}
	if c.XTA.AuthorName == "" {
		c.XTA.AuthorName = c.GatewayID
	}
	if c.XTA.ServerID == "" {
		c.XTA.ServerID = c.GatewayID
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	for id, o := range c.Offices {
		c.Offices[id] = o.Normalized()
	}
	if c.PKI.Dir == "" {
		c.PKI.Dir = filepath.Join(c.DataDir, "pki")
	}
}

// Validate reports every problem at once, naming the field.
func (c *Config) Validate() error {
	var errs []error
	if !validGatewayID(c.GatewayID) {
		// The CN of the gateway certificate and, towards peers, the federation
		// schema's GatewayID: another id signed, and every forwarding was refused
		// by the peer's schema check.
		errs = append(errs, fmt.Errorf("gateway_id: %q: letters, digits, '.', '_' and '-' only, starting with a letter or digit", c.GatewayID))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %w", err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: must not be empty"))
	}
	if u, err := url.Parse(c.PublicURL); c.PublicURL != "" && (err != nil || u.Scheme == "" || u.Host == "") {
		errs = append(errs, fmt.Errorf("public_url: %q is not an absolute URL", c.PublicURL))
	} else if err == nil && strings.Trim(u.Path, "/") != "" {
		// Every face answers at fixed paths (/v1/…, /postfach/, the XTA and peer
		// endpoints): behind a proxy that adds a prefix, its links and redirects
		// would point past it (the mailbox's login redirect looped).
		errs = append(errs, fmt.Errorf("public_url: %q has a path; the gateway is served at the root of its host", c.PublicURL))
	}
	for _, l := range []struct {
		key      string
		v        int64
		positive bool // else 0 (the default) is allowed too
	}{
		{"limits.max_body_bytes", c.Limits.MaxBodyBytes, true},
		{"limits.max_depth", int64(c.Limits.MaxDepth), true},
		{"limits.max_elements", int64(c.Limits.MaxElements), true},
		{"limits.max_attributes", int64(c.Limits.MaxAttributes), true},
		{"limits.max_attachments", int64(c.Limits.MaxAttachments), false},
		{"limits.max_attachment_bytes", c.Limits.MaxAttachmentBytes, false},
		{"limits.max_referenced_attachment_bytes", c.Limits.MaxReferencedAttachmentBytes, false},
		{"limits.max_referenced_package_bytes", c.Limits.MaxReferencedPackageBytes, false},
		{"limits.body_memory", c.Limits.BodyMemory, false},
		{"http.upload_min_rate", c.HTTP.UploadMinRate, false},
		// The code takes 0 or less for "the default": a negative value was
		// taken without a word, and the operator who wrote -5 got 16 or
		// workers/4 believing she had set something. Where a negative value
		// means something (limits.verify_parallel, delivery.breaker_threshold,
		// retention.compact_min_free, xta.mtom_threshold, …) it is documented
		// and not listed here.
		{"store.batch_size", int64(c.Store.BatchSize), false},
		{"delivery.per_office", int64(c.Delivery.PerOffice), false},
		{"delivery.transfer_min_rate", c.Delivery.TransferMinRate, false},
		{"nats.max_memory", c.NATS.MaxMemory, false},
		{"nats.max_store", c.NATS.MaxStore, false},
		{"xta.max_message_bytes", c.XTA.MaxMessageBytes, false},
	} {
		if l.positive && l.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %d (must be positive)", l.key, l.v))
		} else if l.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %d (must not be negative; 0 is the default)", l.key, l.v))
		}
	}
	if c.Limits.BodyMemory > 0 && c.Limits.BodyMemory < c.Limits.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("limits.body_memory: %d is less than limits.max_body_bytes (%d): a package of the largest size could never be taken", c.Limits.BodyMemory, c.Limits.MaxBodyBytes))
	}
	for _, d := range []struct {
		key      string
		v        time.Duration
		zeroDflt bool // 0 is the default; only a negative value is refused
	}{
		// net/http takes 0 as no timeout at all (a client sending a header a byte
		// a minute keeps its connection), and a shutdown deadline of 0 has passed
		// before the drain begins: every running request and attempt is cut off.
		{"http.read_timeout", c.HTTP.ReadTimeout, false},
		{"http.write_timeout", c.HTTP.WriteTimeout, false},
		{"http.shutdown_timeout", c.HTTP.ShutdownTimeout, false},
		// As the numbers above: 0 or less was the default, so -1 (the off
		// value of other durations) quietly meant 10ms, 2s, 30s or 1m.
		{"store.batch_delay", c.Store.BatchDelay, true},
		{"delivery.backoff_base", c.Delivery.BackoffBase, true},
		{"delivery.backoff_max", c.Delivery.BackoffMax, true},
		{"delivery.attempt_timeout", c.Delivery.AttemptTimeout, true},
		{"delivery.breaker_cooldown", c.Delivery.BreakerCooldown, true},
	} {
		switch {
		case !d.zeroDflt && d.v <= 0:
			errs = append(errs, fmt.Errorf("%s: %s (must be positive)", d.key, d.v))
		case d.v < 0:
			errs = append(errs, fmt.Errorf("%s: %s (must not be negative; 0 is the default)", d.key, d.v))
		}
	}
	if c.NATS.Replicas < 0 {
		// 0 is taken as 1 everywhere a stream or bucket is made.
		errs = append(errs, fmt.Errorf("nats.replicas: %d (must not be negative; 0 or 1: one copy)", c.NATS.Replicas))
	}
	if c.Delivery.MaxAttempts <= 0 || c.Delivery.Workers <= 0 {
		errs = append(errs, errors.New("delivery: workers and max_attempts must be positive"))
	}
	if err := c.Delivery.checkSchedule(); err != nil {
		errs = append(errs, err)
	}
	for _, p := range c.HTTP.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("http.trusted_proxies: %q is neither an address nor a CIDR prefix", p))
		}
	}
	if k := c.Transfer.LedgerKeep; k > 0 && k < MinLedgerKeep {
		// A record pruned before the broker recorded the office's confirmation
		// leaves the case unconfirmed for good, and a repeated delivery of it
		// writes it again.
		errs = append(errs, fmt.Errorf("transfer.ledger_keep: %s (at least %s; 0: 720h; negative: kept for ever)", k, MinLedgerKeep))
	}
	if q := c.Delivery.QueueCheck; q > 0 && q < time.Second {
		// Each check lists the whole outbox and the queue's subjects.
		errs = append(errs, fmt.Errorf("delivery.queue_check: %s (at least 1s; negative: never)", q))
	}
	if c.Delivery.Workers > 0 && c.Delivery.PerOffice > c.Delivery.Workers {
		// Only workers attempts run at once: a larger cap caps nothing, and the
		// operator who wrote it believed an office got that many. Refused as
		// offices.<id>.parallel above workers is.
		errs = append(errs, fmt.Errorf("delivery.per_office: %d is more than delivery.workers (%d); at most workers attempts run at once", c.Delivery.PerOffice, c.Delivery.Workers))
	}
	errs = append(errs, c.Delivery.checkBackoff()...)
	if e := c.Retention.Every; e > 0 && e < MinRetentionEvery {
		// Each run reads every record (minutes on a large store) and, in a
		// cluster, takes a lease in the store for its period.
		errs = append(errs, fmt.Errorf("retention.every: %s (at least %s; 0 or negative: no background job, only amtsbote gc)", e, MinRetentionEvery))
	}
	for _, id := range sortedKeys(c.Offices) {
		o := c.Offices[id]
		if o.Parallel < 0 || o.Parallel > c.Delivery.Workers {
			errs = append(errs, fmt.Errorf("offices.%s.parallel: %d (0 for delivery.per_office, at most delivery.workers = %d)", id, o.Parallel, c.Delivery.Workers))
		}
		if o.Webhook != nil {
			errs = append(errs, fmt.Errorf("offices.%s: both webhook and channels.webhook are set; keep channels.webhook", id))
		}
		for _, name := range sortedKeys(o.Channels) {
			if !channel.Known(name) {
				errs = append(errs, fmt.Errorf("offices.%s.channels.%s: unknown channel (known: %s)", id, name, strings.Join(channel.All(), ", ")))
			}
		}
		errs = append(errs, validateOfficeTokens(id, o)...)
		if _, pulls := o.Channels[channel.API]; pulls && len(o.APITokens()) == 0 {
			// Its packages would wait for a fetch that cannot come.
			errs = append(errs, fmt.Errorf("offices.%s.channels.%s: the office fetches through the pull API and needs offices.%s.token (or tokens during a rotation)", id, channel.API, id))
		}
	}
	errs = append(errs, c.validateTokens()...)
	errs = append(errs, c.validatePeers()...)
	errs = append(errs, c.validateMailbox()...)
	errs = append(errs, c.validateTLS()...)
	errs = append(errs, c.validateXTA()...)
	if c.NATS.URL == "" && c.NATS.Replicas > 1 {
		// The embedded server is one node: NATS refuses the streams, and its
		// words named no setting.
		errs = append(errs, fmt.Errorf("nats.replicas: %d needs nats.url (a NATS cluster); the embedded server is one node and keeps 1", c.NATS.Replicas))
	}
	switch c.Store.Backend {
	case StoreBBolt:
	case StoreJetStream:
		if c.NATS.URL == "" {
			errs = append(errs, errors.New("store.backend: jetstream needs nats.url (a NATS cluster); the embedded server is for one node"))
		}
	default:
		errs = append(errs, fmt.Errorf("store.backend: %q (want bbolt or jetstream)", c.Store.Backend))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log_format: %q (want text or json)", c.LogFormat))
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default: // was quietly taken as info
		errs = append(errs, fmt.Errorf("log_level: %q (want debug, info, warn or error)", c.LogLevel))
	}
	return errors.Join(errs...)
}

// validateTokens refuses a bearer token configured for more than one client. The
// API looks a request's client up by its token, so a shared token authenticates
// as only one of them, whichever the table took last: an office copied from
// another read the other's packages through the pull API, and an office or portal
// token equal to admin_token opened /v1/admin. The error names the settings,
// never the token.
func (c *Config) validateTokens() []error {
	seen := map[string]string{} // token -> the setting that has it
	var errs []error
	claim := func(key, tok string) {
		// As the API takes them (api.NewClients): "T" and "T\n" are one token.
		tok = strings.TrimSpace(tok)
		if tok == "" {
			return // that client cannot log in
		}
		if first, dup := seen[tok]; dup {
			errs = append(errs, fmt.Errorf("%s: the same token as %s; every client needs a token of its own", key, first))
			return
		}
		seen[tok] = key
	}
	c.eachToken(claim)
	return errs
}

// eachToken calls fn with every bearer token of the configuration and the key
// that sets it (admin_token, portals.<id>.token, offices.<id>.token and
// offices.<id>.tokens[i]), in a fixed order: the checks that tokens differ and
// that they are long enough walk the same list.
func (c *Config) eachToken(fn func(key, tok string)) {
	fn("admin_token", c.AdminToken)
	for _, id := range sortedKeys(c.Portals) {
		fn("portals."+id+".token", c.Portals[id].Token)
	}
	for _, id := range sortedKeys(c.Offices) {
		o := c.Offices[id]
		fn("offices."+id+".token", o.Token)
		for i, tok := range o.Tokens {
			fn(fmt.Sprintf("offices.%s.tokens[%d]", id, i), tok)
		}
	}
}

// validateOfficeTokens refuses an office's tokens setting that could not work
// as the operator meant it; token, one token as it always was, keeps the
// validation it always had (a value that started before still starts). Token
// and tokens together are refused rather than merged: the operator ending a
// rotation by shortening tokens would keep a token in token (perhaps the leaked
// one) without seeing it, and which of them is the newest could not be said.
// An empty entry (an unset placeholder, a stray "-") is refused instead of
// being skipped, since the operator meant a token there. A control character
// other than a tab cannot be sent in an Authorization header (RFC 9110 allows
// none in a field value), so no client could use that token. The errors name
// the entry's position, never its value.
func validateOfficeTokens(id string, o OfficeClient) []error {
	var errs []error
	if len(o.Tokens) > 0 && strings.TrimSpace(o.Token) != "" {
		errs = append(errs, fmt.Errorf("offices.%s: both token and tokens are set; keep tokens (newest first) during a rotation, token otherwise", id))
	}
	for i, tok := range o.Tokens {
		key := fmt.Sprintf("offices.%s.tokens[%d]", id, i)
		tok = strings.TrimSpace(tok) // as the API takes it: a block scalar's newline is no part of it
		if tok == "" {
			errs = append(errs, fmt.Errorf("%s: empty; every entry is a token (newest first)", key))
			continue
		}
		if strings.ContainsFunc(tok, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
			errs = append(errs, fmt.Errorf("%s: has a control character, which no client can send in an Authorization header", key))
		}
	}
	return errs
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// applyEnv sets scalar fields from AMTSBOTE_* variables.
func applyEnv(c *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "AMTSBOTE_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	known := map[string]bool{}
	var errs []error
	var fileOnly []string // the maps and lists of entries, which have no variables
	walk(reflect.ValueOf(c).Elem(), "AMTSBOTE", func(name string, f reflect.Value) {
		known[name] = true
		v, ok := env[name]
		if !ok {
			return
		}
		if err := setScalar(f, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}, func(name string) { fileOnly = append(fileOnly, name) })
	for k := range env {
		if !known[k] && k != "AMTSBOTE_CONFIG" {
			errs = append(errs, unknownEnv(k, fileOnly))
		}
	}
	return errors.Join(errs...)
}

// unknownEnv refuses an environment variable no setting has. One under a map or
// list of entries (an office's token, say) was not misspelt: those have no
// variables, which the refusal says, so the operator puts it into the file
// instead of looking for the right spelling.
func unknownEnv(k string, fileOnly []string) error {
	for _, p := range fileOnly {
		if k == p || strings.HasPrefix(k, p+"_") {
			return fmt.Errorf("%s: unknown setting (%s has no environment variables: set it in the configuration file)", k, p)
		}
	}
	return fmt.Errorf("%s: unknown setting", k)
}

// EnvNames lists every environment variable the configuration reads.
func EnvNames() []string {
	var out []string
	c := Default()
	walk(reflect.ValueOf(&c).Elem(), "AMTSBOTE", func(name string, _ reflect.Value) { out = append(out, name) }, nil)
	return out
}

// walk calls fn with the variable name and the field of every setting under v
// that an environment variable may set, and entries (if not nil) with the name
// of every map or list of entries (portals, offices, peers, mailbox.users),
// which none may.
func walk(v reflect.Value, prefix string, fn func(string, reflect.Value), entries func(string)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Struct:
			walk(f, name, fn, entries)
		case reflect.Map, reflect.Slice:
			if f.Type().Elem().Kind() == reflect.String {
				fn(name, f)
			} else if entries != nil {
				entries(name)
			}
		default:
			fn(name, f)
		}
	}
}

func setScalar(f reflect.Value, s string) error {
	if f.Type() == reflect.TypeOf(time.Duration(0)) {
		// A bare 0 or negative number is an off value, read as seconds as in
		// the file (durations.go), so `-1` means the same in both places.
		if offDuration(s) {
			s = strings.ReplaceAll(s, "_", "") + "s"
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			if _, nerr := strconv.ParseInt(s, 10, 64); nerr == nil {
				return fmt.Errorf("a duration needs its unit: write %ss (or 15m, 720h)", s)
			}
			return err
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		f.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case reflect.Slice:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		f.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported kind %s", f.Kind())
	}
	return nil
}
