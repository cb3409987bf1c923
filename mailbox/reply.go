package mailbox

import (
	"archive/zip"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/submission"
)

// A clerk answers the applicant from the case's page: a Bescheid, a Rückfrage
// or another message, as a file, which the desk stores as the case's reply
// (broker.OfficeDesk.Reply) and the applicant's portal reads in the case's
// status, as it reads an XTA office's sendMessage. The mailbox was every
// office's last channel, yet only an office with XTA could answer through the
// gateway: a clerk with nothing but a browser had no way to send the Bescheid
// through it, while the portal was waiting for one.

// maxReplyFileBytes bounds the file of a reply sent from the case's page. The
// desk takes up to 64 MiB (what an office's system may send by XTA); the page
// reads the file into memory, as the desk needs it, and a Bescheid or a
// Rückfrage is a PDF of some hundred kilobytes, a scan of a few megabytes. 20
// MB hold a scan of many pages, and a clerk's slip (a video, a folder zipped)
// costs the gateway no more.
const maxReplyFileBytes = 20 << 20

// replyFraming is what the form's other fields and the parts' headers may add
// to the file.
const replyFraming = 1 << 20

// maxReplyBodyBytes bounds the whole body of the reply's form: a file up to
// twice the limit is still read to its end after the refusal (replyPost), so
// that a client which sends all before it reads gets the page; beyond, the
// connection is closed with the answer.
const maxReplyBodyBytes = 2*maxReplyFileBytes + replyFraming

// maxReplyField bounds a field of the form other than the file (a token, a
// kind).
const maxReplyField = 256

// maxReplyParts bounds the parts of the form: it has eight, the decision's
// fields included (the case's page is one form).
const maxReplyParts = 16

// replyKinds are the kinds a clerk chooses from, as the desk stores them
// (submission.Reply.Kind, which the portal shows; XTA's message types are
// "Bescheid" and "Rueckfrage" too), with the page's words.
var replyKinds = []option{
	{Value: "Bescheid", Label: "Bescheid"},
	{Value: "Rueckfrage", Label: "Rückfrage (Bitte um Unterlagen oder Angaben)"},
	{Value: "Nachricht", Label: "Sonstige Nachricht"},
}

// isReplyKind reports whether k is one of replyKinds' values.
func isReplyKind(k string) bool {
	for _, o := range replyKinds {
		if o.Value == k {
			return true
		}
	}
	return false
}

// replyKindLabel is a reply's kind in the page's words: the short form of
// replyKinds' labels, and any other kind (an XTA message type) as it is.
func replyKindLabel(kind string) string {
	switch kind {
	case "Rueckfrage":
		return "Rückfrage"
	case "Nachricht":
		return "Nachricht"
	}
	return cmp.Or(kind, "Antwort")
}

// fileType is one file type of replies, in the page's words, with the
// extension a download of it gets.
type fileType struct{ mime, label, ext string }

const (
	docxType = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	odtType  = "application/vnd.oasis.opendocument.text"
)

// uploadTypes are the types a clerk may send: what an applicant opens on any
// computer or phone. The type is read from the file's bytes (sniffReplyType),
// not from what the browser says: that comes from the file's name, and a
// Windows without Office sends a .docx as application/octet-stream.
var uploadTypes = []fileType{
	{"application/pdf", "PDF-Dokument", ".pdf"},
	{docxType, "Word-Dokument", ".docx"},
	{odtType, "OpenDocument-Text", ".odt"},
	{"image/jpeg", "JPEG-Bild", ".jpg"},
	{"image/png", "PNG-Bild", ".png"},
}

// shownTypes adds to uploadTypes what replies by other channels are: an XTA
// answer with attachments is stored as one MIME message (docs/xta.md).
var shownTypes = append(uploadTypes[:len(uploadTypes):len(uploadTypes)], fileType{"multipart/mixed", "E-Mail-Nachricht (MIME)", ".eml"})

// typeOf is the entry of shownTypes for a content type, and whether there is one.
func typeOf(contentType string) (fileType, bool) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fileType{}, false
	}
	for _, t := range shownTypes {
		if t.mime == mt {
			return t, true
		}
	}
	return fileType{}, false
}

// fileTypeLabel is a reply's content type in the page's words.
func fileTypeLabel(contentType string) string {
	if t, ok := typeOf(contentType); ok {
		return t.label
	}
	return cmp.Or(contentType, "Datei")
}

// sniffReplyType is the type of a reply's file, read from its bytes, or ""
// for a type the page does not send.
func sniffReplyType(b []byte) string {
	switch ct := http.DetectContentType(b); ct {
	case "application/pdf", "image/jpeg", "image/png":
		return ct
	case "application/zip":
		return officeType(b)
	}
	return ""
}

// officeType tells a Word (OOXML) or OpenDocument text from any other ZIP
// file, by the entries each must have; one with macros is none: it goes to a
// citizen. Office reads a package's part names without regard to case and
// finds a Word document's macros by their content type
// (application/vnd.ms-office.vbaProject) and relationship, whatever their
// part is called, so the names are compared in lower case and the content
// types are read too: a .docm whose word/vbaProject.bin was renamed passed as
// a .docx (an audit, 2026-12-06). An OpenDocument text keeps its macros under
// Basic/ or Scripts/. A ZIP that names an entry twice is none either: which
// of the two a reader takes is its own choice.
func officeType(b []byte) string {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil || len(zr.File) == 0 || len(zr.File) > maxOfficeEntries {
		return ""
	}
	seen := make(map[string]bool, len(zr.File))
	var types, document, macros bool
	for _, f := range zr.File {
		name := strings.ToLower(f.Name)
		if seen[name] {
			return ""
		}
		seen[name] = true
		switch {
		case name == "[content_types].xml":
			types = true
			macros = macros || macroTypes(f)
		case name == "word/document.xml":
			document = true
		case path.Base(name) == "vbaproject.bin", path.Base(name) == "vbadata.xml",
			strings.HasPrefix(name, "basic/"), strings.HasPrefix(name, "scripts/"):
			macros = true
		}
	}
	if macros {
		return ""
	}
	// ODF: the first entry is "mimetype", stored, holding the type (ODF 1.2
	// part 3, 3.3).
	if f := zr.File[0]; f.Name == "mimetype" {
		rc, err := f.Open()
		if err != nil {
			return ""
		}
		defer rc.Close()
		t, err := io.ReadAll(io.LimitReader(rc, 128))
		if err == nil && string(t) == odtType {
			return odtType
		}
		return ""
	}
	if types && document {
		return docxType
	}
	return ""
}

// maxOfficeEntries bounds the entries of a document's ZIP that officeType
// looks at: a letter has some dozen, a scan's pages in a Word file some
// hundred; 20 MB of empty entries are some 400,000, each a name to compare.
const maxOfficeEntries = 10000

// maxContentTypes bounds what officeType reads of [Content_Types].xml: a
// document's has some dozen entries, a few kilobytes.
const maxContentTypes = 1 << 20

// macroTypes reports whether an OOXML package's [Content_Types].xml f names
// a part of macros or a macro-enabled main part, or cannot be read (a file
// that hides its content types is not sent either).
func macroTypes(f *zip.File) bool {
	rc, err := f.Open()
	if err != nil {
		return true
	}
	defer rc.Close()
	t, err := io.ReadAll(io.LimitReader(rc, maxContentTypes+1))
	if err != nil || len(t) > maxContentTypes {
		return true
	}
	lt := strings.ToLower(string(t))
	return strings.Contains(lt, "vbaproject") || strings.Contains(lt, "macroenabled")
}

// replyForm is the reply form as it arrived. The file's name is not in it: it
// may name the applicant ("Bescheid Hübner.pdf"), and the reply has no name
// (submission.Reply), so it is neither kept nor logged.
type replyForm struct {
	csrf, kind, nonce string
	// reason, choice are the decision's fields, which share the case's form
	// ("begruendung", "ergebnis"): the page shows them again after the reply.
	// A reason beyond maxFormBytes, which the decision's form could not take
	// either, is not kept (reasonDropped).
	reason, choice string
	reasonDropped  bool
	// author is the user the case's form was served to ("verfasser"): a
	// draft carried through the login goes back to this user only
	// (lateReply).
	author string
	// known is how many replies the page listed when it was served
	// ("antworten-bekannt"); -1 when the form does not say (a page of a
	// version before it).
	known   int
	content []byte
	chosen  bool // a file was chosen (its part had a name)
	tooBig  bool // the file exceeds maxReplyFileBytes; the body's rest is unread
}

// readReplyForm reads the reply form (multipart/form-data) from body, which is
// r's. The file is the form's last field: one beyond maxReplyFileBytes ends
// the reading there (tooBig), with the fields before it read. With
// fieldsOnly the reading ends at the file, unread.
func readReplyForm(r *http.Request, body io.Reader, fieldsOnly bool) (replyForm, error) {
	f := replyForm{known: -1}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return f, fmt.Errorf("mailbox: the reply form is %q, not multipart/form-data", mt)
	}
	mr := multipart.NewReader(body, params["boundary"])
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil {
			return f, fmt.Errorf("mailbox: the reply form: %w", err)
		}
		if n == maxReplyParts {
			return f, fmt.Errorf("mailbox: the reply form has more than %d parts", maxReplyParts)
		}
		switch name := part.FormName(); name {
		case "datei":
			if fieldsOnly {
				return f, nil
			}
			if f.chosen || f.content != nil {
				return f, errors.New("mailbox: the reply form has more than one file")
			}
			f.chosen = part.FileName() != ""
			b, err := io.ReadAll(io.LimitReader(part, maxReplyFileBytes+1))
			if err != nil {
				return f, fmt.Errorf("mailbox: the reply form's file: %w", err)
			}
			if len(b) > maxReplyFileBytes {
				f.tooBig = true
				return f, nil
			}
			f.content = b
		case "begruendung":
			b, err := io.ReadAll(io.LimitReader(part, maxFormBytes+1))
			if err != nil {
				return f, fmt.Errorf("mailbox: the reply form's field %s: %w", name, err)
			}
			if len(b) <= maxFormBytes {
				f.reason = string(b)
			} else {
				f.reasonDropped = true
			}
		case "csrf", "art", "antwort-id", "antworten-bekannt", "ergebnis", "verfasser":
			b, err := io.ReadAll(io.LimitReader(part, maxReplyField+1))
			if err != nil {
				return f, fmt.Errorf("mailbox: the reply form's field %s: %w", name, err)
			}
			if len(b) > maxReplyField {
				return f, fmt.Errorf("mailbox: the reply form's field %s is longer than %d bytes", name, maxReplyField)
			}
			switch name {
			case "csrf":
				f.csrf = string(b)
			case "art":
				f.kind = string(b)
			case "verfasser":
				f.author = string(b)
			case "ergebnis":
				if c := string(b); c == "annehmen" || c == "ablehnen" {
					f.choice = c
				}
			case "antworten-bekannt":
				if n, err := strconv.Atoi(string(b)); err == nil && n >= 0 {
					f.known = n
				}
			default:
				f.nonce = string(b)
			}
		default:
			// A field the form does not have: read past it (the body's
			// limit bounds it).
			if _, err := io.Copy(io.Discard, part); err != nil {
				return f, fmt.Errorf("mailbox: the reply form: %w", err)
			}
		}
	}
}

// replyWhy is why the case's page refuses a reply.
type replyWhy int

const (
	replyStale     replyWhy = iota // the form's token is an earlier session's
	replyBroken                    // the form did not arrive whole, or is not the page's
	replyNoKind                    // no kind, or one the form does not offer
	replyNoFile                    // no file chosen
	replyEmpty                     // a file of no bytes
	replyTooBig                    // beyond maxReplyFileBytes
	replyType                      // not one of uploadTypes
	replySentOther                 // this form was sent before, with another file or kind
	replySentSince                 // another reply was sent since the page was served
	replyRemoved                   // the case's bytes were removed (broker.ErrBytesRemoved)
	replyRefused                   // the case's state allows none (broker.ErrConflict)
	replyBusy                      // no room in the gateway's budget for bodies now
)

// replyRefusal is a reply the case's page shows refused: the form comes again
// with the kind chosen (a file input cannot be filled in again), the error
// at the top and, where it is a field's, at the field.
type replyRefusal struct {
	why  replyWhy
	kind string
	sent *submission.Reply // replySentOther: the reply this form sent before; replySentSince: the newest one sent since
}

// show puts the refusal on the case's page p of the case as read now (sub),
// and returns the page's status.
func (rr *replyRefusal) show(p *page, sub *submission.Submission) int {
	p.ReplyKind = rr.kind
	const nothing = "Nichts gesendet: "
	again := " Bitte wählen Sie die Datei noch einmal aus und senden Sie die Antwort erneut."
	switch rr.why {
	case replyStale:
		p.Error = nothing + "Sie haben sich inzwischen neu angemeldet (zum Beispiel in einem anderen Fenster), und das Formular gehörte zur alten Anmeldung." + again
		return http.StatusForbidden
	case replyBroken:
		p.Error = nothing + "Das Formular ist nicht vollständig angekommen." + again
		return http.StatusBadRequest
	case replyNoKind:
		p.ReplyKindMissing = true
		p.Error = nothing + "Bitte wählen Sie, was Sie senden: einen Bescheid, eine Rückfrage oder eine sonstige Nachricht." + again
		return http.StatusUnprocessableEntity
	case replyNoFile:
		p.ReplyFileError = "Bitte wählen Sie die Datei aus, die Sie senden möchten."
		p.Error = nothing + p.ReplyFileError
		return http.StatusUnprocessableEntity
	case replyEmpty:
		p.ReplyFileError = "Die gewählte Datei ist leer (0 Byte). Bitte wählen Sie die richtige Datei."
		p.Error = nothing + p.ReplyFileError
		return http.StatusUnprocessableEntity
	case replyTooBig:
		p.ReplyFileError = "Die Datei ist größer als " + replyMax() + ". Bitte verkleinern Sie sie (zum Beispiel als PDF mit geringerer Auflösung gescannt) oder teilen Sie sie auf mehrere Antworten auf."
		p.Error = nothing + p.ReplyFileError
		return http.StatusRequestEntityTooLarge
	case replyType:
		p.ReplyFileError = "Diese Art von Datei kann nicht gesendet werden. Möglich sind " + replyTypeList() + "; am besten senden Sie ein PDF."
		p.Error = nothing + p.ReplyFileError
		return http.StatusUnsupportedMediaType
	case replySentOther:
		p.Error = nothing + "Dieses Formular war schon einmal abgeschickt worden, mit einer anderen Datei oder Art; gesendet ist die Antwort vom " + when(rr.sent.At) + " (siehe „Gesendete Antworten“). Um eine weitere Antwort zu senden, wählen Sie Art und Datei im Formular unten noch einmal aus."
		return http.StatusConflict
	case replySentSince:
		by := ""
		if rr.sent.Actor != "" {
			by = " von " + rr.sent.Actor
		}
		p.Error = nothing + "Seit diese Seite geladen wurde, ist eine Antwort gesendet worden: " + replyKindLabel(rr.sent.Kind) + " vom " + when(rr.sent.At) + by +
			" (siehe „Gesendete Antworten“). Bitte prüfen Sie, ob Ihre Antwort noch nötig ist. Wenn ja, wählen Sie die Datei noch einmal aus und senden Sie sie erneut."
		return http.StatusConflict
	case replyBusy:
		p.Error = nothing + "Das Gateway nimmt gerade so viele Sendungen entgegen, wie es auf einmal darf. Bitte senden Sie die Antwort in einer Minute erneut." + again
		return http.StatusServiceUnavailable
	case replyRemoved:
		p.Error = nothing + "Die Dateien dieses Eingangs wurden gelöscht; eine Antwort darauf könnte das Portal nicht mehr abrufen."
		return http.StatusGone
	}
	switch {
	case sub.Forward != nil:
		p.Error = nothing + "Dieser Eingang wurde an ein Partner-Gateway weitergeleitet; der antragstellenden Person antwortet die Dienststelle dort."
	case sub.DeliveredAt == nil:
		p.Error = nothing + "Ihre Dienststelle hat diesen Eingang noch nicht erhalten. Antworten können Sie, sobald er hier geöffnet (oder übernommen) ist."
	default:
		p.Error = nothing + "Das Gateway nimmt zu diesem Eingang keine weitere Antwort an (gespeichert sind " + strconv.Itoa(len(sub.Replies)) + ")."
	}
	return http.StatusConflict
}

// replyMax is maxReplyFileBytes in the page's words.
func replyMax() string { return strconv.Itoa(maxReplyFileBytes>>20) + " MB" }

// replyTypeList names uploadTypes in the page's words, with their extensions.
func replyTypeList() string {
	var names []string
	for _, t := range uploadTypes {
		names = append(names, t.label+" ("+t.ext+")")
	}
	return strings.Join(names[:len(names)-1], ", ") + " und " + names[len(names)-1]
}

// replyAccept is the file input's accept attribute: the picker offers these
// first. It is a help, not the check (sniffReplyType).
func replyAccept() string {
	var out []string
	for _, t := range uploadTypes {
		out = append(out, t.ext)
		if t.ext == ".jpg" {
			out = append(out, ".jpeg")
		}
	}
	return strings.Join(out, ",")
}

// replyPost sends a reply from the case's form. It reads its own body,
// multipart with a file far beyond maxFormBytes, under the progress rule of
// uploads (api.UploadBody) instead of the server's read timeout: 20 MB over
// an office's slow line take minutes. Nothing is stored before the token is
// checked, and a refusal is the case's page with why.
func (m *Mailbox) replyPost(w http.ResponseWriter, r *http.Request, s session, id string) {
	body, window := m.replyBody(w, r)
	// The file is held in memory until the desk has stored it: within the
	// gateway's budget for bodies, which the portals' packages share, taken as
	// the bytes arrive (httpbody.FirstBytes says why). Twenty clerks sending
	// their scans at once held 400 MB outside any bound.
	lease, err := m.opts.Bodies.Acquire(r.Context(), httpbody.First(r.ContentLength))
	var f replyForm
	if err == nil {
		defer lease.Release()
		f, err = readReplyForm(r, lease.Reader(r.Context(), body, maxReplyBodyBytes), false)
		lease.Keep(int64(cap(f.content)))
	} else if errors.Is(err, httpbody.ErrBusy) {
		// No room for the file now. The fields before it are read all the
		// same, outside the budget — a token, a kind and the decision's
		// reason, at most some 64 KB (maxFormBytes), where the file is up to
		// 20 MB — so that the page asking her to send again has her kind
		// chosen and the reason typed for the decision in its field: both
		// were gone.
		f, _ = readReplyForm(r, body, true)
	}
	api.AnswerUpload(w, cmp.Or(m.opts.WriteTimeout, api.DefaultWriteTimeout))
	if r.Context().Err() != nil {
		return // the browser went away: nobody to answer
	}
	busy := errors.Is(err, httpbody.ErrBusy)
	// The decision typed on the page (the page is one form) comes back on a
	// refusal only from this session's form, or with the browser's word that
	// it is this site's own (as in serve): a sibling host's page could
	// otherwise put a reason into the clerk's case form.
	if !sameToken(f.csrf, s.CSRF) && !sameOrigin(r) {
		f.reason, f.choice = "", ""
	}
	refuse := func(why replyWhy) {
		if f.tooBig || busy {
			// Answered before the body's end: the rest is read and thrown
			// away after the page, as far as a refusal is worth, so that a
			// client that sends all before it reads gets the page
			// (httpbody.Drain says why; Chromium reads it at once).
			httpbody.Refusing(w, r)
			defer api.DrainUpload(w, r, body, maxReplyFileBytes, time.Now().Add(window))
		}
		m.detailWithDraft(w, r, s, id, &draft{why: draftReply, reply: &replyRefusal{why: why, kind: f.kind}, Reason: f.reason, Choice: f.choice})
	}
	switch {
	case busy:
		m.log.Warn("reply refused for now: the gateway holds as many request bodies in memory as it may (limits.body_memory)", "submission", id, "office", s.Office, "user", s.User)
		refuse(replyBusy)
		return
	case err != nil:
		m.log.Warn("reply form unreadable", "submission", id, "office", s.Office, "user", s.User, "err", formErrText(err))
		refuse(replyBroken)
		return
	case !sameToken(f.csrf, s.CSRF):
		// A form of the case's page from before the clerk signed in again
		// (another window, a notice's link), as in serve; or none of this
		// mailbox's.
		refuse(replyStale)
		return
	}
	// Every form sent changes this cookie (serve says why).
	m.setCookie(w, standCookie, newToken()[:12], 0)
	kind := ""
	if isReplyKind(f.kind) {
		kind = f.kind
	}
	var ctype string
	switch {
	case !isToken(f.nonce):
		refuse(replyBroken)
		return
	case kind == "":
		refuse(replyNoKind)
		return
	case f.tooBig:
		refuse(replyTooBig)
		return
	case len(f.content) == 0 && !f.chosen:
		refuse(replyNoFile)
		return
	case len(f.content) == 0:
		refuse(replyEmpty)
		return
	default:
		if ctype = sniffReplyType(f.content); ctype == "" {
			refuse(replyType)
			return
		}
	}
	if f.known >= 0 {
		// A reply sent since the page was served — by a colleague on the same
		// case, or by the clerk herself in another tab, whose page did not
		// show it — is shown before this one goes: the applicant got two
		// Bescheide or two Rückfragen, the second sent by someone who never
		// saw the first (an audit, 2026-12-07). This form's own earlier send
		// (a double click) is no such reply: the desk answers it with the
		// reply it stored. A reply sent in the moment between this read and
		// the desk's store still goes through; the page then lists both.
		cur, err := m.desk.Get(r.Context(), s.Office, id)
		if err != nil {
			m.deskError(w, r, s, err, "reply")
			return
		}
		if since := repliesSince(cur.Replies, f.known, replyMessageID(f.nonce)); since != nil {
			m.detailWithDraft(w, r, s, id, &draft{why: draftReply, reply: &replyRefusal{why: replySentSince, kind: f.kind, sent: since}, Reason: f.reason, Choice: f.choice})
			return
		}
	}
	// The form's own id is the reply's message id: the same form sent twice
	// (a double click, a reload that sends it again) is stored once, and the
	// applicant gets one Bescheid.
	rep, err := m.desk.Reply(r.Context(), s.Office, id, broker.ReplyIn{Kind: kind, MessageID: replyMessageID(f.nonce),
		ContentType: ctype, Content: f.content, Actor: s.User, Channel: channel.Mailbox})
	switch {
	case errors.Is(err, broker.ErrBytesRemoved):
		refuse(replyRemoved)
		return
	case errors.Is(err, broker.ErrConflict):
		refuse(replyRefused)
		return
	case err != nil:
		m.deskError(w, r, s, err, "reply")
		return
	}
	if sum := sha256.Sum256(f.content); rep.SHA256 != hex.EncodeToString(sum[:]) || rep.Kind != kind {
		// The form was sent before with another file (Back to a page kept
		// in memory, another file chosen): the desk kept the first, and this
		// one was not sent. It was reported as sent.
		m.detailWithDraft(w, r, s, id, &draft{why: draftReply, reply: &replyRefusal{why: replySentOther, kind: f.kind, sent: &rep}, Reason: f.reason, Choice: f.choice})
		return
	}
	// The clerk, the office, the case, the kind and the size, as the decision's
	// line has them (docs/mailbox.md section 7); never the file's name.
	m.log.Info("reply", "submission", id, "office", s.Office, "user", s.User, "kind", kind, "reply", rep.ID, "bytes", rep.Size)
	// The decision typed on the page, not saved by the reply, comes back in
	// its fields.
	var d *draft
	if strings.TrimSpace(f.reason) != "" || f.choice != "" {
		d = &draft{why: draftCarried, Reason: f.reason, Choice: f.choice}
	}
	m.carry(w, r, s, id, "gesendet", "", d)
}

// maxLateReplyFields bounds what lateReply reads of a reply's form: the
// fields before the file, a reason of at most maxFormBytes among them, and
// their parts' headers; as much as the login form may carry.
const maxLateReplyFields = maxFormBytes + 16<<10

// lateReply answers "Antwort senden" sent after the session ended (not by
// another site: serve): the case's page is one form, and the reason typed for
// the decision, its choice and the reply's kind came with the file; the login
// led back to the case with all of it gone, where a late decision's form is
// carried (lateDraft). The fields before the file are read — the page puts the
// file last (readReplyForm), and no more than maxLateReplyFields, outside the
// budget for bodies, as replyPost reads them when the budget is full — and
// the file never: the login page carries them as lateDraft's, says that the
// reply was not sent, and the case's page after the login asks for the file
// again. A form that cannot be read so leads to the login, carrying nothing,
// as before. Either way the rest of the body is read and thrown away after
// the answer, as far as a refusal is worth (replyPost's refuse): answered
// before it, net/http closed the connection with the file unread, and
// Chromium showed a reset connection instead of the login.
func (m *Mailbox) lateReply(w http.ResponseWriter, r *http.Request, id string) {
	body, window := m.replyBody(w, r)
	f, err := readReplyForm(r, &fieldsReader{r: body, n: maxLateReplyFields}, true)
	if err == nil && (f.reasonDropped || len(url.QueryEscape(f.reason)) > maxFormBytes) {
		// A reason the login form could not carry (it takes what a case's
		// form may send, maxFormBytes form-encoded, where the multipart form
		// sends it unencoded): nothing is carried, as of a late decision's
		// form of that size, rather than a login page whose form is refused.
		err = errBeyondFields
	}
	api.AnswerUpload(w, cmp.Or(m.opts.WriteTimeout, api.DefaultWriteTimeout))
	if r.Context().Err() != nil {
		return // the browser went away: nobody to answer
	}
	httpbody.Refusing(w, r)
	defer api.DrainUpload(w, r, body, maxReplyFileBytes+replyFraming, time.Now().Add(window))
	if err != nil {
		// The drain flushes the answer: its length is known (render says why).
		w.Header().Set("Content-Length", "0")
		http.Redirect(w, r, m.base.Path+"login?abgelaufen=1&weiter="+url.QueryEscape("s/"+id), http.StatusSeeOther)
		return
	}
	d := &draft{Reason: f.reason, Choice: f.choice, Author: f.author, why: draftAfterLogin, replyLate: true}
	if isReplyKind(f.kind) {
		d.replyKind = f.kind
	}
	lp := m.loginPage(w, r, "s/"+id)
	lp.carry(id, d)
	lp.Error = sessionEndedReplyDraft
	m.render(w, "login", http.StatusUnauthorized, lp)
}

// errBeyondFields: a reply's form has more before its file than
// maxLateReplyFields.
var errBeyondFields = errors.New("mailbox: the reply form's fields before the file are longer than a login may carry")

// fieldsReader reads at most n bytes of r, and then fails with
// errBeyondFields: io.LimitReader's end of file there reads as the form's
// own end to the multipart reader, which then took a form cut at the bound
// for a whole one.
type fieldsReader struct {
	r io.Reader
	n int64
}

func (f *fieldsReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errBeyondFields
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

// repliesSince is the newest of the replies after the first known ones, or nil
// when there is none or one of them is this form's own (message id own): the
// form was sent before, and the desk answers it with that reply.
func repliesSince(replies []submission.Reply, known int, own string) *submission.Reply {
	if known >= len(replies) {
		return nil
	}
	for _, rep := range replies[known:] {
		if rep.MessageID == own {
			return nil
		}
	}
	newest := replies[len(replies)-1]
	return &newest
}

// replyMessageID is the reply's message id (broker.ReplyIn.MessageID) for the
// form's own id nonce: apart from any an office's system gives its replies.
func replyMessageID(nonce string) string { return "postfach:" + nonce }

// replyDownload serves a reply's bytes to the clerk, for reading back what
// went to the applicant. Opening it records nothing.
func (m *Mailbox) replyDownload(w http.ResponseWriter, r *http.Request, s session, id, rid string) {
	rep, rc, err := m.desk.OpenReply(r.Context(), s.Office, id, rid)
	if err != nil {
		m.deskError(w, r, s, err, "open reply")
		return
	}
	defer rc.Close()
	ctype, ext := "application/octet-stream", ""
	if t, ok := typeOf(rep.ContentType); ok {
		ctype, ext = t.mime, t.ext
	}
	// The name its office system gave it (XTA, the office API), as the
	// portal gets it; a reply without one — the mailbox's own, sent before
	// 2026-12-07, an XTA bundle — is named by kind and time.
	name := rep.FileName
	if name == "" {
		name = strings.ToLower(replyKindLabel(rep.Kind)) + "-" + rep.At.In(berlin).Format("2006-01-02-1504") + ext
	}
	m.sendFile(w, r, rc, ctype, name, "antwort"+ext, rep.Size, rep.SHA256)
}

// replyKindOf is, for a replied or reply_fetched event of the case, the kind
// of the reply it records ("Bescheid"), in the page's words; "" for any other
// event.
func replyKindOf(s *submission.Submission, e submission.Event) string {
	if e.Type != submission.EventReplied && e.Type != submission.EventReplyFetched {
		return ""
	}
	for _, rep := range s.Replies {
		if strings.Contains(e.Detail, rep.ID) {
			return replyKindLabel(rep.Kind)
		}
	}
	return ""
}

// canReply reports whether the case's page offers the reply form: the office
// has the case and its bytes (the desk's rules, submission.AddReply), and it
// is not its peer's. The desk asks again when the form comes.
func canReply(sub *submission.Submission, elsewhere string) bool {
	return sub.DeliveredAt != nil && sub.Forward == nil && sub.BytesRemovedAt == nil && elsewhere == ""
}

// formErrText is what the log says of a reply form that did not arrive whole:
// the error, but not a line of the form it quotes (httpbody.QuotesContent) — a
// part's headers carry the file's name, which names the applicant.
func formErrText(err error) string {
	if httpbody.QuotesContent(err) {
		return "a line of the form does not parse as multipart (not quoted here)"
	}
	return err.Error()
}

// replyBody is a reply form's body under the progress rule of uploads
// (Options.Downloads' window and rate, the REST face's defaults), and that
// window, which the drain of a refused form's rest keeps too.
func (m *Mailbox) replyBody(w http.ResponseWriter, r *http.Request) (io.Reader, time.Duration) {
	window := cmp.Or(m.opts.Downloads.Window, api.DefaultTransferWindow)
	minRate := cmp.Or(m.opts.Downloads.MinRate, api.DefaultTransferMinRate)
	return api.UploadBody(w, r, maxReplyBodyBytes, window, minRate), window
}
