package mailbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/internal/testenv"
)

// refusingRelay is an office's mail relay that refuses the way Postfix does,
// quoting the address (on two lines, as a multi-line reply): the stand-in for
// a relay where mailpit will not do, since mailpit's refusal
// (--smtp-allowed-recipients) does not quote the recipient, is always
// permanent and only of the recipient. It refuses at stage — "MAIL" the
// sender, "RCPT" the recipient, "DATA" the message once sent — with the reply
// code: "550" refuses for good, "450" for now (Postfix with soft_bounce, or a
// recipient it cannot verify yet). "DATA-policy" refuses the message with a
// security or policy status (5.7.1), as a content filter does. "RCPT-sender"
// refuses the sender at RCPT TO, as Postfix does by default (its sender
// restrictions wait for the recipient): "553 5.1.8 <…>: Sender address
// rejected: Domain not found". "RCPT-relay" refuses to relay as Exim does,
// without an enhanced status code: "550 relay not permitted".
func refusingRelay(t *testing.T, stage, code string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				say := func(s string) { _, _ = c.Write([]byte(s + "\r\n")) }
				say("220 relay.amt.example ESMTP")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					line = strings.TrimRight(line, "\r\n")
					switch cmd := strings.ToUpper(line); {
					case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
						say("250-relay.amt.example")
						say("250 8BITMIME")
					case strings.HasPrefix(cmd, "MAIL FROM:") && stage == "MAIL":
						from := strings.TrimPrefix(line[len("MAIL FROM:"):], " ")
						say(code + " " + code[:1] + ".7.1 " + from + ": Sender address rejected: not owned by user postfach")
					case strings.HasPrefix(cmd, "MAIL FROM:"):
						say("250 2.1.0 Ok")
					case strings.HasPrefix(cmd, "RCPT TO:") && stage == "RCPT-sender":
						say(code + " " + code[:1] + ".1.8 <postfach@gateway.example>: Sender address rejected: Domain not found")
					case strings.HasPrefix(cmd, "RCPT TO:") && stage == "RCPT-relay":
						say(code + " relay not permitted")
					case strings.HasPrefix(cmd, "RCPT TO:") && stage == "RCPT":
						to := strings.TrimPrefix(line[len("RCPT TO:"):], " ")
						status := code[:1] + ".1.1"
						say(code + "-" + status + " " + to + ": Recipient address rejected: User unknown in virtual mailbox table")
						say(code + " " + status + " Contact postmaster@amt.example about " + strings.Trim(to, "<>"))
					case cmd == "DATA":
						say("354 End data with <CR><LF>.<CR><LF>")
						for {
							l, err := r.ReadString('\n')
							if err != nil {
								return
							}
							if l == ".\r\n" {
								break
							}
						}
						switch stage {
						case "DATA":
							say(code + " " + code[:1] + ".6.0 Message content rejected")
						case "DATA-policy":
							say(code + " " + code[:1] + ".7.1 Message refused by policy")
						default:
							say("250 2.0.0 Ok: queued")
						}
					case cmd == "QUIT":
						say("221 2.0.0 Bye")
						return
					default:
						say("250 2.0.0 Ok")
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestRefusedNoticeLogsNoAddress: a relay that refuses the notice address
// quotes it in its reply, and net/smtp's error carries the reply. The log
// lines of the retries of a refusal for now (450) and of the drop after 7 days
// keep the SMTP code and the reply's sense but hold no e-mail address (before,
// they held the clerk's), and the drop is counted for an alert, not only
// logged. TestPermanentRefusalDropsTheNoticeAtOnce has the 550.
func TestRefusedNoticeLogsNoAddress(t *testing.T) {
	relay := refusingRelay(t, "RCPT", "450")
	var logs testenv.Buffer
	var ahead atomic.Int64 // how far the mailbox's clock is ahead of the real one
	reg := prometheus.NewRegistry()
	e := startBrokerEnv(t, t.TempDir(), Options{
		SMTP:             SMTPConfig{Addr: relay, From: "Behördenpostfach <postfach@gateway.example>"},
		Logger:           slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Now:              func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) },
		Registerer:       reg,
		noticeBackoff:    50 * time.Millisecond,
		noticeBackoffMax: 100 * time.Millisecond,
		smtpTimeout:      5 * time.Second,
	})
	metrics := func() map[string]float64 { return noticeSeries(t, reg) }
	e.receiveHandedOver(t, officeDresden)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ob := e.mb.outbox(t)
		if len(ob) == 1 && ob[0].Attempts >= 2 && strings.Contains(logs.String(), "notice not sent; will retry") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notice not retried: outbox %+v\n%s", ob, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if m := metrics(); len(m) != 4 || m[droppedExpired] != 0 || m[droppedRefused] != 0 || m[attemptsFailed] < 2 {
		t.Fatalf("before the 7 days are up: %v", m)
	}

	ahead.Store(int64(noticeMaxAge + time.Hour)) // the next attempt is the last
	deadline = time.Now().Add(30 * time.Second)
	for {
		if len(e.mb.outbox(t)) == 0 && strings.Contains(logs.String(), "notice dropped after repeated failures") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notice not dropped: outbox %+v\n%s", e.mb.outbox(t), logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := logs.String()
	if strings.Contains(out, "@") {
		t.Errorf("the log holds an e-mail address:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if (strings.Contains(line, "notice not sent") || strings.Contains(line, "notice dropped")) &&
			!strings.Contains(line, `err="450 \"4.1.1 <…>: Recipient address rejected: User unknown in virtual mailbox table`) {
			t.Errorf("the refusal lost its code or sense: %s", line)
		}
	}
	if m := metrics(); m[droppedExpired] != 1 || m[droppedRefused] != 0 || m[attemptsFailed] < 3 || m[attemptsSent] != 0 {
		t.Errorf("after the drop: %v; want 1 dropped as expired, at least 3 failed attempts, none sent", m)
	}
}

// The series of the notice counters as noticeSeries names them.
const (
	droppedExpired = "amtsbote_mailbox_notices_dropped_total reason=expired"
	droppedRefused = "amtsbote_mailbox_notices_dropped_total reason=refused"
	attemptsFailed = "amtsbote_mailbox_notice_attempts_total result=failed"
	attemptsSent   = "amtsbote_mailbox_notice_attempts_total result=sent"
)

func noticeSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	return testenv.Series(t, reg, "amtsbote_mailbox_notices_dropped_total", "amtsbote_mailbox_notice_attempts_total")
}

// TestPermanentRefusalDropsTheNoticeAtOnce: a mail server that refuses the
// notice's recipient for good (550) gets no second try. Before, the notice was
// retried for 7 days like one refused for now, and a clerk's notice to a wrong
// address hid in the log's retries for a week; now it is dropped after the
// first answer, counted (reason "refused", for the alert
// AmtsboteMailNoticeRefused) and logged with the office, without the address.
// Against mailpit (a real server's 550) and against the relay that quotes the
// address in its refusal.
func TestPermanentRefusalDropsTheNoticeAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		relay func(t *testing.T) string
		reply string
	}{
		{"mailpit", func(t *testing.T) string {
			addr := freeAddr(t)
			startMailpit(t, mailpitBinary(t), addr, "--smtp-allowed-recipients", `^somebody-else@amt\.example$`)
			return addr
		}, `err="550 \"5.1.0 Requested action not taken: mailbox unavailable`},
		{"relay quoting the address", func(t *testing.T) string { return refusingRelay(t, "RCPT", "550") },
			`err="550 \"5.1.1 <…>: Recipient address rejected: User unknown in virtual mailbox table`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.relay(t)
			e, logs, reg := noticeEnv(t, addr)
			e.receiveHandedOver(t, officeDresden)
			// Dropped, or retried (the old way: within 50 ms, long before the
			// deadline), whichever comes first.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				ob := e.mb.outbox(t)
				if len(ob) == 1 && ob[0].Attempts > 0 {
					t.Fatalf("a notice refused for good is kept for another try: outbox %+v\n%s", ob, logs.String())
				}
				if len(ob) == 0 && strings.Contains(logs.String(), "notice refused by the mail server; dropped") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("notice not dropped: outbox %+v\n%s", ob, logs.String())
				}
			}
			out := logs.String()
			if strings.Contains(out, "@") {
				t.Errorf("the log holds an e-mail address:\n%s", out)
			}
			if strings.Contains(out, "will retry") {
				t.Errorf("a refusal for good was retried:\n%s", out)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "notice refused") &&
					(!strings.Contains(line, tc.reply) || !strings.Contains(line, "office="+officeDresden) || !strings.Contains(line, "attempts=1")) {
					t.Errorf("the drop's log line lacks the reply, the office or the count: %s", line)
				}
			}
			if m := noticeSeries(t, reg); m[droppedRefused] != 1 || m[droppedExpired] != 0 || m[attemptsFailed] != 1 || m[attemptsSent] != 0 {
				t.Errorf("metrics %v; want one attempt, failed, and one notice dropped as refused", m)
			}
		})
	}
}

// TestRefusalForNowIsRetried: what a retry can mend is retried, as before —
// a refusal for now (450); a 552 after the recipient, which RFC 5321
// (4.5.3.1.10) has clients take as 452; and a refusal of the gateway's own
// setup, the same for every notice: mended by the operator, the waiting
// notices go out. That is the sender (mailbox.smtp.from), refused at MAIL FROM
// or, as Postfix does by default, at RCPT TO (5.1.8); a relay that will not
// relay for the gateway, with a policy status (5.7.1) or, as Exim, with none;
// and the message, which is the gateway's template for every notice (5.6.0,
// 5.7.1). None of them is dropped before the 7 days. The last four were
// dropped at their first attempt when any 5xx to the recipient or the message
// counted as the notice's own: every office's notices lost to one setting.
func TestRefusalForNowIsRetried(t *testing.T) {
	for _, tc := range []struct{ stage, code string }{{"RCPT", "450"}, {"RCPT", "552"}, {"MAIL", "553"}, {"DATA-policy", "554"},
		{"RCPT-sender", "553"}, {"RCPT-relay", "550"}, {"DATA", "554"}} {
		t.Run(tc.stage+" "+tc.code, func(t *testing.T) {
			e, logs, reg := noticeEnv(t, refusingRelay(t, tc.stage, tc.code))
			e.receiveHandedOver(t, officeDresden)
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				ob := e.mb.outbox(t)
				if len(ob) == 1 && ob[0].Attempts >= 2 {
					break
				}
				if len(ob) == 0 || time.Now().After(deadline) {
					t.Fatalf("notice not retried: outbox %+v\n%s", ob, logs.String())
				}
			}
			if m := noticeSeries(t, reg); m[droppedRefused] != 0 || m[droppedExpired] != 0 || m[attemptsFailed] < 2 {
				t.Errorf("metrics %v; want failed attempts and nothing dropped", m)
			}
			if out := logs.String(); strings.Contains(out, "@") || !strings.Contains(out, `err="`+tc.code+` \"`) {
				t.Errorf("the log holds an address or lacks the reply:\n%s", out)
			}
		})
	}
}

// TestRefusalIsPermanentOnlyFor5xx: which errors of the notice's own steps
// (RCPT TO, DATA, the message) drop it at once.
func TestRefusalIsPermanentOnlyFor5xx(t *testing.T) {
	for _, tc := range []struct {
		err       error
		permanent bool
	}{
		{&textproto.Error{Code: 550, Msg: "5.1.1 unknown"}, true},
		{&textproto.Error{Code: 553, Msg: "5.1.3 bad address syntax"}, true},
		{&textproto.Error{Code: 550, Msg: "5.1.0 Requested action not taken: mailbox unavailable"}, true}, // mailpit
		{&textproto.Error{Code: 550, Msg: "5.1.1 The email account that you tried to reach does not exist.\n5.1.1 Please try double-checking"}, true},
		{&textproto.Error{Code: 550, Msg: "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"}, true},
		{&textproto.Error{Code: 550, Msg: "5.2.1 The email account that you tried to reach is disabled"}, true},
		{&textproto.Error{Code: 550, Msg: "sorry, no mailbox here by that name. (#5.1.1)"}, true}, // qmail
		// The gateway's own setup, the same for every notice: retried.
		{&textproto.Error{Code: 554, Msg: "5.7.1 Relay access denied"}, false},
		{&textproto.Error{Code: 550, Msg: "relay not permitted"}, false},                                               // Exim: no enhanced codes
		{&textproto.Error{Code: 553, Msg: "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"}, false}, // qmail
		{&textproto.Error{Code: 553, Msg: "5.1.8 <…>: Sender address rejected: Domain not found"}, false},              // Postfix, at RCPT TO
		{&textproto.Error{Code: 550, Msg: "5.1.0 <…>: Sender address rejected: User unknown in local recipient table"}, false},
		{&textproto.Error{Code: 553, Msg: "5.1.7 bad sender's mailbox address syntax"}, false},
		{&textproto.Error{Code: 554, Msg: "5.6.0 message content rejected"}, false}, // the gateway's template
		{&textproto.Error{Code: 550, Msg: "mailbox unavailable"}, false},            // no status: whose?
		{&textproto.Error{Code: 554, Msg: "5.0.0 transaction failed"}, false},
		{&textproto.Error{Code: 550, Msg: "5.2.2 mailbox full"}, false},
		{&textproto.Error{Code: 530, Msg: "5.7.0 Authentication required"}, false},
		{&textproto.Error{Code: 550, Msg: "5.3.2 system not accepting network messages"}, false},
		{fmt.Errorf("wrapped: %w", &textproto.Error{Code: 551, Msg: "5.1.6 moved"}), true},
		{&textproto.Error{Code: 552, Msg: "5.2.2 mailbox full"}, false},
		{&textproto.Error{Code: 450, Msg: "4.2.1 try later"}, false},
		{&textproto.Error{Code: 421, Msg: "4.3.2 shutting down"}, false},
		{io.ErrUnexpectedEOF, false},
		{&net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, false},
	} {
		var refused *refusedError
		if got := errors.As(withoutAddresses(refusal(tc.err)), &refused); got != tc.permanent {
			t.Errorf("%v: permanent %v, want %v", tc.err, got, tc.permanent)
		}
	}
}

// TestRedactAddresses: whatever an SMTP reply says, no "@" is left, and what
// surrounds an address stays.
func TestRedactAddresses(t *testing.T) {
	for in, want := range map[string]string{
		"550 5.1.1 <anna.schmidt@amt.example>: Recipient address rejected":        "550 5.1.1 <…>: Recipient address rejected",
		"550 5.1.1 anna.schmidt@amt.example: Recipient address rejected":          "550 5.1.1 …: Recipient address rejected",
		`553 5.1.3 <"anna schmidt"@amt.example> bad address`:                      "553 5.1.3 <…> bad address",
		"550 5.7.1 <@relay.example:anna@amt.example>, <b@x.example> relay denied": "550 5.7.1 <…:…>, <…> relay denied",
		"535 5.7.8 Authentication failed for user 'postfach@gateway.example'":     "535 5.7.8 Authentication failed for user '…'",
		"452 4.2.2 Mailbox full\n452 4.2.2 (anna@amt.example)":                    "452 4.2.2 Mailbox full\n452 4.2.2 (…)",
		"dial tcp 192.0.2.1:587: connect: connection refused":                     "dial tcp 192.0.2.1:587: connect: connection refused",
		// net/textproto's errors quote the reply (%q).
		`550 "5.1.1 <\"anna schmidt\"@amt.example>: rejected"`: `550 "5.1.1 <…>: rejected"`,
		"stray @ sign": "stray … sign",
		"550 5.1.1 <anna.schmidt@amt.example>; 550 <ANNA@AMT.EXAMPLE> unknown":    "550 5.1.1 <…>; 550 <…> unknown",
		"550 5.1.1 Empfänger <jürgen.müller@stadt-görlitz.example> ist unbekannt": "550 5.1.1 Empfänger <…> ist unbekannt",
		"550 5.1.1 <anna(work)schmidt@amt.example>: rejected":                     "550 5.1.1 <…>: rejected",
		"550 5.1.1 (see policy) <anna@amt.example>":                               "550 5.1.1 (see policy) <…>",
		// Comments (RFC 5322) are part of the address wherever they stand:
		// nested, with quoted pairs, beside the "@" with white space, in the
		// domain, and the old display name after the address.
		"550 5.1.1 anna(work)@amt.example: rejected":                "550 5.1.1 …: rejected",
		"550 5.1.1 <anna(a(b)c)schmidt@amt.example>: rejected":      "550 5.1.1 <…>: rejected",
		`550 5.1.1 <anna(x\)y)schmidt@amt.example>: rejected`:       "550 5.1.1 <…>: rejected",
		"550 5.1.1 anna (work) @amt.example: rejected":              "550 5.1.1 …: rejected",
		"550 5.1.1 anna.schmidt(work)\t@ (x) amt.example: rejected": "550 5.1.1 …: rejected",
		"550 5.1.1 anna@(work)amt.example: rejected":                "550 5.1.1 …: rejected",
		"550 5.1.1 anna@amt.(work)example rejected":                 "550 5.1.1 … rejected",
		"550 5.1.1 anna@amt.example (Anna Schmidt) unknown":         "550 5.1.1 … unknown",
		"550 5.1.1 <anna@amt.example> (see policy)":                 "550 5.1.1 <…> (see policy)",
		"550 5.1.1 unknown (anna@amt.example)":                      "550 5.1.1 unknown (…)",
		"550 5.1.1 see (policy) anna@amt.example":                   "550 5.1.1 see (policy) …",
		"550 5.1.1 unclosed (anna@amt.example":                      "550 5.1.1 unclosed (…",
		"550 5.1.1 anna@amt.example(unclosed":                       "550 5.1.1 …(unclosed",
		// An "@" in a comment or in a quoted local part before the address's
		// own: the whole address is one run, its start too.
		"550 5.1.1 <anna(@home)schmidt@amt.example>: rejected":    "550 5.1.1 <…>: rejected",
		`553 5.1.3 <"anna@home schmidt"@amt.example> bad address`: "553 5.1.3 <…> bad address",
		`553 5.1.3 <"anna @ schmidt"@amt.example> bad address`:    "553 5.1.3 <…> bad address",
		"550 5.1.1 anna(x@y) (z@w) @amt.example: rejected":        "550 5.1.1 …: rejected",
	} {
		got := redactAddresses(in)
		if got != want || strings.Contains(got, "@") {
			t.Errorf("redactAddresses(%q) = %q, want %q", in, got, want)
		}
	}
}

// noticeEnv is a mailbox behind a real broker whose notices go to the mail
// server at smtpAddr, retried within 50–100 ms, with its log and metrics.
func noticeEnv(t *testing.T, smtpAddr string) (*brokerEnv, *testenv.Buffer, *prometheus.Registry) {
	t.Helper()
	logs := &testenv.Buffer{}
	reg := prometheus.NewRegistry()
	e := startBrokerEnv(t, t.TempDir(), Options{
		SMTP:             SMTPConfig{Addr: smtpAddr, From: "Behördenpostfach <postfach@gateway.example>"},
		Logger:           slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Registerer:       reg,
		noticeBackoff:    50 * time.Millisecond,
		noticeBackoffMax: 100 * time.Millisecond,
		smtpTimeout:      5 * time.Second,
	})
	return e, logs, reg
}
