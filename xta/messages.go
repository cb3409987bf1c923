package xta

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/amtsbote/amtsbote/submission"
)

// MessageIDPrefix starts every XTAMessageID: urn:de:xta:messageid:<server>:<uuid>.
const MessageIDPrefix = "urn:de:xta:messageid:"

// MessageID is the XTAMessageID of a submission: stable (the same for every list,
// fetch and report) and reversible without a lookup, since the submission id is a
// UUID already.
func MessageID(server, submissionID string) string {
	return MessageIDPrefix + server + ":" + submissionID
}

// SubmissionID returns the submission id inside an XTAMessageID this server issued
// for a submission, or ok=false.
func SubmissionID(server, xtaID string) (string, bool) {
	p := MessageIDPrefix + server + ":"
	rest, ok := strings.CutPrefix(strings.TrimSpace(xtaID), p)
	if !ok {
		return "", false
	}
	if _, err := uuid.Parse(rest); err != nil {
		return "", false
	}
	return rest, true
}

// NewMessageID issues a fresh XTAMessageID (createMessageID).
func NewMessageID(server string) string {
	return MessageIDPrefix + server + ":" + uuid.NewString()
}

// Qualifier is the XTA Qualifier of a message: what it is (service, business
// scenario, message type).
type Qualifier struct {
	Service string // URI; "" leaves Service out
	// BusinessScenario: a code of a code list (ScenarioListURI/ScenarioListVersion
	// set) or, without a list, an undefined scenario written as text.
	BusinessScenario    string
	ScenarioListURI     string
	ScenarioListVersion string
	MessageType         string
	MessageSchema       string // URI of the message's schema (required)
}

// DefaultQualifier describes an Antragspaket when the directory names nothing better.
func DefaultQualifier(s *submission.Submission) Qualifier {
	return Qualifier{
		Service:          "urn:amtsbote:service:antrag",
		BusinessScenario: "amtsbote Antrag LeiKa " + s.LeikaKey,
		MessageType:      "Antragspaket",
		MessageSchema:    "urn:amtsbote:antragspaket:1",
	}
}

// meta is everything written into one MessageMetaData.
type meta struct {
	xtaID        string
	reader       Party
	author       Party
	sender       Party // optional
	q            Qualifier
	size         int64
	origin       time.Time
	initialSend  time.Time
	delivery     time.Time
	initialFetch time.Time
	reception    time.Time
	props        [][2]string
	idSuffix     string // makes the xs:IDs unique within one document
}

func (w *xw) writeMeta(name string, m meta, declare bool) {
	var attrs []string
	if declare {
		attrs = []string{"xmlns:xta", NS}
	}
	id := func(what string) string { return ncname(what+"-", m.idSuffix) }
	w.open(name, attrs...)
	w.leaf("xta:XTAMessageID", m.xtaID, "id", id("mid"))
	w.open("xta:Reader", "id", id("reader"))
	w.writeParty(m.reader)
	w.end("xta:Reader")
	w.open("xta:Originators")
	w.open("xta:Author", "id", id("author"))
	w.writeParty(m.author)
	w.end("xta:Author")
	if m.sender.Identifier != "" {
		w.open("xta:Sender", "id", id("sender"))
		w.writeParty(m.sender)
		w.end("xta:Sender")
	}
	w.end("xta:Originators")
	w.open("xta:Qualifier", "id", id("qualifier"))
	if m.q.Service != "" {
		w.leaf("xta:Service", m.q.Service)
	}
	w.open("xta:BusinessScenario")
	if m.q.ScenarioListURI != "" {
		w.open("xta:Defined", "listURI", m.q.ScenarioListURI, "listVersionID", m.q.ScenarioListVersion)
		w.leaf("code", m.q.BusinessScenario)
		w.end("xta:Defined")
	} else {
		w.leaf("xta:Undefined", m.q.BusinessScenario)
	}
	w.end("xta:BusinessScenario")
	w.leaf("xta:MessageType", m.q.MessageType, "messageSchema", m.q.MessageSchema)
	w.end("xta:Qualifier")
	w.leaf("xta:MessageSize", itoa(max(m.size, 1)))
	w.open("xta:DeliveryAttributes")
	for _, t := range []struct {
		name string
		at   time.Time
	}{{"Origin", m.origin}, {"InitialSend", m.initialSend}, {"Delivery", m.delivery}, {"InitialFetch", m.initialFetch}, {"Reception", m.reception}} {
		if !t.at.IsZero() {
			w.leaf("xta:"+t.name, xsTime(t.at), "id", id(strings.ToLower(t.name)))
		}
	}
	w.end("xta:DeliveryAttributes")
	w.open("xta:ServiceQuality", "id", id("quality"))
	w.leaf("xta:Undefined", "amtsbote")
	w.end("xta:ServiceQuality")
	for i, p := range m.props {
		w.open("xta:MessageProperty", "id", id(fmt.Sprintf("prop%d", i+1)))
		w.leaf("xta:Key", p[0])
		w.leaf("xta:Value", p[1])
		w.end("xta:MessageProperty")
	}
	w.end(name)
}

// part is one content element of a ContentContainer.
type part struct {
	elem        string // "Message" or "Attachment"
	id          string // xs:ID
	contentType string
	encoding    string
	filename    string
	size        int64
	open        func(ctx context.Context) (io.ReadCloser, error)
	rc          io.ReadCloser // opened before the answer starts
	cid         string        // set when sent as an XOP part
}

// writeContainer writes a ContentContainer; parts with a cid become xop:Include,
// the others are read and written inline as base64.
func (w *xw) writeContainer(name string, parts []*part, declare bool) error {
	var attrs []string
	if declare {
		attrs = []string{"xmlns:xta", NS}
	}
	w.open(name, attrs...)
	for _, p := range parts {
		size := ""
		if p.size > 0 {
			size = itoa(p.size)
		}
		w.open("xta:"+p.elem, "contentType", p.contentType, "encoding", p.encoding, "filename", p.filename, "id", p.id, "size", size)
		if p.cid != "" {
			w.empty("xop:Include", "xmlns:xop", NSXOP, "href", "cid:"+p.cid)
		} else {
			enc := base64.NewEncoder(base64.StdEncoding, &w.Buffer)
			if _, err := io.Copy(enc, p.rc); err != nil {
				return err
			}
			if err := enc.Close(); err != nil {
				return err
			}
		}
		w.end("xta:" + p.elem)
	}
	w.end(name)
	return nil
}

func closeParts(parts []*part) {
	for _, p := range parts {
		if p.rc != nil {
			_ = p.rc.Close()
			p.rc = nil
		}
	}
}
