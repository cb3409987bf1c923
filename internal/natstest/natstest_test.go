package natstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/internal/testenv"
)

// TestDeployConfigsAreValid checks the three-node example in deploy/nats with the
// server's own configuration test (nats-server -t), and that the nodes differ only in
// their names.
func TestDeployConfigsAreValid(t *testing.T) {
	bin := Binary(t)
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "deploy", "nats", "nats-*.conf"))
	if err != nil || len(files) != 3 {
		t.Fatalf("want three node configurations in deploy/nats, found %v (%v)", files, err)
	}
	var first string
	for i, f := range files {
		cmd := exec.Command(bin, "-t", "-c", f)
		cmd.Env = append(os.Environ(), "AMTSBOTE_NATS_PASSWORD=test-only")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "is valid") {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
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
