package gateway

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/signing"
)

// TestReloadWithoutDirectoryFilesReadsTheTrustStore: a gateway on the built-in
// directory alone (no directory.files, the default) reloads its trust store
// all the same: a new portal CA is trusted after the reload, and a broken PEM
// is refused with 422 and the file's name. Every reload test had an overlay,
// so a mutation audit (2026-12-06) that made this case answer "reloaded"
// without reading the trust store went unnoticed.
func TestReloadWithoutDirectoryFilesReadsTheTrustStore(t *testing.T) {
	f := start(t)
	if len(f.g.Config.Directory.Files) != 0 {
		t.Fatalf("the fixture has directory files: %v", f.g.Config.Directory.Files)
	}
	caPEM, raw := f.packageOfAnotherCA(t)
	portals := filepath.Join(f.pki.TrustDir, signing.RolePortal.Dir())

	// A broken PEM: refused, and the new CA beside it not taken.
	if err := os.WriteFile(filepath.Join(portals, "second-ca.pem"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(portals, "broken.pem")
	if err := os.WriteFile(broken, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if status, body := adminPost(t, f.g.URL()+"/v1/admin/directory/reload"); status != 422 || !strings.Contains(string(body), "broken.pem") {
		t.Fatalf("reload with a broken PEM: %d %s", status, body)
	}
	if res, _ := f.portal.SubmitRaw(context.Background(), raw); res.Status != 403 {
		t.Fatalf("after the refused reload the new CA's portal got %d, want 403", res.Status)
	}

	// Without it: the new CA's portal is accepted.
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	if status, body := adminPost(t, f.g.URL()+"/v1/admin/directory/reload"); status != 200 {
		t.Fatalf("reload with the new CA: %d %s", status, body)
	}
	if res, _ := f.portal.SubmitRaw(context.Background(), raw); res.Status != 201 {
		t.Fatalf("portal of the newly trusted CA: %d %+v", res.Status, res.Problem)
	}
}
