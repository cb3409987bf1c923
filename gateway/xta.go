package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/xta"
)

// XTAPath is where the XTA ports live on the XTA listener (the KoSIT test
// environment's paths: /services/XTACore/Recipient, /Sender, /TransportBase).
const XTAPath = "/services/XTACore/"

// ParamCertSHA256 in channels.xta.params pins the office's client certificates
// (comma-separated hex SHA-256 of the DER certificate; several during a rotation).
const ParamCertSHA256 = "cert_sha256"

// newXTAAdapter is the channel table's constructor of the XTA channel.
func newXTAAdapter(d channelDeps) (adapters.Adapter, error) {
	c := d.cfg.XTA
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.ClientCertFile, c.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("xta.client_cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if c.RootCAFile != "" {
		pool, err := certPool(c.RootCAFile)
		if err != nil {
			return nil, fmt.Errorf("xta.root_ca_file: %w", err)
		}
		tc.RootCAs = pool
	}
	return xta.NewAdapter(xta.AdapterOptions{AuthorID: c.AuthorID, AuthorName: c.AuthorName, ServerID: c.ServerID,
		TLS: tc, MTOMThreshold: c.MTOMThreshold, NoServer: c.Listen == "", Logger: d.log})
}

func certPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate in " + file)
	}
	return pool, nil
}

// setupXTA starts the XTA 2 transport service on its own TLS listener, where every
// office authenticates with its client certificate. Off unless xta.listen is set.
func (g *Gateway) setupXTA(ctx context.Context) error {
	c := &g.Config
	if c.XTA.Listen == "" {
		return nil
	}
	devPair := false
	if g.PKI != nil && c.TLS.CertFile == "" {
		// The development PKI's own pair, valid two years, is issued again once it
		// ends within certExpiryWarning: reused for ever, an ended one was served
		// without a word and every XTA client's handshake failed.
		dev, renewed, err := signing.RenewDevTLS(g.PKI, DemoOfficeID, time.Now().Add(certExpiryWarning))
		if err != nil {
			return fmt.Errorf("xta: dev TLS: %w", err)
		}
		if len(renewed) > 0 {
			g.Log.Warn("the development PKI's XTA TLS certificates had ended or were ending within 30 days: issued again from the development CA (clients that pinned the old client certificate need the new one)",
				"files", renewed)
		}
		devPair = true
		c.TLS.CertFile, c.TLS.KeyFile = dev.ServerCert, dev.ServerKey
		if c.TLS.ClientCAFile == "" {
			c.TLS.ClientCAFile = g.PKI.CACert
		}
		g.DevTLS = dev
	}
	if c.TLS.CertFile == "" || c.TLS.ClientCAFile == "" {
		return errors.New("xta.listen: needs tls.cert_file, tls.key_file and tls.client_ca_file (offices authenticate by client certificate)")
	}
	cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
	if err != nil {
		return fmt.Errorf("tls.cert_file: %w", err)
	}
	if devPair {
		// Checked like a configured pair (checkTLSFiles ran before this pair was
		// chosen): a clock before its start, say, is said at start, not by each
		// client's failed handshake.
		leaf := cert.Leaf
		if leaf == nil {
			if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return fmt.Errorf("tls.cert_file (development PKI): %s: %w", c.TLS.CertFile, err)
			}
		}
		if err := checkCertificateInUse("tls.cert_file (development PKI)", c.TLS.CertFile, leaf, false, time.Now(), g.Log); err != nil {
			return err
		}
	}
	pool, err := certPool(c.TLS.ClientCAFile)
	if err != nil {
		return fmt.Errorf("tls.client_ca_file: %w", err)
	}
	accounts, err := g.xtaAccounts()
	if err != nil {
		return err
	}
	srv, err := xta.NewServer(xta.Options{
		Desk: g.Broker, Offices: accounts, AuthorID: c.XTA.AuthorID, AuthorName: c.XTA.AuthorName, ServerID: c.XTA.ServerID,
		Logger: g.Log, MaxMessageBytes: c.XTA.MaxMessageBytes, MTOMThreshold: c.XTA.MTOMThreshold,
		// Big messages in either direction keep the REST face's progress rule.
		TransferWindow: c.HTTP.ReadTimeout, TransferMinRate: c.HTTP.UploadMinRate,
		StoreDown: g.storeUnreachable, SenderFaultStatus: c.XTA.SenderFaultStatus,
	})
	if err != nil {
		return fmt.Errorf("xta: %w", err)
	}
	ln, err := net.Listen("tcp", c.XTA.Listen)
	if err != nil {
		return fmt.Errorf("xta.listen %s: %w", c.XTA.Listen, err)
	}
	// ReadTimeout and WriteTimeout bound a request until the XTA service takes it
	// over: it reads every body and writes every answer under the progress rule
	// (xta.Options.TransferWindow), as a getMessage or sendMessage of tens of
	// megabytes outlives any fixed deadline. ReadHeaderTimeout bounds the headers.
	// Every path goes to the service, which answers one that is no port with
	// NotImplementedException as docs/xta.md says; a mux for XTAPath alone left
	// any other path to net/http's plain-text 404, no SOAP message at all.
	mux := http.NewServeMux()
	mux.Handle("/", srv)
	// Counted with the REST API's requests, by port: without, the XTA face's
	// 5xx never reached AmtsboteServerErrors.
	hs := &http.Server{Handler: g.httpMetrics.Observe(mux, xtaRoute, g.Log), TLSConfig: xta.ServerTLSConfig(cert, pool), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: c.HTTP.ReadTimeout, WriteTimeout: c.HTTP.WriteTimeout, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(g.Log.Handler(), slog.LevelWarn)}
	g.xtaAddr = ln.Addr().String()
	go func() {
		if err := hs.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.Log.Error("xta listener stopped", "err", err)
		}
	}()
	g.closers = append(g.closers, func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	})
	g.Log.Info("XTA 2 transport service listening", "addr", g.xtaAddr, "accounts", len(accounts))
	return nil
}

// xtaRoute is the route label of a request to the XTA listener: its port's
// path, or "unmatched (xta)" (apart from the REST API's "unmatched").
func xtaRoute(r *http.Request) string {
	if p := xta.RouteOf(r.URL.Path); p != "" {
		return p
	}
	return "unmatched (xta)"
}

// XTAURL is the base of the XTA ports ("" when XTA is off).
func (g *Gateway) XTAURL() string {
	if g.xtaAddr == "" {
		return ""
	}
	return "https://" + g.xtaAddr + XTAPath
}

// xtaAccounts are the offices that pull by XTA: channels.xta in pull mode, the
// identifier as endpoint, the pinned client certificates in params. In the
// development set-up the demo office's client certificate is pinned by itself.
func (g *Gateway) xtaAccounts() (xta.Accounts, error) {
	ids := make([]string, 0, len(g.Config.Offices))
	for id := range g.Config.Offices {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out xta.Accounts
	// An identifier names one account: the server takes the first account of an
	// identifier, so the second office's Fachverfahren was refused ("certificate
	// not registered") and never pulled.
	owner := map[string]string{}
	for _, id := range ids {
		ch, ok := g.Config.Offices[id].Channel(channel.XTA)
		// The adapter's rule, so an https endpoint without params.mode is push here
		// too (it was taken for a pull account and asked for a certificate pin).
		if !ok || xta.ModeOf(adapters.Target{Endpoint: ch.Endpoint, Params: ch.Params}) != xta.ModePull {
			continue
		}
		var pins []string
		for _, p := range strings.Split(ch.Params[ParamCertSHA256], ",") {
			if p = strings.ToLower(strings.TrimSpace(p)); p == "" {
				continue
			}
			// A pin that can never match started without a word and refused the
			// office on every call: openssl's whole output line pasted, a SHA-1
			// fingerprint (openssl x509 -fingerprint without -sha256), a typo (an
			// audit, 2026-12-05). During a two-pin rotation a wrong new pin showed
			// only when the old certificate ended.
			if hexPin := strings.ReplaceAll(p, ":", ""); len(hexPin) != 64 || strings.Trim(hexPin, "0123456789abcdef") != "" {
				return nil, fmt.Errorf("offices.%s.channels.xta.params.%s: %q is no SHA-256 fingerprint (64 hex digits, colons allowed; openssl x509 -noout -fingerprint -sha256 -in cert.pem prints one after \"=\")",
					id, ParamCertSHA256, p)
			}
			pins = append(pins, p)
		}
		if len(pins) == 0 && g.DevTLS != nil && id == DemoOfficeID {
			fp, err := certFingerprint(g.DevTLS.ClientCert)
			if err != nil {
				return nil, err
			}
			pins = []string{fp}
		}
		if len(pins) == 0 {
			return nil, fmt.Errorf("offices.%s.channels.xta.params.%s: pin the office's client certificate (hex SHA-256)", id, ParamCertSHA256)
		}
		if other, taken := owner[ch.Endpoint]; taken {
			return nil, fmt.Errorf("offices.%s.channels.xta.endpoint: the XTA identifier %q is office %s's already; one identifier names one account", id, ch.Endpoint, other)
		}
		owner[ch.Endpoint] = id
		out = append(out, xta.Account{OfficeID: id, Identifier: ch.Endpoint, CertSHA256: pins})
	}
	return out, nil
}

func certFingerprint(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	certs, err := signing.ParseCertificatesPEM(b)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(certs[0].Raw)
	return hex.EncodeToString(sum[:]), nil
}
