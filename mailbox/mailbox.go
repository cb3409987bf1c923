// Package mailbox is the web mailbox (Behördenpostfach): the delivery channel for
// offices that have nothing but a browser (channel.Mailbox, maturity level 1).
//
// It has two faces:
//
//   - the channel (Adapter): Deliver records the arrival in the mailbox's own store
//     and queues an e-mail notice to the office's notice address (Target.Endpoint).
//     The package is already visible to the office through the broker's OfficeDesk, so
//     Deliver answers at once with Confirmation.Pending: the office confirms when a
//     person opens the package. The notice is sent from a durable outbox, retried with
//     backoff while the SMTP server is down, and never holds the package back.
//   - the pages (Handler): server-rendered German HTML for the office's staff: login,
//     inbox with search, state filter and paging, the detail page that shows the form
//     as a readable form, attachment downloads, accept or reject with a reason, a
//     reply to the applicant (a Bescheid, a Rückfrage: a file the desk stores as the
//     case's reply, which the portal reads; reply.go), and an "erledigt" mark (kept
//     in the case's record, Processed, with its events, so that every gateway of a
//     cluster shows it). Every read, every decision and every reply goes through the
//     broker.OfficeDesk with the office of the logged-in user, so a user sees only
//     the submissions of their own office; any other id is a 404.
//
// The notice carries no personal data of the applicant: the service name, the case
// number (submission id) and a link to the detail page, behind the login.
package mailbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/internal/outbound"
	"github.com/amtsbote/amtsbote/internal/repeatlimit"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// User is one office user of the mailbox.
type User struct {
	Name         string // login name, shown as the actor of decisions ("anna.schmidt")
	Office       string // office id (routing.Office id); the user sees only this office
	PasswordHash string // from HashPassword (bcrypt)
}

// SMTPConfig says how notices are sent. An empty Addr sends no notices.
type SMTPConfig struct {
	Addr     string // host:port of the submission server, e.g. "mail.example:587"
	From     string // sender address of the notices
	Username string // for SMTP AUTH PLAIN (only over TLS or to localhost); empty: no auth
	Password string
	// RequireTLS refuses to send when the server does not offer STARTTLS. Without it,
	// STARTTLS is used where offered and the notice goes in clear text otherwise
	// (it holds no personal data).
	RequireTLS bool
	// Outbound verifies the server's certificate for STARTTLS (the system's roots
	// plus tls.outbound_ca_file) and warns when it does not verify; nil: the
	// system's roots.
	Outbound *outbound.Config
}

// Options configure a Mailbox.
type Options struct {
	Desk  broker.OfficeDesk
	Users []User
	// DataDir holds the mailbox's own state: mailbox.db (sessions, arrivals and the
	// notice outbox; the "erledigt" mark is the case record's, Processed).
	DataDir string
	// PublicURL is the address under which staff reach the mailbox, including its
	// prefix, e.g. "https://gateway.example.de/postfach/". Notice links point below
	// it; an https URL makes the session cookie Secure. Default
	// "http://localhost/postfach/".
	PublicURL string
	SMTP      SMTPConfig
	Logger    *slog.Logger
	Now       func() time.Time
	// Downloads is the progress rule of downloads (api.Transfer), and of a
	// reply's upload; zero: its defaults.
	Downloads api.Transfer
	// WriteTimeout bounds the answer to a reply's upload, which is read without
	// the server's deadlines (http.write_timeout); zero: api.DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Bodies bounds the bytes of request bodies held in memory at once, shared
	// with the portal API's intake (limits.body_memory): a reply's file is read
	// whole before the desk stores it. Nil: no bound.
	Bodies *httpbody.Budget
	// TrustedProxies are the reverse proxies in front of the gateway, whose
	// X-Forwarded-For names the client for the login limits (clientAddr).
	TrustedProxies []netip.Prefix
	// SharedSessions, when set, keeps the login sessions in the JetStream bucket
	// SessionsBucket (SessionReplicas replicas) instead of mailbox.db, so that every
	// gateway of a cluster knows every session and the load balancer needs no
	// sticky sessions.
	SharedSessions  jetstream.JetStream
	SessionReplicas int
	// StoreDown, if set, says why the gateway's store is known to be out of reach
	// now (a cluster without quorum); nil: it answers. Every page but the style
	// sheet then says so at once, instead of after the store's timeout (30 s).
	StoreDown func() error
	// Registerer, if set, receives the notice counters
	// (amtsbote_mailbox_notice_attempts_total, amtsbote_mailbox_notices_dropped_total)
	// and the takeovers' (amtsbote_mailbox_takeovers_total).
	Registerer prometheus.Registerer
	// OfficeName, if set, is the name of an office by its id as the
	// jurisdiction directory has it now (reloads included): the header says whose
	// mailbox this is with the name a clerk knows ("Stadt Dresden, Abt. …"),
	// not the configuration's id. Nil, or "" for an id: the id.
	OfficeName func(id string) string

	// Tunables for tests; zero values take the defaults.
	noticeBackoff    time.Duration // first retry delay of a notice; default 30s
	noticeBackoffMax time.Duration // default 30m
	smtpTimeout      time.Duration // one SMTP conversation; default 30s
	storeFault       func(endpoint string) error
}

// Mailbox is the web mailbox. Create with New; Close when done.
type Mailbox struct {
	opts Options
	desk broker.OfficeDesk
	log  *slog.Logger
	now  func() time.Time
	db   *mstore
	// sessions is db, or with Options.SharedSessions the cluster's bucket.
	sessions sessionBook
	users    map[string]User
	offices  map[string]bool
	base     *url.URL // PublicURL
	secure   bool     // cookies Secure

	limiter *limiter
	// checks bounds the password checks running at once (bcrypt: some 250 ms of
	// CPU each). The limiter counts per name, address and /64 network; a guesser
	// with a fresh name per try and many networks (a free IPv6 /48 is 65,536 of
	// them) got a check each and could keep every CPU of the gateway busy —
	// intake and delivery included. Beyond this many at once, a login waits a
	// moment and is then answered 503.
	checks  chan struct{}
	busyLog repeatlimit.Limit // the log line of a login refused for want of a slot
	// limitedLog: the log line of a login refused by the failure limits.
	limitedLog repeatlimit.Limit
	// unknownHash is checked against when the user name is unknown, so that a
	// login takes as long for an unknown name as for a wrong password: a hash at
	// the highest cost among the users' (a fixed cost 12 made unknown names
	// slower than known ones wherever the users' hashes are cheaper).
	unknownHash func() []byte
	unknownCost int // unknownHash's cost: the highest of the users'

	adapter *adapter
	metrics mailboxMetrics

	changes chan struct{} // a person opened a package (Confirmer.Changes)
	kick    chan struct{} // a notice was queued
	stop    chan struct{}
	loops   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New opens (or creates) the mailbox's store in opts.DataDir and starts the notice
// sender.
func New(opts Options) (*Mailbox, error) {
	if opts.Desk == nil {
		return nil, errors.New("mailbox: Options.Desk is required")
	}
	if opts.DataDir == "" {
		return nil, errors.New("mailbox: Options.DataDir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PublicURL == "" {
		opts.PublicURL = "http://localhost/postfach/"
	}
	if opts.noticeBackoff <= 0 {
		opts.noticeBackoff = 30 * time.Second
	}
	if opts.noticeBackoffMax <= 0 {
		opts.noticeBackoffMax = 30 * time.Minute
	}
	if opts.smtpTimeout <= 0 {
		opts.smtpTimeout = 30 * time.Second
	}
	base, err := url.Parse(opts.PublicURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("mailbox: PublicURL %q is not an absolute http(s) URL", opts.PublicURL)
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	if opts.SMTP.Addr != "" {
		if _, err := mail.ParseAddress(opts.SMTP.From); err != nil {
			return nil, fmt.Errorf("mailbox: SMTP.From %q: %w", opts.SMTP.From, err)
		}
	}
	m := &Mailbox{
		opts: opts, desk: opts.Desk, log: opts.Logger.With("component", "mailbox"), now: opts.Now,
		users: map[string]User{}, offices: map[string]bool{}, base: base, secure: base.Scheme == "https",
		limiter: newLimiter(), checks: make(chan struct{}, max(2, runtime.GOMAXPROCS(0))), busyLog: repeatlimit.Limit{Every: time.Minute}, limitedLog: repeatlimit.Limit{Every: time.Minute},
		changes: make(chan struct{}, 1), kick: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	m.metrics = newMailboxMetrics()
	if opts.Registerer != nil {
		for _, c := range m.metrics.collectors() {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("mailbox: metrics: %w", err)
			}
		}
	}
	cost := bcrypt.MinCost
	for _, u := range opts.Users {
		if u.Name == "" || u.Office == "" || u.PasswordHash == "" {
			return nil, fmt.Errorf("mailbox: user %q: name, office and password hash are required", u.Name)
		}
		if _, dup := m.users[u.Name]; dup {
			return nil, fmt.Errorf("mailbox: user %q configured twice", u.Name)
		}
		c, err := bcrypt.Cost([]byte(u.PasswordHash))
		if err != nil {
			return nil, fmt.Errorf("mailbox: user %q: password hash is not a bcrypt hash (amtsbote mailbox hash prints one)", u.Name)
		}
		cost = max(cost, c)
		m.users[u.Name] = u
		m.offices[u.Office] = true
	}
	m.unknownCost = cost
	m.unknownHash = sync.OnceValue(func() []byte {
		h, _ := bcrypt.GenerateFromPassword([]byte("kein-gueltiges-passwort"), cost)
		return h
	})
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	db, err := openStore(filepath.Join(opts.DataDir, "mailbox.db"))
	if err != nil {
		return nil, err
	}
	m.db, m.sessions = db, db
	if opts.SharedSessions != nil {
		if m.sessions, err = openKVSessions(opts.SharedSessions, opts.SessionReplicas); err != nil {
			_ = db.close()
			return nil, err
		}
	}
	m.adapter = &adapter{m: m}
	m.loops.Add(2)
	go m.sendLoop()
	go m.sweepLoop()
	return m, nil
}

// HashPassword returns the bcrypt hash of pw for Options.Users.
func HashPassword(pw string) (string, error) {
	if len(pw) < 8 {
		return "", errors.New("mailbox: password shorter than 8 characters")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost+2)
	if err != nil {
		return "", fmt.Errorf("mailbox: %w", err)
	}
	return string(h), nil
}

// HashGeneratedPassword returns the bcrypt hash of a password the gateway made
// up itself from at least 80 random bits (the development credentials' mailbox
// user), at bcrypt's lowest cost. The cost of HashPassword makes guessing a
// person's password dear; 2^80 guesses stay out of reach at any cost, and the
// credentials file keeps the password in plain text beside its hash anyway. The
// full cost made every first start of a development gateway a quarter of a
// second slower, and seconds under the race detector.
func HashGeneratedPassword(pw string) (string, error) {
	if len(pw) < 20 {
		return "", errors.New("mailbox: a generated password has at least 20 characters")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		return "", fmt.Errorf("mailbox: %w", err)
	}
	return string(h), nil
}

// Close stops the notice sender, closes the channel adapter and the store. Notices
// not yet sent stay in the outbox for the next start.
func (m *Mailbox) Close() error {
	m.closeOnce.Do(func() {
		_ = m.adapter.Close()
		close(m.stop)
		m.loops.Wait()
		m.closeErr = m.db.close()
	})
	return m.closeErr
}

// detailURL is the absolute link to one submission's page, for notices.
func (m *Mailbox) detailURL(id string) string {
	u := *m.base
	u.Path += "s/" + url.PathEscape(id)
	return u.String()
}

// sweepLoop removes expired sessions now and then, and once a day what the
// mailbox keeps of cases the gateway deleted (forgetGone).
func (m *Mailbox) sweepLoop() {
	defer m.loops.Done()
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for round := 0; ; round++ {
		if err := m.sessions.sweepSessions(m.now); err != nil {
			m.log.Warn("sweep sessions", "err", err)
		}
		// Ten minutes after the start, then daily: the round asks the store about
		// every case the mailbox has seen (in cluster mode one request each), and
		// the retention deletes records years after their answer, so a day's
		// delay costs nothing while an hourly round would cost a state's gateway
		// a steady trickle of reads.
		if round%forgetEvery == 1 {
			ctx, cancel := m.ctxStop()
			if n, err := m.forgetGone(ctx); err != nil {
				m.log.Warn("mailbox: forget deleted cases", "err", err, "forgotten", n)
			} else if n > 0 {
				m.log.Info("mailbox: forgot the arrivals and openings of cases the retention deleted", "cases", n)
			}
			cancel()
		}
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

// forgetEvery is how many sweep rounds (10 minutes each) lie between two runs of
// forgetGone: a day.
const forgetEvery = 144

// forgetGone removes the arrival record and the opening (who opened it first: a
// clerk's name) of every case the gateway's store no longer holds. The store's
// retention deletes a record after retention.records; without this, mailbox.db
// kept what it knew of the case for good, outliving the record it belongs to.
// A store that cannot answer now (cluster without quorum) stops the round; the
// next one tries again.
func (m *Mailbox) forgetGone(ctx context.Context) (int, error) {
	cases, err := m.db.cases()
	if err != nil {
		return 0, fmt.Errorf("mailbox: %w", err)
	}
	var gone []string
	for id, office := range cases {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		_, err := m.desk.Get(ctx, office, id)
		switch {
		case errors.Is(err, broker.ErrNotFound):
			gone = append(gone, id)
		case err != nil:
			return 0, fmt.Errorf("mailbox: %w", err)
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	if err := m.db.forget(gone); err != nil {
		return 0, fmt.Errorf("mailbox: %w", err)
	}
	return len(gone), nil
}

func (m *Mailbox) signalOpened() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

// ctxStop is a context cancelled when the mailbox closes.
func (m *Mailbox) ctxStop() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
