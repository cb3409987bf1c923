// Package wire is the contract of the gateway's HTTP API as Go code: the JSON shapes
// portals and offices read, the request bodies they send, the paths and the headers.
// The server (package api) maps its storage model onto these types, and the clients
// (portal, fachverfahren, the webhook notification's links) build on the same ones,
// so a field or path is spelled once.
//
// wire is a leaf: it imports only the standard library (no server, storage or queue
// code), so a client that imports it stays small. The types are a contract of their
// own, deliberately separate from package submission: a change of the storage model
// does not change what clients see, and operator-only data (an event's note) has no
// field here to leak through. Field names are stable; new fields may be added.
package wire

import "time"

// State is where a submission stands (the "state" member).
type State string

// The states. Stable: portals and offices match on them.
const (
	StateQueued     State = "queued"      // waiting for its first attempt
	StateRetrying   State = "retrying"    // an attempt failed transiently; another is scheduled
	StateHandedOver State = "handed_over" // the channel took it; the office's confirmation is to come
	StateDelivered  State = "delivered"   // the office has it
	StateHeld       State = "held"        // no channel left; waits for an operator or the office's pickup
	StateAccepted   State = "accepted"    // the office accepted the application
	StateRejected   State = "rejected"    // the office rejected it, with a reason
	StateForwarded  State = "forwarded"   // handed to a peer gateway, which now owns delivery
)

// States lists every state.
func States() []State {
	return []State{StateQueued, StateRetrying, StateHandedOver, StateDelivered, StateHeld, StateAccepted, StateRejected, StateForwarded}
}

// Final reports whether the office has decided.
func (s State) Final() bool { return s == StateAccepted || s == StateRejected }

// Decision outcomes.
const (
	OutcomeAccepted = "accepted"
	OutcomeRejected = "rejected"
)

// Receipt kinds in paths (ReceiptPath, OfficeReceiptPath).
const (
	ReceiptEingang    = "eingang"    // the Eingangsbestaetigung, signed at intake
	ReceiptZustellung = "zustellung" // the Zustellbestaetigung, signed at delivery
	// ReceiptPeer is the Eingangsbestaetigung of the peer gateway of another state
	// that took a forwarded package over (Portalverbund), signed by that gateway.
	ReceiptPeer = "peer"
)

// Response headers of POST /v1/submissions.
const (
	HeaderSubmissionID = "Amtsbote-Submission-Id"
	HeaderDuplicate    = "Amtsbote-Duplicate" // "true" when the message was accepted before
)

// The office's reply (POST OfficeRepliesPath): the query parameter that names
// its kind, the request header that names it in the office's own terms, the
// one that names its file, and their bounds in characters. The same
// Idempotency-Key with the same kind, media type, file name and bytes is a
// repeat, answered 200 with the reply stored first
// (and HeaderDuplicate); with anything else, 409 conflict.
const (
	ReplyKindParam       = "kind"
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderContentDisposition names a reply's file, on its POST and on its
	// download: attachment; filename="Bescheid.pdf".
	HeaderContentDisposition = "Content-Disposition"
	MaxReplyKindLength       = 100
	MaxIdempotencyKeyLength  = 200
)

// Reply kinds the gateway's own clients send; any other kind of at most
// MaxReplyKindLength characters is taken as well.
const (
	ReplyBescheid   = "Bescheid"
	ReplyRueckfrage = "Rueckfrage"
)

// Event is one entry of a submission's log as portals and offices see it. Operators
// see more (the admin API); there is deliberately no note here.
type Event struct {
	Seq          uint64    `json:"seq"`
	SubmissionID string    `json:"submissionId"`
	At           time.Time `json:"at"`
	Type         string    `json:"type"`
	Channel      string    `json:"channel,omitempty"`
	Attempt      int       `json:"attempt,omitempty"`
	Actor        string    `json:"actor,omitempty"` // who acted: an office system, a named office user, an operator
	Detail       string    `json:"detail,omitempty"`
}

// Decision is the office's answer.
type Decision struct {
	Outcome string    `json:"outcome"` // OutcomeAccepted or OutcomeRejected
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor,omitempty"`
}

// OfficeRef names an office.
type OfficeRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// StatusView is the portal's view of a submission (GET /v1/submissions/{id}).
type StatusView struct {
	ID        string `json:"id"`
	MessageID string `json:"messageId"`
	// CaseID is FIT-Connect's case reference: ID, or for a Nachreichung (the
	// package's Kopf/Bezug named an earlier application) the case's, the id
	// of its first package. The portal's view has it as the office's and the
	// callbacks do.
	CaseID      string     `json:"caseId"`
	State       State      `json:"state"`
	LeikaKey    string     `json:"leikaKey"`
	Service     string     `json:"service"`
	Place       string     `json:"place"`
	Office      OfficeRef  `json:"office"`
	ReceivedAt  time.Time  `json:"receivedAt"`
	DeliveredAt *time.Time `json:"deliveredAt,omitempty"`
	Decision    *Decision  `json:"decision,omitempty"`
	// Replies are the office's messages back to the applicant (a Bescheid, a
	// Rückfrage), oldest first; each has a link to its bytes.
	Replies []Reply           `json:"replies,omitempty"`
	Events  []Event           `json:"events"`
	Links   map[string]string `json:"links"`
}

// Reply is one message of the office back to the applicant.
type Reply struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	ContentType string `json:"contentType,omitempty"`
	// FileName is the name the office gave the file (its last path
	// element): save it under this name. Absent when it named none.
	FileName string    `json:"fileName,omitempty"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	Channel  string    `json:"channel"`
	At       time.Time `json:"at"`
	// FetchedAt is when the portal first read the bytes whole (for a case
	// another state's gateway forwarded: when that gateway fetched them for
	// its portal); absent until then.
	FetchedAt *time.Time `json:"fetchedAt,omitempty"`
	Link      string     `json:"link"`
}

// Link names in StatusView.Links. An office view has one "attachment:<id>" link per
// attachment besides these.
const (
	LinkReceipt          = "receipt"
	LinkDeliveryReceipt  = "deliveryReceipt"
	LinkPeerReceipt      = "peerReceipt"
	LinkPackage          = "package"
	LinkAccept           = "accept"
	LinkReject           = "reject"
	LinkAttachmentPrefix = "attachment:"
	// LinkReplies (office view) is where the office posts a reply to the
	// applicant (OfficeRepliesPath); its replies are listed in Replies, each
	// with the link to read it back.
	LinkReplies = "replies"
	// LinkFollowUps (office view of a case, not of a Nachreichung) lists the
	// case's Nachreichungen (OfficeFollowUpsPath).
	LinkFollowUps = "followUps"
)

// Attachment describes one attachment (Anlage) of a submission.
type Attachment struct {
	ID       string `json:"id"`
	FileName string `json:"fileName"`
	MimeType string `json:"mimeType"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// OfficeSubmission is the office's view of one submission
// (GET /v1/office/submissions/{id}, and the answer to a decision).
type OfficeSubmission struct {
	StatusView
	// SubmissionID and DestinationID, with StatusView's CaseID, are
	// FIT-Connect's names of a submission ready for pickup
	// (SubmissionForPickup), so an entry of the office's list carries what
	// FIT-Connect's pickup list does: SubmissionID equals ID, and so does
	// CaseID but for a Nachreichung; DestinationID is the office's destination
	// UUID (OfficeDestinationID), the one the webhook notification names.
	SubmissionID  string       `json:"submissionId"`
	DestinationID string       `json:"destinationId"`
	DeliveryID    string       `json:"deliveryId"`
	Sender        string       `json:"sender"`
	PackageSHA256 string       `json:"packageSha256"`
	PackageSize   int64        `json:"packageSize"`
	Attachments   []Attachment `json:"attachments"`
	// TakenOver is set when a clerk took the case over in the office's web
	// mailbox while it was on its way to the office's own system: the case is
	// the clerk's, and the system drops it — its package, attachments and
	// decision answer 409 taken-over (docs/pull.md). Absent otherwise.
	TakenOver *TakenOver `json:"takenOver,omitempty"`
}

// TakenOver says when a clerk took a case over in the web mailbox, and from
// which channel of the office's system (api, xta, webhook, transfer). It does
// not name the clerk: the office's system has no use for the name, and a
// client's log or ticket, where such answers end up, is no place for it; the
// case's delivered event names the receiver, for the office's own record.
type TakenOver struct {
	At   time.Time `json:"at"`
	From string    `json:"from"`
}

// OfficeList is one page of GET /v1/office/submissions; Next is the path of the
// following page, empty on the last one.
type OfficeList struct {
	Submissions []OfficeSubmission `json:"submissions"`
	Count       int                `json:"count"`
	Next        string             `json:"next,omitempty"`
}

// DecisionRequest is the body of POST .../accept and .../reject (a rejection needs
// a reason; at most MaxReasonLength characters).
type DecisionRequest struct {
	Reason string `json:"reason,omitempty"`
}

// MaxReasonLength bounds DecisionRequest.Reason.
const MaxReasonLength = 2000

// Place is one place of the directory as GET /v1/places answers it, and one
// candidate of an ambiguous-place refusal (the problem's "candidates").
type Place struct {
	ARS        string `json:"ars"` // send the package again with this Ort/ARS
	AGS        string `json:"ags,omitempty"`
	Name       string `json:"name"`
	Level      string `json:"level"`
	Postcode   string `json:"postcode,omitempty"`
	Label      string `json:"label,omitempty"`
	Kreis      string `json:"kreis,omitempty"`
	Land       string `json:"land"`
	Population int    `json:"population,omitempty"`
}
