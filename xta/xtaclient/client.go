package xtaclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Options configure a Client.
type Options struct {
	// BaseURL is where the ports live: the scheme, host and port of the XTA
	// listener, optionally with the path /services/XTACore/ (which is added when
	// missing), e.g. "https://xta.example:8443/services/XTACore/".
	BaseURL string
	// Party is the office's account: the Party header of every call.
	Party Party
	// TLS carries the client certificate and the roots that verify the server.
	// Ignored when HTTPClient is set.
	TLS *tls.Config
	// HTTPClient replaces the client built from TLS.
	HTTPClient *http.Client
	// Timeout bounds one call; default 2 minutes.
	Timeout time.Duration
	// MTOMThreshold: content above this many bytes is sent as an MTOM/XOP part,
	// smaller content inline as base64; default 64 KiB; negative: always inline.
	MTOMThreshold int64
	// MaxResponseBytes bounds one answer, MTOM parts included; default 256 MiB.
	MaxResponseBytes int64
}

// Client calls the XTA ports of one service as one account. It is safe for
// concurrent use.
type Client struct {
	o    Options
	base *url.URL
	http *http.Client
}

// New checks the options and returns a client.
func New(o Options) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(o.BaseURL))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("xtaclient: BaseURL %q is not an http(s) URL", o.BaseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.Path = strings.TrimSuffix(u.Path, "/services/XTACore")
	if strings.TrimSpace(o.Party.Identifier) == "" {
		return nil, errors.New("xtaclient: Options.Party.Identifier is required")
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.MTOMThreshold == 0 {
		o.MTOMThreshold = 64 << 10
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = 256 << 20
	}
	hc := o.HTTPClient
	if hc == nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.TLS != nil {
			tc = o.TLS.Clone()
		}
		hc = &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true,
			MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 15 * time.Second}}
	}
	return &Client{o: o, base: u, http: hc}, nil
}

// Party is the account the client calls as.
func (c *Client) Party() Party { return c.o.Party }

// URL is the endpoint of a port type.
func (c *Client) URL(port string) string {
	u := *c.base
	u.Path += PathOf(port)
	return u.String()
}

// CloseIdleConnections closes the client's idle connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Post sends a prepared request body with its Content-Type to a port and reads
// the answer. A SOAP fault is no error here: it is in Response.Fault. The error
// reports what kept the call from producing a SOAP answer at all.
func (c *Client) Post(ctx context.Context, port, contentType string, body []byte) (*Response, error) {
	if PathOf(port) == "" {
		return nil, fmt.Errorf("xtaclient: unknown port %q", port)
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL(port), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("xtaclient: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.o.MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("xtaclient: reading the answer: %w", err)
	}
	if int64(len(b)) > c.o.MaxResponseBytes {
		return nil, fmt.Errorf("xtaclient: answer above %d bytes", c.o.MaxResponseBytes)
	}
	return parseResponse(resp.StatusCode, resp.Header.Get("Content-Type"), b)
}

// Do calls an operation with the client's Party header, extraHeader (further header
// blocks) and body (the body's content), as a plain SOAP 1.2 request. It returns the
// answer and, for a SOAP fault, the *Fault as error.
func (c *Client) Do(ctx context.Context, port, op, extraHeader, body string) (*Response, error) {
	return c.do(ctx, port, op, extraHeader, body, nil)
}

func (c *Client) do(ctx context.Context, port, op, extraHeader, body string, parts []part) (*Response, error) {
	env := Envelope(c.o.Party, extraHeader, body)
	action := Action(port, op)
	ct, payload := ContentType(action), env
	if len(parts) > 0 {
		ct, payload = mtom(env, action, parts)
	}
	r, err := c.Post(ctx, port, ct, payload)
	if err != nil {
		return r, err
	}
	if r.Fault != nil {
		return r, r.Fault
	}
	return r, nil
}

// MTOM wraps a SOAP 1.2 envelope and the XOP parts it names (Content-ID without <>
// → bytes) into an MTOM/XOP multipart/related message; it returns the
// Content-Type and the body.
func MTOM(env []byte, action string, parts map[string][]byte) (contentType string, body []byte) {
	var ps []part
	for cid, b := range parts {
		ps = append(ps, part{cid: cid, contentType: "application/octet-stream", data: b})
	}
	return mtom(env, action, ps)
}

func mtom(env []byte, action string, parts []part) (string, []byte) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	rnd := make([]byte, 8)
	_, _ = rand.Read(rnd)
	rootCID := "root." + hex.EncodeToString(rnd) + "@xtaclient"
	soapType := mime.FormatMediaType("application/soap+xml", map[string]string{"action": action})
	w, _ := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {mime.FormatMediaType("application/xop+xml", map[string]string{"charset": "UTF-8", "type": soapType})},
		"Content-Transfer-Encoding": {"8bit"},
		"Content-Id":                {"<" + rootCID + ">"},
	})
	_, _ = w.Write(env)
	for _, p := range parts {
		ct := p.contentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		w, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {ct}, "Content-Transfer-Encoding": {"binary"},
			"Content-Id": {"<" + p.cid + ">"}})
		_, _ = w.Write(p.data)
	}
	_ = mw.Close()
	ct := mime.FormatMediaType("multipart/related", map[string]string{"type": "application/xop+xml",
		"start": "<" + rootCID + ">", "start-info": soapType, "boundary": mw.Boundary()})
	return ct, b.Bytes()
}

// ---- core.recipient ----

// StatusList is the answer of getStatusList.
type StatusList struct {
	Messages []MetaData
	// Pending is how many more messages match than were listed.
	Pending int
}

func (r *Response) pending() int {
	if r.env == nil || r.env.Header.MessageBoxStatus == nil {
		return 0
	}
	if p := r.env.Header.MessageBoxStatus.MessagesRemaining.MessagesPending; p != nil {
		n, _ := strconv.Atoi(strings.TrimSpace(*p))
		return n
	}
	return 0
}

// GetStatusList lists the messages waiting for the account.
func (c *Client) GetStatusList(ctx context.Context, q Query) (*StatusList, error) {
	r, err := c.Do(ctx, PortRecipient, "getStatusList", "", SelectorBody(q))
	if err != nil {
		return nil, err
	}
	l := &StatusList{Pending: r.pending()}
	if sl := r.env.Body.MessageStatusList; sl != nil {
		for i := range sl.MessageMetaData {
			l.Messages = append(l.Messages, sl.MessageMetaData[i].meta())
		}
	}
	return l, nil
}

// Message is a message fetched with getMessage.
type Message struct {
	MetaData    MetaData
	Message     Content
	Attachments []Content
	Pending     int // further messages waiting
}

// GetMessage fetches one message with its content. It is no confirmation: call
// Close once the message is safely stored.
func (c *Client) GetMessage(ctx context.Context, xtaID string) (*Message, error) {
	r, err := c.Do(ctx, PortRecipient, "getMessage", "", FetchBody(xtaID))
	if err != nil {
		return nil, err
	}
	cc := r.env.Body.ContentContainer
	if cc == nil || cc.Message == nil {
		return nil, errors.New("xtaclient: getMessage answered without ContentContainer/Message")
	}
	m := &Message{Pending: r.pending()}
	if md := r.env.Header.MessageMetaData; md != nil {
		m.MetaData = md.meta()
	}
	if m.Message, err = r.content(cc.Message); err != nil {
		return nil, err
	}
	for i := range cc.Attachment {
		a, err := r.content(&cc.Attachment[i])
		if err != nil {
			return nil, err
		}
		m.Attachments = append(m.Attachments, a)
	}
	return m, nil
}

// Close confirms the receipt of a message (the XTA close operation); the message
// leaves the list. A repeated Close is no error.
func (c *Client) Close(ctx context.Context, xtaID string) error {
	_, err := c.Do(ctx, PortRecipient, "close", "", FetchBody(xtaID))
	return err
}

// ---- core.sender ----

// CreateMessageID asks the service for a fresh XTAMessageID.
func (c *Client) CreateMessageID(ctx context.Context) (string, error) {
	r, err := c.Do(ctx, PortSender, "createMessageID", "", "")
	if err != nil {
		return "", err
	}
	if r.env.Body.XTAMessageID == nil || strings.TrimSpace(*r.env.Body.XTAMessageID) == "" {
		return "", errors.New("xtaclient: createMessageID answered without XTAMessageID")
	}
	return strings.TrimSpace(*r.env.Body.XTAMessageID), nil
}

// LookupResult is one answer of lookupService.
type LookupResult struct {
	Reader    Party
	Service   string
	Available bool
}

// LookupService asks whether readers take messages (of a service).
func (c *Client) LookupService(ctx context.Context, ls ...Lookup) ([]LookupResult, error) {
	r, err := c.Do(ctx, PortSender, "lookupService", "", LookupBody(ls))
	if err != nil {
		return nil, err
	}
	var out []LookupResult
	if st := r.env.Body.LookupStatus; st != nil {
		for _, x := range st.Results {
			out = append(out, LookupResult{Reader: x.Reader.party(), Service: strings.TrimSpace(x.Service),
				Available: strings.TrimSpace(x.Available) == "true" || strings.TrimSpace(x.Available) == "1"})
		}
	}
	return out, nil
}

// Outgoing is a message the office sends (sendMessage): its metadata and content.
type Outgoing struct {
	MetaData    MetaData // Author defaults to the client's Party; MessageSize to the content's size
	Message     Content
	Attachments []Content
}

// Reply prepares the answer to a received message: addressed to its Author, naming
// it by MessageProperty InReplyTo, with the given XTAMessageID, message type (e.g.
// "Bescheid") and content.
func Reply(to MetaData, xtaID, messageType string, msg Content, atts ...Content) *Outgoing {
	return &Outgoing{
		MetaData: MetaData{
			XTAMessageID: xtaID, Reader: to.Author, Service: to.Service,
			BusinessScenario: "Antwort",
			MessageType:      messageType, MessageSchema: "urn:xtaclient:reply",
			Properties: []Property{{Key: "InReplyTo", Value: to.XTAMessageID}},
		},
		Message: msg, Attachments: atts,
	}
}

func (c *Client) send(ctx context.Context, op string, m *Outgoing) (*Response, error) {
	md := m.MetaData
	if md.XTAMessageID == "" {
		return nil, errors.New("xtaclient: MetaData.XTAMessageID is required (CreateMessageID gives one)")
	}
	if md.Author.Identifier == "" {
		md.Author = c.o.Party
	}
	if md.MessageSize <= 0 {
		md.MessageSize = int64(len(m.Message.Data))
		for _, a := range m.Attachments {
			md.MessageSize += int64(len(a.Data))
		}
	}
	var parts []part
	body := containerXML(m.Message, m.Attachments, c.o.MTOMThreshold, &parts)
	return c.do(ctx, PortSender, op, MetaDataXML(md), body, parts)
}

// SendMessage sends a message (for amtsbote: an answer to a case). The service
// stores it before it answers.
func (c *Client) SendMessage(ctx context.Context, m *Outgoing) error {
	_, err := c.send(ctx, "sendMessage", m)
	return err
}

// SendMessageSync sends a message with sendMessageSync and returns the content of
// the synchronous answer (nil when the service answers with an empty container).
func (c *Client) SendMessageSync(ctx context.Context, m *Outgoing) (*Message, error) {
	r, err := c.send(ctx, "sendMessageSync", m)
	if err != nil {
		return nil, err
	}
	cc := r.env.Body.ContentContainer
	if cc == nil || cc.Message == nil {
		return nil, nil
	}
	out := &Message{}
	if out.Message, err = r.content(cc.Message); err != nil {
		return nil, err
	}
	return out, nil
}

// ---- core.transport.base ----

// CheckAccountActive returns nil when the certificate and the account fit.
func (c *Client) CheckAccountActive(ctx context.Context) error {
	_, err := c.Do(ctx, PortTransportBase, "checkAccountActive", "", "")
	return err
}

// TransportReport is the answer of getTransportReport.
type TransportReport struct {
	ReportTime     time.Time
	ServerIdentity string
	Status         int // the schema's traffic light: 0 open (under way), 1 green, 2 yellow, 3 red
	MetaData       MetaData
}

// GetTransportReport reports the state of a message of the account.
func (c *Client) GetTransportReport(ctx context.Context, xtaID string) (*TransportReport, error) {
	r, err := c.Do(ctx, PortTransportBase, "getTransportReport", "", ReportBody(xtaID))
	if err != nil {
		return nil, err
	}
	rr := r.env.Body.ReportResult
	if rr == nil {
		return nil, errors.New("xtaclient: getTransportReport answered without ReportResult")
	}
	tr := rr.TransportReport
	st, err := strconv.Atoi(strings.TrimSpace(tr.Status))
	if err != nil {
		return nil, fmt.Errorf("xtaclient: MessageStatus/Status %q", tr.Status)
	}
	return &TransportReport{ReportTime: parseTime(tr.ReportTime), ServerIdentity: strings.TrimSpace(tr.ServerIdentity),
		Status: st, MetaData: tr.MetaData.meta()}, nil
}
