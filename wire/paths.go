package wire

import (
	"net/url"
	"strconv"
)

// Paths of the API, relative to the gateway's base URL. Ids are path-escaped (the
// gateway's ids are UUIDs, for which escaping changes nothing).
const (
	SubmissionsPath       = "/v1/submissions"        // POST: intake
	OfficeSubmissionsPath = "/v1/office/submissions" // GET: the office's list
	AdminSubmissionsPath  = "/v1/admin/submissions"  // GET: the operator's list
)

// SubmissionPath is the portal's status of one submission.
func SubmissionPath(id string) string { return SubmissionsPath + "/" + url.PathEscape(id) }

// ReplyPath is the bytes of one reply of the office, for the portal.
func ReplyPath(id, replyID string) string {
	return SubmissionPath(id) + "/replies/" + url.PathEscape(replyID)
}

// ReceiptPath is a receipt of one submission for the portal (kind ReceiptEingang or
// ReceiptZustellung).
func ReceiptPath(id, kind string) string {
	return SubmissionPath(id) + "/receipts/" + url.PathEscape(kind)
}

// OfficeSubmissionPath is the office's view of one submission.
func OfficeSubmissionPath(id string) string {
	return OfficeSubmissionsPath + "/" + url.PathEscape(id)
}

// OfficePackagePath is the exact signed package (fetching it counts as delivery).
func OfficePackagePath(id string) string { return OfficeSubmissionPath(id) + "/package" }

// OfficeAttachmentPath is one attachment's bytes.
func OfficeAttachmentPath(id, attachmentID string) string {
	return OfficeSubmissionPath(id) + "/attachments/" + url.PathEscape(attachmentID)
}

// OfficeDecisionPath is where the office posts its decision: .../accept for
// OutcomeAccepted, .../reject for OutcomeRejected. Any other outcome has no path ("").
func OfficeDecisionPath(id, outcome string) string {
	switch outcome {
	case OutcomeAccepted:
		return OfficeSubmissionPath(id) + "/accept"
	case OutcomeRejected:
		return OfficeSubmissionPath(id) + "/reject"
	}
	return ""
}

// OfficeRepliesPath is where the office posts a reply to the applicant (a
// Bescheid, a Rückfrage): the bytes as the body, their media type as
// Content-Type, the kind as the query parameter kind (OfficeReplyPostPath).
func OfficeRepliesPath(id string) string { return OfficeSubmissionPath(id) + "/replies" }

// OfficeReplyPostPath is OfficeRepliesPath with the reply's kind as its query.
func OfficeReplyPostPath(id, kind string) string {
	return OfficeRepliesPath(id) + "?" + url.Values{ReplyKindParam: {kind}}.Encode()
}

// OfficeReplyPath is the bytes of one reply to one of the office's submissions,
// for the office to read back.
func OfficeReplyPath(id, replyID string) string {
	return OfficeRepliesPath(id) + "/" + url.PathEscape(replyID)
}

// OfficeReceiptPath is a receipt of one of the office's submissions.
func OfficeReceiptPath(id, kind string) string {
	return OfficeSubmissionPath(id) + "/receipts/" + url.PathEscape(kind)
}

// OfficeListQuery is a page of the office's list with its filters, as
// GET /v1/office/submissions reads them: its next link is one too, so every
// filter the request had goes on to the next page.
type OfficeListQuery struct {
	After string // the page after this submission id ("": the first)
	Limit int    // 0: the server's page size
	// States are the states listed, comma-separated ("": all).
	States string
	// AwaitingDecision lists the cases that await the office's decision
	// (awaiting=decision), of those it took by the channels DeliveredVia
	// names (comma-separated; "": any).
	AwaitingDecision bool
	DeliveredVia     string
	// Case lists the Nachreichungen to this case (caseId).
	Case string
}

// Path is the list's path with the query.
func (q OfficeListQuery) Path() string {
	v := officePage(q.After, q.Limit)
	if q.States != "" {
		v.Set("state", q.States)
	}
	if q.AwaitingDecision {
		v.Set("awaiting", AwaitingDecision)
		if q.DeliveredVia != "" {
			v.Set("deliveredVia", q.DeliveredVia)
		}
	}
	if q.Case != "" {
		v.Set("caseId", q.Case)
	}
	if len(v) == 0 {
		return OfficeSubmissionsPath
	}
	return OfficeSubmissionsPath + "?" + v.Encode()
}

// OfficeListPath is a page of the office's list after the submission id after,
// of the states given (comma-separated; "": all).
func OfficeListPath(after string, limit int, states string) string {
	return OfficeListQuery{After: after, Limit: limit, States: states}.Path()
}

// OfficeFollowUpsPath is the office's list of the Nachreichungen to the case
// caseID (the list's caseId filter).
func OfficeFollowUpsPath(caseID string) string { return OfficeListQuery{Case: caseID}.Path() }

// officePage is the query of a page of the office's list: after the
// submission id after, at most limit ("", 0: from the first, the server's
// page size).
func officePage(after string, limit int) url.Values {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

// Awaiting values of the office list (GET /v1/office/submissions?awaiting=).
const AwaitingDecision = "decision"

// OfficeAwaitingDecisionPath is a page of the office's cases that await its
// decision (awaiting=decision: delivered by a channel it decides through,
// undecided, not marked processed, bytes kept), after the submission id after,
// of those it took by the channels deliveredVia names (comma-separated; "":
// any).
func OfficeAwaitingDecisionPath(after string, limit int, deliveredVia string) string {
	return OfficeListQuery{After: after, Limit: limit, AwaitingDecision: true, DeliveredVia: deliveredVia}.Path()
}

// AdminSubmissionPath is the operator's view of one submission (with notes).
func AdminSubmissionPath(id string) string { return AdminSubmissionsPath + "/" + url.PathEscape(id) }

// AdminMessagesPath finds submissions by what a portal and a peer gateway know
// of them: the Absender and NachrichtID (AdminMessagePath).
const AdminMessagesPath = "/v1/admin/messages"

// AdminMessagePath is the operator's view of the submission that sender made
// with the NachrichtID messageID, as AdminSubmissionPath shows it.
func AdminMessagePath(sender, messageID string) string {
	return AdminMessagesPath + "?" + url.Values{"sender": {sender}, "messageId": {messageID}}.Encode()
}

// AdminRedeliverPath queues a held submission again.
func AdminRedeliverPath(id string) string { return AdminSubmissionPath(id) + "/redeliver" }
