package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/gateway"
)

// startFails runs `amtsbote serve` expecting it to refuse to start.
func startFails(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("serve %v: want exit 1, got %v\n%s", args, err, out)
	}
	if strings.Contains(string(out), "panic") || strings.Contains(string(out), "goroutine ") {
		t.Fatalf("serve %v panicked instead of naming the cause:\n%s", args, out)
	}
	return string(out)
}

// TestStartupErrorsNameTheCause: a port in use, a broken directory file or an
// unusable channel stops the binary with exit 1 and the cause on stderr.
func TestStartupErrorsNameTheCause(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out := startFails(t, dir, "-listen", ln.Addr().String(), "-data", filepath.Join(dir, "d1"))
	if !strings.Contains(out, "cannot start") || !strings.Contains(out, "address already in use") {
		t.Errorf("port in use:\n%s", out)
	}

	bad := filepath.Join(dir, "broken.yaml")
	os.WriteFile(bad, []byte("offices:\n  - id: x\n    name: X\n"), 0o644)
	cfg := filepath.Join(dir, "dir.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\ndirectory:\n  files: ["+bad+"]\n"), 0o600)
	out = startFails(t, dir, "-config", cfg, "-data", filepath.Join(dir, "d2"))
	if !strings.Contains(out, "broken.yaml") {
		t.Errorf("broken directory file not named:\n%s", out)
	}

	ch := filepath.Join(dir, "channels.yaml")
	os.WriteFile(ch, []byte("listen: 127.0.0.1:0\noffices:\n  "+gateway.DemoOfficeID+":\n    channels:\n      webhook: {endpoint: \"not a url\"}\n"), 0o600)
	out = startFails(t, dir, "-config", ch, "-data", filepath.Join(dir, "d3"))
	if !strings.Contains(out, "offices."+gateway.DemoOfficeID+".channels.webhook.endpoint") {
		t.Errorf("bad channel not named:\n%s", out)
	}
}

var tryRe = regexp.MustCompile(`try: amtsbote (submit .*)`)
var verifyRe = regexp.MustCompile(`check it with: amtsbote (verify .*)`)

// TestBannerHintsWork: the hints the binary prints work as printed, with a
// non-default port and data folder.
func TestBannerHintsWork(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "my data")
	p := serve(t, dir, nil, "-listen", "127.0.0.1:0", "-data", data)
	// serve returns at the banner's first line; the hints follow it.
	m := p.waitLine(tryRe, 30*time.Second)
	if m == nil {
		t.Fatalf("no try: line in\n%s", p.stdout.String())
	}
	try := m[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The hint is for a shell: run it through one, from another folder.
	other := t.TempDir()
	out, err := shell(ctx, other, try+" -out receipt.xml")
	if err != nil || !strings.Contains(out, "201") {
		t.Fatalf("%s: %v\n%s", try, err, out)
	}
	m = verifyRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no verify hint in\n%s", out)
	}
	if out, err := shell(ctx, other, m[1]); err != nil {
		t.Fatalf("%s: %v\n%s", m[1], err, out)
	}
}

func shell(ctx context.Context, dir, line string) (string, error) {
	cmd := exec.CommandContext(ctx, "sh", "-c", `"$AMTSBOTE" `+line)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "AMTSBOTE="+binary)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestLookupAgreesWithTheServer: lookup reads the same configuration as serve — its
// directory files and its channels — and shows only channels the gateway can use.
func TestLookupAgreesWithTheServer(t *testing.T) {
	dir := t.TempDir()
	overlay := filepath.Join(dir, "overlay.yaml")
	os.WriteFile(overlay, []byte(`offices:
  - id: pirna-gewerbeamt
    name: "Stadt Pirna, Gewerbeamt (Test)"
    kanaele: [{kind: webhook, level: 3}, {kind: mailbox, level: 1}]
responsibilities:
  - {leistung: "99050012104000", gebiet: "146285229270", stelle: pirna-gewerbeamt}
`), 0o644)
	with := filepath.Join(dir, "with.yaml")
	os.WriteFile(with, []byte("directory:\n  files: ["+overlay+"]\noffices:\n  pirna-gewerbeamt:\n    channels:\n      webhook: {endpoint: \"http://127.0.0.1:9/hook\", secret: whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0}\n"), 0o600)
	without := filepath.Join(dir, "without.yaml")
	os.WriteFile(without, []byte("directory:\n  files: ["+overlay+"]\n"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"lookup", "--service", "99050012104000", "--place", "146285229270"}
	out, err := run(t, ctx, dir, append([]string{args[0], "-config", with}, args[1:]...)...)
	if err != nil || !strings.Contains(out, "pirna-gewerbeamt") || !strings.Contains(out, "Kanal:     webhook") || !strings.Contains(out, "Ersatz:    mailbox") {
		t.Fatalf("with channels: %v\n%s", err, out)
	}
	// Without a configured channel only the web mailbox is left (every office has it).
	out, err = run(t, ctx, dir, append([]string{args[0], "-config", without}, args[1:]...)...)
	if err != nil || !strings.Contains(out, "pirna-gewerbeamt") || !strings.Contains(out, "Kanal:     mailbox") || strings.Contains(out, "webhook") {
		t.Fatalf("without channels: %v\n%s", err, out)
	}
	// Another state's office with no connection to its gateway: intake refuses
	// such a package before the 201, and lookup says so, with exit 4 (no answer,
	// docs/operations.md "Exit codes").
	out, err = run(t, ctx, dir, "lookup", "-config", without, "--service", "99050012104000", "--place", "80331")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 4 || !strings.Contains(out, "würde abgelehnt (422 no-responsible-office)") {
		t.Fatalf("other state: %v\n%s", err, out)
	}
}
