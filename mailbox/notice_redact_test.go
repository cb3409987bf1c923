package mailbox

import (
	"bufio"
	"bytes"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// refusingRelay is an office's mail relay that refuses every recipient the way
// Postfix does, quoting the address (on two lines, as a multi-line reply): the
// stand-in for a relay where mailpit will not do, since mailpit's refusal
// (--smtp-allowed-recipients) does not quote the recipient.
func refusingRelay(t *testing.T) string {
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
					case strings.HasPrefix(cmd, "MAIL FROM:"):
						say("250 2.1.0 Ok")
					case strings.HasPrefix(cmd, "RCPT TO:"):
						to := strings.TrimPrefix(line[len("RCPT TO:"):], " ")
						say("550-5.1.1 " + to + ": Recipient address rejected: User unknown in virtual mailbox table")
						say("550 5.1.1 Contact postmaster@amt.example about " + strings.Trim(to, "<>"))
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

// series reads the registry as /metrics would: each series of the given
// names by its labels ("result=failed"; "" without labels) and its value.
func series(t *testing.T, reg *prometheus.Registry, names ...string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if !slices.Contains(names, mf.GetName()) {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out
}

// syncBuffer is a log destination the mailbox's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRefusedNoticeLogsNoAddress: a relay that refuses the notice address
// quotes it in its reply, and net/smtp's error carries the reply. The log
// lines of the retries and of the drop after 7 days keep the SMTP code and the
// reply's sense but hold no e-mail address (before, they held the clerk's), and
// the drop is counted for an alert, not only logged.
func TestRefusedNoticeLogsNoAddress(t *testing.T) {
	relay := refusingRelay(t)
	var logs syncBuffer
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
	const dropped, failed, sent = "amtsbote_mailbox_notices_dropped_total", "amtsbote_mailbox_notice_attempts_total result=failed", "amtsbote_mailbox_notice_attempts_total result=sent"
	metrics := func() map[string]float64 {
		return series(t, reg, "amtsbote_mailbox_notices_dropped_total", "amtsbote_mailbox_notice_attempts_total")
	}
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
	if m := metrics(); len(m) != 3 || m[dropped] != 0 || m[failed] < 2 {
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
			!strings.Contains(line, `err="550 \"5.1.1 <…>: Recipient address rejected: User unknown in virtual mailbox table`) {
			t.Errorf("the refusal lost its code or sense: %s", line)
		}
	}
	if m := metrics(); m[dropped] != 1 || m[failed] < 3 || m[sent] != 0 {
		t.Errorf("after the drop: %v; want 1 dropped, at least 3 failed attempts, none sent", m)
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
	} {
		got := redactAddresses(in)
		if got != want || strings.Contains(got, "@") {
			t.Errorf("redactAddresses(%q) = %q, want %q", in, got, want)
		}
	}
}
