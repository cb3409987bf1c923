package e2e

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/wire"
)

func writeConfig(t *testing.T, dir, hookURL string) string {
	t.Helper()
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
delivery:
  backoff_base: 100ms
  backoff_max: 500ms
  max_attempts: 1000
offices:
  %s:
    webhook:
      url: %s
`, filepath.Join(dir, "data"), gateway.DemoOfficeID, hookURL)
	path := filepath.Join(dir, "amtsbote.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func serviceKey(t *testing.T, name string) string {
	t.Helper()
	d, err := routing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	s, err := d.FindService(name)
	if err != nil {
		t.Fatal(err)
	}
	return s.Key
}

func portalClient(t *testing.T, dataDir, url string) *portal.Client {
	t.Helper()
	pki := filepath.Join(dataDir, "pki")
	signer, err := signing.LoadSigner(filepath.Join(pki, "portal-amt24-key.pem"), filepath.Join(pki, "portal-amt24.pem"))
	if err != nil {
		t.Fatal(err)
	}
	dc, err := gateway.LoadDevCredentials(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	return &portal.Client{BaseURL: url, Signer: signer, Token: dc.Portals["amt24"].Token, HTTP: nil}
}

// officeDown is a built gateway on the development setup whose one office, the
// demo Fachverfahren, answers 503 until SetFailFirst(0): packages wait in the outbox.
type officeDown struct {
	dir, cfgPath, dataDir string
	office                *fachverfahren.Office
	p                     *proc
	dc                    *gateway.DevCredentials
	client                *portal.Client
	key                   string // LeiKa key of "Gewerbe anmelden"
}

func startWithOfficeDown(t *testing.T) *officeDown {
	t.Helper()
	g := &officeDown{dir: t.TempDir()}
	office, err := fachverfahren.Start(fachverfahren.Options{FailFirst: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { office.Close() })
	g.office = office
	g.cfgPath = writeConfig(t, g.dir, office.URL())
	g.dataDir = filepath.Join(g.dir, "data")
	g.p = serve(t, g.dir, nil, "-config", g.cfgPath)
	if g.dc, err = gateway.LoadDevCredentials(g.dataDir); err != nil {
		t.Fatal(err)
	}
	oc := g.dc.Offices[gateway.DemoOfficeID]
	office.SetCredentials(oc.Token, oc.Channels[channel.Webhook].Secret)
	g.client = portalClient(t, g.dataDir, g.p.url)
	g.key = serviceKey(t, "Gewerbe anmelden")
	return g
}

// waitAccepted waits until the office has fetched and accepted every submission.
func waitAccepted(t *testing.T, office *fachverfahren.Office, ids iter.Seq[string], within time.Duration, p *proc) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		done, missing, n := office.Processed(), 0, 0
		for id := range ids {
			n++
			if o, ok := done[id]; !ok || !o.Accepted {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged packages never reached the office\n%s", missing, n, p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKill9LosesNothing is promise 1: a 201 means durable. Portals submit
// concurrently while the office is down; the gateway is killed with SIGKILL in the
// middle; after a restart every package that got a 201 reaches the office and is
// answered, and a retry of one of them gets the first receipt back.
func TestKill9LosesNothing(t *testing.T) {
	g := startWithOfficeDown(t)
	dir, office, cfgPath, p, client, key := g.dir, g.office, g.cfgPath, g.p, g.client, g.key

	var mu sync.Mutex
	accepted := map[string]string{} // submission id -> NachrichtID
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				msg := paket.NewMessageID()
				res, err := client.Submit(ctx, paket.ExampleWith(key, msg, time.Now()))
				if err != nil {
					return // the process is gone: this one was never acknowledged
				}
				if res.Status == 201 {
					mu.Lock()
					accepted[res.SubmissionID] = msg
					mu.Unlock()
				} else if res.Status >= 300 {
					t.Errorf("submission refused: %d %+v", res.Status, res.Problem)
					return
				}
			}
		}()
	}
	// Kill while submissions are in flight and deliveries are being retried.
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(accepted)
		mu.Unlock()
		if n >= 24 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.kill9(t)
	cancel()
	wg.Wait()
	if len(accepted) < 24 {
		t.Fatalf("only %d submissions accepted before the kill", len(accepted))
	}
	if n := len(office.Processed()); n != 0 {
		t.Fatalf("office processed %d packages while it was down", n)
	}

	// The office comes back, and so does the gateway.
	office.SetFailFirst(0)
	p2 := serve(t, dir, nil, "-config", cfgPath)
	client.BaseURL = p2.url
	waitAccepted(t, office, maps.Keys(accepted), 90*time.Second, p2)
	for id, o := range office.Processed() {
		if o.Err != nil {
			t.Errorf("office failed on %s: %v", id, o.Err)
		}
	}
	// Status API agrees, with the whole journey in every event log; packages accepted
	// before the kill while the office was down show their failed attempts (one that
	// arrived just before the kill may not have been tried yet).
	retried := 0
	for id := range accepted {
		st, err := client.Status(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != wire.StateAccepted {
			t.Errorf("%s: state %s", id, st.State)
		}
		types := map[string]bool{}
		for _, e := range st.Events {
			types[e.Type] = true
		}
		for _, want := range []string{"received", "routed", "queued", "delivered", "accepted"} {
			if !types[want] {
				t.Errorf("%s: event log lacks %q: %+v", id, want, st.Events)
			}
		}
		if types["attempt_failed"] {
			retried++
		}
	}
	if retried == 0 {
		t.Error("no event log shows the attempts that failed while the office was down")
	}
	// A portal retrying an acknowledged message gets the first submission back.
	for id, msg := range accepted {
		res, err := client.Submit(context.Background(), paket.ExampleWith(key, msg, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != 200 || res.SubmissionID != id || !res.Duplicate {
			t.Fatalf("retry after restart: %d %s, want 200 %s", res.Status, res.SubmissionID, id)
		}
		break
	}
	if err := p2.terminate(t, 30*time.Second); err != nil {
		t.Fatalf("SIGTERM exit: %v\n%s", err, p2.stderr.String())
	}
}

// TestServeRunsOnDefaults: no flags and no file — only the port is moved away from
// 8080 so the test cannot collide with a gateway a developer has running.
func TestServeRunsOnDefaults(t *testing.T) {
	dir := t.TempDir()
	p := serve(t, dir, []string{"AMTSBOTE_LISTEN=127.0.0.1:0"})
	for _, f := range []string{"data/amtsbote.db", "data/blobs", "data/jetstream", "data/pki/gateway.pem", "data/pki/trust", "data/dev-credentials.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("after first start: %v", err)
		}
	}
	info, err := os.Stat(filepath.Join(dir, "data/pki/gateway-key.pem"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("gateway key must be 0600: %v %v", info.Mode(), err)
	}
	if err := p.terminate(t, 30*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if !strings.Contains(p.stderr.String(), "amtsbote stopped") {
		t.Errorf("no clean stop in the log:\n%s", p.stderr.String())
	}
}

// TestDemo runs `amtsbote demo` as a user would and checks the receipts it leaves
// with `amtsbote verify` and with xmlsec1.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := run(t, ctx, dir, "demo", "-receipts", "r")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Iris Hübner", "Der Papierkorb an der Bushaltestelle ist voll.", "maengelanzeige-v1.0-",
		"routed: Meldung von Mängeln im Stadt- oder Gemeindegebiet",
		"Stadt Dresden, Abt. Allgemeine Verwaltung/Grundsatz; Hausanschrift Junghansstraße 2, 01277 Dresden; Postfach 12 00 20, 01001 Dresden",
		"delivery attempt 1 failed", "delivered by ", "office answered: accepted",
		// The Fachverfahren's Bescheid, sent through the office API, read by the portal.
		"Bescheid sent to the applicant through the gateway", "replied api Bescheid", "→ accepted → replied",
		"Bescheid of the office read (application/pdf", `bytes, named "Bescheid.pdf")`, "the office's answer came back to Amt24 through the gateway: r/antwort-1.pdf",
		// The portal's new-events callback, checked by the demo portal's endpoint.
		"callback (FIT-Connect new-events, signatures valid): news for ",
		"Eingangsbestaetigung signature valid", "Zustellbestaetigung signature valid", "demo complete",
		// The applicant's Nachreichung: to the case's office, under the case,
		// and the Fachverfahren is told whose case it is.
		"a Nachreichung naming NachrichtID",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q\n%s", want, out)
		}
	}
	demoNachreichung(t, out)
	for _, f := range []string{"eingangsbestaetigung.xml", "zustellbestaetigung.xml"} {
		vout, err := run(t, ctx, dir, "verify", "-cert", "r/gateway.pem", "r/"+f)
		if err != nil || !strings.Contains(vout, ": OK") {
			t.Errorf("amtsbote verify %s: %v\n%s", f, err, vout)
		}
		root := strings.TrimSuffix(map[string]string{"eingangsbestaetigung.xml": "Eingangsbestaetigung", "zustellbestaetigung.xml": "Zustellbestaetigung"}[f], "")
		x := exec.CommandContext(ctx, "xmlsec1", "--verify", "--trusted-pem", "r/ca.pem", "--id-attr:ID", "urn:amtsbote:quittung:1:"+root, "r/"+f)
		x.Dir = dir
		xout, err := x.CombinedOutput()
		if err != nil || !strings.Contains(string(xout), "OK") {
			t.Errorf("xmlsec1 does not verify %s (is xmlsec1 installed? .ci/run installs it): %v\n%s", f, err, xout)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "r/antwort-1.pdf")); err != nil || !bytes.HasPrefix(b, []byte("%PDF-")) {
		t.Errorf("the Bescheid the portal saved: %v %.20q", err, b)
	}
	// A receipt with one byte changed must not verify.
	b, _ := os.ReadFile(filepath.Join(dir, "r/eingangsbestaetigung.xml"))
	bad := strings.Replace(string(b), "amt24", "amt25", 1)
	os.WriteFile(filepath.Join(dir, "r/bad.xml"), []byte(bad), 0o644)
	if vout, err := run(t, ctx, dir, "verify", "-cert", "r/gateway.pem", "r/bad.xml"); err == nil || !strings.Contains(vout, "NOT VERIFIED") {
		t.Errorf("tampered receipt verified: %v\n%s", err, vout)
	}
}

// TestDemoChannels: `amtsbote demo -channel X` shows the journey over each channel
// an office without a webhook can have, and exits 0; over each, the
// applicant's Nachreichung reaches the office under the application's case,
// and the office's side reads which case it belongs to (demoNachreichung).
func TestDemoChannels(t *testing.T) {
	for ch, wants := range map[string][]string{
		"api": {"takes no webhook", "handed over by api: receiver pull API of office", "poll found submission",
			"delivered by api", "portal signature verified", "office answered: accepted", "to be delivered over api",
			"replied api Bescheid", "Bescheid of the office read (application/pdf", `bytes, named "Bescheid.pdf")`,
			"demo complete: the application reached Stadt Dresden by api and is accepted",
			"the office's answer came back to Amt24 through the gateway: r/antwort-1.pdf"},
		"transfer": {"handed over by transfer", "import found case", "antrag.xml", "zusammenfassung.pdf", "delivered by transfer",
			"to be delivered over transfer", "Zustellbestaetigung signature valid", "demo complete: the application reached Stadt Dresden by transfer"},
		"mailbox": {"clerk \"dresden\" logged into", "handed over by mailbox", "clerk opens case", "Der Papierkorb an der Bushaltestelle ist voll.",
			"delivered by mailbox: receiver dresden (Behördenpostfach)", "office answered: accepted", "to be delivered over mailbox",
			"clerk sends the Bescheid from the case's page (application/pdf", "replied mailbox Bescheid", "Bescheid of the office read (application/pdf",
			"demo complete: the application reached Stadt Dresden by mailbox and is accepted",
			"the office's answer came back to Amt24 through the gateway: r/antwort-1.pdf"},
	} {
		t.Run(ch, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := run(t, ctx, dir, "demo", "-channel", ch, "-receipts", "r")
			if err != nil {
				t.Fatalf("demo -channel %s: %v\n%s", ch, err, out)
			}
			for _, want := range wants {
				if !strings.Contains(out, want) {
					t.Errorf("demo output lacks %q\n%s", want, out)
				}
			}
			demoNachreichung(t, out)
			// The clerk's upload keeps no file name (it names the
			// applicant, and was written for her folders).
			if ch == "mailbox" && strings.Contains(out, "named \"") {
				t.Errorf("the clerk's reply reached the portal with a file name:\n%s", out)
			}
		})
	}
}

// demoNachreichung checks a demo's output for the Nachreichung's journey: the
// case it names is the application's (the first 201's), the gateway routes it
// to that case, and the office's side says so where it takes it.
func demoNachreichung(t *testing.T, out string) {
	t.Helper()
	m := regexp.MustCompile(`201 Created: submission (\S+),`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no application's 201 in the demo's output:\n%s", out)
	}
	for _, want := range []string{"routed: Nachreichung to case " + m[1] + ", to the case's office -> Stadt Dresden",
		", a Nachreichung to case " + m[1], "went to the same office under case " + m[1]} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q\n%s", want, out)
		}
	}
}

// TestSIGHUPReloadsDirectory: an operator edits the overlay and sends SIGHUP; the
// running gateway answers from the new directory without a restart.
func TestSIGHUPReloadsDirectory(t *testing.T) {
	dir := t.TempDir()
	overlay := filepath.Join(dir, "overlay.yaml")
	if err := os.WriteFile(overlay, []byte("services: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := serve(t, dir, []string{"AMTSBOTE_LISTEN=127.0.0.1:0", "AMTSBOTE_DIRECTORY_FILES=" + overlay})
	const key = "99123456789012"
	status := func() int {
		resp, err := http.Get(p.url + "/v1/services/" + key)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(); got != 404 {
		t.Fatalf("before: %d", got)
	}
	if err := os.WriteFile(overlay, []byte("services:\n  - {key: \""+key+"\", name: \"Testleistung\", quelle: \"test\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for status() != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload the directory\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.terminate(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}
