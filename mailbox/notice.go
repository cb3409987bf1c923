package mailbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/adapters"
)

// noticeMaxAge: a notice that could not be sent for this long is dropped (logged);
// by then the office has long seen the package in its inbox or been called.
const noticeMaxAge = 7 * 24 * time.Hour

// mailboxMetrics count the notices' SMTP attempts and the clerks' takeovers. Before, a notice given up
// after noticeMaxAge was a log line only, and a relay that refused every notice
// for days showed nowhere an alert could see it.
type mailboxMetrics struct {
	attempts     *prometheus.CounterVec
	sent, failed prometheus.Counter
	dropped      *prometheus.CounterVec
	// expired: given up after noticeMaxAge; refused: the mail server refused
	// the notice for good (refusedError). Two values: the office and the case
	// are in the log, not in labels.
	expired, refused prometheus.Counter
	// takeovers counts the clerks' takeovers of cases on their way to the
	// office's own system, by that system's channel: a rising count is an
	// office's Fachverfahren (or its share) down, or a habit of skipping it.
	// The office and the case are in the log line, not in labels.
	takeovers *prometheus.CounterVec
}

func newMailboxMetrics() mailboxMetrics {
	attempts := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amtsbote_mailbox_notice_attempts_total",
		Help: "SMTP conversations of the mailbox's arrival notices by result: sent, or failed (retried with growing pauses, or dropped)."}, []string{"result"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amtsbote_mailbox_notices_dropped_total",
		Help: "Arrival notices given up, by reason: expired (7 days without a successful send) or refused (the mail server refused it for good, e.g. 550 for an unknown address). The office was not told by mail; the case is in its mailbox all the same."}, []string{"reason"})
	takeovers := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amtsbote_mailbox_takeovers_total",
		Help: "Cases a clerk took over in the web mailbox while they were on their way to the office's own system, by that system's channel (api, xta, webhook, transfer)."}, []string{"channel"})
	return mailboxMetrics{
		attempts: attempts, sent: attempts.WithLabelValues("sent"), failed: attempts.WithLabelValues("failed"),
		dropped: dropped, expired: dropped.WithLabelValues("expired"), refused: dropped.WithLabelValues("refused"),
		takeovers: takeovers,
	}
}

func (n mailboxMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{n.attempts, n.dropped, n.takeovers}
}

// noticeText is the notice for one delivery. It names the service, the case number
// and the link, and nothing about the applicant: e-mail leaves the protected network.
func (m *Mailbox) noticeText(d adapters.Delivery) (subject, body string) {
	service := oneLine(d.ServiceName)
	if service == "" {
		service = "Antrag"
	}
	// A Nachreichung (the applicant's answer to a Rückfrage, a document sent
	// later) says so and names its case: the clerk who has that case is the
	// one to open it, and "Neuer Eingang" read as a new application.
	followUp := d.CaseID != "" && d.CaseID != d.SubmissionID
	subject = "Neuer Eingang im Behördenpostfach: " + service + " (Vorgang " + d.SubmissionID + ")"
	if followUp {
		subject = "Nachreichung im Behördenpostfach: " + service + " (zu Vorgang " + d.CaseID + ")"
	}
	var b strings.Builder
	b.WriteString("Guten Tag,\r\n\r\n")
	office := oneLine(d.OfficeName)
	if office == "" {
		office = d.OfficeID
	}
	if followUp {
		fmt.Fprintf(&b, "im Behördenpostfach von %s ist eine Nachreichung zu Vorgang %s angekommen\r\n(die antragstellende Person reicht etwas nach, zum Beispiel auf eine Rückfrage).\r\n\r\n", office, d.CaseID)
	} else {
		fmt.Fprintf(&b, "im Behördenpostfach von %s ist ein neuer Eingang angekommen.\r\n\r\n", office)
	}
	fmt.Fprintf(&b, "Leistung:       %s\r\n", service)
	fmt.Fprintf(&b, "Vorgangsnummer: %s\r\n", d.SubmissionID)
	if followUp {
		fmt.Fprintf(&b, "Nachreichung zu: %s\r\n", d.CaseID)
	}
	b.WriteString("\r\nÖffnen Sie den Eingang nach der Anmeldung hier:\r\n")
	b.WriteString(m.detailURL(d.SubmissionID) + "\r\n\r\n")
	if followUp {
		b.WriteString("Der Vorgang, zu dem er gehört:\r\n")
		b.WriteString(m.detailURL(d.CaseID) + "\r\n\r\n")
	}
	b.WriteString("Diese Nachricht enthält bewusst keine Angaben zur antragstellenden Person.\r\n")
	b.WriteString("Sie wurde automatisch erstellt; bitte antworten Sie nicht darauf.\r\n")
	return subject, b.String()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// sendLoop sends due notices from the outbox and sleeps until the next one is due or
// Deliver queues one.
func (m *Mailbox) sendLoop() {
	defer m.loops.Done()
	ctx, cancel := m.ctxStop()
	defer cancel()
	for {
		wait := m.sendDue(ctx)
		t := time.NewTimer(wait)
		select {
		case <-m.stop:
			t.Stop()
			return
		case <-m.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// sendDue sends what is due and says how long to sleep.
func (m *Mailbox) sendDue(ctx context.Context) time.Duration {
	const idle = time.Hour
	if m.opts.SMTP.Addr == "" {
		return idle
	}
	now := m.now()
	due, next, err := m.db.dueNotices(now, 50)
	if err != nil {
		m.log.Error("read notice outbox", "err", err)
		return m.opts.noticeBackoff
	}
	for _, n := range due {
		if ctx.Err() != nil {
			return idle
		}
		err := m.sendMail(ctx, n)
		if err == nil {
			m.metrics.sent.Inc()
			if err := m.db.noticeDone(n.Seq); err != nil {
				m.log.Error("remove sent notice", "submission", n.SubmissionID, "err", err)
			}
			m.log.Info("notice sent", "submission", n.SubmissionID, "attempts", n.Attempts+1)
			continue
		}
		m.metrics.failed.Inc()
		n.Attempts++
		if refused := (*refusedError)(nil); errors.As(err, &refused) {
			// The server said no for good: retried, the same notice gets the same
			// answer for 7 days, and the office's wrong address hid in the log's
			// retries for a week instead of reaching an alert the same hour.
			m.metrics.refused.Inc()
			m.log.Error("notice refused by the mail server; dropped", "submission", n.SubmissionID, "office", n.OfficeID, "attempts", n.Attempts, "err", err)
			if err := m.db.noticeDone(n.Seq); err != nil {
				m.log.Error("remove refused notice", "submission", n.SubmissionID, "err", err)
			}
			continue
		}
		if m.now().Sub(n.Created) > noticeMaxAge {
			m.metrics.expired.Inc()
			m.log.Error("notice dropped after repeated failures", "submission", n.SubmissionID, "office", n.OfficeID, "attempts", n.Attempts, "err", err)
			_ = m.db.noticeDone(n.Seq)
			continue
		}
		delay := m.backoff(n.Attempts)
		n.NextAt = m.now().Add(delay)
		m.log.Warn("notice not sent; will retry", "submission", n.SubmissionID, "attempt", n.Attempts, "retry_in", delay, "err", err)
		if err := m.db.noticeRetry(n); err != nil {
			m.log.Error("reschedule notice", "submission", n.SubmissionID, "err", err)
		}
		if next.IsZero() || n.NextAt.Before(next) {
			next = n.NextAt
		}
	}
	if len(due) == 50 {
		return 0
	}
	if next.IsZero() {
		return idle
	}
	return max(0, next.Sub(m.now()))
}

func (m *Mailbox) backoff(attempts int) time.Duration {
	d := m.opts.noticeBackoff
	for i := 1; i < attempts && d < m.opts.noticeBackoffMax; i++ {
		d *= 2
	}
	return min(d, m.opts.noticeBackoffMax)
}

// errNoTLS: the server offers no STARTTLS and RequireTLS is set.
var errNoTLS = errors.New("the SMTP server does not offer STARTTLS")

// sendMail makes one SMTP conversation: STARTTLS where offered, AUTH if configured.
// Its error carries no e-mail address (withoutAddresses): it is logged.
func (m *Mailbox) sendMail(ctx context.Context, n notice) (err error) {
	defer func() { err = withoutAddresses(err) }()
	cfg := m.opts.SMTP
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return fmt.Errorf("smtp address: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.opts.smtpTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stopWatch := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stopWatch()

	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello(heloName(cfg.From)); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(cfg.Outbound.TLS(host)); err != nil {
			cfg.Outbound.Saw("smtp", cfg.Addr, err)
			return fmt.Errorf("starttls: %w", err)
		}
	} else if cfg.RequireTLS {
		return errNoTLS
	}
	if cfg.Username != "" {
		// smtp.PlainAuth itself refuses to send the password in clear text to any
		// host other than localhost.
		if err := c.Auth(smtp.PlainAuth("", cfg.Username, cfg.Password, host)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	from, err := noticeAddress(bareAddress(cfg.From))
	if err != nil {
		return err
	}
	// A refusal of the sender is retried: the sender is the gateway's
	// (mailbox.smtp.from, read at every attempt), and once the operator mends it
	// the waiting notices go out. What follows concerns this notice alone.
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(n.To); err != nil {
		return refusal(err)
	}
	w, err := c.Data()
	if err != nil {
		return refusal(err)
	}
	if _, err := w.Write(m.message(n)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return refusal(err)
	}
	return c.Quit()
}

// refusedError is an SMTP server's permanent refusal of one notice's
// recipient: a 5xx reply to RCPT TO, to DATA or to the message that says the
// address or mailbox is refused for good (refusal). The notice's address is
// fixed when it is queued, so a retry gets the same answer (RFC 5321, 4.2.1:
// the same request must not be repeated); sendDue drops it at once.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// refusal marks err as a refusedError if the server's reply in it says, for
// good, that the notice's recipient cannot be reached: a 5xx whose enhanced
// status code (RFC 3463) speaks of the destination address or mailbox — class
// 5.1 but for the sender's 5.1.7 and 5.1.8, and 5.2.1, a mailbox disabled —
// and that does not name the sender. Every other refusal is retried, with
// AmtsboteMailNoticesFailing while none goes out, and the notice is given up
// after 7 days as before: 4xx replies and network errors; 552 (RFC 5321,
// 4.5.3.1.10, has clients treat it as 452 after RCPT TO, and after the message
// it is a full mailbox, which empties again); and a 5xx without such a code.
//
// Only positive evidence drops a notice, because a refusal of the gateway's
// own setup comes for every notice alike, and dropping each lost every
// office's notices to one setting the operator mends in minutes, after which
// the waiting ones would have gone out. Such refusals come at RCPT TO and
// after the message too, not only at MAIL FROM, and often without a leading
// code: "554 5.7.1 Relay access denied" (Postfix to a gateway that does not
// log in; 5.7 is security or policy), "550 relay not permitted" (Exim, which
// sends no enhanced codes), "553 sorry, that domain isn't in my list of
// allowed rcpthosts (#5.7.1)" (qmail), "553 5.1.8 <postfach@…>: Sender address
// rejected: Domain not found" (Postfix applies its sender restrictions at RCPT
// TO by default), and "554 5.6.0" for the message, which is the gateway's
// template for every notice. A mistyped notice address is "550 5.1.1" at
// Postfix, Exchange, Gmail, mailpit's "550 5.1.0", and qmail's "(#5.1.1)";
// a server without enhanced codes (Exim) keeps the 7 days.
func refusal(err error) error {
	var reply *textproto.Error
	if errors.As(err, &reply) && reply.Code >= 500 && reply.Code < 600 && reply.Code != 552 && aboutTheRecipient(reply.Msg) {
		return &refusedError{err: err}
	}
	return err
}

// enhancedStatus is an RFC 3463 status code of a failure for good: at the start
// of the reply's text (net/textproto joins a multi-line reply's lines without
// their codes), or as qmail writes it, "(#5.1.1)" at the end.
var enhancedStatus = regexp.MustCompile(`^\s*5\.([0-9]{1,3})\.([0-9]{1,3})\b|#5\.([0-9]{1,3})\.([0-9]{1,3})\b`)

// aboutTheRecipient reports whether a 5xx reply's text says that the
// recipient's address or mailbox is refused for good: see refusal.
func aboutTheRecipient(msg string) bool {
	m := enhancedStatus.FindStringSubmatch(msg)
	if m == nil {
		return false
	}
	class, detail := m[1]+m[3], m[2]+m[4] // one of the two forms matched
	if strings.Contains(strings.ToLower(msg), "sender") {
		return false // the gateway's sender (mailbox.smtp.from), refused at RCPT TO
	}
	return class == "1" && detail != "7" && detail != "8" || class == "2" && detail == "1"
}

// redactAddresses replaces everything address-like in s by "…", keeping the
// rest: "550 5.1.1 <anna.schmidt@amt.example>: Recipient address rejected"
// becomes "550 5.1.1 <…>: Recipient address rejected".
//
// Address-like is the run of characters around an "@" up to a space, bracket,
// quote, comma, colon or semicolon, with a quoted local part ("anna
// schmidt"@…) as a whole, and with the RFC 5322 comments of an address: in
// the local part ("anna(work)schmidt@…"), between it and the "@" and after
// the "@" ("anna (work) @(x)amt.example", comments and the white space around
// them), in the domain, and one after the address ("anna@amt.example (Anna
// Schmidt)", the old form of a display name). Comments nest and may hold
// quoted pairs ("(a\)b)"). Every "@" is in a redacted run, an address or not:
// a reply holds nothing else with an "@" worth keeping, and a missed address
// would be a leak. A regular expression covered comments without nesting,
// quoted pairs or white space beside them, and "anna (work) @…" or
// "anna(a(b)c)schmidt@…" kept the name in the log.
func redactAddresses(s string) string {
	if strings.IndexByte(s, '@') < 0 {
		return s
	}
	// The runs to redact, in order, none overlapping. An "@" inside a comment or
	// a quoted local part ("anna(@home)schmidt@…", "\"anna@home\"@…") makes a
	// run of its own first; the address's own "@" after it must then reach back
	// over that run to the start of the local part, and the two become one.
	// When each look back stopped where the run before ended, the start of the
	// local part ("anna(") stayed in the log.
	type run struct{ start, end int }
	var runs []run
	for at := 0; at < len(s); at++ {
		if s[at] != '@' {
			continue
		}
		// Each side is read at most maxAddressSpan bytes far, and back over the
		// last run but not the one before it unless the look back joins the
		// last run: a long reply of "@(" or "a)@" (unclosed comments, tiny
		// runs) costs linear time, at most some thousand steps per "@" (a
		// 200 KB reply of '"@' about 0.1 s), not quadratic.
		end := domainEnd(s[:min(len(s), at+maxAddressSpan)], at)
		start := at
		for {
			floor := 0
			if len(runs) >= 2 {
				floor = runs[len(runs)-2].end
			}
			lo := max(floor, at-maxAddressSpan)
			start = min(start, lo+localStart(s[lo:], at-lo))
			if len(runs) == 0 || start > runs[len(runs)-1].end {
				break
			}
			// It joins the last run: one run, and the look back goes on over
			// the run before.
			start = min(start, runs[len(runs)-1].start)
			runs = runs[:len(runs)-1]
		}
		runs = append(runs, run{start, end})
		at = end - 1
	}
	var b strings.Builder
	last := 0 // s[:last] is written
	for _, r := range runs {
		b.WriteString(s[last:r.start])
		b.WriteString("…")
		last = r.end
	}
	b.WriteString(s[last:])
	return b.String()
}

// maxAddressSpan bounds how far from its "@" an address is looked for: a
// mailbox has at most 254 bytes (RFC 5321, 4.5.3.1), the rest is room for
// comments.
const maxAddressSpan = 512

// addressStop reports whether c ends an address-like run: white space, the
// brackets and quotes replies put around addresses, and the separators
// between them. Every other byte (UTF-8 of a non-ASCII name too) is taken as
// part of an address.
func addressStop(c byte) bool { return strings.IndexByte(" \t\n\f\r<>()[],;:\"'", c) >= 0 }

func isSpace(c byte) bool { return strings.IndexByte(" \t\n\f\r", c) >= 0 }

// localStart is where the local part before the "@" at s[at] begins, with the
// comments and white space between them.
func localStart(s string, at int) int {
	start := at
	for { // comments between the local part and the "@", with white space around
		k := start
		for k > 0 && isSpace(s[k-1]) {
			k--
		}
		if k == 0 || s[k-1] != ')' {
			break
		}
		open := commentBefore(s, k)
		if open < 0 {
			break
		}
		start = open
		j := open
		for j > 0 && isSpace(s[j-1]) {
			j--
		}
		if j == open || j == 0 || addressStop(s[j-1]) && s[j-1] != '"' && s[j-1] != ')' {
			break // white space with no local part before it stays
		}
		start = j
	}
	for start > 0 {
		switch c := s[start-1]; {
		case c == ')':
			open := commentBefore(s, start)
			if open < 0 {
				return start
			}
			start = open
		case c == '"':
			// To the quote before: a quoted local part, also in a reply that
			// net/textproto quoted again (<\"anna schmidt\"@…>).
			q := strings.LastIndexByte(s[:start-1], '"')
			if q < 0 {
				return start
			}
			start = q
		case !addressStop(c):
			start--
		default:
			return start
		}
	}
	return start
}

// domainEnd is where the address whose "@" is at s[at] ends: its domain, the
// comments in it and beside it, and one comment after it.
func domainEnd(s string, at int) int {
	end := at + 1
	for { // comments between the "@" and the domain, with white space around
		k := end
		for k < len(s) && isSpace(s[k]) {
			k++
		}
		if k == len(s) || s[k] != '(' {
			break
		}
		close := commentAfter(s, k)
		if close < 0 {
			break
		}
		end = close
		j := close
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		if j == close || j == len(s) || addressStop(s[j]) && s[j] != '(' {
			break
		}
		end = j
	}
	for end < len(s) {
		if s[end] == '(' {
			close := commentAfter(s, end)
			if close < 0 {
				break
			}
			end = close
			continue
		}
		if addressStop(s[end]) {
			break
		}
		end++
	}
	for { // comments after the address
		k := end
		for k < len(s) && isSpace(s[k]) {
			k++
		}
		if k == len(s) || s[k] != '(' {
			return end
		}
		close := commentAfter(s, k)
		if close < 0 {
			return end
		}
		end = close
	}
}

// commentBefore is the index of the "(" that opens the comment ending with the
// ")" at s[end-1], or -1 if it is not closed there.
func commentBefore(s string, end int) int {
	depth := 0
	for k := end - 1; k >= 0; k-- {
		if escaped(s, k) {
			k-- // a quoted pair: its backslash too
			continue
		}
		switch s[k] {
		case ')':
			depth++
		case '(':
			depth--
			if depth == 0 {
				return k
			}
		}
	}
	return -1
}

// commentAfter is the index just after the ")" that closes the comment opened
// at s[start], or -1 if it is not closed.
func commentAfter(s string, start int) int {
	depth := 0
	for k := start; k < len(s); k++ {
		switch s[k] {
		case '\\':
			k++ // a quoted pair
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return k + 1
			}
		}
	}
	return -1
}

// escaped reports whether s[k] is the second byte of a quoted pair: after an
// odd number of backslashes.
func escaped(s string, k int) bool {
	n := 0
	for k-n > 0 && s[k-n-1] == '\\' {
		n++
	}
	return n%2 == 1
}

// smtpError is an SMTP conversation's error with the addresses taken out of its
// text. Servers quote the recipient in their replies ("550 5.1.1
// <anna.schmidt@…>: Recipient address rejected"), net/smtp's errors carry the
// reply, and the notice address is often a clerk's own: logged as it was, the
// log held personal e-mail addresses, which it must not (docs/operations.md,
// "Personal data"). The SMTP code and the reply's sense stay for the operator.
// Unwrap keeps errors.Is and errors.As working for code that decides by the
// error (errNoTLS); what it unwraps must not be logged.
type smtpError struct {
	text string
	err  error
}

func (e *smtpError) Error() string { return e.text }
func (e *smtpError) Unwrap() error { return e.err }

func withoutAddresses(err error) error {
	if err == nil {
		return nil
	}
	return &smtpError{text: redactAddresses(err.Error()), err: err}
}

func bareAddress(s string) string {
	if i, j := strings.LastIndexByte(s, '<'), strings.LastIndexByte(s, '>'); i >= 0 && j > i {
		return s[i+1 : j]
	}
	return s
}

func heloName(from string) string {
	a := bareAddress(from)
	if i := strings.LastIndexByte(a, '@'); i >= 0 && i+1 < len(a) {
		return a[i+1:]
	}
	return "localhost"
}

// message renders the RFC 5322 message of a notice: UTF-8 text, quoted-printable.
func (m *Mailbox) message(n notice) []byte {
	var b bytes.Buffer
	var id [12]byte
	_, _ = rand.Read(id[:])
	h := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	// The configured address may have a display name with umlauts
	// ("Behördenpostfach <postfach@…>"); written as it was, raw 8-bit in a header,
	// servers without SMTPUTF8 refused the notice or showed "BehÃ¶rdenpostfach".
	// mail.Address encodes the name (RFC 2047); New checked that it parses.
	from := m.opts.SMTP.From
	if a, err := mail.ParseAddress(from); err == nil {
		from = a.String()
	}
	h("From", from)
	h("To", n.To)
	h("Subject", mime.QEncoding.Encode("utf-8", n.Subject))
	h("Date", n.Created.Format(time.RFC1123Z))
	h("Message-ID", "<"+hex.EncodeToString(id[:])+"."+n.SubmissionID+"@"+heloName(m.opts.SMTP.From)+">")
	h("Auto-Submitted", "auto-generated")
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(n.Body))
	_ = qp.Close()
	return b.Bytes()
}
