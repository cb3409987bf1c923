package config

import (
	"strings"
	"testing"
	"time"
)

// TestValidateRefusesEachUnsafeSetting sets one bad value at a time on the
// defaults and wants Validate's error to name that setting. Each of these checks
// could be dropped without any other test noticing (mutation audit 2026-12-06):
// TestValidate sets many bad values at once and looks at few of the messages.
func TestValidateRefusesEachUnsafeSetting(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(c *Config)
		want string
	}{
		// A zero limit would refuse every package (or, read as "no limit" by a
		// later change, take any size): the docs say "must be positive".
		{"max_body_bytes 0", func(c *Config) { c.Limits.MaxBodyBytes = 0 }, "limits.max_body_bytes: 0 (must be positive)"},
		{"max_depth 0", func(c *Config) { c.Limits.MaxDepth = 0 }, "limits.max_depth: 0 (must be positive)"},
		// The embedded server is one node's: a "cluster" on it shares nothing.
		{"jetstream store without nats.url", func(c *Config) { c.Store.Backend = StoreJetStream }, "store.backend: jetstream needs nats.url"},
		// Replicas on the embedded server stopped the start with NATS's own words
		// ("replicas > 1 not supported in non-clustered mode"), naming no setting.
		{"nats.replicas without nats.url", func(c *Config) { c.NATS.Replicas = 3 }, "nats.replicas: 3 needs nats.url"},
		// tls.rest without a certificate would serve plain HTTP where the operator
		// asked for TLS (or fail at the first request).
		{"tls.rest without a certificate", func(c *Config) { c.TLS.REST = true }, "tls.rest: needs tls.cert_file and tls.key_file"},
		// A password instead of its bcrypt hash: the login would compare against
		// it as a hash and nobody could log in, and the password would sit in
		// the file in the clear.
		{"mailbox password not a bcrypt hash", func(c *Config) {
			c.Mailbox.Users = []MailboxUser{{Name: "anna", Office: "dresden", PasswordHash: "geheim"}}
		}, "mailbox.users[0].password_hash: must be a bcrypt hash"},
		// The docs' example hash, "$2a$12$…", copied as it is (or a hash cut
		// short): it passed this check by its prefix and stopped the start later
		// in the mailbox with "use mailbox.HashPassword", a Go function, not the
		// command that prints a hash.
		{"mailbox password hash cut short", func(c *Config) {
			c.Mailbox.Users = []MailboxUser{{Name: "anna", Office: "dresden", PasswordHash: "$2a$12$…"}}
		}, "mailbox.users[0].password_hash: must be a bcrypt hash (amtsbote mailbox hash)"},
		// An office whose Fachverfahren polls needs a token to poll with, or its
		// packages wait for a fetch that cannot come.
		{"api channel without a token", func(c *Config) {
			c.Offices = map[string]OfficeClient{"dresden": {Channels: map[string]Channel{"api": {}}}}
		}, "offices.dresden.channels.api: the office fetches through the pull API and needs offices.dresden.token"},
		// A skew of days would take replayed forwardings from a peer as fresh.
		{"peer clock_skew over 24h", func(c *Config) {
			c.Peers = []Peer{{ID: "amtsbote-by", Lands: []string{"09"}, BaseURL: "https://gw.by.example", ClockSkew: 25 * time.Hour}}
		}, "peers[0] (amtsbote-by).clock_skew: 25h0m0s is outside 0..24h"},
		// A proxy entry that does not parse was left out of Proxies silently: the
		// operator's proxy would not be trusted and every clerk behind it shared
		// one login limit.
		{"trusted_proxies not an address", func(c *Config) { c.HTTP.TrustedProxies = []string{"10.0.0.0/33"} }, `http.trusted_proxies: "10.0.0.0/33" is neither an address nor a CIDR prefix`},
		// A peer's address that does not parse would be left out of From
		// silently: junk could hold up that peer after every restart.
		{"peer address not an address", func(c *Config) {
			c.Peers = []Peer{{ID: "amtsbote-by", Lands: []string{"09"}, BaseURL: "https://gw.by.example", Addresses: []string{"gw.by.example"}}}
		}, `peers[0] (amtsbote-by).addresses[0]: "gw.by.example" is neither an address nor a CIDR prefix`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.set(&c)
			c.Resolve()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestBodyMemoryMayEqualMaxBody: limits.body_memory is "at least
// max_body_bytes" (docs/operations.md), so one package of the largest size at
// a time is a setting that works and must start.
func TestBodyMemoryMayEqualMaxBody(t *testing.T) {
	c := Default()
	c.Limits.BodyMemory = c.Limits.MaxBodyBytes
	c.Resolve()
	if err := c.Validate(); err != nil {
		t.Fatalf("body_memory = max_body_bytes refused: %v", err)
	}
	c.Limits.BodyMemory = c.Limits.MaxBodyBytes - 1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "limits.body_memory") {
		t.Fatalf("body_memory below max_body_bytes: %v, want refused", err)
	}
}

// TestPeerForTakesTheLongestPrefix: a peer that serves one Kreis of a Land wins
// there over the peer of the whole Land, whatever their order in peers[]
// (docs/federation.md); the last match winning would send that Kreis's
// packages to the wrong state gateway.
func TestPeerForTakesTheLongestPrefix(t *testing.T) {
	kreis := Peer{ID: "amtsbote-muc", Areas: []string{"09162"}, BaseURL: "https://muc.example"}
	land := Peer{ID: "amtsbote-by", Lands: []string{"09"}, BaseURL: "https://by.example"}
	for _, peers := range [][]Peer{{kreis, land}, {land, kreis}} {
		c := Config{Peers: peers}
		if p, ok := c.PeerFor("091620000000"); !ok || p.ID != "amtsbote-muc" {
			t.Errorf("peers %s, %s: PeerFor(Munich) = %q, %v, want amtsbote-muc", peers[0].ID, peers[1].ID, p.ID, ok)
		}
		if p, ok := c.PeerFor("091630000000"); !ok || p.ID != "amtsbote-by" {
			t.Errorf("peers %s, %s: PeerFor(Rosenheim) = %q, %v, want amtsbote-by", peers[0].ID, peers[1].ID, p.ID, ok)
		}
		if _, ok := c.PeerFor("146120000000"); ok {
			t.Errorf("PeerFor(Dresden) found a peer; none serves Saxony")
		}
	}
}

// TestShortTokensCountCharacters: MinTokenLength is in characters, as the docs
// say; a token of ten umlauts is twenty bytes but ten characters, and short.
func TestShortTokensCountCharacters(t *testing.T) {
	c := Default()
	c.AdminToken = strings.Repeat("ä", 10)
	if got := c.ShortTokens(); len(got) != 1 || got[0] != "admin_token" {
		t.Fatalf("ShortTokens() = %v, want [admin_token]", got)
	}
}

// TestNegativeNumbersAreRefused: store.batch_size, delivery.per_office and
// the other settings whose code reads "0 or less" as "the default" took a
// negative value without a word: an operator who wrote -5 got the default and
// did not know. Each is refused, naming the setting, from the environment as
// from the file. The settings whose negative value is documented (an off value:
// "negative: never", "no bound", "always inline") still take it.
func TestNegativeNumbersAreRefused(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"AMTSBOTE_STORE_BATCH_SIZE=-5", "store.batch_size: -5 (must not be negative"},
		{"AMTSBOTE_STORE_BATCH_DELAY=-1", "store.batch_delay: -1s (must not be negative"},
		{"AMTSBOTE_DELIVERY_PER_OFFICE=-5", "delivery.per_office: -5 (must not be negative"},
		{"AMTSBOTE_DELIVERY_BACKOFF_BASE=-2s", "delivery.backoff_base: -2s (must not be negative"},
		{"AMTSBOTE_DELIVERY_BACKOFF_MAX=-1", "delivery.backoff_max: -1s (must not be negative"},
		{"AMTSBOTE_DELIVERY_ATTEMPT_TIMEOUT=-30s", "delivery.attempt_timeout: -30s (must not be negative"},
		{"AMTSBOTE_DELIVERY_TRANSFER_MIN_RATE=-1", "delivery.transfer_min_rate: -1 (must not be negative"},
		{"AMTSBOTE_DELIVERY_BREAKER_COOLDOWN=-1m", "delivery.breaker_cooldown: -1m0s (must not be negative"},
		{"AMTSBOTE_NATS_MAX_MEMORY=-1", "nats.max_memory: -1 (must not be negative"},
		{"AMTSBOTE_NATS_MAX_STORE=-1", "nats.max_store: -1 (must not be negative"},
		{"AMTSBOTE_NATS_REPLICAS=-1", "nats.replicas: -1 (must not be negative"},
		{"AMTSBOTE_XTA_MAX_MESSAGE_BYTES=-1", "xta.max_message_bytes: -1 (must not be negative"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			c, err := Load("", []string{tc.env})
			if err != nil {
				t.Fatal(err)
			}
			c.Resolve()
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error with %q", err, tc.want)
			}
		})
	}
	t.Run("documented negatives", func(t *testing.T) {
		c, err := Load("", []string{
			"AMTSBOTE_LIMITS_VERIFY_PARALLEL=-1", "AMTSBOTE_LIMITS_YIELD_BACKLOG=-1",
			"AMTSBOTE_DELIVERY_BREAKER_THRESHOLD=-1", "AMTSBOTE_DELIVERY_QUEUE_CHECK=-1",
			"AMTSBOTE_TRANSFER_LEDGER_KEEP=-1", "AMTSBOTE_RETENTION_COMPACT_MIN_FREE=-1",
			"AMTSBOTE_XTA_MTOM_THRESHOLD=-1",
			"AMTSBOTE_RETENTION_PACKAGE_BYTES=-1", "AMTSBOTE_RETENTION_RECORDS=-1",
			"AMTSBOTE_RETENTION_UNANSWERED=-1", "AMTSBOTE_RETENTION_EVERY=-1",
		})
		if err != nil {
			t.Fatal(err)
		}
		c.Resolve()
		if err := c.Validate(); err != nil {
			t.Fatalf("documented off values refused: %v", err)
		}
	})
	t.Run("from the file", func(t *testing.T) {
		c := loadResolved(t, "store:\n  batch_size: -5\ndelivery:\n  per_office: -5\n")
		err := c.Validate()
		for _, want := range []string{"store.batch_size: -5", "delivery.per_office: -5"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Validate() = %v, want an error with %q", err, want)
			}
		}
	})
}

// TestDeliveryLimitsMustFitTogether: settings that bound each other and were
// taken in an order where one of them never applies (review 2026-12-06).
// delivery.per_office above delivery.workers capped nothing (only workers run
// at once), while offices.<id>.parallel above workers was refused: both are
// refused now, naming both keys. An explicit delivery.backoff_base above
// delivery.backoff_max was cut to backoff_max at every retry — most likely the
// two swapped; with backoff_max unset its default 5m is the cap, and the
// message says so. Values that work as written still start.
func TestDeliveryLimitsMustFitTogether(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(c *Config)
		want string // "" = accepted
	}{
		{"per_office above workers", func(c *Config) { c.Delivery.Workers, c.Delivery.PerOffice = 8, 9 },
			"delivery.per_office: 9 is more than delivery.workers (8)"},
		{"per_office equal to workers", func(c *Config) { c.Delivery.Workers, c.Delivery.PerOffice = 8, 8 }, ""},
		{"office parallel above workers", func(c *Config) {
			c.Delivery.Workers = 8
			c.Offices = map[string]OfficeClient{"dresden": {Parallel: 9}}
		}, "offices.dresden.parallel: 9 (0 for delivery.per_office, at most delivery.workers = 8)"},
		{"backoff swapped", func(c *Config) { c.Delivery.BackoffBase, c.Delivery.BackoffMax = 5*time.Minute, 2*time.Second },
			"delivery.backoff_max: 2s is less than delivery.backoff_base (5m0s)"},
		{"backoff_base above the default backoff_max", func(c *Config) { c.Delivery.BackoffBase = 10 * time.Minute },
			"delivery.backoff_base: 10m0s is more than delivery.backoff_max (not set: 5m0s)"},
		{"backoff_max equal to backoff_base", func(c *Config) { c.Delivery.BackoffBase, c.Delivery.BackoffMax = time.Second, time.Second }, ""},
		// The default base (2s) above a short backoff_max is what the operator
		// asked for: retries at most that far apart.
		{"backoff_max alone below the default base", func(c *Config) { c.Delivery.BackoffMax = time.Second }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.set(&c)
			c.Resolve()
			wantRefusal(t, c.Validate(), tc.want)
		})
	}
}

// TestRetentionEveryHasAFloor: each retention run reads every record (about two
// minutes for a million from a cold disk, docs/operations.md "Retention") and,
// in a cluster, takes a lease per period; retention.every: 1ms was taken and ran
// the job back to back. Below MinRetentionEvery is refused as queue_check below
// 1s is; 0 and negative stay the documented off value (only `amtsbote gc`).
func TestRetentionEveryHasAFloor(t *testing.T) {
	for _, tc := range []struct {
		every time.Duration
		want  string // "" = accepted
	}{
		{time.Millisecond, "retention.every: 1ms (at least 1m0s; 0 or negative: no background job, only amtsbote gc)"},
		{59 * time.Second, "retention.every: 59s (at least 1m0s"},
		{time.Minute, ""},
		{time.Hour, ""},
		{0, ""},
		{-time.Second, ""},
	} {
		t.Run(tc.every.String(), func(t *testing.T) {
			c := Default()
			c.Retention.Every = tc.every
			c.Resolve()
			wantRefusal(t, c.Validate(), tc.want)
		})
	}
	// From the environment and the file alike.
	c, err := Load("", []string{"AMTSBOTE_RETENTION_EVERY=1ms"})
	if err != nil {
		t.Fatal(err)
	}
	c.Resolve()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "retention.every: 1ms") {
		t.Fatalf("AMTSBOTE_RETENTION_EVERY=1ms: %v, want refused", err)
	}
	c = loadResolved(t, "retention:\n  every: 10s\n")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "retention.every: 10s") {
		t.Fatalf("every: 10s in the file: %v, want refused", err)
	}
}

// wantRefusal fails t unless err is nil where want is "" (accepted), or an
// error that says want.
func wantRefusal(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("Validate() = %v, want accepted", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Validate() = %v, want an error with %q", err, want)
	}
}
