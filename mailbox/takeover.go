package mailbox

import (
	"errors"
	"net/http"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
)

// The inbox lists every case of the office, also those on their way to the
// office's own system (pull API, XTA, webhook, a case folder not yet written).
// Opening a case is its pickup, and a picked-up case is one the system never
// lists again: a clerk who only looked at it took it from the Fachverfahren,
// whose office never imported the application its Zustellbestaetigung said was
// delivered (an audit, 2026-12-05). Such a case's page shows its record and
// offers the takeover as a deliberate step instead.

// waitingElsewhere names the office's system a case is on its way to, in words
// for the page ("Ihr Fachverfahren (XTA)"), or "" when the mailbox may open it
// (submission.BoundForSystem says which cases are on their way: the rule is the
// record's, so that the pickup's own transition tells a takeover by it too).
func waitingElsewhere(s *submission.Submission) string {
	return systemWords(s.BoundForSystem())
}

// systemWords names the office's system behind channel ch in words for the
// page, or "" for a channel that is not one.
func systemWords(ch string) string {
	switch ch {
	case channel.API:
		return "Ihr Fachverfahren (Abruf-Schnittstelle)"
	case channel.XTA:
		return "Ihr Fachverfahren (XTA)"
	case channel.Webhook:
		return "Ihr Fachverfahren (Webhook)"
	case channel.Transfer:
		return "Ihr Übergabeverzeichnis"
	}
	return ""
}

// errElsewhere is the mailbox's refusal (notElsewhere) of a download or a
// decision of a case on its way to the office's system.
var errElsewhere = errors.New("mailbox: the case is on its way to the office's own system")

// notElsewhere is the broker.Admit of a download: a case on its way to the
// office's system is not opened here (the package's download would be its
// pickup). It is asked on the record the desk reads for the download: the
// mailbox read it once for this rule and the desk once more for the bytes.
func notElsewhere(cur *submission.Submission) error {
	if waitingElsewhere(cur) != "" {
		return errElsewhere
	}
	return nil
}

// leftToItsSystem answers a download or a decision that notElsewhere refused
// with the case's page, which says so and offers the takeover; false for any
// other err.
func (m *Mailbox) leftToItsSystem(w http.ResponseWriter, r *http.Request, id string, err error) bool {
	if !errors.Is(err, errElsewhere) {
		return false
	}
	http.Redirect(w, r, m.base.Path+"s/"+id, http.StatusSeeOther)
	return true
}

// takeOver is the clerk's deliberate pickup of a case on its way to the office's
// system: the package is opened (its bytes must be there) and the pickup
// recorded in the clerk's name, as opening any other case records it. The
// pickup's transition marks it taken over (submission.Confirm: TakenOverFrom,
// in the delivered event's transaction), and the office's system is refused
// the case from then on — a fetch, a decision, an XTA getMessage or close —
// also when it had listed the case just before (docs/mailbox.md, section 3).
func (m *Mailbox) takeOver(w http.ResponseWriter, r *http.Request, s session, id string) {
	back := m.base.Path + "s/" + id
	// Whether the case is still on its way is asked on the record the desk
	// reads for the pickup (Pickup.Admit): the takeover read it once for that
	// and the desk once more.
	ownAlready := false // taken over by this clerk before: her click sent twice
	admit := func(cur *submission.Submission) error {
		if waitingElsewhere(cur) == "" {
			ownAlready = cur.TakenOverFrom != "" && cur.Receiver == receiverName(s.User)
			return errNotElsewhere
		}
		return nil
	}
	sub, rc, err := m.desk.OpenPackage(r.Context(), s.Office, id, broker.Pickup{Channel: channel.Mailbox, Receiver: receiverName(s.User), Admit: admit})
	if errors.Is(err, errNotElsewhere) {
		// Delivered meanwhile (the system fetched it) or never elsewhere: the
		// page shows the case as it is. Taken over by this clerk already, it
		// is her own takeover sent twice — a double click, whose second
		// answer is the one the browser shows: it says so, as the first
		// answer did, not a page without a word of what her click did.
		msg := ""
		if ownAlready {
			msg = "?meldung=uebernommen"
		}
		http.Redirect(w, r, back+msg, http.StatusSeeOther)
		return
	}
	if err != nil {
		m.deskError(w, r, s, err, "take over")
		return
	}
	rc.Close()
	m.opened(sub.ID, s)
	if sub.TakenOverFrom == "" {
		// The office's system fetched it between the admit's read and the
		// pickup's commit: the system has it, and the clerk's pickup changed
		// nothing. The page shows the case as it is, not "übernommen".
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	// The clerk, the office and the case's id, as the decision's line has
	// them (docs/mailbox.md section 7: logs name users, never applicant data).
	m.metrics.takeovers.WithLabelValues(sub.TakenOverFrom).Inc()
	m.log.Info("taken over from the office's system", "submission", id, "office", s.Office, "user", s.User, "channel", sub.TakenOverFrom)
	http.Redirect(w, r, back+"?meldung=uebernommen", http.StatusSeeOther)
}

// errNotElsewhere is the takeover's refusal of a case not on its way to the
// office's system: there is nothing to take over.
var errNotElsewhere = errors.New("mailbox: the case is not on its way to the office's own system")

// takenOverFrom names, for a case a clerk took over here, the office's system it
// had been on its way to (submission.TakenOverFrom), in words for the page; ""
// for any other case. The page says so for good, not only in the flash after
// the takeover: a colleague opening the case later sees why the Fachverfahren
// does not have it.
func takenOverFrom(s *submission.Submission) string {
	if s.TakenOverFrom == "" {
		return ""
	}
	if w := systemWords(s.TakenOverFrom); w != "" {
		return w
	}
	return "Ihr Fachverfahren"
}

// takeoverEvent reports whether e is the delivered event of a takeover (the
// clerk's pickup in the mailbox of a case on its way to the office's system):
// the history calls it so rather than an ordinary opening.
func takeoverEvent(s *submission.Submission, e submission.Event) bool {
	return s.TakenOverFrom != "" && e.Type == submission.EventDelivered && e.Channel == channel.Mailbox
}
