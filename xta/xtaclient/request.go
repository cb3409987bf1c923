package xtaclient

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
)

// Namespaces, paths and port types of XTA 2 Version 5.
const (
	NS       = "https://xoev.de/transport/xta/core/3.1.1"
	NSSoap12 = "http://www.w3.org/2003/05/soap-envelope"
	NSWSA    = "http://www.w3.org/2005/08/addressing"
	NSXOP    = "http://www.w3.org/2004/08/xop/include"

	// ActionBase prefixes every SOAP action: ActionBase + "<porttype>/<operation>".
	ActionBase = "https://xoev.de/transport/xta/core/"

	// ListDirectory is the code list of Party/Directory.
	ListDirectory = "urn:xoev-de:kosit:codeliste:xta.core.directory"

	PortRecipient     = "core.recipient"
	PortSender        = "core.sender"
	PortTransportBase = "core.transport.base"

	// The port paths of the KoSIT XTA 2 test environment (and of amtsbote).
	PathRecipient     = "/services/XTACore/Recipient"
	PathSender        = "/services/XTACore/Sender"
	PathTransportBase = "/services/XTACore/TransportBase"
)

// Action is the SOAP action of an operation of a port type.
func Action(port, op string) string { return ActionBase + port + "/" + op }

// PathOf is the path of a port type's endpoint ("" for an unknown port).
func PathOf(port string) string {
	switch port {
	case PortRecipient:
		return PathRecipient
	case PortSender:
		return PathSender
	case PortTransportBase:
		return PathTransportBase
	}
	return ""
}

// ContentType is the HTTP Content-Type of a plain SOAP 1.2 request with the action.
func ContentType(action string) string {
	if action == "" {
		return "application/soap+xml; charset=utf-8"
	}
	return mime.FormatMediaType("application/soap+xml", map[string]string{"charset": "utf-8", "action": action})
}

// Party names an XTA account (the Party header, a Reader, an Author).
type Party struct {
	Identifier string // e.g. the DVDV organisation key "dvdv:14612000bau"
	Scheme     string // identifierScheme, e.g. "xoev"
	Name       string // name
	Category   string // organizationCategory
	Directory  string // Directory code, e.g. "DVDV"; "" leaves Directory out
}

// String is scheme:identifier, as logs show it.
func (p Party) String() string {
	if p.Scheme == "" {
		return p.Identifier
	}
	return p.Scheme + ":" + p.Identifier
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func attr(name, v string) string {
	if v == "" {
		return ""
	}
	return " " + name + `="` + esc(v) + `"`
}

// partyContent is the content of a PartyType: Identifier and Directory.
func partyContent(p Party, indent string) string {
	s := indent + `<ns:Identifier` + attr("identifierScheme", p.Scheme) + attr("name", p.Name) +
		attr("organizationCategory", p.Category) + `>` + esc(p.Identifier) + `</ns:Identifier>`
	if p.Directory != "" {
		s += indent + `<ns:Directory listURI="` + ListDirectory + `" listVersionID="1.0">` +
			indent + `   <code>` + esc(p.Directory) + `</code>` + indent + `</ns:Directory>`
	}
	return s
}

// PartyXML writes the Party header block of an account.
func PartyXML(p Party) string {
	return "\n      <ns:Party>" + partyContent(p, "\n         ") + "\n      </ns:Party>"
}

// Envelope writes a request the way the KoSIT SoapUI project does: prefixes soap
// and ns, the Party header, then extraHeader (e.g. MessageMetaData) and the body.
func Envelope(party Party, extraHeader, body string) []byte {
	return []byte(`<soap:Envelope xmlns:soap="` + NSSoap12 + `" xmlns:ns="` + NS + `">
   <soap:Header>` + PartyXML(party) + extraHeader + `
   </soap:Header>
   <soap:Body>` + body + `
   </soap:Body>
</soap:Envelope>`)
}

// FetchBody is the MessageFetch body of getMessage and close.
func FetchBody(xtaID string) string {
	return `
      <ns:MessageFetch>
         <ns:XTAMessageID id="fetch-1">` + esc(xtaID) + `</ns:XTAMessageID>
      </ns:MessageFetch>`
}

// Query selects messages for getStatusList: by ids, or by the other criteria.
type Query struct {
	IDs         []string // XTAMessageIDs; when set the other fields are not sent
	NewEntry    bool     // only messages not yet fetched with getMessage
	MaxMessages int      // 0: the server's default
	From, To    time.Time
}

// SelectorBody is the MessageSelector body of getStatusList.
func SelectorBody(q Query) string {
	var b strings.Builder
	b.WriteString("\n      <ns:MessageSelector>")
	if len(q.IDs) > 0 {
		b.WriteString("\n         <ns:XTAMessageIDs>")
		for i, id := range q.IDs {
			fmt.Fprintf(&b, "\n            <ns:XTAMessageID id=\"sel-%d\">%s</ns:XTAMessageID>", i+1, esc(id))
		}
		b.WriteString("\n         </ns:XTAMessageIDs>")
	} else {
		b.WriteString("\n         <ns:OtherCriteria>")
		b.WriteString("\n            <ns:NewEntry>" + strconv.FormatBool(q.NewEntry) + "</ns:NewEntry>")
		if q.MaxMessages > 0 {
			b.WriteString("\n            <ns:MaxMessages>" + strconv.Itoa(q.MaxMessages) + "</ns:MaxMessages>")
		}
		if !q.From.IsZero() {
			b.WriteString("\n            <ns:MessageBoxEntryTimeFrom>" + xsTime(q.From) + "</ns:MessageBoxEntryTimeFrom>")
		}
		if !q.To.IsZero() {
			b.WriteString("\n            <ns:MessageBoxEntryTimeTo>" + xsTime(q.To) + "</ns:MessageBoxEntryTimeTo>")
		}
		b.WriteString("\n         </ns:OtherCriteria>")
	}
	b.WriteString("\n      </ns:MessageSelector>")
	return b.String()
}

// ReportBody is the XTAMessageID body of getTransportReport.
func ReportBody(xtaID string) string {
	return "\n      <ns:XTAMessageID id=\"report-1\">" + esc(xtaID) + "</ns:XTAMessageID>"
}

// Lookup asks whether a reader takes a service (lookupService).
type Lookup struct {
	Reader  Party
	Service string // URI; "" leaves it out
}

// LookupBody is the LookupQuery body of lookupService.
func LookupBody(ls []Lookup) string {
	var b strings.Builder
	b.WriteString("\n      <ns:LookupQuery>")
	for _, l := range ls {
		b.WriteString("\n         <ns:LookupService>\n            <ns:Reader>" + partyContent(l.Reader, "\n               ") + "\n            </ns:Reader>")
		if l.Service != "" {
			b.WriteString("\n            <ns:Service>" + esc(l.Service) + "</ns:Service>")
		}
		b.WriteString("\n         </ns:LookupService>")
	}
	b.WriteString("\n      </ns:LookupQuery>")
	return b.String()
}

// Property is one MessageProperty (key and value).
type Property struct{ Key, Value string }

// MetaData is a MessageMetaData: what a message is, who wrote it, for whom.
type MetaData struct {
	XTAMessageID string
	Reader       Party
	Author       Party
	Sender       Party // optional
	// Qualifier.
	Service          string // URI, optional
	BusinessScenario string // written as Undefined unless ScenarioListURI is set
	ScenarioListURI  string
	ScenarioVersion  string
	MessageType      string
	MessageSchema    string // URI of the message's schema
	MessageSize      int64
	// DeliveryAttributes.
	Origin, InitialSend, Delivery, InitialFetch, Reception time.Time
	ServiceQuality                                         string // Undefined text; default "standard"
	Properties                                             []Property
}

// Property returns the value of the first MessageProperty with the key ("" if none).
func (m MetaData) Property(key string) string {
	for _, p := range m.Properties {
		if p.Key == key {
			return p.Value
		}
	}
	return ""
}

func xsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// MetaDataXML writes m as the MessageMetaData header block of sendMessage. The
// elements the schema requires are written even when m leaves them empty
// (MessageSize at least 1, Origin now, ServiceQuality "standard").
func MetaDataXML(m MetaData) string {
	var b strings.Builder
	in := "\n         "
	b.WriteString("\n      <ns:MessageMetaData>")
	b.WriteString(in + `<ns:XTAMessageID id="md-mid">` + esc(m.XTAMessageID) + `</ns:XTAMessageID>`)
	b.WriteString(in + `<ns:Reader id="md-reader">` + partyContent(m.Reader, in+"   ") + in + `</ns:Reader>`)
	b.WriteString(in + `<ns:Originators>`)
	b.WriteString(in + `   <ns:Author id="md-author">` + partyContent(m.Author, in+"      ") + in + `   </ns:Author>`)
	if m.Sender.Identifier != "" {
		b.WriteString(in + `   <ns:Sender id="md-sender">` + partyContent(m.Sender, in+"      ") + in + `   </ns:Sender>`)
	}
	b.WriteString(in + `</ns:Originators>`)
	b.WriteString(in + `<ns:Qualifier id="md-qualifier">`)
	if m.Service != "" {
		b.WriteString(in + `   <ns:Service>` + esc(m.Service) + `</ns:Service>`)
	}
	b.WriteString(in + `   <ns:BusinessScenario>`)
	if m.ScenarioListURI != "" {
		b.WriteString(in + `      <ns:Defined listURI="` + esc(m.ScenarioListURI) + `" listVersionID="` + esc(m.ScenarioVersion) + `"><code>` + esc(m.BusinessScenario) + `</code></ns:Defined>`)
	} else {
		b.WriteString(in + `      <ns:Undefined>` + esc(m.BusinessScenario) + `</ns:Undefined>`)
	}
	b.WriteString(in + `   </ns:BusinessScenario>`)
	b.WriteString(in + `   <ns:MessageType messageSchema="` + esc(m.MessageSchema) + `">` + esc(m.MessageType) + `</ns:MessageType>`)
	b.WriteString(in + `</ns:Qualifier>`)
	b.WriteString(in + `<ns:MessageSize>` + strconv.FormatInt(max(m.MessageSize, 1), 10) + `</ns:MessageSize>`)
	origin := m.Origin
	if origin.IsZero() {
		origin = time.Now()
	}
	b.WriteString(in + `<ns:DeliveryAttributes>`)
	for _, t := range []struct {
		name string
		at   time.Time
	}{{"Origin", origin}, {"InitialSend", m.InitialSend}, {"Delivery", m.Delivery}, {"InitialFetch", m.InitialFetch}, {"Reception", m.Reception}} {
		if !t.at.IsZero() {
			b.WriteString(in + `   <ns:` + t.name + ` id="md-` + strings.ToLower(t.name) + `">` + xsTime(t.at) + `</ns:` + t.name + `>`)
		}
	}
	b.WriteString(in + `</ns:DeliveryAttributes>`)
	sq := m.ServiceQuality
	if sq == "" {
		sq = "standard"
	}
	b.WriteString(in + `<ns:ServiceQuality id="md-quality">` + in + `   <ns:Undefined>` + esc(sq) + `</ns:Undefined>` + in + `</ns:ServiceQuality>`)
	for i, p := range m.Properties {
		fmt.Fprintf(&b, "%s<ns:MessageProperty id=\"md-prop%d\">%s   <ns:Key>%s</ns:Key>%s   <ns:Value>%s</ns:Value>%s</ns:MessageProperty>",
			in, i+1, in, esc(p.Key), in, esc(p.Value), in)
	}
	b.WriteString("\n      </ns:MessageMetaData>")
	return b.String()
}

// Content is one content element of a ContentContainer (Message or Attachment).
type Content struct {
	ContentType string // MIME type
	Encoding    string // character set, for text
	Filename    string
	ID          string // xs:ID of the element; default set by the writer
	Size        int64  // the size attribute (0: not given)
	Data        []byte
	// XOP reports that the content travelled as an MTOM/XOP part (answers only).
	XOP bool
}

// part is an XOP part of a request being written.
type part struct {
	cid, contentType string
	data             []byte
}

// containerXML writes a ContentContainer; content above threshold (threshold >= 0)
// goes into parts as xop:Include.
func containerXML(msg Content, atts []Content, threshold int64, parts *[]part) string {
	var b strings.Builder
	b.WriteString("\n      <ns:ContentContainer>")
	write := func(elem string, c Content, id string) {
		if c.ID != "" {
			id = c.ID
		}
		size := ""
		if len(c.Data) > 0 {
			size = strconv.Itoa(len(c.Data))
		}
		b.WriteString("\n         <ns:" + elem + attr("contentType", c.ContentType) + attr("encoding", c.Encoding) +
			attr("filename", c.Filename) + attr("id", id) + attr("size", size) + ">")
		if threshold >= 0 && int64(len(c.Data)) > threshold {
			cid := id + "@xtaclient"
			*parts = append(*parts, part{cid: cid, contentType: c.ContentType, data: c.Data})
			b.WriteString(`<xop:Include xmlns:xop="` + NSXOP + `" href="cid:` + esc(cid) + `"/>`)
		} else {
			b.WriteString(base64.StdEncoding.EncodeToString(c.Data))
		}
		b.WriteString("</ns:" + elem + ">")
	}
	write("Message", msg, "message")
	for i, a := range atts {
		write("Attachment", a, fmt.Sprintf("attachment-%d", i+1))
	}
	b.WriteString("\n      </ns:ContentContainer>")
	return b.String()
}
