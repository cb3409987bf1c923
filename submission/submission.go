// Package submission is the one home of a submission's lifecycle: the model of an
// accepted application package and every change of its state, as pure code. Nothing
// here touches a disk, a queue or a clock of its own: each transition takes the time
// as an argument, checks that it is legal from the current state, changes the record
// and returns the events that say so. The broker decides *when* a transition happens
// and the store persists the record together with those events in one transaction
// (store.Update's rule: every state change has its events). Keeping the rules here
// means every channel and every office-side face (pull API, XTA, mailbox) gets the
// same ones, and they are tested in microseconds without bbolt or NATS.
//
// Two different things are called "accept" in German e-government; they are kept
// apart in the names:
//
//   - the gateway receiving a package (Eingang): New, the "received" event, the
//     Eingangsbestaetigung, broker.Receive;
//   - the office accepting the application (Annahme): Decide with OutcomeAccepted,
//     the "accepted" event and state. Its counterpart is OutcomeRejected.
package submission

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/channel"
)

// Errors of the transitions. Both mean "nothing was changed".
var (
	// ErrIllegal: the transition is not allowed from the record's current state
	// (e.g. a decision before the office has the package, or a second, different
	// decision). Callers report it as a conflict.
	ErrIllegal = errors.New("illegal state transition")
	// ErrStale: a delivery outcome for an attempt that is no longer current (the
	// submission moved on: delivered by another path, or requeued). Callers drop it.
	ErrStale = errors.New("stale delivery outcome")
	// ErrTakenOver: a clerk took the case over in the office's web mailbox while
	// it was on its way to the office's own system (TakenOverFrom), and that
	// system now asks to pick it up. It always comes with ErrIllegal (callers
	// that know no better report a conflict); the office's faces name it
	// (the pull API's 409 taken-over, XTA's InvalidMessageIDException).
	ErrTakenOver = errors.New("taken over by a clerk in the web mailbox")
	// ErrDecided: a decision on a case decided otherwise already (a decision is
	// final). It always comes with ErrIllegal; a face that names the decision
	// that stands asks for it, not for every conflict.
	ErrDecided = errors.New("already decided")
	// ErrNotDelivered: a reply, a decision or the processed mark for a case the
	// office does not have yet (not delivered, not fetched). It always comes
	// with ErrIllegal; the faces name it, as the office's integrator can do
	// something about it (fetch the package), which "illegal state
	// transition" did not tell.
	ErrNotDelivered = errors.New("the office does not have the case yet")
)

// State is where a submission stands.
type State string

const (
	StateQueued   State = "queued"   // waiting for its first attempt on the current channel
	StateRetrying State = "retrying" // an attempt failed transiently; another is scheduled
	// StateHandedOver: the channel took the package (a case folder written, a message
	// put in the office's XTA list) but the office's confirmation is still to come.
	StateHandedOver State = "handed_over"
	StateDelivered  State = "delivered" // the office's system or a person confirmed receipt
	StateHeld       State = "held"      // no channel left; waits for an operator or the office's pickup
	StateAccepted   State = "accepted"  // the office accepted the application (Annahme)
	StateRejected   State = "rejected"  // the office rejected it, with a reason
	StateForwarded  State = "forwarded" // handed to a peer gateway, which now owns delivery
)

// States lists every state, for validation of filters and for tests.
func States() []State {
	return []State{StateQueued, StateRetrying, StateHandedOver, StateDelivered, StateHeld, StateAccepted, StateRejected, StateForwarded}
}

// Dispatchable reports whether a submission in this state still needs a delivery
// attempt (it has an outbox entry).
func (s State) Dispatchable() bool { return s == StateQueued || s == StateRetrying }

// Final reports whether the office has decided.
func (s State) Final() bool { return s == StateAccepted || s == StateRejected }

// Submission is one received application package and its delivery state.
type Submission struct {
	ID         string `json:"id"`
	DeliveryID string `json:"deliveryId"`
	MessageID  string `json:"messageId"`
	Sender     string `json:"sender"`
	SignerID   string `json:"signerId,omitempty"`
	// CaseID is, for a Nachreichung (the package's Kopf/Bezug names an
	// earlier application of the sender), the case it belongs to: the first
	// package's id, also through a chain of them. "" for a new case, whose
	// case is its own id (Case).
	CaseID string `json:"caseId,omitempty"`

	LeikaKey    string `json:"leikaKey"`
	ServiceName string `json:"serviceName"`
	Place       string `json:"place"` // as the citizen gave it
	AreaARS     string `json:"areaArs,omitempty"`
	AreaName    string `json:"areaName,omitempty"`
	OfficeID    string `json:"officeId"`
	OfficeName  string `json:"officeName"`

	// Targets is the channel plan fixed at intake: tried in order, the next one when
	// a channel fails for good. Only channel names are stored: the endpoint, secret
	// and parameters come from the configuration when an attempt is made, so a
	// rotated endpoint and secret always travel together.
	Targets     []Target `json:"targets"`
	TargetIndex int      `json:"targetIndex"`
	// Attempts counts attempts on the current target; Generation counts how often the
	// submission was (re)queued, so a stale queue message can be recognised.
	Attempts      int `json:"attempts"`
	TotalAttempts int `json:"totalAttempts"`
	Generation    int `json:"generation"`
	// NextAttemptAt is absent while unset: omitzero, as every time.Time of the
	// record, since omitempty never omits a struct and the admin API showed
	// "0001-01-01T00:00:00Z" (api/openapi.yaml says "when set").
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
	// RetryDelay is the wait last scheduled: NextAttemptAt less the time it was
	// set (the failure, AttemptFailed, or a pause of the office's endpoint that
	// moved it, Defer). NextAttemptAt is a wall time, and a clock stepped back
	// since (NTP correcting a clock that ran a day ahead) put it a day off; the
	// dispatcher waits no longer than this from when it sees the retry. Zero in
	// records written before 2026-12-05.
	RetryDelay time.Duration `json:"retryDelay,omitempty"`
	// Deferred names the attempt after which a pause of the office's endpoint
	// last moved NextAttemptAt (Defer): one such move, and one event, per stated
	// next attempt, however often the pause keeps the package back after it.
	Deferred Deferral `json:"deferred,omitzero"`

	PackageSHA256 string       `json:"packageSha256"`
	PackageSize   int64        `json:"packageSize"`
	Attachments   []Attachment `json:"attachments,omitempty"`
	// ContentDigest names the application the package carries
	// (intake.ApplicationDigest, "app-sha256:<hex>"): a package under the same
	// Absender and NachrichtID is a repeat of this one only if it carries the same
	// one, even when built and signed anew. Empty in records written before
	// 2026-12-05, and another digest ("SHA-256:…") in those of that afternoon's
	// builds: every repeat of those is answered as one.
	ContentDigest string `json:"contentDigest,omitempty"`

	State      State     `json:"state"`
	ReceivedAt time.Time `json:"receivedAt"`
	UpdatedAt  time.Time `json:"updatedAt"`

	HandedOverAt *time.Time `json:"handedOverAt,omitempty"`
	DeliveredAt  *time.Time `json:"deliveredAt,omitempty"`
	Receiver     string     `json:"receiver,omitempty"`
	// DeliveredVia is the channel the delivery came by (the delivered event's):
	// the push channel that handed the package over, or the face the office took
	// it by — api for its system's fetch, mailbox for a clerk's, whatever the
	// current target. It says whether the office can decide the case here
	// (AwaitsDecision). Empty in records delivered before 2026-12-06
	// (DeliveryChannel).
	DeliveredVia string `json:"deliveredVia,omitempty"`
	// TakenOverFrom is the channel of the office's own system (api, xta, webhook,
	// transfer) the case was on its way to when a clerk took it over in the web
	// mailbox ("Eingang hier übernehmen", BoundForSystem): from then on the case
	// is the clerk's, and that system picks it up no more (PickupAllowed). The
	// delivery's record alone could not tell a takeover from a clerk opening a
	// case that was the mailbox's anyway: DeliveredVia is mailbox for both, and
	// the current target is api also for a held case a clerk opened after it
	// was queued again. Empty for every other delivery and in records of builds
	// before 2026-12-06, whose takeovers show only in the delivered event.
	TakenOverFrom string `json:"takenOverFrom,omitempty"`
	// HandedOverAfterTakeoverAt is when the gateway learned that a transfer
	// attempt the takeover did not stop put the case folder into the office's
	// share all the same (HandOver, HandedOverAfterTakeover): the import may
	// take the case the clerk is processing. For an attempt that ended after
	// the takeover that is when it ended; for one whose end the gateway lost
	// (a crash after the rename) it is when the dispatcher found the folder,
	// and the rename came before the takeover. Set once; nil on every other
	// record.
	HandedOverAfterTakeoverAt *time.Time `json:"handedOverAfterTakeoverAt,omitempty"`
	// FetchedAt is when the office's system first read the package without taking
	// it (XTA getMessage; close takes it): XTA's InitialFetch, kept with the record
	// so that a restarted gateway, and every gateway of a cluster, knows it.
	FetchedAt *time.Time `json:"fetchedAt,omitempty"`
	Decision  *Decision  `json:"decision,omitempty"`
	// Replies are the office's messages back to the applicant (a Bescheid, a
	// Rückfrage), oldest first; their bytes are blobs like the package's.
	Replies []Reply `json:"replies,omitempty"`
	// Processed is the office's own mark that it has dealt with the case.
	Processed bool `json:"processed,omitempty"`
	// BytesRemovedAt is set when the retention period after the office's final
	// answer ended and the package, attachment and reply bytes were removed; the
	// record, its events and receipts stay (for their own, longer period).
	BytesRemovedAt *time.Time `json:"bytesRemovedAt,omitempty"`
	// WithdrawalsOwed names the channels whose copy of the case, waiting for
	// the office outside the gateway (the transfer folder's case folder), the
	// gateway still has to withdraw: set in the transaction that makes the
	// copy unwanted — the erasure that removes the bytes, the hand-over that
	// came after a clerk's takeover — and cleared by the transaction that
	// records what the withdrawal found (removed, taken by the office, not
	// there). Kept in the record, not in memory, so that a withdrawal a crash
	// or a share that did not answer cut short is asked again (broker,
	// withdraw.go, "owed"). Empty on every other record.
	WithdrawalsOwed []string `json:"withdrawalsOwed,omitempty"`

	// Origin is set when a peer gateway forwarded the package here (Portalverbund):
	// who forwarded it and the gateways it passed. Sender stays the portal that signed
	// the package, so a repeated hop is the same submission (see forward.go).
	Origin *Origin `json:"origin,omitempty"`
	// Forward is set once the package was forwarded to a peer gateway, which owns its
	// delivery from then on; its answers update the record (see forward.go).
	Forward *Forward `json:"forward,omitempty"`
}

// Reply is one message of the office back to the applicant, linked to the case it
// answers. The return path to the citizen builds on it; the portal sees it in the
// status API.
type Reply struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`                  // e.g. "Bescheid", "Rueckfrage", or the XTA message type
	MessageID   string `json:"messageId,omitempty"`   // the office's own id (XTA: the XTAMessageID)
	ContentType string `json:"contentType,omitempty"` // of the stored bytes
	// FileName is the name the office gave the file (FileName's rule): the
	// portal offers the applicant "Bescheid.pdf" to save, not an id. "" when
	// it named none, for a reply bundled with attachments over XTA (its
	// parts carry their names), and for replies stored before 2026-12-07.
	FileName string    `json:"fileName,omitempty"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	Channel  string    `json:"channel"`
	Actor    string    `json:"actor,omitempty"`
	At       time.Time `json:"at"`
	// FetchedAt is when the case's portal first read the reply's bytes whole
	// (for a case a peer gateway forwarded here: when that gateway fetched
	// them for its portal); nil until then (ReplyFetched). The office sees
	// that its Bescheid left the gateway towards the applicant.
	FetchedAt *time.Time `json:"fetchedAt,omitempty"`
	// PeerSeq is, for a reply fetched from a peer gateway, its place in that
	// gateway's list of the package's replies (from 1): the forwarding gateway
	// fetches the replies after a failing one too, and asks for those after
	// the first it lacks (federation.Tracker). 0 for every other reply, and for
	// a peer's reply stored by a build before 2026-12-06 night, which fetched
	// them in order and so holds the peer's first ones.
	PeerSeq int `json:"peerSeq,omitempty"`
}

// Case is the id of the case s belongs to (FIT-Connect's caseId): its own id,
// or for a Nachreichung the first package's (CaseID).
func (s *Submission) Case() string {
	if s.CaseID != "" {
		return s.CaseID
	}
	return s.ID
}

// NamedAs reports whether a repeat of r that names its file name (its face's
// idempotency rule) is r as to the name: the same name, or any for a reply
// stored without one — before 2026-12-07 no face kept names, and a repeat
// sent after the update is still the same message.
func (r Reply) NamedAs(name string) bool {
	return r.FileName == "" || r.FileName == name
}

// CurrentTarget returns the channel the next attempt goes to, if any is left.
func (s *Submission) CurrentTarget() (Target, bool) {
	if s.TargetIndex < 0 || s.TargetIndex >= len(s.Targets) {
		return Target{}, false
	}
	return s.Targets[s.TargetIndex], true
}

// Target names one channel of the office. Its address and secret are not part of
// the record (see Submission.Targets).
type Target struct {
	Channel string `json:"channel"`
}

// Attachment describes a stored attachment; its bytes are the blob named SHA256.
type Attachment struct {
	ID       string `json:"id"`
	FileName string `json:"fileName"`
	MimeType string `json:"mimeType"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// Decision outcomes.
const (
	OutcomeAccepted = "accepted"
	OutcomeRejected = "rejected"
)

// Decision is the office's answer.
type Decision struct {
	Outcome string    `json:"outcome"` // OutcomeAccepted or OutcomeRejected
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor,omitempty"` // who decided: office system or a named office user
	// RecordedAt is when this gateway recorded the decision, by its own clock. At
	// is the decider's time: a peer gateway's for a forwarded package (PeerUpdate),
	// whose clock may run behind; the retention counts from RecordedAt, so a peer
	// 100 days behind cannot have a case's bytes removed 100 days early. Zero in
	// records written before 2026-12-05: At counts (DecidedLocally).
	RecordedAt time.Time `json:"recordedAt,omitzero"`
}

// DecidedLocally is when this gateway recorded the decision (RecordedAt, or At
// in a record that has none): the time the retention counts from.
func (d *Decision) DecidedLocally() time.Time {
	if d.RecordedAt.IsZero() {
		return d.At
	}
	return d.RecordedAt
}

// ClampTime bounds t, a time another clock gave (a peer gateway, an office's
// system), to [lo, hi]; hi wins should lo be after it (this gateway's clock
// went back since lo was recorded).
func ClampTime(t, lo, hi time.Time) time.Time {
	if t.Before(lo) {
		t = lo
	}
	if t.After(hi) {
		t = hi
	}
	return t
}

// Event is one entry of a submission's log. Events are never removed while the
// record exists, and never changed but once: when the case's bytes are removed,
// the text in them that came from outside the gateway goes too (DropOutsideText).
//
// Detail is shown to everyone who may read the submission (the portal included);
// Note carries what only operators may see (e.g. an office endpoint's error body).
type Event struct {
	Seq          uint64    `json:"seq"`
	SubmissionID string    `json:"submissionId"`
	At           time.Time `json:"at"`
	Type         string    `json:"type"`
	Channel      string    `json:"channel,omitempty"`
	Attempt      int       `json:"attempt,omitempty"`
	Actor        string    `json:"actor,omitempty"`
	Detail       string    `json:"detail,omitempty"`
	Note         string    `json:"note,omitempty"`
}

// Event types. Stable: portals and dashboards match on them.
const (
	EventReceived      = "received"
	EventRouted        = "routed"
	EventQueued        = "queued"
	EventAttemptFailed = "attempt_failed"
	EventChannelFailed = "channel_failed"
	EventFallback      = "fallback"
	EventHandedOver    = "handed_over"
	EventDelivered     = "delivered"
	EventHeld          = "held"
	EventAccepted      = "accepted"
	EventRejected      = "rejected"
	EventRequeued      = "requeued"
	EventReplied       = "replied"
	// EventProcessed / EventReopened: the office marked its case as dealt with in its
	// own process (an office-internal mark, not a decision the applicant receives).
	EventProcessed = "processed"
	EventReopened  = "reopened"
	// EventBytesRemoved: the retention period ended, or an operator erased the
	// case; the bytes are gone, and the text from outside in the earlier events
	// (DropOutsideText).
	EventBytesRemoved = "bytes_removed"
	// EventFetched: the office's system read the package for the first time
	// without taking it yet (XTA getMessage); taking it is delivered.
	EventFetched = "fetched"
	// EventReplyFetched: the portal read a reply's bytes whole for the first
	// time (a peer gateway, for a case it forwarded here), Reply.FetchedAt.
	EventReplyFetched = "reply_fetched"
	// EventWithdrawal: what an erasure (or the retention) did to the copy of
	// the case a channel keeps outside the gateway until the office takes it
	// (the transfer folder's case folder): removed, already taken by the
	// office, or not reachable. It changes no state.
	EventWithdrawal = "withdrawal"
)

// OfType returns the events of evs that are of type typ, in their order.
func OfType(evs []Event, typ string) []Event {
	var out []Event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// Params is what intake knows about a package it has verified and routed.
type Params struct {
	ID, DeliveryID                          string
	MessageID, Sender, SignerID             string
	LeikaKey, ServiceName, Place            string
	AreaARS, AreaName, OfficeID, OfficeName string
	Targets                                 []Target
	PackageSHA256, ContentDigest            string
	PackageSize                             int64
	Attachments                             []Attachment
	CaseID                                  string // Submission.CaseID
}

// New is the gateway receiving a package (Eingang): the record in its first state
// and the events received, routed and queued (or held, when the office has no
// channel this gateway can use).
func New(p Params, now time.Time) (*Submission, []Event) {
	s := &Submission{
		ID: p.ID, DeliveryID: p.DeliveryID,
		MessageID: p.MessageID, Sender: p.Sender, SignerID: p.SignerID,
		LeikaKey: p.LeikaKey, ServiceName: p.ServiceName, Place: p.Place,
		AreaARS: p.AreaARS, AreaName: p.AreaName, OfficeID: p.OfficeID, OfficeName: p.OfficeName,
		Targets: p.Targets, Generation: 1,
		PackageSHA256: p.PackageSHA256, PackageSize: p.PackageSize, Attachments: p.Attachments,
		ContentDigest: p.ContentDigest, CaseID: p.CaseID,
		ReceivedAt: now, UpdatedAt: now,
	}
	evs := []Event{
		{At: now, Type: EventReceived, Detail: fmt.Sprintf("signed by %s, %d bytes, sha256 %s", p.SignerID, p.PackageSize, p.PackageSHA256)},
		{At: now, Type: EventRouted, Detail: fmt.Sprintf("%s (%s) for %s", p.OfficeID, p.AreaName, p.LeikaKey)},
	}
	if t, ok := s.CurrentTarget(); ok {
		s.State = StateQueued
		evs = append(evs, Event{At: now, Type: EventQueued, Channel: t.Channel})
	} else {
		s.State = StateHeld
		// "ready for pickup" promised what an office without pull access or a
		// mailbox user cannot do (an audit): the portal reads this text.
		evs = append(evs, Event{At: now, Type: EventHeld, Detail: heldDetail("office has no channel on this gateway", "")})
	}
	return s, evs
}

// current checks that a delivery outcome belongs to the attempt that is running now:
// the submission still needs delivery and was not requeued since (generation).
func (s *Submission) current(gen int) error {
	if !s.State.Dispatchable() || s.Generation != gen {
		return fmt.Errorf("%w: %s is %s (generation %d, outcome for %d)", ErrStale, s.ID, s.State, s.Generation, gen)
	}
	return nil
}

// Reason is why an attempt or a channel failed: Public is shown to the portal,
// Internal (the receiver's own words, which may hold anything) only to operators.
type Reason struct {
	Public   string
	Internal string
	// Log is what the gateway's log may say (adapters.LogReason: Internal without
	// the receiver's own words, which can quote the application); "" falls back to
	// Public. Not stored: the log outlives every retention and erasure.
	Log string
	// NextIn, when set, is the delay AttemptFailed states ("next attempt in ...")
	// instead of retryAt-now: a gateway running on a compressed test clock
	// (broker.Config.TimeScale) states the schedule's delay, not the scaled wait.
	NextIn time.Duration
	// Paused says the office's endpoint keeps every attempt away for the stated
	// delay (its circuit breaker is open, or it asked to be called later): the
	// next attempt comes then at the earliest, when it may be another package's
	// attempt that probes the endpoint and fails. AttemptFailed says so rather
	// than promise the time.
	Paused bool
}

// ForOperator is the operator's whole reason (the admin console): the internal
// reason, or the public one where that is all there is (a channel the gateway
// does not have).
func (r Reason) ForOperator() string {
	if r.Internal != "" {
		return r.Internal
	}
	return r.Public
}

// AttemptFailed records a transient failure of the attempt of generation gen and
// schedules the next attempt at retryAt.
func (s *Submission) AttemptFailed(now time.Time, gen int, why Reason, retryAt time.Time) ([]Event, error) {
	if err := s.current(gen); err != nil {
		return nil, err
	}
	t, _ := s.CurrentTarget()
	s.Attempts++
	s.TotalAttempts++
	s.State = StateRetrying
	s.NextAttemptAt = retryAt
	s.RetryDelay = max(retryAt.Sub(now), 0)
	next := retryAt.Sub(now)
	if why.NextIn > 0 {
		next = why.NextIn
	}
	detail := fmt.Sprintf("%s; next attempt in %s", why.Public, next.Round(time.Millisecond))
	if why.Paused {
		detail += " at the earliest (attempts to the office's endpoint are paused)"
		// The event states the pause already: a longer one (a failed probe
		// opens the breaker again) moves nothing (Defer).
		s.Deferred = Deferral{Generation: gen, TotalAttempts: s.TotalAttempts}
	}
	return []Event{{At: now, Type: EventAttemptFailed, Channel: t.Channel, Attempt: s.Attempts,
		Detail: detail, Note: why.Internal}}, nil
}

// PutsOff reports whether e is the queued event Defer writes (a waiting
// package's next attempt moved to the end of its office endpoint's pause), not
// the first one New writes: that one has no detail. The mailbox and the demo
// word the two differently.
func (e Event) PutsOff() bool { return e.Type == EventQueued && e.Detail != "" }

// Deferral names an attempt by the record's Generation and TotalAttempts when
// it was the last one (Submission.Deferred).
type Deferral struct {
	Generation    int `json:"generation"`
	TotalAttempts int `json:"totalAttempts"`
}

// Defer moves the next attempt of a waiting package (queued or retrying, of
// generation gen with total attempts made) to until, because the office's
// endpoint keeps every attempt away until then (its circuit breaker is open
// after another package's failure, or it asked to be called later): the
// record's NextAttemptAt and the last event said an earlier time, which the
// gateway would not keep. The queued event states the new time "at the
// earliest", as AttemptFailed does while the endpoint is paused (why.Public
// says why, why.NextIn as there). It changes nothing (no event) when the
// package waits until then anyway, or when a pause moved it since its last
// attempt already: a breaker that opens again after every failed probe, for
// the hours an office may be down, would otherwise add an event a cool-down to
// every waiting case; the one event says "at the earliest".
func (s *Submission) Defer(now time.Time, gen, attempts int, why Reason, until time.Time) ([]Event, error) {
	if err := s.current(gen); err != nil {
		return nil, err
	}
	if s.TotalAttempts != attempts {
		return nil, fmt.Errorf("%w: %s made attempt %d since (deferral after %d)", ErrStale, s.ID, s.TotalAttempts, attempts)
	}
	mark := Deferral{Generation: gen, TotalAttempts: attempts}
	if !s.NextAttemptAt.Before(until) || s.Deferred == mark {
		return nil, nil
	}
	t, _ := s.CurrentTarget()
	s.NextAttemptAt = until
	s.RetryDelay = max(until.Sub(now), 0)
	s.Deferred = mark
	next := until.Sub(now)
	if why.NextIn > 0 {
		next = why.NextIn
	}
	return []Event{{At: now, Type: EventQueued, Channel: t.Channel,
		Detail: fmt.Sprintf("%s; next attempt in %s at the earliest (attempts to the office's endpoint are paused)", why.Public, next.Round(time.Millisecond)),
		Note:   why.Internal}}, nil
}

// ChannelGone gives up on the current channel because the office no longer has it
// (taken from its configuration, or from the gateway) and goes on with the
// office's channels as configured now (plan, from the first; Reason says why):
// an office moved from its webhook to a transfer folder gets its waiting
// packages in the folder, where the plan made at intake sent them to its
// mailbox, or held them. An empty plan, or one that still has the channel, goes
// on with the plan made at intake, as ChannelFailed does.
func (s *Submission) ChannelGone(now time.Time, gen int, why Reason, plan []Target) ([]Event, error) {
	if err := s.current(gen); err != nil {
		return nil, err
	}
	t, _ := s.CurrentTarget()
	s.TotalAttempts++
	return s.moveOnTo(now, []Event{{At: now, Type: EventChannelFailed, Channel: t.Channel, Attempt: s.Attempts + 1, Detail: why.Public, Note: why.Internal}}, plan), nil
}

// moveOnTo goes on with plan after evs, from its first channel this package has
// not failed on (the old plan's channels before the current one): the office's
// system that refused it for good (a 422) is not sent it again with a fresh
// retry budget. It goes as moveOn when plan is empty or still holds the current
// channel (it would come back to it), and holds the package when every channel
// of plan failed before.
func (s *Submission) moveOnTo(now time.Time, evs []Event, plan []Target) []Event {
	t, _ := s.CurrentTarget()
	if len(plan) == 0 || slices.Contains(plan, t) {
		return s.moveOn(now, evs)
	}
	return s.replan(now, evs, t, plan)
}

// replan puts the package on plan without the channels it failed on before,
// from the first; held when none is left. from is the channel it leaves.
func (s *Submission) replan(now time.Time, evs []Event, from Target, plan []Target) []Event {
	failed := s.Targets[:min(max(s.TargetIndex, 0), len(s.Targets))]
	left := slices.DeleteFunc(slices.Clone(plan), func(t Target) bool { return t != from && slices.Contains(failed, t) })
	old := s.Targets
	s.Attempts = 0
	s.NextAttemptAt = time.Time{}
	s.Generation++
	if len(left) == 0 {
		s.TargetIndex = len(s.Targets)
		s.State = StateHeld
		return append(evs, Event{At: now, Type: EventHeld, Detail: heldDetail("no channel left (channels now "+channelNames(plan)+", each failed before)", "")})
	}
	s.Targets = left
	s.TargetIndex = 0
	s.State = StateQueued
	detail := "falling back from " + from.Channel
	if left[0] == from {
		detail = "again on " + from.Channel
	}
	return append(evs, Event{At: now, Type: EventFallback, Channel: left[0].Channel,
		Detail: detail + "; channels now " + channelNames(left) + " (were " + channelNames(old) + ")"})
}

// ChannelFailed gives up on the current channel (a permanent failure or the retry
// budget spent) and moves to the office's next channel, or holds the package when
// none is left.
func (s *Submission) ChannelFailed(now time.Time, gen int, why Reason) ([]Event, error) {
	if err := s.current(gen); err != nil {
		return nil, err
	}
	t, _ := s.CurrentTarget()
	s.TotalAttempts++
	return s.moveOn(now, []Event{{At: now, Type: EventChannelFailed, Channel: t.Channel, Attempt: s.Attempts + 1, Detail: why.Public, Note: why.Internal}}), nil
}

// ChannelWithdrawn moves a package handed over to a channel that the office no
// longer has (the operator took it from the office's configuration) on to the
// office's next channel, as a package still waiting for such a channel is: its
// confirmation can no longer be asked for (the channel's address went with the
// configuration), and the case waited handed over for ever, with no
// Zustellbestaetigung though the office may well have it.
//
// plan is the office's channels as configured now, as for ChannelGone.
func (s *Submission) ChannelWithdrawn(now time.Time, why Reason, plan []Target) ([]Event, error) {
	if s.State != StateHandedOver {
		return nil, fmt.Errorf("%w: %s is %s, not handed over", ErrStale, s.ID, s.State)
	}
	t, _ := s.CurrentTarget()
	return s.moveOnTo(now, []Event{{At: now, Type: EventChannelFailed, Channel: t.Channel, Detail: why.Public, Note: why.Internal}}, plan), nil
}

// Reoffer delivers a handed-over package again on the channel it waits on, as
// the channel is configured now: the office no longer fetches from where it
// waits (an XTA office moved from pull to push, the office's last mailbox user
// removed; adapters.Reacher). The requeued event says why, by the gateway; plan
// is the office's channels as configured now (as for ChannelGone).
func (s *Submission) Reoffer(now time.Time, why Reason, plan []Target) ([]Event, error) {
	if s.State != StateHandedOver {
		return nil, fmt.Errorf("%w: %s is %s, not handed over", ErrStale, s.ID, s.State)
	}
	t, _ := s.CurrentTarget()
	evs := []Event{{At: now, Type: EventRequeued, Channel: t.Channel, Actor: "gateway", Detail: why.Public, Note: why.Internal}}
	if len(plan) > 0 {
		// The office's channels as configured now, from the first it has not
		// failed on: an office whose last mailbox user left for a transfer folder
		// gets the package in the folder, not the mailbox's refusal and held.
		return s.replan(now, evs, t, plan), nil
	}
	s.State = StateQueued
	s.Attempts = 0
	s.NextAttemptAt = time.Time{}
	s.Generation++
	return evs, nil
}

// heldDetail is the text of a held event: why, and what it waits for — the office
// fetching it (pull API, mailbox), or an operator who connects the office and
// replays it (docs/operations.md, "Held packages"). After a peer channel (last)
// the office is at another state's gateway: nothing here fetches the package
// (docs/federation.md), only an operator's replay sends it again.
func heldDetail(why, last string) string {
	if last == channel.Peer {
		return why + "; waits for an operator to mend the cause and send it to the other state's gateway again"
	}
	return why + "; waits for the office to fetch it, or for an operator to connect the office and send it again"
}

// moveOn goes on to the office's next channel after evs, or holds the package
// when none is left.
func (s *Submission) moveOn(now time.Time, evs []Event) []Event {
	t, _ := s.CurrentTarget()
	s.TargetIndex++
	s.Attempts = 0
	s.NextAttemptAt = time.Time{}
	if next, ok := s.CurrentTarget(); ok {
		s.State = StateQueued
		s.Generation++
		evs = append(evs, Event{At: now, Type: EventFallback, Channel: next.Channel, Detail: "falling back from " + t.Channel})
	} else {
		s.State = StateHeld
		evs = append(evs, Event{At: now, Type: EventHeld, Detail: heldDetail("no channel left", t.Channel)})
	}
	return evs
}

// Confirmation is what the receiving side said when it took the package over.
type Confirmation struct {
	Receiver  string
	At        time.Time
	Reference string
}

func (c Confirmation) detail() string {
	d := "receiver " + c.Receiver
	if c.Reference != "" {
		d += ", reference " + c.Reference
	}
	return d
}

// HandOver records that the channel of the attempt of generation gen took the
// package and that the office's confirmation will follow (Confirm).
//
// One stale hand-over is recorded all the same: the transfer folder's, of the
// attempt a clerk's takeover came too late to stop (HandedOverAfterTakeover).
func (s *Submission) HandOver(now time.Time, gen int, c Confirmation) ([]Event, error) {
	if err := s.current(gen); err != nil {
		if evs := s.handedOverAfterTakeover(now, gen, c); evs != nil {
			return evs, nil
		}
		return nil, err
	}
	t, _ := s.CurrentTarget()
	at := now
	s.HandedOverAt = &at
	s.State = StateHandedOver
	s.NextAttemptAt = time.Time{}
	return []Event{{At: now, Type: EventHandedOver, Channel: t.Channel, Attempt: s.Attempts + 1, Detail: c.detail() + "; waiting for the office's confirmation"}}, nil
}

// handedOverAfterTakeover records the hand-over of a transfer attempt that
// completed after a clerk took the case over in the web mailbox: the case
// folder was renamed into the office's share in the moment of the takeover (the
// attempt's last look at its context came just before), or by an attempt that
// no stop reached. The case stays the clerk's — delivered by the mailbox,
// refused to every face of the system — but its bytes are in the office's
// transfer folder now, and the import may take it: the clerk must know, or two
// people process one application. So the hand-over is an event (the clerk's
// page and the portal's history show it) and HandedOverAfterTakeoverAt says
// when; the state stays. Only the transfer channel: the API's and XTA's
// hand-over make a case listable, and a taken-over case is listed to the
// system no more; a webhook's notification carries ids only, and the system's
// fetch is refused. Once: a repeat changes nothing. nil when the hand-over is
// not one of these.
func (s *Submission) handedOverAfterTakeover(now time.Time, gen int, c Confirmation) []Event {
	if !s.LateHandOverPossible(gen) {
		return nil
	}
	t, _ := s.CurrentTarget()
	at := now
	s.HandedOverAfterTakeoverAt = &at
	return []Event{{At: now, Type: EventHandedOver, Channel: t.Channel, Attempt: s.Attempts + 1, Detail: c.detail(),
		Note: "handed over after the case was taken over in the web mailbox: the office's import may take it as well"}}
}

// LateHandOverPossible reports whether a hand-over by the attempt of
// generation gen would be recorded as the one after a takeover
// (handedOverAfterTakeover): the case was taken over from the transfer
// channel, gen is the generation the takeover found, and no such hand-over is
// recorded yet. The broker's dispatcher then asks the transfer folder whether
// an attempt whose outcome it lost put the case folder there
// (adapters.HandOverFinder).
func (s *Submission) LateHandOverPossible(gen int) bool {
	t, ok := s.CurrentTarget()
	return s.TakenOverFrom == channel.Transfer && ok && t.Channel == channel.Transfer && s.Generation == gen && s.HandedOverAfterTakeoverAt == nil
}

// HandedOverAfterTakeover reports whether the office's system got the case
// after a clerk took it over: a transfer attempt the takeover did not stop
// put its case folder into the office's share (handedOverAfterTakeover).
func (s *Submission) HandedOverAfterTakeover() bool { return s.HandedOverAfterTakeoverAt != nil }

// OweWithdrawal notes that the case's copy on channel ch is to be withdrawn
// (WithdrawalsOwed) and reports whether that is new.
func (s *Submission) OweWithdrawal(ch string) bool {
	if ch == "" || slices.Contains(s.WithdrawalsOwed, ch) {
		return false
	}
	s.WithdrawalsOwed = append(s.WithdrawalsOwed, ch)
	return true
}

// OwesWithdrawal reports whether the case's copy on channel ch is still to be
// withdrawn (WithdrawalsOwed).
func (s *Submission) OwesWithdrawal(ch string) bool { return slices.Contains(s.WithdrawalsOwed, ch) }

// SettleWithdrawal notes that the withdrawal of the copy on channel ch is
// done, whatever it found, and reports whether it was owed.
func (s *Submission) SettleWithdrawal(ch string) bool {
	i := slices.Index(s.WithdrawalsOwed, ch)
	if i < 0 {
		return false
	}
	s.WithdrawalsOwed = slices.Delete(s.WithdrawalsOwed, i, i+1)
	if len(s.WithdrawalsOwed) == 0 {
		s.WithdrawalsOwed = nil // omitted from the record again
	}
	return true
}

// FetchedAfterTakeover reports whether the office's system read the case's
// package after a clerk took it over: a fetch under way at the takeover (XTA
// getMessage), recorded once its answer was out (Fetched). A takeover is of a
// case its system never read (BoundForSystem), so any fetch of a case taken
// over came after it.
func (s *Submission) FetchedAfterTakeover() bool { return s.TakenOverFrom != "" && s.FetchedAt != nil }

// IsFetchAfterTakeover reports whether e is the event of that fetch: the
// history names it so, not as an ordinary fetch.
func (s *Submission) IsFetchAfterTakeover(e Event) bool {
	return s.FetchedAfterTakeover() && e.Type == EventFetched
}

// IsHandOverAfterTakeover reports whether e is the event of that hand-over:
// the history names it so, not as an ordinary hand-over awaiting the import.
func (s *Submission) IsHandOverAfterTakeover(e Event) bool {
	return s.HandedOverAfterTakeoverAt != nil && e.Type == EventHandedOver && e.At.Equal(*s.HandedOverAfterTakeoverAt)
}

// Delivered records that the attempt of generation gen was confirmed by the receiver.
func (s *Submission) Delivered(now time.Time, gen int, c Confirmation) ([]Event, error) {
	if err := s.current(gen); err != nil {
		return nil, err
	}
	t, _ := s.CurrentTarget()
	return s.deliver(now, t.Channel, s.Attempts+1, c), nil
}

// Confirm records that the office has the package, whatever was pending: its system
// fetched it by API, closed it by XTA, imported the case folder, or a person opened
// it in the mailbox. ch names the way it arrived. A submission delivered
// already is left as it is (nil events, nil error): confirmations repeat — but
// for a case a clerk took over, which no other face picks up (PickupAllowed).
//
// A pickup through the mailbox of a case on its way to the office's own system
// (BoundForSystem) is the clerk's takeover: TakenOverFrom records that system's
// channel, and the delivered event's Note says so (operators', not the
// portal's), in the same transition and so in the same transaction. It is decided here, on the record the pickup is
// written to, not by the face that asked: a system that fetched the package a
// moment before has it, and the clerk's pickup then changes nothing.
func (s *Submission) Confirm(now time.Time, ch string, c Confirmation) ([]Event, error) {
	if s.DeliveredAt != nil {
		return nil, s.PickupAllowed(ch)
	}
	switch s.State {
	case StateQueued, StateRetrying, StateHandedOver, StateHeld:
	default:
		return nil, fmt.Errorf("%w: confirm delivery of a submission that is %s", ErrIllegal, s.State)
	}
	from := ""
	if ch == channel.Mailbox {
		from = s.BoundForSystem()
	}
	evs := s.deliver(now, ch, 0, c)
	if from != "" {
		s.TakenOverFrom = from
		// In the note, not the detail: the detail is the portal's to read, and
		// which system an office runs behind its mailbox is the office's.
		evs[0].Note = "taken over from the office's system (" + from + ")"
	}
	return evs, nil
}

// BoundForSystem names the channel of the office's own system a case is on
// its way to — api, xta, webhook, or transfer while its case folder is not
// written — or "" when it is not: delivered or read by that system already
// (FetchedAt), its bytes removed, forwarded to a peer, held (no channel left:
// the mailbox is where it waits), or bound for the mailbox itself. A case
// folder already written (transfer, handed over) is with the office, whatever
// the mailbox does. The mailbox opens no such case; a clerk takes it over
// (Confirm on the mailbox channel).
func (s *Submission) BoundForSystem() string {
	if s.DeliveredAt != nil || s.FetchedAt != nil || s.BytesRemovedAt != nil || s.Forward != nil {
		return ""
	}
	switch s.State {
	case StateQueued, StateRetrying, StateHandedOver:
	default:
		return ""
	}
	t, ok := s.CurrentTarget()
	if !ok {
		return ""
	}
	switch t.Channel {
	case channel.API, channel.XTA, channel.Webhook:
		return t.Channel
	case channel.Transfer:
		if s.State != StateHandedOver {
			return t.Channel
		}
	}
	return ""
}

// PickupAllowed says whether the office may pick the case up through the face
// of channel ch: nil, unless a clerk took the case over in the web mailbox
// (TakenOverFrom) and ch is another face — the office's own system, which
// must not fetch, confirm or decide what the clerk now processes: ErrIllegal
// and ErrTakenOver. The mailbox itself is allowed (its pages open the case).
func (s *Submission) PickupAllowed(ch string) error {
	return s.takenOverRefuses(ch, "no pickup")
}

// ReplyAllowed says whether a reply to the applicant may come by the face of
// channel ch, by PickupAllowed's rule: not from the office's own system once a
// clerk took the case over (ErrIllegal and ErrTakenOver). The clerk answers
// the applicant now; a Fachverfahren's reply — a Bescheid from what a
// getMessage under way at the takeover gave it — would reach the applicant
// beside hers, perhaps contradicting it, from a system told to drop the case.
func (s *Submission) ReplyAllowed(ch string) error {
	return s.takenOverRefuses(ch, "no reply")
}

// takenOverRefuses is the refusal of what (a pickup, a reply) on channel ch of
// a case a clerk took over, or nil.
func (s *Submission) takenOverRefuses(ch, what string) error {
	if s.TakenOverFrom == "" || ch == channel.Mailbox {
		return nil
	}
	return fmt.Errorf("%w: submission %s: %w (it was on its way to %s); %s on %s", ErrIllegal, s.ID, ErrTakenOver, s.TakenOverFrom, what, channelOr(ch))
}

// channelOr is ch, or "no channel" for a pickup no face named.
func channelOr(ch string) string {
	if ch == "" {
		return "no channel"
	}
	return ch
}

func (s *Submission) deliver(now time.Time, channel string, attempt int, c Confirmation) []Event {
	at := c.At
	if at.IsZero() {
		at = now
	}
	// The time comes from another clock (a peer gateway's, an office system's):
	// one running behind made the Zustellbestaetigung say delivered before
	// received, and one ahead a delivery in the future.
	lo := s.ReceivedAt
	if s.HandedOverAt != nil && s.HandedOverAt.After(lo) {
		lo = *s.HandedOverAt
	}
	at = ClampTime(at, lo, now).UTC()
	s.DeliveredAt, s.Receiver, s.DeliveredVia = &at, c.Receiver, channel
	s.State = StateDelivered
	s.NextAttemptAt = time.Time{}
	return []Event{{At: now, Type: EventDelivered, Channel: channel, Attempt: attempt, Detail: c.detail()}}
}

// DeliveryChannel is the channel the delivery came by (DeliveredVia); for a
// record delivered before it was kept, the channel of its current target, which
// is the one that delivered it unless the office took the package by another
// face (a fetch by its system, a clerk's takeover), or "" when none was left (a
// held package fetched). "" while not delivered.
func (s *Submission) DeliveryChannel() string {
	if s.DeliveredAt == nil {
		return ""
	}
	if s.DeliveredVia != "" {
		return s.DeliveredVia
	}
	t, _ := s.CurrentTarget()
	return t.Channel
}

// AwaitsDecision reports whether the office has the package and its decision is
// still to come here: delivered, undecided, not marked processed by the office
// (which then has dealt with it: filed into its own system, say), its bytes
// still there (after an erasure or the retention's end of an unanswered case
// there is nothing left to decide on), and delivered by a channel through which
// the office decides (channel.Decides: not XTA, a transfer folder or a peer
// gateway, whose cases stay undecided by design). Such a case waits on the
// office alone: a Fachverfahren that fetched it and died before deciding leaves
// it so for good, and only this says so (the store's undecided index, the gauge
// amtsbote_submissions_delivered_undecided, GET /v1/admin/undecided).
func (s *Submission) AwaitsDecision() bool {
	return s.State == StateDelivered && s.Decision == nil && !s.Processed && s.BytesRemovedAt == nil &&
		channel.Decides(s.DeliveryChannel())
}

// Decide records the office's answer. The office must have the package (delivered).
// Repeating the same answer changes nothing (nil events, nil error); a different
// answer after one was given is ErrIllegal. channel names the face it came by
// (as Confirm's does): the log of a case the office's system fetched and a clerk
// decided in the mailbox said only "accepted by anna"; "" where no face carried
// it (a peer's report, a test).
//
// A case forwarded to a peer gateway (Forward) is decided by the peer's report
// alone (PeerUpdate): its office is at the peer, and a decision recorded here
// would go to the portal as the office's answer while that office decides
// otherwise. Decide is ErrIllegal for it, also once the peer reported the
// delivery (the case is delivered then, by channel peer), and also for the
// outcome the peer reported: no face here decided anything.
func (s *Submission) Decide(now time.Time, channel, outcome, reason, actor string) ([]Event, error) {
	if s.Forward != nil {
		return nil, fmt.Errorf("%w: submission %s was forwarded to gateway %s: its decision is that gateway's report", ErrIllegal, s.ID, s.Forward.Peer)
	}
	return s.decide(now, channel, outcome, reason, actor)
}

// decide is Decide without the rule on forwarded cases, for the peer's report
// (PeerUpdate).
func (s *Submission) decide(now time.Time, channel, outcome, reason, actor string) ([]Event, error) {
	var typ string
	switch outcome {
	case OutcomeAccepted:
		typ = EventAccepted
	case OutcomeRejected:
		typ = EventRejected
	default:
		return nil, fmt.Errorf("%w: unknown outcome %q", ErrIllegal, outcome)
	}
	if s.Decision != nil {
		if s.Decision.Outcome == outcome {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %w: %s", ErrIllegal, ErrDecided, s.Decision.Outcome)
	}
	if s.State != StateDelivered {
		return nil, fmt.Errorf("%w: %w: decide on submission %s (%s)", ErrIllegal, ErrNotDelivered, s.ID, s.State)
	}
	s.Decision = &Decision{Outcome: outcome, Reason: reason, At: now, Actor: actor, RecordedAt: now}
	s.State = State(outcome)
	s.NextAttemptAt = time.Time{}
	return []Event{{At: now, Type: typ, Actor: actor, Channel: channel, Detail: reason}}, nil
}

// Requeue starts delivery again from the office's first channel (an operator's
// replay after fixing an office's endpoint). Only a held submission can be requeued.
// why is the event's public detail ("requeued by operator").
//
// plan, when not empty, is the office's channel plan as it is now and replaces the
// one made at intake: the operator's replay follows a mended configuration (an
// office given the channel it lacked), and the event names both plans.
func (s *Submission) Requeue(now time.Time, actor, why string, plan []Target) ([]Event, error) {
	targets := s.Targets
	if len(plan) > 0 {
		targets = plan
	}
	if s.State != StateHeld || len(targets) == 0 {
		return nil, fmt.Errorf("%w: requeue a submission that is %s with %d channels", ErrIllegal, s.State, len(targets))
	}
	detail := why
	if !slices.Equal(targets, s.Targets) {
		detail += "; channels now " + channelNames(targets) + " (were " + channelNames(s.Targets) + ")"
		s.Targets = slices.Clone(targets)
	}
	s.TargetIndex, s.Attempts = 0, 0
	s.Generation++
	s.State = StateQueued
	s.NextAttemptAt = time.Time{}
	return []Event{{At: now, Type: EventRequeued, Channel: s.Targets[0].Channel, Actor: actor, Detail: detail}}, nil
}

// channelNames lists a plan's channels for an event ("none" for an empty plan).
func channelNames(ts []Target) string {
	if len(ts) == 0 {
		return "none"
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Channel
	}
	return strings.Join(names, ", ")
}

// MaxReplies bounds the replies to one case, so one office system in a loop cannot
// grow a record without end.
const MaxReplies = 100

// AddReply records a message of the office back to the applicant. The office must
// have the package (delivered or decided); the same reply id twice changes nothing.
// A case forwarded to a peer gateway takes none here (ErrIllegal), as it takes no
// decision (Decide): its office answers at the peer.
// A case a clerk took over takes no new reply from another face than the
// mailbox (ReplyAllowed: ErrIllegal and ErrTakenOver), decided here, on the
// record the reply is written to, so a takeover just before is not passed over.
func (s *Submission) AddReply(now time.Time, r Reply) ([]Event, error) {
	for _, have := range s.Replies {
		if have.ID == r.ID || (r.MessageID != "" && have.MessageID == r.MessageID) {
			return nil, nil
		}
	}
	if s.DeliveredAt == nil {
		return nil, fmt.Errorf("%w: %w: a reply to submission %s (%s)", ErrIllegal, ErrNotDelivered, s.ID, s.State)
	}
	if s.Forward != nil {
		// Its office is at the peer, which delivered it (DeliveredAt is the
		// peer's report): a reply recorded here came from no office that has
		// the case, and would reach the applicant as its office's answer.
		return nil, fmt.Errorf("%w: submission %s was forwarded to gateway %s: a reply is its office's, there", ErrIllegal, s.ID, s.Forward.Peer)
	}
	if err := s.ReplyAllowed(r.Channel); err != nil {
		return nil, err
	}
	if len(s.Replies) >= MaxReplies {
		return nil, fmt.Errorf("%w: more than %d replies", ErrIllegal, MaxReplies)
	}
	if r.At.IsZero() {
		r.At = now
	}
	s.Replies = append(s.Replies, r)
	return []Event{{At: now, Type: EventReplied, Channel: r.Channel, Actor: r.Actor, Detail: r.Kind + " " + r.ID}}, nil
}

// ReplyFetched records that the reply replyID was read whole by actor (the
// case's portal, or the peer gateway that forwarded the case) at now, the
// first time only: later reads change nothing, so a portal that reads a reply
// again and again writes once. A reply the case does not have is ErrIllegal.
func (s *Submission) ReplyFetched(now time.Time, replyID, actor string) ([]Event, error) {
	for i := range s.Replies {
		r := &s.Replies[i]
		if r.ID != replyID {
			continue
		}
		if r.FetchedAt != nil {
			return nil, nil
		}
		at := now.UTC()
		r.FetchedAt = &at
		return []Event{{At: at, Type: EventReplyFetched, Actor: actor, Detail: r.Kind + " " + r.ID}}, nil
	}
	return nil, fmt.Errorf("%w: submission %s has no reply %s", ErrIllegal, s.ID, replyID)
}

// MarkProcessed records that the office marked the case as dealt with (done=true)
// or took the mark back. The office must have the package. The same mark twice
// changes nothing.
func (s *Submission) MarkProcessed(now time.Time, done bool, actor, channel string) ([]Event, error) {
	if s.DeliveredAt == nil {
		return nil, fmt.Errorf("%w: %w: mark submission %s (%s)", ErrIllegal, ErrNotDelivered, s.ID, s.State)
	}
	if s.Processed == done {
		return nil, nil
	}
	s.Processed = done
	typ := EventProcessed
	if !done {
		typ = EventReopened
	}
	return []Event{{At: now, Type: typ, Channel: channel, Actor: actor}}, nil
}

// Fetched records the first time the office's system read the package without
// taking it (XTA getMessage). Later reads change nothing, so a system that reads
// a package again and again writes once.
//
// A read of a case forwarded to a peer gateway (Forward) changes nothing
// either (nil events, nil error: the bytes were served, as they may be): its
// delivery is the peer's report, and FetchedAt with a fetched event said that
// an office's system here read it — for XTA the first half of a pickup, which
// no face here may make of a forwarded case.
//
// A read after the delivery changes nothing (a close on another connection as
// soon as the bytes were there: the fetch says nothing, and its event would
// stand after the delivery) — but for the read on channel of a case a clerk
// took over from that very channel (TakenOverFrom): a getMessage under way at
// the takeover, whose answer reached the system after it. The system has the
// case all the same, and the clerk's page must say so, as it does for a case
// folder handed over after a takeover (FetchedAfterTakeover); recording
// nothing left it saying the system does not get the case.
//
// at is when the read began (the face's time), now the transition's: a read
// before the delivery is recorded at at, one after it (of a case taken over
// while it was under way) at now — its answer ended after the takeover, and
// its event must not stand before the takeover's in the history.
func (s *Submission) Fetched(at, now time.Time, channel string) ([]Event, error) {
	if !s.RecordsFetch(channel) {
		return nil, nil
	}
	if s.DeliveredAt != nil {
		at = now
	}
	at = at.UTC()
	s.FetchedAt = &at
	return []Event{{At: at, Type: EventFetched, Channel: channel}}, nil
}

// RecordsFetch reports whether a read of the package on channel now would be
// recorded (Fetched): a desk asks it before it writes, so that the reads a
// system repeats cost no store write.
func (s *Submission) RecordsFetch(channel string) bool {
	return s.FetchedAt == nil && s.Forward == nil && (s.DeliveredAt == nil || s.TakenOverFrom == channel)
}

// RemoveBytes records that the package, attachment and reply bytes were removed
// after the retention period. Only a case the office has answered finally (accepted
// or rejected) loses its bytes; doing it twice changes nothing.
func (s *Submission) RemoveBytes(now time.Time, why string) ([]Event, error) {
	return s.removeBytesIf(s.Decision != nil, "a submission the office has not answered", now, why)
}

// removeBytesIf is the retention's removal of the bytes, RemoveBytes' and its
// siblings': nothing when they are gone already, ErrIllegal naming what the
// case is (refused) unless allowed.
func (s *Submission) removeBytesIf(allowed bool, refused string, now time.Time, why string) ([]Event, error) {
	if s.BytesRemovedAt != nil {
		return nil, nil
	}
	if !allowed {
		return nil, fmt.Errorf("%w: remove the bytes of %s (%s)", ErrIllegal, refused, s.State)
	}
	s.BytesGone(now)
	return []Event{{At: now, Type: EventBytesRemoved, Detail: why}}, nil
}

// RemoveBytesWithCase records that the bytes of a Nachreichung were removed with
// its case's (retention.package_bytes after the office's answer to the case):
// the office answers the case, seldom each document sent later to it. One the
// office answered itself goes by its own answer (RemoveBytes), one it has not
// taken yet is not one; doing it twice changes nothing.
func (s *Submission) RemoveBytesWithCase(now time.Time, why string) ([]Event, error) {
	return s.removeBytesIf(s.CaseID != "" && s.Decision == nil && s.DeliveredAt != nil, "submission "+s.ID+" with its case's", now, why)
}

// RemoveUnansweredBytes records that the bytes of a case delivered to its office
// and never answered were removed (retention.unanswered). A case the office has
// not taken yet, or has answered, is not one; doing it twice changes nothing.
func (s *Submission) RemoveUnansweredBytes(now time.Time, why string) ([]Event, error) {
	return s.removeBytesIf(s.Decision == nil && s.State == StateDelivered, "a case that is not delivered and unanswered", now, why)
}

// BytesGone marks the package, attachment and reply bytes removed at now (by the
// retention or an erasure), and forgets the attachments' and replies' file names
// with them: the citizen chose those ("ausweis_erika_mustermann.pdf"), the clerk
// these ("Bescheid Iris Hübner.pdf"), and they may name the applicant, while the
// record, kept for years as the proof of what happened, needs only the id, type,
// size and digest its receipts name (a data protection audit).
func (s *Submission) BytesGone(now time.Time) {
	at := now
	s.BytesRemovedAt = &at
	for i := range s.Attachments {
		s.Attachments[i].FileName = ""
	}
	for i := range s.Replies {
		s.Replies[i].FileName = ""
	}
}

// Digests lists the blobs a submission references: package, attachments, replies.
func (s *Submission) Digests() []string {
	out := []string{s.PackageSHA256}
	for _, a := range s.Attachments {
		out = append(out, a.SHA256)
	}
	for _, r := range s.Replies {
		out = append(out, r.SHA256)
	}
	return out
}

// Clone returns a deep copy of s: nothing in it shares memory with s, so either
// may be changed without the other. For the store's cache of records it has
// just read (store.recent), which hands out a clone on every read.
func (s *Submission) Clone() *Submission {
	c := *s
	c.Targets = slices.Clone(s.Targets)
	c.Attachments = slices.Clone(s.Attachments)
	c.Replies = slices.Clone(s.Replies)
	c.WithdrawalsOwed = slices.Clone(s.WithdrawalsOwed)
	for i := range c.Replies {
		c.Replies[i].FetchedAt = clonePtr(s.Replies[i].FetchedAt)
	}
	c.HandedOverAt = clonePtr(s.HandedOverAt)
	c.HandedOverAfterTakeoverAt = clonePtr(s.HandedOverAfterTakeoverAt)
	c.DeliveredAt = clonePtr(s.DeliveredAt)
	c.FetchedAt = clonePtr(s.FetchedAt)
	c.BytesRemovedAt = clonePtr(s.BytesRemovedAt)
	c.Decision = clonePtr(s.Decision)
	c.Forward = clonePtr(s.Forward)
	if s.Origin != nil {
		o := *s.Origin
		o.Chain = slices.Clone(o.Chain)
		c.Origin = &o
	}
	return &c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
