package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// printer serialises output from the broker's, the office's and the main goroutine.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	ended bool // the summary is printed: what the gateways still do is not shown
}

func (p *printer) say(who, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	fmt.Fprintf(p.w, "%6.3fs  %-14s %s\n", time.Since(p.start).Seconds(), who, fmt.Sprintf(format, args...))
}

// end stops the journey's lines before the summary: the gateways go on (a
// peer fetches a Nachreichung's Bescheid at its next question) while it is
// printed, and a line after it read as part of it.
func (p *printer) end() {
	p.mu.Lock()
	p.ended = true
	p.mu.Unlock()
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", "", "data folder (default: a temporary folder, removed afterwards)")
	receipts := fs.String("receipts", "demo-receipts", "folder for the signed receipts and the gateway certificate")
	failFirst := fs.Int("fail-first", 1, "the Fachverfahren answers 503 to the first N webhooks, to show a retry")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	verbose := fs.Bool("v", false, "show the gateway's logs")
	via := fs.String("channel", channel.Webhook, "how Stadt Dresden takes the application: webhook, api (its system polls), transfer, mailbox, xta")
	federation := fs.Bool("federation", false, "two gateways (Saxony, Bavaria) in one process: an application crosses the state border")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if *federation {
		return runFederationDemo(ctx, stdout, stderr, *timeout, *verbose)
	}
	side, ok := demoOffices[*via]
	if !ok {
		fmt.Fprintf(stderr, "demo: -channel %q: choose one of %s\n", *via, strings.Join(demoChannels(), ", "))
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	out := &printer{w: stdout, start: time.Now()}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "demo failed: "+format+"\n", args...)
		return 1
	}

	if *dataDir == "" {
		d, err := os.MkdirTemp("", "amtsbote-demo-")
		if err != nil {
			return fail("%v", err)
		}
		defer os.RemoveAll(d)
		*dataDir = d
	}
	cfg := config.Default()
	cfg.DataDir = *dataDir
	cfg.Listen = "127.0.0.1:0"
	cfg.Delivery.BackoffBase = 300 * time.Millisecond
	level := "error"
	if *verbose {
		level = "info"
	}
	cb, err := startDemoPortalCallback(out)
	if err != nil {
		return fail("portal callback: %v", err)
	}
	defer cb.close()
	cfg.Portals = map[string]config.PortalClient{signing.DevPortalID: cb.portal()}
	office, err := side(&demoEnv{out: out, dataDir: *dataDir, failFirst: *failFirst, cfg: &cfg})
	if err != nil {
		return fail("%v", err)
	}
	closeOffice := sync.OnceFunc(office.close)
	defer closeOffice()
	g, err := gateway.Start(ctx, cfg, newLogger(stderr, level, "text"))
	if err != nil {
		return fail("start gateway: %v", err)
	}
	defer func() {
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = g.Shutdown(sctx)
	}()
	dir := g.Directory.Current()
	out.say("gateway", "%s listening on %s (data in %s), embedded NATS JetStream, bbolt", g.Config.GatewayID, g.URL(), *dataDir)
	if err := office.start(ctx, g); err != nil {
		return fail("%v", err)
	}

	// The ids of the packages the office is done with (delivered, or decided
	// where it decides), for awaitDone: the application first, its
	// Nachreichung later.
	done := make(chan string, 16)
	g.Broker.Observe(func(s *submission.Submission, e submission.Event) {
		switch e.Type {
		case submission.EventReceived:
			out.say("gateway", "received: %s", e.Detail)
		case submission.EventRouted:
			if s.CaseID != "" {
				out.say("gateway", "routed: Nachreichung to case %s, to the case's office -> %s", s.CaseID, officeLine(dir, s.OfficeID))
				break
			}
			out.say("gateway", "routed: %s at %s -> %s", s.ServiceName, s.AreaName, officeLine(dir, s.OfficeID))
		case submission.EventQueued:
			out.say("gateway", "%s", queuedLine(e))
		case submission.EventAttemptFailed:
			out.say("gateway", "delivery attempt %d failed: %s", e.Attempt, e.Detail)
		case submission.EventHandedOver:
			out.say("gateway", "handed over by %s: %s", e.Channel, e.Detail)
		case submission.EventDelivered:
			out.say("gateway", "delivered by %s: %s", e.Channel, e.Detail)
			if !office.decides() {
				offerID(done, s.ID)
			}
		case submission.EventAccepted, submission.EventRejected:
			out.say("gateway", "office answered: %s", strings.TrimSpace(e.Type+" "+e.Detail))
			offerID(done, s.ID)
		case submission.EventFetched:
			out.say("gateway", "fetched by %s: the office's system read the package; it takes it by confirming", e.Channel)
		case submission.EventReplied:
			out.say("gateway", "replied %s %s: the office's answer to the applicant, stored for Amt24", e.Channel, e.Detail)
		case submission.EventReplyFetched:
			out.say("gateway", "reply_fetched %s by %s: the office sees that its answer left for the applicant", e.Detail, e.Actor)
		default:
			out.say("gateway", "%s", strings.Join(strings.Fields(e.Type+" "+e.Channel+" "+e.Detail), " "))
		}
	})

	svc, err := dir.FindService(exampleServiceName)
	if err != nil {
		return fail("%v", err)
	}
	signer, err := signing.LoadSigner(g.PKI.PortalKey, g.PKI.PortalCert)
	if err != nil {
		return fail("portal key: %v", err)
	}
	client := &portal.Client{BaseURL: g.URL(), Signer: signer, Token: g.Config.Portals[signing.DevPortalID].Token}
	p := paket.Example(svc.Key)
	out.say("Amt24", "Iris Hübner reports: %q (Priorität: %s)", paket.ExampleComplaint, paket.ExamplePriority)
	out.say("Amt24", "service %q (LeiKa %s), place %q, attachment %s (%d bytes PDF)",
		svc.Name, svc.Key, p.Kopf.Ort.Name, p.Anlagen[0].Dateiname, len(p.Anlagen[0].Inhalt))
	res, err := submitDemo(ctx, client, p, "submission")
	if err != nil {
		return fail("%v", err)
	}
	out.say("Amt24", "%d Created: submission %s, signed Eingangsbestätigung received", res.Status, res.SubmissionID)

	awaitDone := func(id string) error {
		if !awaitID(ctx, done, id) {
			return fmt.Errorf("no answer from the office within %s", *timeout)
		}
		return nil
	}
	if err := awaitDone(res.SubmissionID); err != nil {
		return fail("%v", err)
	}
	if err := office.check(res.SubmissionID); err != nil {
		return fail("office: %v", err)
	}
	// Amt24 learns of the news by callback (gathered for a second), then reads the
	// status; without a callback it would read at its next poll all the same.
	if !cb.await(res.SubmissionID, 5*time.Second) {
		out.say("Amt24", "no callback within 5 s; reading the status as at a poll")
	}

	// The portal reads the status and both receipts, and checks the gateway's signature.
	st, err := client.Status(ctx, res.SubmissionID)
	if err != nil {
		return fail("status: %v", err)
	}
	out.say("Amt24", "status %s; event log: %s", st.State, eventSummary(st.Events))
	if err := os.MkdirAll(*receipts, 0o755); err != nil {
		return fail("%v", err)
	}
	// The office's replies (the Bescheid of a Fachverfahren on the webhook,
	// the api or the XTA channel): the very bytes it sent, from the portal's side.
	var answers []string
	for i, r := range st.Replies {
		path := filepath.Join(*receipts, fmt.Sprintf("antwort-%d%s", i+1, replyExtension(r.ContentType)))
		if err := readDemoReply(ctx, client, res.SubmissionID, r, path); err != nil {
			return fail("%v", err)
		}
		out.say("Amt24", "%s of the office read (%s, %d bytes%s), SHA-256 as the status lists it; saved %s", r.Kind, r.ContentType, r.Size, namedAs(r), path)
		answers = append(answers, path)
	}
	gwCert, err := os.ReadFile(g.PKI.GatewayCert)
	if err != nil {
		return fail("%v", err)
	}
	certPath := filepath.Join(*receipts, "gateway.pem")
	if err := os.WriteFile(certPath, gwCert, 0o644); err != nil {
		return fail("%v", err)
	}
	// xmlsec1 and other tools build the chain from the signature's KeyInfo up to a
	// trusted root, so the development CA goes along.
	caPEM, err := os.ReadFile(g.PKI.CACert)
	if err != nil {
		return fail("%v", err)
	}
	caPath := filepath.Join(*receipts, "ca.pem")
	if err := os.WriteFile(caPath, caPEM, 0o644); err != nil {
		return fail("%v", err)
	}
	trust, err := signing.TrustStoreFromPEM(signing.RoleGateway, gwCert)
	if err != nil {
		return fail("%v", err)
	}
	for _, k := range []struct{ kind, file string }{{"eingang", "eingangsbestaetigung.xml"}, {"zustellung", "zustellbestaetigung.xml"}} {
		b, err := client.Receipt(ctx, res.SubmissionID, k.kind)
		if err != nil {
			return fail("receipt %s: %v", k.kind, err)
		}
		rep, err := signing.VerifyOffline(b, trust, signing.VerifyOptions{})
		if err != nil {
			return fail("receipt %s does not verify: %v", k.kind, err)
		}
		path := filepath.Join(*receipts, k.file)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fail("%v", err)
		}
		out.say("Amt24", "%s signature valid: %s", rep.Kind, rep.Statement)
		out.say("Amt24", "saved %s", path)
	}

	// A Nachreichung: the applicant adds a photo to her application. It names
	// the first package's NachrichtID (Kopf/Bezug) and goes to the office that
	// has the case, whatever the directory would say of its own service and
	// place, under the case's id (the field Bezug in docs/paket.md).
	follow := paket.ExampleNachreichung(svc.Key, p.Kopf.NachrichtID)
	out.say("Amt24", "Iris Hübner adds a photo to her report: a Nachreichung naming NachrichtID %s (Kopf/Bezug), attachment %s",
		p.Kopf.NachrichtID, follow.Anlagen[0].Dateiname)
	fres, err := submitDemo(ctx, client, follow, "Nachreichung")
	if err != nil {
		return fail("%v", err)
	}
	out.say("Amt24", "%d Created: Nachreichung %s, signed Eingangsbestätigung received", fres.Status, fres.SubmissionID)
	if err := awaitDone(fres.SubmissionID); err != nil {
		return fail("Nachreichung: %v", err)
	}
	if err := office.check(fres.SubmissionID); err != nil {
		return fail("office, Nachreichung: %v", err)
	}
	fst, err := client.Status(ctx, fres.SubmissionID)
	if err != nil {
		return fail("status of the Nachreichung: %v", err)
	}
	if fst.CaseID != res.SubmissionID {
		return fail("the Nachreichung's status names case %q, not the application %s", fst.CaseID, res.SubmissionID)
	}
	out.say("Amt24", "Nachreichung %s: status %s, case %s (the application's)", fres.SubmissionID, fst.State, fst.CaseID)
	// The office has both; its side stops (a poll against the stopping gateway
	// would print a failure) before the gateway does.
	closeOffice()

	out.end()
	fmt.Fprintf(stdout, "\ndemo complete: the application reached Stadt Dresden by %s and is %s.\n", *via, st.State)
	fmt.Fprintf(stdout, "its Nachreichung %s went to the same office under case %s and is %s.\n", fres.SubmissionID, fst.CaseID, fst.State)
	if len(answers) > 0 {
		fmt.Fprintf(stdout, "the office's answer came back to Amt24 through the gateway: %s\n", strings.Join(answers, ", "))
	}
	fmt.Fprintf(stdout, "check the receipts offline:\n  amtsbote verify -cert %s %s\n  xmlsec1 --verify --trusted-pem %s --id-attr:ID urn:amtsbote:quittung:1:Eingangsbestaetigung %s\n",
		certPath, filepath.Join(*receipts, "eingangsbestaetigung.xml"), caPath, filepath.Join(*receipts, "eingangsbestaetigung.xml"))
	return 0
}

// submitDemo submits p as the portal does and says why when the gateway did
// not accept it (what names the package: "submission", "Nachreichung").
func submitDemo(ctx context.Context, client *portal.Client, p *paket.Paket, what string) (*portal.Result, error) {
	res, err := client.Submit(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("submit the %s: %w", what, err)
	}
	if !res.Accepted() {
		return nil, fmt.Errorf("%s refused: %d %s: %s", what, res.Status, res.Problem.Type, res.Problem.Detail)
	}
	return res, nil
}

// offerID puts id on ids (an observer's) unless the channel is full: the
// broker's goroutine that observes must not wait for the demo.
func offerID(ids chan<- string, id string) {
	select {
	case ids <- id:
	default:
	}
}

// awaitID waits until id comes on ids (an observer's: the packages an office
// is done with, others skipped) and reports false when ctx ends first.
func awaitID(ctx context.Context, ids <-chan string, id string) bool {
	for {
		select {
		case got := <-ids:
			if got == id {
				return true
			}
		case <-ctx.Done():
			return false
		}
	}
}

// readDemoReply reads the reply r of the submission id as the portal does,
// checks its bytes against the status's SHA-256 and size, and saves them at path.
func readDemoReply(ctx context.Context, client *portal.Client, id string, r wire.Reply, path string) error {
	b, err := client.Reply(ctx, id, r.ID)
	if err != nil {
		return fmt.Errorf("reply %s: %w", r.ID, err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != r.SHA256 || int64(len(b)) != r.Size {
		return fmt.Errorf("reply %s: %d bytes with SHA-256 %x, the status says %d and %s", r.ID, len(b), sum, r.Size, r.SHA256)
	}
	return os.WriteFile(path, b, 0o644)
}

// namedAs is ", named NAME" for a reply whose office named its file (the
// portal would offer the applicant to save it under that name), else "".
func namedAs(r wire.Reply) string {
	if r.FileName == "" {
		return ""
	}
	return ", named " + strconv.Quote(r.FileName)
}

// replyExtension is the file extension a reply of media type ct is saved with.
func replyExtension(ct string) string {
	mt, _, _ := mime.ParseMediaType(ct)
	switch {
	case mt == "application/pdf":
		return ".pdf"
	case mt == "text/plain":
		return ".txt"
	case mt == "application/xml" || mt == "text/xml" || strings.HasSuffix(mt, "+xml"):
		return ".xml"
	}
	return ".bin"
}

func officeLine(d *routing.Directory, id string) string {
	o, ok := d.Office(id)
	if !ok {
		return id
	}
	parts := []string{o.Name}
	if a := o.Street; !a.IsZero() {
		parts = append(parts, fmt.Sprintf("Hausanschrift %s, %s %s", a.Street, a.Postcode, a.City))
	}
	if a := o.Postal; !a.IsZero() && a.Postfach != "" {
		parts = append(parts, fmt.Sprintf("Postfach %s, %s %s", a.Postfach, a.Postcode, a.City))
	}
	return strings.Join(parts, "; ")
}

// queuedLine is the demo's line for a queued event. The first one of a
// package says nothing more; a later one with a detail moved the waiting
// package's next attempt to the end of its office endpoint's pause
// (submission.Defer), and the detail says until when: a bare "queued" line
// there read as if the package had been queued afresh.
func queuedLine(e submission.Event) string {
	if !e.PutsOff() {
		return fmt.Sprintf("queued for delivery by %s", e.Channel)
	}
	return fmt.Sprintf("delivery by %s put off: %s", e.Channel, e.Detail)
}

func eventSummary(evs []wire.Event) string {
	names := make([]string, len(evs))
	for i, e := range evs {
		names[i] = e.Type
	}
	return strings.Join(names, " → ")
}
