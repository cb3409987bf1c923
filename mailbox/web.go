package mailbox

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/formview"
	"github.com/amtsbote/amtsbote/internal/german"
	"github.com/amtsbote/amtsbote/store/migrate"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

//go:embed templates/*.html static/*
var assets embed.FS

var pages = func() map[string]*template.Template {
	funcs := template.FuncMap{
		"stateLabel":  stateLabel,
		"stateClass":  stateClass,
		"when":        when,
		"size":        german.Size,
		"indent":      func(d int) int { return min(d, 8) },
		"groupsOf":    groupsOf,
		"pathEscape":  url.PathEscape,
		"reasonMax":   func() string { return thousands(maxReasonRunes) },
		"eventLabel":  eventLabel,
		"eventText":   eventText,
		"elsewhere":   waitingElsewhere,
		"takenOver":   takenOverFrom,
		"takeover":    takeoverEvent,
		"replyKind":   replyKindLabel,
		"replyKindOf": replyKindOf,
		"fileType":    fileTypeLabel,
		"replyMax":    replyMax,
		"replyTypes":  replyTypeList,
		"replyAccept": replyAccept,
		"channelLabel": func(c string) string {
			if l, ok := channelLabels[c]; ok {
				return l
			}
			return c
		},
	}
	out := map[string]*template.Template{}
	for _, name := range []string{"login", "inbox", "detail", "error"} {
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html"))
		out[name] = t
	}
	return out
}()

// page is what every template gets.
type page struct {
	Title string
	// TitleNote goes in front of the title: "Fehler" on every page with an error,
	// the outcome of the action just done ("Angenommen") after a redirect. The title
	// is what a screen reader reads first on a new page; a message in the page that
	// was there when the page loaded is not announced, and without JavaScript there
	// is no other way to say "saved" or "failed" at once.
	TitleNote string
	Root      string // relative path to the mailbox root: "./" or "../"
	User      string
	Office    string
	// OfficeName is Office as the clerk knows it (Options.OfficeName).
	OfficeName string
	CSRF       string
	Flash      string
	Error      string

	// login
	LoginName string
	LoginNext string
	// LoginAction is where the login form goes, from Root: "login", or the
	// case's address when the form carries a decision typed before the session
	// ended (LoginDraft, in Draft and DraftChoice): the page after the login is
	// then the case's, with the draft in its form.
	LoginAction string
	LoginDraft  bool
	// DraftAuthor is the user whose form the draft came from (the case's form
	// names its clerk): the login pre-fills that name, and another user who
	// signs in at that browser does not get the draft (see loginPost).
	DraftAuthor string
	// LoginInvalid marks the fields as wrong (aria-invalid) after a failed login.
	LoginInvalid bool

	// inbox
	Query  string
	State  string
	States []option
	Rows   []row
	// Caption is the table's: how many cases the page lists, which page.
	Caption  string
	NextURL  string
	FirstURL string
	Filtered bool

	// detail
	Sub     *submission.Submission
	View    *formview.View
	ViewErr string
	Events  []submission.Event
	Mark    *mark
	// LateWithdrawn: a case folder that reached the transfer folder after the
	// clerk's takeover was withdrawn again before the import took it
	// (lateFolderWithdrawn): the page says so instead of warning of a
	// duplicate.
	LateWithdrawn bool
	// FollowUps are the case's Nachreichungen, oldest first, at most
	// maxFollowUps; FollowUpsMore that there are more (the search by the case
	// number lists them all).
	FollowUps     []*submission.Submission
	FollowUpsMore bool
	// FollowUpsErr: they could not be read for this page.
	FollowUpsErr bool
	// ReasonMissing and ChoiceMissing tie the decision's error to its field (the
	// message next to it, aria-invalid, aria-describedby) and keep "Ablehnen"
	// chosen, so a screen reader user hears the error where the cursor is.
	ReasonMissing bool
	ChoiceMissing bool
	// ReasonTooLong ties the same kind of error to a reason longer than
	// maxReasonRunes; ReasonLength is its length as the message gives it
	// ("2.300"). The form comes back with the reason in it: it was cut silently
	// and the cut reason sent to the applicant (an accessibility audit).
	ReasonTooLong bool
	ReasonLength  string
	// Draft and DraftChoice are a decision the page shows again instead of
	// saving it (see draft): the form shows them instead of losing the typed
	// reason.
	Draft       string
	DraftChoice string
	// Elsewhere names, for a case on its way to the office's own system, that
	// system ("Ihr Fachverfahren (Abruf-Schnittstelle)"): the page shows the
	// record and the takeover instead of the package (waitingElsewhere).
	Elsewhere string
	// ReplyForm: the page offers the reply form (canReply). ReplyNonce is the
	// form's own id, new with every page, which makes the reply's message id:
	// the same form sent twice is stored once (replyPost). ReplyKinds are the
	// kind's choices, ReplyKind the one chosen in a form that comes again.
	ReplyForm  bool
	ReplyNonce string
	ReplyKinds []option
	ReplyKind  string
	// ReplyKindMissing and ReplyFileError tie a refused reply's error to its
	// field, as ReasonMissing does the decision's.
	ReplyKindMissing bool
	ReplyFileError   string
	// ReplyFileLeft: a file was chosen for a reply, and it was not sent: the
	// form was sent by another of its buttons, which does not send the file
	// (draft.fileLeft), or by the reply's after the session ended
	// (draft.replyLate). ReplyFileNote says which at the file's field. The
	// login page carries ReplyFileLeft, ReplyKind and ReplyLate with a draft.
	ReplyFileLeft bool
	ReplyFileNote string
	// ReplyLate: "Antwort senden" sent the case's form after the session
	// ended, and the reply was not sent (draft.replyLate).
	ReplyLate bool
	// SessionEnds is when the session ends if the clerk sends nothing before
	// ("15:04 Uhr"): the decision form warns of it, as there is no script that could
	// warn just before (WCAG 2.2.1).
	SessionEnds string
	// SessionAtMost: SessionEnds is the session's longest life (sessionMax
	// after the login), not its idle end: work on the page does not put it
	// off. The form said "nach 30 Minuten ohne Seitenaufruf" of that time
	// too, and a clerk late in a long day took it for one she could extend.
	SessionAtMost bool

	// error
	Status int
	// CaseBack is, on an error page under a case's address (a download that
	// failed), the case's address: the way back is to it, not to the inbox.
	CaseBack string
}

type option struct {
	Value, Label string
	Selected     bool
}

// maxFollowUps is how many Nachreichungen a case's page lists.
const maxFollowUps = 20

type row struct {
	S    *submission.Submission
	Done bool
}

// mark is the "erledigt" (processed) mark as the pages show it.
type mark struct {
	User string
	At   time.Time
}

// markOf is the submission's "erledigt" mark, from its record (Processed), with
// who set it and when from its event log. The record is the one truth: every
// gateway of a cluster reads the same, whoever marked it where. (The mark used to
// be kept in mailbox.db too, which a cluster's other gateways never saw.)
func markOf(s *submission.Submission, evs []submission.Event) *mark {
	if s == nil || !s.Processed {
		return nil
	}
	mk := &mark{}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Type == submission.EventProcessed {
			mk.User, mk.At = strings.TrimSuffix(evs[i].Actor, actorSuffix), evs[i].At
			break
		}
	}
	return mk
}

// The state filter of the inbox, in the words of the office. Without one the
// inbox is the office's work: what is not decided yet, oldest first. It was every
// case the office ever had, oldest first, so after a few years a clerk's first
// page was cases decided long ago and today's arrivals were hundreds of pages on.
// stateFilter is one choice of the inbox's state menu.
// short is its name in the page title.
type stateFilter struct {
	value, label, short string
	states              []submission.State
}

var stateFilters = []stateFilter{
	{"", "Offen (neu oder geöffnet, nicht entschieden)", "Offen", []submission.State{submission.StateQueued, submission.StateRetrying,
		submission.StateHandedOver, submission.StateHeld, submission.StateDelivered}},
	{"alle", "Alle", "Alle", nil},
	{"neu", "Neu (noch nicht geöffnet)", "Neu", []submission.State{submission.StateQueued, submission.StateRetrying, submission.StateHandedOver, submission.StateHeld}},
	{"geoeffnet", "Geöffnet, nicht entschieden", "Geöffnet", []submission.State{submission.StateDelivered}},
	{"angenommen", "Angenommen", "Angenommen", []submission.State{submission.StateAccepted}},
	{"abgelehnt", "Abgelehnt", "Abgelehnt", []submission.State{submission.StateRejected}},
}

func stateLabel(s submission.State) string {
	switch s {
	case submission.StateQueued, submission.StateRetrying, submission.StateHandedOver, submission.StateHeld:
		return "Neu"
	case submission.StateDelivered:
		return "Geöffnet"
	case submission.StateAccepted:
		return "Angenommen"
	case submission.StateRejected:
		return "Abgelehnt"
	case submission.StateForwarded:
		return "Weitergeleitet"
	}
	return string(s)
}

func stateClass(s submission.State) string {
	switch s {
	case submission.StateDelivered:
		return "geoeffnet"
	case submission.StateAccepted:
		return "angenommen"
	case submission.StateRejected:
		return "abgelehnt"
	case submission.StateForwarded:
		return "weitergeleitet"
	}
	return "neu"
}

var eventLabels = map[string]string{
	submission.EventReceived:      "Beim Gateway eingegangen",
	submission.EventRouted:        "Zuständigkeit ermittelt",
	submission.EventQueued:        "Zur Zustellung eingereiht",
	submission.EventAttemptFailed: "Zustellversuch fehlgeschlagen",
	submission.EventChannelFailed: "Zustellweg aufgegeben",
	submission.EventFallback:      "Auf anderen Zustellweg gewechselt",
	submission.EventHandedOver:    "Bereitgestellt, wartet auf Öffnung",
	submission.EventDelivered:     "Zugestellt (geöffnet bzw. abgeholt)",
	submission.EventHeld:          "Zur Abholung bereitgehalten",
	submission.EventAccepted:      "Angenommen",
	submission.EventRejected:      "Abgelehnt",
	submission.EventRequeued:      "Erneut eingereiht",
	submission.EventReplied:       "Antwort an das Portal gesendet",
	submission.EventReplyFetched:  "Antwort vom Portal abgerufen",
	submission.EventProcessed:     "Als erledigt markiert",
	submission.EventReopened:      "Markierung „erledigt“ entfernt",
	submission.EventBytesRemoved:  "Dateien nach Ablauf der Aufbewahrungsfrist gelöscht",
	submission.EventFetched:       "Vom Fachverfahren abgerufen",
	submission.EventWithdrawal:    "Löschung: bereitgestellte Kopie im Zustellweg",

	submission.EventForwarded:       "An Partner-Gateway weitergeleitet",
	submission.EventPeerStatus:      "Stand beim Partner-Gateway",
	submission.EventArrivedFromPeer: "Von Partner-Gateway eingegangen",

	migrate.EventImported: "Aus anderem Speicher übernommen",
}

// eventText is the history's wording of e: an erasure on request is not the
// retention's removal, though both are bytes_removed (a data protection audit
// found erased cases labelled as expired); and a queued event with a detail is
// not the case queued afresh but its next attempt moved to the end of the
// office endpoint's pause (submission.Event.PutsOff). The page shows no detail of delivery events, so the label says it.
func eventText(e submission.Event) string {
	if out, ok := broker.LateFolderWithdrawal(e); ok {
		// Not the erasure's "Löschung": the gateway took back the copy that
		// reached the Fachverfahren's folder after the clerk's takeover.
		return lateWithdrawalLabels[out]
	}
	if isErasure(e) {
		return "Dateien auf Anordnung gelöscht (vor Ablauf der Aufbewahrungsfrist)"
	}
	if e.PutsOff() {
		return "Zustellung zurückgestellt (Zustellweg vorübergehend pausiert)"
	}
	return eventLabel(e.Type)
}

// lateWithdrawalLabels are the history's words for the withdrawal of a case
// folder that reached the transfer folder after the clerk's takeover, by what
// it found (broker.LateFolderWithdrawal).
var lateWithdrawalLabels = map[string]string{
	string(adapters.WithdrawRemoved): "Nach der Übernahme in den Übergabeordner gelangte Kopie entfernt, bevor das Fachverfahren sie eingelesen hat",
	string(adapters.WithdrawTaken):   "Nach der Übernahme in den Übergabeordner gelangte Kopie: vom Fachverfahren schon eingelesen, nicht entfernt",
	broker.WithdrawUnreachable:       "Nach der Übernahme in den Übergabeordner gelangte Kopie konnte nicht entfernt werden (Übergabeordner nicht erreichbar)",
	string(adapters.WithdrawNothing): "Nach der Übernahme in den Übergabeordner gelangte Kopie war beim erneuten Nachfragen nicht mehr dort (ob das Fachverfahren sie vorher eingelesen hat, ist nicht bekannt)",
}

// lateFolderWithdrawn reports whether the case folder that a transfer
// attempt put into the office's share after the clerk's takeover
// (HandedOverAfterTakeover) is gone again without the import having taken
// it: a withdrawal event after that hand-over removed it — the gateway's at
// once, or an erasure's or the retention's later. Read from the record and
// its events only, so every gateway of a cluster shows the same page. A
// withdrawal that found the folder taken, or could not reach the share,
// removed nothing: the page keeps its warning.
func lateFolderWithdrawn(s *submission.Submission, evs []submission.Event) bool {
	if s == nil || s.HandedOverAfterTakeoverAt == nil {
		return false
	}
	return slices.ContainsFunc(evs, func(e submission.Event) bool {
		return broker.RemovedCopy(e) && e.Channel == channel.Transfer && !e.At.Before(*s.HandedOverAfterTakeoverAt)
	})
}

// erasedOnRequest reports whether the case's bytes went by an erasure, not the
// retention.
func erasedOnRequest(evs []submission.Event) bool { return slices.ContainsFunc(evs, isErasure) }

// isErasure: e is the removal of the bytes by broker.Erase.
func isErasure(e submission.Event) bool {
	return e.Type == submission.EventBytesRemoved && e.Detail == broker.ErasedDetail
}

func eventLabel(t string) string {
	if l, ok := eventLabels[t]; ok {
		return l
	}
	return t
}

var channelLabels = map[string]string{
	channel.Mailbox:  "Behördenpostfach",
	channel.Transfer: "Übergabeordner",
	channel.Webhook:  "Webhook",
	channel.XTA:      "XTA",
	channel.Peer:     "Partner-Gateway",
	channel.API:      "Abruf-Schnittstelle",
}

var berlin = german.Berlin

func when(t any) string {
	var tt time.Time
	switch v := t.(type) {
	case time.Time:
		tt = v
	case *time.Time:
		if v == nil {
			return ""
		}
		tt = *v
	default:
		return ""
	}
	if tt.IsZero() {
		return ""
	}
	return german.Time(tt) // with MEZ or MESZ: see german.Zone
}

// thousands writes n the German way, with a point between thousands ("2.000").
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "." + s[i:]
	}
	return s
}

// Flash messages are named in the query after a POST (post/redirect/get); only these
// fixed texts can appear. flashTitles are their short forms for the page title
// (page.TitleNote); the errors among them get "Fehler".
var flashes = map[string]string{
	"angenommen":        "Der Antrag wurde angenommen. Das Portal erhält die Entscheidung.",
	"abgelehnt":         "Der Antrag wurde abgelehnt. Das Portal erhält die Entscheidung mit Ihrer Begründung.",
	"erledigt":          "Der Eingang ist als erledigt markiert.",
	"offen":             "Die Markierung „erledigt“ wurde entfernt.",
	"abgemeldet":        "Sie sind abgemeldet.",
	"konflikt":          "Über diesen Antrag wurde bereits anders entschieden; die Entscheidung ist endgültig.",
	"schon-entschieden": "Nichts gespeichert: Über diesen Antrag war bereits so entschieden (siehe unten); das Portal erhält jene Entscheidung. Ihre Begründung wurde nicht übernommen.",
	"grund-fehlt":       "Bitte geben Sie für eine Ablehnung eine Begründung an.",
	"ungueltig":         "Bitte wählen Sie „Annehmen“ oder „Ablehnen“.",
	"uebernommen":       "Sie haben den Eingang übernommen: Er gilt als Ihrer Dienststelle zugestellt. Wofür er bestimmt war, steht unter „Übernommen“; dorthin geht er nicht mehr.",
	"gesendet":          "Die Antwort ist gesendet: Das Portal der antragstellenden Person kann sie jetzt abrufen. Sie steht unten unter „Gesendete Antworten“.",
}

// flashTakenOverTooLate is the "uebernommen" message of a case whose case
// folder reached the transfer folder all the same.
const flashTakenOverTooLate = "Sie haben den Eingang übernommen: Er gilt als Ihrer Dienststelle zugestellt. Er ist aber trotzdem auch in den Übergabeordner gelangt; lesen Sie bitte „Achtung, möglicherweise doppelt“."

// sessionEnded is the login page's message after a form was sent without a live
// session.
const sessionEnded = "Ihre Anmeldung ist abgelaufen (nach 30 Minuten ohne Seitenaufruf oder nach 10 Stunden); " +
	"was Sie zuletzt abgeschickt haben, wurde nicht gespeichert. Bitte melden Sie sich wieder an: " +
	"danach kommen Sie zurück zum Eingang."

// sessionEndedPage is the login page's message after a page was asked for
// without a live session, by a browser that had one: nothing was sent.
const sessionEndedPage = "Ihre Anmeldung ist abgelaufen (nach 30 Minuten ohne Seitenaufruf oder nach 10 Stunden). Bitte melden Sie sich wieder an."

// sessionEndedDraft is sessionEnded when the form sent was a decision: the login
// page carries it on.
const sessionEndedDraft = "Ihre Anmeldung ist abgelaufen (nach 30 Minuten ohne Seitenaufruf oder nach 10 Stunden); " +
	"Ihre Entscheidung wurde nicht gespeichert. Bitte melden Sie sich wieder an: danach sehen Sie den Eingang " +
	"mit Ihrer Eingabe im Formular und speichern sie dort."

// sessionEndedMarkDraft is sessionEndedDraft when the button clicked was the
// mark's: the case's form sent the decision typed along, and the login
// carries that on.
const sessionEndedMarkDraft = "Ihre Anmeldung ist abgelaufen (nach 30 Minuten ohne Seitenaufruf oder nach 10 Stunden); " +
	"nichts wurde gespeichert, auch die Markierung „erledigt“ nicht. Bitte melden Sie sich wieder an: danach sehen Sie den Eingang " +
	"mit Ihrer Entscheidung im Formular und speichern sie dort."

// sessionEndedReplyDraft is sessionEndedDraft when the button clicked was
// the reply's: its file was not read, only the fields before it, which the
// login carries on.
const sessionEndedReplyDraft = "Ihre Anmeldung ist abgelaufen (nach 30 Minuten ohne Seitenaufruf oder nach 10 Stunden); " +
	"Ihre Antwort wurde nicht gesendet, und nichts wurde gespeichert. Bitte melden Sie sich wieder an: danach sehen Sie den Eingang " +
	"mit Ihrer Eingabe im Formular. Die Datei wählen Sie dort noch einmal aus und senden die Antwort erneut."

// flashHolds reports whether the message msg of a case's page still says what the
// case is. The message is in the page's address, which Back, the history and a
// reload bring again: after marking and unmarking, Back said "Als erledigt
// markiert" for a case not marked, and after a rejection that first failed for
// want of a reason, Back said it failed and showed the decision form again.
func flashHolds(msg string, s *submission.Submission) bool {
	d := s.Decision
	switch msg {
	case "erledigt":
		return s.Processed
	case "offen":
		return !s.Processed
	case "angenommen":
		return d != nil && d.Outcome == broker.OutcomeAccepted
	case "abgelehnt":
		return d != nil && d.Outcome == broker.OutcomeRejected
	case "grund-fehlt", "ungueltig":
		return d == nil
	case "konflikt", "schon-entschieden":
		return d != nil
	case "uebernommen":
		return s.DeliveredAt != nil
	case "gesendet":
		return len(s.Replies) > 0
	}
	return false
}

var flashTitles = map[string]string{
	"angenommen":  "Angenommen",
	"abgelehnt":   "Abgelehnt",
	"erledigt":    "Als erledigt markiert",
	"offen":       "Markierung entfernt",
	"uebernommen": "Übernommen",
	"gesendet":    "Antwort gesendet",
	"abgemeldet":  "Abgemeldet",
}

// Handler returns the mailbox's pages. Mount it at the path of PublicURL (e.g.
// "/postfach/"); it also works behind http.StripPrefix. Links inside the pages are
// relative; redirects use the path of PublicURL.
func (m *Mailbox) Handler() http.Handler {
	return http.HandlerFunc(m.serve)
}

var (
	reDetail   = regexp.MustCompile(`^s/([A-Za-z0-9._-]{1,128})$`)
	reDownload = regexp.MustCompile(`^s/([A-Za-z0-9._-]{1,128})/anlage/([A-Za-z0-9._-]{1,128})$`)
	rePackage  = regexp.MustCompile(`^s/([A-Za-z0-9._-]{1,128})/paket$`)
	reDecide   = regexp.MustCompile(`^s/([A-Za-z0-9._-]{1,128})/entscheidung$`)
	reMark     = regexp.MustCompile(`^s/([A-Za-z0-9._-]{1,128})/erledigt$`)
	reTakeOver = regexp.MustCompile(`^s/([A-Za-z0-9._-]{1,128})/uebernehmen$`)
	reReply    = regexp.MustCompile(`^s/([A-Za-z0-9._-]{1,128})/antwort$`)
	reReplyGet = regexp.MustCompile(`^s/([A-Za-z0-9._-]{1,128})/antwort/([A-Za-z0-9._-]{1,128})$`)
	// reCasePath is a case's page and every address under it (its downloads).
	reCasePath = regexp.MustCompile(`^s/([A-Za-z0-9._-]{1,128})(?:/.*)?$`)
	// reCaseAction is every form of a case's page.
	reCaseAction = regexp.MustCompile(`^s/([A-Za-z0-9._-]{1,128})/(?:entscheidung|erledigt|uebernehmen|antwort)$`)
)

func (m *Mailbox) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if m.secure {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}

	p := r.URL.Path
	if strings.HasPrefix(p, m.base.Path) {
		p = p[len(m.base.Path):]
	} else if strings.TrimSuffix(m.base.Path, "/") == p {
		http.Redirect(w, r, m.base.Path, http.StatusMovedPermanently)
		return
	} else {
		p = strings.TrimPrefix(p, "/")
	}

	if p != "static/style.css" && m.opts.StoreDown != nil && m.opts.StoreDown() != nil {
		m.storeDown(w, r)
		return
	}
	if mt := reDetail.FindStringSubmatch(p); mt != nil && r.Method == http.MethodPost {
		// The login form that carries a decision typed before the session ended
		// goes to the case's address (page.LoginAction).
		m.loginPost(w, r, mt[1])
		return
	}
	switch p {
	case "static/style.css":
		m.static(w, r, "static/style.css", "text/css; charset=utf-8")
		return
	case "login":
		m.login(w, r)
		return
	case "abmelden":
		m.logout(w, r)
		return
	}

	s, _, ok := m.current(r)
	if !ok {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			// Back to the case after the login, also from its downloads: a
			// clerk whose session ended over lunch clicked an attachment on
			// the case's page she had open, and after the login she was in
			// the inbox, to look for the case again. The login page says why
			// it came when the browser still had a session (a fresh browser
			// from the notice's link has none), without the "nothing saved"
			// of a form sent late: a page asked for loses nothing.
			q := url.Values{}
			if mt := reCasePath.FindStringSubmatch(p); mt != nil {
				q.Set("weiter", "s/"+mt[1])
			} else if next := loginNext("?" + r.URL.RawQuery); p == "" && next != "" {
				// A search or a later page of the inbox: back to it, not to
				// the first page unfiltered.
				q.Set("weiter", next)
			}
			if r.Header.Get("Range") != "" {
				// A browser resuming a broken download (no page is asked
				// for with a range): Chromium follows a redirect, takes
				// the login page's whole answer for the file, and
				// completes the download with it under the attachment's
				// name. Refused, the download stays interrupted, its part
				// kept, for the clerk to resume after logging in.
				lp := m.loginPage(w, r, q.Get("weiter"))
				lp.Error = sessionEndedPage
				m.render(w, "login", http.StatusUnauthorized, lp)
				return
			}
			if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
				q.Set("abgelaufen", "seite")
			}
			target := m.base.Path + "login"
			if len(q) > 0 {
				target += "?" + q.Encode()
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		if mt := reCaseAction.FindStringSubmatch(p); r.Method == http.MethodPost && mt != nil {
			// The session ended while the clerk was on the case's page (30 minutes
			// without a request, e.g. writing a long reason). Say so, and lead back to
			// the case after the login, instead of an error page whose only way on
			// is the inbox.
			if reReply.MatchString(p) && !crossSite(r) {
				// "Antwort senden": its multipart body holds the file, which
				// is not read without a session; the fields before it are
				// (lateReply).
				m.lateReply(w, r, mt[1])
				return
			}
			if d := m.lateDraft(w, r, p); d != nil {
				// A decision: the login page carries what was typed (the redirect
				// lost it), and the page after the login is the case with it.
				lp := m.loginPage(w, r, "s/"+mt[1])
				lp.carry(mt[1], d)
				lp.Error = sessionEndedDraft
				if reMark.MatchString(p) {
					lp.Error = sessionEndedMarkDraft
				}
				m.render(w, "login", http.StatusUnauthorized, lp)
				return
			}
			http.Redirect(w, r, m.base.Path+"login?abgelaufen=1&weiter="+url.QueryEscape("s/"+mt[1]), http.StatusSeeOther)
			return
		}
		m.fail(w, r, nil, http.StatusForbidden)
		return
	}
	if mt := reReply.FindStringSubmatch(p); mt != nil {
		// The reply's form is multipart, with a file far beyond maxFormBytes:
		// it reads its own body, its token included (replyPost).
		if m.method(w, r, &s, http.MethodPost) {
			m.replyPost(w, r, s, mt[1])
		}
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		var tooBig *http.MaxBytesError
		mt := reDecide.FindStringSubmatch(p)
		if mt == nil {
			// The mark's button sends the decision's reason too (the case's
			// page is one form): such a reason made it "Formular veraltet".
			mt = reMark.FindStringSubmatch(p)
		}
		if mt != nil && errors.As(r.ParseForm(), &tooBig) {
			// A reason pasted far beyond maxReasonRunes: nothing of the form was
			// read, not even its token, so nothing is done; the case's page (as a
			// GET shows it) says why, instead of "Formular veraltet".
			m.detailWithDraft(w, r, s, mt[1], &draft{why: draftTooLong})
			return
		}
	}
	if r.Method == http.MethodPost && !sameToken(r.PostFormValue("csrf"), s.CSRF) {
		if mt := reCaseAction.FindStringSubmatch(p); mt != nil {
			// A form of the case's page from before the clerk signed in again
			// (another window, a notice's link): its token is the old session's.
			// The case's page again, with what was typed and the new token; the
			// refusal was a dead end whose reload sent the same stale form.
			d := &draft{why: draftStaleForm}
			if sameOrigin(r) {
				// What was typed only with the browser's word that the form is
				// this site's own, as for the login's drafts: the session
				// cookie is SameSite=Lax, and a page on a sibling host posted
				// a reason and "Ablehnen" with any token into the clerk's
				// case form, ready to save (an audit, 2026-12-07).
				d = typedIn(r.PostForm, draftStaleForm)
			}
			m.detailWithDraft(w, r, s, mt[1], d)
			return
		}
		m.fail(w, r, &s, http.StatusForbidden)
		return
	}
	if r.Method == http.MethodPost {
		// Every form sent changes this cookie. Chromium keeps even no-store pages
		// in its back/forward cache unless a cookie changed since: after an
		// action, Back showed the page from before it (the case unmarked,
		// "Fehler" for a rejection that had been saved), not the case as it is.
		m.setCookie(w, standCookie, newToken()[:12], 0)
	}
	var mt []string
	switch {
	case p == "":
		if !m.method(w, r, &s, http.MethodGet) {
			return
		}
		m.inbox(w, r, s)
	case matches(reDetail, p, &mt):
		if !m.method(w, r, &s, http.MethodGet) {
			return
		}
		m.detail(w, r, s, mt[1])
	case matches(reDownload, p, &mt):
		if !m.method(w, r, &s, http.MethodGet) {
			return
		}
		m.download(w, r, s, mt[1], mt[2])
	case matches(rePackage, p, &mt):
		if !m.method(w, r, &s, http.MethodGet) {
			return
		}
		m.pkg(w, r, s, mt[1])
	case matches(reDecide, p, &mt):
		if !m.method(w, r, &s, http.MethodPost) {
			return
		}
		m.decide(w, r, s, mt[1])
	case matches(reMark, p, &mt):
		if !m.method(w, r, &s, http.MethodPost) {
			return
		}
		m.mark(w, r, s, mt[1])
	case matches(reTakeOver, p, &mt):
		if !m.method(w, r, &s, http.MethodPost) {
			return
		}
		m.takeOver(w, r, s, mt[1])
	case matches(reReplyGet, p, &mt):
		if !m.method(w, r, &s, http.MethodGet) {
			return
		}
		m.replyDownload(w, r, s, mt[1], mt[2])
	default:
		m.fail(w, r, &s, http.StatusNotFound)
	}
}

func matches(re *regexp.Regexp, p string, out *[]string) bool {
	*out = re.FindStringSubmatch(p)
	return *out != nil
}

func (m *Mailbox) method(w http.ResponseWriter, r *http.Request, s *session, want string) bool {
	if r.Method == want || (want == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	w.Header().Set("Allow", want)
	m.fail(w, r, s, http.StatusMethodNotAllowed)
	return false
}

func (m *Mailbox) static(w http.ResponseWriter, r *http.Request, name, ctype string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		http.Error(w, "Methode nicht erlaubt", http.StatusMethodNotAllowed)
		return
	}
	b, err := assets.ReadFile(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	_, _ = w.Write(b)
}

// render writes a page; a template error becomes a plain 500 (the buffer is not sent).
func (m *Mailbox) render(w http.ResponseWriter, name string, status int, p *page) {
	if p.Error != "" {
		p.TitleNote = "Fehler"
	}
	var buf bytes.Buffer
	if err := pages[name].Execute(&buf, p); err != nil {
		m.log.Error("render page", "page", name, "err", err)
		http.Error(w, "Interner Fehler", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Always the length: a page answered before its request's body was read
	// to the end (a reply's file too big) is followed by the drain, which
	// flushes it, and a client that reads while it sends must see its end
	// (httpbody.Drain).
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (m *Mailbox) base1(s *session, root string) *page {
	p := &page{Root: root}
	if s != nil {
		p.User, p.Office, p.CSRF = s.User, s.Office, s.CSRF
		p.OfficeName = m.officeName(s.Office)
	}
	return p
}

// officeName is the office's name for the header (Options.OfficeName), its id
// where the directory has none.
func (m *Mailbox) officeName(id string) string {
	if m.opts.OfficeName != nil {
		if n := m.opts.OfficeName(id); n != "" {
			return n
		}
	}
	return id
}

// fail shows an error page. A 404 reads exactly the same for an id that does not
// exist and for one of another office.
func (m *Mailbox) fail(w http.ResponseWriter, r *http.Request, s *session, status int) {
	p := m.base1(s, rootFor(r, m.base.Path))
	p.Status = status
	if mt := reCasePath.FindStringSubmatch(strings.TrimPrefix(r.URL.Path, m.base.Path)); s != nil && mt != nil && status != http.StatusNotFound {
		// A download's error is a page since its link has no download
		// attribute: it leads back to the case it was clicked on.
		p.CaseBack = "s/" + mt[1]
	}
	switch status {
	case http.StatusNotFound:
		p.Title = "Nicht gefunden"
		p.Error = "Diesen Eingang gibt es in Ihrem Postfach nicht. Prüfen Sie die Vorgangsnummer oder kehren Sie zum Posteingang zurück."
	case http.StatusForbidden:
		p.Title = "Nicht erlaubt"
		p.Error = "Die Anfrage wurde abgewiesen (Sitzung abgelaufen oder Formular veraltet). Bitte laden Sie die Seite neu und versuchen Sie es noch einmal."
	case http.StatusMethodNotAllowed:
		p.Title = "Nicht erlaubt"
		p.Error = "Diese Aktion ist hier nicht möglich."
	case http.StatusGone:
		p.Title = "Gelöscht"
		p.Error = "Die Dateien dieses Eingangs wurden gelöscht (nach Ablauf der Aufbewahrungsfrist oder auf Anordnung). Verlauf und Entscheidung bleiben im Postfach erhalten."
	case http.StatusConflict:
		p.Title = "Nicht möglich"
		p.Error = "Der Stand dieses Eingangs erlaubt das nicht (mehr). Bitte laden Sie den Eingang neu, um den aktuellen Stand zu sehen."
	case http.StatusServiceUnavailable:
		p.Title = "Vorübergehend nicht verfügbar"
		p.Error = "Der Eingang kann gerade nicht gelesen werden. Er bleibt gespeichert; bitte versuchen Sie es in einigen Minuten noch einmal."
		w.Header().Set("Retry-After", "60")
	default:
		p.Title = "Fehler"
		p.Error = "Es ist ein Fehler aufgetreten. Bitte versuchen Sie es später noch einmal; besteht der Fehler fort, wenden Sie sich an Ihre IT."
	}
	m.render(w, "error", status, p)
}

// groupsOf names the groups field i of fields sits in ("Anschrift › Wohnsitz"),
// outermost first: the page shows nesting only by indentation, which a screen
// reader does not announce, so a clerk who jumps from field to field heard
// "Straße" without knowing whose (an accessibility audit). The name goes into a
// hidden prefix of the field's label.
func groupsOf(fields []formview.Field, i int) string {
	if i < 0 || i >= len(fields) {
		return ""
	}
	var names []string
	depth := fields[i].Depth
	for j := i - 1; j >= 0 && depth > 0; j-- {
		if fields[j].Depth < depth {
			names = append(names, fields[j].Label)
			depth = fields[j].Depth
		}
	}
	slices.Reverse(names)
	return strings.Join(names, " › ")
}

// storeDown is the page while the gateway's store does not answer (a cluster
// without quorum): no page can be built, not even the login (the sessions are
// in the store too).
func (m *Mailbox) storeDown(w http.ResponseWriter, r *http.Request) {
	p := m.base1(nil, rootFor(r, m.base.Path))
	p.Status = http.StatusServiceUnavailable
	p.Title = "Vorübergehend nicht verfügbar"
	p.Error = "Das Postfach ist gerade nicht erreichbar: der Speicher des Gateways antwortet nicht. Es geht nichts verloren; bitte versuchen Sie es in einigen Minuten noch einmal."
	w.Header().Set("Retry-After", "60")
	m.render(w, "error", http.StatusServiceUnavailable, p)
}

// rootFor is the relative path from the request's page back to the mailbox root.
func rootFor(r *http.Request, base string) string {
	p := strings.TrimPrefix(r.URL.Path, base)
	p = strings.TrimPrefix(p, "/")
	n := strings.Count(p, "/")
	if n == 0 {
		return "./"
	}
	return strings.Repeat("../", n)
}

func (m *Mailbox) deskError(w http.ResponseWriter, r *http.Request, s session, err error, what string) {
	if errors.Is(err, broker.ErrNotFound) {
		m.fail(w, r, &s, http.StatusNotFound)
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	if errors.Is(err, broker.ErrBytesRemoved) { // the retention, not a fault
		m.fail(w, r, &s, http.StatusGone)
		return
	}
	if errors.Is(err, broker.ErrConflict) { // the case's state does not allow it
		m.fail(w, r, &s, http.StatusConflict)
		return
	}
	m.log.Error(what, "office", s.Office, "err", err)
	if errors.Is(err, broker.ErrUnreadable) || errors.Is(err, broker.ErrStoreUnavailable) || errors.Is(err, broker.ErrUnavailable) {
		// A cluster without quorum, a blob that cannot be read now, a write that
		// failed (a full disk): a later try may work.
		m.fail(w, r, &s, http.StatusServiceUnavailable)
		return
	}
	m.fail(w, r, &s, http.StatusInternalServerError)
}

// --- login / logout ---

func (m *Mailbox) login(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		next := r.URL.Query().Get("weiter")
		if _, _, ok := m.current(r); ok {
			// Signed in meanwhile (in another tab): on to where this login
			// page was to lead, the case of a notice's link, say, not the inbox.
			http.Redirect(w, r, m.base.Path+loginNext(next), http.StatusSeeOther)
			return
		}
		p := m.loginPage(w, r, next)
		if r.URL.Query().Get("abgemeldet") != "" {
			p.Flash, p.TitleNote = flashes["abgemeldet"], flashTitles["abgemeldet"]
		}
		switch r.URL.Query().Get("abgelaufen") {
		case "":
		case "seite":
			p.Error = sessionEndedPage
			switch {
			case strings.HasPrefix(p.LoginNext, "?"):
				p.Error += " Danach kommen Sie zurück zu Ihrer Suche im Posteingang."
			case p.LoginNext != "":
				p.Error += " Danach kommen Sie zurück zum Eingang."
			}
		default:
			p.Error = sessionEnded
		}
		m.render(w, "login", http.StatusOK, p)
	case http.MethodPost:
		m.loginPost(w, r, "")
	default:
		w.Header().Set("Allow", "GET, POST")
		m.fail(w, r, nil, http.StatusMethodNotAllowed)
	}
}

// loginPage is the login form. Its token (double-submit: cookie and hidden field)
// is the browser's current one if it has one, so that login forms open in
// several tabs all work; a new token for every page made all but the last
// loaded form fail as "veraltet".
func (m *Mailbox) loginPage(w http.ResponseWriter, r *http.Request, next string) *page {
	tok := newToken()
	if c, err := r.Cookie(loginCookie); err == nil && isToken(c.Value) {
		tok = c.Value
	}
	m.setCookie(w, loginCookie, tok, 3600)
	p := m.base1(nil, rootFor(r, m.base.Path))
	p.Title = "Anmeldung"
	p.CSRF = tok
	p.LoginAction = "login"
	p.LoginNext = loginNext(next)
	return p
}

// inboxKeys are the inbox address's query keys (search, filter, page): all a
// login may lead back to besides a case.
var inboxKeys = []string{"q", "status", "nach", "seite"}

// loginNext is where a login leads on to, from root, for a "weiter" value: a
// case ("s/<id>"), or the inbox with its search, filter and page ("?q=…"),
// rebuilt from inboxKeys alone and bounded, so that no value can lead
// elsewhere than into the mailbox; "" (the inbox) for anything else.
func loginNext(next string) string {
	if reDetail.MatchString(next) {
		return next
	}
	if !strings.HasPrefix(next, "?") || len(next) > 1024 {
		return ""
	}
	in, err := url.ParseQuery(next[1:])
	if err != nil {
		return ""
	}
	out := url.Values{}
	for _, k := range inboxKeys {
		if v := in.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "?" + out.Encode()
}

// lateDraft is the decision of a case's form sent after the session ended
// (path p), to be carried through the login, with the reply's kind chosen in
// the same form and whether a file was chosen (not its name); by the
// decision's button or the mark's, which sends the decision's fields too (the
// case's page is one form: the reason typed was lost by a late mark); nil for
// another form (the reply's: lateReply), an empty one,
// one too big, or one another site sent (Sec-Fetch-Site): such a POST comes
// without the session cookie (SameSite=Lax) and so looks like a late one, and a
// draft it planted would be shown in the case's form. Even then the decision
// needs the clerk to send the form again, with the new session's token.
func (m *Mailbox) lateDraft(w http.ResponseWriter, r *http.Request, p string) *draft {
	if !reDecide.MatchString(p) && !reMark.MatchString(p) {
		return nil
	}
	if crossSite(r) {
		return nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if r.ParseForm() != nil {
		return nil
	}
	d := draftOf(r.PostForm)
	if d.Reason == "" && d.Choice == "" && d.replyKind == "" && !d.fileLeft {
		return nil
	}
	return d
}

// carry puts draft d, carried through the login, into the login page p:
// hidden fields of its form, which goes to the case's address (caseID); the
// name of the draft's author is filled in.
func (p *page) carry(caseID string, d *draft) {
	p.LoginAction, p.LoginDraft, p.Draft, p.DraftChoice, p.DraftAuthor = "s/"+caseID, true, d.Reason, d.Choice, d.Author
	p.ReplyKind, p.ReplyFileLeft, p.ReplyLate = d.replyKind, d.fileLeft, d.replyLate
	p.LoginName = d.Author
}

// crossSite reports a request the browser says another site made (Sec-Fetch-Site):
// it carries no draft, wherever it is sent.
func crossSite(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	return site != "" && site != "same-origin"
}

// sameOrigin: the browser says the request comes from this site's own page
// (Sec-Fetch-Site, which no page can set). Not the same as !crossSite, which a
// browser without the header passes too: where the header stands in for a
// CSRF token, its absence proves nothing.
func sameOrigin(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

// draftOf is the decision in form, with the reply's kind and whether a file
// was chosen for it, as the case's form (urlencoded: "datei" holds the
// file's name) and the login form that carries it on send it; and, from the
// login form, whether it was "Antwort senden" that came late (lateReply).
func draftOf(form url.Values) *draft {
	d := &draft{Reason: form.Get("begruendung"), Author: form.Get("verfasser"), why: draftAfterLogin}
	if c := form.Get("ergebnis"); c == "annehmen" || c == "ablehnen" {
		d.Choice = c
	}
	if k := form.Get("art"); isReplyKind(k) {
		d.replyKind = k
	}
	d.replyLate = form.Get("antwort-abgelaufen") != ""
	d.fileLeft = form.Get("datei") != "" && !d.replyLate
	return d
}

// loginPost signs a user in. caseID is set when the form was sent to a case's
// address, carrying a decision typed before the session ended: the answer is
// then the case's page with it, not a redirect, which would lose it.
func (m *Mailbox) loginPost(w http.ResponseWriter, r *http.Request, caseID string) {
	// The login's own fields and, with a draft, what a case's form may carry.
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes+16<<10)
	if err := r.ParseForm(); err != nil {
		m.fail(w, r, nil, http.StatusBadRequest)
		return
	}
	var d *draft
	if caseID != "" && !crossSite(r) {
		d = draftOf(r.PostForm)
	}
	// again is the login form again, carrying the draft on.
	again := func(next string) *page {
		p := m.loginPage(w, r, next)
		if d != nil {
			p.carry(caseID, d) // the callers put the name typed in
		}
		return p
	}
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameToken(r.PostForm.Get("csrf"), c.Value) {
		if cur, _, ok := m.current(r); ok && !crossSite(r) {
			// Signed in already, in this browser: the login form sent once
			// more — a reload of the case's page that the login answered
			// with, which the browser sends again, or Back to it. The login's
			// token was spent by the first; this answered "veraltet", and the
			// reason carried through the login was gone. Nothing is decided
			// here either: the case's form has the session's token, and the
			// clerk sends it. The draft only with the browser's word that the
			// form is this site's own: the session cookie is SameSite=Lax,
			// which another site's POST lacks but a same-site one (a sibling
			// host) carries, and a browser without Sec-Fetch-Site cannot tell
			// them apart (TestSignedInClerkIsPlantedNoDraft).
			if d != nil && sameOrigin(r) && (d.Author == "" || d.Author == cur.User) {
				m.detailWithDraft(w, r, cur, caseID, d)
				return
			}
			m.redirectAfterLogin(w, r, caseID)
			return
		}
		// Not this browser's login form: what it carries is nobody's draft. Another
		// site could post a reason and "ablehnen" to the case's address, and the
		// clerk found them in the case's form after the login (a review).
		// Unless the browser says the form is this site's own (Sec-Fetch-Site,
		// which no page can set): then it is her login page, left open longer
		// than its token lives (loginCookie, an hour), and the reason it
		// carries was dropped with it.
		if !sameOrigin(r) {
			d = nil
		}
		p := again(r.PostForm.Get("weiter"))
		p.Error = "Das Anmeldeformular war veraltet. Bitte melden Sie sich noch einmal an."
		if d != nil {
			p.LoginName = d.Author
			p.Error = "Das Anmeldeformular war veraltet. Bitte melden Sie sich noch einmal an; Ihre Entscheidung wird weiter mitgeführt und ist noch nicht gespeichert."
			if d.replyLate {
				p.Error = "Das Anmeldeformular war veraltet. Bitte melden Sie sich noch einmal an; Ihre Eingabe wird weiter mitgeführt. Ihre Antwort ist nicht gesendet, und nichts ist gespeichert."
			}
		}
		m.render(w, "login", http.StatusForbidden, p)
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("benutzer"))
	pw := r.PostForm.Get("passwort")
	now := m.now()
	addr := m.clientAddr(r)
	if !m.checkSlot(r.Context()) {
		p := again(r.PostForm.Get("weiter"))
		p.LoginName = name
		p.Error = "Das Postfach ist gerade stark ausgelastet. Bitte versuchen Sie es in einigen Sekunden erneut."
		w.Header().Set("Retry-After", "5")
		if m.busyLog.Allow(now) { // once a minute while a flood lasts, not a line per guess
			m.log.Warn("login refused: too many password checks at once", "remote", addr)
		}
		m.render(w, "login", http.StatusServiceUnavailable, p)
		return
	}
	limits := loginLimits(name, addr)
	if wait := m.limiter.attempt(now, limits...); wait > 0 {
		<-m.checks
		p := again(r.PostForm.Get("weiter"))
		p.LoginName = name
		if mins := int((wait + time.Minute - 1) / time.Minute); mins <= 1 {
			p.Error = "Zu viele fehlgeschlagene Anmeldungen. Bitte warten Sie eine Minute und versuchen Sie es dann erneut."
		} else {
			p.Error = fmt.Sprintf("Zu viele fehlgeschlagene Anmeldungen. Bitte versuchen Sie es in %d Minuten erneut.", mins)
		}
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		if m.limitedLog.Allow(now) { // once a minute during a guessing run, not a line per guess
			m.log.Warn("login refused: too many failures (at most one such line a minute)", "remote", addr)
		}
		m.render(w, "login", http.StatusTooManyRequests, p)
		return
	}
	u, ok := m.checkPassword(name, pw)
	<-m.checks
	if !ok {
		m.log.Warn("login failed", "remote", addr)
		p := again(r.PostForm.Get("weiter"))
		p.LoginName, p.LoginInvalid = name, true
		p.Error = "Benutzername oder Passwort ist falsch."
		m.render(w, "login", http.StatusUnauthorized, p)
		return
	}
	m.limiter.succeeded(now, limits[0], limits[1:]...)
	tok := newToken()
	s := session{User: u.Name, Office: u.Office, CSRF: newToken(), Created: now, LastSeen: now, Cred: credOf(u)}
	if err := m.putSession(tok, s); err != nil {
		m.log.Error("store session", "err", err)
		m.fail(w, r, nil, http.StatusInternalServerError)
		return
	}
	if old, err := r.Cookie(sessionCookie); err == nil {
		_ = m.deleteSession(old.Value)
	}
	m.setCookie(w, sessionCookie, tok, int(sessionMax/time.Second))
	m.setCookie(w, loginCookie, "", -1)
	m.log.Info("login", "user", u.Name, "office", u.Office)
	if d != nil && d.Author != "" && d.Author != u.Name {
		// Another clerk signs in at the browser where the draft's author was
		// signed out: the draft is the author's unsaved text, not theirs to find
		// in the case's form and save under their own name. A draft from a form
		// without an author (a page served before 2026-12-05) is carried as before.
		d = nil
	}
	if d != nil {
		// Nothing is decided here: the form token of the page is the new
		// session's, and the clerk sends the form again.
		m.detailWithDraft(w, r, s, caseID, d)
		return
	}
	m.redirectAfterLogin(w, r, caseID)
}

// redirectAfterLogin leads a login on: to the case it was for (its field
// "weiter", or caseID of the address it was sent to), else to the inbox.
func (m *Mailbox) redirectAfterLogin(w http.ResponseWriter, r *http.Request, caseID string) {
	target := m.base.Path
	if next := loginNext(r.PostForm.Get("weiter")); next != "" {
		target += next
	} else if caseID != "" { // the form went to the case's address
		target += "s/" + caseID
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (m *Mailbox) logout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		m.fail(w, r, nil, http.StatusMethodNotAllowed)
		return
	}
	s, tok, ok := m.current(r)
	if ok {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		// The token guards against another site logging the clerk out. A
		// page of an earlier session — one tab still showing pages from
		// before she signed in again in another — has an old token: its
		// "Abmelden" was refused, and she left a shared computer signed in.
		// The browser's word that the form is this site's own
		// (Sec-Fetch-Site) is enough for a logout.
		if !sameToken(r.PostFormValue("csrf"), s.CSRF) && !sameOrigin(r) {
			m.fail(w, r, &s, http.StatusForbidden)
			return
		}
		if err := m.deleteSession(tok); err != nil {
			m.log.Error("delete session", "err", err)
		}
		m.log.Info("logout", "user", s.User)
	}
	m.setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, m.base.Path+"login?abgemeldet=1", http.StatusSeeOther)
}

// --- inbox ---

const pageSize = 25

func (m *Mailbox) inbox(w http.ResponseWriter, r *http.Request, s session) {
	q := r.URL.Query()
	text := strings.TrimSpace(q.Get("q"))
	if utf8.RuneCountInString(text) > 200 {
		text = string([]rune(text)[:200])
	}
	state := q.Get("status")
	// A value no filter has (an old bookmark, a typo) is the default, "Offen":
	// it listed every case while the menu showed "Offen" chosen.
	if !slices.ContainsFunc(stateFilters, func(f stateFilter) bool { return f.value == state }) {
		state = ""
	}
	lq := broker.ListQuery{After: q.Get("nach"), Limit: pageSize, Text: text}
	// The pages go by a cursor (nach); seite only numbers them for the title
	// and the caption. 0: a page after the first whose number the address lacks.
	pageNo := 1
	if lq.After != "" {
		pageNo = 0
		if n, err := strconv.Atoi(q.Get("seite")); err == nil && n > 1 && n <= 1_000_000 {
			pageNo = n
		}
	}
	p := m.base1(&s, "./")
	p.Query, p.State = text, state
	var stateName string
	for _, f := range stateFilters {
		p.States = append(p.States, option{Value: f.value, Label: f.label, Selected: f.value == state})
		if f.value == state {
			lq.States = f.states
			if state != "" {
				stateName = f.short
			}
		}
	}
	p.Filtered = text != "" || state != ""
	pg, err := m.desk.List(r.Context(), s.Office, lq)
	if err != nil {
		m.deskError(w, r, s, err, "list submissions")
		return
	}
	for _, it := range pg.Items {
		p.Rows = append(p.Rows, row{S: it, Done: it.Processed})
	}
	p.Title = inboxTitle(text, stateName, pageNo, len(p.Rows))
	p.Caption = inboxCaption(len(p.Rows), pageNo, p.Filtered, pg.Next != "")
	keep := url.Values{}
	if text != "" {
		keep.Set("q", text)
	}
	if state != "" {
		keep.Set("status", state)
	}
	if pg.Next != "" {
		nv := url.Values{}
		for k, v := range keep {
			nv[k] = v
		}
		nv.Set("nach", pg.Next)
		if pageNo > 0 {
			nv.Set("seite", strconv.Itoa(pageNo+1))
		}
		p.NextURL = "./?" + nv.Encode()
	}
	if lq.After != "" {
		p.FirstURL = "./"
		if len(keep) > 0 {
			p.FirstURL += "?" + keep.Encode()
		}
	}
	m.render(w, "inbox", http.StatusOK, p)
}

// inboxTitle is the inbox's page title: its search, its filter, its page and
// whether it lists nothing. It was "Posteingang" for every page and search, so a
// screen reader user, who hears the title first, could not tell page 2 from
// page 1, nor a search that found nothing from one that found something.
func inboxTitle(text, state string, page, n int) string {
	var parts []string
	if text != "" {
		if r := []rune(text); len(r) > 40 {
			text = string(r[:40]) + "…"
		}
		parts = append(parts, "Suche „"+text+"“")
	}
	if state != "" {
		parts = append(parts, "Status „"+state+"“")
	}
	switch {
	case page > 1:
		parts = append(parts, "Seite "+strconv.Itoa(page))
	case page == 0:
		parts = append(parts, "Folgeseite")
	}
	head := strings.Join(parts, ", ")
	if n == 0 {
		if head == "" {
			head = "Keine Eingänge"
		} else {
			head += ": keine Eingänge"
		}
	}
	if head == "" {
		return "Posteingang"
	}
	return head + " – Posteingang"
}

// inboxCaption is the caption of the inbox's table: n cases on this page.
func inboxCaption(n, page int, filtered, more bool) string {
	c := strconv.Itoa(n) + " Eingänge"
	if n == 1 {
		c = "1 Eingang"
	}
	if page > 1 {
		c = "Seite " + strconv.Itoa(page) + ": " + c
	}
	if filtered {
		c += " (gefiltert)"
	}
	c += ", älteste zuerst"
	if more {
		c += "; weitere auf der nächsten Seite"
	}
	return c
}

// --- detail ---

// maxViewBytes bounds the package bytes read for the detail page.
const maxViewBytes = 256 << 20

func (m *Mailbox) detail(w http.ResponseWriter, r *http.Request, s session, id string) {
	m.detailWithDraft(w, r, s, id, nil)
}

// draft is a decision the case's page shows again in its form instead of saving
// it, and why; or a reply it refused (why draftReply).
type draft struct {
	Reason, Choice string
	// Author is the user the case's form was served to (its hidden field
	// "verfasser"); empty for the drafts made here, which belong to the session.
	Author string
	why    draftWhy
	reply  *replyRefusal
	// flash is the message of the action done (draftCarried), as the
	// redirect's "meldung" names it.
	flash string
	// replyKind is the reply's kind chosen in the form when another of its
	// buttons sent it; fileLeft that a file was chosen too, which that button
	// did not send (a urlencoded form sends its name only).
	replyKind string
	fileLeft  bool
	// replyLate: the reply's button sent the form after the session ended
	// (lateReply); its file was not read, and the reply was not sent.
	replyLate bool
}

type draftWhy int

const (
	// draftStaleForm: sent with the form token of an earlier session (the clerk
	// signed in again in another window).
	draftStaleForm draftWhy = iota
	// draftTooLong: the reason is longer than maxReasonRunes.
	draftTooLong
	// draftAfterLogin: sent after the session ended, carried through the login.
	draftAfterLogin
	// draftReply: a reply refused (draft.reply says why); no decision.
	draftReply
	// draftCarried: the action of one of the case form's buttons is done (or
	// refused for its own fields, draft.flash says which), and the page shows
	// what was typed for the form's other actions (carried).
	draftCarried
)

// replyFileLeft is the note at the reply's file field when a file was chosen
// and another button sent the form: no browser lets a page fill a file field
// in again.
const replyFileLeft = "Die Datei, die Sie hier ausgewählt hatten, ist nicht gesendet worden (das geschieht nur mit „Antwort senden“). Bitte wählen Sie sie noch einmal aus."

// replyFileLate is replyFileLeft when it was "Antwort senden" that came after
// the session ended (lateReply).
const replyFileLate = "Die Datei, die Sie hier ausgewählt hatten, ist nicht gesendet worden: Ihre Anmeldung war abgelaufen. Bitte wählen Sie sie noch einmal aus und senden Sie die Antwort erneut."

// carried is what the case's form holds for actions other than the one of the
// button clicked, from its fields (decide and mark: urlencoded, the file
// field holding the file's name), to be shown again: the reason and the
// choice of the decision, the reply's kind, and whether a file was chosen.
// nil when there is nothing to show: the action's page is then its redirect,
// as before the form was one.
func carried(form url.Values, decision, reply bool) *draft {
	d := &draft{why: draftCarried}
	if decision {
		d.Reason = form.Get("begruendung")
		if c := form.Get("ergebnis"); c == "annehmen" || c == "ablehnen" {
			d.Choice = c
		}
	}
	if reply {
		if k := form.Get("art"); isReplyKind(k) {
			d.replyKind = k
		}
		d.fileLeft = form.Get("datei") != ""
	}
	if strings.TrimSpace(d.Reason) == "" && d.Choice == "" && d.replyKind == "" && !d.fileLeft {
		return nil
	}
	return d
}

// typedIn is all a case's form held, to be shown again because of why: the
// decision's reason and choice as sent, the reply's kind, and whether a file
// was chosen (carried).
func typedIn(form url.Values, why draftWhy) *draft {
	d := &draft{Reason: form.Get("begruendung"), Choice: form.Get("ergebnis"), why: why}
	if c := carried(form, false, true); c != nil {
		d.replyKind, d.fileLeft = c.replyKind, c.fileLeft
	}
	return d
}

// carry answers an action of the case's form done (or refused for its own
// fields) with the case's page and msg when the form holds more (d): the
// redirect would drop it. Without, it redirects to the case with msg, and
// anchor after it.
func (m *Mailbox) carry(w http.ResponseWriter, r *http.Request, s session, id, msg, anchor string, d *draft) {
	if d == nil {
		http.Redirect(w, r, m.base.Path+"s/"+id+"?meldung="+msg+anchor, http.StatusSeeOther)
		return
	}
	d.flash = msg
	m.detailWithDraft(w, r, s, id, d)
}

// detailWithDraft is the case's page; draft, when set, is a decision not saved,
// shown again in the form with a note why, or a reply refused (draft.reply).
func (m *Mailbox) detailWithDraft(w http.ResponseWriter, r *http.Request, s session, id string, draft *draft) {
	ctx := r.Context()
	pickup := broker.Pickup{Channel: channel.Mailbox, Receiver: receiverName(s.User)}
	// Opening the page is the pickup: the office has the package now.
	//
	// The package is read whole and checked against its SHA-256 before the pickup
	// is recorded (broker.ReadCase): the page confirmed before it read the
	// bytes, and later once their first chunk had opened, so a package out of
	// reach or cut short (a cluster's blob on a node that is down, a disk fault)
	// was signed as delivered to the clerk who saw only an error.
	//
	// Whether it is opened at all is decided on the record ReadCase reads for
	// the page, the package, the pickup and the events alike: the page read the
	// record three or four times, once of them only for this decision.
	head := r.Method == http.MethodHead
	elsewhere := ""
	c, err := m.desk.ReadCase(ctx, s.Office, id, broker.CaseRead{Max: maxViewBytes, Pickup: pickup, Open: func(cur *submission.Submission) bool {
		switch {
		case head:
			// A HEAD opens nothing (RFC 9110: HEAD is safe), so it confirms
			// nothing either.
			return false
		case draft != nil && draft.why != draftCarried:
			// A refused POST changes nothing: the page shows the package only
			// if the office has it already (the clerk had it open), and
			// records no pickup.
			return cur.DeliveredAt != nil
		}
		// A case on its way to the office's own system is not opened here: the
		// opening would be its pickup, and the system would never list it again
		// (an audit, 2026-12-05). The page shows the record and offers the
		// takeover (takeOver) instead.
		elsewhere = waitingElsewhere(cur)
		return elsewhere == ""
	}})
	if err != nil {
		m.deskError(w, r, s, err, "open submission")
		return
	}
	// Not read (unread says why: forwarded to a peer, erased before the office
	// had it, its bytes out of reach now, or too big for the page, whose
	// download is the pickup): the page shows the record, and no pickup is
	// recorded.
	sub, pkg, unread, events := c.Sub, c.Package, c.Unread, c.Events
	if sub.DeliveredAt == nil && sub.FetchedAt != nil && errors.Is(unread, broker.ErrBytesRemoved) {
		// The office's system fetched the package (XTA's getMessage) before
		// the erasure: the office has it, and a clerk opening the case is its
		// pickup, as before the bytes went (the desk allows exactly this).
		if now, cerr := m.desk.Confirm(ctx, s.Office, id, pickup); cerr == nil {
			sub = now
			// The pickup is in the history, as after any other.
			if events, err = m.desk.Events(ctx, s.Office, id); err != nil {
				m.deskError(w, r, s, err, "read events")
				return
			}
		}
	}
	p := m.base1(&s, rootFor(r, m.base.Path)) // served at s/{id}, and at s/{id}/entscheidung for a refused form
	// Every case of a service has the same name: the case number tells the tabs
	// (and a screen reader's list of windows) apart.
	p.Title = sub.ServiceName + " – Vorgang " + sub.ID
	p.Sub = sub
	p.Elsewhere = elsewhere
	p.SessionEnds = s.ends().In(berlin).Format("15:04 Uhr")
	p.SessionAtMost = s.ends().Equal(s.Created.Add(sessionMax))
	if sub.BytesRemovedAt != nil {
		p.ViewErr = "" // after the events are read: retention or erasure
	} else if pkg == nil && unread == nil {
		// Not opened (a HEAD, a refused form, a case on its way elsewhere):
		// nothing of the package is read for a page whose body is dropped or
		// that does not show it, and nobody is recorded as having opened it.
	} else if pkg != nil {
		if draft == nil || draft.why == draftCarried { // the page a redirect would have led to
			m.opened(sub.ID, s)
		}
		if p.View, err = formview.Read(pkg); err != nil {
			m.log.Warn("form view", "submission", id, "err", err)
			p.ViewErr = "Die Formulardaten können hier nicht dargestellt werden. Laden Sie das Originalpaket herunter oder wenden Sie sich an Ihre IT."
		}
	} else if errors.Is(unread, broker.ErrUnreadable) {
		m.log.Warn("open package", "submission", id, "err", unread)
		p.ViewErr = "Das Antragspaket kann gerade nicht gelesen werden; der Eingang gilt noch nicht als zugestellt. Bitte versuchen Sie es in einigen Minuten erneut."
	} else if errors.Is(unread, broker.ErrTooLarge) {
		p.ViewErr = "Das Antragspaket ist zu groß, um es hier darzustellen. Laden Sie das Originalpaket herunter; der Download gilt als Abholung."
	} else {
		p.ViewErr = "Dieser Eingang kann hier nicht geöffnet werden."
	}
	p.Events = events
	p.Mark = markOf(p.Sub, p.Events)
	p.LateWithdrawn = lateFolderWithdrawn(sub, events)
	if sub.CaseID == "" && !head {
		// What the applicant sent for this case later (on a Rückfrage): each
		// came in as an application of its own, listed in the inbox, whose page
		// links back here; from the case, the clerk saw none of them.
		// The case was read (and maybe picked up) already: a list that cannot
		// be read now costs the page that line, not the page.
		if fu, err := m.desk.List(ctx, s.Office, broker.ListQuery{Case: sub.ID, Limit: maxFollowUps}); err != nil {
			m.log.Warn("list Nachreichungen", "submission", id, "err", err)
			p.FollowUpsErr = true
		} else {
			p.FollowUps, p.FollowUpsMore = fu.Items, fu.Next != ""
		}
	}
	if p.ReplyForm = canReply(sub, elsewhere); p.ReplyForm {
		p.ReplyNonce = newToken()
	}
	if sub.BytesRemovedAt != nil {
		how := "nach Ablauf der Aufbewahrungsfrist"
		if erasedOnRequest(p.Events) {
			how = "auf Anordnung vor Ablauf der Aufbewahrungsfrist"
		}
		p.ViewErr = "Formulardaten, Anlagen und Originalpaket dieses Eingangs wurden am " + when(sub.BytesRemovedAt) + " " + how + " gelöscht. Verlauf und Entscheidung bleiben erhalten."
	}
	msg := r.URL.Query().Get("meldung")
	if draft != nil && draft.why == draftCarried {
		msg = draft.flash
	}
	if !flashHolds(msg, sub) {
		msg = "" // an old address (Back, the history, a bookmark): the case has moved on
	}
	p.Flash, p.TitleNote = flashes[msg], flashTitles[msg]
	if msg == "uebernommen" && sub.HandedOverAfterTakeover() && !p.LateWithdrawn {
		// The takeover came too late to stop the transfer channel's attempt
		// (known at once, or found later while the address is reloaded): the
		// flash said "dorthin geht er nicht mehr" above the warning that it
		// got there.
		p.Flash = flashTakenOverTooLate
	}
	switch msg {
	case "grund-fehlt", "ungueltig", "konflikt", "schon-entschieden":
		p.Error, p.Flash = p.Flash, ""
		p.ReasonMissing, p.ChoiceMissing = msg == "grund-fehlt", msg == "ungueltig"
	}
	status := http.StatusOK
	if draft != nil {
		p.Draft, p.DraftChoice = draft.Reason, draft.Choice
		p.ReplyKind = draft.replyKind
		p.ReplyFileLeft = (draft.fileLeft || draft.replyLate) && p.ReplyForm
		p.ReplyFileNote = replyFileLeft
		if draft.replyLate {
			p.ReplyFileNote = replyFileLate
		}
		if draft.why != draftCarried {
			p.Flash, p.TitleNote = "", ""
			p.ReasonMissing, p.ChoiceMissing = false, false
		}
		switch draft.why {
		case draftStaleForm:
			p.Error = "Nichts gespeichert: Sie haben sich inzwischen neu angemeldet (zum Beispiel in einem anderen Fenster), und das Formular gehörte zur alten Anmeldung. Ihre Eingabe steht unten; bitte prüfen Sie sie und speichern Sie erneut."
			if strings.TrimSpace(draft.Reason) == "" && draft.Choice == "" && draft.replyKind == "" {
				// Nothing typed, or nothing shown (not the mailbox's own page,
				// by Sec-Fetch-Site): no "Ihre Eingabe steht unten".
				p.Error = "Nichts gespeichert: Sie haben sich inzwischen neu angemeldet (zum Beispiel in einem anderen Fenster), und das Formular gehörte zur alten Anmeldung. Bitte wiederholen Sie Ihre Eingabe auf dieser Seite."
			}
			status = http.StatusForbidden // refused; the page is the way on
		case draftTooLong:
			p.ReasonTooLong = true
			if draft.Reason == "" { // the form was too big to read (maxFormBytes)
				p.Error = "Nichts gespeichert: Die Begründung war viel zu lang, höchstens " + thousands(maxReasonRunes) + " Zeichen sind möglich. Bitte fügen Sie eine kürzere ein."
				status = http.StatusRequestEntityTooLarge
				break
			}
			p.ReasonLength = thousands(utf8.RuneCountInString(strings.TrimSpace(strings.ReplaceAll(draft.Reason, "\r\n", "\n"))))
			p.Error = "Nichts gespeichert: Die Begründung ist " + p.ReasonLength + " Zeichen lang, höchstens " + thousands(maxReasonRunes) + " Zeichen sind möglich. Bitte kürzen Sie sie; sie steht unten."
			status = http.StatusUnprocessableEntity
		case draftAfterLogin:
			// "das Formular": the decision's button or the mark's sent it.
			p.Error = "Nichts gespeichert: Ihre Anmeldung war abgelaufen, als Sie das Formular abgeschickt haben. Ihre Eingabe steht unten; bitte prüfen Sie sie und speichern Sie erneut."
			if draft.replyLate {
				p.Error = "Nichts gesendet: Ihre Anmeldung war abgelaufen, als Sie „Antwort senden“ geklickt haben; Ihre Antwort ist nicht gesendet."
				if p.ReplyForm {
					p.Error += " Bitte wählen Sie unten die Datei noch einmal aus und senden Sie die Antwort erneut."
				}
				if strings.TrimSpace(draft.Reason) != "" || draft.Choice != "" {
					p.Error += " Ihre Entscheidung ist nicht gespeichert; sie steht unten im Formular."
				}
			}
		case draftReply:
			status = draft.reply.show(p, sub)
		case draftCarried:
			switch msg {
			case "grund-fehlt", "ungueltig":
				status = http.StatusUnprocessableEntity
			case "konflikt", "schon-entschieden":
				status = http.StatusConflict
			}
		}
		if p.ReplyFileLeft && !draft.replyLate {
			// After the switch: a refusal's message (a reason too long, a
			// stale form) replaces the top's, and took this sentence with it.
			const notSent = " Ihre Antwort an die antragstellende Person ist noch nicht gesendet: Bitte wählen Sie unten die Datei noch einmal aus und klicken Sie „Antwort senden“."
			if p.Flash != "" {
				p.Flash += notSent
			} else if p.Error != "" {
				p.Error += notSent
			}
		}
	}
	for _, k := range replyKinds {
		p.ReplyKinds = append(p.ReplyKinds, option{Value: k.Value, Label: k.Label, Selected: k.Value == p.ReplyKind})
	}
	m.render(w, "detail", status, p)
}

// opened keeps the first opening in mailbox.db (the channel's own confirmation
// record, see adapter.Confirmed).
func (m *Mailbox) opened(id string, s session) {
	if err := m.db.recordOpened(id, opening{OfficeID: s.Office, User: s.User, At: m.now().UTC()}); err != nil {
		m.log.Error("record opening", "submission", id, "err", err)
		return
	}
	m.signalOpened()
}

// --- downloads ---

func (m *Mailbox) download(w http.ResponseWriter, r *http.Request, s session, id, aid string) {
	a, rc, err := m.desk.OpenAttachment(r.Context(), s.Office, id, aid, notElsewhere)
	if m.leftToItsSystem(w, r, id, err) {
		return
	}
	if err != nil {
		m.deskError(w, r, s, err, "open attachment")
		return
	}
	defer rc.Close()
	ctype := "application/octet-stream"
	if mt, _, err := mime.ParseMediaType(a.MimeType); err == nil && a.MimeType != "" {
		ctype = mt
	}
	m.sendFile(w, r, rc, ctype, a.FileName, "anlage-"+aid, a.Size, a.SHA256)
}

func (m *Mailbox) pkg(w http.ResponseWriter, r *http.Request, s session, id string) {
	if r.Method == http.MethodHead {
		// Size and type without the pickup the download is.
		sub, err := m.desk.Get(r.Context(), s.Office, id)
		if err == nil {
			err = broker.PackageGone(sub)
		}
		if err != nil {
			m.deskError(w, r, s, err, "open package")
			return
		}
		// No content is read for a HEAD; the reader only stands in (not a seeker, so
		// the size comes from the record).
		m.sendFile(w, r, io.MultiReader(), "application/xml", "antragspaket-"+sub.ID+".xml", "antragspaket.xml", sub.PackageSize, sub.PackageSHA256)
		return
	}
	sub, rc, err := m.desk.OpenPackage(r.Context(), s.Office, id, broker.Pickup{Channel: channel.Mailbox, Receiver: receiverName(s.User), Admit: notElsewhere})
	if m.leftToItsSystem(w, r, id, err) {
		return
	}
	if err != nil {
		m.deskError(w, r, s, err, "open package")
		return
	}
	defer rc.Close()
	m.opened(sub.ID, s)
	m.sendFile(w, r, rc, "application/xml", "antragspaket-"+sub.ID+".xml", "antragspaket.xml", sub.PackageSize, sub.PackageSHA256)
}

// sendFile serves a download with HTTP ranges (api.ServeBlob: 206, If-Range on the
// content's SHA-256), so a browser resumes a broken download of a big attachment
// instead of starting over; the bytes are streamed, never held.
func (m *Mailbox) sendFile(w http.ResponseWriter, r *http.Request, rc io.Reader, ctype, name, fallback string, size int64, digest string) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", contentDisposition(name, fallback))
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox; frame-ancestors 'none'")
	api.ServeBlob(w, r, rc, size, digest, m.opts.Downloads)
}

// safeFileName keeps the last path element of a portal-supplied name and drops what
// a file system or a header could misread: separators, control characters, quotes,
// leading dots.
func safeFileName(name, fallback string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, c := range name {
		switch {
		case c == utf8.RuneError, unicode.IsControl(c), unicode.Is(unicode.Cf, c):
		case strings.ContainsRune(`"*:<>?|;%`, c):
			b.WriteRune('_')
		default:
			b.WriteRune(c)
		}
	}
	out := strings.Trim(strings.TrimSpace(b.String()), ". ")
	if r := []rune(out); len(r) > 150 {
		ext := ""
		if i := strings.LastIndexByte(out, '.'); i > 0 && len(out)-i <= 10 {
			ext = out[i:]
		}
		out = string(r[:150-utf8.RuneCountInString(ext)]) + ext
	}
	if out == "" {
		return fallback
	}
	return out
}

// contentDisposition is "attachment" with an ASCII file name and the exact UTF-8 one
// (RFC 6266 / RFC 5987).
func contentDisposition(name, fallback string) string {
	name = safeFileName(name, fallback)
	var ascii strings.Builder
	for _, c := range name {
		if c < 0x20 || c > 0x7e || c == '\\' || c == '"' {
			ascii.WriteByte('_')
		} else {
			ascii.WriteRune(c)
		}
	}
	return `attachment; filename="` + ascii.String() + `"; filename*=UTF-8''` + rfc5987(name)
}

func rfc5987(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// --- actions ---

// maxFormBytes bounds the body of a form sent with a session: a reason of
// maxReasonRunes characters of four bytes each is some 24 KB form-encoded.
const maxFormBytes = 64 << 10

// maxReasonRunes bounds a decision's reason: the office API's limit, one
// constant for both faces. A longer one is refused with the form filled in
// again, never cut: the applicant got a reason cut mid-word while the clerk was
// told it was sent.
const maxReasonRunes = wire.MaxReasonLength

// errFormRefused is the decision form's own refusal (decide's Admit): the
// choice or the reason the desk is not asked to record.
var errFormRefused = errors.New("mailbox: the decision form is incomplete")

// errForwarded is the decision's refusal (its Admit) of a case forwarded to a
// peer gateway: the office there decides it.
var errForwarded = errors.New("mailbox: the case was forwarded to a peer gateway, whose office decides it")

func (m *Mailbox) decide(w http.ResponseWriter, r *http.Request, s session, id string) {
	back := m.base.Path + "s/" + id
	var outcome string
	switch r.PostFormValue("ergebnis") {
	case "annehmen":
		outcome = broker.OutcomeAccepted
	case "ablehnen":
		outcome = broker.OutcomeRejected
	}
	reason := strings.TrimSpace(strings.ReplaceAll(r.PostFormValue("begruendung"), "\r\n", "\n"))
	// The form is checked on the record the desk reads for the decision
	// (Decision.Admit), after its office check: another office's id is a 404,
	// whatever was posted. The mailbox read the record once for these checks,
	// and the desk once more for the decision.
	var refused string // the form's fault, if it has one
	admit := func(cur *submission.Submission) error {
		switch {
		case waitingElsewhere(cur) != "":
			// A decision is a pickup (broker.Decide confirms first): not of a
			// case on its way to the office's own system, whose page offers no
			// decision.
			return errElsewhere
		case cur.Forward != nil:
			// Forwarded to a peer gateway: its office decides there, and the
			// desk refuses a decision here (submission.Submission.Decide); its
			// page offers none. It was answered "konflikt" ("bereits anders
			// entschieden"), which was untrue.
			return errForwarded
		case utf8.RuneCountInString(reason) > maxReasonRunes:
			refused = "zu-lang"
		case outcome == "":
			refused = "ungueltig"
		case outcome == broker.OutcomeRejected && reason == "":
			refused = "grund-fehlt"
		default:
			return nil
		}
		return errFormRefused
	}
	sub, err := m.desk.Decide(r.Context(), s.Office, id, broker.Decision{Outcome: outcome, Reason: reason, Actor: s.User, Channel: channel.Mailbox, Admit: admit})
	if m.leftToItsSystem(w, r, id, err) {
		return
	}
	if errors.Is(err, errForwarded) {
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	if errors.Is(err, errFormRefused) {
		if refused == "zu-lang" {
			m.detailWithDraft(w, r, s, id, typedIn(r.PostForm, draftTooLong))
			return
		}
		// No "#entscheidung" on these: the page puts the cursor on the field in
		// error (autofocus), which a browser does not do when the address names
		// a target. The reason typed comes back in its field: without a
		// choice it was dropped by the redirect (the browser's check of the
		// choice stopped such a form until the reply's fields shared it). A
		// rejection without a reason loses nothing by the redirect: the page
		// chooses "Ablehnen" again (ReasonMissing).
		m.carry(w, r, s, id, refused, "", carried(r.PostForm, refused == "ungueltig", true))
		return
	}
	if errors.Is(err, broker.ErrBytesRemoved) {
		// Erased before the office had it: no decision on it (410), not "decided
		// otherwise", which was untrue.
		m.deskError(w, r, s, err, "decide")
		return
	}
	// The decision typed is not kept on these: the case is decided. What the
	// reply's fields hold is.
	if errors.Is(err, broker.ErrConflict) {
		m.carry(w, r, s, id, "konflikt", "", carried(r.PostForm, false, true))
		return
	}
	if err != nil {
		m.deskError(w, r, s, err, "decide")
		return
	}
	if d := sub.Decision; d != nil && (d.Actor != s.User || d.Reason != reason) {
		// The same outcome, decided before by someone else or with other words
		// (two clerks on one case): the desk takes it as a repeat and keeps the
		// first. It was reported as sent with this clerk's reason.
		m.carry(w, r, s, id, "schon-entschieden", "#entscheidung", carried(r.PostForm, false, true))
		return
	}
	m.opened(id, s)
	m.log.Info("decision", "submission", id, "office", s.Office, "user", s.User, "outcome", outcome)
	msg := "angenommen"
	if outcome == broker.OutcomeRejected {
		msg = "abgelehnt"
	}
	// The reply's kind and file chosen on the page: the decision's button
	// does not send the file, and the page says so.
	m.carry(w, r, s, id, msg, "", carried(r.PostForm, false, true))
}

func (m *Mailbox) mark(w http.ResponseWriter, r *http.Request, s session, id string) {
	// No Get before: MarkProcessed makes the office check itself (another
	// office's id is a 404), and the Get read the record once more for nothing.
	done := r.PostFormValue("erledigt") == "ja"
	// The mark is the office's own, but it is an action like any other: the event log
	// keeps it with the user's name (the desk's rule), and the pages read who and
	// when from there (markOf).
	if _, err := m.desk.MarkProcessed(r.Context(), s.Office, id, done, receiverName(s.User), channel.Mailbox); err != nil {
		m.deskError(w, r, s, err, "mark")
		return
	}
	m.log.Info("mark", "submission", id, "user", s.User, "done", done)
	msg := "erledigt"
	if !done {
		msg = "offen"
	}
	// The decision and the reply typed on the page are not saved by the mark,
	// and come back in their fields.
	m.carry(w, r, s, id, msg, "", carried(r.PostForm, true, true))
}
