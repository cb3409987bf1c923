// Package problem writes RFC 9457 "problem details" (application/problem+json).
//
// Every error a client can see has a stable type URI listed here; clients branch on
// Type, never on Title or Detail. docs/problems.md explains each type.
package problem

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/amtsbote/amtsbote/internal/httpunwrap"
)

// ContentType is the media type of a problem document.
const ContentType = "application/problem+json"

// Base is the prefix of every problem type URI.
const Base = "https://amtsbote.de/problems/"

// Stable problem types. Never rename one; add new ones instead.
const (
	TypeMalformed           = Base + "malformed-request"     // 400: not parseable
	TypeUnauthenticated     = Base + "unauthenticated"       // 401: missing or wrong credentials
	TypeUntrustedSigner     = Base + "untrusted-signer"      // 403: signer not in the trust store
	TypeInvalidSignature    = Base + "invalid-signature"     // 403: signature does not verify
	TypeSenderMismatch      = Base + "sender-mismatch"       // 403: Absender differs from signer
	TypeNotFound            = Base + "not-found"             // 404
	TypeBytesRemoved        = Base + "bytes-removed"         // 410: the retention period of the bytes ended
	TypeMethodNotAllowed    = Base + "method-not-allowed"    // 405: the path exists, the method does not (see Allow)
	TypeConflict            = Base + "conflict"              // 409: state does not allow it
	TypeTakenOver           = Base + "taken-over"            // 409: a clerk took the case over in the web mailbox
	TypeTooLarge            = Base + "too-large"             // 413: a configured limit exceeded
	TypeUnsupportedMedia    = Base + "unsupported-media"     // 415
	TypeInvalidField        = Base + "invalid-field"         // 422: a field fails its rule
	TypeUnknownService      = Base + "unknown-service"       // 422: LeiKa key not in directory
	TypeUnknownPlace        = Base + "unknown-place"         // 422: place not in directory
	TypeAmbiguousPlace      = Base + "ambiguous-place"       // 422: place names several Gebiete
	TypeNoResponsibleOffice = Base + "no-responsible-office" // 422: no office for service+place
	TypeAttachmentDigest    = Base + "attachment-digest"     // 422: attachment differs from signed digest
	TypeMultipartParts      = Base + "multipart-parts"       // 422: parts missing, unexpected or duplicated
	TypeRangeNotSatisfiable = Base + "range-not-satisfiable" // 416: a Range outside the content
	TypePreconditionFailed  = Base + "precondition-failed"   // 412: If-Match or If-Unmodified-Since does not hold
	TypeHeadersTooLarge     = Base + "headers-too-large"     // 431: request line and headers over the limit
	TypeUnavailable         = Base + "unavailable"           // 503: shutting down or not ready
	// TypeGatewayCertificate (503): the gateway's own signing certificate is
	// outside its validity, so it accepts nothing whose receipt would verify nowhere.
	TypeGatewayCertificate = Base + "gateway-certificate-expired"
	TypeInternal           = Base + "internal"          // 500: a bug or storage failure, never bad input
	TypeReloadIncomplete   = Base + "reload-incomplete" // 504: a cluster's reload lacks some gateways' answers

	// The peer endpoint of the Portalverbund (docs/federation.md).
	TypeFederationLoop          = Base + "federation/loop"           // 409: this gateway is already in the hop chain
	TypeFederationHopLimit      = Base + "federation/hop-limit"      // 409: the chain is as long as allowed
	TypeFederationClockSkew     = Base + "federation/clock-skew"     // 400: the envelope's time is outside the window
	TypeFederationMisdirected   = Base + "federation/misdirected"    // 421: the envelope names another gateway
	TypeFederationUntrustedPeer = Base + "federation/untrusted-peer" // 403: the forwarding gateway is not a trusted peer
	// 422: the envelope's NachrichtID or LeiKa key is not the signed package's
	TypeFederationEnvelopeMismatch = Base + "federation/envelope-mismatch"
	// 429: the peer's status question waited for the one it has in flight
	TypeFederationTooManyQuestions = Base + "federation/too-many-questions"
)

// Problem is one problem document. Extension members go into Extra.
type Problem struct {
	Type     string         `json:"type"`
	Title    string         `json:"title"`
	Status   int            `json:"status"`
	Detail   string         `json:"detail,omitempty"`
	Instance string         `json:"instance,omitempty"`
	Extra    map[string]any `json:"-"`
}

func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

// MarshalJSON flattens Extra into the top-level object as RFC 9457 asks.
func (p *Problem) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(p.Extra)+5)
	for k, v := range p.Extra {
		m[k] = v
	}
	m["type"] = p.Type
	m["title"] = p.Title
	m["status"] = p.Status
	if p.Detail != "" {
		m["detail"] = p.Detail
	}
	if p.Instance != "" {
		m["instance"] = p.Instance
	}
	return json.Marshal(m)
}

// Types lists every stable problem type, for documentation checks and clients.
func Types() []string {
	out := make([]string, 0, len(titles))
	for t := range titles {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// LabelOther is the label of every type not listed here (Label).
const LabelOther = "other"

// Label is typ as the label type of amtsbote_http_problems_total: its short
// name without Base ("untrusted-signer", "federation/misdirected") when it is
// one of the types listed here, LabelOther otherwise. Only the listed ones, so
// that the label stays bounded whatever a caller puts into Type.
func Label(typ string) string {
	if _, ok := titles[typ]; ok {
		return strings.TrimPrefix(typ, Base)
	}
	return LabelOther
}

// New builds a problem with the default title for its type.
func New(status int, typ, detail string) *Problem {
	return &Problem{Type: typ, Title: titles[typ], Status: status, Detail: detail}
}

// With adds an extension member and returns p.
func (p *Problem) With(key string, v any) *Problem {
	if p.Extra == nil {
		p.Extra = map[string]any{}
	}
	p.Extra[key] = v
	return p
}

// Write sends p as the response.
func Write(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	var body bytes.Buffer
	_ = json.NewEncoder(&body).Encode(p)
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Declared, not chunked: an answer sent while the request's body still
	// arrives (a refused upload) is complete for the client when its bytes are,
	// not only when the connection closes; curl stops sending only then.
	w.Header().Set("Content-Length", strconv.Itoa(body.Len()))
	// Counted by route and type (amtsbote_http_problems_total): the status alone
	// does not tell a portal key the trust store lacks (403 untrusted-signer)
	// from a wrong token (401) or a package built wrongly.
	noteType(w, Label(p.Type))
	w.WriteHeader(p.Status)
	_, _ = w.Write(body.Bytes())
}

// typeNoter is the writer that counts the answers (internal/httpmetrics's, its
// NoteProblem method). An interface, not that package's function as
// httpmetrics.NoteFault is for the SOAP faces: this package is imported by the
// portal and office client libraries, which should not link Prometheus.
type typeNoter interface{ NoteProblem(typ string) }

// noteType tells the counting writer under w, found through the writers'
// Unwrap chain, the type of the problem answered; without one it does nothing.
func noteType(w http.ResponseWriter, typ string) {
	if n, ok := httpunwrap.Find[typeNoter](w); ok {
		n.NoteProblem(typ)
	}
}

var titles = map[string]string{
	TypeMalformed:           "Malformed request",
	TypeUnauthenticated:     "Authentication required",
	TypeUntrustedSigner:     "Signer not trusted",
	TypeInvalidSignature:    "Invalid signature",
	TypeSenderMismatch:      "Sender does not match signer",
	TypeNotFound:            "Not found",
	TypeBytesRemoved:        "Bytes removed (retention or erasure)",
	TypeMethodNotAllowed:    "Method not allowed",
	TypeConflict:            "Conflict",
	TypeTakenOver:           "Taken over in the web mailbox",
	TypeTooLarge:            "Request too large",
	TypeUnsupportedMedia:    "Unsupported media type",
	TypeInvalidField:        "Invalid field",
	TypeUnknownService:      "Unknown service",
	TypeUnknownPlace:        "Unknown place",
	TypeAmbiguousPlace:      "Ambiguous place",
	TypeNoResponsibleOffice: "No responsible office",
	TypeAttachmentDigest:    "Attachment does not match its signed digest",
	TypeMultipartParts:      "Parts do not match the package's attachment references",
	TypeRangeNotSatisfiable: "Range not satisfiable",
	TypePreconditionFailed:  "Precondition failed",
	TypeHeadersTooLarge:     "Request headers too large",
	TypeUnavailable:         "Service unavailable",
	TypeGatewayCertificate:  "Gateway certificate not valid",
	TypeInternal:            "Internal error",
	TypeReloadIncomplete:    "Reload not confirmed by every gateway",

	TypeFederationLoop:             "Forwarding loop",
	TypeFederationHopLimit:         "Hop limit reached",
	TypeFederationClockSkew:        "Clock skew too large",
	TypeFederationMisdirected:      "Envelope addressed to another gateway",
	TypeFederationUntrustedPeer:    "Peer gateway not trusted",
	TypeFederationEnvelopeMismatch: "Envelope does not name the package it carries",
	TypeFederationTooManyQuestions: "Too many status questions at once",
}
