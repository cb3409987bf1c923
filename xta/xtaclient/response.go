package xtaclient

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Response is one answer of the service as received: the root XML, the XOP parts
// and the parsed envelope.
type Response struct {
	Status      int               // HTTP status
	ContentType string            // HTTP Content-Type
	Root        []byte            // the SOAP envelope (the root part of an MTOM answer)
	Parts       map[string][]byte // MTOM/XOP parts by Content-ID (without <>)
	Fault       *Fault            // set when the answer is a SOAP fault
	env         *xEnvelope
}

// Exception names (the element in a fault's Detail).
const (
	PermissionDenied      = "PermissionDeniedException"
	InvalidMessageID      = "InvalidMessageIDException"
	ParameterIsNotValid   = "ParameterIsNotValidException"
	UnsupportedExtension  = "UnsupportedExtensionException"
	NotImplemented        = "NotImplementedException"
	TechnicalProblem      = "TechnicalProblemException"
	SyncTimeout           = "SyncTimeoutException"
	MessageSchemaViolated = "MessageSchemaViolationException"
)

// Fault is a SOAP 1.2 fault of the service, with the XTA exception it carries.
type Fault struct {
	HTTPStatus int
	Code       string // local name of Code/Value: Sender, Receiver, VersionMismatch, MustUnderstand
	Reason     string
	Exception  string // e.g. PermissionDeniedException; "" for a fault without one
	ErrorCode  string // ErrorCode/code
	Detail     string // the exception's Detail text
}

func (f *Fault) Error() string {
	s := "xta fault " + f.Code
	if f.Exception != "" {
		s += " " + f.Exception
	}
	if f.ErrorCode != "" {
		s += " (" + f.ErrorCode + ")"
	}
	if d := firstNonEmpty(f.Detail, f.Reason); d != "" {
		s += ": " + d
	}
	return s
}

// IsException reports whether err is a Fault carrying the named XTA exception.
func IsException(err error, exception string) bool {
	var f *Fault
	return errors.As(err, &f) && f.Exception == exception
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ---- the shapes read from answers ----

type xParty struct {
	Identifier struct {
		Value    string `xml:",chardata"`
		Scheme   string `xml:"identifierScheme,attr"`
		Name     string `xml:"name,attr"`
		Category string `xml:"organizationCategory,attr"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 Identifier"`
	Directory *struct {
		Code string `xml:"code"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 Directory"`
}

func (p *xParty) party() Party {
	if p == nil {
		return Party{}
	}
	out := Party{Identifier: strings.TrimSpace(p.Identifier.Value), Scheme: p.Identifier.Scheme, Name: p.Identifier.Name, Category: p.Identifier.Category}
	if p.Directory != nil {
		out.Directory = strings.TrimSpace(p.Directory.Code)
	}
	return out
}

type xMeta struct {
	XTAMessageID string  `xml:"https://xoev.de/transport/xta/core/3.1.1 XTAMessageID"`
	Reader       *xParty `xml:"https://xoev.de/transport/xta/core/3.1.1 Reader"`
	Originators  struct {
		Author *xParty `xml:"https://xoev.de/transport/xta/core/3.1.1 Author"`
		Sender *xParty `xml:"https://xoev.de/transport/xta/core/3.1.1 Sender"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 Originators"`
	Qualifier struct {
		Service          string `xml:"https://xoev.de/transport/xta/core/3.1.1 Service"`
		BusinessScenario struct {
			Defined *struct {
				ListURI string `xml:"listURI,attr"`
				Version string `xml:"listVersionID,attr"`
				Code    string `xml:"code"`
			} `xml:"https://xoev.de/transport/xta/core/3.1.1 Defined"`
			Undefined string `xml:"https://xoev.de/transport/xta/core/3.1.1 Undefined"`
		} `xml:"https://xoev.de/transport/xta/core/3.1.1 BusinessScenario"`
		MessageType struct {
			Value  string `xml:",chardata"`
			Schema string `xml:"messageSchema,attr"`
		} `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageType"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 Qualifier"`
	MessageSize        string `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageSize"`
	DeliveryAttributes struct {
		Origin       string `xml:"https://xoev.de/transport/xta/core/3.1.1 Origin"`
		InitialSend  string `xml:"https://xoev.de/transport/xta/core/3.1.1 InitialSend"`
		Delivery     string `xml:"https://xoev.de/transport/xta/core/3.1.1 Delivery"`
		InitialFetch string `xml:"https://xoev.de/transport/xta/core/3.1.1 InitialFetch"`
		Reception    string `xml:"https://xoev.de/transport/xta/core/3.1.1 Reception"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 DeliveryAttributes"`
	ServiceQuality struct {
		Undefined string `xml:"https://xoev.de/transport/xta/core/3.1.1 Undefined"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 ServiceQuality"`
	MessageProperty []struct {
		Key   string `xml:"https://xoev.de/transport/xta/core/3.1.1 Key"`
		Value string `xml:"https://xoev.de/transport/xta/core/3.1.1 Value"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageProperty"`
}

func parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

func (x *xMeta) meta() MetaData {
	m := MetaData{
		XTAMessageID: strings.TrimSpace(x.XTAMessageID), Reader: x.Reader.party(),
		Author: x.Originators.Author.party(), Sender: x.Originators.Sender.party(),
		Service:     strings.TrimSpace(x.Qualifier.Service),
		MessageType: strings.TrimSpace(x.Qualifier.MessageType.Value), MessageSchema: x.Qualifier.MessageType.Schema,
		Origin: parseTime(x.DeliveryAttributes.Origin), InitialSend: parseTime(x.DeliveryAttributes.InitialSend),
		Delivery: parseTime(x.DeliveryAttributes.Delivery), InitialFetch: parseTime(x.DeliveryAttributes.InitialFetch),
		Reception: parseTime(x.DeliveryAttributes.Reception), ServiceQuality: strings.TrimSpace(x.ServiceQuality.Undefined),
	}
	if d := x.Qualifier.BusinessScenario.Defined; d != nil {
		m.BusinessScenario, m.ScenarioListURI, m.ScenarioVersion = strings.TrimSpace(d.Code), d.ListURI, d.Version
	} else {
		m.BusinessScenario = strings.TrimSpace(x.Qualifier.BusinessScenario.Undefined)
	}
	m.MessageSize, _ = strconv.ParseInt(strings.TrimSpace(x.MessageSize), 10, 64)
	for _, p := range x.MessageProperty {
		m.Properties = append(m.Properties, Property{Key: strings.TrimSpace(p.Key), Value: strings.TrimSpace(p.Value)})
	}
	return m
}

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
}

type xContainer struct {
	Message    *xContent  `xml:"https://xoev.de/transport/xta/core/3.1.1 Message"`
	Attachment []xContent `xml:"https://xoev.de/transport/xta/core/3.1.1 Attachment"`
}

type xBoxStatus struct {
	MessagesRemaining struct {
		NoMessageAvailable *string `xml:"https://xoev.de/transport/xta/core/3.1.1 NoMessageAvailable"`
		MessagesPending    *string `xml:"https://xoev.de/transport/xta/core/3.1.1 MessagesPending"`
	} `xml:"https://xoev.de/transport/xta/core/3.1.1 MessagesRemaining"`
}

type xEnvelope struct {
	XMLName xml.Name
	Header  struct {
		MessageBoxStatus *xBoxStatus `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageBoxStatus"`
		MessageMetaData  *xMeta      `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageMetaData"`
		RelatesTo        string      `xml:"http://www.w3.org/2005/08/addressing RelatesTo"`
	} `xml:"http://www.w3.org/2003/05/soap-envelope Header"`
	Body struct {
		MessageStatusList *struct {
			MessageMetaData []xMeta `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageMetaData"`
		} `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageStatusList"`
		ContentContainer *xContainer `xml:"https://xoev.de/transport/xta/core/3.1.1 ContentContainer"`
		XTAMessageID     *string     `xml:"https://xoev.de/transport/xta/core/3.1.1 XTAMessageID"`
		LookupStatus     *struct {
			Results []struct {
				Reader    *xParty `xml:"https://xoev.de/transport/xta/core/3.1.1 Reader"`
				Service   string  `xml:"https://xoev.de/transport/xta/core/3.1.1 Service"`
				Available string  `xml:"https://xoev.de/transport/xta/core/3.1.1 IsServiceAvailableValue>ServiceIsAvailable"`
			} `xml:"https://xoev.de/transport/xta/core/3.1.1 LookupServiceResult"`
		} `xml:"https://xoev.de/transport/xta/core/3.1.1 LookupStatus"`
		ReportResult *struct {
			TransportReport struct {
				ReportTime     string `xml:"https://xoev.de/transport/xta/core/3.1.1 ReportTime"`
				ServerIdentity string `xml:"https://xoev.de/transport/xta/core/3.1.1 XTAServerIdentity"`
				Status         string `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageStatus>Status"`
				MetaData       xMeta  `xml:"https://xoev.de/transport/xta/core/3.1.1 MessageMetaData"`
			} `xml:"https://xoev.de/transport/xta/core/3.1.1 TransportReport"`
		} `xml:"https://xoev.de/transport/xta/core/3.1.1 ReportResult"`
		Fault *struct {
			Code   string   `xml:"http://www.w3.org/2003/05/soap-envelope Code>Value"`
			Reason []string `xml:"http://www.w3.org/2003/05/soap-envelope Reason>Text"`
			Detail *struct {
				Inner []struct {
					XMLName   xml.Name
					ErrorCode struct {
						Code string `xml:"code"`
					} `xml:"https://xoev.de/transport/xta/core/3.1.1 ErrorCode"`
					Detail string `xml:"https://xoev.de/transport/xta/core/3.1.1 Detail"`
				} `xml:",any"`
			} `xml:"http://www.w3.org/2003/05/soap-envelope Detail"`
		} `xml:"http://www.w3.org/2003/05/soap-envelope Fault"`
	} `xml:"http://www.w3.org/2003/05/soap-envelope Body"`
}

// parseResponse reads an HTTP answer body into a Response.
func parseResponse(status int, contentType string, body []byte) (*Response, error) {
	r := &Response{Status: status, ContentType: contentType}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return r, fmt.Errorf("xtaclient: HTTP %d with Content-Type %q: %v", status, contentType, err)
	}
	switch mt {
	case "application/soap+xml":
		r.Root = body
	case "multipart/related":
		if r.Root, r.Parts, err = splitMultipart(params, body); err != nil {
			return r, err
		}
	default:
		return r, fmt.Errorf("xtaclient: HTTP %d with Content-Type %q is no SOAP 1.2 answer: %.200s", status, mt, body)
	}
	env := &xEnvelope{}
	if err := xml.Unmarshal(r.Root, env); err != nil {
		return r, fmt.Errorf("xtaclient: HTTP %d: the answer is not XML: %v", status, err)
	}
	if env.XMLName.Space != NSSoap12 || env.XMLName.Local != "Envelope" {
		return r, fmt.Errorf("xtaclient: HTTP %d: the answer is no SOAP 1.2 envelope ({%s}%s)", status, env.XMLName.Space, env.XMLName.Local)
	}
	r.env = env
	if f := env.Body.Fault; f != nil {
		r.Fault = &Fault{HTTPStatus: status, Code: localName(f.Code), Reason: strings.Join(f.Reason, " ")}
		if f.Detail != nil && len(f.Detail.Inner) > 0 {
			in := f.Detail.Inner[0]
			r.Fault.Exception, r.Fault.ErrorCode, r.Fault.Detail = in.XMLName.Local, strings.TrimSpace(in.ErrorCode.Code), strings.TrimSpace(in.Detail)
		}
	} else if status/100 != 2 {
		return r, fmt.Errorf("xtaclient: HTTP %d without a SOAP fault", status)
	}
	return r, nil
}

func localName(qname string) string {
	qname = strings.TrimSpace(qname)
	if i := strings.LastIndexByte(qname, ':'); i >= 0 {
		return qname[i+1:]
	}
	return qname
}

// splitMultipart reads an MTOM answer into its root part and the XOP parts.
func splitMultipart(params map[string]string, body []byte) ([]byte, map[string][]byte, error) {
	boundary := params["boundary"]
	if boundary == "" {
		return nil, nil, errors.New("xtaclient: multipart/related answer without boundary")
	}
	start := strings.Trim(params["start"], "<> ")
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	parts := map[string][]byte{}
	var root []byte
	for i := 0; ; i++ {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("xtaclient: MTOM answer: %w", err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, nil, fmt.Errorf("xtaclient: MTOM answer: %w", err)
		}
		if strings.EqualFold(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding")), "base64") {
			if b, err = decodeBase64(string(b)); err != nil {
				return nil, nil, err
			}
		}
		cid := strings.Trim(p.Header.Get("Content-Id"), "<> ")
		if root == nil && ((start != "" && cid == start) || (start == "" && i == 0)) {
			root = b
			continue
		}
		parts[cid] = b
	}
	if root == nil {
		return nil, nil, errors.New("xtaclient: MTOM answer without its root part")
	}
	return root, parts, nil
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
		return nil, fmt.Errorf("xtaclient: content is not base64: %w", err)
	}
	return b, nil
}

// content decodes a content element: inline base64 or the XOP part it names.
func (r *Response) content(x *xContent) (Content, error) {
	c := Content{ContentType: x.ContentType, Encoding: x.Encoding, Filename: x.Filename, ID: x.ID}
	c.Size, _ = strconv.ParseInt(strings.TrimSpace(x.Size), 10, 64)
	if x.Include != nil {
		href := x.Include.Href
		cid, err := url.PathUnescape(strings.TrimPrefix(href, "cid:"))
		if err != nil || !strings.HasPrefix(href, "cid:") {
			return c, fmt.Errorf("xtaclient: xop:Include href %q is not a cid: URL", href)
		}
		b, ok := r.Parts[cid]
		if !ok {
			return c, fmt.Errorf("xtaclient: xop:Include names part %q, which the answer does not carry", cid)
		}
		c.Data, c.XOP = b, true
	} else {
		b, err := decodeBase64(x.Text)
		if err != nil {
			return c, err
		}
		c.Data = b
	}
	if c.Size > 0 && int64(len(c.Data)) != c.Size {
		return c, fmt.Errorf("xtaclient: %s: %d bytes, the size attribute says %d", firstNonEmpty(c.Filename, c.ID, "content"), len(c.Data), c.Size)
	}
	return c, nil
}

// RelatesTo is the wsa:RelatesTo header of the answer ("" if none).
func (r *Response) RelatesTo() string {
	if r.env == nil {
		return ""
	}
	return strings.TrimSpace(r.env.Header.RelatesTo)
}
