package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/internal/gatewaytest"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/paket"
)

// TestSubmitSaysWhatToDoNext: against a gateway with its own PKI and portal token
// (not a development one), submit tells a portal developer what to do: the
// candidates of an ambiguous place, the token when a status read is refused after
// the 201, and how to check the receipt without a development data folder.
func TestSubmitSaysWhatToDoNext(t *testing.T) {
	_, run := submitAgainst(t)

	rc, _, errs := run("-place", "Neustadt")
	if rc != 1 || !strings.Contains(errs, "ambiguous-place") || !strings.Contains(errs, "choose one with -place ARS") {
		t.Fatalf("ambiguous place: rc %d\n%s", rc, errs)
	}
	if !strings.Contains(errs, "073160000000") { // Neustadt an der Weinstraße
		t.Fatalf("ambiguous place: the candidates are not listed\n%s", errs)
	}

	receipt := filepath.Join(t.TempDir(), "eingang.xml")
	rc, out, errs := run("-out", receipt, "-wait", "100ms")
	if rc != 1 || !strings.Contains(out, "201 accepted") || !strings.Contains(errs, "401") || !strings.Contains(errs, "-token") {
		t.Fatalf("status read without the token: rc %d\n%s%s", rc, out, errs)
	}
	if !strings.Contains(out, "amtsbote verify -cert") || strings.Contains(out, "verify -data") {
		t.Fatalf("receipt hint for a gateway with its own PKI:\n%s", out)
	}
	if rc, out, errs := run("-token", "portal-token", "-wait", "100ms"); rc != 0 {
		t.Fatalf("with the token: rc %d\n%s%s", rc, out, errs)
	}
}

// TestSubmitTokenFromAFile: the portal's bearer token could be given only as
// -token on the command line, where every user of the machine reads it in the
// process list (ps, /proc/PID/cmdline) while submit waits. -token-file reads it
// from a file (a trailing newline is no part of it); -token still works, with a
// warning that says why not.
func TestSubmitTokenFromAFile(t *testing.T) {
	_, run := submitAgainst(t, "-wait", "100ms")
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("portal-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if rc, out, errs := run("-token-file", file); rc != 0 || strings.Contains(errs, "process list") {
		t.Fatalf("-token-file: rc %d\n%s%s", rc, out, errs)
	}
	if rc, out, errs := run("-token", "portal-token"); rc != 0 || !strings.Contains(errs, "-token-file") {
		t.Fatalf("-token: rc %d, want 0 and a warning naming -token-file\n%s%s", rc, out, errs)
	}
	if rc, _, errs := run("-token-file", filepath.Join(t.TempDir(), "missing")); rc != 2 || !strings.Contains(errs, "-token-file") {
		t.Fatalf("missing token file: rc %d, want 2\n%s", rc, errs)
	}
	if rc, _, errs := run("-token-file", file, "-token", "x"); rc != 2 {
		t.Fatalf("both -token and -token-file: rc %d, want 2\n%s", rc, errs)
	}
}

// TestSubmitRefusesTheTokenInTheClear: the package itself goes without a token,
// but -wait reads its status with the portal's bearer token; to another host
// over plain http that token crossed the network in the clear (the admin CLI
// refused its own token so, submit did not). Refused before the package is
// sent; on loopback, over https or without -wait nothing changes.
func TestSubmitRefusesTheTokenInTheClear(t *testing.T) {
	for _, tc := range []struct {
		url     string
		wait    bool
		refused bool
	}{
		{"http://192.0.2.1:8080", true, true},
		{"http://gateway.amt.example", true, true},
		{"http://192.0.2.1:8080", false, false},
		{"http://127.0.0.1:1", true, false},
		{"https://192.0.2.1:1", true, false},
	} {
		var out, errb bytes.Buffer
		args := []string{"-url", tc.url, "-data", t.TempDir(), "-token", "portal-token-of-the-test"}
		if tc.wait {
			args = append(args, "-wait", "1s")
		}
		// The data folder holds no portal key: what is not refused stops there,
		// before any request; only the refusal matters here.
		rc := runSubmit(context.Background(), args, &out, &errb)
		got := rc == 2 && strings.Contains(errb.String(), "refusing to send the portal token in the clear")
		if got != tc.refused {
			t.Errorf("%s (wait %v): rc %d, refused %v, want %v\n%s", tc.url, tc.wait, rc, got, tc.refused, errb.String())
		}
		if strings.Contains(errb.String()+out.String(), "portal-token-of-the-test") {
			t.Errorf("%s: the token in the output", tc.url)
		}
	}
}

// TestSubmitReceiptHintVerifies: the line after `submit -out FILE` says how to
// check the receipt, and the command it names verifies it — whichever PKI signed
// it. With the development portal key from -data it named `verify -data DIR`,
// whose trust store pins the development gateway's certificate, also when the
// gateway signs with its operator's key (a staging gateway that trusts the
// development portals): the hint ended in "NOT VERIFIED: untrusted signer".
// The hint now follows the receipt's certificate: the development trust store
// when that verifies it, else the gateway certificate or the CA that issued it,
// named (-cert GATEWAY-CERT.pem stands for the operator's file).
func TestSubmitReceiptHintVerifies(t *testing.T) {
	hinted := func(t *testing.T, out, certFile string) []string {
		t.Helper()
		_, cmd, ok := strings.Cut(out, "check it with: amtsbote verify ")
		if !ok {
			t.Fatalf("no hint to check the receipt:\n%s", out)
		}
		args := shellWords(cmd)
		for i, a := range args {
			if a == "GATEWAY-CERT.pem" {
				args[i] = certFile
			}
		}
		return args
	}
	verifyAsHinted := func(t *testing.T, args []string) {
		t.Helper()
		var out, errb bytes.Buffer
		if rc := runVerify(context.Background(), args, &out, &errb); rc != 0 || !strings.Contains(out.String(), ": OK (") {
			t.Fatalf("amtsbote verify %s: rc %d\n%s%s", strings.Join(args, " "), rc, out.String(), errb.String())
		}
	}
	devData := func(t *testing.T) string {
		t.Helper()
		dir := t.TempDir()
		var out, errb bytes.Buffer
		if rc := runKeys(context.Background(), []string{"init", "-data", dir}, &out, &errb); rc != 0 {
			t.Fatalf("keys init: rc %d\n%s", rc, errb.String())
		}
		return dir
	}
	submit := func(t *testing.T, url string, args ...string) (string, string) {
		t.Helper()
		receipt := filepath.Join(t.TempDir(), "eingang.xml")
		var out, errb bytes.Buffer
		if rc := runSubmit(context.Background(), append([]string{"-url", url, "-out", receipt}, args...), &out, &errb); rc != 0 {
			t.Fatalf("submit: rc %d\n%s%s", rc, out.String(), errb.String())
		}
		return out.String(), receipt
	}

	t.Run("development gateway", func(t *testing.T) {
		data := devData(t)
		g, _ := gatewaytest.Start(t, func(c *config.Config) {
			c.PKI, c.DataDir, c.GatewayID = config.PKI{}, data, config.Default().GatewayID
		})
		out, receipt := submit(t, g.URL(), "-data", data)
		args := hinted(t, out, "")
		if !slices.Contains(args, "-data") {
			t.Fatalf("a development gateway's receipt: hint without -data:\n%s", out)
		}
		verifyAsHinted(t, args)

		// A development trust store that no longer pins this certificate (a
		// trust folder edited by hand): the development CA that issued it is named.
		if err := os.Remove(filepath.Join(data, "pki", "trust", "gateways", "gateway.pem")); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(receipt)
		if err != nil {
			t.Fatal(err)
		}
		hint := receiptHint(b, data, receipt, true)
		args = hinted(t, hint, "")
		if !slices.Contains(args, filepath.Join(data, "pki", "dev-ca.pem")) {
			t.Fatalf("hint without the development CA's file:\n%s", hint)
		}
		verifyAsHinted(t, args)
	})
	t.Run("operator's gateway, development portal key", func(t *testing.T) {
		data := devData(t)
		g, pki := gatewaytest.Start(t, func(c *config.Config) {
			// The staging gateway trusts the development portals' CA.
			ca, err := os.ReadFile(filepath.Join(data, "pki", "dev-ca.pem"))
			if err == nil {
				err = os.WriteFile(filepath.Join(c.PKI.TrustDir, "portals", "dev-ca.pem"), ca, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		})
		out, _ := submit(t, g.URL(), "-data", data)
		if !strings.Contains(out, pki.CA.Subject.CommonName) {
			t.Errorf("the hint does not name the CA that issued the gateway's certificate (%s):\n%s", pki.CA.Subject.CommonName, out)
		}
		verifyAsHinted(t, hinted(t, out, pki.Gateway.CertFile))
		verifyAsHinted(t, hinted(t, out, pki.CAFile))
	})
	t.Run("operator's gateway, operator's portal key", func(t *testing.T) {
		g, pki := gatewaytest.Start(t, nil)
		out, _ := submit(t, g.URL(), "-data", t.TempDir(), "-key", pki.Portal.KeyFile, "-cert", pki.Portal.CertFile)
		if strings.Contains(out, "-data") {
			t.Errorf("hint names a development data folder:\n%s", out)
		}
		verifyAsHinted(t, hinted(t, out, pki.Gateway.CertFile))
	})
}

// shellWords splits the start of line as a shell would (words, single quotes as
// shellQuote writes them) up to the end of the line or an unquoted ")", ",", ";".
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	in, quoted := false, false
	flush := func() {
		if in {
			words = append(words, w.String())
		}
		w.Reset()
		in = false
	}
	for _, r := range line {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			w.WriteRune(r)
		case r == '\'':
			quoted, in = true, true
		case r == ' ' || r == '\t':
			flush()
		case r == '\n' || r == ')' || r == ',' || r == ';':
			flush()
			return words
		default:
			w.WriteRune(r)
			in = true
		}
	}
	flush()
	return words
}

// TestSubmitNachreichung: -bezug sends a Nachreichung to an earlier
// application of the same portal; it is recorded under that case. One to an
// application the portal never sent is refused, naming the field.
func TestSubmitNachreichung(t *testing.T) {
	g, run := submitAgainst(t)
	first := paket.NewMessageID()
	if rc, out, errs := run("-message-id", first); rc != 0 {
		t.Fatalf("the application: rc %d\n%s%s", rc, out, errs)
	}
	s, err := g.Broker.FindMessage("amt24", first)
	if err != nil {
		t.Fatal(err)
	}
	next := paket.NewMessageID()
	if rc, out, errs := run("-message-id", next, "-bezug", first); rc != 0 {
		t.Fatalf("the Nachreichung: rc %d\n%s%s", rc, out, errs)
	}
	if n, err := g.Broker.FindMessage("amt24", next); err != nil || n.CaseID != s.ID {
		t.Fatalf("the Nachreichung's record: %+v %v, want case %s", n, err, s.ID)
	}
	if rc, _, errs := run("-bezug", paket.NewMessageID()); rc != 1 || !strings.Contains(errs, "Kopf/Bezug") {
		t.Fatalf("a Bezug the portal never sent: rc %d\n%s", rc, errs)
	}
}

// submitAgainst starts a gateway with its own PKI and the portal token
// "portal-token" (not a development one), and returns it with a run of
// submit against it: its portal's key and certificate, a fresh -data, and
// base before the arguments of each run.
func submitAgainst(t *testing.T, base ...string) (*gateway.Gateway, func(args ...string) (int, string, string)) {
	t.Helper()
	g, pki := gatewaytest.Start(t, func(c *config.Config) {
		c.Portals = map[string]config.PortalClient{"amt24": {Token: "portal-token"}}
	})
	return g, func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		all := append([]string{"-url", g.URL(), "-data", t.TempDir(), "-key", pki.Portal.KeyFile, "-cert", pki.Portal.CertFile}, base...)
		rc := runSubmit(context.Background(), append(all, args...), &out, &errb)
		return rc, out.String(), errb.String()
	}
}
