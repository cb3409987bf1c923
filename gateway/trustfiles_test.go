package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/fileperm"
)

// TestEveryTrustedFileIsCheckedForOthersWrite: docs/operations.md names every
// setting whose file decides whom the gateway trusts and refuses it when every
// user may change it. TestTrustOthersMayChangeIsRefused tries the trust store
// and a directory file; here every CA file and a peer's certificate, each on
// its own, so that one dropped from the list (a mutation audit, 2026-12-06,
// dropped tls.client_ca_file and peers[].certificate unnoticed) fails. A
// client CA of her own makes anyone an office or portal over mutual TLS; a
// peer certificate of her own makes her that peer.
func TestEveryTrustedFileIsCheckedForOthersWrite(t *testing.T) {
	for _, tc := range []struct {
		setting string
		set     func(c *config.Config, path string)
	}{
		{"pki.trust_dir", func(c *config.Config, p string) { c.PKI.TrustDir = p }},
		{"tls.client_ca_file", func(c *config.Config, p string) { c.TLS.ClientCAFile = p }},
		{"tls.outbound_ca_file", func(c *config.Config, p string) { c.TLS.OutboundCAFile = p }},
		{"xta.root_ca_file", func(c *config.Config, p string) { c.XTA.RootCAFile = p }},
		{"directory.files[1]", func(c *config.Config, p string) {
			c.Directory.Files = []string{filepath.Join(t.TempDir(), "absent.yaml"), p}
		}},
		{"peers[1].certificate", func(c *config.Config, p string) {
			c.Peers = []config.Peer{{ID: "amtsbote-by"}, {ID: "amtsbote-be", Certificate: p}}
		}},
	} {
		t.Run(tc.setting, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "trusted.pem")
			if err := os.WriteFile(path, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			c := config.Default()
			tc.set(&c, path)
			if err := checkTrustedFiles(&c); err != nil {
				t.Fatalf("mode 0644 refused: %v", err)
			}
			if err := os.Chmod(path, 0o666); err != nil { // past the umask
				t.Fatal(err)
			}
			err := checkTrustedFiles(&c)
			if !errors.Is(err, fileperm.ErrWritableByOthers) || !strings.Contains(err.Error(), tc.setting) || !strings.Contains(err.Error(), path) {
				t.Fatalf("mode 0666: %v, want a refusal naming %s and %s", err, tc.setting, path)
			}
		})
	}
}
