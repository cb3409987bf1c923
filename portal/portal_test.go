package portal_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/internal/gatewaytest"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// startGateway runs a whole gateway on loopback that trusts the test PKI's portal.
func startGateway(t *testing.T, edit func(*config.Config)) (*gateway.Gateway, *signingtest.PKI) {
	return gatewaytest.Start(t, func(c *config.Config) {
		c.Portals = map[string]config.PortalClient{"amt24": {Token: "portal-token"}}
		if edit != nil {
			edit(c)
		}
	})
}

// TestRefusalKeepsItsExtensionMembers: a portal on this client learns from a
// refusal what it needs to act (docs/problems.md): the candidates of an ambiguous
// place, with the ARS to send again, and the limit a too large package broke. The
// client used to drop every extension member.
func TestRefusalKeepsItsExtensionMembers(t *testing.T) {
	g, pki := startGateway(t, func(c *config.Config) { c.Limits.MaxBodyBytes = 64 << 10 })
	c := &portal.Client{BaseURL: g.URL(), Signer: pki.Portal.Signer, Token: "portal-token"}
	svc := gewerbe(t)
	ctx := context.Background()

	p := paket.Example(svc.Key)
	p.Kopf.Ort = paket.Ort{Name: "Neustadt"}
	res, err := c.Submit(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusUnprocessableEntity || res.Problem.Type != problem.TypeAmbiguousPlace {
		t.Fatalf("ambiguous place: %d %+v", res.Status, res.Problem)
	}
	cands := portal.Candidates(res.Problem)
	if len(cands) < 2 {
		t.Fatalf("ambiguous place: %d candidates, want several; extension members %v", len(cands), res.Problem.Extra)
	}
	for _, pl := range cands {
		if len(pl.ARS) != 12 || pl.Name == "" {
			t.Fatalf("candidate without ARS or name: %+v", pl)
		}
	}
	// The citizen chose: the same package with the chosen ARS is accepted.
	p.Kopf.NachrichtID = paket.NewMessageID()
	p.Kopf.Ort = paket.Ort{ARS: cands[0].ARS}
	if res, err := c.Submit(ctx, p); err != nil || (!res.Accepted() && res.Problem.Type == problem.TypeAmbiguousPlace) {
		t.Fatalf("resent with the candidate's ARS: %v %+v", err, res)
	}

	big := paket.Example(svc.Key)
	big.Kopf.Ort = paket.Ort{PLZ: "01067"}
	big.Anlagen = append(big.Anlagen, paket.NewAnlage("gross", "gross.bin", "application/octet-stream", make([]byte, 128<<10)))
	res, err = c.Submit(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusRequestEntityTooLarge || res.Problem.Type != problem.TypeTooLarge {
		t.Fatalf("too large: %d %+v", res.Status, res.Problem)
	}
	if m, ok := res.Problem.Extra["max"].(float64); !ok || m != 64<<10 {
		t.Fatalf("too large: max %v, want %d; extension members %v", res.Problem.Extra["max"], 64<<10, res.Problem.Extra)
	}
	if _, ok := res.Problem.Extra["type"]; ok {
		t.Fatalf("a standard member counted as an extension: %v", res.Problem.Extra)
	}
}

// TestForeignRefusalIsShortened: an answer that is no problem document (a
// proxy's HTML error page) became the Detail whole — up to 16 MiB printed to the
// portal operator's terminal by amtsbote submit. It is its start now, on one
// line, with its length.
func TestForeignRefusalIsShortened(t *testing.T) {
	page := "<html>\n<body>" + strings.Repeat("Bad Gateway ", 100_000) + "</body></html>"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(page))
	}))
	defer srv.Close()
	pki := signingtest.NewPKI(t)
	c := &portal.Client{BaseURL: srv.URL, Signer: pki.Portal.Signer, Token: "portal-token"}
	res, err := c.SubmitRaw(context.Background(), []byte("<Antragspaket/>"))
	if err != nil {
		t.Fatal(err)
	}
	d := res.Problem.Detail
	if res.Status != http.StatusBadGateway || len(d) > 1000 || strings.Contains(d, "\n") || !strings.HasPrefix(d, "<html> <body>Bad Gateway") || !strings.Contains(d, fmt.Sprintf("(%d bytes", len(page))) {
		t.Fatalf("status %d, detail of %d bytes: %.300q", res.Status, len(d), d)
	}
}

// gewerbe is "Gewerbe anmelden" from the built-in directory: a service whose
// office in Dresden takes packages by webhook.
func gewerbe(t *testing.T) *routing.Service {
	t.Helper()
	d, err := routing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := d.FindService("Gewerbe anmelden")
	if err != nil {
		t.Fatal(err)
	}
	return svc
}
