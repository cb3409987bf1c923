// Package e2e tests the real amtsbote binary: built once, run as a separate process
// with its embedded NATS and bbolt on disk, killed with SIGKILL, restarted. These are
// the promises a user relies on, checked the way a user would see them.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/internal/testenv"
)

var binary string

// binDir holds the builds of the binary.
var binDir string

var (
	plainOnce sync.Once
	plainBin  string
	plainErr  error
)

// plainBinary is the binary without the race detector, as it is shipped: measurements
// of memory use need it (the race detector's shadow memory alone is some 200 MB).
// It is the test binary itself when that is built without -race (E2E_RACE=0), else
// built once on first use.
func plainBinary(t *testing.T) string {
	t.Helper()
	if os.Getenv("E2E_RACE") == "0" {
		return binary
	}
	plainOnce.Do(func() {
		plainBin = filepath.Join(binDir, "amtsbote-norace")
		out, err := exec.Command("go", "build", "-o", plainBin, "../cmd/amtsbote").CombinedOutput()
		if err != nil {
			plainErr = fmt.Errorf("building without -race: %w\n%s", err, out)
		}
	})
	if plainErr != nil {
		t.Fatal(plainErr)
	}
	return plainBin
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "amtsbote-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "amtsbote")
	// -race by default (make test); long runs (make soak) build without it:
	// E2E_RACE=0. (Not AMTSBOTE_*: the binary refuses unknown settings of its own
	// prefix, and the tests pass their environment on.)
	args := []string{"build", "-race", "-o", binary, "../cmd/amtsbote"}
	if os.Getenv("E2E_RACE") == "0" {
		args = []string{"build", "-o", binary, "../cmd/amtsbote"}
	}
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the binary failed:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one running `amtsbote serve`.
type proc struct {
	cmd    *exec.Cmd
	url    string
	stderr *testenv.Buffer
	stdout *testenv.Buffer
	exited chan error
}

var servingRe = regexp.MustCompile(`serving on (http://\S+)`)

// serve starts the binary in dir with extra args and waits until it is ready.
func serve(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	return serveBinary(t, binary, dir, env, args...)
}

// serveBinary is serve with another build of the binary.
func serveBinary(t *testing.T, bin, dir string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: &testenv.Buffer{}, stdout: &testenv.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.stdout.Write([]byte(sc.Text() + "\n"))
			if m := servingRe.FindStringSubmatch(sc.Text()); m != nil {
				urlCh <- m[1]
			}
		}
	}()
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	select {
	case p.url = <-urlCh:
	case err := <-p.exited:
		t.Fatalf("serve exited early: %v\n%s", err, p.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not start\n%s", p.stderr.String())
	}
	waitReady(t, p.url)
	return p
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never became ready", url)
}

// waitLine waits up to timeout for a line of the process's standard output that
// re matches and returns the match (nil if none came).
func (p *proc) waitLine(re *regexp.Regexp, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		for _, l := range strings.Split(p.stdout.String(), "\n") {
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

func (p *proc) terminate(t *testing.T, timeout time.Duration) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		return err
	case <-time.After(timeout):
		t.Fatalf("no exit %s after SIGTERM\n%s", timeout, p.stderr.String())
	}
	return nil
}

func run(t *testing.T, ctx context.Context, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}
