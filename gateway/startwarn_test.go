package gateway

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/signing"
)

// warnLines are the WARN lines of a text log that contain every one of parts.
func warnLines(log string, parts ...string) []string {
	var out []string
lines:
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "level=WARN") {
			continue
		}
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue lines
			}
		}
		out = append(out, l)
	}
	return out
}

// peerLeaf makes a development PKI for the gateway id in a folder of its own
// and returns the file of its gateway certificate's leaf: what the operator of
// that state hands out (docs/federation.md, "Trust between two states").
func peerLeaf(t *testing.T, id string) string {
	t.Helper()
	dir := t.TempDir()
	pki, err := signing.EnsureDevPKI(filepath.Join(dir, "pki"), id)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(pki.GatewayCert)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := signing.ParseCertificatesPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	leaf := filepath.Join(dir, id+".pem")
	if err := os.WriteFile(leaf, signing.CertPEM(certs[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	return leaf
}

// TestStartWarnsOfAPeerForTheHomeLand: a peers entry for a Land this
// gateway's directory is authoritative for (homeLands; the built-in directory
// is Saxony's, 14) is never asked: the directory routes every place there to
// this gateway's own offices. A Bavarian gateway whose directory file forgot
// homeLands: ["09"] and that listed Saxony's gateway took Saxon packages into
// the built-in Saxon offices without a word. The start says so, naming the
// entry, for a whole Land and for areas in it; so does a reload that makes a
// peer's Land a home Land.
func TestStartWarnsOfAPeerForTheHomeLand(t *testing.T) {
	overlay := filepath.Join(t.TempDir(), "overlay.yaml")
	if err := os.WriteFile(overlay, []byte("homeLands: [\"14\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	f := startLogged(t, slog.New(slog.NewTextHandler(logs, nil)), func(c *config.Config) {
		c.Directory.Files = []string{overlay}
		c.Peers = []config.Peer{
			{ID: "amtsbote-by", Lands: []string{"09"}, BaseURL: "https://gw.by.example"},
			{ID: "amtsbote-sn2", Lands: []string{"14"}, BaseURL: "https://gw2.sn.example"},
			{ID: "amtsbote-dd", Areas: []string{"14612"}, BaseURL: "https://gw.dd.example"},
		}
	})
	const what = "peer gateway for a Land this gateway's directory is authoritative for"
	l := logs.String()
	if len(warnLines(l, what, `setting="peers[1] (amtsbote-sn2)"`, "land=14")) != 1 ||
		len(warnLines(l, what, `setting="peers[2] (amtsbote-dd)"`, "land=14")) != 1 {
		t.Errorf("the start does not warn of the peers for Saxony, this gateway's home Land:\n%s", l)
	}
	if w := warnLines(l, what, "amtsbote-by"); len(w) != 0 {
		t.Errorf("the peer for Bavaria, not a home Land, is warned of: %v", w)
	}

	// The directory now says this gateway serves Bavaria (and Saxony no more).
	if err := os.WriteFile(overlay, []byte("homeLands: [\"09\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := len(logs.String())
	if err := f.g.ReloadLogged("test"); err != nil {
		t.Fatal(err)
	}
	l = logs.String()[before:]
	if len(warnLines(l, what, `setting="peers[0] (amtsbote-by)"`, "land=09")) != 1 {
		t.Errorf("the reload that made Bavaria a home Land does not warn of its peer:\n%s", l)
	}
	if w := warnLines(l, what, "amtsbote-sn2"); len(w) != 0 {
		t.Errorf("after the reload Saxony is no home Land, but its peer is warned of: %v", w)
	}
}

// TestStartWarnsOfAPeerWithoutTrust: a peer gateway for which the trust store
// holds no certificate for the peer role (neither peers[].certificate nor its
// leaf in peers/) can send nothing this gateway takes, and nothing is sent to
// it (federation.Trust.CheckPeer); the start said nothing, and the first sign
// was a held package. The start warns, naming the entry; once its certificate
// is put into peers/, the reload that reads it says no more.
func TestStartWarnsOfAPeerWithoutTrust(t *testing.T) {
	byLeaf, heLeaf := peerLeaf(t, "amtsbote-by"), peerLeaf(t, "amtsbote-he")
	logs := &testenv.Buffer{}
	f := startLogged(t, slog.New(slog.NewTextHandler(logs, nil)), func(c *config.Config) {
		c.Peers = []config.Peer{
			{ID: "amtsbote-by", Lands: []string{"09"}, BaseURL: "https://gw.by.example"},
			{ID: "amtsbote-he", Lands: []string{"06"}, BaseURL: "https://gw.he.example", Certificate: heLeaf},
		}
	})
	const what = "no certificate of a peer gateway is trusted for the peer role"
	l := logs.String()
	if len(warnLines(l, what, `setting="peers[0] (amtsbote-by)"`)) != 1 {
		t.Errorf("the start does not warn of the peer without a trusted certificate:\n%s", l)
	}
	if w := warnLines(l, what, "amtsbote-he"); len(w) != 0 {
		t.Errorf("the peer with peers[].certificate is warned of: %v", w)
	}

	data, err := os.ReadFile(byLeaf)
	if err != nil {
		t.Fatal(err)
	}
	peers := filepath.Join(f.pki.TrustDir, signing.RolePeer.Dir())
	if err := os.MkdirAll(peers, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(peers, "amtsbote-by.pem"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	before := len(logs.String())
	if err := f.g.ReloadLogged("test"); err != nil {
		t.Fatal(err)
	}
	if w := warnLines(logs.String()[before:], what); len(w) != 0 {
		t.Errorf("after its certificate was put into peers/ and reloaded, the peer is still warned of: %v", w)
	}

	// Removed again and reloaded: the warning comes back.
	if err := os.Remove(filepath.Join(peers, "amtsbote-by.pem")); err != nil {
		t.Fatal(err)
	}
	before = len(logs.String())
	if err := f.g.ReloadLogged("test"); err != nil {
		t.Fatal(err)
	}
	if len(warnLines(logs.String()[before:], what, `setting="peers[0] (amtsbote-by)"`)) != 1 {
		t.Errorf("the reload that removed the peer's certificate does not warn:\n%s", logs.String()[before:])
	}
}

// TestStartWarnsOfAPortalCallbackWithoutToken: a portal's new-events callback
// carries ids only, and the portal reads what happened with its token (GET
// /v1/submissions/{id}, docs/webhook.md). A portal with a callback and no token
// is told of news it can never read, and the start said nothing. It warns,
// naming the setting and never the endpoint (which may carry a token); on the
// development PKI the demo portal gets the generated token and is not warned of.
func TestStartWarnsOfAPortalCallbackWithoutToken(t *testing.T) {
	cb := &config.PortalCallback{Endpoint: "https://portal.example/amtsbote/callback?key=in-the-query", Secret: fedHookSecret}
	const what = "a portal has a callback but no token"
	logs := &testenv.Buffer{}
	startLogged(t, slog.New(slog.NewTextHandler(logs, nil)), func(c *config.Config) {
		c.Portals = map[string]config.PortalClient{
			"amt24":         {Token: portalToken, Callback: cb},
			"buergerportal": {Callback: cb},
		}
	})
	l := logs.String()
	if len(warnLines(l, what, "setting=portals.buergerportal.token")) != 1 {
		t.Errorf("the start does not warn of the portal with a callback and no token:\n%s", l)
	}
	if w := warnLines(l, what, "amt24"); len(w) != 0 {
		t.Errorf("the portal with a token is warned of: %v", w)
	}
	if strings.Contains(l, "in-the-query") {
		t.Errorf("the log shows the callback endpoint:\n%s", l)
	}

	// The development PKI: the demo portal configured for its callback alone
	// gets the generated token (docs/operations.md, portals.<id>.token).
	cfg := config.Default()
	cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	cfg.Portals = map[string]config.PortalClient{signing.DevPortalID: {Callback: cb}}
	if w := warnLines(startLog(t, cfg), what); len(w) != 0 {
		t.Errorf("the demo portal on the development PKI is warned of: %v", w)
	}
}
