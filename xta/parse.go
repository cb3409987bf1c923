package xta

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/amtsbote/amtsbote/internal/german"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/internal/xmlscan"
)

// The shapes read from SOAP messages. encoding/xml resolves prefixes, so a request
// may bind the XTA namespace to any prefix (ns, xta, a default namespace).

type xParty struct {
	Identifier struct {
		Value    string `xml:",chardata"`
		Scheme   string `xml:"identifierScheme,attr"`
		Name     string `xml:"name,attr"`
		Category string `xml:"organizationCategory,attr"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 Identifier"`
	Directory *xCode `xml:"https://xoev.de/transport/xta/core/3.1.1 Directory"`
}

func (p *xParty) party() Party {
	if p == nil {
		return Party{}
	}
	out := Party{Identifier: strings.TrimSpace(p.Identifier.Value), Scheme: p.Identifier.Scheme,
		Name: p.Identifier.Name, Category: p.Identifier.Category}
	if p.Directory != nil {
		out.Directory = strings.TrimSpace(p.Directory.Code)
		out.DirectoryListURI = strings.TrimSpace(p.Directory.ListURI)
		out.DirectoryListVersion = strings.TrimSpace(p.Directory.ListVersion)
	}
	return out
}

type xCode struct {
	ListURI     string `xml:"listURI,attr"`
	ListVersion string `xml:"listVersionID,attr"`
	Code        string `xml:"code"`
}

type xIDValue struct {
	ID    string `xml:"id,attr"`
	Value string `xml:",chardata"`
}

type xMetaData struct {
	XTAMessageID *xIDValue `xml:"https://xoev.de/transport/xta/core/3.1.1 XTAMessageID"`
	Reader       *xParty   `xml:"https://xoev.de/transport/xta/core/3.1.1 Reader"`
	Originators  *struct {
		Author *xParty `xml:"https://xoev.de/transport/xta/core/3.1.1 Author"`
		Sender *xParty `xml:"https://xoev.de/transport/xta/core/3.1.1 Sender"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 Originators"`
	Qualifier *struct {
		Service          string `xml:"https://xoev.de/transport/xta/core/3.1.1 Service"`
		BusinessScenario struct {
			Defined   *xCode `xml:"https://xoev.de/transport/xta/core/3.1.1 Defined"`
			Undefined string `xml:"https://xoev.de/transport/xta/core/3.1.1 Undefined"`
		} `xml:"https://xoev.de/transport/xta/core/3.1.1 BusinessScenario"`
		MessageType struct {
			Value  string `xml:",chardata"`
			Schema string `xml:"messageSchema,attr"`
		} `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageType"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 Qualifier"`
	MessageSize        string `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageSize"`
	DeliveryAttributes *struct {
		Origin       string `xml:"https://xoev.de/transport/xta/core/3.1.1 Origin"`
		InitialSend  string `xml:"https://xoev.de/transport/xta/core/3.1.1 InitialSend"`
		Delivery     string `xml:"https://xoev.de/transport/xta/core/3.1.1 Delivery"`
		InitialFetch string `xml:"https://xoev.de/transport/xta/core/3.1.1 InitialFetch"`
		Reception    string `xml:"https://xoev.de/transport/xta/core/3.1.1 Reception"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 DeliveryAttributes"`
	AdditionalIdentifier []struct {
		MessageIdentifier string `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageIdentifier"`
		Context           xCode  `xml:"https://xoev.de/transport/xta/core/3.1.1 Context"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 AdditionalIdentifier"`
	MessageProperty []struct {
		Key   string `xml:"https://xoev.de/transport/xta/core/3.1.1 Key"`
		Value string `xml:"https://xoev.de/transport/xta/core/3.1.1 Value"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageProperty"`
}

// xContent is a ContentType element: base64 text or an xop:Include. Other
// holds any other element in it, which the schema does not allow: the text
// of an element read as chardata is only the element's own, so an XML
// document put in as elements read as empty content.
type xContent struct {
	ContentType string `xml:"contentType,attr"`
	Encoding    string `xml:"encoding,attr"`
	Filename    string `xml:"filename,attr"`
	ID          string `xml:"id,attr"`
	Size        string `xml:"size,attr"`
	Text        string `xml:",chardata"`
	Include     *struct {
		Href string `xml:"href,attr"`
	} `xml:"http://www.w3.org/2004/08/xop/include Include"`
	Other []xAny `xml:",any"`
}

// xContainer is a ContentContainer. Message is a list though the schema allows
// one: a second one read into a single field replaced the first.
type xContainer struct {
	Message    []xContent `xml:"https://xoev.de/transport/xta/core/3.1.1 Message"`
	Attachment []xContent `xml:"https://xoev.de/transport/xta/core/3.1.1 Attachment"`
	Extensions *struct{}  `xml:"https://xoev.de/transport/xta/core/3.1.1 Extensions"`
}

type xSelector struct {
	XTAMessageIDs *struct {
		IDs []xIDValue `xml:"https://xoev.de/transport/xta/core/3.1.1 XTAMessageID"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 XTAMessageIDs"`
	OtherCriteria *struct {
		NewEntry    *string   `xml:"https://xoev.de/transport/xta/core/3.1.1 NewEntry"`
		MaxMessages *string   `xml:"https://xoev.de/transport/xta/core/3.1.1 MaxMessages"`
		From        string    `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageBoxEntryTimeFrom"`
		To          string    `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageBoxEntryTimeTo"`
		Extensions  *struct{} `xml:"https://xoev.de/transport/xta/core/3.1.1 Extensions"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 OtherCriteria"`
}

type xFetch struct {
	XTAMessageID *xIDValue `xml:"https://xoev.de/transport/xta/core/3.1.1 XTAMessageID"`
	Extensions   *struct{} `xml:"https://xoev.de/transport/xta/core/3.1.1 Extensions"`
}

type xLookupService struct {
	Reader  *xParty `xml:"https://xoev.de/transport/xta/core/3.1.1 Reader"`
	Service string  `xml:"https://xoev.de/transport/xta/core/3.1.1 Service"`
}

type xAny struct {
	XMLName xml.Name
}

// xHeader is the SOAP Header: the blocks this service reads, and the others. A
// block targeted at a role this node does not play (env:role none, or any role
// but next and ultimateReceiver) is left out altogether, as SOAP 1.2 (part 1,
// 5.2.2 and 5.2.3) asks: it is neither read nor checked for mustUnderstand.
type xHeader struct {
	Party                *xParty
	MessageMetaData      *xMetaData
	MessageMetaDataReply *struct {
		MessageMetaData *xMetaData `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageMetaData"`
	}
	MessageBoxStatus *struct {
		MessagesRemaining struct {
			NoMessageAvailable *string `xml:"https://xoev.de/transport/xta/core/3.1.1 NoMessageAvailable"`
			MessagesPending    *string `xml:"https://xoev.de/transport/xta/core/3.1.1 MessagesPending"`
		} `xml:"https://xoev.de/transport/xta/core/3.1.1 MessagesRemaining"`
	}
	Action    string // wsa:Action
	MessageID string // wsa:MessageID
	ReplyTo   *xEPR  // wsa:ReplyTo
	FaultTo   *xEPR  // wsa:FaultTo
	// Addressed: a WS-Addressing block of any kind (also one this service does
	// not read, as wsa:To) is targeted at this node; the answer then carries
	// WS-Addressing headers of its own (wsaHeaders).
	Addressed bool
	Any       []xHeaderBlock // blocks this service does not read
}

// xEPR is a WS-Addressing endpoint reference: its address is what this
// service reads of it.
type xEPR struct {
	Address string `xml:"http://www.w3.org/2005/08/addressing Address"`
}

// The roles of SOAP 1.2 (part 1, 2.2). This node is the ultimate receiver, so it
// plays next and ultimateReceiver; a block without env:role is for the ultimate
// receiver.
const (
	RoleNext             = NSSoap12 + "/role/next"
	RoleUltimateReceiver = NSSoap12 + "/role/ultimateReceiver"
)

// forThisNode reports whether a header block with these attributes is targeted at
// this node.
func forThisNode(attrs []xml.Attr) bool {
	for _, a := range attrs {
		if a.Name.Space == NSSoap12 && a.Name.Local == "role" {
			switch strings.TrimSpace(a.Value) {
			case "", RoleNext, RoleUltimateReceiver:
				return true
			}
			return false
		}
	}
	return true
}

// UnmarshalXML reads the header blocks targeted at this node and skips the others.
func (h *xHeader) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	seen := map[xml.Name]bool{}
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if !forThisNode(t.Attr) {
				if err := d.Skip(); err != nil {
					return err
				}
				continue
			}
			if known[t.Name] {
				// A second block would have been merged into the first, field by
				// field, or replaced it: the service would act on a message nobody sent.
				if seen[t.Name] {
					return &errDuplicateHeader{t.Name}
				}
				seen[t.Name] = true
			}
			if t.Name.Space == NSWSA {
				h.Addressed = true
			}
			switch t.Name {
			case xml.Name{Space: NS, Local: "Party"}:
				err = d.DecodeElement(&h.Party, &t)
			case xml.Name{Space: NS, Local: "MessageMetaData"}:
				err = d.DecodeElement(&h.MessageMetaData, &t)
			case xml.Name{Space: NS, Local: "MessageMetaDataReply"}:
				err = d.DecodeElement(&h.MessageMetaDataReply, &t)
			case xml.Name{Space: NS, Local: "MessageBoxStatus"}:
				err = d.DecodeElement(&h.MessageBoxStatus, &t)
			case xml.Name{Space: NSWSA, Local: "Action"}:
				err = d.DecodeElement(&h.Action, &t)
			case xml.Name{Space: NSWSA, Local: "MessageID"}:
				err = d.DecodeElement(&h.MessageID, &t)
			case xml.Name{Space: NSWSA, Local: "ReplyTo"}:
				err = d.DecodeElement(&h.ReplyTo, &t)
			case xml.Name{Space: NSWSA, Local: "FaultTo"}:
				err = d.DecodeElement(&h.FaultTo, &t)
			default:
				var b xHeaderBlock
				err = d.DecodeElement(&b, &t)
				h.Any = append(h.Any, b)
			}
			if err != nil {
				return err
			}
		}
	}
}

// known are the header blocks this service reads; each may occur once.
var known = map[xml.Name]bool{
	{Space: NS, Local: "Party"}: true, {Space: NS, Local: "MessageMetaData"}: true,
	{Space: NS, Local: "MessageMetaDataReply"}: true, {Space: NS, Local: "MessageBoxStatus"}: true,
	{Space: NSWSA, Local: "Action"}: true, {Space: NSWSA, Local: "MessageID"}: true,
	{Space: NSWSA, Local: "ReplyTo"}: true, {Space: NSWSA, Local: "FaultTo"}: true,
}

// The WS-Addressing addresses of a response endpoint that mean "on the
// connection of the request" (anonymous) and "none at all" (none).
const (
	AddressAnonymous = NSWSA + "/anonymous"
	AddressNone      = NSWSA + "/none"
)

// nonAnonymous names the first response endpoint of h (wsa:ReplyTo, then
// wsa:FaultTo) whose address is neither anonymous nor none, or "". The WSDL's
// policy (wsam:AnonymousResponses) lets answers go on the request's connection
// only: a client that names an address of its own (a decoupled endpoint)
// waits there for an answer that never comes. A ReplyTo without Address names
// no endpoint, and none asks for no answer, which costs nothing to send all
// the same: both pass.
func nonAnonymous(h *xHeader) string {
	if h == nil {
		return ""
	}
	for _, e := range []struct {
		name string
		epr  *xEPR
	}{{"ReplyTo", h.ReplyTo}, {"FaultTo", h.FaultTo}} {
		if e.epr == nil {
			continue
		}
		switch strings.TrimSpace(e.epr.Address) {
		case "", AddressAnonymous, AddressNone:
		default:
			return e.name
		}
	}
	return ""
}

// errDuplicateHeader: a header block this service reads, targeted at it twice.
type errDuplicateHeader struct{ name xml.Name }

func (e *errDuplicateHeader) Error() string {
	return fmt.Sprintf("header block {%s}%s twice", e.name.Space, e.name.Local)
}

// xHeaderBlock is a header block this service does not read.
type xHeaderBlock struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
}

// mustUnderstand reports whether the block is marked env:mustUnderstand="true".
func (h xHeaderBlock) mustUnderstand() bool {
	for _, a := range h.Attrs {
		if a.Name.Space == NSSoap12 && a.Name.Local == "mustUnderstand" {
			v := strings.TrimSpace(a.Value)
			return v == "true" || v == "1"
		}
	}
	return false
}

// errMustUnderstand: a header block marked mustUnderstand that is not understood.
type errMustUnderstand struct{ name xml.Name }

func (e *errMustUnderstand) Error() string {
	return "header block {" + e.name.Space + "}" + e.name.Local + " must be understood but is not supported"
}

// xtaCorePrefix starts every XTA core namespace; another version than NS is refused
// with a clear message instead of being ignored.
const xtaCorePrefix = "https://xoev.de/transport/xta/core/"

// envelope is a SOAP 1.2 envelope as far as XTA uses it, requests and answers.
type envelope struct {
	XMLName xml.Name
	Header  *xHeader
	Body    *xBody
}

// UnmarshalXML reads the Envelope's children as SOAP 1.2 (part 1, 5.1) has them: an
// optional env:Header, then exactly one env:Body, and nothing else. A Header after
// the Body, a second Header or Body, or another element is refused: the Bodies of
// such a message used to be merged.
func (e *envelope) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	e.XMLName = start.Name
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if e.Body == nil {
				return errors.New("the Envelope has no Body")
			}
			return nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return errors.New("text in the Envelope")
			}
		case xml.StartElement:
			switch {
			case t.Name == xml.Name{Space: NSSoap12, Local: "Header"} && e.Header == nil && e.Body == nil:
				err = d.DecodeElement(&e.Header, &t)
			case t.Name == xml.Name{Space: NSSoap12, Local: "Body"} && e.Body == nil:
				err = d.DecodeElement(&e.Body, &t)
			case t.Name == xml.Name{Space: NSSoap12, Local: "Header"} && e.Body != nil:
				return errors.New("a Header after the Body; the Header, if any, comes first")
			case t.Name.Space == NSSoap12 && (t.Name.Local == "Header" || t.Name.Local == "Body"):
				return fmt.Errorf("a second %s; an Envelope has at most one Header and exactly one Body", t.Name.Local)
			default:
				return fmt.Errorf("element {%s}%s in the Envelope, which holds only an optional Header and a Body", t.Name.Space, t.Name.Local)
			}
			if err != nil {
				return err
			}
		}
	}
}

// xBody is the SOAP Body with the elements XTA messages carry in it.
type xBody struct {
	MessageSelector       *xSelector  `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageSelector"`
	MessageFetch          *xFetch     `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageFetch"`
	ContentContainer      *xContainer `xml:"https://xoev.de/transport/xta/core/3.1.1 ContentContainer"`
	ContentContainerReply *struct {
		ContentContainer *xContainer `xml:"https://xoev.de/transport/xta/core/3.1.1 ContentContainer"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 ContentContainerReply"`
	LookupQuery *struct {
		LookupService []xLookupService `xml:"https://xoev.de/transport/xta/core/3.1.1 LookupService"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 LookupQuery"`
	XTAMessageID *xIDValue `xml:"https://xoev.de/transport/xta/core/3.1.1 XTAMessageID"`
	Fault        *xFault   `xml:"http://www.w3.org/2003/05/soap-envelope Fault"`
	Any          []xAny    `xml:",any"`
}

type xFault struct {
	Code struct {
		Value   string `xml:"http://www.w3.org/2003/05/soap-envelope Value"`
		Subcode *struct {
			Value string `xml:"http://www.w3.org/2003/05/soap-envelope Value"`
		} `xml:"http://www.w3.org/2003/05/soap-envelope Subcode"`
	} `xml:"http://www.w3.org/2003/05/soap-envelope Code"`
	Reason []string `xml:"http://www.w3.org/2003/05/soap-envelope Reason>Text"`
	Detail *struct {
		Inner []struct {
			XMLName   xml.Name
			ErrorCode xCode  `xml:"https://xoev.de/transport/xta/core/3.1.1 ErrorCode"`
			Detail    string `xml:"https://xoev.de/transport/xta/core/3.1.1 Detail"`
		} `xml:",any"`
	} `xml:"http://www.w3.org/2003/05/soap-envelope Detail"`
}

// bodyElements counts the child elements of the body (the known ones and the rest).
func (e *envelope) bodyElements() int {
	if e.Body == nil {
		return 0
	}
	b := e.Body
	n := len(b.Any)
	for _, present := range []bool{b.MessageSelector != nil, b.MessageFetch != nil, b.ContentContainer != nil,
		b.ContentContainerReply != nil, b.LookupQuery != nil, b.XTAMessageID != nil, b.Fault != nil} {
		if present {
			n++
		}
	}
	return n
}

// message is one parsed SOAP message: the envelope, the SOAP action the transport
// named and the MIME parts an MTOM message carried, by Content-ID.
type message struct {
	env    *envelope
	action string
	parts  map[string][]byte
}

// errVersion: the envelope is not SOAP 1.2. soap11 says it is SOAP 1.1.
type errVersion struct{ soap11 bool }

func (e *errVersion) Error() string {
	if e.soap11 {
		return "SOAP 1.1 envelope; this service speaks SOAP 1.2 only"
	}
	return "not a SOAP 1.2 envelope"
}

// errMalformed: the caller sent something that is not a well-formed SOAP message.
// msg goes back to the caller in its fault; log, if set, is what the gateway's log
// says instead (LogText).
type errMalformed struct{ msg, log string }

func (e *errMalformed) Error() string { return e.msg }

// LogText is the refusal without what the XML parser quoted of the request: the
// name of an entity after an unescaped "&" is the text that follows it ("Bescheid
// Müller &Quellenmeyer-Zyxw" gives "invalid character entity &Quellenmeyer-Zyxw"),
// and a value that does not decode is quoted whole — an applicant's name in a
// subject or a file name, which the log must not carry (docs/operations.md,
// "Personal data"). The caller has the whole text in its fault.
func (e *errMalformed) LogText() string {
	if e.log != "" {
		return e.log
	}
	return e.msg
}

func malformed(format string, a ...any) error { return &errMalformed{msg: fmt.Sprintf(format, a...)} }

// malformedQuoting is malformed for a refusal that quotes what the caller
// sent (a Content-ID, an href): some stacks make a part's Content-ID of its
// file name ("Personalausweis_<name>.pdf"), so the log gets "…" for each
// string or error argument, the caller its fault with them.
func malformedQuoting(format string, a ...any) error {
	elided := make([]any, len(a))
	for i, v := range a {
		switch v.(type) {
		case string, error:
			elided[i] = "…"
		default:
			elided[i] = v
		}
	}
	return &errMalformed{msg: fmt.Sprintf(format, a...), log: fmt.Sprintf(format, elided...)}
}

// malformedXML is malformed for an error of the XML decoder: what, then the
// decoder's words; the log gets what and the line only.
func malformedXML(what string, err error) error {
	m := &errMalformed{msg: what + ": " + err.Error(), log: what + " (the detail is in the fault sent to the caller)"}
	if se := (*xml.SyntaxError)(nil); errors.As(err, &se) {
		m.log = fmt.Sprintf("%s: XML syntax error on line %d (the detail is in the fault sent to the caller)", what, se.Line)
	}
	return m
}

// errTooLarge: the request (or one MTOM part) is above the limit.
type errTooLarge struct{ limit int64 }

func (e *errTooLarge) Error() string { return fmt.Sprintf("message exceeds %d bytes", e.limit) }

// parseMessage reads one SOAP message (plain SOAP 1.2 or MTOM/XOP multipart) from
// body with the given Content-Type, reading at most limit bytes in all.
func parseMessage(contentType string, body io.Reader, limit int64) (*message, error) {
	lr := &limitedReader{r: body, n: limit}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		if strings.TrimSpace(contentType) == "" {
			return nil, malformed("no Content-Type")
		}
		return nil, malformed("bad Content-Type: %v", err)
	}
	m := &message{action: params["action"]}
	var root []byte
	switch mt {
	case "application/soap+xml":
		root, err = io.ReadAll(lr)
		if err != nil {
			return nil, readErr(err, limit)
		}
	case "text/xml":
		// SOAP 1.1's media type: read it to answer with the right fault.
		root, err = io.ReadAll(lr)
		if err != nil {
			return nil, readErr(err, limit)
		}
	case "multipart/related":
		root, err = m.readMultipart(params, lr, limit)
		if err != nil {
			return nil, err
		}
	default:
		return nil, malformed("unsupported Content-Type %q", mt)
	}
	if err := m.decode(root); err != nil {
		return nil, err
	}
	if mt == "text/xml" && m.env.XMLName.Space == NSSoap12 {
		return nil, malformed("SOAP 1.2 envelope sent as text/xml; use application/soap+xml")
	}
	return m, nil
}

func readErr(err error, limit int64) error {
	if errors.Is(err, errLimit) {
		return &errTooLarge{limit}
	}
	if errors.Is(err, httpbody.ErrBusy) {
		return busyFault()
	}
	if httpbody.QuotesContent(err) {
		// A MIME header line that does not parse is quoted whole, and a
		// part's headers carry file names; so is a line after a part that
		// is no boundary, which may be anything the request holds.
		return malformedQuoting("reading the request: %v", err)
	}
	return malformed("reading the request: %v", err)
}

func (m *message) readMultipart(params map[string]string, r io.Reader, limit int64) ([]byte, error) {
	boundary := params["boundary"]
	if boundary == "" {
		return nil, malformed("multipart/related without boundary")
	}
	if t := params["type"]; t != "" && t != "application/xop+xml" && t != "application/soap+xml" {
		return nil, malformed("multipart/related of type %q; want application/xop+xml", t)
	}
	start := strings.Trim(params["start"], "<> ")
	if m.action == "" {
		if _, p, err := mime.ParseMediaType(params["start-info"]); err == nil {
			m.action = p["action"]
		}
	}
	mr := multipart.NewReader(r, boundary)
	m.parts = map[string][]byte{}
	var root []byte
	var rootSeen bool
	for i := 0; ; i++ {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, readErr(err, limit)
		}
		b, err := readPart(p)
		if err != nil {
			return nil, readErr(err, limit)
		}
		cid := strings.Trim(p.Header.Get("Content-Id"), "<> ")
		isRoot := !rootSeen && ((start != "" && cid == start) || (start == "" && i == 0))
		if isRoot {
			root, rootSeen = b, true
			if m.action == "" {
				m.action = actionOf(p.Header)
			}
			continue
		}
		if cid == "" {
			return nil, malformed("MIME part %d without Content-ID", i+1)
		}
		if _, dup := m.parts[cid]; dup {
			return nil, malformedQuoting("two MIME parts with Content-ID %q", cid)
		}
		m.parts[cid] = b
	}
	if !rootSeen {
		return nil, malformed("multipart/related without its root part")
	}
	return root, nil
}

func actionOf(h textproto.MIMEHeader) string {
	_, p, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return ""
	}
	if a := p["action"]; a != "" {
		return a
	}
	if _, p2, err := mime.ParseMediaType(p["type"]); err == nil {
		return p2["action"]
	}
	return ""
}

func readPart(p *multipart.Part) ([]byte, error) {
	defer p.Close()
	b, err := io.ReadAll(p)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding"))) {
	case "", "binary", "8bit", "7bit":
		return b, nil
	case "base64":
		return decodeBase64(string(b))
	default:
		return nil, malformed("unsupported Content-Transfer-Encoding %q", p.Header.Get("Content-Transfer-Encoding"))
	}
}

func (m *message) decode(root []byte) error {
	root, isUTF16, err := fromUTF16(root)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(root)) == 0 {
		return malformed("empty message")
	}
	mk := scanMarkup(root)
	if mk.dtd {
		return malformed("a DOCTYPE (document type declaration) is not allowed in a SOAP message")
	}
	if mk.pi {
		return malformed("a processing instruction is not allowed in a SOAP message")
	}
	if mk.elements > maxElements || mk.attributes > maxAttributes {
		return malformed("the message has more than %d elements or %d attributes", maxElements, maxAttributes)
	}
	// The root element alone decides the version, before the rest is decoded.
	d := xml.NewDecoder(bytes.NewReader(root))
	d.CharsetReader = func(label string, input io.Reader) (io.Reader, error) {
		if isUTF16Label(label) {
			if isUTF16 {
				return input, nil // read as UTF-16, now UTF-8
			}
			return nil, fmt.Errorf("encoding %q declared, but the message does not start with a UTF-16 byte order mark", label)
		}
		return nil, fmt.Errorf("encoding %q is not supported; send UTF-8 (or UTF-16)", label)
	}
	var start xml.StartElement
	for {
		tok, err := d.Token()
		if err != nil {
			return malformedXML("not XML", err)
		}
		if _, ok := tok.(xml.Directive); ok {
			return malformed("a DOCTYPE (document type declaration) is not allowed in a SOAP message")
		}
		if se, ok := tok.(xml.StartElement); ok {
			start = se
			break
		}
	}
	switch {
	case start.Name.Space == NSSoap11 && start.Name.Local == "Envelope":
		return &errVersion{soap11: true}
	case start.Name.Space != NSSoap12 || start.Name.Local != "Envelope":
		return &errVersion{}
	}
	env := &envelope{}
	if err := d.DecodeElement(env, &start); err != nil {
		if dup := (*errDuplicateHeader)(nil); errors.As(err, &dup) {
			return dup
		}
		return malformedXML("malformed SOAP envelope", err)
	}
	// Nothing but whitespace and comments may follow (scanMarkup refused PIs).
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return malformedXML("after the envelope", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return malformed("text after the envelope")
			}
		case xml.Comment, xml.ProcInst:
		default:
			return malformed("content after the envelope")
		}
	}
	if env.Body == nil {
		return malformed("SOAP envelope without Body")
	}
	if env.Header != nil {
		for _, h := range env.Header.Any {
			if strings.HasPrefix(h.XMLName.Space, xtaCorePrefix) && h.XMLName.Space != NS {
				return malformed("XTA namespace %s is not supported; use %s (XTA 2 Version 5)", h.XMLName.Space, NS)
			}
			if h.mustUnderstand() && h.XMLName.Space != NSWSA {
				return &errMustUnderstand{h.XMLName}
			}
		}
	}
	for _, b := range env.Body.Any {
		if strings.HasPrefix(b.XMLName.Space, xtaCorePrefix) && b.XMLName.Space != NS {
			return malformed("XTA namespace %s is not supported; use %s (XTA 2 Version 5)", b.XMLName.Space, NS)
		}
	}
	m.env = env
	return nil
}

// fromUTF16 returns a message in UTF-16 as UTF-8, and reports that it was UTF-16;
// other messages come back as they are. XML 1.0 (4.3.3) asks every processor to
// read UTF-16 as well as UTF-8; a UTF-16 message is known by its byte order mark,
// or, without one, by its first character '<' (XML 1.0, appendix F).
func fromUTF16(b []byte) ([]byte, bool, error) {
	var order binary.ByteOrder
	switch {
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}):
		order, b = binary.LittleEndian, b[2:]
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		order, b = binary.BigEndian, b[2:]
	case bytes.HasPrefix(b, []byte{'<', 0}):
		order = binary.LittleEndian
	case bytes.HasPrefix(b, []byte{0, '<'}):
		order = binary.BigEndian
	default:
		return b, false, nil
	}
	if len(b)%2 != 0 {
		return nil, true, malformed("a UTF-16 message of an odd number of bytes")
	}
	out := make([]byte, 0, len(b)/2+len(b)/8)
	for i := 0; i < len(b); i += 2 {
		r := rune(order.Uint16(b[i:]))
		if utf16.IsSurrogate(r) {
			if i+3 >= len(b) {
				return nil, true, malformed("a UTF-16 message ends inside a surrogate pair")
			}
			r = utf16.DecodeRune(r, rune(order.Uint16(b[i+2:])))
			if r == utf8.RuneError {
				return nil, true, malformed("invalid UTF-16 surrogate pair at byte %d", i)
			}
			i += 2
		}
		out = utf8.AppendRune(out, r)
	}
	return out, true, nil
}

func isUTF16Label(label string) bool {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-16", "utf-16le", "utf-16be", "utf16":
		return true
	}
	return false
}

// Bounds on the markup of one message (requests, and the answers of offices'
// readers). encoding/xml builds a value for every child of the Body and every
// attribute of a header block, and tokenizes every element: a 64 MiB request of
// "<a/>" held 1.4 GiB and took 37 s of CPU to decode. The biggest message the
// service reads, getStatusList with 1000 XTAMessageIDs, has about 1,000 elements;
// a sendMessage one per attachment more than its metadata's few dozen.
const (
	maxElements   = 10_000
	maxAttributes = 20_000
)

// markup is what scanMarkup found in a message.
type markup struct {
	dtd, pi              bool
	elements, attributes int
}

// scanMarkup reports whether the message holds a document type declaration, or
// any markup declaration (<!DOCTYPE, <!ENTITY, …), and whether it holds a
// processing instruction (the XML declaration is none), wherever they are. SOAP
// 1.2 (part 1, 5) forbids a DTD in a SOAP message, and says a receiver SHOULD
// answer a processing instruction with an env:Sender fault; encoding/xml skips
// those inside an element without a word. It counts the elements and attributes
// as well (internal/xmlscan, the verifier's pre-count too), and stops once either
// is above its bound.
func scanMarkup(b []byte) markup {
	c := xmlscan.Scan(b, func(c xmlscan.Counts) bool { return c.Elements > maxElements || c.Attributes > maxAttributes })
	return markup{dtd: c.Declaration, pi: c.PI, elements: c.Elements, attributes: c.Attributes}
}

// content returns the bytes of a ContentType element: its base64 text or the MIME
// part its xop:Include names.
func (m *message) content(c *xContent) ([]byte, error) {
	if len(c.Other) > 0 {
		return nil, malformed("a content element holds the element %s; its content is base64 (or one xop:Include): encode an XML document as base64", qname(c.Other[0].XMLName))
	}
	if c.Include != nil {
		href := c.Include.Href
		if !strings.HasPrefix(href, "cid:") {
			return nil, malformedQuoting("xop:Include href %q is not a cid: URL", href)
		}
		cid, err := url.PathUnescape(strings.TrimPrefix(href, "cid:"))
		if err != nil {
			return nil, malformedQuoting("xop:Include href %q: %v", href, err)
		}
		b, ok := m.parts[cid]
		if !ok {
			return nil, malformedQuoting("xop:Include names part %q, which the message does not carry", cid)
		}
		if strings.TrimSpace(c.Text) != "" {
			return nil, malformed("content element with both text and xop:Include")
		}
		return b, nil
	}
	return decodeBase64(c.Text)
}

func decodeBase64(s string) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(clean)
	if err != nil {
		return nil, malformed("content is not base64: %v", err)
	}
	return b, nil
}

// parseTime reads an xs:dateTime. One without a zone is German legal time
// (Europe/Berlin, MEZ or MESZ): XML Schema leaves such a time's zone open, and
// the Fachverfahren sending it runs in a German office — a Java client's
// LocalDateTime, say, goes out without one. Read as UTC (until 2026-12-07) a
// window from 10:00 began at 11:00 MEZ, 12:00 MESZ, and a poll from its last
// poll's local time left out for good what entered the box in between. In the
// hour the clocks go back, a zone-less time names the earlier of its two
// instants (a window's start then takes more, not less).
// "24:00:00" is the end of its day, the next day's 00:00:00 (XML Schema 1.0,
// 3.2.7): a selector for a whole day up to T24:00:00 was refused (an audit).
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if day, rest, ok := strings.Cut(s, "T24:00:00"); ok {
		if strings.HasPrefix(rest, ".") {
			rest = strings.TrimLeft(rest[1:], "0") // T24:00:00.000: only zeros may follow
		}
		if rest == "" || !strings.ContainsAny(rest[:1], "0123456789") {
			if d, err := parseTime(day + "T00:00:00" + rest); err == nil {
				return d.AddDate(0, 0, 1), nil
			}
		}
		return time.Time{}, fmt.Errorf("%q is not an xs:dateTime", s)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, german.Berlin); err == nil {
			// Go takes the later instant of a wall time that occurs twice.
			if e := t.Add(-time.Hour); e.In(german.Berlin).Format(time.DateTime) == t.In(german.Berlin).Format(time.DateTime) {
				return e, nil
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an xs:dateTime", s)
}

var errLimit = errors.New("limit reached")

// limitedReader fails with errLimit once more than n bytes were asked for, unlike
// io.LimitReader, which ends silently and would truncate a message unnoticed.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, errLimit
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return n, errLimit
	}
	return n, err
}

// qname writes an element name for a fault: {namespace}local, or local alone.
func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return "{" + n.Space + "}" + n.Local
}
