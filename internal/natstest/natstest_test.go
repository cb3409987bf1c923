package natstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeployConfigsAreValid checks the three-node example in deploy/nats with the
// server's own configuration test (nats-server -t, which loads the TLS files: they
// are written for the test and the configurations' /etc/nats/tls/ points there),
// and that the nodes differ only in their names. bus.TestTLSToTheDeployedCluster
// runs them.
func TestDeployConfigsAreValid(t *testing.T) {
	bin := Binary(t)
	files := DeployConfigs(t)
	tlsDir := t.TempDir()
	WriteDeployTLS(t, tlsDir)
	var first string
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"/etc/nats/tls/`) {
			t.Fatalf("%s: no TLS files under /etc/nats/tls", f)
		}
		conf := filepath.Join(t.TempDir(), filepath.Base(f))
		if err := os.WriteFile(conf, []byte(strings.ReplaceAll(string(b), `"/etc/nats/tls/`, `"`+tlsDir+`/`)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-t", "-c", conf)
		cmd.Env = append(os.Environ(), "NATS_AMTSBOTE_PASSWORD=test-only")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "is valid") {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
		var kept []string
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "server_name:") && !strings.Contains(line, "Start: nats-server") {
				kept = append(kept, line)
			}
		}
		norm := strings.Join(kept, "\n")
		if want := "server_name: " + strings.TrimSuffix(filepath.Base(f), ".conf"); !strings.Contains(string(b), want+"\n") {
			t.Errorf("%s: no line %q", f, want)
		}
		if i == 0 {
			first = norm
		} else if norm != first {
			t.Errorf("%s differs from %s in more than the server name", f, files[0])
		}
	}
}
