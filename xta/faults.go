package xta

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"slices"
)

// Exception names the XTA exception elements of XTA-Webservice-Exceptions.xsd.
type Exception string

// The exceptions of XTA core 3.1.1.
const (
	PermissionDenied           Exception = "PermissionDeniedException"
	InvalidMessageID           Exception = "InvalidMessageIDException"
	TechnicalProblem           Exception = "TechnicalProblemException"
	MessageSchemaViolation     Exception = "MessageSchemaViolationException"
	MessageVirusDetection      Exception = "MessageVirusDetectionException"
	ParameterIsNotValid        Exception = "ParameterIsNotValidException"
	SyncAsync                  Exception = "SyncAsyncException"
	NotImplemented             Exception = "NotImplementedException"
	ParameterNotSupported      Exception = "ParameterNotSupportedException"
	UnsupportedExtension       Exception = "UnsupportedExtensionException"
	ExternalServiceUnavailable Exception = "ExternalServiceUnavailableException"
)

// ErrorCode is one entry of the XTA error number code list (Code.Fehlernummer,
// list urn:xoev-de:kosit:codeliste:xta.core.fehlernummer) as amtsbote writes it.
type ErrorCode struct {
	Code string
	Text string // German short text, written as the fault's Reason
}

// FehlernummerListVersion is the code list version written with every ErrorCode.
const FehlernummerListVersion = "1.0"

// Codes maps every exception amtsbote raises to its error number. They live in this
// one table so they can be aligned with the published code list in one place (see
// docs/xta.md, "Returned codes").
var Codes = map[Exception]ErrorCode{
	PermissionDenied:           {"9020", "Zugriff verweigert"},
	InvalidMessageID:           {"9030", "Unbekannte XTAMessageID"},
	TechnicalProblem:           {"9000", "Technisches Problem"},
	MessageSchemaViolation:     {"9040", "Nachricht nicht schemakonform"},
	MessageVirusDetection:      {"9050", "Schadcode erkannt"},
	ParameterIsNotValid:        {"9060", "Parameter fehlt oder ist ungültig"},
	SyncAsync:                  {"9070", "Synchrone/asynchrone Übermittlung passt nicht"},
	NotImplemented:             {"9080", "Methode nicht implementiert"},
	ParameterNotSupported:      {"9090", "Parameter nicht unterstützt"},
	UnsupportedExtension:       {"9100", "Erweiterung nicht unterstützt"},
	ExternalServiceUnavailable: {"9110", "Externer Dienst nicht verfügbar"},
}

// Fault is an XTA exception as a SOAP 1.2 fault. Detail is shown to the caller: it
// never carries another office's data or internal errors.
type Fault struct {
	Exception Exception
	Detail    string
}

func (f *Fault) Error() string {
	if f.Detail == "" {
		return string(f.Exception)
	}
	return string(f.Exception) + ": " + f.Detail
}

// Receiver reports whether the fault is the service's (env:Receiver), not the caller's.
func (f *Fault) Receiver() bool {
	return f.Exception == TechnicalProblem || f.Exception == ExternalServiceUnavailable
}

// declaredFaults are the exceptions the WSDL declares for each operation of the
// service (the faults of its portType operations); TestDeclaredFaultsAreTheWSDLs
// keeps the table in step with the official WSDL.
var declaredFaults = map[string][]Exception{
	"getStatusList":      {NotImplemented, ParameterNotSupported, PermissionDenied, TechnicalProblem, UnsupportedExtension},
	"getMessage":         {InvalidMessageID, NotImplemented, ParameterIsNotValid, ParameterNotSupported, PermissionDenied, TechnicalProblem, UnsupportedExtension},
	"close":              {InvalidMessageID, NotImplemented, ParameterIsNotValid, ParameterNotSupported, PermissionDenied, TechnicalProblem, UnsupportedExtension},
	"createMessageID":    {NotImplemented, ParameterNotSupported, PermissionDenied, TechnicalProblem, UnsupportedExtension},
	"lookupService":      {ExternalServiceUnavailable, NotImplemented, ParameterIsNotValid, ParameterNotSupported, PermissionDenied, TechnicalProblem, UnsupportedExtension},
	"sendMessage":        {MessageSchemaViolation, MessageVirusDetection, NotImplemented, ParameterIsNotValid, ParameterNotSupported, PermissionDenied, SyncAsync, TechnicalProblem, UnsupportedExtension},
	"sendMessageSync":    {ExternalServiceUnavailable, MessageSchemaViolation, MessageVirusDetection, NotImplemented, ParameterIsNotValid, ParameterNotSupported, PermissionDenied, SyncAsync, TechnicalProblem, UnsupportedExtension},
	"checkAccountActive": {NotImplemented, ParameterNotSupported, PermissionDenied, TechnicalProblem, UnsupportedExtension},
	"getTransportReport": {InvalidMessageID, NotImplemented, ParameterNotSupported, PermissionDenied, TechnicalProblem, UnsupportedExtension},
}

// declared returns f, or, when the WSDL does not declare f's exception for the
// operation, the declared exception that stands for it: ParameterNotSupported for
// ParameterIsNotValid (getStatusList, getTransportReport, createMessageID and
// checkAccountActive declare no ParameterIsNotValidException), ParameterIsNotValid
// for InvalidMessageID (sendMessage, sendMessageSync). An operation not
// yet known (a message refused before its action was read) keeps f.
func declared(op string, f *Fault) *Fault {
	ds, ok := declaredFaults[op]
	if !ok || slices.Contains(ds, f.Exception) {
		return f
	}
	if f.Exception == ParameterIsNotValid && slices.Contains(ds, ParameterNotSupported) {
		return &Fault{Exception: ParameterNotSupported, Detail: f.Detail}
	}
	if f.Exception == InvalidMessageID && slices.Contains(ds, ParameterIsNotValid) {
		// sendMessage and sendMessageSync: the case a reply names is one of
		// their parameters (a client generated from the WSDL knows no other
		// fault for it; exceptionOf says so in words, this catches a new path).
		return &Fault{Exception: ParameterIsNotValid, Detail: f.Detail}
	}
	return f
}

func fault(e Exception, format string, a ...any) *Fault {
	return &Fault{Exception: e, Detail: fmt.Sprintf(format, a...)}
}

// httpStatus follows the SOAP 1.2 HTTP binding, 500 for env:Receiver, and
// sender for env:Sender (Options.SenderFaultStatus: 400 unless set to 500).
func (f *Fault) httpStatus(sender int) int {
	if f.Receiver() {
		return http.StatusInternalServerError
	}
	return sender
}

// writeFault writes an env:Fault with the XTA exception as its detail.
func (w *xw) writeFault(f *Fault) {
	code := Codes[f.Exception]
	value := "env:Sender"
	if f.Receiver() {
		value = "env:Receiver"
	}
	reason := code.Text
	if f.Detail != "" {
		reason += ": " + f.Detail
	}
	w.open("env:Fault")
	w.open("env:Code")
	w.leaf("env:Value", value)
	w.end("env:Code")
	w.open("env:Reason")
	w.leaf("env:Text", reason, "xml:lang", "de")
	w.end("env:Reason")
	w.open("env:Detail")
	w.open("xta:"+string(f.Exception), "xmlns:xta", NS)
	w.open("xta:ErrorCode", "listURI", ListFehlernummer, "listVersionID", FehlernummerListVersion)
	w.leaf("code", code.Code)
	w.end("xta:ErrorCode")
	if f.Detail != "" {
		w.leaf("xta:Detail", f.Detail)
	}
	w.end("xta:" + string(f.Exception))
	w.end("env:Detail")
	w.end("env:Fault")
}

// versionMismatch12 is the SOAP 1.2 VersionMismatch fault for an envelope of an
// unknown namespace.
func versionMismatch12() []byte {
	var w xw
	w.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	w.open("env:Envelope", "xmlns:env", NSSoap12)
	w.open("env:Header")
	w.open("env:Upgrade")
	w.empty("env:SupportedEnvelope", "qname", "env:Envelope")
	w.end("env:Upgrade")
	w.end("env:Header")
	w.open("env:Body")
	w.open("env:Fault")
	w.open("env:Code")
	w.leaf("env:Value", "env:VersionMismatch")
	w.end("env:Code")
	w.open("env:Reason")
	w.leaf("env:Text", "Nur SOAP 1.2 wird unterstützt (only SOAP 1.2 envelopes are accepted)", "xml:lang", "de")
	w.end("env:Reason")
	w.end("env:Fault")
	w.end("env:Body")
	w.end("env:Envelope")
	return w.Bytes()
}

// versionMismatch11 answers a SOAP 1.1 envelope the way SOAP 1.2 (Part 2, appendix A)
// asks: a SOAP 1.1 VersionMismatch fault with an Upgrade header naming SOAP 1.2.
func versionMismatch11() []byte {
	var w xw
	w.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	w.open("soap11:Envelope", "xmlns:soap11", NSSoap11)
	w.open("soap11:Header")
	w.open("env:Upgrade", "xmlns:env", NSSoap12)
	w.empty("env:SupportedEnvelope", "qname", "ns:Envelope", "xmlns:ns", NSSoap12)
	w.end("env:Upgrade")
	w.end("soap11:Header")
	w.open("soap11:Body")
	w.open("soap11:Fault")
	w.leaf("faultcode", "soap11:VersionMismatch")
	w.leaf("faultstring", "Nur SOAP 1.2 wird unterstützt (only SOAP 1.2 envelopes are accepted)")
	w.end("soap11:Fault")
	w.end("soap11:Body")
	w.end("soap11:Envelope")
	return w.Bytes()
}

// mustUnderstandFault is the SOAP 1.2 env:MustUnderstand fault with the NotUnderstood
// header block the standard asks for.
func mustUnderstandFault(e *errMustUnderstand) []byte {
	var w xw
	w.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	w.open("env:Envelope", "xmlns:env", NSSoap12)
	w.open("env:Header")
	w.empty("env:NotUnderstood", "qname", "h:"+e.name.Local, "xmlns:h", e.name.Space)
	w.end("env:Header")
	w.open("env:Body")
	w.open("env:Fault")
	w.open("env:Code")
	w.leaf("env:Value", "env:MustUnderstand")
	w.end("env:Code")
	w.open("env:Reason")
	w.leaf("env:Text", "Header-Block wird nicht unterstützt: "+e.name.Local, "xml:lang", "de")
	w.end("env:Reason")
	w.end("env:Fault")
	w.end("env:Body")
	w.end("env:Envelope")
	return w.Bytes()
}

// asFault maps a parse error to the fault the caller gets.
func asFault(err error) *Fault {
	var f *Fault
	if errors.As(err, &f) {
		return f
	}
	var tl *errTooLarge
	if errors.As(err, &tl) {
		return fault(ParameterIsNotValid, "the message exceeds the limit of %d bytes", tl.limit)
	}
	var m *errMalformed
	if errors.As(err, &m) {
		return fault(ParameterIsNotValid, "%s", m.msg)
	}
	return fault(TechnicalProblem, "internal error")
}

// errActionMismatch: the wsa:Action of a message differs from the action its
// transport names (the Content-Type action parameter, or a SOAPAction header).
type errActionMismatch struct{ wsa, transport string }

func (e *errActionMismatch) Error() string {
	return fmt.Sprintf("wsa:Action %q differs from the transport's action %q", e.wsa, e.transport)
}

// ActionFaultWSA is the action of WS-Addressing's own faults (WS-Addressing 1.0
// SOAP Binding, section 6).
const ActionFaultWSA = NSWSA + "/fault"

// actionMismatchFault is the fault WS-Addressing 1.0's SOAP binding (6.4.1,
// Invalid Addressing Header, subsubcode ActionMismatch) defines for a message whose
// [action] and SOAP action differ: env:Sender / wsa:InvalidAddressingHeader /
// wsa:ActionMismatch, with both actions in wsa:ProblemAction. It is no XTA
// exception: the message is refused before it reaches an operation.
func actionMismatchFault(e *errActionMismatch, a addressing) []byte {
	return invalidAddressingFault("wsa:ActionMismatch", "wsa:Action und SOAP-Action des Transports stimmen nicht überein", a, func(w *xw) {
		w.open("wsa:ProblemAction")
		w.leaf("wsa:Action", e.wsa)
		w.leaf("wsa:SoapAction", e.transport)
		w.end("wsa:ProblemAction")
	})
}

// invalidCardinalityFault is WS-Addressing's fault (6.4.1, subsubcode
// InvalidCardinality) for an addressing header that occurs twice, naming it in
// wsa:ProblemHeaderQName.
func invalidCardinalityFault(name xml.Name, a addressing) []byte {
	return invalidAddressingFault("wsa:InvalidCardinality", "Ein WS-Addressing-Header kommt mehrfach vor", a, func(w *xw) {
		w.leaf("wsa:ProblemHeaderQName", "wsa:"+name.Local)
	})
}

// onlyAnonymousFault is WS-Addressing's fault (6.4.1.6, subsubcode
// OnlyAnonymousAddressSupported) for a response endpoint of an address of its
// own, which this service's policy (wsam:AnonymousResponses) does not serve;
// header (ReplyTo, FaultTo) is named in wsa:ProblemHeaderQName.
func onlyAnonymousFault(header string, a addressing) []byte {
	return invalidAddressingFault("wsa:OnlyAnonymousAddressSupported", "Antworten gehen nur über die Verbindung der Anfrage (wsa:"+header+" muss anonymous sein)", a, func(w *xw) {
		w.leaf("wsa:ProblemHeaderQName", "wsa:"+header)
	})
}

// invalidAddressingFault is env:Sender / wsa:InvalidAddressingHeader / subsub with
// detail's elements in env:Detail.
func invalidAddressingFault(subsub, reasonDE string, a addressing, detail func(w *xw)) []byte {
	var w xw
	w.envelopeOpen()
	if a.used {
		w.open("env:Header")
		w.wsaHeaders(ActionFaultWSA, a)
		w.end("env:Header")
	}
	w.open("env:Body")
	w.open("env:Fault")
	w.open("env:Code")
	w.leaf("env:Value", "env:Sender")
	w.open("env:Subcode")
	w.leaf("env:Value", "wsa:InvalidAddressingHeader")
	w.open("env:Subcode")
	w.leaf("env:Value", subsub)
	w.end("env:Subcode")
	w.end("env:Subcode")
	w.end("env:Code")
	w.open("env:Reason")
	w.leaf("env:Text", reasonDE, "xml:lang", "de")
	w.leaf("env:Text", "A header representing a Message Addressing Property is not valid and the message cannot be processed", "xml:lang", "en")
	w.end("env:Reason")
	w.open("env:Detail")
	detail(&w)
	w.end("env:Detail")
	w.end("env:Fault")
	w.end("env:Body")
	w.end("env:Envelope")
	return w.Bytes()
}
