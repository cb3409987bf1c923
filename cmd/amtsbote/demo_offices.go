package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/adapters/transfer"
	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/mailbox/mailboxclient"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/wire"
)

// demoDresdenName is the demo office's name, as the built-in directory has it.
const demoDresdenName = "Stadt Dresden, Abt. Allgemeine Verwaltung/Grundsatz"

// demoEnv is what an office side of the demo may set up before the gateway starts.
type demoEnv struct {
	out       *printer
	dataDir   string
	failFirst int
	cfg       *config.Config
}

// demoOffice is Stadt Dresden's side of the demo for one channel.
type demoOffice interface {
	start(ctx context.Context, g *gateway.Gateway) error // after the gateway started
	decides() bool                                       // the office answers accept/reject itself
	check(submissionID string) error                     // what the office saw was right
	close()                                              // the office's side stops (once, before the gateway does)
}

var demoOffices = map[string]func(*demoEnv) (demoOffice, error){
	channel.Webhook:  newWebhookOffice,
	channel.API:      newPullOffice,
	channel.Transfer: newTransferOffice,
	channel.Mailbox:  newMailboxOffice,
	channel.XTA:      newXTAOffice,
}

func demoChannels() []string {
	var out []string
	for k := range demoOffices {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// useDemoChannels makes the Dresden office of the directory list exactly these
// channels (a directory overlay, as an operator's XZuFi or YAML file would).
func useDemoChannels(e *demoEnv, kinds ...string) error {
	var b strings.Builder
	b.WriteString("offices:\n  - id: " + gateway.DemoOfficeID + "\n    name: \"" + demoDresdenName + "\"\n")
	b.WriteString("    hausanschrift: {strasse: \"Junghansstraße 2\", plz: \"01277\", ort: Dresden}\n")
	b.WriteString("    postanschrift: {postfach: \"12 00 20\", plz: \"01001\", ort: Dresden}\n    kanaele:\n")
	for _, k := range kinds {
		fmt.Fprintf(&b, "      - {kind: %s, level: %d}\n", k, channel.Level(k))
	}
	// -data names a folder that need not exist yet (the webhook and transfer demos
	// made it; these wrote into it first and failed).
	if err := os.MkdirAll(e.dataDir, 0o750); err != nil {
		return err
	}
	path := filepath.Join(e.dataDir, "demo-directory.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return err
	}
	e.cfg.Directory.Files = append(e.cfg.Directory.Files, path)
	return nil
}

// poller runs an office's recurring work (an import job, a clerk looking at the
// inbox) every interval until the demo ends.
type poller struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (p *poller) run(ctx context.Context, every time.Duration, work func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(ctx)
	p.mu.Lock()
	p.cancel = cancel
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				work(ctx)
			}
		}
	}()
}

func (p *poller) stop() {
	p.mu.Lock()
	cancel := p.cancel
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	p.wg.Wait()
}

// --- webhook: the demo Fachverfahren is notified, fetches and decides by API ---

type webhookOffice struct{ fv *fachverfahren.Office }

// demoBescheid is the Bescheid a demo Fachverfahren of office sends the
// applicant after it accepted a case.
func demoBescheid(office string) func(webhook.Notification, []byte) fachverfahren.Reply {
	return func(n webhook.Notification, _ []byte) fachverfahren.Reply {
		return fachverfahren.Reply{Kind: wire.ReplyBescheid, ContentType: "application/pdf", FileName: "Bescheid.pdf",
			Content: demoBescheidPDF(office, n.SubmissionID, "Ihre Verwaltung")}
	}
}

// demoBescheidPDF is the demo's Bescheid of office for the case id, signed by
// who: a one-page PDF naming the case.
func demoBescheidPDF(office, id, who string) []byte {
	return paket.ExamplePDF(fmt.Sprintf(
		"%s\n\nBescheid\n\nIhre Meldung (Vorgang %s) ist vollständig eingegangen und wird bearbeitet.\n\nMit freundlichen Grüßen\n%s",
		office, id, who))
}

// demoOutcome waits up to within for the Fachverfahren's outcome of id — its
// decision and, after it, its Bescheid — and returns its error: the demo's
// journey goes on when the gateway records the decision, while the
// Fachverfahren may still be sending the Bescheid.
func demoOutcome(fv *fachverfahren.Office, id string, within time.Duration) error {
	if out, ok := fv.Processed()[id]; ok {
		return out.Err
	}
	t := time.NewTimer(within)
	defer t.Stop()
	for {
		select {
		case out := <-fv.Outcomes():
			if out.SubmissionID == id {
				return out.Err
			}
		case <-t.C:
			return fmt.Errorf("no outcome of the Fachverfahren for %s within %s", id, within)
		}
	}
}

func newWebhookOffice(e *demoEnv) (demoOffice, error) {
	fv, err := fachverfahren.Start(fachverfahren.Options{
		FailFirst:   e.failFirst,
		PickupDelay: 200 * time.Millisecond,
		Bescheid:    demoBescheid(demoDresdenName),
		Logf:        func(f string, a ...any) { e.out.say("Fachverfahren", f, a...) },
	})
	if err != nil {
		return nil, err
	}
	e.cfg.Offices = map[string]config.OfficeClient{gateway.DemoOfficeID: {Channels: map[string]config.Channel{channel.Webhook: {Endpoint: fv.URL()}}}}
	e.out.say("Fachverfahren", "Stadt Dresden's office system listening for webhooks on %s", fv.URL())
	return &webhookOffice{fv: fv}, nil
}

func (w *webhookOffice) start(_ context.Context, g *gateway.Gateway) error {
	oc := g.Config.Offices[gateway.DemoOfficeID]
	w.fv.SetCredentials(oc.Token, oc.Channels[channel.Webhook].Secret)
	w.fv.SetVerifier(signing.NewVerifier(g.Trust, signing.VerifyOptions{}))
	return nil
}

func (w *webhookOffice) decides() bool { return true }

func (w *webhookOffice) check(id string) error { return demoOutcome(w.fv, id, 15*time.Second) }

func (w *webhookOffice) close() { _ = w.fv.Close() }

// --- api: the Fachverfahren takes no webhook; it polls the pull API ---

type pullOffice struct {
	poller
	fv  *fachverfahren.Office
	out *printer
}

func newPullOffice(e *demoEnv) (demoOffice, error) {
	token := demoToken()
	fv, err := fachverfahren.Start(fachverfahren.Options{Token: token, Bescheid: demoBescheid(demoDresdenName),
		Logf: func(f string, a ...any) { e.out.say("Fachverfahren", f, a...) }})
	if err != nil {
		return nil, err
	}
	if err := useDemoChannels(e, channel.API, channel.Mailbox); err != nil {
		_ = fv.Close()
		return nil, err
	}
	e.cfg.Offices = map[string]config.OfficeClient{gateway.DemoOfficeID: {Token: token, Channels: map[string]config.Channel{channel.API: {}}}}
	e.out.say("Fachverfahren", "Stadt Dresden's office system takes no webhook (its network lets nothing in): it polls the pull API every 200 ms")
	return &pullOffice{fv: fv, out: e.out}, nil
}

func (p *pullOffice) start(ctx context.Context, g *gateway.Gateway) error {
	p.fv.SetVerifier(signing.NewVerifier(g.Trust, signing.VerifyOptions{}))
	base := g.URL()
	p.run(ctx, 200*time.Millisecond, func(ctx context.Context) {
		if _, err := p.fv.Poll(ctx, base); err != nil && ctx.Err() == nil {
			p.out.say("Fachverfahren", "poll failed: %v", err)
		}
	})
	return nil
}

func (p *pullOffice) decides() bool { return true }

// check waits for the Fachverfahren's outcome, its Bescheid included. The
// demo closes the office before the gateway shuts down (a round against the
// stopped gateway printed "poll failed").
func (p *pullOffice) check(id string) error { return demoOutcome(p.fv, id, 15*time.Second) }

func (p *pullOffice) close() {
	p.stop()
	_ = p.fv.Close()
}

// --- transfer: a case folder in a shared folder; the office's import takes it ---

type transferOffice struct {
	poller
	out             *printer
	folder, import_ string
	mu              sync.Mutex
	imported        map[string]error // submission id -> what the import found
}

func newTransferOffice(e *demoEnv) (demoOffice, error) {
	t := &transferOffice{out: e.out, folder: filepath.Join(e.dataDir, "transfer", "dresden"),
		import_: filepath.Join(e.dataDir, "fachverfahren-import"), imported: map[string]error{}}
	for _, d := range []string{t.folder, t.import_} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, err
		}
	}
	if err := useDemoChannels(e, channel.Transfer, channel.Mailbox); err != nil {
		return nil, err
	}
	e.cfg.Offices = map[string]config.OfficeClient{gateway.DemoOfficeID: {Channels: map[string]config.Channel{channel.Transfer: {Endpoint: t.folder}}}}
	e.out.say("Stadt Dresden", "transfer folder %s; the office's import moves each complete case to %s", t.folder, t.import_)
	return t, nil
}

func (t *transferOffice) start(ctx context.Context, _ *gateway.Gateway) error {
	t.run(ctx, 100*time.Millisecond, func(context.Context) { t.scan() })
	return nil
}

// scan is the office's import job: a case folder is complete when its index.json
// exists (written last); the import checks every file against the index, then
// moves the folder into its own archive — which is the confirmation.
func (t *transferOffice) scan() {
	entries, _ := os.ReadDir(t.folder)
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		caseDir := filepath.Join(t.folder, e.Name())
		raw, err := os.ReadFile(filepath.Join(caseDir, "index.json"))
		if err != nil {
			continue
		}
		var idx transfer.Index
		if err := json.Unmarshal(raw, &idx); err != nil {
			continue
		}
		var names []string
		err = nil
		for _, f := range idx.Files {
			b, rerr := os.ReadFile(filepath.Join(caseDir, filepath.FromSlash(f.Path)))
			sum := sha256.Sum256(b)
			if rerr != nil || hex.EncodeToString(sum[:]) != f.SHA256 {
				err = errors.Join(err, fmt.Errorf("%s does not match index.json", f.Path))
			}
			names = append(names, f.Path)
		}
		t.out.say("Stadt Dresden", "import found case %s%s: %s", idx.Case, fachverfahren.CaseNote(idx.SubmissionID, idx.CaseID), strings.Join(names, ", "))
		// Noted before the move: the move is the confirmation, and the demo
		// asks (check) as soon as the gateway has seen it.
		t.note(idx.SubmissionID, err)
		if err == nil {
			if err = os.Rename(caseDir, filepath.Join(t.import_, e.Name())); err != nil {
				t.note(idx.SubmissionID, err)
				continue
			}
			t.out.say("Stadt Dresden", "imported and moved %s into the Fachverfahren's archive", idx.Case)
		}
	}
}

// note records what the import found of the submission id.
func (t *transferOffice) note(id string, err error) {
	t.mu.Lock()
	t.imported[id] = err
	t.mu.Unlock()
}

func (t *transferOffice) decides() bool { return false }

func (t *transferOffice) check(id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	err, ok := t.imported[id]
	if !ok {
		return errors.New("the import never saw the case folder")
	}
	return err
}

func (t *transferOffice) close() { t.stop() }

// --- mailbox: a clerk with nothing but a browser logs into the Behördenpostfach ---

type mailboxOffice struct {
	poller
	out      *printer
	mu       sync.Mutex
	err      error
	seen     map[string]bool
	answered map[string]bool // the clerk is done with the case: decided and replied, or failed
}

func newMailboxOffice(e *demoEnv) (demoOffice, error) {
	if err := useDemoChannels(e, channel.Mailbox); err != nil {
		return nil, err
	}
	e.out.say("Stadt Dresden", "no office system: a clerk works in the web mailbox")
	return &mailboxOffice{out: e.out, seen: map[string]bool{}, answered: map[string]bool{}}, nil
}

func (m *mailboxOffice) start(ctx context.Context, g *gateway.Gateway) error {
	dc, err := gateway.LoadDevCredentials(g.Config.DataDir)
	if err != nil || len(dc.Mailbox) == 0 {
		return fmt.Errorf("no development mailbox user: %v", err)
	}
	u := dc.Mailbox[0]
	base := g.URL() + gateway.MailboxPath + "/"
	clerk := mailboxclient.New(base)
	if _, err := clerk.Login(ctx, u.Name, u.Password); err != nil {
		return fmt.Errorf("mailbox login: %w", err)
	}
	m.out.say("Stadt Dresden", "clerk %q logged into %s", u.Name, base)
	m.run(ctx, 200*time.Millisecond, func(ctx context.Context) {
		inbox, err := clerk.Inbox(ctx, "")
		if err != nil {
			return
		}
		for _, id := range caseIDs.FindAllStringSubmatch(inbox, -1) {
			m.mu.Lock()
			seen := m.seen[id[1]]
			m.seen[id[1]] = true
			m.mu.Unlock()
			if seen {
				continue
			}
			page, err := clerk.Open(ctx, id[1])
			if err == nil {
				var caseID string
				if c := caseOf.FindStringSubmatch(page); c != nil {
					caseID = c[1]
				}
				m.out.say("Stadt Dresden", "clerk opens case %s%s: the form shows %q", id[1], fachverfahren.CaseNote(id[1], caseID), firstMatch(page, "Der Papierkorb[^<]*"))
				_, err = clerk.Decide(ctx, id[1], true, "")
			}
			if err == nil {
				m.out.say("Stadt Dresden", "clerk accepts case %s in the mailbox", id[1])
				// And answers the applicant from the case's page, as a clerk with
				// nothing but a browser does: the Bescheid as a PDF.
				pdf := demoBescheidPDF(demoDresdenName, id[1], u.Name)
				if _, err = clerk.Reply(ctx, id[1], wire.ReplyBescheid, "bescheid.pdf", pdf); err == nil {
					m.out.say("Stadt Dresden", "clerk sends the Bescheid from the case's page (application/pdf, %d bytes)", len(pdf))
				}
			}
			m.mu.Lock()
			m.err = errors.Join(m.err, err)
			m.answered[id[1]] = true
			m.mu.Unlock()
		}
	})
	return nil
}

// caseIDs finds the links to cases on the inbox page; caseOf the case a
// Nachreichung's page names.
var (
	caseIDs = regexp.MustCompile(`href="s/([0-9a-f-]{36})"`)
	caseOf  = regexp.MustCompile(`<dt>Nachreichung zu</dt><dd><a href="[^"]*">Eingang ([0-9a-f-]{36})</a>`)
)

func firstMatch(page, pattern string) string { return regexp.MustCompile(pattern).FindString(page) }

func (m *mailboxOffice) decides() bool { return true }

// check waits (up to 10 s) for the clerk to be done with the case: the
// journey goes on when the gateway records the decision, while the clerk is
// still sending the Bescheid, whose failure must fail the demo.
func (m *mailboxOffice) check(id string) error {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m.mu.Lock()
		seen, answered, err := m.seen[id], m.answered[id], m.err
		m.mu.Unlock()
		switch {
		case !seen && time.Now().After(deadline):
			return errors.New("the clerk never saw the case")
		case answered:
			return err
		case time.Now().After(deadline):
			return errors.New("the clerk did not finish the case within 10 s")
		}
	}
}

func (m *mailboxOffice) close() { m.stop() }
