package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/fileperm"
	"github.com/amtsbote/amtsbote/signing"
)

// TestTrustOthersMayChangeIsRefused: whoever can change the trust store or a
// directory file decides whose packages are accepted and where they go. A
// portals/ folder every local user could write to (a certificate of her own put
// there makes her a portal) was taken at start and at reload without a word
// (an audit, 2026-12-06); both now refuse it, naming the setting and the folder,
// and the trust store in force stays.
func TestTrustOthersMayChangeIsRefused(t *testing.T) {
	overlay := filepath.Join(t.TempDir(), "overlay.yaml")
	if err := os.WriteFile(overlay, []byte("services: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := start(t, func(c *config.Config) { c.Directory.Files = []string{overlay} })
	portals := filepath.Join(f.pki.TrustDir, signing.RolePortal.Dir())
	chmod := func(p string, m os.FileMode) {
		t.Helper()
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	restart := func() error {
		t.Helper()
		cfg := f.g.Config
		cfg.DataDir = t.TempDir()
		cfg.Listen = "127.0.0.1:0"
		g, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil {
			_ = g.Shutdown(context.Background())
		}
		return err
	}
	refused := func(what string, err error, setting, path string) {
		t.Helper()
		if !errors.Is(err, fileperm.ErrWritableByOthers) || !strings.Contains(err.Error(), setting) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want a refusal naming %s and %s", what, err, setting, path)
		}
	}

	chmod(portals, 0o777)
	refused("reload with portals/ 0777", f.g.Reload(), "pki.trust_dir", portals)
	refused("start with portals/ 0777", restart(), "pki.trust_dir", portals)
	chmod(portals, 0o755)
	if err := f.g.Reload(); err != nil {
		t.Fatalf("reload with portals/ 0755: %v", err)
	}

	chmod(overlay, 0o666)
	refused("reload with the overlay 0666", f.g.Reload(), "directory.files[0]", overlay)
	refused("start with the overlay 0666", restart(), "directory.files[0]", overlay)
	chmod(overlay, 0o644)
	if err := restart(); err != nil {
		t.Fatalf("start with everything restricted: %v", err)
	}
}
