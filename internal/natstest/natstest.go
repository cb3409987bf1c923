// Package natstest runs real nats-server processes for tests: a cluster of separate
// processes on loopback that a test can SIGKILL and restart, which an in-process
// server cannot show. The binary is built from the nats-server module go.mod
// already requires (`go build github.com/nats-io/nats-server/v2`), so the tests
// run the same server version the gateway embeds. A binary that cannot be built or
// a server that does not start fails the test; it never skips.
package natstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/internal/freeport"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of a nats-server binary built from the module's required
// version, building it once per test process into the user cache folder (the Go
// build cache makes later builds a link step).
func Binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		root := testenv.RepoRoot(tb)
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/nats-io/nats-server/v2").Output()
		if err != nil {
			buildErr = fmt.Errorf("go list nats-server version: %v", err)
			return
		}
		version := strings.TrimSpace(string(out))
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "amtsbote-natstest")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		path := filepath.Join(dir, "nats-server-"+version)
		tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
		cmd := exec.Command("go", "build", "-o", tmp, "github.com/nats-io/nats-server/v2")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build github.com/nats-io/nats-server/v2: %v\n%s", err, out)
			return
		}
		if err := os.Rename(tmp, path); err != nil {
			buildErr = err
			return
		}
		buildPath = path
	})
	if buildErr != nil {
		tb.Fatalf("natstest: cannot build nats-server (the cluster tests need it; it comes from the module cache or the Go proxy): %v", buildErr)
	}
	return buildPath
}

// Server is one nats-server process of a cluster.
type Server struct {
	Name      string
	ClientURL string
	conf      string
	dir       string
	routeAddr string // StartDeployCluster: the route port's address
	log       *testenv.Buffer
	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{}
}

// Cluster is n nats-server processes with JetStream, routed to each other.
type Cluster struct {
	Servers []*Server
	bin     string
	tb      testing.TB
	env     []string      // added to the servers' environment
	opts    []nats.Option // added to Connect's options (credentials, TLS)
}

// StartCluster starts an n-node cluster (JetStream on, file store under a temp
// folder) and waits until JetStream has a meta leader. The processes are killed in
// cleanup.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	bin := Binary(tb)
	base := tb.TempDir()
	ports := FreePorts(tb, 2*n)
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i]))
	}
	c := &Cluster{bin: bin, tb: tb}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		dir := filepath.Join(base, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		conf := filepath.Join(dir, "nats.conf")
		cfg := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream {
  store_dir: %q
  max_memory_store: 64MB
  max_file_store: 2GB
}
cluster {
  name: amtsbote-test
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, name, ports[i], dir, ports[n+i], strings.Join(routes, ", "))
		if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
			tb.Fatal(err)
		}
		c.Servers = append(c.Servers, &Server{Name: name, ClientURL: fmt.Sprintf("nats://127.0.0.1:%d", ports[i]), conf: conf, dir: dir})
	}
	c.startAll(tb)
	return c
}

// startAll starts every server (killed in cleanup) and waits until JetStream has
// a meta leader.
func (c *Cluster) startAll(tb testing.TB) {
	tb.Helper()
	tb.Cleanup(func() {
		for _, s := range c.Servers {
			s.kill()
		}
	})
	for _, s := range c.Servers {
		if err := c.start(s); err != nil {
			tb.Fatal(err)
		}
	}
	c.WaitReady(tb, 60*time.Second)
}

// URLs is every server's client URL, comma separated, for nats.Connect.
func (c *Cluster) URLs() string {
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.ClientURL)
	}
	return strings.Join(urls, ",")
}

// Connect connects to the cluster with reconnects to any server, closed in cleanup.
func (c *Cluster) Connect(tb testing.TB) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(c.URLs(), append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond),
		nats.RetryOnFailedConnect(false), nats.Name(tb.Name())}, c.opts...)...)
	if err != nil {
		tb.Fatalf("natstest: connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

func (c *Cluster) start(s *Server) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		s.log = &testenv.Buffer{Limit: 1 << 20} // bounded: the start is what explains failures
	}
	fmt.Fprintf(s.log, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.bin, "-c", s.conf)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("natstest: start %s: %w", s.Name, err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(s.done)
	addr := s.ClientURL[strings.Index(s.ClientURL, "://")+3:] // nats:// or tls://
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("natstest: %s exited at start:\n%s", s.Name, s.log.String())
		default:
		}
		if conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			conn.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("natstest: %s does not listen on %s:\n%s", s.Name, addr, s.log.String())
}

// Kill sends SIGKILL to server i and waits until the process is gone.
func (c *Cluster) Kill(tb testing.TB, i int) {
	tb.Helper()
	if !c.Servers[i].kill() {
		tb.Fatalf("natstest: %s was not running", c.Servers[i].Name)
	}
}

func (s *Server) kill() bool {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return false
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	return true
}

// Restart starts a killed server again with its configuration and store folder.
func (c *Cluster) Restart(tb testing.TB, i int) {
	tb.Helper()
	if err := c.start(c.Servers[i]); err != nil {
		tb.Fatal(err)
	}
}

// Index returns the index of the server with that name, or -1.
func (c *Cluster) Index(name string) int {
	for i, s := range c.Servers {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// WaitReady waits until JetStream answers account requests (a meta leader exists).
func (c *Cluster) WaitReady(tb testing.TB, within time.Duration) {
	tb.Helper()
	nc := c.Connect(tb)
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(within)
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, lastErr = js.AccountInfo(ctx)
		cancel()
		if lastErr == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("natstest: JetStream not ready within %s: %v\n%s", within, lastErr, c.Logs())
}

// WaitCurrent waits until every replica of the stream is current (a restarted
// server has caught up).
func (c *Cluster) WaitCurrent(tb testing.TB, js jetstream.JetStream, stream string, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := js.Stream(ctx, stream)
		cancel()
		if err == nil {
			info := st.CachedInfo()
			ok := info.Cluster != nil && info.Cluster.Leader != "" && len(info.Cluster.Replicas) == len(c.Servers)-1
			if ok {
				for _, r := range info.Cluster.Replicas {
					if !r.Current || r.Offline {
						ok = false
					}
				}
			}
			if ok {
				return
			}
			last = fmt.Sprintf("%+v", info.Cluster)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("natstest: stream %s not current within %s: %s", stream, within, last)
}

// Logs returns every server's output, for failure messages.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, s := range c.Servers {
		s.mu.Lock()
		if s.log != nil {
			fmt.Fprintf(&b, "--- %s\n%s", s.Name, s.log.String())
		}
		s.mu.Unlock()
	}
	return b.String()
}

// FreePorts picks n loopback ports for processes that bind them later (see package
// freeport for why not port 0).
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports, err := freeport.Pick(n)
	if err != nil {
		tb.Fatal(err)
	}
	return ports
}
