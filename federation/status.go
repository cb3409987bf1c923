package federation

import (
	"cmp"
	"fmt"
	"strconv"
	"time"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// MaxQuery is the most packages one status question may name.
const MaxQuery = 500

// Ref names a forwarded package the way both gateways know it: the portal that
// signed it and its NachrichtID (the idempotency key on both sides).
type Ref struct {
	Sender    string
	MessageID string
}

// Query is a status question (Statusabfrage).
type Query struct {
	From, To string
	At       time.Time
	Refs     []Ref
	// Replies asks, for each package it names, for the replies of its office
	// after the first n, which the asking gateway has (an attribute Antworten="n"
	// of the Vorgang). A package it does not name is asked about without its
	// replies: a gateway of a build before replies travelled never names one and
	// gets answers it can read (docs/federation.md, "Replies").
	Replies map[Ref]int
}

// MaxReplies is the most replies one package may have (as a record holds,
// submission.MaxReplies), and the most an answer lists for it.
const MaxReplies = submission.MaxReplies

// MaxAnswerReplies is the most replies one answer lists in all: a question may
// name MaxQuery packages. What does not fit is listed in a later answer (the
// asking gateway names what it has, and asks in changing order).
const MaxAnswerReplies = 1000

// MaxReplyBytes is the largest reply that travels: what an office may store
// (broker.MaxReplyBytes).
const MaxReplyBytes = broker.MaxReplyBytes

// ReplyInfo announces one reply of the package's office (Antwort): what it is
// and the size and SHA-256 of its bytes, which the asking gateway fetches by ID
// (Antwortabruf) and checks against this signed announcement.
type ReplyInfo struct {
	ID          string
	Kind        string // Bescheid, Rueckfrage, or the XTA message type
	ContentType string
	// FileName is the name the office gave the file (submission.FileName's
	// rule); "" for none. It travels as the attribute Antwort/@Dateiname:
	// a gateway of a build before 2026-12-07 reads the Antwort's elements
	// strictly (an element it does not know fails the whole answer) and
	// passes over attributes, as over the question's Vorgang/@Antworten.
	FileName string
	Size     int64
	SHA256   string
	At       time.Time
	Actor    string
}

// StateUnknown answers for a package the asking gateway did not forward here.
const StateUnknown = "unbekannt"

// Decision is an office's decision as reported.
type Decision struct {
	Outcome string // accepted or rejected
	At      time.Time
	Actor   string
	Reason  string
}

// Status is what the receiving gateway reports about one package.
type Status struct {
	Ref
	State        string // a submission state, or StateUnknown
	SubmissionID string
	Receiver     string
	// ReceiverGateway is where the receiver is when that is not the answering
	// gateway (it forwarded the package on); Receiver then names it too. On the
	// wire the attribute Gateway of Empfaenger, which readers of version 1 that
	// predate it ignore.
	ReceiverGateway string
	DeliveredAt     *time.Time
	Decision        *Decision
	Note            string // public: why it is held, where it went on
	// Replies are the office's replies after the first n the question said the
	// asking gateway has, oldest first; only when it asked (Query.Replies).
	Replies []ReplyInfo
}

// Report is the answer (Statusauskunft).
type Report struct {
	From, To string
	At       time.Time
	Items    []Status
}

// Sign builds and signs the question.
func (q *Query) Sign(s *signing.Signer) ([]byte, error) {
	if err := checkQuerySize(len(q.Refs)); err != nil {
		return nil, err
	}
	root := statusDoc("Statusabfrage", q.From, q.To, q.At)
	for _, r := range q.Refs {
		v := addVorgang(root, r)
		if n, ok := q.Replies[r]; ok {
			v.CreateAttr("Antworten", strconv.Itoa(max(n, 0)))
		}
	}
	return s.Sign(root)
}

// ParseQuery reads a question from a verified root.
func ParseQuery(root *etree.Element) (*Query, error) {
	if err := checkRoot(root, "Statusabfrage"); err != nil {
		return nil, err
	}
	r := newReader(root, "Statusabfrage")
	q := &Query{}
	q.From, q.To, q.At = readHead(r)
	for r.peek("Vorgang") {
		ref, el, err := readVorgang(r, "Statusabfrage")
		if err != nil {
			return nil, err
		}
		if a := el.SelectAttr("Antworten"); a != nil {
			n, err := strconv.Atoi(a.Value)
			if err != nil || n < 0 || n > MaxReplies {
				return nil, fmt.Errorf("%w: Statusabfrage/Vorgang/@Antworten %q is no number of replies (0 to %d)", ErrMalformed, a.Value, MaxReplies)
			}
			if q.Replies == nil {
				q.Replies = map[Ref]int{}
			}
			q.Replies[ref] = n
		}
		q.Refs = append(q.Refs, ref)
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	if err := checkQuerySize(len(q.Refs)); err != nil {
		return nil, err
	}
	return q, nil
}

// Sign builds and signs the answer.
func (rp *Report) Sign(s *signing.Signer) ([]byte, error) {
	root := statusDoc("Statusauskunft", rp.From, rp.To, rp.At)
	for _, it := range rp.Items {
		v := addVorgang(root, it.Ref)
		add(v, "Zustand", it.State)
		if it.SubmissionID != "" {
			add(v, "EinreichungID", it.SubmissionID)
		}
		if it.Receiver != "" {
			// A name of nothing XML can carry is the reader's default for no name.
			e := add(v, "Empfaenger", cmp.Or(clip(it.Receiver, 500), "office"))
			if it.ReceiverGateway != "" {
				e.CreateAttr("Gateway", it.ReceiverGateway)
			}
		}
		if it.DeliveredAt != nil {
			add(v, "ZugestelltAm", ts(*it.DeliveredAt))
		}
		if d := it.Decision; d != nil {
			de := v.CreateElement("Entscheidung")
			add(de, "Ergebnis", d.Outcome)
			add(de, "Zeitpunkt", ts(d.At))
			// Office systems write these: what XML cannot carry is left out, never
			// sent to make the whole answer unreadable for the asking gateway.
			addText(de, "Akteur", d.Actor, 500)
			addText(de, "Grund", d.Reason, 500)
		}
		addText(v, "Hinweis", it.Note, 500)
		for _, a := range it.Replies {
			ae := v.CreateElement("Antwort")
			if a.FileName != "" {
				ae.CreateAttr("Dateiname", a.FileName)
			}
			add(ae, "AntwortID", a.ID)
			// An office system names the kind; one of nothing XML can carry is
			// "Antwort", never an empty element the asking gateway would refuse.
			add(ae, "Art", cmp.Or(clip(a.Kind, 100), "Antwort"))
			addText(ae, "Typ", a.ContentType, 200)
			add(ae, "Groesse", strconv.FormatInt(a.Size, 10))
			add(ae, "SHA256", a.SHA256)
			add(ae, "Zeitpunkt", ts(a.At))
			addText(ae, "Akteur", a.Actor, 500)
		}
	}
	return s.Sign(root)
}

var knownStates = map[string]bool{"queued": true, "retrying": true, "handed_over": true, "delivered": true, "held": true,
	"accepted": true, "rejected": true, "forwarded": true, StateUnknown: true}

// ParseReport reads an answer from a verified root.
func ParseReport(root *etree.Element) (*Report, error) {
	if err := checkRoot(root, "Statusauskunft"); err != nil {
		return nil, err
	}
	r := newReader(root, "Statusauskunft")
	rp := &Report{}
	rp.From, rp.To, rp.At = readHead(r)
	replies := 0 // in all: at most MaxAnswerReplies, as an answer is written
	for r.peek("Vorgang") {
		v := newReader(r.elem("Vorgang"), "Statusauskunft/Vorgang")
		it := Status{Ref: readRef(v)}
		it.State = v.text("Zustand", 20)
		it.SubmissionID = v.opt("EinreichungID", 500)
		if v.peek("Empfaenger") {
			gw := v.kids[v.i].SelectAttrValue("Gateway", "")
			it.Receiver = v.text("Empfaenger", 500)
			if gw != "" && !validGatewayID(gw) {
				return nil, fmt.Errorf("%w: Empfaenger/@Gateway %q is no gateway id", ErrMalformed, gw)
			}
			it.ReceiverGateway = gw
		}
		if v.peek("ZugestelltAm") {
			t := v.time("ZugestelltAm")
			it.DeliveredAt = &t
		}
		if v.peek("Entscheidung") {
			d := newReader(v.elem("Entscheidung"), "Statusauskunft/Vorgang/Entscheidung")
			it.Decision = &Decision{Outcome: d.text("Ergebnis", 20), At: d.time("Zeitpunkt"), Actor: d.opt("Akteur", 500), Reason: d.opt("Grund", 500)}
			d.end()
			if d.err != nil {
				return nil, d.err
			}
			if it.Decision.Outcome != "accepted" && it.Decision.Outcome != "rejected" {
				return nil, fmt.Errorf("%w: Ergebnis %q", ErrMalformed, it.Decision.Outcome)
			}
		}
		it.Note = v.opt("Hinweis", 500)
		for v.peek("Antwort") {
			if len(it.Replies) == MaxReplies {
				return nil, fmt.Errorf("%w: more than %d replies of one package", ErrMalformed, MaxReplies)
			}
			// A peer's build never lists more; a broken one that did made this
			// gateway fetch up to 100 for each of 500 packages in one poll.
			if replies == MaxAnswerReplies {
				return nil, fmt.Errorf("%w: more than %d replies in one answer", ErrMalformed, MaxAnswerReplies)
			}
			replies++
			a, err := readReply(v.elem("Antwort"))
			if err != nil {
				return nil, err
			}
			it.Replies = append(it.Replies, a)
		}
		v.end()
		if v.err != nil {
			return nil, v.err
		}
		if !knownStates[it.State] {
			return nil, fmt.Errorf("%w: Zustand %q", ErrMalformed, it.State)
		}
		rp.Items = append(rp.Items, it)
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return rp, nil
}

// readReply reads one Antwort of a Statusauskunft.
func readReply(el *etree.Element) (ReplyInfo, error) {
	r := newReader(el, "Statusauskunft/Vorgang/Antwort")
	a := ReplyInfo{ID: r.text("AntwortID", 200), Kind: r.text("Art", 100), ContentType: r.opt("Typ", 200)}
	size := r.text("Groesse", 20)
	a.SHA256 = r.text("SHA256", 64)
	a.At = r.time("Zeitpunkt")
	a.Actor = r.opt("Akteur", 500)
	r.end()
	if r.err != nil {
		return ReplyInfo{}, r.err
	}
	if at := el.SelectAttr("Dateiname"); at != nil {
		// As a face keeps it: a name the peer's faces would have refused
		// does not reach this gateway's portal either.
		name, err := submission.FileName(at.Value)
		if err != nil || name != at.Value || name == "" {
			return ReplyInfo{}, fmt.Errorf("%w: Antwort/@Dateiname is no file name as a gateway keeps it (a last path element of 1 to %d bytes, no control or format characters)", ErrMalformed, submission.MaxFileNameBytes)
		}
		a.FileName = name
	}
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n < 0 || n > MaxReplyBytes {
		return ReplyInfo{}, fmt.Errorf("%w: Antwort/Groesse %q is no size of 0 to %d bytes", ErrMalformed, size, MaxReplyBytes)
	}
	a.Size = n
	if !store.IsHexDigest(a.SHA256) {
		return ReplyInfo{}, fmt.Errorf("%w: Antwort/SHA256 %q is no lower-case hex SHA-256", ErrMalformed, a.SHA256)
	}
	return a, nil
}

// The question and the answer share their head (Von, An, Zeitpunkt) and the naming
// of a package (Vorgang with Absender and NachrichtID).

func statusDoc(name, from, to string, at time.Time) *etree.Element {
	root := newDoc(name)
	add(root, "Von", from)
	add(root, "An", to)
	add(root, "Zeitpunkt", ts(at))
	return root
}

func addVorgang(parent *etree.Element, r Ref) *etree.Element {
	v := parent.CreateElement("Vorgang")
	add(v, "Absender", r.Sender)
	add(v, "NachrichtID", r.MessageID)
	return v
}

func readHead(r *reader) (from, to string, at time.Time) {
	return r.text("Von", 200), r.text("An", 200), r.time("Zeitpunkt")
}

// readVorgang reads the next Vorgang of r, in a document named doc, that names
// a package and nothing else (a question, an Antwortabruf, an
// Aenderungsmeldung), and returns its Ref and the element (for attributes).
// A missing Vorgang is r's error.
func readVorgang(r *reader, doc string) (Ref, *etree.Element, error) {
	el := r.elem("Vorgang")
	if el == nil {
		return Ref{}, nil, r.err
	}
	v := newReader(el, doc+"/Vorgang")
	ref := readRef(v)
	v.end()
	return ref, el, v.err
}

func readRef(v *reader) Ref {
	return Ref{Sender: v.text("Absender", 500), MessageID: v.text("NachrichtID", 500)}
}

// validGatewayID: the schema's GatewayID (and config's peer id rule).
func validGatewayID(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && (r == '.' || r == '_' || r == '-')
		if !ok {
			return false
		}
	}
	return true
}

func checkQuerySize(n int) error {
	if n == 0 || n > MaxQuery {
		return fmt.Errorf("%w: a status question names 1 to %d packages", ErrMalformed, MaxQuery)
	}
	return nil
}
