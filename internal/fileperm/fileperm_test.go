package fileperm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWritableByOthers(t *testing.T) {
	dir := t.TempDir()
	mk := func(path string, mode os.FileMode) string {
		t.Helper()
		if strings.HasSuffix(path, "/") {
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		// Chmod: the umask must not decide what the test sees.
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return filepath.Clean(path)
	}
	trust := mk(filepath.Join(dir, "trust")+"/", 0o755)
	portals := mk(filepath.Join(trust, "portals")+"/", 0o750)
	cert := mk(filepath.Join(portals, "ca.pem"), 0o644)
	cfg := mk(filepath.Join(dir, "amtsbote.yaml"), 0o640)
	sticky := mk(filepath.Join(dir, "tmp")+"/", os.ModeSticky|0o777) // as /tmp
	inSticky := mk(filepath.Join(sticky, "overlay.yaml"), 0o644)
	open := mk(filepath.Join(dir, "open")+"/", 0o777)
	inOpen := mk(filepath.Join(open, "overlay.yaml"), 0o644)

	for _, p := range []string{trust, cert, cfg, inSticky, filepath.Join(dir, "missing")} {
		if err := WritableByOthers(p); err != nil {
			t.Errorf("%s: %v, want nil", p, err)
		}
	}
	bad := func(path, names string) {
		t.Helper()
		err := WritableByOthers(path)
		if !errors.Is(err, ErrWritableByOthers) || !strings.Contains(err.Error(), names) || !strings.Contains(err.Error(), "chmod o-w "+names) {
			t.Errorf("%s: %v, want an error naming %s", path, err, names)
		}
	}
	// A folder of the trust store, a file in it, the file itself, the folder
	// that holds the file (its entry can be replaced).
	mk(portals+"/", 0o777)
	bad(trust, portals)
	mk(portals+"/", 0o750)
	mk(cert, 0o666)
	bad(trust, cert)
	bad(cert, cert)
	mk(cert, 0o644)
	mk(cfg, 0o666)
	bad(cfg, cfg)
	bad(inOpen, open)
}
