package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultsRunAsTheyAre(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Resolve()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Listen != "127.0.0.1:8080" || c.DataDir != "./data" || c.PublicURL != "http://127.0.0.1:8080" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestFileThenEnvironment(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "amtsbote.yaml")
	yaml := `
listen: 127.0.0.1:9090
delivery:
  max_attempts: 3
  backoff_base: 500ms
offices:
  dresden-allgemeine-verwaltung:
    token: t0k
    webhook:
      url: https://fachverfahren.dresden.example/hook
      secret: whsec_c2VjcmV0
directory:
  files: [a.yaml]
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, []string{"AMTSBOTE_LISTEN=127.0.0.1:7070", "AMTSBOTE_DELIVERY_BACKOFF_MAX=1m", "AMTSBOTE_DIRECTORY_FILES=b.yaml, c.xml", "PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7070" {
		t.Errorf("env must win over file: %s", c.Listen)
	}
	if c.Delivery.MaxAttempts != 3 || c.Delivery.BackoffBase != 500*time.Millisecond || c.Delivery.BackoffMax != time.Minute {
		t.Errorf("delivery: %+v", c.Delivery)
	}
	if c.Delivery.Workers != 8 {
		t.Errorf("unset fields keep defaults: workers %d", c.Delivery.Workers)
	}
	c.Resolve()
	if o := c.Offices["dresden-allgemeine-verwaltung"]; o.Token != "t0k" || o.Channels["webhook"].Endpoint != "https://fachverfahren.dresden.example/hook" ||
		o.Channels["webhook"].Secret != "whsec_c2VjcmV0" || o.Webhook != nil {
		t.Errorf("the webhook alias must become channels.webhook: %+v", c.Offices)
	}
	if strings.Join(c.Directory.Files, "|") != "b.yaml|c.xml" {
		t.Errorf("directory files: %v", c.Directory.Files)
	}
}

func TestErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("lissen: x\n"), 0o600)
	tests := []struct {
		name, path string
		env        []string
		want       string
	}{
		{"unknown yaml key", bad, nil, "lissen"},
		{"unknown env var", "", []string{"AMTSBOTE_LISSEN=1"}, "AMTSBOTE_LISSEN"},
		{"bad duration", "", []string{"AMTSBOTE_DELIVERY_BACKOFF_BASE=soon"}, "AMTSBOTE_DELIVERY_BACKOFF_BASE"},
		{"bad number", "", []string{"AMTSBOTE_DELIVERY_WORKERS=many"}, "AMTSBOTE_DELIVERY_WORKERS"},
		{"missing file", filepath.Join(dir, "nope.yaml"), nil, "nope.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.path, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	c := Default()
	c.Listen = "nonsense"
	c.LogFormat = "xml"
	c.Offices = map[string]OfficeClient{
		"x": {Channels: map[string]Channel{"carrier-pigeon": {}}},
		"y": {Webhook: &Webhook{URL: "http://a/"}, Channels: map[string]Channel{"webhook": {Endpoint: "http://b/"}}},
		"z": {Parallel: c.Delivery.Workers + 1},
		"w": {Parallel: -1},
		"v": {Parallel: c.Delivery.Workers}, // allowed
	}
	c.Delivery.QueueCheck = 100 * time.Millisecond
	c.LogLevel = "verbose"
	c.PublicURL = "https://amt.example/amtsbote/"
	c.Limits.MaxAttributes = -1
	c.Limits.MaxAttachmentBytes = -1
	c.HTTP.UploadMinRate = -5
	c.PKI.GatewayKey = "/etc/amtsbote/gateway-key.pem"
	c.NATS.TLS.CertFile = "/etc/amtsbote/nats-client.pem" // no key, and no nats.url
	c.XTA.SenderFaultStatus = 503
	c.Resolve()
	err := c.Validate()
	for _, want := range []string{"listen", "log_format", "offices.x.channels.carrier-pigeon: unknown channel", "offices.y: both webhook and channels.webhook",
		"offices.z.parallel: 9", "offices.w.parallel: -1", "delivery.queue_check: 100ms",
		`log_level: "verbose"`, "public_url: \"https://amt.example/amtsbote\" has a path", "limits.max_attributes: -1 (must be positive)",
		"limits.max_attachment_bytes: -1 (must not be negative", "http.upload_min_rate: -5 (must not be negative", "pki: gateway_key and gateway_cert go together",
		"nats.tls: needs nats.url", "nats.tls: cert_file and key_file go together", "xta.sender_fault_status: 503"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v, want %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "offices.v.") {
		t.Errorf("validate: %v; parallel = workers is allowed", err)
	}
}

// loadResolved loads yaml as a configuration file and resolves it; the test
// fails if it does not load.
func loadResolved(t *testing.T, yaml string) Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "amtsbote.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Resolve()
	return c
}

func TestChannelsForTwoOffices(t *testing.T) {
	c := loadResolved(t, `
offices:
  a:
    token: ta
    channels:
      webhook: {endpoint: "http://127.0.0.1:9/a", secret: whsec_c2VjcmV0c2VjcmV0c2VjcmV0, params: {receiver: "Fachverfahren A"}}
      transfer: {endpoint: /srv/transfer/a}
  b:
    channels:
      webhook: {endpoint: "http://127.0.0.1:9/b", secret: whsec_b3RoZXJvdGhlcm90aGVy}
`)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	a, b := c.Offices["a"], c.Offices["b"]
	if a.Channels["webhook"].Params["receiver"] != "Fachverfahren A" || a.Channels["transfer"].Endpoint != "/srv/transfer/a" || b.Channels["webhook"].Endpoint != "http://127.0.0.1:9/b" {
		t.Fatalf("offices: %+v", c.Offices)
	}
}

func TestEnvNamesCoverNestedFields(t *testing.T) {
	names := strings.Join(EnvNames(), " ")
	for _, want := range []string{"AMTSBOTE_LISTEN", "AMTSBOTE_NATS_URL", "AMTSBOTE_DELIVERY_MAX_ATTEMPTS", "AMTSBOTE_LIMITS_MAX_BODY_BYTES"} {
		if !strings.Contains(names, want) {
			t.Errorf("missing %s", want)
		}
	}
}

// TestTokenServesOneClient: a bearer token names exactly one client. The token
// table is keyed by the token, so a token configured twice went to whichever
// client came last (map order): a second office's pull API read the first
// office's packages, a portal another portal's, and an office token that was also
// the admin token opened /v1/admin. The gateway refused none of these at start.
func TestTokenServesOneClient(t *testing.T) {
	base := func() Config {
		c := Default()
		c.AdminToken = "T0K-admin"
		c.Portals = map[string]PortalClient{"amt24": {Token: "T0K-pa"}, "portal-b": {Token: "T0K-pb"}}
		c.Offices = map[string]OfficeClient{"office-a": {Token: "T0K-oa"}, "office-b": {Token: "T0K-ob"}, "office-c": {}, "office-d": {}}
		c.Resolve()
		return c
	}
	if c := base(); c.Validate() != nil {
		t.Fatalf("distinct tokens (and offices without one): %v", c.Validate())
	}
	for name, tc := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"two portals":       {func(c *Config) { c.Portals["portal-b"] = PortalClient{Token: "T0K-pa"} }, "portals.portal-b.token: the same token as portals.amt24.token"},
		"two offices":       {func(c *Config) { c.Offices["office-b"] = OfficeClient{Token: "T0K-oa"} }, "offices.office-b.token: the same token as offices.office-a.token"},
		"portal and office": {func(c *Config) { c.Offices["office-b"] = OfficeClient{Token: "T0K-pb"} }, "offices.office-b.token: the same token as portals.portal-b.token"},
		"admin and office":  {func(c *Config) { c.Offices["office-a"] = OfficeClient{Token: "T0K-admin"} }, "offices.office-a.token: the same token as admin_token"},
		"admin and portal":  {func(c *Config) { c.Portals["amt24"] = PortalClient{Token: "T0K-admin"} }, "portals.amt24.token: the same token as admin_token"},
		// The API takes tokens without the whitespace around them.
		"one with a newline": {func(c *Config) { c.Offices["office-b"] = OfficeClient{Token: "T0K-oa\n"} }, "offices.office-b.token: the same token as offices.office-a.token"},
	} {
		t.Run(name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "T0K") {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
}

// TestOfficeTokensForARotation: an office whose system runs as two instances
// rotates its API token with offices.<id>.tokens, newest first, each entry a
// token of its own and each valid; with token alone one instance was refused
// (401) until the next restart. A list, not a separator inside token: a token
// in use may contain any character, blanks included (TestOfficeTokenWithBlanks
// IsOneToken). An entry no client can send, an empty one, one repeated or
// shared with another client, and token beside tokens are refused at start,
// naming the entry's position, never its value.
func TestOfficeTokensForARotation(t *testing.T) {
	const newTok, oldTok = "T0K-office-new", "T0K-office-old"
	path := filepath.Join(t.TempDir(), "amtsbote.yaml")
	// The form docs/operations.md shows; a block scalar's newline is no part
	// of the token, as for token.
	yaml := "offices:\n  office-a:\n    tokens:\n      - " + newTok + "\n      - |\n        " + oldTok + "\n  office-b:\n    token: T0K-ob\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Resolve()
	if err := c.Validate(); err != nil {
		t.Fatalf("two tokens for a rotation: %v", err)
	}
	if got := c.Offices["office-a"].APITokens(); len(got) != 2 || got[0] != newTok || got[1] != oldTok {
		t.Fatalf("tokens %q, want the new one, then the old one", got)
	}
	if got := c.SecretSettings(); !slices.Contains(got, "offices.office-a.tokens") {
		t.Errorf("secret settings %q: tokens is missing (a world-readable file with it would not be warned about)", got)
	}
	for name, tc := range map[string]struct {
		o    OfficeClient
		want string
	}{
		"a control character": {OfficeClient{Tokens: []string{newTok, "T0K-office\x00-old"}}, "offices.office-a.tokens[1]: has a control character"},
		"a line break inside": {OfficeClient{Tokens: []string{"T0K-office\nnew", oldTok}}, "offices.office-a.tokens[0]: has a control character"},
		"an empty entry":      {OfficeClient{Tokens: []string{newTok, " "}}, "offices.office-a.tokens[1]: empty"},
		"the same one twice":  {OfficeClient{Tokens: []string{newTok, newTok + "\n"}}, "offices.office-a.tokens[1]: the same token as offices.office-a.tokens[0]"},
		"another office's":    {OfficeClient{Tokens: []string{newTok, "T0K-ob"}}, "offices.office-b.token: the same token as offices.office-a.tokens[1]"},
		// Merged, an operator ending the rotation in tokens would keep the
		// token in token (perhaps the leaked one) without seeing it.
		"token beside tokens": {OfficeClient{Token: "T0K-office-other", Tokens: []string{newTok, oldTok}}, "offices.office-a: both token and tokens are set"},
	} {
		t.Run(name, func(t *testing.T) {
			c := Default()
			c.Offices = map[string]OfficeClient{"office-a": tc.o, "office-b": {Token: "T0K-ob"}}
			c.Resolve()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "T0K") {
				t.Errorf("the error shows a token: %v", err)
			}
		})
	}
	// A tab inside is sendable in a header (RFC 9110 allows it in a field
	// value) and token accepts it: moving such a token into tokens must not
	// refuse it.
	c = Default()
	c.Offices = map[string]OfficeClient{"office-a": {Tokens: []string{"T0K-office\tnew", oldTok}}}
	c.Resolve()
	if err := c.Validate(); err != nil {
		t.Errorf("a tab inside an entry: %v", err)
	}
}

// TestOfficeTokenWithBlanksIsOneToken: offices.<id>.token is one token, taken
// whole without the whitespace around it; a blank inside it is part of it (a
// passphrase), as the API compares the whole value a client sends. For a few
// hours it was split at blanks for a rotation: a passphrase of short words no
// longer started (each word under 16 characters was refused), and one of long
// words started while the office system sending it whole got 401 and each half
// alone authenticated the office (gateway.TestOfficeTokenWithBlanksAuthenticatesWhole).
func TestOfficeTokenWithBlanksIsOneToken(t *testing.T) {
	for _, tok := range []string{"correct horse battery staple", "office-a-secret-part-one office-a-secret-part-two"} {
		c := loadResolved(t, "offices:\n  office-a:\n    token: \""+tok+"\"\n    channels: {api: {}}\n"+
			// A half of the secret as another office's token: distinct
			// tokens, as the half is no token of office-a.
			"  office-b:\n    token: \""+strings.Fields(tok)[1]+"\"\n")
		if err := c.Validate(); err != nil {
			t.Errorf("token %q, which started before, is refused: %v", tok, err)
		}
		if got := c.Offices["office-a"].APITokens(); len(got) != 1 || got[0] != tok {
			t.Errorf("token %q taken as %q, want it whole", tok, got)
		}
	}
}

// TestExposedSecretsWarning: a configuration file that every user can read and that
// holds tokens or secrets is named with its settings (never the values); one
// readable by owner and group only, or without secrets, is not.
func TestExposedSecretsWarning(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const body = "admin_token: adm-0123456789abcdef\nportals:\n  amt24: {token: portal-0123456789abcdef}\n" +
		"offices:\n  o1:\n    token: office-0123456789abcdef\n    channels: {webhook: {endpoint: 'https://fv.example/in', secret: whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0}}\n"
	for _, tc := range []struct {
		name, body string
		mode       os.FileMode
		want       bool
	}{
		{"world-readable with tokens", body, 0o644, true},
		{"group-readable with tokens", body, 0o640, false},
		{"world-readable without secrets", "listen: 127.0.0.1:8080\n", 0o644, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tc.name, " ", "-")+".yaml", tc.body, tc.mode)
			c, err := Load(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			w := ExposedSecretsWarning(p, &c)
			if !tc.want {
				if w != "" {
					t.Fatalf("warned: %s", w)
				}
				return
			}
			for _, s := range []string{p, "mode 0644", "admin_token", "portals.amt24.token", "offices.o1.token", "and 1 more", "chmod 0640"} {
				if !strings.Contains(w, s) {
					t.Errorf("warning %q does not say %q", w, s)
				}
			}
			for _, secret := range []string{"adm-0123", "portal-0123", "office-0123", "whsec_"} {
				if strings.Contains(w, secret) {
					t.Errorf("warning shows a value: %s", w)
				}
			}
		})
	}
}

// TestUnknownSettingNamesThePath: a mistyped key is named by its place in the
// file and the setting it was probably meant to be, not by the Go type that
// holds it ("field gateway_kye not found in type config.PKI").
func TestUnknownSettingNamesThePath(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"pki:\n  gateway_kye: /x\n", "line 2: pki.gateway_kye is not a setting (did you mean pki.gateway_key?)"},
		{"listn: 127.0.0.1:8080\n", "line 1: listn is not a setting (did you mean listen?)"},
		{"offices:\n  amt:\n    channels:\n      webhook:\n        endpont: https://x\n", "line 5: offices.<id>.channels.<id>.endpont is not a setting (did you mean offices.<id>.channels.<id>.endpoint?)"},
		{"frobnicate: 1\n", "line 1: frobnicate is not a setting"},
	} {
		f := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(f, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(f, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "config.") {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// TestDurationOffValuesAsTheDocsWriteThem: the documentation's retention block
// (`unanswered: 0`, `every: 0`) stopped the gateway at start — the YAML library
// reads a duration only with its unit — while AMTSBOTE_RETENTION_EVERY=0 was
// fine. A bare 0 or negative number is read as that many seconds, also inside
// maps (an office's channels) and next to an unknown key, which is still named; a
// positive bare number is still refused, with the unit to write.
func TestDurationOffValuesAsTheDocsWriteThem(t *testing.T) {
	load := func(y string) (Config, error) {
		t.Helper()
		f := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(f, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(f, nil)
	}
	c, err := load("retention:\n  package_bytes: 2160h\n  unanswered: 0\n  every: 0\ndelivery:\n  queue_check: -1\n  workers: 3\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Retention.Unanswered != 0 || c.Retention.Every != 0 || c.Delivery.QueueCheck != -time.Second ||
		c.Retention.PackageBytes != 2160*time.Hour || c.Delivery.Workers != 3 {
		t.Fatalf("read as %+v %+v", c.Retention, c.Delivery)
	}
	// The defaults of what the file does not name stay (the file is read twice).
	if c.HTTP.ReadTimeout != Default().HTTP.ReadTimeout {
		t.Fatalf("http.read_timeout %s, want the default", c.HTTP.ReadTimeout)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"retention:\n  every: 30\n", "line 2: a duration needs its unit: write 30s"},
		{"retention:\n  every: 0\n  evrey: 1h\n", "line 3: retention.evrey is not a setting"},
	} {
		if _, err := load(tc.yaml); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// TestDurationOffValuesFromTheEnvironment: the table of settings says
// "negative: never" (delivery.queue_check, transfer.ledger_keep, …) and the file
// takes a bare -1 for it, but AMTSBOTE_DELIVERY_QUEUE_CHECK=-1 stopped the start
// with "time: missing unit in duration": the same value, another answer, by where
// it was written. The environment now reads a bare 0 or negative number as the
// file does; a positive bare number is still refused, with the unit to write.
func TestDurationOffValuesFromTheEnvironment(t *testing.T) {
	c, err := Load("", []string{"AMTSBOTE_DELIVERY_QUEUE_CHECK=-1", "AMTSBOTE_TRANSFER_LEDGER_KEEP=-1", "AMTSBOTE_RETENTION_EVERY=0"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Delivery.QueueCheck != -time.Second || c.Transfer.LedgerKeep != -time.Second || c.Retention.Every != 0 {
		t.Fatalf("read as queue_check %s, ledger_keep %s, every %s", c.Delivery.QueueCheck, c.Transfer.LedgerKeep, c.Retention.Every)
	}
	_, err = Load("", []string{"AMTSBOTE_RETENTION_EVERY=30"})
	if want := "AMTSBOTE_RETENTION_EVERY: a duration needs its unit: write 30s"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("AMTSBOTE_RETENTION_EVERY=30: %v, want %q", err, want)
	}
}

// TestEnvironmentForAMapSaysFileOnly: the reference says the maps and lists of
// entries (portals, offices, peers, mailbox.users) have no environment
// variables, but AMTSBOTE_OFFICES_DRESDEN_TOKEN, the way one would keep an
// office's token out of the file, was refused as "unknown setting", as if
// misspelt. The error now says where such a setting goes; a misspelt scalar is
// still just unknown.
func TestEnvironmentForAMapSaysFileOnly(t *testing.T) {
	for _, name := range []string{"AMTSBOTE_OFFICES_DRESDEN_TOKEN", "AMTSBOTE_PORTALS_AMT24_TOKEN", "AMTSBOTE_PEERS", "AMTSBOTE_MAILBOX_USERS"} {
		_, err := Load("", []string{name + "=x"})
		if err == nil || !strings.Contains(err.Error(), name+": unknown setting") || !strings.Contains(err.Error(), "in the configuration file") {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err := Load("", []string{"AMTSBOTE_DELIVERY_WORKERZ=3"})
	if err == nil || strings.Contains(err.Error(), "configuration file") {
		t.Errorf("AMTSBOTE_DELIVERY_WORKERZ: %v, want a plain unknown setting", err)
	}
}

// TestHTTPTimeoutsMustBePositive: http.read_timeout, http.write_timeout and
// http.shutdown_timeout of 0 or less were taken as they are. A server timeout of
// 0 is none at all in net/http (a client that sends a header a byte a minute
// holds its connection for ever), and a shutdown_timeout of 0
// (AMTSBOTE_HTTP_SHUTDOWN_TIMEOUT=0) cut every running request and delivery
// attempt off at each stop and made it exit 1.
func TestHTTPTimeoutsMustBePositive(t *testing.T) {
	c, err := Load("", []string{"AMTSBOTE_HTTP_READ_TIMEOUT=0", "AMTSBOTE_HTTP_WRITE_TIMEOUT=-1s", "AMTSBOTE_HTTP_SHUTDOWN_TIMEOUT=0"})
	if err != nil {
		t.Fatal(err)
	}
	c.Resolve()
	err = c.Validate()
	for _, want := range []string{"http.read_timeout: 0s (must be positive)", "http.write_timeout: -1s (must be positive)", "http.shutdown_timeout: 0s (must be positive)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v, want %s", err, want)
		}
	}
}

// TestNATSPasswordIsASecret: nats.url carries the NATS cluster's password
// (docs/cluster.md: nats://amtsbote:…@nats-1:4222,…), which lets whoever has it
// read and write the whole store in cluster mode. SecretSettings left it out,
// so a world-readable configuration with it was not warned about.
func TestNATSPasswordIsASecret(t *testing.T) {
	path, c := loadReadableByAll(t, "nats:\n  url: nats://amtsbote:pw@nats-1:4222,nats://nats-2:4222\n")
	if w := ExposedSecretsWarning(path, &c); !strings.Contains(w, "nats.url") || strings.Contains(w, "pw") {
		t.Fatalf("warning %q, want one naming nats.url, without the password", w)
	}
	c.NATS.URL = "nats://nats-1:4222,nats://nats-2:4222" // no credentials: nothing to warn about
	if w := ExposedSecretsWarning(path, &c); w != "" {
		t.Fatalf("warning %q for a URL without credentials", w)
	}
}

// TestGatewayIDIsChecked: gateway_id is the CN of the gateway certificate, the
// signer its receipts name and, towards peer gateways, the GatewayID of the
// federation schema (letters, digits, '.', '_', '-'). Anything went, and an id
// such as "Amtsbote Sachsen" or an empty AMTSBOTE_GATEWAY_ID started, signed,
// and had every forwarding refused by the peer's schema check; peers[].id had
// the rule already.
func TestGatewayIDIsChecked(t *testing.T) {
	for _, id := range []string{"", "Amtsbote Sachsen", "-sn", "amtsbote/sn"} {
		c := Default()
		c.GatewayID = id
		c.Resolve()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "gateway_id:") {
			t.Errorf("gateway_id %q: %v, want an error naming gateway_id", id, err)
		}
	}
	c := Default()
	c.GatewayID = "amtsbote-sn.2_b"
	c.Resolve()
	if err := c.Validate(); err != nil {
		t.Errorf("gateway_id %q: %v", c.GatewayID, err)
	}
}

// TestTransferLedgerKeep: transfer.ledger_keep bounds how long the transfer
// channel's records of confirmed cases stay in an office folder. A keep shorter
// than a day could remove a record before the broker recorded the confirmation
// it was asked about; it is refused, naming the setting. 0 (the adapter's 30
// days) and negative (kept for ever) are taken, also from the environment.
func TestTransferLedgerKeep(t *testing.T) {
	if k := Default().Transfer.LedgerKeep; k != 30*24*time.Hour {
		t.Fatalf("default transfer.ledger_keep %s, want 720h", k)
	}
	for _, tc := range []struct {
		env string
		ok  bool
	}{{"1h", false}, {"23h59m", false}, {"24h", true}, {"0", true}, {"-1s", true}, {"2160h", true}} {
		c, err := Load("", []string{"AMTSBOTE_TRANSFER_LEDGER_KEEP=" + tc.env})
		if err != nil {
			t.Fatalf("%s: %v", tc.env, err)
		}
		err = c.Validate()
		if tc.ok && err != nil {
			t.Errorf("%s refused: %v", tc.env, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "transfer.ledger_keep")) {
			t.Errorf("%s: %v, want a refusal naming transfer.ledger_keep", tc.env, err)
		}
	}
}

// TestPasswordHashesAndEndpointTokensAreSecrets: a world-readable configuration
// was warned about for its tokens only. A clerk's bcrypt hash lets whoever reads
// it guess her password offline, beyond the mailbox's login limits, and an
// office's webhook URL often carries its access token in the query or the user
// part; a file holding only these started without a word. The warning now names
// them (never a value); an endpoint without either is no secret.
func TestPasswordHashesAndEndpointTokensAreSecrets(t *testing.T) {
	path, c := loadReadableByAll(t, `mailbox:
  users:
    - {name: anna, office: office-a, password_hash: "$2a$12$LqXFzjQqrQwo5VwKNj1tueluLr6uGxTMNCSIdwAEqcHSKpwVmcfPG"}
offices:
  office-a:
    channels:
      webhook: {endpoint: "https://fv.example/hook?access_token=tok-in-query"}
  office-b:
    channels:
      webhook: {endpoint: "https://user:tok-in-userinfo@fv.example/hook"}
  office-c:
    channels:
      webhook: {endpoint: "https://fv.example/hook"}
portals:
  amt24:
    callback: {endpoint: "https://amt24.example/cb?key=tok-in-callback"}
`)
	want := []string{"portals.amt24.callback.endpoint", "offices.office-a.channels.webhook.endpoint",
		"offices.office-b.channels.webhook.endpoint", "mailbox.users[0].password_hash"}
	if got := c.SecretSettings(); !slices.Equal(got, want) {
		t.Errorf("secret settings %q, want %q", got, want)
	}
	w := ExposedSecretsWarning(path, &c)
	if !strings.Contains(w, "readable by every user") {
		t.Fatalf("warning %q, want one", w)
	}
	for _, v := range []string{"tok-in-", "$2a$"} {
		if strings.Contains(w, v) {
			t.Errorf("the warning shows a value (%s): %s", v, w)
		}
	}
}

// loadReadableByAll writes yaml to a configuration file every user of the
// machine may read (mode 0644, whatever the umask) and loads it: what
// ExposedSecretsWarning is about.
func loadReadableByAll(t *testing.T, yaml string) (string, Config) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "amtsbote.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return path, c
}

// TestMappedPrefixesAreIPv4: an IPv4-mapped prefix in http.trusted_proxies or
// peers[].addresses (::ffff:10.0.0.0/104, as some IPv6-only tooling writes
// it) is its IPv4 prefix; kept mapped it contained no address, since requests'
// addresses are compared unmapped.
func TestMappedPrefixesAreIPv4(t *testing.T) {
	h := HTTP{TrustedProxies: []string{"::ffff:10.0.0.0/104", "::ffff:192.0.2.7", "2001:db8::/32"}}
	p := Peer{Addresses: []string{"::ffff:198.51.100.0/120"}}
	for _, tc := range []struct {
		prefixes []netip.Prefix
		addr     string
		want     bool
	}{
		{h.Proxies(), "10.1.2.3", true},
		{h.Proxies(), "192.0.2.7", true},
		{h.Proxies(), "11.0.0.1", false},
		{h.Proxies(), "2001:db8::1", true},
		{p.From(), "198.51.100.9", true},
		{p.From(), "198.51.101.9", false},
	} {
		a := netip.MustParseAddr(tc.addr)
		got := false
		for _, x := range tc.prefixes {
			got = got || x.Contains(a)
		}
		if got != tc.want {
			t.Errorf("%s in %v: %v, want %v", tc.addr, tc.prefixes, got, tc.want)
		}
	}
}
