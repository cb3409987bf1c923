package api

import (
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// The views map the storage model (package submission) onto the API's contract
// (package wire). This is the one place where a new record field is decided to be
// visible to portals or offices or not; an event's note never is.

func stateOf(s submission.State) wire.State { return wire.State(s) }

func eventsOf(evs []submission.Event) []wire.Event {
	out := make([]wire.Event, 0, len(evs))
	for _, e := range evs {
		out = append(out, wire.Event{Seq: e.Seq, SubmissionID: e.SubmissionID, At: e.At, Type: e.Type,
			Channel: e.Channel, Attempt: e.Attempt, Actor: e.Actor, Detail: e.Detail})
	}
	return out
}

func decisionOf(d *submission.Decision) *wire.Decision {
	if d == nil {
		return nil
	}
	return &wire.Decision{Outcome: d.Outcome, Reason: d.Reason, At: d.At, Actor: d.Actor}
}

// statusView is the portal's view; links are the portal's.
func statusView(sub *submission.Submission, evs []submission.Event) wire.StatusView {
	v := baseView(sub, evs)
	v.Links[wire.LinkReceipt] = wire.ReceiptPath(sub.ID, wire.ReceiptEingang)
	if sub.DeliveredAt != nil {
		v.Links[wire.LinkDeliveryReceipt] = wire.ReceiptPath(sub.ID, wire.ReceiptZustellung)
	}
	if sub.Forward != nil {
		v.Links[wire.LinkPeerReceipt] = wire.ReceiptPath(sub.ID, wire.ReceiptPeer)
	}
	for _, r := range sub.Replies {
		v.Replies = append(v.Replies, replyOf(r, wire.ReplyPath(sub.ID, r.ID)))
	}
	return v
}

// replyOf is one reply as portals and offices see it, with the link to its
// bytes on their side (the actor and the office's own id are not shown).
func replyOf(r submission.Reply, link string) wire.Reply {
	return wire.Reply{ID: r.ID, Kind: r.Kind, ContentType: r.ContentType, FileName: r.FileName, Size: r.Size,
		SHA256: r.SHA256, Channel: r.Channel, At: r.At, FetchedAt: r.FetchedAt, Link: link}
}

func baseView(sub *submission.Submission, evs []submission.Event) wire.StatusView {
	return wire.StatusView{
		ID: sub.ID, MessageID: sub.MessageID, CaseID: sub.Case(), State: stateOf(sub.State), LeikaKey: sub.LeikaKey,
		Service: sub.ServiceName, Place: sub.Place, Office: wire.OfficeRef{ID: sub.OfficeID, Name: sub.OfficeName},
		ReceivedAt: sub.ReceivedAt, DeliveredAt: sub.DeliveredAt, Decision: decisionOf(sub.Decision),
		Events: eventsOf(evs), Links: map[string]string{},
	}
}

// officeView is the office's view: its links point into the office API.
func officeView(sub *submission.Submission, evs []submission.Event) wire.OfficeSubmission {
	v := baseView(sub, evs)
	v.Links[wire.LinkReceipt] = wire.OfficeReceiptPath(sub.ID, wire.ReceiptEingang)
	if sub.DeliveredAt != nil {
		v.Links[wire.LinkDeliveryReceipt] = wire.OfficeReceiptPath(sub.ID, wire.ReceiptZustellung)
	}
	v.Links[wire.LinkPackage] = wire.OfficePackagePath(sub.ID)
	v.Links[wire.LinkAccept] = wire.OfficeDecisionPath(sub.ID, wire.OutcomeAccepted)
	v.Links[wire.LinkReject] = wire.OfficeDecisionPath(sub.ID, wire.OutcomeRejected)
	v.Links[wire.LinkReplies] = wire.OfficeRepliesPath(sub.ID)
	if sub.CaseID == "" { // a case: its Nachreichungen, if any, are listed there
		v.Links[wire.LinkFollowUps] = wire.OfficeFollowUpsPath(sub.ID)
	}
	// Its replies with the office's links: its system reads back what it sent
	// (by this API or by XTA), and sees what went to the applicant.
	for _, r := range sub.Replies {
		v.Replies = append(v.Replies, replyOf(r, wire.OfficeReplyPath(sub.ID, r.ID)))
	}
	atts := make([]wire.Attachment, 0, len(sub.Attachments))
	for _, a := range sub.Attachments {
		v.Links[wire.LinkAttachmentPrefix+a.ID] = wire.OfficeAttachmentPath(sub.ID, a.ID)
		atts = append(atts, wire.Attachment{ID: a.ID, FileName: a.FileName, MimeType: a.MimeType, Size: a.Size, SHA256: a.SHA256})
	}
	return wire.OfficeSubmission{StatusView: v,
		SubmissionID: sub.ID, DestinationID: wire.OfficeDestinationID(sub.OfficeID),
		DeliveryID: sub.DeliveryID, Sender: sub.Sender,
		PackageSHA256: sub.PackageSHA256, PackageSize: sub.PackageSize, Attachments: atts,
		TakenOver: takenOverOf(sub)}
}

// takenOverOf is the office's view of a clerk's takeover (nil if none): when,
// and from which channel of its system; the clerk is not named (wire.TakenOver).
func takenOverOf(sub *submission.Submission) *wire.TakenOver {
	if sub.TakenOverFrom == "" || sub.DeliveredAt == nil {
		return nil
	}
	return &wire.TakenOver{At: *sub.DeliveredAt, From: sub.TakenOverFrom}
}
