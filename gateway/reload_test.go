package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/routers"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/api/contracttest"
	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/internal/testenv"
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
	caPEM, raw := f.packageOfAnotherCA(t)
	if res, _ := f.portal.SubmitRaw(context.Background(), raw); res.Status != 403 {
		t.Fatalf("unknown CA before reload: %d", res.Status)
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

// TestReloadIsAllOrNothing: the directory and the trust store are reloaded
// together, and a bad file in either leaves both as they were. Before, the
// directory was swapped before the trust store was read: a broken PEM in
// portals/ left a new service live, and a broken overlay let a new portal CA
// sign accepted packages, while the reload answered "not reloaded".
func TestReloadIsAllOrNothing(t *testing.T) {
	overlay := filepath.Join(t.TempDir(), "overlay.yaml")
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(overlay, "services: []\n")
	f := start(t, func(c *config.Config) { c.Directory.Files = []string{overlay} })
	const newKey = "99123456789012"
	goodOverlay := "services:\n  - {key: \"" + newKey + "\", name: \"Testleistung\", quelle: \"test\"}\n"
	brokenPEM := filepath.Join(f.pki.TrustDir, signing.RolePortal.Dir(), "broken.pem")

	// A package signed by a portal under a CA the trust store does not hold yet.
	caPEM, raw := f.packageOfAnotherCA(t)
	newCA := filepath.Join(f.pki.TrustDir, signing.RolePortal.Dir(), "second-ca.pem")
	unchanged := func(what string) {
		t.Helper()
		if got := serviceStatus(t, f.g.URL(), newKey); got != 404 {
			t.Errorf("%s: the new service is %d, want 404 (the directory was swapped)", what, got)
		}
		if res, _ := f.portal.SubmitRaw(context.Background(), raw); res.Status != 403 {
			t.Errorf("%s: the new CA's portal got %d, want 403 (the trust store was swapped)", what, res.Status)
		}
	}

	// A good overlay and a broken trust store: neither changes.
	write(overlay, goodOverlay)
	write(brokenPEM, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
	status, body := adminPost(t, f.g.URL()+"/v1/admin/directory/reload")
	if status != 422 || !strings.Contains(string(body), "broken.pem") {
		t.Fatalf("reload with a broken PEM: %d %s", status, body)
	}
	unchanged("broken trust store, good overlay")
	// The operator's status of the directory says the last reload failed and why.
	if st := f.g.Directory.Status(); !strings.Contains(st.LastError, "broken.pem") {
		t.Errorf("directory status after a failed trust store: %+v", st)
	}

	// A broken overlay and a good trust store with a new CA: neither changes.
	if err := os.Remove(brokenPEM); err != nil {
		t.Fatal(err)
	}
	write(newCA, string(caPEM))
	write(overlay, goodOverlay+"responsibilities:\n  - {leistung: \""+newKey+"\", gebiet: \"14\", stelle: no-such-office}\n")
	status, body = adminPost(t, f.g.URL()+"/v1/admin/directory/reload")
	if status != 422 || !strings.Contains(string(body), "overlay.yaml") {
		t.Fatalf("reload with a broken overlay: %d %s", status, body)
	}
	unchanged("broken overlay, good trust store")

	// Both good: both in force.
	write(overlay, goodOverlay)
	if status, body := adminPost(t, f.g.URL()+"/v1/admin/directory/reload"); status != 200 {
		t.Fatalf("good reload: %d %s", status, body)
	}
	if got := serviceStatus(t, f.g.URL(), newKey); got != 200 {
		t.Errorf("the new service after a good reload: %d", got)
	}
	if res, _ := f.portal.SubmitRaw(context.Background(), raw); res.Status != 201 {
		t.Errorf("the new CA's portal after a good reload: %d %+v", res.Status, res.Problem)
	}
}

// reloadChecked posts a reload to base, checks the answer against
// api/openapi.yaml and returns its status and each gateway's result.
func reloadChecked(t *testing.T, router routers.Router, base string) (int, []byte, map[string]api.NodeReload) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/admin/directory/reload", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if _, _, err := router.FindRoute(req); err != nil {
		t.Fatal(err)
	}
	resp, body := authed(t, http.MethodPost, req.URL.String(), adminToken)
	if err := contracttest.Load(t).Check(req, resp.StatusCode, resp.Header, body); err != nil {
		t.Fatalf("the reload's %d breaks the contract: %v\n%s", resp.StatusCode, err, body)
	}
	var answer struct{ Nodes []api.NodeReload }
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatalf("reload: %v\n%s", err, body)
	}
	nodes := map[string]api.NodeReload{}
	for _, n := range answer.Nodes {
		nodes[n.Node] = n
	}
	return resp.StatusCode, body, nodes
}

// TestClusterReloadReachesEveryGateway: two gateways of a cluster (one
// JetStream store, the same overlay file). The operator edits the overlay and
// reloads through the load balancer, which picks one gateway: every gateway
// reloads and the answer lists each. Before, only the gateway the request
// reached reloaded and answered 200 "reloaded"; the other kept the old
// directory (and trust store), so a service was 200 at one and 404 at the
// other and a package for it 201 at one and 422 at the other.
func TestClusterReloadReachesEveryGateway(t *testing.T) {
	overlay := filepath.Join(t.TempDir(), "overlay.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(overlay, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("services: []\n")
	url := natstest.StartSingle(t).URLs()
	cluster := func(cfg *config.Config) {
		cfg.Store.Backend, cfg.NATS.URL = config.StoreJetStream, url
		cfg.Directory.Files = []string{overlay}
	}
	one, two := start(t, cluster), start(t, cluster)
	router := contractRouter(t)
	const newKey = "99123456789012"
	good := "services:\n  - {key: \"" + newKey + "\", name: \"Testleistung\", quelle: \"test\"}\n" +
		"responsibilities:\n  - {leistung: \"" + newKey + "\", gebiet: \"14\", stelle: " + DemoOfficeID + "}\n"
	write(good)
	status, body, nodes := reloadChecked(t, router, one.g.URL()) // the load balancer picked "one"
	if status != 200 || len(nodes) != 2 {
		t.Fatalf("reload at one: %d %s", status, body)
	}
	for _, n := range nodes {
		if n.Status != api.ReloadDone || n.Counts == nil || n.Address == "" {
			t.Errorf("a gateway's result: %+v", n)
		}
	}
	submit := func(f *fixture) int {
		t.Helper()
		p := paket.ExampleWith(newKey, paket.NewMessageID(), time.Now())
		p.Kopf.Ort = paket.Ort{PLZ: "01067"}
		res, err := f.portal.Submit(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		return res.Status
	}
	for name, f := range map[string]*fixture{"one": one, "two": two} {
		if got := serviceStatus(t, f.g.URL(), newKey); got != 200 {
			t.Errorf("the new service at %s: %d, want 200", name, got)
		}
		if got := submit(f); got != 201 {
			t.Errorf("a package for the new service at %s: %d, want 201", name, got)
		}
	}

	// A broken overlay, reloaded at the other gateway: both refuse it, both
	// keep the good directory, and the answer says so for each.
	write(good + "  - {leistung: \"" + newKey + "\", gebiet: \"14\", stelle: no-such-office}\n")
	status, body, nodes = reloadChecked(t, router, two.g.URL())
	if status != 422 || len(nodes) != 2 || !strings.Contains(string(body), "overlay.yaml") {
		t.Fatalf("broken overlay: %d %s", status, body)
	}
	for _, n := range nodes {
		if n.Status != api.ReloadFailed || n.File == "" {
			t.Errorf("a gateway's result for the broken overlay: %+v", n)
		}
	}
	for name, f := range map[string]*fixture{"one": one, "two": two} {
		if got := serviceStatus(t, f.g.URL(), newKey); got != 200 {
			t.Errorf("after the refused reload, the service at %s: %d, want 200 (the previous directory)", name, got)
		}
	}

	// A gateway listed as running that does not answer (it was killed a moment
	// ago): not 200, and the answer names it.
	write(good)
	old := reloadWait
	reloadWait = time.Second
	t.Cleanup(func() { reloadWait = old })
	if _, err := one.g.cluster.members.Put(context.Background(), "0badc0ffee", []byte(`{"address":"gw-gone:8443"}`)); err != nil {
		t.Fatal(err)
	}
	status, body, nodes = reloadChecked(t, router, one.g.URL())
	if status != 504 || len(nodes) != 3 || nodes["0badc0ffee"].Status != api.ReloadNoAnswer || !strings.Contains(string(body), "gw-gone:8443") {
		t.Fatalf("reload with a gateway that does not answer: %d %s", status, body)
	}
	for node, n := range nodes {
		if node != "0badc0ffee" && n.Status != api.ReloadDone {
			t.Errorf("a running gateway's result: %+v", n)
		}
	}
}

// TestClusterGatewayWithAnothersNodeIDSaysSo: a data folder copied with its
// node-id file gives two gateways one node id, and a reload's answers, told
// apart by it, hide one of the two (a review). The second to start says so.
func TestClusterGatewayWithAnothersNodeIDSaysSo(t *testing.T) {
	url := natstest.StartSingle(t).URLs()
	cluster := func(cfg *config.Config) { cfg.Store.Backend, cfg.NATS.URL = config.StoreJetStream, url }
	one := start(t, cluster)
	id, err := os.ReadFile(filepath.Join(one.g.Config.DataDir, "node-id"))
	if err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	startLogged(t, slog.New(slog.NewTextHandler(&logs, nil)), cluster, func(c *config.Config) {
		if err := os.WriteFile(filepath.Join(c.DataDir, "node-id"), id, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	if !strings.Contains(logs.String(), "runs with this gateway's node id") {
		t.Fatalf("no warning of the shared node id:\n%s", logs.String())
	}
}

// packageOfAnotherCA is a package for Dresden signed by a portal "amt24" of a
// fresh CA the gateway does not trust yet, and that CA's certificate (PEM): a
// portal CA an operator adds to the trust store.
func (f *fixture) packageOfAnotherCA(t *testing.T) (caPEM, raw []byte) {
	t.Helper()
	other, err := signing.EnsureDevPKI(t.TempDir(), "other-gateway")
	if err != nil {
		t.Fatal(err)
	}
	otherPortal, err := signing.LoadSigner(other.PortalKey, other.PortalCert)
	if err != nil {
		t.Fatal(err)
	}
	p := paket.ExampleWith(f.key, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	if raw, err = otherPortal.Sign(p.Element()); err != nil {
		t.Fatal(err)
	}
	if caPEM, err = os.ReadFile(other.CACert); err != nil {
		t.Fatal(err)
	}
	return caPEM, raw
}

// TestAdminReloadIsInTheLog: SIGHUP's reload says in the log whether it took;
// the admin API's (amtsbote admin reload) said nothing there.
func TestAdminReloadIsInTheLog(t *testing.T) {
	overlay := filepath.Join(t.TempDir(), "overlay.yaml")
	if err := os.WriteFile(overlay, []byte("services: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	f := startLogged(t, slog.New(slog.NewTextHandler(&logs, nil)), func(c *config.Config) { c.Directory.Files = []string{overlay} })
	if status, body := adminPost(t, f.g.URL()+"/v1/admin/directory/reload"); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	if !strings.Contains(logs.String(), `msg="directory and trust store reloaded" by="admin API"`) {
		t.Errorf("no INFO line of the reload in the log:\n%s", logs.String())
	}
	if err := os.WriteFile(overlay, []byte("services: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, body := adminPost(t, f.g.URL()+"/v1/admin/directory/reload"); status != 422 {
		t.Fatalf("broken overlay: %d %s", status, body)
	}
	if !strings.Contains(logs.String(), `msg="reload failed; keeping the old directory and trust store" by="admin API"`) {
		t.Errorf("no ERROR line of the failed reload in the log:\n%s", logs.String())
	}
}
