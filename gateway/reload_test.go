package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
)

func adminPost(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, b := authed(t, http.MethodPost, url, adminToken)
	return resp.StatusCode, b
}

// authed sends a request without a body, with the bearer token unless it is "",
// and reads the whole answer.
func authed(t *testing.T, method, url, token string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func serviceStatus(t *testing.T, base, key string) int {
	t.Helper()
	resp, err := http.Get(base + "/v1/services/" + key)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestReloadWithoutRestart: the operator edits the directory overlay and the trust
// store and calls the admin endpoint (what SIGHUP also does). A broken overlay is
// refused with the reason and the running directory stays; a good one is live at once;
// a newly trusted portal CA signs accepted packages without a restart.
func TestReloadWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	overlay := filepath.Join(dir, "overlay.yaml")
	write := func(s string) {
		if err := os.WriteFile(overlay, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("services: []\n")
	f := start(t, func(c *config.Config) { c.Directory.Files = []string{overlay} })
	const newKey = "99123456789012"
	if got := serviceStatus(t, f.g.URL(), newKey); got != 404 {
		t.Fatalf("service before reload: %d", got)
	}

	write("services:\n  - {key: \"" + newKey + "\", name: \"Testleistung\", quelle: \"test\"}\n" +
		"responsibilities:\n  - {leistung: \"" + newKey + "\", gebiet: \"14\", stelle: no-such-office}\n")
	status, body := adminPost(t, f.g.URL()+"/v1/admin/directory/reload")
	var p problem.Problem
	_ = json.Unmarshal(body, &p)
	if status != 422 || p.Type != problem.TypeInvalidField || p.Detail == "" {
		t.Fatalf("broken overlay: %d %s", status, body)
	}
	if got := serviceStatus(t, f.g.URL(), newKey); got != 404 {
		t.Fatalf("a refused reload changed the directory: %d", got)
	}

	write("services:\n  - {key: \"" + newKey + "\", name: \"Testleistung\", quelle: \"test\"}\n")
	if status, body := adminPost(t, f.g.URL()+"/v1/admin/directory/reload"); status != 200 {
		t.Fatalf("good overlay: %d %s", status, body)
	}
	if got := serviceStatus(t, f.g.URL(), newKey); got != 200 {
		t.Fatalf("service after reload: %d", got)
	}

	// A second portal CA appears in the trust store: its portal is refused before the
	// reload and accepted after it.
	other, err := signing.EnsureDevPKI(t.TempDir(), "other-gateway") // a fresh CA with a portal "amt24"
	if err != nil {
		t.Fatal(err)
	}
	otherPortal, err := signing.LoadSigner(other.PortalKey, other.PortalCert)
	if err != nil {
		t.Fatal(err)
	}
	p2 := paket.ExampleWith(f.key, paket.NewMessageID(), time.Now())
	p2.Kopf.Ort = paket.Ort{PLZ: "01067"}
	raw, err := otherPortal.Sign(p2.Element())
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := f.portal.SubmitRaw(context.Background(), raw); res.Status != 403 {
		t.Fatalf("unknown CA before reload: %d", res.Status)
	}
	caPEM, err := os.ReadFile(other.CACert)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.pki.TrustDir, signing.RolePortal.Dir(), "second-ca.pem"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if status, body := adminPost(t, f.g.URL()+"/v1/admin/directory/reload"); status != 200 {
		t.Fatalf("reload with new CA: %d %s", status, body)
	}
	if res, _ := f.portal.SubmitRaw(context.Background(), raw); res.Status != 201 {
		t.Fatalf("portal of the newly trusted CA: %d %+v", res.Status, res.Problem)
	}
}
