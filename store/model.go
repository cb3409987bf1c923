package store

import "time"

// State is where a submission stands. The transitions are the broker's business; the
// store only knows which states still need a delivery attempt (the outbox).
type State string

const (
	StateQueued    State = "queued"    // waiting for its first attempt on the current channel
	StateRetrying  State = "retrying"  // an attempt failed transiently; another is scheduled
	StateDelivered State = "delivered" // the office's system confirmed receipt
	StateHeld      State = "held"      // no push channel left: the office fetches it by API or mailbox
	StateAccepted  State = "accepted"  // the office accepted the application
	StateRejected  State = "rejected"  // the office rejected it, with a reason
	StateForwarded State = "forwarded" // handed to a peer gateway, which now owns delivery
)

// Dispatchable reports whether a submission in this state still needs a delivery attempt.
func (s State) Dispatchable() bool { return s == StateQueued || s == StateRetrying }

// Final reports whether the office has decided.
func (s State) Final() bool { return s == StateAccepted || s == StateRejected }

// Submission is one accepted application package and its delivery state.
type Submission struct {
	ID         string `json:"id"`
	DeliveryID string `json:"deliveryId"`
	MessageID  string `json:"messageId"`
	Sender     string `json:"sender"`
	SignerID   string `json:"signerId,omitempty"`

	LeikaKey    string `json:"leikaKey"`
	ServiceName string `json:"serviceName"`
	Place       string `json:"place"` // as the citizen gave it
	AreaARS     string `json:"areaArs,omitempty"`
	AreaName    string `json:"areaName,omitempty"`
	OfficeID    string `json:"officeId"`
	OfficeName  string `json:"officeName"`

	// Targets is the channel plan fixed at acceptance: tried in order, the next one
	// when a channel fails for good. Secrets are not stored; they come from the
	// configuration when an attempt is made.
	Targets     []TargetRef `json:"targets"`
	TargetIndex int         `json:"targetIndex"`
	// Attempts counts attempts on the current target; Generation counts how often the
	// submission was (re)queued, so a stale queue message can be recognised.
	Attempts      int       `json:"attempts"`
	TotalAttempts int       `json:"totalAttempts"`
	Generation    int       `json:"generation"`
	NextAttemptAt time.Time `json:"nextAttemptAt,omitempty"`

	PackageSHA256 string           `json:"packageSha256"`
	PackageSize   int64            `json:"packageSize"`
	Attachments   []AttachmentMeta `json:"attachments,omitempty"`

	State      State     `json:"state"`
	ReceivedAt time.Time `json:"receivedAt"`
	UpdatedAt  time.Time `json:"updatedAt"`

	DeliveredAt *time.Time `json:"deliveredAt,omitempty"`
	Receiver    string     `json:"receiver,omitempty"`
	Decision    *Decision  `json:"decision,omitempty"`
}

// CurrentTarget returns the channel the next attempt goes to, if any is left.
func (s *Submission) CurrentTarget() (TargetRef, bool) {
	if s.TargetIndex < 0 || s.TargetIndex >= len(s.Targets) {
		return TargetRef{}, false
	}
	return s.Targets[s.TargetIndex], true
}

// TargetRef names one channel of the office (without its secret).
type TargetRef struct {
	Channel  string `json:"channel"`
	Endpoint string `json:"endpoint,omitempty"`
}

// AttachmentMeta describes a stored attachment; its bytes are the blob named SHA256.
type AttachmentMeta struct {
	ID       string `json:"id"`
	FileName string `json:"fileName"`
	MimeType string `json:"mimeType"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// Decision is the office's answer.
type Decision struct {
	Outcome string    `json:"outcome"` // "accepted" or "rejected"
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// Event is one entry of a submission's log. Events are never changed or removed.
type Event struct {
	Seq          uint64    `json:"seq"`
	SubmissionID string    `json:"submissionId"`
	At           time.Time `json:"at"`
	Type         string    `json:"type"`
	Channel      string    `json:"channel,omitempty"`
	Attempt      int       `json:"attempt,omitempty"`
	Detail       string    `json:"detail,omitempty"`
}

// Event types. Stable: portals and dashboards match on them.
const (
	EventReceived      = "received"
	EventRouted        = "routed"
	EventQueued        = "queued"
	EventAttemptFailed = "attempt_failed"
	EventChannelFailed = "channel_failed"
	EventFallback      = "fallback"
	EventDelivered     = "delivered"
	EventHeld          = "held"
	EventFetched       = "fetched"
	EventAccepted      = "accepted"
	EventRejected      = "rejected"
	EventRequeued      = "requeued"
)
