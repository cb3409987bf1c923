package xta

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/clientgone"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/internal/httpmetrics"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// The port paths of the KoSIT XTA 2 test environment.
const (
	PathRecipient     = "/services/XTACore/Recipient"
	PathSender        = "/services/XTACore/Sender"
	PathTransportBase = "/services/XTACore/TransportBase"
)

// Port types as they appear in SOAP actions.
const (
	portRecipient     = "core.recipient"
	portSender        = "core.sender"
	portTransportBase = "core.transport.base"
	portReader        = "core.reader"
)

// Action returns the SOAP action of an operation of a port type.
func Action(portType, op string) string { return ActionBase + portType + "/" + op }

// OfficeResolver maps the calling XTA account to an office of the directory. p is
// the Party header as sent; cert is the TLS client certificate that authenticated
// the connection (never nil when called). It refuses (returns an error) unless the
// certificate belongs to that account: the identifier alone proves nothing.
type OfficeResolver interface {
	ResolveOffice(ctx context.Context, p Party, cert *x509.Certificate) (officeID string, err error)
}

// CertificateChecker is an OfficeResolver that can tell from the certificate alone
// whether it belongs to any account. The service asks it before it reads a
// request's body: the Party header, which names the account, is in the body, and a
// body may be MaxMessageBytes long, held in memory while it is parsed.
type CertificateChecker interface {
	KnownCertificate(cert *x509.Certificate) bool
}

// Options configure the XTA server.
type Options struct {
	// Desk is the offices' side of the broker. getMessage reads a package with
	// FetchPackage: in XTA the office confirms by close, not by reading.
	Desk    broker.OfficeDesk
	Offices OfficeResolver
	// AuthorID is the XTA identifier of the gateway (the portal side): the Author of
	// every message it hands out and the Reader an office's reply is addressed to.
	AuthorID   string
	AuthorName string
	// ServerID is the server part of the XTAMessageIDs this server issues
	// (urn:de:xta:messageid:<ServerID>:<uuid>); default "amtsbote". Changing it
	// changes the ids of waiting messages: keep it stable.
	ServerID string
	// Qualifier describes a submission as an XTA message (from the directory);
	// default DefaultQualifier.
	Qualifier func(*submission.Submission) Qualifier
	// ReplyServices are the Service URIs lookupService reports as available for
	// replies to AuthorID; empty: any service.
	ReplyServices []string
	Now           func() time.Time
	Logger        *slog.Logger
	// MaxMessageBytes bounds one request, MTOM parts included; default 64 MiB.
	MaxMessageBytes int64
	// MTOMThreshold: content above this many bytes is sent as an XOP part, smaller
	// content inline as base64; default 64 KiB; negative: always inline.
	MTOMThreshold int64
	// TransferWindow and TransferMinRate are the progress rule every request body and
	// every answer must keep instead of fixed deadlines (see api.Paced): within
	// every window, window × rate bytes; default api.DefaultTransferWindow and
	// api.DefaultTransferMinRate, the gateway passes http.read_timeout and
	// http.upload_min_rate, as for the REST face's uploads and downloads.
	TransferWindow  time.Duration
	TransferMinRate int64
	// StoreDown, if set, says why the gateway's store is known to be out of reach
	// now (a cluster without quorum); nil: it answers. Every operation is then
	// answered with a TechnicalProblemException at once, instead of after the
	// store's timeout (30 s) with the same fault.
	StoreDown func() error
	// SenderFaultStatus is the HTTP status of the faults that are the caller's
	// (env:Sender): 400, as SOAP 1.2's HTTP binding has it (the default), or
	// 500. The clients of two stacks Fachverfahren are built with read a
	// fault's body only from a 500: WCF's (System.ServiceModel.Http) throws
	// "unexpected response: (400) Bad Request" for any other status, and CXF's
	// HTTPConduit an HTTPException unless the client sets
	// org.apache.cxf.transport.process_fault_on_http_400. Such a client never
	// sees the exception the WSDL declares (InvalidMessageIDException of a
	// close, ParameterIsNotValidException of a sendMessage). 400 stays the
	// default: a 5xx is the gateway's own failure to monitoring and to every
	// other client (config xta.sender_fault_status, docs/xta.md).
	SenderFaultStatus int
}

// Server is the XTA SOAP service; it is an http.Handler for the three ports.
type Server struct {
	o          Options
	log        *slog.Logger
	replyLocks sync.Map // office id → *sync.Mutex (lockReplies)
	// bodies bounds the request bytes in memory at once (bodyMemory): a message is
	// read whole, up to MaxMessageBytes, and parsed; several at once from an
	// office's system, each held several times over while it is decoded, had no
	// bound but the connections it opened.
	bodies *httpbody.Budget
}

// bodyMemory is the Server's budget of request bytes in memory at once, in
// messages of the largest size, and bodyWait how long a request waits for room
// before it is answered with a TechnicalProblemException (retry later).
const (
	bodyMemory = 2
	bodyWait   = 2 * time.Second
)

// open states: what is in an office's message box (not yet confirmed).
var openStates = []submission.State{submission.StateQueued, submission.StateRetrying, submission.StateHandedOver, submission.StateHeld}

// inBox reports whether sub waits in its office's message box: not yet confirmed,
// and with its bytes. A message whose bytes an operator erased cannot be fetched:
// listed, it was fetched and failed on every poll of the office's system.
func inBox(sub *submission.Submission) bool {
	return slices.Contains(openStates, sub.State) && sub.BytesRemovedAt == nil
}

// NewServer checks the options and returns the service.
func NewServer(o Options) (*Server, error) {
	if o.Desk == nil || o.Offices == nil {
		return nil, errors.New("xta: Options.Desk and Options.Offices are required")
	}
	if strings.TrimSpace(o.AuthorID) == "" {
		return nil, errors.New("xta: Options.AuthorID is required")
	}
	if o.ServerID == "" {
		o.ServerID = "amtsbote"
	}
	if strings.ContainsAny(o.ServerID, ": \t\r\n") {
		return nil, fmt.Errorf("xta: ServerID %q must not contain ':' or spaces", o.ServerID)
	}
	if o.Qualifier == nil {
		o.Qualifier = DefaultQualifier
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch o.SenderFaultStatus {
	case 0:
		o.SenderFaultStatus = http.StatusBadRequest
	case http.StatusBadRequest, http.StatusInternalServerError:
	default:
		return nil, fmt.Errorf("xta: Options.SenderFaultStatus %d is neither 400 nor 500", o.SenderFaultStatus)
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 64 << 20
	}
	if o.MTOMThreshold == 0 {
		o.MTOMThreshold = 64 << 10
	}
	return &Server{o: o, log: o.Logger.With("face", "xta"), bodies: httpbody.NewBudget(bodyMemory*o.MaxMessageBytes, bodyWait)}, nil
}

// call is one authenticated request.
type call struct {
	ctx      context.Context
	officeID string
	party    Party
	msg      *message
	op       string
	port     string
}

// answer is what an operation returns: header parts, body and the content parts.
type answer struct {
	header func(w *xw)
	body   func(w *xw) error // nil: empty body
	parts  []*part
	// sent, if set, runs once the whole answer was written to the connection.
	sent func()
}

func (s *Server) portOf(path string) string {
	switch RouteOf(path) {
	case PathRecipient:
		return portRecipient
	case PathSender:
		return portSender
	case PathTransportBase:
		return portTransportBase
	}
	return ""
}

// RouteOf is the path of the XTA port a request to path reaches (PathRecipient,
// PathSender, PathTransportBase), "" for none: the route the gateway's metrics
// count the request under.
func RouteOf(path string) string {
	switch p := strings.TrimSuffix(path, "/"); p {
	case PathRecipient, PathSender, PathTransportBase:
		return p
	}
	return ""
}

// ServeHTTP implements http.Handler. Every answer to a POST is a SOAP message;
// every failure a SOAP fault with an XTA exception (or VersionMismatch), never a
// bare status. A GET or HEAD, which no SOAP stack of XTA sends, is a person or a
// tool looking for the WSDL: it gets noWSDL's plain text.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		writeNoWSDL(w, r, s.portOf(r.URL.Path) != "")
		return
	}
	start := time.Now()
	window, rate := s.o.transfer()
	rw := api.Paced(w, api.Transfer{Window: window, MinRate: rate})
	port := s.portOf(r.URL.Path)
	op := ""
	written := false
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("xta: panic", "path", r.URL.Path, "op", op, "panic", fmt.Sprint(v))
			if !written {
				s.writeFault(rw, port, fault(TechnicalProblem, "internal error"), addressing{})
			}
		}
	}()
	// A fault before the body has been read to its end (an unknown port, a
	// stranger, no room in memory, a message refused while it was read) is
	// readied and followed by a drain of the rest: answered and closed with the
	// rest unread, the connection was reset under a client still sending, which
	// saw "connection reset" instead of the fault (httpbody.Drain). At most a
	// message's largest size is read so, none of it held, within one window of
	// the progress rule.
	early := func(write func()) {
		written = true
		httpbody.Refusing(rw, r)
		write()
		httpbody.Drain(rw, r, r.Body, s.o.MaxMessageBytes, time.Now().Add(window))
	}
	if port == "" {
		early(func() { s.writeFault(rw, port, fault(NotImplemented, "no XTA port at %s", r.URL.Path), addressing{}) })
		return
	}
	if r.Method != http.MethodPost {
		early(func() {
			rw.Header().Set("Allow", http.MethodPost)
			s.writeFault(rw, port, fault(ParameterIsNotValid, "SOAP requests are POSTed"), addressing{})
		})
		return
	}
	// Who calls is known from the handshake: a caller without a certificate of an
	// account is refused before a byte of the body is read into memory. Before,
	// the body was read and parsed first, so anyone who could open a TLS
	// connection made the gateway hold up to MaxMessageBytes per connection. The
	// rest is discarded as it comes (early), which holds nothing.
	if f := s.knownCaller(r); f != nil {
		early(func() { s.writeFault(rw, port, f, addressing{}) })
		s.log.Warn("xta access refused", "port", port, "reason", f.Detail)
		return
	}
	// The bytes in memory at once are bounded (bodies), taken as they arrive.
	lease, err := s.bodies.Acquire(r.Context(), httpbody.First(r.ContentLength))
	if err != nil {
		early(func() { s.writeFault(rw, port, busyFault(), addressing{}) })
		s.log.Warn("xta request refused: too many request bytes in memory", "port", port, "err", err)
		return
	}
	defer lease.Release()
	// The body under the progress rule, not the listener's fixed deadlines; w, not
	// rw: http.MaxBytesReader tells the server itself to close the connection.
	body := api.UploadBody(w, r, s.o.MaxMessageBytes+1, window, rate)
	msg, err := parseMessage(r.Header.Get("Content-Type"), lease.Reader(r.Context(), body, s.o.MaxMessageBytes), s.o.MaxMessageBytes)
	if err != nil {
		// Refused before or while the body was read (its type, its size, its
		// markup): the rest is drained from r.Body itself, under the limit
		// that body may have hit.
		early(func() { s.writeParseFault(rw, port, err) })
		s.log.Info("xta request refused", "port", port, "fault", logText(err))
		return
	}
	// An MTOM message ends with its closing delimiter, often before the body's last
	// bytes: read them, so the body is seen whole (its read deadline goes, and
	// net/http notices a client that leaves while the request is served).
	_, _ = io.CopyN(io.Discard, body, 4<<10)
	addr := addressingOf(msg.env.Header)
	if hdr := nonAnonymous(msg.env.Header); hdr != "" {
		// Refused before anything is done: answered here, the client would
		// wait at its own endpoint for an answer that never comes there, and
		// take the operation for failed when it had been carried out.
		written = true
		httpmetrics.NoteFault(rw, httpmetrics.FaultSender)
		writeSOAP(rw, s.o.SenderFaultStatus, soapContentType(""), onlyAnonymousFault(hdr, addr))
		s.log.Info("xta request refused", "port", port, "fault", "wsa:"+hdr+" not anonymous")
		return
	}
	op, err = s.operation(port, msg, r.Header.Get("SOAPAction"))
	if err != nil {
		written = true
		var am *errActionMismatch
		if errors.As(err, &am) {
			s.writeActionMismatch(rw, am, addr)
		} else {
			s.writeFault(rw, port, asFault(err), addr)
		}
		s.log.Info("xta request refused", "port", port, "fault", err.Error())
		return
	}
	c := &call{ctx: r.Context(), msg: msg, op: op, port: port}
	if f := s.authenticate(r, c); f != nil {
		written = true
		s.writeFault(rw, port, f, addr)
		s.log.Warn("xta access refused", "op", op, "party", c.party.String(), "reason", f.Detail)
		return
	}
	if s.o.StoreDown != nil {
		if down := s.o.StoreDown(); down != nil {
			written = true
			s.writeFault(rw, port, declared(op, storeDownFault()), addr)
			s.log.Info("xta fault", "op", op, "office", c.officeID, "exception", string(TechnicalProblem), "reason", down.Error())
			return
		}
	}
	a, err := s.dispatch(c)
	if err != nil {
		written = true
		// A Fachverfahren that gave up (its own timeout, a closed connection) reads
		// no fault; a TechnicalProblem here was an HTTP 500 that fires the 5xx alert
		// (amtsbote_http_requests_total) for what is no failure of the gateway.
		if clientgone.Answer(rw, r, err, s.log) {
			return
		}
		f := s.faultOf(c, err)
		s.writeFault(rw, port, f, addr)
		s.log.Info("xta fault", "op", op, "office", c.officeID, "exception", string(f.Exception), "ms", time.Since(start).Milliseconds())
		return
	}
	written = true
	s.writeAnswer(rw, r, c, a, addr)
	s.log.Debug("xta ok", "op", op, "office", c.officeID, "ms", time.Since(start).Milliseconds())
}

// noWSDL is the answer to a GET or HEAD: where the WSDL is, and the ports' paths.
// The gateway does not serve the WSDL (docs/xta.md, "The WSDL"): serving it meant
// shipping a changed copy (the soap:address written in) of the KoSIT files,
// EUPL 1.2, with the schemas they import (W3C, OASIS notices) in the binary, for
// a client that is generated once; the official files are published, and their
// addresses read REPLACE_WITH_ACTUAL_URL for each deployment to fill in. A
// SOAP fault (HTTP 400) was the answer before 2026-12-07, which a WSDL tool
// reports as an unreadable WSDL and which named none. The text names no host:
// the request's Host is the caller's to know.
const noWSDL = `Dieser XTA-Endpunkt stellt keine WSDL bereit. Bitte die offizielle WSDL verwenden
und die Endpunkt-Adresse eintragen (siehe unten).

This is an XTA 2 Version 5 endpoint (XTA core 3.1.1, SOAP 1.2 over HTTPS with a
TLS client certificate of your account; requests are POSTed). It serves no WSDL.

Generate your client from the official WSDL and schemas of the standard, published
by the KoSIT (XRepository, standard urn:xoev-de:kosit:standard:xta2, version 5.1.1,
file wsdl/xta-core.wsdl with the schemas in xsd/ it includes), and set the endpoint
address of each port, which reads REPLACE_WITH_ACTUAL_URL in the WSDL, to its path
at the scheme, host and port of this URL:

  port core.recipient       ` + PathRecipient + `
  port core.sender          ` + PathSender + `
  port core.transport.base  ` + PathTransportBase + `

Your gateway operator's connection sheet has the host and port.
`

// writeNoWSDL answers a GET or HEAD with noWSDL: 405 (only POST) for a port
// itself, 404 for anything else asked of it (?wsdl, ?singleWsdl, ?xsd=…) and for
// a path that is no port. It asks for no certificate: the text is the
// standard's and the ports' paths, nothing of any account.
func writeNoWSDL(w http.ResponseWriter, r *http.Request, port bool) {
	status := http.StatusNotFound
	if port && r.URL.RawQuery == "" {
		status = http.StatusMethodNotAllowed
		w.Header().Set("Allow", http.MethodPost)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(noWSDL)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, noWSDL)
	}
}

// operation decides the operation from the SOAP action (Content-Type action,
// wsa:Action or a SOAPAction header) and the body. Where the message names its
// action more than once, the names must agree: a wsa:Action that differs from the
// action of the transport is refused as WS-Addressing's ActionMismatch, before
// anything is done (the service would otherwise have to pick one of two operations
// the client asked for, and did run the transport's).
func (s *Server) operation(port string, m *message, soapAction string) (string, error) {
	transport := strings.TrimSpace(m.action)
	header := strings.Trim(soapAction, `" `)
	wsa := ""
	if m.env.Header != nil {
		wsa = strings.TrimSpace(m.env.Header.Action)
	}
	for _, t := range []string{transport, header} {
		if wsa != "" && t != "" && t != wsa {
			return "", &errActionMismatch{wsa: wsa, transport: t}
		}
	}
	if transport != "" && header != "" && transport != header {
		return "", fault(ParameterIsNotValid, "the Content-Type action %q and the SOAPAction header %q differ", transport, header)
	}
	action := cmp.Or(transport, wsa, header)
	if action != "" {
		p, op, ok := strings.Cut(strings.TrimPrefix(action, ActionBase), "/")
		if !ok || !strings.HasPrefix(action, ActionBase) {
			return "", fault(NotImplemented, "unknown SOAP action %q", action)
		}
		if p != port {
			return "", fault(NotImplemented, "action %q is not served at this port (%s)", action, port)
		}
		known := map[string][]string{
			portRecipient:     {"getStatusList", "getMessage", "close"},
			portSender:        {"createMessageID", "lookupService", "sendMessage", "sendMessageSync"},
			portTransportBase: {"checkAccountActive", "getTransportReport"},
		}
		if !slices.Contains(known[port], op) {
			return "", fault(NotImplemented, "unknown operation %q", op)
		}
		return op, nil
	}
	// No action: the body element decides where it is unambiguous.
	b := m.env.Body
	n := m.env.bodyElements()
	switch {
	case port == portRecipient && b.MessageSelector != nil:
		return "getStatusList", nil
	case port == portRecipient && b.MessageFetch != nil:
		return "", fault(ParameterIsNotValid, "getMessage and close share the body MessageFetch: the SOAP action is required")
	case port == portSender && n == 0:
		return "createMessageID", nil
	case port == portSender && b.LookupQuery != nil:
		return "lookupService", nil
	case port == portSender && b.ContentContainer != nil:
		return "sendMessage", nil
	case port == portTransportBase && n == 0:
		return "checkAccountActive", nil
	case port == portTransportBase && b.XTAMessageID != nil:
		return "getTransportReport", nil
	}
	return "", fault(ParameterIsNotValid, "cannot tell the operation: no SOAP action and an unexpected body")
}

// knownCaller refuses a request whose TLS client certificate is missing or, where
// the resolver can tell, belongs to no account; nil lets it on to authenticate.
func (s *Server) knownCaller(r *http.Request) *Fault {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return fault(PermissionDenied, "a TLS client certificate is required")
	}
	if cc, ok := s.o.Offices.(CertificateChecker); ok && !cc.KnownCertificate(r.TLS.PeerCertificates[0]) {
		return fault(PermissionDenied, "the certificate is not registered for any account")
	}
	return nil
}

// authenticate checks the TLS client certificate and the Party header and names the
// office.
func (s *Server) authenticate(r *http.Request, c *call) *Fault {
	h := c.msg.env.Header
	if h != nil && h.Party != nil {
		c.party = h.Party.party()
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return fault(PermissionDenied, "a TLS client certificate is required")
	}
	if c.party.Identifier == "" {
		return fault(PermissionDenied, "the Party header with the account's Identifier is required")
	}
	office, err := s.o.Offices.ResolveOffice(c.ctx, c.party, r.TLS.PeerCertificates[0])
	if err != nil || office == "" {
		return fault(PermissionDenied, "the certificate is not authorised for account %s", c.party.String())
	}
	c.officeID = office
	return nil
}

func (s *Server) dispatch(c *call) (*answer, error) {
	switch c.op {
	case "getStatusList":
		return s.getStatusList(c)
	case "getMessage":
		return s.getMessage(c)
	case "close":
		return s.close(c)
	case "createMessageID":
		return s.createMessageID(c)
	case "lookupService":
		return s.lookupService(c)
	case "sendMessage":
		return s.sendMessage(c, false)
	case "sendMessageSync":
		return s.sendMessage(c, true)
	case "checkAccountActive":
		return &answer{}, nil
	case "getTransportReport":
		return s.getTransportReport(c)
	}
	return nil, fault(NotImplemented, "operation %s", c.op)
}

// faultOf maps a desk error to the exception the caller sees; the error itself is
// logged, never sent.
func (s *Server) faultOf(c *call, err error) *Fault {
	return declared(c.op, s.exceptionOf(c, err))
}

func (s *Server) exceptionOf(c *call, err error) *Fault {
	var f *Fault
	if errors.As(err, &f) {
		return f
	}
	// A message id that names no case the office may use is
	// InvalidMessageIDException; for a reply (sendMessage, which does not
	// declare it) declared() makes it ParameterIsNotValidException: the case
	// the reply names is a parameter no longer valid. Only the words differ.
	reply := c.op == "sendMessage" || c.op == "sendMessageSync"
	switch {
	case errors.Is(err, broker.ErrNotFound):
		if reply {
			return fault(InvalidMessageID, "the case this message refers to is unknown")
		}
		return fault(InvalidMessageID, "unknown XTAMessageID")
	case errors.Is(err, broker.ErrBytesRemoved):
		// Not the gateway's failure, and no later call will find the bytes: a
		// TechnicalProblem (HTTP 500) told the office's system to try again.
		if reply {
			return fault(InvalidMessageID, "the content of the case this reply answers was removed (retention period or erasure); your reply was not stored")
		}
		return fault(InvalidMessageID, "the message's content was removed (retention period or erasure); it can no longer be fetched")
	case errors.Is(err, submission.ErrTakenOver):
		// Before ErrConflict, which it comes with: the message is not in the
		// box any more, as for one erased, and no later call will find it.
		if reply {
			// The clerk answers the applicant now.
			return fault(InvalidMessageID, "a clerk took the case this reply answers over in the office's web mailbox; it is answered there, and your reply was not stored: drop it")
		}
		return fault(InvalidMessageID, "a clerk took this message over in the office's web mailbox; it is processed there, no longer in your message box: drop it")
	case reply && errors.Is(err, submission.ErrNotDelivered):
		// Before ErrConflict, which it comes with: "not possible in the
		// message's current state" did not tell the office's system what to do.
		return fault(ParameterIsNotValid, "the case this reply answers is not confirmed yet: confirm its receipt with close (core.recipient) before you answer it; your reply was not stored")
	case errors.Is(err, broker.ErrConflict):
		return fault(ParameterIsNotValid, "not possible in the message's current state")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fault(TechnicalProblem, "the request was cancelled")
	case errors.Is(err, broker.ErrStoreUnavailable), errors.Is(err, broker.ErrUnavailable):
		s.log.Warn("xta: the store does not answer", "op", c.op, "office", c.officeID, "err", err)
		return storeDownFault()
	}
	s.log.Error("xta: desk error", "op", c.op, "office", c.officeID, "err", err)
	return fault(TechnicalProblem, "internal error")
}

// busyFault: the request bytes in memory at once are at their bound (bodies);
// nothing was done, the same call a little later may work.
func busyFault() *Fault {
	return fault(TechnicalProblem, "too many messages are being read at once; nothing was done; retry later")
}

// storeDownFault: the gateway's store does not answer (a cluster without
// quorum). Nothing was done; the same call later may work.
func storeDownFault() *Fault {
	return fault(TechnicalProblem, "the gateway's store does not answer now; nothing was done; retry later")
}

// writeParseFault answers a message parseMessage refused.
func (s *Server) writeParseFault(rw http.ResponseWriter, port string, err error) {
	var ve *errVersion
	var mu *errMustUnderstand
	var dup *errDuplicateHeader
	switch {
	case errors.As(err, &ve):
		s.writeVersionMismatch(rw, ve.soap11)
	case errors.As(err, &mu):
		// HTTP 500 by the SOAP binding, though the caller's request caused it.
		httpmetrics.NoteFault(rw, httpmetrics.FaultMustUnderstand)
		writeSOAP(rw, http.StatusInternalServerError, soapContentType(""), mustUnderstandFault(mu))
	case errors.As(err, &dup) && dup.name.Space == NSWSA:
		httpmetrics.NoteFault(rw, httpmetrics.FaultSender)
		// The request used WS-Addressing (the header twice is one of it), but
		// was not read: its wsa:MessageID, if any, is not known.
		writeSOAP(rw, s.o.SenderFaultStatus, soapContentType(""), invalidCardinalityFault(dup.name, addressing{used: true}))
	case errors.As(err, &dup):
		s.writeFault(rw, port, fault(ParameterIsNotValid, "the header block xta:%s occurs twice", dup.name.Local), addressing{})
	default:
		s.writeFault(rw, port, asFault(err), addressing{})
	}
}

// writeSOAP writes a fault whole, with its Content-Length: a fault may leave
// before the request's body has been read (httpbody.Drain), and a client that
// stops sending when it comes must be able to tell where it ends while the
// rest is drained.
func writeSOAP(rw http.ResponseWriter, status int, contentType string, body []byte) {
	rw.Header().Set("Content-Type", contentType)
	rw.Header().Set("Content-Length", strconv.Itoa(len(body)))
	rw.WriteHeader(status)
	_, _ = rw.Write(body)
}

// writeVersionMismatch answers HTTP 500, as the SOAP binding says, though the
// caller's request caused it: the metrics' soap_fault label says so.
func (s *Server) writeVersionMismatch(rw http.ResponseWriter, soap11 bool) {
	httpmetrics.NoteFault(rw, httpmetrics.FaultVersionMismatch)
	if soap11 {
		writeSOAP(rw, http.StatusInternalServerError, "text/xml; charset=utf-8", versionMismatch11())
		return
	}
	writeSOAP(rw, http.StatusInternalServerError, soapContentType(""), versionMismatch12())
}

func (s *Server) writeActionMismatch(rw http.ResponseWriter, e *errActionMismatch, addr addressing) {
	httpmetrics.NoteFault(rw, httpmetrics.FaultSender)
	writeSOAP(rw, s.o.SenderFaultStatus, soapContentType(""), actionMismatchFault(e, addr))
}

// FaultAction is the action of a fault: the WSDL's wsam:Action of the exception at
// the port type, <ActionBase><porttype>/<Exception> (e.g.
// https://xoev.de/transport/xta/core/core.recipient/InvalidMessageIDException). A
// fault outside any port gets WS-Addressing's action for SOAP faults.
func FaultAction(portType string, e Exception) string {
	if portType == "" {
		return NSWSA + "/soap/fault"
	}
	return Action(portType, string(e))
}

func (s *Server) writeFault(rw http.ResponseWriter, port string, f *Fault, addr addressing) {
	var w xw
	w.envelopeOpen()
	if addr.used {
		w.open("env:Header")
		w.wsaHeaders(FaultAction(port, f.Exception), addr)
		w.end("env:Header")
	}
	w.open("env:Body")
	w.writeFault(f)
	w.end("env:Body")
	w.end("env:Envelope")
	code := httpmetrics.FaultSender
	if f.Receiver() {
		code = httpmetrics.FaultReceiver
	}
	httpmetrics.NoteFault(rw, code)
	writeSOAP(rw, f.httpStatus(s.o.SenderFaultStatus), soapContentType(""), w.Bytes())
}

func (s *Server) writeAnswer(rw http.ResponseWriter, r *http.Request, c *call, a *answer, addr addressing) {
	defer closeParts(a.parts)
	action := Action(c.port, c.op+"Response")
	var w xw
	w.envelopeOpen()
	if a.header != nil || addr.used {
		w.open("env:Header")
		w.wsaHeaders(action, addr)
		if a.header != nil {
			a.header(&w)
		}
		w.end("env:Header")
	}
	if a.body == nil {
		w.empty("env:Body")
	} else {
		w.open("env:Body")
		if err := a.body(&w); err != nil {
			if !clientgone.Answer(rw, r, err, s.log) {
				s.writeFault(rw, c.port, s.faultOf(c, err), addr)
			}
			return
		}
		w.end("env:Body")
	}
	w.end("env:Envelope")
	out := newOutMsg(w.Bytes(), a.parts, action)
	rw.Header().Set("Content-Type", out.contentType())
	rw.WriteHeader(http.StatusOK)
	if err := out.writeTo(rw); err != nil {
		// Headers are out: the client sees a truncated message and must retry.
		s.log.Error("xta: writing the answer failed", "op", c.op, "office", c.officeID, "err", err)
		return
	}
	if a.sent != nil {
		// Written means handed to buffers: flushed, and the caller still there
		// (a Fachverfahren that timed out closed its connection, which cancels the
		// request's context), or the answer does not count as received. A client
		// that goes after this is not seen; its close confirms, not the fetch.
		if err := http.NewResponseController(rw).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			s.log.Info("xta: answer not flushed; not recorded as received", "op", c.op, "office", c.officeID, "err", err)
			return
		}
		if r.Context().Err() != nil {
			s.log.Info("xta: the caller went away while the answer was written; not recorded as received", "op", c.op, "office", c.officeID)
			return
		}
		a.sent()
	}
}

// --- core.recipient ---

func (s *Server) qualifier(sub *submission.Submission) Qualifier {
	q := s.o.Qualifier(sub)
	d := DefaultQualifier(sub)
	if q.BusinessScenario == "" {
		q.BusinessScenario = d.BusinessScenario
	}
	if q.MessageType == "" {
		q.MessageType = d.MessageType
	}
	if q.MessageSchema == "" {
		q.MessageSchema = d.MessageSchema
	}
	return q
}

func (s *Server) author() Party {
	return Party{Identifier: s.o.AuthorID, Scheme: "xoev", Name: s.o.AuthorName}
}

// initialFetch is XTA's InitialFetch: when the office's system first fetched the
// message (zero: never).
func initialFetch(sub *submission.Submission) time.Time {
	if sub.FetchedAt == nil {
		return time.Time{}
	}
	return *sub.FetchedAt
}

// boxEntry is when sub entered its office's message box, XTA's Delivery: its
// hand-over (for a message that came to XTA after another channel, later than
// its receipt), or its receipt while it has none.
func boxEntry(sub *submission.Submission) time.Time {
	if sub.HandedOverAt != nil {
		return *sub.HandedOverAt
	}
	return sub.ReceivedAt
}

func (s *Server) metaOf(sub *submission.Submission, reader Party) meta {
	size := sub.PackageSize
	for _, a := range sub.Attachments {
		size += a.Size
	}
	m := meta{
		xtaID: MessageID(s.o.ServerID, sub.ID), reader: reader, author: s.author(), q: s.qualifier(sub),
		size: size, origin: sub.ReceivedAt, initialSend: sub.ReceivedAt, delivery: boxEntry(sub),
		initialFetch: initialFetch(sub), idSuffix: sub.ID,
		props: [][2]string{{"amtsbote:submissionId", sub.ID}, {"amtsbote:state", string(sub.State)}},
	}
	if sub.PackageSHA256 != "" {
		// As in push (deliverMessage): the office can check the package it fetched.
		m.props = append(m.props, [2]string{"amtsbote:packageSha256", sub.PackageSHA256})
	}
	m.props = append(m.props, caseProps(s.o.ServerID, sub.CaseID)...)
	if sub.DeliveredAt != nil {
		m.reception = *sub.DeliveredAt
	}
	if sub.MessageID != "" {
		m.props = append(m.props, [2]string{"amtsbote:messageId", sub.MessageID})
	}
	if sub.LeikaKey != "" {
		m.props = append(m.props, [2]string{"amtsbote:leikaKey", sub.LeikaKey})
	}
	return m
}

func parseBool(s string) (bool, error) {
	switch strings.TrimSpace(s) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not an xs:boolean", s)
}

const maxStatusList = 1000

// parsePositiveInteger reads an xs:positiveInteger (whitespace around it, an
// optional "+", decimal digits, leading zeros allowed, above zero) and returns it,
// or capAt when it is larger (the value may have any number of digits).
func parsePositiveInteger(s string, capAt int) (int, bool) {
	s = strings.Trim(s, " \t\r\n")
	s = strings.TrimPrefix(s, "+")
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	s = strings.TrimLeft(s, "0")
	switch {
	case s == "":
		return 0, false // zero is not positive
	case len(s) > len(strconv.Itoa(capAt)):
		return capAt, true
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, false
	}
	return min(n, capAt), true
}

// getStatusList answers a MessageSelector. The WSDL declares no
// ParameterIsNotValidException for it: a selector the service cannot read is
// refused with ParameterNotSupportedException, the parameter fault it declares.
func (s *Server) getStatusList(c *call) (*answer, error) {
	sel := c.msg.env.Body.MessageSelector
	if sel == nil {
		return nil, fault(ParameterNotSupported, "MessageSelector is required")
	}
	var items []*submission.Submission
	pending := 0
	switch {
	case sel.XTAMessageIDs != nil:
		if len(sel.XTAMessageIDs.IDs) > maxStatusList {
			return nil, fault(ParameterNotSupported, "at most %d XTAMessageIDs", maxStatusList)
		}
		seen := map[string]bool{}
		for _, x := range sel.XTAMessageIDs.IDs {
			id, ok := SubmissionID(s.o.ServerID, x.Value)
			if !ok || seen[id] {
				// An id asked for twice is listed once: twice would also repeat the
				// metadata's xs:IDs, which must be unique in the document.
				continue
			}
			seen[id] = true
			sub, err := s.o.Desk.Get(c.ctx, c.officeID, id)
			if errors.Is(err, broker.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if inBox(sub) {
				items = append(items, sub)
			}
		}
	case sel.OtherCriteria != nil:
		oc := sel.OtherCriteria
		if oc.Extensions != nil {
			return nil, fault(UnsupportedExtension, "OtherCriteria/Extensions")
		}
		// Without NewEntry only new messages are selected (those without
		// InitialFetch), as the schema's documentation of NewEntry says.
		newOnly := true
		if oc.NewEntry != nil {
			var err error
			if newOnly, err = parseBool(*oc.NewEntry); err != nil {
				return nil, fault(ParameterNotSupported, "NewEntry: %v", err)
			}
		}
		limit := 100
		if oc.MaxMessages != nil {
			n, ok := parsePositiveInteger(*oc.MaxMessages, maxStatusList)
			if !ok {
				return nil, fault(ParameterNotSupported, "MaxMessages %q is no xs:positiveInteger", *oc.MaxMessages)
			}
			limit = n
		}
		var from, to time.Time
		var err error
		if strings.TrimSpace(oc.From) != "" {
			if from, err = parseTime(oc.From); err != nil {
				return nil, fault(ParameterNotSupported, "MessageBoxEntryTimeFrom: %v", err)
			}
		}
		if strings.TrimSpace(oc.To) != "" {
			if to, err = parseTime(oc.To); err != nil {
				return nil, fault(ParameterNotSupported, "MessageBoxEntryTimeTo: %v", err)
			}
		}
		if from.IsZero() && to.IsZero() {
			// The usual poll: the records of the messages listed are read, the rest
			// is counted from the store's indexes (Desk.Waiting knows what was
			// fetched). Every waiting record was read on every poll.
			items, pending, err = s.listWaiting(c, newOnly, limit)
		} else {
			err = s.walkOpen(c, func(sub *submission.Submission) {
				// By the box entry, the Delivery the metadata carries, as the
				// schema documents MessageBoxEntryTimeFrom ("nach Delivery"):
				// by the receipt, a message that came to the box after its
				// office's first channel failed was left out of a poll from
				// the last one.
				at := boxEntry(sub)
				if !from.IsZero() && at.Before(from) {
					return
				}
				if !to.IsZero() && at.After(to) {
					return
				}
				if newOnly && sub.FetchedAt != nil {
					return
				}
				// In the order of the box entry, as the WSDL documents
				// getStatusList ("nach Delivery"), not of the receipt the walk
				// goes by: a Fachverfahren that pages by MaxMessages from the
				// last Delivery it saw skipped a message that entered the box
				// before one received earlier. The first limit are kept, sorted.
				i := sort.Search(len(items), func(i int) bool { return boxEntry(items[i]).After(at) })
				if len(items) < limit {
					items = slices.Insert(items, i, sub)
					return
				}
				pending++
				if i < len(items) {
					items = slices.Insert(items[:len(items)-1], i, sub)
				}
			})
		}
		if err != nil {
			return nil, err
		}
	default:
		return nil, fault(ParameterNotSupported, "MessageSelector needs XTAMessageIDs or OtherCriteria")
	}
	reader := c.party
	return &answer{
		header: func(w *xw) { w.writeBoxStatus(len(items), pending) },
		body: func(w *xw) error {
			w.open("xta:MessageStatusList", "xmlns:xta", NS)
			for _, sub := range items {
				w.writeMeta("xta:MessageMetaData", s.metaOf(sub, reader), false)
			}
			w.end("xta:MessageStatusList")
			return nil
		},
	}, nil
}

// listWaiting returns the first limit messages of the office's box (only those
// never fetched where newOnly), oldest first, and how many more there are,
// reading only the records it returns. A message that moved on between the
// index and its record (closed, erased meanwhile) is passed over.
func (s *Server) listWaiting(c *call, newOnly bool, limit int) (items []*submission.Submission, pending int, err error) {
	entries, err := s.o.Desk.Waiting(c.ctx, c.officeID)
	if err != nil {
		return nil, 0, err
	}
	for _, e := range entries {
		if newOnly && e.Fetched {
			continue
		}
		if len(items) == limit {
			pending++
			continue
		}
		sub, err := s.o.Desk.Get(c.ctx, c.officeID, e.ID)
		if errors.Is(err, broker.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		if inBox(sub) && !(newOnly && sub.FetchedAt != nil) {
			items = append(items, sub)
		}
	}
	return items, pending, nil
}

// walkOpen calls fn for every submission in the office's message box (inBox),
// oldest first.
func (s *Server) walkOpen(c *call, fn func(*submission.Submission)) error {
	after := ""
	for {
		page, err := s.o.Desk.List(c.ctx, c.officeID, broker.ListQuery{After: after, Limit: 1000, States: openStates})
		if err != nil {
			return err
		}
		for _, sub := range page.Items {
			if inBox(sub) {
				fn(sub)
			}
		}
		if page.Next == "" {
			return nil
		}
		after = page.Next
	}
}

// NoMatch is the reason written when no message is waiting.
const NoMatch = "http://www.osci.eu/ws/2008/05/transport/MessageBox/reasons/NoMatch"

func (w *xw) writeBoxStatus(returned, pending int) {
	w.open("xta:MessageBoxStatus", "xmlns:xta", NS)
	w.open("xta:MessagesRemaining")
	if returned == 0 && pending == 0 {
		w.leaf("xta:NoMessageAvailable", NoMatch)
	} else {
		w.leaf("xta:MessagesPending", itoa(int64(pending)))
	}
	w.end("xta:MessagesRemaining")
	w.end("xta:MessageBoxStatus")
}

// fetchID reads MessageFetch/XTAMessageID and returns the submission id.
func (s *Server) fetchID(c *call) (string, error) {
	mf := c.msg.env.Body.MessageFetch
	if mf == nil {
		return "", fault(ParameterIsNotValid, "MessageFetch is required")
	}
	if mf.Extensions != nil {
		return "", fault(UnsupportedExtension, "MessageFetch/Extensions")
	}
	if mf.XTAMessageID == nil || strings.TrimSpace(mf.XTAMessageID.Value) == "" {
		return "", fault(ParameterIsNotValid, "MessageFetch/XTAMessageID is required")
	}
	id, ok := SubmissionID(s.o.ServerID, mf.XTAMessageID.Value)
	if !ok {
		return "", fault(InvalidMessageID, "unknown XTAMessageID")
	}
	return id, nil
}

func (s *Server) threshold(size int64) bool {
	return s.o.MTOMThreshold >= 0 && size > s.o.MTOMThreshold
}

func (s *Server) getMessage(c *call) (*answer, error) {
	id, err := s.fetchID(c)
	if err != nil {
		return nil, err
	}
	// A message a clerk took over in the web mailbox left the box for good: the
	// desk refuses its fetch on XTA's channel (submission.ErrTakenOver).
	sub, rc, err := s.o.Desk.FetchPackage(c.ctx, c.officeID, id, channel.XTA)
	if err != nil {
		return nil, err
	}
	parts := []*part{{elem: "Message", id: ncname("msg-", sub.ID), contentType: "application/xml", encoding: "UTF-8",
		filename: "antragspaket-" + sub.ID + ".xml", size: sub.PackageSize, rc: rc}}
	for i, a := range sub.Attachments {
		_, arc, err := s.o.Desk.OpenAttachment(c.ctx, c.officeID, sub.ID, a.ID, nil)
		if err != nil {
			closeParts(parts)
			return nil, err
		}
		parts = append(parts, &part{elem: "Attachment", id: ncname(fmt.Sprintf("att%d-", i+1), a.ID+"-"+sub.ID),
			contentType: a.MimeType, filename: a.FileName, size: a.Size, rc: arc})
	}
	for i, p := range parts {
		if s.threshold(p.size) {
			p.cid = fmt.Sprintf("part%d.%s@amtsbote", i+1, sub.ID)
		}
	}
	// MessagesPending from the store's indexes alone: reading the waiting records
	// on every getMessage made draining a box of N messages cost N² reads.
	waiting, err := s.o.Desk.Waiting(c.ctx, c.officeID)
	if err != nil {
		closeParts(parts)
		return nil, err
	}
	pending := len(waiting)
	if slices.ContainsFunc(waiting, func(e broker.WaitingEntry) bool { return e.ID == sub.ID }) {
		pending--
	}
	// The first fetch is this one: the answer says when (InitialFetch), and the
	// same time is recorded once the answer is out.
	fetchedAt := time.Now().UTC()
	if sub.FetchedAt == nil {
		cp := *sub
		cp.FetchedAt = &fetchedAt
		sub = &cp
	}
	m := s.metaOf(sub, c.party)
	return &answer{
		header: func(w *xw) {
			w.writeBoxStatus(1, pending)
			w.writeMeta("xta:MessageMetaData", m, true)
		},
		body:  func(w *xw) error { return w.writeContainer("xta:ContentContainer", parts, true) },
		parts: parts,
		// The fetch counts once the message is out (FetchPackage says why); the
		// request's context may have ended with the last byte.
		sent: func() {
			now, err := s.o.Desk.RecordFetch(context.WithoutCancel(c.ctx), c.officeID, sub.ID, channel.XTA, fetchedAt)
			if err != nil {
				s.log.Warn("xta: record the fetch; the message stays new for the office's polls", "office", c.officeID, "submission", sub.ID, "err", err)
				return
			}
			if now != nil && now.FetchedAfterTakeover() {
				// FetchPackage refuses a case taken over: this getMessage was
				// under way at the takeover. The clerk's page says the system
				// got it; its close and replies are refused.
				s.log.Warn("xta: a clerk took the message over in the web mailbox while the office's system fetched it; the system got it all the same",
					"office", c.officeID, "submission", sub.ID)
			}
		},
	}, nil
}

func (s *Server) close(c *call) (*answer, error) {
	id, err := s.fetchID(c)
	if err != nil {
		return nil, err
	}
	// A message whose bytes an operator erased before any getMessage took them
	// never reached the office's system: the desk refuses that pickup in the
	// confirmation's own transaction (ErrBytesRemoved: InvalidMessageIDException).
	// So it refuses the close of one a clerk took over in the web mailbox
	// (submission.ErrTakenOver: InvalidMessageIDException): it answered "done"
	// and the system believed the application was its own.
	if _, err := s.o.Desk.Confirm(c.ctx, c.officeID, id, broker.Pickup{Channel: channel.XTA, Receiver: "XTA account " + c.party.String() + " (close)"}); err != nil {
		return nil, err
	}
	s.log.Info("xta close", "office", c.officeID, "submission", id)
	return &answer{}, nil
}

// --- core.sender ---

func (s *Server) createMessageID(*call) (*answer, error) {
	id := NewMessageID(s.o.ServerID)
	return &answer{body: func(w *xw) error {
		w.leaf("xta:XTAMessageID", id, "xmlns:xta", NS, "id", "mid")
		return nil
	}}, nil
}

func (s *Server) lookupService(c *call) (*answer, error) {
	q := c.msg.env.Body.LookupQuery
	if q == nil || len(q.LookupService) == 0 {
		return nil, fault(ParameterIsNotValid, "LookupQuery/LookupService is required")
	}
	if len(q.LookupService) > 100 {
		return nil, fault(ParameterIsNotValid, "at most 100 LookupService entries")
	}
	for _, ls := range q.LookupService {
		if ls.Reader == nil || strings.TrimSpace(ls.Reader.Identifier.Value) == "" {
			return nil, fault(ParameterIsNotValid, "LookupService/Reader/Identifier is required")
		}
	}
	return &answer{body: func(w *xw) error {
		w.open("xta:LookupStatus", "xmlns:xta", NS)
		for _, ls := range q.LookupService {
			reader := ls.Reader.party()
			svc := strings.TrimSpace(ls.Service)
			ok := reader.Identifier == s.o.AuthorID && (len(s.o.ReplyServices) == 0 || svc == "" || slices.Contains(s.o.ReplyServices, svc))
			w.open("xta:LookupServiceResult")
			w.open("xta:Reader")
			w.writeParty(reader)
			w.end("xta:Reader")
			if svc != "" {
				w.leaf("xta:Service", svc)
			}
			w.open("xta:IsServiceAvailableValue")
			w.leaf("xta:ServiceIsAvailable", fmt.Sprint(ok))
			w.end("xta:IsServiceAvailableValue")
			w.end("xta:LookupServiceResult")
		}
		w.end("xta:LookupStatus")
		return nil
	}}, nil
}

// Reply references: the MessageProperty keys an office may use to name the case a
// reply answers (value: the case's XTAMessageID or its submission id).
var replyRefKeys = []string{"InReplyTo", "amtsbote:inReplyTo", "amtsbote:submissionId"}

// caseOf finds the submission a reply answers.
func (s *Server) caseOf(md *xMetaData) (string, bool) {
	try := func(v string) (string, bool) {
		v = strings.TrimSpace(v)
		if id, ok := SubmissionID(s.o.ServerID, v); ok {
			return id, true
		}
		if _, err := uuid.Parse(v); err == nil && len(v) == 36 {
			return v, true
		}
		return "", false
	}
	for _, p := range md.MessageProperty {
		if slices.Contains(replyRefKeys, strings.TrimSpace(p.Key)) {
			if id, ok := try(p.Value); ok {
				return id, true
			}
		}
	}
	for _, a := range md.AdditionalIdentifier {
		if id, ok := SubmissionID(s.o.ServerID, a.MessageIdentifier); ok {
			return id, true
		}
	}
	if md.Qualifier != nil {
		if id, ok := SubmissionID(s.o.ServerID, md.Qualifier.BusinessScenario.Undefined); ok {
			return id, true
		}
	}
	return "", false
}

func (s *Server) sendMessage(c *call, sync bool) (*answer, error) {
	h := c.msg.env.Header
	if h == nil || h.MessageMetaData == nil {
		return nil, fault(ParameterIsNotValid, "the MessageMetaData header is required")
	}
	md := h.MessageMetaData
	if md.XTAMessageID == nil || strings.TrimSpace(md.XTAMessageID.Value) == "" {
		return nil, fault(ParameterIsNotValid, "MessageMetaData/XTAMessageID is required")
	}
	xtaID := strings.TrimSpace(md.XTAMessageID.Value)
	if md.Originators == nil || md.Originators.Author == nil {
		return nil, fault(ParameterIsNotValid, "MessageMetaData/Originators/Author is required")
	}
	if a := md.Originators.Author.party(); a.Identifier != c.party.Identifier {
		return nil, fault(PermissionDenied, "the Author must be the calling account")
	}
	if md.Reader == nil || md.Reader.party().Identifier != s.o.AuthorID {
		return nil, fault(ParameterIsNotValid, "this service accepts replies addressed to the Reader %s only", s.o.AuthorID)
	}
	caseID, ok := s.caseOf(md)
	if !ok {
		return nil, fault(ParameterIsNotValid, "the reply names no case: set MessageProperty Key=InReplyTo to the case's XTAMessageID")
	}
	cc := c.msg.env.Body.ContentContainer
	if cc == nil || len(cc.Message) == 0 {
		return nil, fault(ParameterIsNotValid, "ContentContainer/Message is required")
	}
	if len(cc.Message) > 1 {
		// One would be stored, the other lost while the office is told "sent".
		return nil, fault(ParameterIsNotValid, "ContentContainer holds %d Message elements; it takes one (send further documents as Attachment)", len(cc.Message))
	}
	if cc.Extensions != nil {
		return nil, fault(UnsupportedExtension, "ContentContainer/Extensions")
	}
	msg, err := replyPart("Message", &cc.Message[0])
	if err != nil {
		return nil, err
	}
	if msg.content, err = c.msg.content(&cc.Message[0]); err != nil {
		return nil, asFault(err)
	}
	if len(msg.content) == 0 {
		// The pull API refuses an empty reply too: the applicant would get a
		// Bescheid with nothing in it.
		return nil, fault(ParameterIsNotValid, "ContentContainer/Message is empty")
	}
	// A message alone is the reply's bytes, and its name the reply's
	// (submission.Reply.FileName): the portal saves the Bescheid as
	// "Bescheid.pdf", not under an id. A bundle's names are its parts'.
	contentType, content, fileName := msg.contentType, msg.content, msg.filename
	var atts []bundlePart
	if len(cc.Attachment) > 0 {
		for i := range cc.Attachment {
			a, err := replyPart("Attachment", &cc.Attachment[i])
			if err != nil {
				return nil, err
			}
			if a.content, err = c.msg.content(&cc.Attachment[i]); err != nil {
				return nil, asFault(err)
			}
			atts = append(atts, a)
		}
		content, contentType = bundle(msg, atts)
		fileName = ""
	}
	kind := "Bescheid"
	if md.Qualifier != nil && strings.TrimSpace(md.Qualifier.MessageType.Value) != "" {
		kind = strings.TrimSpace(md.Qualifier.MessageType.Value)
	}
	if utf8.RuneCountInString(kind) > wire.MaxReplyKindLength || strings.ContainsFunc(kind, unicode.IsControl) {
		// The reply's kind, as the pull API bounds it: the portal reads it
		// (wire.Reply.Kind, at most MaxReplyKindLength characters) and the
		// clerk's page shows it; a MessageType of any length, with line
		// breaks, reached both.
		return nil, fault(ParameterIsNotValid, "Qualifier/MessageType names the reply's kind (Bescheid, Rueckfrage, …): at most %d characters, no control characters", wire.MaxReplyKindLength)
	}
	// The check and the store under one lock of the office: two replies with one id
	// at once must not both pass it (on this gateway; see claimReplyID).
	unlock := s.lockReplies(c.officeID)
	defer unlock()
	if err := s.claimReplyID(c, xtaID, caseID); err != nil {
		return nil, err
	}
	r, err := s.o.Desk.Reply(c.ctx, c.officeID, caseID, broker.ReplyIn{Kind: kind, MessageID: xtaID, ContentType: contentType,
		FileName: fileName, Content: content, Actor: "XTA account " + c.party.String(), Channel: channel.XTA})
	if err != nil {
		return nil, err
	}
	if !sameReply(r, kind, contentType, content, msg, atts) {
		// The desk returned the reply stored before under this id, and stored
		// nothing: another message under a used id was answered as a repeat,
		// and its content dropped while the office was told it was sent.
		return nil, fault(ParameterIsNotValid, "XTAMessageID %s already names another reply to this case (%s, %s, %d bytes, stored %s); this message was not stored: send it with a new XTAMessageID (createMessageID)",
			xtaID, r.Kind, r.ContentType, r.Size, r.At.UTC().Format(time.RFC3339))
	}
	s.log.Info("xta reply stored", "office", c.officeID, "submission", caseID, "reply", r.ID, "bytes", r.Size)
	if !sync {
		return &answer{}, nil
	}
	return &answer{
		header: func(w *xw) { w.empty("xta:MessageMetaDataReply", "xmlns:xta", NS) },
		body: func(w *xw) error {
			w.empty("xta:ContentContainerReply", "xmlns:xta", NS)
			return nil
		},
	}, nil
}

// --- core.transport.base ---

// Transport report status values written in MessageStatus/Status, the
// traffic light the schema documents (MessageStatusType/Status): 0 open, 1
// green, 2 yellow, 3 red. Before 2026-12-07 the gateway wrote 0 for
// delivered, 1 for in progress and 2 for not deliverable here: a
// Fachverfahren that reads the report by the schema took a delivered message
// for one still under way, and one waiting in its box for done.
const (
	StatusInProgress = 0 // open: waiting in the message box or being delivered
	StatusDelivered  = 1 // green: the office has the message (closed or confirmed otherwise); a reply stored
	StatusWarning    = 2 // yellow: done, but not by the reader: a clerk took it over in the web mailbox
	StatusFailed     = 3 // red: cannot be delivered here (handed to another gateway)
)

// reportStatus is the MessageStatus/Status of an application's report.
func reportStatus(sub *submission.Submission) int {
	switch sub.State {
	case submission.StateDelivered, submission.StateAccepted, submission.StateRejected:
		if sub.TakenOverFrom != "" {
			// The office has it, but the reader's system was refused it and
			// told to drop it: green read as its own close.
			return StatusWarning
		}
		return StatusDelivered
	case submission.StateForwarded:
		return StatusFailed
	}
	return StatusInProgress
}

func (s *Server) getTransportReport(c *call) (*answer, error) {
	x := c.msg.env.Body.XTAMessageID
	if x == nil || strings.TrimSpace(x.Value) == "" {
		// The WSDL declares no ParameterIsNotValidException for getTransportReport;
		// a missing id is one the service has nothing about.
		return nil, fault(InvalidMessageID, "XTAMessageID is required")
	}
	var m meta
	var status int
	var sub *submission.Submission
	if id, ok := SubmissionID(s.o.ServerID, x.Value); ok {
		var err error
		sub, err = s.o.Desk.Get(c.ctx, c.officeID, id)
		if err != nil && !errors.Is(err, broker.ErrNotFound) {
			return nil, err
		}
	}
	if sub != nil {
		m = s.metaOf(sub, c.party)
		status = reportStatus(sub)
		if sub.TakenOverFrom != "" {
			m.props = append(m.props, [2]string{"amtsbote:takenOver", "true"})
		}
	} else {
		// Not a case: one of the office's replies (ids from createMessageID have the
		// same form).
		sub, r, err := s.findReply(c, strings.TrimSpace(x.Value))
		if err != nil {
			return nil, err
		}
		m = meta{xtaID: r.MessageID, reader: s.author(), author: c.party, size: r.Size,
			q:      Qualifier{BusinessScenario: "amtsbote Antwort", MessageType: r.Kind, MessageSchema: "urn:amtsbote:reply"},
			origin: r.At, initialSend: r.At, delivery: r.At, idSuffix: r.ID,
			props: [][2]string{{"InReplyTo", MessageID(s.o.ServerID, sub.ID)}, {"amtsbote:replyId", r.ID}}}
		status = StatusDelivered
	}
	now := s.o.Now()
	return &answer{body: func(w *xw) error {
		w.open("xta:ReportResult", "xmlns:xta", NS)
		w.open("xta:TransportReport", "id", "report")
		w.leaf("xta:ReportTime", xsTime(now))
		w.leaf("xta:XTAServerIdentity", s.o.ServerID)
		w.open("xta:MessageStatus")
		w.leaf("xta:Status", fmt.Sprint(status))
		w.end("xta:MessageStatus")
		w.writeMeta("xta:MessageMetaData", m, false)
		w.end("xta:TransportReport")
		w.end("xta:ReportResult")
		return nil
	}}, nil
}

// lockReplies serialises the office's sendMessage calls from claimReplyID to the
// stored reply, and returns the unlock.
func (s *Server) lockReplies(officeID string) func() {
	m, _ := s.replyLocks.LoadOrStore(officeID, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// claimReplyID checks that xtaID may name a reply to the case caseID. An
// XTAMessageID names one message: getTransportReport finds a message by it alone.
// So it must not be the id of one of the office's applications, nor of a reply to
// another case; a repeat for the same case is the same message sent again, stored
// once by the desk. The desk keeps reply ids apart per case only, so this face
// checks the office's other cases itself. Two gateways of a cluster that take the
// same id for two cases in the same instant are not caught (the lock is the
// process's); a Fachverfahren that reuses its ids does so one call after another.
//
// The fault is ParameterIsNotValidException: the WSDL declares no
// InvalidMessageIDException for sendMessage, and a used id is an invalid parameter.
func (s *Server) claimReplyID(c *call, xtaID, caseID string) error {
	if id, ok := SubmissionID(s.o.ServerID, xtaID); ok {
		_, err := s.o.Desk.Get(c.ctx, c.officeID, id)
		if err == nil {
			return fault(ParameterIsNotValid, "XTAMessageID %s names an application, not a new message; ask createMessageID for an id", xtaID)
		}
		if !errors.Is(err, broker.ErrNotFound) {
			return err
		}
	}
	sub, _, found, err := s.lookupReply(c, xtaID)
	if err != nil {
		return err
	}
	if found && sub.ID != caseID {
		return fault(ParameterIsNotValid, "XTAMessageID %s already names a reply to another case; ask createMessageID for a new id", xtaID)
	}
	return nil
}

// findReply looks for a reply of the office with this XTAMessageID.
func (s *Server) findReply(c *call, xtaID string) (*submission.Submission, submission.Reply, error) {
	sub, r, found, err := s.lookupReply(c, xtaID)
	if err != nil {
		return nil, r, err
	}
	if !found {
		return nil, r, fault(InvalidMessageID, "unknown XTAMessageID")
	}
	return sub, r, nil
}

// lookupReply looks for a reply of the office with this XTAMessageID (found=false:
// none). The desk reads an index: before it, every sendMessage and report read
// all of the office's cases, which grew with the office's history.
func (s *Server) lookupReply(c *call, xtaID string) (*submission.Submission, submission.Reply, bool, error) {
	sub, r, err := s.o.Desk.FindReply(c.ctx, c.officeID, xtaID)
	if errors.Is(err, broker.ErrNotFound) {
		return nil, r, false, nil
	}
	if err != nil {
		return nil, r, false, err
	}
	return sub, r, true, nil
}

// --- office accounts ---

// Account is one office's XTA account: the identifier it calls with and the client
// certificates that may use it.
type Account struct {
	OfficeID   string
	Identifier string // the office's XTA identifier (DVDV organisation key)
	Scheme     string // identifierScheme; "" accepts any
	// CertSHA256 lists the hex SHA-256 fingerprints of the DER client certificates
	// allowed for the account (rotation: several).
	CertSHA256 []string
}

// Accounts is an OfficeResolver over a fixed list (from the configuration).
type Accounts []Account

// ResolveOffice implements OfficeResolver.
func (as Accounts) ResolveOffice(_ context.Context, p Party, cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", errors.New("no client certificate")
	}
	sum := sha256.Sum256(cert.Raw)
	fp := hex.EncodeToString(sum[:])
	for _, a := range as {
		if a.Identifier != p.Identifier || (a.Scheme != "" && a.Scheme != p.Scheme) {
			continue
		}
		for _, want := range a.CertSHA256 {
			if strings.EqualFold(strings.ReplaceAll(want, ":", ""), fp) {
				return a.OfficeID, nil
			}
		}
		return "", errors.New("certificate not registered for the account")
	}
	return "", errors.New("unknown account")
}

// KnownCertificate implements CertificateChecker: the certificate is registered
// for some account.
func (as Accounts) KnownCertificate(cert *x509.Certificate) bool {
	if cert == nil {
		return false
	}
	fp := CertFingerprint(cert)
	for _, a := range as {
		for _, want := range a.CertSHA256 {
			if strings.EqualFold(strings.ReplaceAll(want, ":", ""), fp) {
				return true
			}
		}
	}
	return false
}

// CertFingerprint is the hex SHA-256 of a certificate, as Account.CertSHA256 wants it.
func CertFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// --- reply bundles ---

type bundlePart struct {
	contentType, filename string
	content               []byte
	// sentName is the filename as the office sent it, path and all (filename
	// is its submission.FileName): sameReply knows a repeat of a reply stored before
	// 2026-12-07 by it.
	sentName string
}

// replyPart checks the contentType and filename attributes of a reply's content
// element, which become MIME part headers of the reply bundle (and the message's
// contentType the reply's media type), and refuses with ParameterIsNotValid what
// cannot be written there: XML keeps character references for CR LF, so an
// unchecked value ended the header and started the office's own, and the portal
// read the part under another name and type.
func replyPart(elem string, c *xContent) (bundlePart, error) {
	ct, err := mediaType(c.ContentType)
	if err != nil {
		return bundlePart{}, fault(ParameterIsNotValid, "%s/@contentType: %v", elem, err)
	}
	// The name's last element, checked (submission.FileName): the portal and
	// the applicant see it.
	name, err := submission.FileName(c.Filename)
	if err != nil {
		return bundlePart{}, fault(ParameterIsNotValid, "%s/@filename: %v", elem, err)
	}
	return bundlePart{contentType: ct, filename: name, sentName: c.Filename}, nil
}

// mediaType returns a contentType as a MIME header writes it (RFC 2045
// type/subtype with parameters). One with control characters is an error: it
// could only end the header and start another. Anything else that is no media
// type — nothing, or what office systems write there ("PDF", "xml") — is
// application/octet-stream, as the REST API serves a reply it cannot type:
// refusing it refused replies of office systems that had always been taken
// (a review, 2026-12-05).
func mediaType(ct string) (string, error) {
	if strings.ContainsFunc(ct, unicode.IsControl) {
		return "", fmt.Errorf("%q has control characters", ct)
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") {
		return "application/octet-stream", nil
	}
	if out := mime.FormatMediaType(mt, params); out != "" {
		return out, nil
	}
	return "application/octet-stream", nil
}

// bundle keeps a reply with attachments as one multipart/mixed document: the
// message first, then each attachment. Each part's Content-Type and
// Content-Disposition (with the file name, RFC 2231 filename* when it is not
// ASCII) are written by mime.FormatMediaType, so that a MIME reader gives back the
// names and types as the office sent them. The parts are replyPart's: their
// types written as media types, their names checked.
func bundle(msg bundlePart, atts []bundlePart) ([]byte, string) {
	return bundleWith(msg, atts, "amtsbote-reply-"+randHex(12))
}

// bundleWith is bundle with a given boundary.
func bundleWith(msg bundlePart, atts []bundlePart, boundary string) ([]byte, string) {
	var b bytes.Buffer
	write := func(p bundlePart) {
		b.WriteString("--" + boundary + "\r\n")
		b.WriteString("Content-Type: " + p.contentType + "\r\n")
		if p.filename != "" {
			b.WriteString("Content-Disposition: " + mime.FormatMediaType("attachment", map[string]string{"filename": p.filename}) + "\r\n")
		}
		b.WriteString("Content-Transfer-Encoding: binary\r\n\r\n")
		b.Write(p.content)
		b.WriteString("\r\n")
	}
	for _, p := range append([]bundlePart{msg}, atts...) {
		write(p)
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes(), `multipart/mixed; boundary="` + boundary + `"`
}

// sameReply reports whether have, the reply the desk holds under the message's
// XTAMessageID, is the one sent now (content its bytes and contentType its
// media type, from msg and atts): the same MessageType, media type and bytes,
// and a message alone also the same name, as the pull API tells a repeat by
// its Idempotency-Key. A reply with
// attachments is compared as this request would have been stored with have's
// boundary, which bundle draws afresh for every request.
func sameReply(have submission.Reply, kind, contentType string, content []byte, msg bundlePart, atts []bundlePart) bool {
	if have.Kind != kind {
		return false
	}
	if len(atts) > 0 {
		mt, params, err := mime.ParseMediaType(have.ContentType)
		if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
			return false
		}
		if b, ct := bundleWith(msg, atts, params["boundary"]); sameBytes(have, b, ct) {
			return true
		}
		// A reply stored before 2026-12-07 kept its names with their paths
		// (submission.FileName): its repeat, sent after the gateway's update because the
		// answer was lost in the restart, is the same message, not one refused
		// as another and sent again under a new id to reach the applicant twice.
		asSent := func(p bundlePart) bundlePart { p.filename = p.sentName; return p }
		sent := make([]bundlePart, len(atts))
		for i, a := range atts {
			sent[i] = asSent(a)
		}
		b, ct := bundleWith(asSent(msg), sent, params["boundary"])
		return sameBytes(have, b, ct)
	}
	// The message's name is the reply's.
	return have.NamedAs(msg.filename) && sameBytes(have, content, contentType)
}

// sameBytes reports whether have holds content of the media type contentType.
func sameBytes(have submission.Reply, content []byte, contentType string) bool {
	sum := sha256.Sum256(content)
	return have.ContentType == contentType && have.SHA256 == hex.EncodeToString(sum[:])
}

func uuidString() string { return uuid.NewString() }

// ServerTLSConfig is the TLS configuration for the XTA listener: the gateway's
// server certificate and the CAs that issue office client certificates. Client
// certificates are verified when presented; a call without one reaches the handler
// and gets a PermissionDeniedException fault (a handshake failure would tell the
// office nothing).
func ServerTLSConfig(cert tls.Certificate, clientCAs *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    clientCAs,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}
}

// logText is err for the log: its LogText where it has one (a refusal whose
// words quote the request), else its text.
func logText(err error) string {
	var lt interface{ LogText() string }
	if errors.As(err, &lt) {
		return lt.LogText()
	}
	return err.Error()
}
