package gateway

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/testenv"
)

// TestStartWarnsOfWhatIsEasyToBreakInto: a gateway on the development PKI that
// other machines reach said "DEVELOPMENT PKI" on its first start only, and every
// restart said nothing, while its CA key (which makes trusted portals) and the
// demo mailbox login lay in the data folder; a bearer token of a few
// characters, which nothing keeps from being guessed (the API does not limit
// the attempts), was taken without a word. Every start now warns of both,
// naming the settings, never a token; on loopback the development PKI is not
// warned about again.
func TestStartWarnsOfWhatIsEasyToBreakInto(t *testing.T) {
	data := t.TempDir()
	run := func(listen string, edit func(*config.Config)) string {
		t.Helper()
		cfg := config.Default()
		cfg.DataDir = data
		cfg.Listen = listen
		if edit != nil {
			edit(&cfg)
		}
		return startLog(t, cfg)
	}
	const devWarning = "serving on the DEVELOPMENT PKI and credentials at an address other machines reach"
	run("127.0.0.1:0", nil) // the first start makes the development PKI
	if l := run("0.0.0.0:0", nil); !strings.Contains(l, devWarning) || !strings.Contains(l, "dev-ca-key.pem") {
		t.Errorf("a restart on 0.0.0.0 does not warn of the development PKI:\n%s", l)
	}
	const short = "tok-short-1"
	l := run("127.0.0.1:0", func(c *config.Config) {
		c.AdminToken = short
		c.Portals = map[string]config.PortalClient{"amt24": {Token: "portal-token-long-enough-0123"}}
		c.Offices = map[string]config.OfficeClient{DemoOfficeID: {Tokens: []string{"office-token-long-enough-0123", "old-tok"}}}
	})
	if strings.Contains(l, devWarning) {
		t.Errorf("a start on loopback warns of the development PKI:\n%s", l)
	}
	line := ""
	for _, s := range strings.Split(l, "\n") {
		if strings.Contains(s, "bearer tokens shorter") {
			line = s
		}
	}
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, `settings="admin_token, offices.`+DemoOfficeID+`.tokens[1]"`) {
		t.Errorf("the start does not name the short tokens (admin_token, tokens[1]) and only them:\n%s", l)
	}
	if strings.Contains(l, short) || strings.Contains(l, "old-tok") {
		t.Errorf("the log shows a token:\n%s", l)
	}
	const clear = "public_url is plain http on an address other machines reach"
	if strings.Contains(l, clear) {
		t.Errorf("a loopback public_url is warned about:\n%s", l)
	}
	for pub, warned := range map[string]bool{
		"http://amtsbote.sachsen.example":  true,
		"http://10.1.2.3:8080":             true,
		"https://amtsbote.sachsen.example": false,
	} {
		l := run("127.0.0.1:0", func(c *config.Config) { c.PublicURL = pub })
		if strings.Contains(l, clear) != warned {
			t.Errorf("public_url %s: warned %v, want %v:\n%s", pub, !warned, warned, l)
		}
	}
}

// startLog starts a gateway on cfg, shuts it down and returns what it logged.
func startLog(t *testing.T, cfg config.Config) string {
	t.Helper()
	logs := &testenv.Buffer{}
	g, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return logs.String()
}
