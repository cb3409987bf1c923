package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/channel"
)

// TestErasureWithdrawsTheCaseFolderOnTheBuiltBinary: an office that takes its
// cases from a transfer folder has not imported one yet when the operator
// erases it on request. On the built binary, as an operator runs it: `amtsbote
// admin erase` says the case folder was removed before the office took it, the
// share holds nothing of the case afterwards (no case folder, no withdrawal
// leftover), and `amtsbote admin show` has the withdrawal in the case's
// history. The adapter's and the broker's tests take the races and the hung
// share apart; this one checks that the serving binary wires the erasure to
// the channel.
func TestErasureWithdrawsTheCaseFolderOnTheBuiltBinary(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	share := filepath.Join(dir, "transfer")
	if err := os.MkdirAll(share, 0o700); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dir, "directory.yaml")
	const gewerbe = "99050012104000"
	if err := os.WriteFile(overlay, []byte(fmt.Sprintf(`offices:
  - id: e2e-chemnitz
    name: "Stadt Chemnitz, Gewerbeamt"
    hausanschrift: {strasse: "Markt 1", plz: "09111", ort: Chemnitz}
    kanaele: [{kind: %s}]
responsibilities:
  - {leistung: "%s", gebiet: "145110000000", stelle: e2e-chemnitz}
`, channel.Transfer, gewerbe)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "amtsbote.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
log_level: warn
directory:
  files: [%q]
offices:
  e2e-chemnitz:
    channels:
      transfer: {endpoint: %q}
`, dataDir, overlay, share)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := serve(t, dir, nil, "-config", cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := run(t, ctx, dir, "submit", "-url", p.url, "-data", dataDir, "-place", "Chemnitz", "-service", "Gewerbe anmelden")
	m := regexp.MustCompile(`submission: (\S+)`).FindStringSubmatch(out)
	if err != nil || !strings.HasPrefix(out, "201 accepted") || m == nil {
		t.Fatalf("submit: %v\n%s\n%s", err, out, p.stderr.String())
	}
	id := m[1]

	// What the office's import would see: the share's entries that are not
	// the gateway's (those begin with a dot).
	visible := func() []string {
		ents, err := os.ReadDir(share)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return slices.DeleteFunc(names, func(n string) bool { return strings.HasPrefix(n, ".") })
	}
	var folders []string
	for deadline := time.Now().Add(time.Minute); len(folders) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no case folder in the share after a minute\n%s", p.stderr.String())
		}
		folders = visible()
	}
	if len(folders) != 1 || !strings.Contains(folders[0], id) {
		t.Fatalf("the share holds %v, want the case folder of %s", folders, id)
	}

	out, err = run(t, ctx, dir, "admin", "-url", p.url, "-data", dataDir, "erase", "-operator", "Datenschutz", id)
	if err != nil || !strings.Contains(out, id+" erased") ||
		!strings.Contains(out, "case folder "+folders[0]+" removed from channel transfer before the office took it") {
		t.Fatalf("admin erase: %v\n%s\n%s", err, out, p.stderr.String())
	}
	if left := visible(); len(left) != 0 {
		t.Fatalf("after the erasure the share still shows the office %v", left)
	}
	ents, err := os.ReadDir(share)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp") {
			t.Errorf("the withdrawal left %s in the share", e.Name())
		}
	}
	out, err = run(t, ctx, dir, "admin", "-url", p.url, "-data", dataDir, "show", id)
	if err != nil || !strings.Contains(out, "withdrawal") || !strings.Contains(out, "removed before the office took it") {
		t.Fatalf("admin show after the erasure: %v\n%s", err, out)
	}
}
