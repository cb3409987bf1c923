package mailbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	netmail "net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/freeport"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/submission"
)

// mailpitVersion is the SMTP test server the notice test runs as a real process.
const mailpitVersion = "v1.33.1"

// mailpitBinary returns a mailpit executable: $MAILPIT_BIN, else a build cached in the
// user cache directory, else it builds one there with `go install` (through the Go
// module proxy). It fails the test, never skips it, when it cannot get one.
func mailpitBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("MAILPIT_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("MAILPIT_BIN=%s: %v", p, err)
		}
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "amtsbote-test", "mailpit-"+mailpitVersion)
	bin := filepath.Join(dir, "mailpit")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("building mailpit %s into %s (once; takes a few minutes)", mailpitVersion, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/axllent/mailpit@"+mailpitVersion)
	cmd.Dir = t.TempDir() // outside this module: its go.mod stays untouched
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cannot build mailpit %s (needed for the notice test): %v\n%s", mailpitVersion, err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("mailpit built but not found at %s: %v", bin, err)
	}
	return bin
}

// freeAddr picks a port for mailpit to bind later (see package freeport).
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

type mailpit struct {
	api string
}

// startMailpit runs mailpit with its SMTP server on smtpAddr (and the extra
// arguments) and waits until its HTTP API answers.
func startMailpit(t *testing.T, bin, smtpAddr string, extra ...string) *mailpit {
	t.Helper()
	httpAddr := freeAddr(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, append([]string{"--smtp", smtpAddr, "--listen", httpAddr,
		"--database", filepath.Join(dir, "mailpit.db"), "--disable-version-check"}, extra...)...)
	logf, err := os.Create(filepath.Join(dir, "mailpit.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mailpit: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logf.Close()
	})
	mp := &mailpit{api: "http://" + httpAddr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(mp.api + "/api/v1/messages")
		if err == nil {
			resp.Body.Close()
			if c, err := net.DialTimeout("tcp", smtpAddr, time.Second); err == nil {
				c.Close()
				return mp
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "mailpit.log"))
			t.Fatalf("mailpit did not come up: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type mpAddress struct{ Name, Address string }

type mpSummary struct {
	ID      string
	Subject string
	To      []mpAddress
}

func (mp *mailpit) messages(t *testing.T) []mpSummary {
	t.Helper()
	var out struct{ Messages []mpSummary }
	mp.getJSON(t, "/api/v1/messages", &out)
	return out.Messages
}

func (mp *mailpit) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(mp.api + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("mailpit %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("mailpit %s: %v", path, err)
	}
}

// outbox lists the notices waiting in mailbox.db.
func (m *Mailbox) outbox(t *testing.T) []notice {
	t.Helper()
	var out []notice
	err := m.db.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bOutbox).ForEach(func(_, v []byte) error {
			var n notice
			if err := json.Unmarshal(v, &n); err != nil {
				return err
			}
			out = append(out, n)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNoticeRetriedUntilSMTPServerUp: the SMTP server is down when the package
// arrives; the package is in the mailbox at once, the notice waits in the outbox and
// is retried, and it arrives once mailpit comes up on that address. The mail has the
// link and the case number and nothing about the applicant.
func TestNoticeRetriedUntilSMTPServerUp(t *testing.T) {
	bin := mailpitBinary(t)
	smtpAddr := freeAddr(t) // nobody listens here yet
	e := startBrokerEnv(t, t.TempDir(), Options{
		PublicURL:        "https://gateway.example/postfach/",
		SMTP:             SMTPConfig{Addr: smtpAddr, From: "Behördenpostfach <postfach@gateway.example>"},
		noticeBackoff:    100 * time.Millisecond,
		noticeBackoffMax: 500 * time.Millisecond,
		smtpTimeout:      5 * time.Second,
	})
	sub := e.receiveExample(t, officeDresden)
	// Not held back: the package is handed over while the SMTP server is down.
	e.waitState(t, sub.ID, submission.StateHandedOver)

	deadline := time.Now().Add(30 * time.Second)
	for {
		ob := e.mb.outbox(t)
		if len(ob) == 1 && ob[0].Attempts >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notice not retried while the server is down: outbox %+v", ob)
		}
		time.Sleep(50 * time.Millisecond)
	}

	mp := startMailpit(t, bin, smtpAddr)
	var msgs []mpSummary
	deadline = time.Now().Add(30 * time.Second)
	for {
		msgs = mp.messages(t)
		if len(msgs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notice not delivered after the SMTP server came up; outbox %+v", e.mb.outbox(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d mails, want 1", len(msgs))
	}
	if len(msgs[0].To) != 1 || msgs[0].To[0].Address != noticeAddr {
		t.Errorf("mail to %+v, want %s", msgs[0].To, noticeAddr)
	}
	if !strings.Contains(msgs[0].Subject, paket.ExampleServiceName) || !strings.Contains(msgs[0].Subject, sub.ID) {
		t.Errorf("subject %q lacks service or case number", msgs[0].Subject)
	}
	var full struct {
		Subject, Text string
		From          mpAddress
	}
	mp.getJSON(t, "/api/v1/message/"+msgs[0].ID, &full)
	link := "https://gateway.example/postfach/s/" + sub.ID
	if !strings.Contains(full.Text, link) {
		t.Errorf("mail text lacks the link %s:\n%s", link, full.Text)
	}
	if !strings.Contains(full.Text, "Vorgangsnummer: "+sub.ID) {
		t.Errorf("mail text lacks the case number:\n%s", full.Text)
	}
	for _, personal := range []string{"Hübner", "Huebner", "huebner", "Iris", "Altmarkt", "01067", paket.ExampleComplaint} {
		if strings.Contains(full.Text, personal) || strings.Contains(full.Subject, personal) {
			t.Errorf("mail contains applicant data %q:\n%s", personal, full.Text)
		}
	}
	if full.From.Address != "postfach@gateway.example" {
		t.Errorf("from %+v", full.From)
	}
	// The notice leaves the outbox once the SMTP session has ended, which may be
	// just after mailpit lists the message (seen in a loaded make test).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ob := e.mb.outbox(t)
		if len(ob) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox after delivery: %+v", ob)
		}
	}

	// A repeated hand-over of the same submission (at-least-once) sends no second mail.
	if _, err := e.mb.Adapter().Deliver(t.Context(), adapters.Delivery{ID: sub.DeliveryID, SubmissionID: sub.ID, OfficeID: officeDresden,
		ServiceName: sub.ServiceName, Attempt: 2, Target: adapters.Target{Channel: channel.Mailbox, Endpoint: noticeAddr}}); err != nil {
		t.Fatal(err)
	}
	if ob := e.mb.outbox(t); len(ob) != 0 {
		t.Errorf("a repeated hand-over queued another notice: %+v", ob)
	}
	second := e.receiveExample(t, officeDresden)
	e.waitState(t, second.ID, submission.StateHandedOver)
	deadline = time.Now().Add(30 * time.Second)
	for len(mp.messages(t)) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("second notice (server up) did not arrive")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(mp.messages(t)); n != 2 {
		t.Errorf("%d mails for two submissions (one delivered twice), want 2", n)
	}
}

// TestNoticeRequireTLS: with RequireTLS a server without STARTTLS gets nothing, and
// the notice stays queued.
func TestNoticeRequireTLS(t *testing.T) {
	bin := mailpitBinary(t)
	smtpAddr := freeAddr(t)
	mp := startMailpit(t, bin, smtpAddr)
	e := startBrokerEnv(t, t.TempDir(), Options{
		SMTP:          SMTPConfig{Addr: smtpAddr, From: "postfach@gateway.example", RequireTLS: true},
		noticeBackoff: 100 * time.Millisecond, noticeBackoffMax: 200 * time.Millisecond,
	})
	e.receiveHandedOver(t, officeDresden)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ob := e.mb.outbox(t)
		if len(ob) == 1 && ob[0].Attempts >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notice not retried: %+v", ob)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(mp.messages(t)); n != 0 {
		t.Errorf("%d mails sent in clear text despite RequireTLS", n)
	}
	err := e.mb.sendMail(t.Context(), notice{To: noticeAddr, Subject: "x", Body: "x"})
	if !errors.Is(err, errNoTLS) {
		t.Errorf("sendMail without STARTTLS: %v, want errNoTLS", err)
	}
}

// TestNoticeFromIsSevenBit: the configured sender with an umlaut in its display
// name ("Behördenpostfach <…>", as docs/mailbox.md shows it) went into the From
// header as raw UTF-8, which servers without SMTPUTF8 refuse or garble. It is
// encoded (RFC 2047) and reads back as configured.
func TestNoticeFromIsSevenBit(t *testing.T) {
	m := &Mailbox{opts: Options{SMTP: SMTPConfig{From: "Behördenpostfach <postfach@gateway.example>"}}}
	msg, err := netmail.ReadMessage(bytes.NewReader(m.message(notice{SubmissionID: "s1", To: "anna@amt.example", Subject: "Neuer Antrag", Body: "x", Created: time.Now()})))
	if err != nil {
		t.Fatal(err)
	}
	raw := msg.Header.Get("From")
	for i := range len(raw) {
		if raw[i] >= 0x80 {
			t.Fatalf("From header with 8-bit bytes: %q", raw)
		}
	}
	a, err := netmail.ParseAddress(raw)
	if err != nil || a.Name != "Behördenpostfach" || a.Address != "postfach@gateway.example" {
		t.Fatalf("From %q reads back as %+v, %v", raw, a, err)
	}
}

// TestNoticeOfANachreichungNamesItsCase: the notice of a Nachreichung says it
// is one, names its case and links both; a new application's says neither.
func TestNoticeOfANachreichungNamesItsCase(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{PublicURL: "https://gateway.example/postfach/"})
	d := adapters.Delivery{SubmissionID: "01a3-n", CaseID: "01a2-c", OfficeID: officeDresden, OfficeName: "Ordnungsamt", ServiceName: "Meldung von Mängeln"}
	subject, body := e.mb.noticeText(d)
	if subject != "Nachreichung im Behördenpostfach: Meldung von Mängeln (zu Vorgang 01a2-c)" {
		t.Errorf("subject %q", subject)
	}
	for _, want := range []string{"eine Nachreichung zu Vorgang 01a2-c angekommen", "Vorgangsnummer: 01a3-n\r\n", "Nachreichung zu: 01a2-c\r\n",
		"https://gateway.example/postfach/s/01a3-n\r\n", "Der Vorgang, zu dem er gehört:\r\nhttps://gateway.example/postfach/s/01a2-c\r\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("the notice lacks %q:\n%s", want, body)
		}
	}
	d.CaseID = ""
	if subject, body := e.mb.noticeText(d); !strings.HasPrefix(subject, "Neuer Eingang") || strings.Contains(body, "Nachreichung") {
		t.Errorf("a new application's notice: %q\n%s", subject, body)
	}
}
