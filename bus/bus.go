// Package bus runs the message bus the broker moves work through: an embedded NATS
// server with JetStream (in-process, no listening port, by default) or a connection to
// an external NATS cluster when one machine is not enough.
//
// The bus carries ids, never package bytes (NATS' default 1 MB payload limit, and
// JetStream's file store fsyncs only every two minutes): bbolt stays the durable truth.
package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/internal/repeatlimit"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options configure the bus. The defaults run an in-process server under StoreDir.
type Options struct {
	// URL of an external NATS server or cluster; empty runs the embedded server.
	URL string
	// StoreDir is the JetStream file store of the embedded server.
	StoreDir string
	// MaxMemory and MaxStore cap JetStream; without them the server would claim 75% of
	// RAM and disk.
	MaxMemory int64
	MaxStore  int64
	// Listen, if set ("127.0.0.1:4222"), lets other processes reach the embedded server.
	Listen string
	// TLS secures the connection to an external server (URL set).
	TLS    TLSFiles
	Logger *slog.Logger
}

// TLSFiles name the PEM files of a TLS connection to external NATS servers: the CA
// that issued their certificates (empty: the system's roots) and the gateway's
// client certificate and key for servers that verify clients (both or neither).
// They are read again at every (re)connect, so a renewed certificate is used
// without a restart.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

func (t TLSFiles) set() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// ErrTLSFiles wraps a TLS file the bus cannot use.
var ErrTLSFiles = errors.New("bus: nats tls")

// options are the nats.go options of t: TLS 1.2 at least, the servers' names
// checked against their certificates (nats.go sets each server's host as the
// name), the files read once now so a wrong path fails the start, not the first
// reconnect.
func (t TLSFiles) options() ([]nats.Option, error) {
	if !t.set() {
		return nil, nil
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("%w: cert_file and key_file go together", ErrTLSFiles)
	}
	var certCB nats.TLSCertHandler
	if t.CertFile != "" {
		certCB = func() (tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return c, fmt.Errorf("%w: client certificate %s: %w", ErrTLSFiles, t.CertFile, err)
			}
			return c, nil
		}
	}
	var rootsCB nats.RootCAsHandler
	if t.CAFile != "" {
		rootsCB = func() (*x509.CertPool, error) {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("%w: ca_file: %w", ErrTLSFiles, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%w: ca_file %s holds no PEM certificate", ErrTLSFiles, t.CAFile)
			}
			return pool, nil
		}
	}
	return []nats.Option{nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}), nats.ClientTLSConfig(certCB, rootsCB)}, nil
}

// Bus is a running connection (and maybe server).
type Bus struct {
	srv *server.Server
	NC  *nats.Conn
	JS  jetstream.JetStream
	log *slog.Logger

	stopWatch chan struct{} // closed by Close: ends watchReconnects
	watching  sync.WaitGroup
}

// ErrNotReady is returned when the embedded server does not come up in time.
var ErrNotReady = errors.New("bus: nats server not ready")

// Start starts the embedded server (unless Options.URL is set) and connects to it.
func Start(ctx context.Context, o Options) (*Bus, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	b := &Bus{log: o.Logger}
	log := o.Logger
	// Two sources of reasons, each said at most once a minute: failed dials
	// (ReconnectErrHandler) and failed handshakes (watchReconnects).
	dialErrs, handshakeErrs := &repeatlimit.Limit{Every: reasonEvery}, &repeatlimit.Limit{Every: reasonEvery}
	// IgnoreAuthErrorAbort: without it nats.go closes the connection for good when
	// one server refuses it twice in a row, and the gateway stayed unready until
	// restarted, even after that server was fixed or the others were reachable.
	copts := []nats.Option{nats.Name("amtsbote"), nats.MaxReconnects(-1), nats.IgnoreAuthErrorAbort(),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close or Drain
				log.Warn("nats: disconnected; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats: reconnected", "server", nc.ConnectedUrlRedacted())
			dialErrs.Reset() // the next fault is news
			handshakeErrs.Reset()
		}),
		// A dial that fails; a TLS handshake or a CONNECT that fails
		// reaches no callback and is watchReconnects' to say.
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil && dialErrs.Allow(time.Now()) {
				log.Warn("nats: reconnect failed; trying again", "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Error("nats: asynchronous error", "subject", sub.Subject, "err", err)
				return
			}
			log.Error("nats: asynchronous error", "err", err)
		}),
	}
	if err := checkURLs(o.URL); err != nil {
		return nil, err
	}
	copts = append(copts, sharedCredentials(o.URL)...)
	if o.TLS.set() {
		if o.URL == "" {
			return nil, fmt.Errorf("%w: the embedded server has no network port to secure; set the URL of an external server", ErrTLSFiles)
		}
		topts, err := o.TLS.options()
		if err != nil {
			return nil, err
		}
		copts = append(copts, topts...)
	}
	url := o.URL
	if url == "" {
		if o.StoreDir == "" {
			return nil, errors.New("bus: StoreDir required for the embedded server")
		}
		if o.MaxMemory <= 0 {
			o.MaxMemory = 64 << 20
		}
		if o.MaxStore <= 0 {
			o.MaxStore = 1 << 30
		}
		sopts := &server.Options{
			ServerName:         "amtsbote",
			JetStream:          true,
			StoreDir:           o.StoreDir,
			JetStreamMaxMemory: o.MaxMemory,
			JetStreamMaxStore:  o.MaxStore,
			DontListen:         o.Listen == "",
			NoSigs:             true,
			NoLog:              true,
		}
		if o.Listen != "" {
			host, port, err := splitHostPort(o.Listen)
			if err != nil {
				return nil, err
			}
			sopts.Host, sopts.Port = host, port
		}
		srv, err := server.NewServer(sopts)
		if err != nil {
			return nil, fmt.Errorf("bus: new server: %w", err)
		}
		nl := &serverLog{log: o.Logger}
		srv.SetLoggerV2(nl, false, false, false)
		go srv.Start()
		if err := awaitReady(srv, nl, 30*time.Second); err != nil {
			srv.Shutdown()
			return nil, err
		}
		b.srv = srv
		copts = append(copts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(url, copts...)
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("bus: connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		b.shutdownServer()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	b.NC, b.JS = nc, js
	if o.URL != "" {
		b.stopWatch = make(chan struct{})
		b.watching.Add(1)
		go b.watchReconnects(handshakeErrs)
	}
	return b, nil
}

// watchEvery is how often watchReconnects looks, reasonEvery how often a
// reason may be said (variables for tests).
var (
	watchEvery  = 10 * time.Second
	reasonEvery = time.Minute
)

// watchReconnects says, at most once a minute, why the connection to external
// servers does not come back: nats.go hands only a failed dial to
// ReconnectErrHandler, while a TLS handshake that fails (a renewed certificate
// that does not load, a CA that did not issue the server's, a name that does not
// match) is only the connection's last error. Without this the log said
// "disconnected; reconnecting" and then nothing, however long. A refused
// password is the ErrorHandler's (nats.go hands it there) and not said again. An
// error is said only when two looks in a row find it: the status turns to
// reconnecting before the error of the time before is cleared.
func (b *Bus) watchReconnects(limit *repeatlimit.Limit) {
	defer b.watching.Done()
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	var prev string
	for {
		select {
		case <-b.stopWatch:
			return
		case <-tick.C:
		}
		err := b.NC.LastError()
		if b.NC.Status() != nats.RECONNECTING || err == nil || refused(err) {
			prev = ""
			continue
		}
		if err.Error() == prev && limit.Allow(time.Now()) {
			b.log.Warn("nats: still reconnecting; the last attempt failed", "err", err)
		}
		prev = err.Error()
	}
}

// refused reports the server's refusal of the credentials, which nats.go reports
// to the ErrorHandler itself.
func refused(err error) bool {
	for _, e := range []error{nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked, nats.ErrAccountAuthExpired} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// checkURLs parses the comma-separated server URLs as nats.go does (a URL without
// a scheme gets nats://) and names the first that does not parse by its place in
// the list and its host, never quoting it: the URL carries the NATS password, and
// the parse error of one whose password has a character a URL reserves ("%" not
// followed by two hex digits, "#", "/", "?") quoted the URL up to the password
// or whole, into the start error on stderr and the journal.
func checkURLs(urls string) error {
	if urls == "" {
		return nil
	}
	list := strings.Split(urls, ",")
	for i, s := range list {
		s = strings.TrimSpace(s)
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		_, err := url.Parse(s)
		if err == nil {
			continue
		}
		rest := s[strings.Index(s, "://")+3:]
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			return fmt.Errorf("bus: nats.url: server URL %d of %d (…@%s) does not parse; percent-encode the characters %% # / ? @ : in its user and password (the parse error is not shown, it would quote the password)",
				i+1, len(list), rest[at+1:])
		}
		return fmt.Errorf("bus: nats.url: server URL %d of %d does not parse: %w", i+1, len(list), err)
	}
	return nil
}

// sharedCredentials returns the credentials of the first server URL in a
// comma-separated list that carries any (user and password, or a token) as options,
// so the servers named without them get the same. nats.go uses a URL's own
// user info and otherwise the options: with the list the docs show
// ("nats://user:pw@nats-1:4222,nats://nats-2:4222,…") only nats-1 got a password, and
// when nats-1 died every gateway was refused by the others and stopped for good.
func sharedCredentials(urls string) []nats.Option {
	for _, s := range strings.Split(urls, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.User == nil {
			continue
		}
		if pass, ok := u.User.Password(); ok {
			return []nats.Option{nats.UserInfo(u.User.Username(), pass)}
		}
		return []nats.Option{nats.Token(u.User.Username())}
	}
	return nil
}

// Close drains the connection and stops the embedded server, waiting for it.
func (b *Bus) Close() error {
	var err error
	if b.stopWatch != nil {
		close(b.stopWatch)
		b.watching.Wait()
		b.stopWatch = nil
	}
	if b.NC != nil {
		done := make(chan struct{})
		b.NC.SetClosedHandler(func(*nats.Conn) { close(done) })
		if err = b.NC.Drain(); err == nil {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				b.NC.Close()
			}
		} else {
			b.NC.Close()
		}
	}
	b.shutdownServer()
	return err
}

// Healthy reports whether the connection is up.
func (b *Bus) Healthy() bool { return b.NC != nil && b.NC.IsConnected() }

func (b *Bus) shutdownServer() {
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("bus: listen %q: %w", hp, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("bus: listen %q: %w", hp, err)
	}
	return host, port, nil
}

// awaitReady waits until the embedded server takes connections. A server that
// cannot start (its JetStream folder not writable, say) logs why and never gets
// ready: that error ends the wait at once and names the cause. Before, the
// server's log was off, and a start failed after 30 s with "not ready" alone.
func awaitReady(srv *server.Server, nl *serverLog, max time.Duration) error {
	for end := time.Now().Add(max); time.Now().Before(end); {
		if srv.ReadyForConnections(100 * time.Millisecond) {
			return nil
		}
		if msg := nl.failure(); msg != "" {
			return fmt.Errorf("%w: %s", ErrNotReady, msg)
		}
	}
	return ErrNotReady
}

// serverLog is the embedded NATS server's logger: its warnings and errors go to
// the gateway's log, and the first error is kept for awaitReady. Notices, debug
// and trace lines are dropped (the server's chatter at start).
type serverLog struct {
	log *slog.Logger

	mu    sync.Mutex
	first string
}

func (l *serverLog) failure() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

func (l *serverLog) keep(msg string) {
	l.mu.Lock()
	if l.first == "" {
		l.first = msg
	}
	l.mu.Unlock()
}

func (l *serverLog) Noticef(string, ...any) {}
func (l *serverLog) Debugf(string, ...any)  {}
func (l *serverLog) Tracef(string, ...any)  {}
func (l *serverLog) Warnf(format string, v ...any) {
	l.log.Warn("nats server: " + fmt.Sprintf(format, v...))
}
func (l *serverLog) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.keep(msg)
	l.log.Error("nats server: " + msg)
}
func (l *serverLog) Fatalf(format string, v ...any) { l.Errorf(format, v...) }
