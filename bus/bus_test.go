package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/nats-io/nats.go/jetstream"
)

// TestEmbeddedServerThatCannotStartSaysWhy: an embedded server whose JetStream
// folder cannot be made fails Start with the server's reason as soon as it logs
// it, not after 30 s with "not ready" alone (an operator audit: a root-owned
// jetstream/ under the service user).
func TestEmbeddedServerThatCannotStartSaysWhy(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Start(context.Background(), Options{StoreDir: filepath.Join(blocker, "jetstream"), Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		b.Close()
		t.Fatal("started with a JetStream folder inside a file")
	}
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "storage directory is not a directory") {
		t.Fatalf("the error does not say why: %v", err)
	}
}

// authServer is a standalone nats-server process that takes only the user
// amtsbote with one password.
type authServer struct {
	addr, conf string
	done       chan struct{}
	cmd        *exec.Cmd
	log        *testenv.Buffer // the server's output: it logs each refused client
}

// refusals counts the clients the server refused so far.
func (s *authServer) refusals() int {
	return strings.Count(s.log.String(), "authentication error")
}

// startAuthServer starts a nats-server that takes the user amtsbote with password
// pw, killed in cleanup.
func startAuthServer(t *testing.T, pw string) *authServer {
	t.Helper()
	s := &authServer{addr: fmt.Sprintf("127.0.0.1:%d", natstest.FreePorts(t, 1)[0]), conf: filepath.Join(t.TempDir(), "nats.conf"), log: &testenv.Buffer{}}
	cfg := fmt.Sprintf("listen: %s\nauthorization { user: amtsbote, password: %q }\n", s.addr, pw)
	if err := os.WriteFile(s.conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.kill)
	s.start(t)
	return s
}

// start starts the process (again) and waits until it listens.
func (s *authServer) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command(natstest.Binary(t), "-c", s.conf)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(done) }(s.cmd)
	s.done = done
	for deadline := time.Now().Add(20 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", s.addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server does not listen on %s", s.addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (s *authServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// TestCredentialsOfTheFirstURLServeEveryServer: docs/cluster.md writes the NATS
// password into the first URL of nats.url only. The other servers then got no
// password: when the first server died, every gateway was refused by the others,
// nats.go closed the connection for good, and the whole cluster of gateways stayed
// unready (503) until restarted, even after the server came back; a gateway
// started meanwhile did not start at all (an outside audit).
func TestCredentialsOfTheFirstURLServeEveryServer(t *testing.T) {
	srvA, srvB := startAuthServer(t, "s3cret"), startAuthServer(t, "s3cret")
	a, b := srvA.addr, srvB.addr
	urls := "nats://amtsbote:s3cret@" + a + ",nats://" + b
	bs, err := Start(context.Background(), Options{URL: urls, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("start with both servers up: %v", err)
	}
	defer bs.Close()
	// nats.go picks a server at random; make the first one the connected one.
	for !strings.HasSuffix(bs.NC.ConnectedUrl(), a) {
		if err := bs.NC.ForceReconnect(); err != nil {
			t.Fatal(err)
		}
		waitConnected(t, bs)
	}
	srvA.kill()
	// Not waitConnected: right after the kill the client may not have noticed
	// yet and still reports itself connected to a (seen once in make test).
	waitConnectedTo(t, bs, b)
	// A gateway starting while the first server is down.
	bs2, err := Start(context.Background(), Options{URL: urls, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("start with the first server down: %v", err)
	}
	bs2.Close()
}

// waitConnected waits until the bus is connected, failing the test when it is
// closed for good or still not connected after a minute.
func waitConnected(t *testing.T, b *Bus) {
	t.Helper()
	waitConnectedTo(t, b, "")
}

// waitConnectedTo waits until b is connected, to the server at addr if it is not
// empty, at most a minute; a connection closed for good fails at once.
func waitConnectedTo(t *testing.T, b *Bus, addr string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !b.NC.IsConnected() || !strings.HasSuffix(b.NC.ConnectedUrl(), addr); {
		if b.NC.IsClosed() {
			t.Fatalf("the connection was closed for good: %v", b.NC.LastError())
		}
		if time.Now().After(deadline) {
			t.Fatalf("not connected to %q after a minute (connected: %q): %v", addr, b.NC.ConnectedUrl(), b.NC.LastError())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServerThatRefusesDoesNotEndTheConnection: one node whose password was not
// changed with the others' refuses the gateway. nats.go closed the connection for
// good after the second refusal by the same server, so when the node the gateway
// was connected to restarted, the gateway never came back even after that node was
// up again.
func TestServerThatRefusesDoesNotEndTheConnection(t *testing.T) {
	good, stale := startAuthServer(t, "new-password"), startAuthServer(t, "old-password")
	urls := "nats://amtsbote:new-password@" + good.addr + ",nats://amtsbote:new-password@" + stale.addr
	bs, err := Start(context.Background(), Options{URL: urls, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	before := stale.refusals()
	good.kill()
	// Only the refusing server is up: the client is refused by it twice (nats.go
	// gave up at the second).
	for deadline := time.Now().Add(time.Minute); stale.refusals() < before+2 && !bs.NC.IsClosed(); {
		if time.Now().After(deadline) {
			t.Fatalf("not refused twice by the stale server: %v", bs.NC.LastError())
		}
		time.Sleep(20 * time.Millisecond)
	}
	good.start(t)
	waitConnected(t, bs)
}

// TestURLThatDoesNotParseKeepsItsPassword: nats.url carries the NATS password
// (docs/cluster.md), and a password with a character a URL reserves ("%" not
// followed by two hex digits, "#", "/", "?") made nats.go's parse error quote
// the URL whole: the password went into the start error on stderr and into the
// journal, of `serve`, `gc` and the store commands alike. The error now says
// which URL of the list and what to do, without the user part.
func TestURLThatDoesNotParseKeepsItsPassword(t *testing.T) {
	for _, u := range []string{
		"nats://amtsbote:s3cr%zzet@127.0.0.1:1",
		"nats://127.0.0.1:1,nats://amtsbote:s3cr#et@127.0.0.1:2",
		"nats://amtsbote:s3cr/et@127.0.0.1:1",
	} {
		_, err := Start(context.Background(), Options{URL: u, Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			t.Fatalf("%s: started", u)
		}
		if strings.Contains(err.Error(), "s3cr") || strings.Contains(err.Error(), "et@") {
			t.Errorf("the error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), "percent-encode") {
			t.Errorf("the error does not say what to do: %v", err)
		}
	}
}

// TestTLSToTheDeployedCluster runs the three configurations of deploy/nats (TLS on
// the client port, routes authenticated by certificate) and connects as a gateway
// does: with nats.tls.ca_file the bus connects to every node and an R3 stream
// takes writes, so the routes formed over TLS. A gateway without the CA, or with
// no TLS settings at all, is refused rather than talking plain text; a route
// without a certificate of the cluster's CA is refused.
func TestTLSToTheDeployedCluster(t *testing.T) {
	c, files := natstest.StartDeployCluster(t, "route-and-client-test")
	urls := strings.Replace(c.URLs(), "tls://", "tls://amtsbote:route-and-client-test@", 1)
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)

	b, err := Start(ctx, Options{URL: urls, TLS: TLSFiles{CAFile: files.CA}, Logger: quiet})
	if err != nil {
		t.Fatalf("connect with the CA: %v\n%s", err, c.Logs())
	}
	defer b.Close()
	if !b.NC.TLSRequired() {
		t.Error("the connection is not TLS")
	}
	st, err := b.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "TLS_R3", Subjects: []string{"tls.r3"}, Replicas: 3})
	if err != nil {
		t.Fatalf("an R3 stream over TLS routes: %v\n%s", err, c.Logs())
	}
	if _, err := b.JS.Publish(ctx, "tls.r3", []byte("x")); err != nil {
		t.Fatalf("publish to the R3 stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("the stream's replicas: %+v %v", info, err)
	}

	// nats:// URLs with the CA: still TLS (the servers demand it, the bus requires it).
	plainScheme := strings.ReplaceAll(urls, "tls://", "nats://")
	if b2, err := Start(ctx, Options{URL: plainScheme, TLS: TLSFiles{CAFile: files.CA}, Logger: quiet}); err != nil {
		t.Errorf("nats:// URLs with nats.tls: %v", err)
	} else {
		if !b2.NC.TLSRequired() {
			t.Error("nats:// URLs with nats.tls: not TLS")
		}
		b2.Close()
	}
	// Without the CA the servers' certificates are not trusted.
	if b3, err := Start(ctx, Options{URL: urls, TLS: TLSFiles{CAFile: writeOtherCA(t)}, Logger: quiet}); err == nil {
		b3.Close()
		t.Error("connected although the CA did not issue the servers' certificates")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("refused, but not for the certificate: %v", err)
	}
	// Without any TLS setting the connection is refused, not made in plain text.
	if b4, err := Start(ctx, Options{URL: plainScheme, Logger: quiet}); err == nil {
		b4.Close()
		t.Error("connected without TLS")
	}
	// A CA file that holds no certificate fails the start and names the setting.
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, Options{URL: urls, TLS: TLSFiles{CAFile: empty}, Logger: quiet}); !errors.Is(err, ErrTLSFiles) {
		t.Errorf("a CA file without a certificate: %v", err)
	}

	// The route port: a client with no certificate, or one the cluster's CA did not
	// issue, is refused in the TLS handshake.
	addr := c.RouteAddr(t, 0)
	if err := dialRoute(addr, files.CA, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a route without a client certificate: %v", err)
	}
	stranger := natstest.WriteDeployTLS(t, t.TempDir())
	pair, err := tls.LoadX509KeyPair(stranger.ServerCert, stranger.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := dialRoute(addr, files.CA, &pair); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a route with another CA's certificate: %v", err)
	}
	// And the cluster's own certificate is taken (the test's control).
	own, err := tls.LoadX509KeyPair(files.ServerCert, files.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := dialRoute(addr, files.CA, &own); err != nil {
		t.Errorf("a route with the cluster's certificate: %v", err)
	}
}

// dialRoute speaks to a NATS route port as a joining node would: a TLS handshake
// first (the server starts with it on a TLS route port) with the client
// certificate (nil: none), then one read; a refused certificate shows as the
// server's TLS alert there (TLS 1.3 sends it after the client's Finished).
// Anything read, or a timeout, is success: the server waits for the route's
// CONNECT.
func dialRoute(addr, caFile string, cert *tls.Certificate) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	}
	return nil
}

// writeOtherCA writes the certificate of a CA that issued nothing in the cluster.
func writeOtherCA(t *testing.T) string {
	return natstest.WriteDeployTLS(t, t.TempDir()).CA
}

// TestClientCertificateWhereTheClusterAsksForOne: the example's commented
// `verify: true` on the client port, switched on: a gateway with
// nats.tls.cert_file and key_file connects, one without a client certificate is
// refused in the handshake.
func TestClientCertificateWhereTheClusterAsksForOne(t *testing.T) {
	c, files := natstest.StartDeployClusterWith(t, "client-cert-test", func(conf string) string {
		const commented = "  # verify: true\n"
		if !strings.Contains(conf, commented) {
			t.Fatalf("the example no longer has %q to switch on", commented)
		}
		return strings.Replace(conf, commented, "  verify: true\n", 1)
	})
	urls := strings.Replace(c.URLs(), "tls://", "tls://amtsbote:client-cert-test@", 1)
	quiet := slog.New(slog.DiscardHandler)
	b, err := Start(context.Background(), Options{URL: urls, TLS: TLSFiles{CAFile: files.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey}, Logger: quiet})
	if err != nil {
		t.Fatalf("with the client certificate: %v\n%s", err, c.Logs())
	}
	b.Close()
	if b, err := Start(context.Background(), Options{URL: urls, TLS: TLSFiles{CAFile: files.CA}, Logger: quiet}); err == nil {
		b.Close()
		t.Fatal("connected without a client certificate to servers that require one")
	}
	if _, err := Start(context.Background(), Options{URL: urls, TLS: TLSFiles{CAFile: files.CA, CertFile: files.ClientCert}, Logger: quiet}); !errors.Is(err, ErrTLSFiles) {
		t.Errorf("a certificate without its key: %v", err)
	}
}

// TestReconnectThatFailsSaysWhy: the cluster restarts and the gateway's CA file
// was replaced by one that did not issue the servers' certificates (a renewal
// gone wrong). nats.go reports such a failed handshake to no callback; the log
// said "disconnected; reconnecting" and then nothing. Now it says why.
func TestReconnectThatFailsSaysWhy(t *testing.T) {
	defer func(w, r time.Duration) { watchEvery, reasonEvery = w, r }(watchEvery, reasonEvery)
	watchEvery, reasonEvery = 50*time.Millisecond, 200*time.Millisecond
	c, files := natstest.StartDeployCluster(t, "reconnect-test")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pem, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	urls := strings.Replace(c.URLs(), "tls://", "tls://amtsbote:reconnect-test@", 1)
	b, err := Start(context.Background(), Options{URL: urls, TLS: TLSFiles{CAFile: ca}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	other, err := os.ReadFile(writeOtherCA(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, other, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range c.Servers {
		c.Kill(t, i)
	}
	for i := range c.Servers {
		c.Restart(t, i)
	}
	// Under load a restarting server may first give a timeout or EOF: the line
	// wanted is the one that names the certificate.
	said := regexp.MustCompile(`still reconnecting; the last attempt failed.*certificate`)
	deadline := time.Now().Add(30 * time.Second)
	for !said.MatchString(logs.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no reason naming the certificate in the log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b.Healthy() {
		t.Error("connected with a CA that did not issue the servers' certificates")
	}
}
