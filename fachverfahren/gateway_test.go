package fachverfahren_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/internal/gatewaytest"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/submission"
)

// The office of these tests, responsible for testService in all of Saxony.
const (
	testOffice  = "sn-fachverfahren-amt"
	testToken   = "office-token-fachverfahren"
	testService = "99123456789013"
	portalToken = "portal-token-amt24"
)

// fixture is a real gateway the office under test talks to, and a portal that
// submits to it.
type fixture struct {
	g      *gateway.Gateway
	portal *portal.Client
}

// startGateway starts a gateway whose testOffice takes its packages by the
// channel kind ("api" or "webhook") configured in ch; edit changes the rest of
// the configuration.
func startGateway(t *testing.T, kind string, ch config.Channel, edit ...func(*config.Config)) *fixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "office.yaml")
	if err := os.WriteFile(dir, []byte(`services:
  - {key: "`+testService+`", name: "Fachverfahrenstest", quelle: "test"}
offices:
  - id: `+testOffice+`
    name: "Amt mit Fachverfahren"
    kanaele: [{kind: `+kind+`, level: 3}]
responsibilities:
  - {leistung: "`+testService+`", gebiet: "14", stelle: `+testOffice+`}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	g, pki := gatewaytest.Start(t, func(cfg *config.Config) {
		cfg.Portals = map[string]config.PortalClient{"amt24": {Token: portalToken}}
		cfg.Directory.Files = []string{dir}
		cfg.Offices = map[string]config.OfficeClient{testOffice: {Token: testToken, Channels: map[string]config.Channel{kind: ch}}}
		for _, e := range edit {
			e(cfg)
		}
	})
	return &fixture{g: g, portal: &portal.Client{BaseURL: g.URL(), Signer: pki.Portal.Signer, Token: portalToken}}
}

// verifier checks the portal's signature as the gateway does.
func (f *fixture) verifier() *signing.Verifier {
	return signing.NewVerifier(f.g.Trust, signing.VerifyOptions{})
}

// example is a package for testOffice, with its inline PDF.
func example() *paket.Paket {
	p := paket.ExampleWith(testService, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	return p
}

// submit submits p with parts, answered 201.
func (f *fixture) submit(t *testing.T, p *paket.Paket, parts ...portal.Part) string {
	t.Helper()
	res, err := f.portal.SubmitParts(context.Background(), p, parts)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit: %v %+v", err, res)
	}
	return res.SubmissionID
}

// state is the submission's state at the gateway.
func (f *fixture) state(t *testing.T, id string) submission.State {
	t.Helper()
	s, err := f.g.Broker.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	return s.State
}

// waitState waits until the submission is in state st.
func (f *fixture) waitState(t *testing.T, id string, st submission.State, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); f.state(t, id) != st; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s after %s, want %s", id, f.state(t, id), within, st)
		}
	}
}
