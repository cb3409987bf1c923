package fileperm

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestSymbolicLinksAreJudgedByTheirTarget: the gateway reads through symbolic
// links (a configuration or trust store linked from /etc to a deployment
// folder), so a link is judged by what it points to. Judged as itself (a link's
// own mode is always 0777) every linked file would be refused; and a
// world-writable certificate behind a link in the trust store must be found.
func TestSymbolicLinksAreJudgedByTheirTarget(t *testing.T) {
	dir := t.TempDir()
	mk := func(path string, mode os.FileMode) string {
		t.Helper()
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	link := func(target, path string) string {
		t.Helper()
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		return path
	}
	deploy := filepath.Join(dir, "deploy")
	etc := filepath.Join(dir, "etc")
	for _, d := range []string{deploy, etc} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	good := mk(filepath.Join(deploy, "amtsbote.yaml"), 0o640)
	open := mk(filepath.Join(deploy, "open.pem"), 0o666)

	if err := WritableByOthers(link(good, filepath.Join(etc, "amtsbote.yaml"))); err != nil {
		t.Errorf("a link to a file of mode 0640: %v, want nil", err)
	}
	if err := WritableByOthers(link(open, filepath.Join(etc, "open.pem"))); !errors.Is(err, ErrWritableByOthers) {
		t.Errorf("a link to a file of mode 0666: %v, want ErrWritableByOthers", err)
	}

	// A trust store folder whose portals/ holds a link to a world-writable file.
	trust := filepath.Join(dir, "trust")
	if err := os.MkdirAll(filepath.Join(trust, "portals"), 0o755); err != nil {
		t.Fatal(err)
	}
	link(open, filepath.Join(trust, "portals", "ca.pem"))
	if err := WritableByOthers(trust); !errors.Is(err, ErrWritableByOthers) {
		t.Errorf("trust store with a link to a file of mode 0666: %v, want ErrWritableByOthers", err)
	}
	// The same store with the link to a protected file passes.
	if err := os.Remove(filepath.Join(trust, "portals", "ca.pem")); err != nil {
		t.Fatal(err)
	}
	link(good, filepath.Join(trust, "portals", "ca.pem"))
	if err := WritableByOthers(trust); err != nil {
		t.Errorf("trust store with a link to a file of mode 0640: %v, want nil", err)
	}
}
