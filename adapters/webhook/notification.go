package webhook

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/wire"
)

// TypeNewSubmissions is FIT-Connect's callback type URI for "submissions ready for
// pickup". We use it unchanged so that receivers written against FIT-Connect
// recognise the notification.
const TypeNewSubmissions = "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions"

// MaxNotificationBytes bounds what ReadVerified reads from a request body. A
// notification is a few KiB even with many attachments.
const MaxNotificationBytes = 1 << 20

// Notification is the JSON body POSTed to the office's endpoint. The first three
// fields follow FIT-Connect's CallbackNewSubmissions; the rest are amtsbote's.
// Receivers must ignore fields they do not know (new ones may be added).
type Notification struct {
	Type string `json:"type"`
	// SubmissionIDs is FIT-Connect's (deprecated there, still widely read) list.
	SubmissionIDs []string `json:"submissionIds"`
	// Submissions is FIT-Connect's SubmissionForPickup list. DestinationID is the
	// office's destinationId (wire.OfficeDestinationID: a UUID, as FIT-Connect
	// requires, the same /v1/routes gives; the readable id is OfficeID) and CaseID
	// the submission id, or for a Nachreichung the id of the application it
	// belongs to (the office files it with that case).
	Submissions []SubmissionForPickup `json:"submissions"`

	// DeliveryID is stable across every attempt of this submission (= webhook-id);
	// receivers drop duplicates by it.
	DeliveryID   string    `json:"deliveryId"`
	SubmissionID string    `json:"submissionId"`
	MessageID    string    `json:"messageId,omitempty"`
	Sender       string    `json:"sender,omitempty"`
	OfficeID     string    `json:"officeId"`
	OfficeName   string    `json:"officeName,omitempty"`
	LeikaKey     string    `json:"leikaKey"`
	ServiceName  string    `json:"serviceName,omitempty"`
	Attempt      int       `json:"attempt"`
	CreatedAt    time.Time `json:"createdAt,omitzero"`

	Package     PackageRef      `json:"package"`
	Attachments []AttachmentRef `json:"attachments"`
	Links       Links           `json:"links"`
}

// SubmissionForPickup mirrors FIT-Connect's schema of the same name.
type SubmissionForPickup struct {
	DestinationID string `json:"destinationId"`
	SubmissionID  string `json:"submissionId"`
	CaseID        string `json:"caseId"`
}

// PackageRef announces the signed package; the receiver fetches it from Href and
// checks the bytes against SHA256.
type PackageRef struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Href   string `json:"href"`
}

// AttachmentRef announces one Anlage. Without its file name: the citizen chose
// it ("ausweis_erika_mustermann.pdf") and it is personal data, while the
// notification discloses ids only (docs/webhook.md); the office reads the name
// from the submission it fetches with its token (a data protection audit).
type AttachmentRef struct {
	ID       string `json:"id"`
	MimeType string `json:"mimeType,omitempty"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	Href     string `json:"href"`
}

// Links are the gateway's office API for this submission (see docs/webhook.md); the
// paths are package wire's.
type Links struct {
	Submission string `json:"submission"` // the office's view: status, events, links
	Package    string `json:"package"`
	Accept     string `json:"accept"`
	Reject     string `json:"reject"`
	// Replies is where the office posts its reply to the applicant (a
	// Bescheid, a Rückfrage: POST with ?kind=, the bytes as the body); absent
	// from a gateway of a build before the office API took replies.
	Replies string `json:"replies,omitempty"`
}

// ErrWrongType is returned by ReadVerified for a verified body of another type.
var ErrWrongType = errors.New("webhook: notification of unknown type")

// ErrBodyTooLarge is returned by ReadVerified when the body exceeds MaxNotificationBytes.
var ErrBodyTooLarge = errors.New("webhook: notification body too large")

// buildNotification derives the notification from d; base is the gateway's public
// base URL without a trailing slash.
func buildNotification(base string, d adapters.Delivery) Notification {
	id := d.SubmissionID
	sub := base + wire.OfficeSubmissionPath(id)
	pkg := base + wire.OfficePackagePath(id)
	n := Notification{
		Type:          TypeNewSubmissions,
		SubmissionIDs: []string{d.SubmissionID},
		Submissions:   []SubmissionForPickup{{DestinationID: wire.OfficeDestinationID(d.OfficeID), SubmissionID: d.SubmissionID, CaseID: cmp.Or(d.CaseID, d.SubmissionID)}},
		DeliveryID:    d.ID,
		SubmissionID:  d.SubmissionID,
		MessageID:     d.MessageID,
		Sender:        d.Sender,
		OfficeID:      d.OfficeID,
		OfficeName:    d.OfficeName,
		LeikaKey:      d.LeikaKey,
		ServiceName:   d.ServiceName,
		Attempt:       d.Attempt,
		CreatedAt:     d.CreatedAt.UTC(),
		Package:       PackageRef{SHA256: d.PackageSHA256, Size: d.PackageSize, Href: pkg},
		Attachments:   make([]AttachmentRef, 0, len(d.Attachments)),
		Links: Links{Submission: sub, Package: pkg,
			Accept:  base + wire.OfficeDecisionPath(id, wire.OutcomeAccepted),
			Reject:  base + wire.OfficeDecisionPath(id, wire.OutcomeRejected),
			Replies: base + wire.OfficeRepliesPath(id)},
	}
	for _, a := range d.Attachments {
		n.Attachments = append(n.Attachments, AttachmentRef{
			ID: a.ID, MimeType: a.MimeType, Size: a.Size, SHA256: a.SHA256,
			Href: base + wire.OfficeAttachmentPath(id, a.ID),
		})
	}
	return n
}

// ReadVerified is the receiver's one call: it reads r's body (at most
// MaxNotificationBytes), checks the signature header sets with Verify (one that
// verifies suffices, so a receiver on either secret of a rotating sender keeps
// working) and decodes the notification. Answer 401 on a *VerifyError, 500 on
// ErrInvalidSecret (the receiver's own secret is missing or invalid: the gateway
// retries a 5xx, and gives a 4xx up), 400 otherwise, and 2xx only after the
// notification is stored.
func ReadVerified(r *http.Request, secret string, now time.Time, tolerance time.Duration) (Notification, []byte, error) {
	body, err := httpbody.ReadAll(io.LimitReader(r.Body, MaxNotificationBytes+1), r.ContentLength)
	if err != nil {
		return Notification{}, nil, fmt.Errorf("webhook: read notification: %w", err)
	}
	if len(body) > MaxNotificationBytes {
		return Notification{}, nil, ErrBodyTooLarge
	}
	if err := Verify(r.Header, body, secret, now, tolerance); err != nil {
		return Notification{}, body, err
	}
	var n Notification
	if err := json.Unmarshal(body, &n); err != nil {
		return Notification{}, body, fmt.Errorf("webhook: decode notification: %w", err)
	}
	if n.Type != TypeNewSubmissions {
		return n, body, ErrWrongType
	}
	return n, body, nil
}

// trimBase normalises the public base URL once so links never get a double slash.
func trimBase(s string) string { return strings.TrimRight(s, "/") }
