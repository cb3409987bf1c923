package xta

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"

	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
)

// Target parameters of the XTA channel (offices.<id>.channels.xta.params).
const (
	// ParamMode is "push" (the office runs its own XTA reader endpoint; Endpoint is
	// its deliverMessage URL) or "pull" (the office fetches from the gateway's
	// Recipient port; Endpoint is its XTA identifier). Default: push when the
	// endpoint is an https URL, pull otherwise.
	ParamMode = "mode"
	// ParamIdentifier is the office's XTA identifier written as Reader in push mode
	// (default: the office id).
	ParamIdentifier = "identifier"

	ModePush = "push"
	ModePull = "pull"
)

// AdapterOptions configure the XTA channel adapter.
type AdapterOptions struct {
	AuthorID   string // the gateway's XTA identifier (Author and calling Party)
	AuthorName string
	ServerID   string // server part of XTAMessageIDs; default "amtsbote" (as Options.ServerID)
	// TLS is the client configuration for push: the gateway's client certificate
	// and the roots that verify offices' endpoints.
	TLS           *tls.Config
	Qualifier     func(*submission.Submission) Qualifier
	MTOMThreshold int64 // as Options.MTOMThreshold
	// MaxResponseBytes bounds an office's answer; default 16 MiB.
	MaxResponseBytes int64
	// NoServer: this gateway runs no XTA server (xta.listen is empty), so no office
	// can pull; a pull target is then misconfigured. Without this check such an
	// office's packages were handed over to a message box nobody could reach.
	NoServer bool
	Logger   *slog.Logger
	Now      func() time.Time
}

// Adapter is the channel.XTA delivery adapter.
type Adapter struct {
	o      AdapterOptions
	client *http.Client
	tr     *http.Transport
	log    *slog.Logger

	gate adapters.Gate
}

var (
	_ adapters.Adapter = (*Adapter)(nil)
	_ adapters.Checker = (*Adapter)(nil)
)

// NewAdapter returns the XTA adapter.
func NewAdapter(o AdapterOptions) (*Adapter, error) {
	if strings.TrimSpace(o.AuthorID) == "" {
		return nil, errors.New("xta: AdapterOptions.AuthorID is required")
	}
	if o.ServerID == "" {
		o.ServerID = "amtsbote"
	}
	if o.Qualifier == nil {
		o.Qualifier = DefaultQualifier
	}
	if o.MTOMThreshold == 0 {
		o.MTOMThreshold = 64 << 10
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = 16 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var tc *tls.Config
	if o.TLS != nil {
		tc = o.TLS.Clone()
	} else {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 8,
		IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 15 * time.Second}
	// No redirect is followed: net/http turned a 301/302/303 into a GET without
	// body to the Location, with the gateway's client certificate, and a SOAP
	// answer there counted as the reader's confirmation of a message it never got.
	// A redirect is the endpoint's answer (HTTP 3xx: permanent), as for webhooks.
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &Adapter{o: o, tr: tr, client: client, log: o.Logger.With("channel", channel.XTA)}, nil
}

// caseProps are the MessageProperties of a Nachreichung (caseID, the case it
// belongs to, is not ""): the case's submission id and the XTAMessageID its
// first message had, by which the office's system knows the case. None for a
// new case.
func caseProps(serverID, caseID string) [][2]string {
	if caseID == "" {
		return nil
	}
	return [][2]string{{"amtsbote:caseId", caseID}, {"amtsbote:caseMessageId", MessageID(serverID, caseID)}}
}

// Channel implements adapters.Adapter.
func (a *Adapter) Channel() string { return channel.XTA }

// ModeOf is the mode of an XTA target: params.mode, or push for an https
// endpoint (the office's deliverMessage URL) and pull for anything else (the
// office's XTA identifier).
func ModeOf(t adapters.Target) string {
	if m := strings.ToLower(strings.TrimSpace(t.Params[ParamMode])); m != "" {
		return m
	}
	if strings.HasPrefix(strings.ToLower(t.Endpoint), "https://") {
		return ModePush
	}
	return ModePull
}

// CheckTarget implements adapters.Checker.
func (a *Adapter) CheckTarget(t adapters.Target) error {
	switch ModeOf(t) {
	case ModePush:
		u, err := url.Parse(t.Endpoint)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return &adapters.TargetError{Field: "endpoint", Reason: "push mode needs the office's deliverMessage URL (https)"}
		}
	case ModePull:
		if strings.TrimSpace(t.Endpoint) == "" {
			return &adapters.TargetError{Field: "endpoint", Reason: "pull mode needs the office's XTA identifier"}
		}
		if a.o.NoServer {
			return &adapters.TargetError{Field: "params." + ParamMode, Reason: "pull mode needs the gateway's XTA server (xta.listen), which is off: no office could fetch the message"}
		}
	default:
		return &adapters.TargetError{Field: "params." + ParamMode, Reason: "must be push or pull"}
	}
	return nil
}

var _ adapters.Reacher = (*Adapter)(nil)

// Reaches implements adapters.Reacher: a message handed over in pull mode waits
// in the office's message box, which an office configured for push (or a gateway
// whose XTA server is off) no longer has.
func (a *Adapter) Reaches(_ string, t adapters.Target) bool {
	return ModeOf(t) == ModePull && !a.o.NoServer
}

// Deliver implements adapters.Adapter: one deliverMessage call (push), or the
// hand-over to the office's message box (pull: Pending until the office's close).
func (a *Adapter) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, error) {
	if err := a.gate.Begin(ctx, "xta"); err != nil {
		return adapters.Confirmation{}, err
	}
	defer a.gate.Leave()
	if err := a.CheckTarget(d.Target); err != nil {
		return adapters.Confirmation{}, adapters.Permanent("XTA target misconfigured", err)
	}
	xtaID := MessageID(a.o.ServerID, d.SubmissionID)
	if ModeOf(d.Target) == ModePull {
		return adapters.Confirmation{Pending: true, Receiver: "XTA message box of " + strings.TrimSpace(d.Target.Endpoint),
			At: a.o.Now().UTC(), Reference: xtaID}, nil
	}
	return a.push(ctx, d, xtaID)
}

// deliverySubmission describes a delivery as a submission (the directory's func
// takes a submission).
func deliverySubmission(d adapters.Delivery) *submission.Submission {
	return &submission.Submission{ID: d.SubmissionID, DeliveryID: d.ID, MessageID: d.MessageID, Sender: d.Sender,
		LeikaKey: d.LeikaKey, ServiceName: d.ServiceName, OfficeID: d.OfficeID, OfficeName: d.OfficeName,
		PackageSHA256: d.PackageSHA256, PackageSize: d.PackageSize, ReceivedAt: d.CreatedAt}
}

// buildDeliver writes the deliverMessage request for d.
func (a *Adapter) buildDeliver(ctx context.Context, d adapters.Delivery, xtaID string) (*outMsg, []*part, error) {
	sub := deliverySubmission(d)
	q := a.o.Qualifier(sub)
	def := DefaultQualifier(sub)
	if q.BusinessScenario == "" {
		q.BusinessScenario = def.BusinessScenario
	}
	if q.MessageType == "" {
		q.MessageType = def.MessageType
	}
	if q.MessageSchema == "" {
		q.MessageSchema = def.MessageSchema
	}
	readerID := strings.TrimSpace(d.Target.Params[ParamIdentifier])
	if readerID == "" {
		readerID = d.OfficeID
	}
	size := d.PackageSize
	for _, at := range d.Attachments {
		size += at.Size
	}
	now := a.o.Now().UTC()
	author := Party{Identifier: a.o.AuthorID, Scheme: "xoev", Name: a.o.AuthorName}
	m := meta{xtaID: xtaID, reader: Party{Identifier: readerID, Scheme: "xoev", Name: d.OfficeName, Directory: "DVDV"},
		author: author, q: q, size: size, origin: d.CreatedAt, initialSend: now, delivery: now, idSuffix: d.SubmissionID,
		props: [][2]string{{"amtsbote:submissionId", d.SubmissionID}, {"amtsbote:deliveryId", d.ID},
			{"amtsbote:messageId", d.MessageID}, {"amtsbote:packageSha256", d.PackageSHA256}}}
	m.props = append(m.props, caseProps(a.o.ServerID, d.CaseID)...)

	parts := []*part{{elem: "Message", id: ncname("msg-", d.SubmissionID), contentType: "application/xml", encoding: "UTF-8",
		filename: "antragspaket-" + d.SubmissionID + ".xml", size: d.PackageSize, open: d.Package}}
	for i, at := range d.Attachments {
		parts = append(parts, &part{elem: "Attachment", id: ncname(fmt.Sprintf("att%d-", i+1), at.ID+"-"+d.SubmissionID),
			contentType: at.MimeType, filename: at.FileName, size: at.Size, open: at.Open})
	}
	for i, p := range parts {
		rc, err := p.open(ctx)
		if err != nil {
			closeParts(parts)
			return nil, nil, fmt.Errorf("xta: open %s: %w", p.elem, err)
		}
		p.rc = rc
		if a.o.MTOMThreshold >= 0 && p.size > a.o.MTOMThreshold {
			p.cid = fmt.Sprintf("part%d.%s@amtsbote", i+1, d.SubmissionID)
		}
	}
	action := Action(portReader, "deliverMessage")
	var w xw
	w.envelopeOpen()
	w.open("env:Header")
	w.leaf("wsa:Action", action)
	w.leaf("wsa:MessageID", "urn:uuid:"+uuidString())
	w.leaf("wsa:To", d.Target.Endpoint)
	w.open("xta:Party", "xmlns:xta", NS)
	w.writeParty(author)
	w.end("xta:Party")
	w.writeMeta("xta:MessageMetaData", m, true)
	w.end("env:Header")
	w.open("env:Body")
	if err := w.writeContainer("xta:ContentContainer", parts, true); err != nil {
		closeParts(parts)
		return nil, nil, fmt.Errorf("xta: reading the package: %w", err)
	}
	w.end("env:Body")
	w.end("env:Envelope")
	return newOutMsg(w.Bytes(), parts, action), parts, nil
}

func (a *Adapter) push(ctx context.Context, d adapters.Delivery, xtaID string) (adapters.Confirmation, error) {
	out, parts, err := a.buildDeliver(ctx, d, xtaID)
	if err != nil {
		if ctx.Err() != nil {
			return adapters.Confirmation{}, fmt.Errorf("xta: %w", ctx.Err())
		}
		return adapters.Confirmation{}, err
	}
	// The message is written while it is sent (chunked): its XOP parts are the
	// package and the attachments, which may be gigabytes (multipart intake), and are
	// streamed from the blob store, never held in memory. writeErr tells a failure
	// of our own reading apart from the endpoint's.
	pr, pw := io.Pipe()
	var writeErr error
	written := make(chan struct{})
	go func() {
		defer close(written)
		writeErr = out.writeTo(pw)
		closeParts(parts)
		pw.CloseWithError(writeErr)
	}()
	// Whatever happens below, the writer is stopped and the parts are closed first.
	finish := func() { pr.Close(); <-written }
	u, _ := url.Parse(d.Target.Endpoint)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Target.Endpoint, pr)
	if err != nil {
		finish()
		return adapters.Confirmation{}, adapters.Permanent("XTA target misconfigured", err)
	}
	req.Header.Set("Content-Type", out.contentType())
	resp, err := a.client.Do(req)
	if err != nil {
		finish()
		if ctx.Err() != nil {
			return adapters.Confirmation{}, fmt.Errorf("xta: deliverMessage to %s: %w", u.Host, ctx.Err())
		}
		// The transport closes the body when it gives up, and the writer then
		// fails with ErrClosedPipe: that is the endpoint's failure, not ours.
		if writeErr != nil && !errors.Is(writeErr, io.ErrClosedPipe) {
			return adapters.Confirmation{}, fmt.Errorf("xta: building deliverMessage: %w", writeErr)
		}
		return adapters.Confirmation{}, &DeliverError{Public: "XTA endpoint unreachable", Err: err}
	}
	defer resp.Body.Close()
	defer finish()
	msg, perr := parseMessage(resp.Header.Get("Content-Type"), resp.Body, a.o.MaxResponseBytes)
	if perr != nil && ctx.Err() != nil {
		return adapters.Confirmation{}, fmt.Errorf("xta: reading the answer: %w", ctx.Err())
	}
	if perr == nil && msg.env.Body.Fault != nil {
		return adapters.Confirmation{}, classifyFault(msg.env.Body.Fault, resp.StatusCode)
	}
	if resp.StatusCode/100 != 2 {
		err := &DeliverError{Public: fmt.Sprintf("XTA endpoint answered HTTP %d", resp.StatusCode), Status: resp.StatusCode}
		if resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			return adapters.Confirmation{}, err
		}
		return adapters.Confirmation{}, adapters.Permanent(err.Public, err)
	}
	if perr != nil {
		// A 2xx that is no SOAP answer says nothing for sure: try again (the office
		// drops the duplicate by the XTAMessageID).
		return adapters.Confirmation{}, &DeliverError{Public: "XTA endpoint answered without a SOAP message", Err: perr}
	}
	a.log.Info("xta deliverMessage ok", "submission", d.SubmissionID, "host", u.Host)
	reader := strings.TrimSpace(d.Target.Params[ParamIdentifier])
	if reader == "" {
		reader = d.OfficeID
	}
	return adapters.Confirmation{Receiver: "XTA reader " + reader, At: a.o.Now().UTC(), Reference: xtaID}, nil
}

// DeliverError is a failed deliverMessage; Public is what the portal may read.
type DeliverError struct {
	Public    string
	Status    int
	Exception Exception
	Err       error
	// fault: Err holds the reader's SOAP fault text, its own words.
	fault bool
}

// LogReason implements the interface read by adapters.LogReason: of a SOAP fault,
// the exception and not the reader's reason and detail, which a validator fills
// with the application's fields (XTA push sends the whole package); of an answer
// that does not parse, the parser's error without what it quoted of the answer
// (logText: an entity's name after an unescaped "&" is the reader's words).
func (e *DeliverError) LogReason() string {
	if e.fault {
		return "xta: " + e.Public + " (the fault's text is in the case's events)"
	}
	if e.Err != nil {
		return "xta: " + e.Public + ": " + logText(e.Err)
	}
	return e.Error()
}

func (e *DeliverError) Error() string {
	if e.Err != nil {
		return "xta: " + e.Public + ": " + e.Err.Error()
	}
	return "xta: " + e.Public
}

func (e *DeliverError) Unwrap() error { return e.Err }

// PublicReason implements the adapters' public reason.
func (e *DeliverError) PublicReason() string { return e.Public }

// classifyFault: the reader's technical problems are transient, its refusals permanent.
func classifyFault(f *xFault, status int) error {
	var exc Exception
	detail := ""
	if f.Detail != nil && len(f.Detail.Inner) > 0 {
		exc = Exception(f.Detail.Inner[0].XMLName.Local)
		detail = f.Detail.Inner[0].Detail
	}
	reason := strings.Join(f.Reason, " ")
	e := &DeliverError{Status: status, Exception: exc, Err: fmt.Errorf("%s %s: %s %s", f.Code.Value, exc, reason, detail), fault: true}
	receiverFault := strings.HasSuffix(f.Code.Value, ":Receiver") || f.Code.Value == "Receiver"
	switch {
	case exc == TechnicalProblem || exc == ExternalServiceUnavailable:
		e.Public = "XTA reader reported " + string(exc)
		return e
	case exc != "":
		e.Public = "XTA reader refused with " + string(exc)
		return adapters.Permanent(e.Public, e)
	case receiverFault:
		e.Public = "XTA reader reported a fault"
		return e
	}
	e.Public = "XTA reader refused the message"
	return adapters.Permanent(e.Public, e)
}

// Close implements adapters.Adapter.
func (a *Adapter) Close() error {
	a.gate.Close()
	a.tr.CloseIdleConnections()
	return nil
}
