package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/amtsbote/amtsbote/internal/textfold"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// OfficeDesk is the office side of the broker: the one port through which every
// office-facing face — the REST pull API, the XTA pull service, the web mailbox —
// reads and decides. Putting the rules here, not in each face, means every channel
// enforces the same ones:
//
//   - an office sees only its own submissions: another office's id answers
//     ErrNotFound, exactly like an id that does not exist, so existence is not
//     revealed;
//   - opening the package is a pickup: the office has it, so it counts as delivered
//     (with the Zustellbestaetigung) whatever push channel was still pending;
//   - a decision implies the pickup, is final, and a repeat of the same decision
//     changes nothing; another one is ErrConflict;
//   - every action lands in the event log, with the actor and the channel it came by;
//   - a case whose bytes were removed (an erasure, the retention) serves none: its
//     package, an attachment or a reply its record names is ErrBytesRemoved (an id
//     it never had stays ErrNotFound), and a new reply is ErrBytesRemoved (a repeat
//     returns the one stored);
//   - a case erased before the office's system read it (FetchedAt) allows no
//     pickup: Confirm and Decide are ErrConflict and ErrBytesRemoved, and record nothing;
//   - a case forwarded to a peer gateway is the peer's to deliver and to
//     decide: its delivery and its decision are the peer's reports. Until the
//     delivery's, no face here picks it up (OpenPackage, Confirm and Decide are
//     ErrConflict, ReadCase's Unread too); after it, Decide is ErrConflict
//     still and records nothing (submission.Submission.Decide): a decision
//     here reached the portal as the office's answer while the office at the
//     peer decides. FetchPackage serves its bytes all the same, before that
//     report and after it, and neither it nor RecordFetch records a pickup,
//     fetch or event (submission.Submission.Fetched): the gateway keeps the
//     package it received, and a read that records nothing takes the delivery
//     from nobody;
//   - a face's own rule on a case (Admit: the mailbox opens no case on its way to
//     the office's own system) is asked on the record the action reads, after the
//     office check, so the face need not read the record once more for it;
//   - a case a clerk took over in the web mailbox (submission.TakenOverFrom, the
//     mailbox's pickup of a case on its way to the office's system) is picked up
//     by no other face: OpenPackage, FetchPackage, Confirm and Decide through
//     another channel are ErrConflict and submission.ErrTakenOver, and record nothing
//     (submission.PickupAllowed, asked also on the record the pickup commits to,
//     so a takeover that lands between a face's read and its pickup wins). A
//     new Reply through another channel is refused so too and stores nothing
//     (submission.ReplyAllowed, on the record the reply is written to): the
//     clerk answers the applicant now, and the system's reply would reach the
//     applicant beside hers. A push attempt to the system under way when the
//     takeover commits is cancelled, on this node and, by a core NATS message
//     (at most once), on the other gateways of its queue namespace
//     (stopEverywhere).
type OfficeDesk interface {
	// List pages through the office's submissions, oldest first.
	List(ctx context.Context, officeID string, q ListQuery) (Page, error)
	// Get returns one submission of the office.
	Get(ctx context.Context, officeID, id string) (*submission.Submission, error)
	// Events returns the event log of one submission of the office.
	Events(ctx context.Context, officeID, id string) ([]submission.Event, error)
	// GetWithEvents is Get and Events from one read: the state and the log
	// that state was written with (store.Store.GetWithEvents), for an answer
	// that shows both.
	GetWithEvents(ctx context.Context, officeID, id string) (*submission.Submission, []submission.Event, error)
	// OpenPackage opens the exact signed package bytes, and then records the
	// pickup p; p.Admit is asked before either.
	OpenPackage(ctx context.Context, officeID, id string, p Pickup) (*submission.Submission, io.ReadCloser, error)
	// ReadCase is one case as a face shows it to a person (the mailbox's case
	// page), from one read of its record: the record, the whole package and the
	// event log. Unless o.Open says no, it reads the whole package, at most
	// o.Max bytes, checks it against its SHA-256, and only then records the
	// pickup o.Pickup: the pickup is a person having read it, not the bytes
	// having opened. A package it cannot read or pick up so — beyond o.Max
	// (ErrTooLarge), bytes out of reach, ending early or different
	// (ErrUnreadable), erased (ErrBytesRemoved), a case that allows no pickup
	// (ErrConflict: forwarded to a peer) — is Case.Unread, with the record as
	// read and no pickup. The events are read after the pickup. The error is
	// for the case itself: ErrNotFound (another office's too), the store, or
	// o.Pickup.Admit's refusal (asked before o.Open).
	ReadCase(ctx context.Context, officeID, id string, o CaseRead) (*Case, error)
	// FetchPackage opens the package bytes without recording a pickup, for a face
	// whose office confirms separately (XTA: getMessage reads, close confirms). It
	// records nothing: the face calls RecordFetch once the bytes reached the
	// office's system. A case a clerk took over is refused to it on any channel
	// but the mailbox, before its bytes are opened (ErrConflict and
	// submission.ErrTakenOver): the fetch is no pickup, but the message left
	// the system's box.
	FetchPackage(ctx context.Context, officeID, id, channel string) (*submission.Submission, io.ReadCloser, error)
	// RecordFetch records the office system's first fetch of the package at at
	// (FetchedAt, a fetched event on channel; later ones change nothing): from
	// then on the package is no longer new for that office's polls. After the
	// delivery it records nothing, but for a fetch under way when a clerk took
	// the case over from channel (submission.Submission.FetchedAfterTakeover):
	// the system has the case all the same, and the clerk's page says so.
	RecordFetch(ctx context.Context, officeID, id, channel string, at time.Time) (*submission.Submission, error)
	// Waiting returns the office's submissions that wait for it with their bytes
	// — queued, retrying, handed over or held, not erased — oldest first, and
	// whether its system read each once. It reads the store's indexes, not the
	// records: a face can ask it on every call (XTA's MessagesPending on every
	// getMessage, its status list on every poll).
	Waiting(ctx context.Context, officeID string) ([]WaitingEntry, error)
	// OpenAttachment opens one attachment by its id; admit (if not nil) is asked
	// before. Opening an attachment records nothing.
	OpenAttachment(ctx context.Context, officeID, id, attachmentID string, admit Admit) (submission.Attachment, io.ReadCloser, error)
	// Receipt returns a signed receipt (ReceiptIntake or ReceiptDelivery).
	Receipt(ctx context.Context, officeID, id, kind string) ([]byte, error)
	// Confirm records that the office has the package (XTA close, a person opened
	// it); p.Admit is asked before.
	Confirm(ctx context.Context, officeID, id string, p Pickup) (*submission.Submission, error)
	// Decide records the office's answer (accepted or rejected, with a reason);
	// d.Admit is asked before the outcome is checked and before the pickup the
	// decision implies.
	Decide(ctx context.Context, officeID, id string, d Decision) (*submission.Submission, error)
	// MarkProcessed records the office's own mark that it dealt with the case (or
	// takes it back), with the actor, in the event log.
	MarkProcessed(ctx context.Context, officeID, id string, done bool, actor, channel string) (*submission.Submission, error)
	// Reply stores a message of the office back to the applicant (a Bescheid, a
	// Rückfrage) durably before it returns, linked to the case it answers. A
	// repeat (the same MessageID for the case) returns the reply stored; a new
	// one to a case whose bytes were removed is ErrBytesRemoved, and through
	// another channel than the mailbox to a case a clerk took over ErrConflict
	// and submission.ErrTakenOver.
	Reply(ctx context.Context, officeID, id string, r ReplyIn) (submission.Reply, error)
	// OpenReply opens the bytes of one reply.
	OpenReply(ctx context.Context, officeID, id, replyID string) (submission.Reply, io.ReadCloser, error)
	// FindReply returns the office's case that holds a reply with this message id
	// (ReplyIn.MessageID), and the reply; ErrNotFound if none. It reads an index,
	// not the office's cases: a face can ask it on every call.
	FindReply(ctx context.Context, officeID, messageID string) (*submission.Submission, submission.Reply, error)
}

// ReplyIn is a reply as a face hands it in. Its MessageID is kept apart per case
// only: a face whose ids must name one message of the office (XTA) checks the
// office's other cases itself, with FindReply.
type ReplyIn struct {
	Kind        string // "Bescheid", "Rueckfrage", or the XTA message type
	MessageID   string // the office's own id for it; a repeat for the same case is stored once
	ContentType string
	// FileName is the name the office gave the reply's file, as
	// submission.FileName keeps it (the face checks it); "" for none.
	FileName string
	Content  []byte
	Actor    string
	Channel  string
}

var _ OfficeDesk = (*Broker)(nil)

// WaitingEntry is one submission OfficeDesk.Waiting names.
type WaitingEntry struct {
	ID      string
	Fetched bool // the office's system read the package once (FetchedAt)
}

// ListQuery selects and pages an office's submissions.
type ListQuery struct {
	After  string             // page after this submission id
	Limit  int                // at most this many (0: 100; capped at 1000)
	States []submission.State // only these states (none: all)
	// Text keeps submissions whose id, message id, case id (a Nachreichung's), service, place or sender contain
	// it, insensitive to case and Unicode normalization, and also when both fold
	// alike the way the directory's search folds (umlauts as "ae", ß as "ss",
	// accents dropped: "goerlitz" finds Görlitz).
	Text string
	// AwaitingDecision lists only the cases that await the office's decision
	// (submission.AwaitsDecision), read from the store's undecided index: the
	// sweep of an office system run as several instances, for what one of them
	// fetched and never decided. Asked as States [delivered] instead, the list
	// walks every case the office ever had, and names XTA's, transfer's, peer's,
	// erased and processed cases too, none of which waits on the office here.
	AwaitingDecision bool
	// Case keeps only the Nachreichungen to the case with this id (their
	// submission.Submission.CaseID), read from the store's index by case
	// (store.Store.FollowUps), not by walking the office's cases: the web
	// mailbox's case page lists them on every view. The other fields apply as
	// well.
	Case string
	// DeliveredVia keeps the cases the office took by one of these channels
	// (submission.DeliveryChannel: api for its system's fetch, webhook, mailbox
	// for a clerk's takeover); none: any. A sweep asks for api and webhook: a
	// case a clerk took in the web mailbox is hers, and decided there.
	DeliveredVia []string
}

// Page is one page of a listing; Next is the After of the following page ("" at the end).
type Page struct {
	Items []*submission.Submission
	Next  string
}

// Pickup says how and by whom the office took the package.
type Pickup struct {
	Channel  string // channel.API, channel.XTA, channel.Mailbox, ...
	Receiver string // e.g. "office X (pull API)", "user anna (mailbox)"
	// Admit, if not nil, is the face's say whether it may take the case at
	// all (see Admit). OpenPackage, Confirm and ReadCase ask it.
	Admit Admit
}

// Admit is a face's own rule on one case, asked by the desk with the record as
// it read it for the call: after the office check (another office's case is
// ErrNotFound and Admit is not asked) and before anything is opened or
// recorded. An error it returns is the call's error, as it was returned, and
// nothing is opened or recorded then. It must not change the record.
//
// It is there so that a face decides on the read the action goes by: the
// mailbox, which opens no case on its way to the office's own system, read the
// record for that rule and the desk read it again for the download or the
// decision, a decode of tens of KB each (mailbox.TestDownloadsAndDecisionReadTheRecordOnce),
// and the two reads could disagree.
type Admit func(*submission.Submission) error

// CaseRead says how OfficeDesk.ReadCase reads a case.
type CaseRead struct {
	// Max bounds the package's bytes read; a larger package is not read
	// (ErrTooLarge), and its download is the pickup.
	Max int64
	// Pickup is recorded once the package was read whole and checked.
	Pickup Pickup
	// Open, if not nil, decides from the record as read whether the package
	// is read and the pickup recorded at all; false leaves both, and the case
	// is the record and its events (a HEAD, a case on its way to the office's
	// own system). It must not change the record. nil: it is.
	Open func(*submission.Submission) bool
}

// Case is one case as OfficeDesk.ReadCase read it.
type Case struct {
	// Sub is the record: as changed by the pickup, if one was recorded.
	Sub *submission.Submission
	// Package is the package's bytes, checked against its SHA-256; nil when
	// they were not read (Open said no, or Unread says why).
	Package []byte
	// Unread says why the package was not read, or not picked up, although
	// Open allowed it: ErrTooLarge, ErrUnreadable, ErrBytesRemoved or
	// ErrConflict. Nothing was recorded then.
	Unread error
	// Events is the case's event log, read after the pickup.
	Events []submission.Event
}

// Decision is the office's answer as a face hands it in.
type Decision struct {
	Outcome string // OutcomeAccepted or OutcomeRejected
	Reason  string
	Actor   string // who decided: the office system or a named office user
	Channel string // the face it came by (for the pickup it implies)
	// Admit, if not nil, is the face's own rule on the case (see Admit), asked
	// before the outcome is checked: a face may check its form there, on the
	// record the decision reads.
	Admit Admit
}

// Decision outcomes, as the faces name them.
const (
	OutcomeAccepted = submission.OutcomeAccepted
	OutcomeRejected = submission.OutcomeRejected
)

const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// forOffice returns the submission if it is addressed to the office, and ErrNotFound
// otherwise: an office must not even learn that another office's submission exists.
func (b *Broker) forOffice(officeID, id string) (*submission.Submission, error) {
	s, err := b.db.Get(id)
	if err != nil {
		return nil, err
	}
	if err := officeSees(officeID, s); err != nil {
		return nil, err
	}
	return s, nil
}

// officeSees is ErrNotFound unless s is a case of the office officeID.
func officeSees(officeID string, s *submission.Submission) error {
	if officeID == "" || s.OfficeID != officeID {
		return fmt.Errorf("submission %s: %w", s.ID, ErrNotFound)
	}
	return nil
}

// admitted is forOffice, then the face's admit (if not nil) on the record read.
func (b *Broker) admitted(officeID, id string, admit Admit) (*submission.Submission, error) {
	s, err := b.forOffice(officeID, id)
	if err != nil {
		return nil, err
	}
	if admit != nil {
		if err := admit(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// List implements OfficeDesk.
//
// A listing of states the store indexes only — what still waits: queued,
// retrying, handed over, held; the filter a pulling Fachverfahren, the XTA
// status list and the mailbox's "Neu" use on every poll — reads the records of
// the office's waiting entries (store.Waiting), not the office's cases: an
// office with tens of thousands of answered cases would otherwise have every one
// of them read to find the few that wait (docs/performance.md, "A gateway with
// years of data"), nor the other offices' waiting records, which the indexes
// alone named until they kept the office. A listing AwaitingDecision reads the
// undecided index the same way (walkUndecided). Any other listing walks the
// office's cases.
func (b *Broker) List(ctx context.Context, officeID string, q ListQuery) (Page, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	limit = min(limit, maxListLimit)
	want := map[submission.State]bool{}
	for _, st := range q.States {
		want[st] = true
	}
	text := newTextQuery(q.Text)
	var page Page
	// Filtering happens while walking, so a page is full even when most
	// submissions do not match; meeting one more match than the limit tells that
	// a next page exists.
	keep := func(s *submission.Submission) bool {
		if ctx.Err() != nil {
			return false
		}
		if len(want) > 0 && !want[s.State] {
			return true
		}
		// Asked by state, a case erased before the office took it is not one that
		// waits: it can be neither fetched nor decided (410). Listed, it was met
		// first on every poll by an office that pages through what waits, before
		// the live cases behind it. The office's whole list shows it.
		if len(want) > 0 && waitingState(s.State) && s.BytesRemovedAt != nil {
			return true
		}
		if text.lower != "" && !text.matches(s) {
			return true
		}
		if len(q.DeliveredVia) > 0 && !slices.Contains(q.DeliveredVia, s.DeliveryChannel()) {
			return true
		}
		if len(page.Items) == limit {
			page.Next = page.Items[limit-1].ID
			return false
		}
		page.Items = append(page.Items, s)
		return true
	}
	var err error
	switch {
	case q.Case != "":
		err = b.walkFollowUps(officeID, q.Case, q.After, func(s *submission.Submission) bool {
			return q.AwaitingDecision && !s.AwaitsDecision() || keep(s)
		})
	case q.AwaitingDecision && officeID == "":
		// walkUndecided reads "" as every office; no office is none here.
	case q.AwaitingDecision:
		err = b.walkUndecided(officeID, q.After, keep)
	case waitingOnly(q.States):
		err = b.walkWaiting(officeID, q.After, keep)
	default:
		err = b.db.WalkOffice(officeID, q.After, keep)
	}
	if err != nil {
		return Page{}, err
	}
	return page, ctx.Err()
}

// waitingOnly reports whether states are all ones the store's waiting indexes
// hold (no states is every state: not).
func waitingOnly(states []submission.State) bool {
	for _, st := range states {
		if !waitingState(st) {
			return false
		}
	}
	return len(states) > 0
}

// waitingState: the states of the store's waiting indexes (outbox, handed over,
// held).
func waitingState(st submission.State) bool {
	return st.Dispatchable() || st == submission.StateHandedOver || st == submission.StateHeld
}

// walkWaiting is WalkOffice over the office's waiting entries: fn gets those
// after the id `after`, oldest first, until it returns false. fn checks the
// state: a submission may have moved on since the index was listed. An entry
// that does not name its office (written before the indexes kept it) is read
// and kept if it is the office's.
//
// A case whose bytes an operator erased before the office took them waits for
// nothing (List's rule); an entry that says so is passed over without reading
// its record.
func (b *Broker) walkWaiting(officeID, after string, fn func(*submission.Submission) bool) error {
	entries, err := b.db.Waiting(officeID)
	if err != nil {
		return err
	}
	return b.walkEntries(entries, after,
		func(e store.Waiting) bool { return e.Known && e.Erased },
		func(s *submission.Submission) bool { return s.OfficeID == officeID }, fn)
}

// walkFollowUps is WalkOffice over the office's Nachreichungen to the case
// caseID, from the store's index by case. A Nachreichung routed to another
// office (its case's office had left the directory) is that office's, and not
// listed here.
func (b *Broker) walkFollowUps(officeID, caseID, after string, fn func(*submission.Submission) bool) error {
	ids, err := b.db.FollowUps(caseID)
	if err != nil {
		return err
	}
	entries := make([]store.Waiting, len(ids))
	for i, id := range ids {
		entries[i].ID = id
	}
	return b.walkEntries(entries, after,
		func(store.Waiting) bool { return false },
		func(s *submission.Submission) bool { return s.OfficeID == officeID && s.CaseID == caseID }, fn)
}

// walkEntries reads the record of each index entry after the id `after` that
// skip does not pass over on the entry's word alone, and hands fn those keep
// takes, until fn returns false. A record gone since the index was listed
// (retention runs beside us) is passed over. walkWaiting and walkUndecided
// differ only in skip and keep.
func (b *Broker) walkEntries(entries []store.Waiting, after string, skip func(store.Waiting) bool,
	keep func(*submission.Submission) bool, fn func(*submission.Submission) bool) error {
	for _, e := range entries {
		if after != "" && e.ID <= after || skip(e) {
			continue
		}
		s, err := b.db.Get(e.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if keep(s) && !fn(s) {
			return nil
		}
	}
	return nil
}

// Waiting implements OfficeDesk. Only an entry that does not name its office
// (written before the indexes kept it) is read.
func (b *Broker) Waiting(ctx context.Context, officeID string) ([]WaitingEntry, error) {
	entries, err := b.db.Waiting(officeID)
	if err != nil {
		return nil, err
	}
	var out []WaitingEntry
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.Known {
			s, err := b.db.Get(e.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if !waitingState(s.State) {
				continue
			}
			e = store.Waiting{ID: e.ID, Known: true, Office: s.OfficeID, Erased: s.BytesRemovedAt != nil, Fetched: s.FetchedAt != nil}
		}
		if e.Office == officeID && !e.Erased {
			out = append(out, WaitingEntry{ID: e.ID, Fetched: e.Fetched})
		}
	}
	return out, nil
}

// textQuery is ListQuery.Text made ready for matching: lower case and NFC, and folded
// the way the directory folds place names (textfold).
type textQuery struct {
	lower  string // "" matches everything
	folded string // "" when the text folds to nothing (only punctuation)
}

func newTextQuery(text string) textQuery {
	lower := strings.ToLower(norm.NFC.String(strings.TrimSpace(text)))
	return textQuery{lower: lower, folded: textfold.Fold(lower)}
}

// matches reports whether one of the case's fields contains the text, either as
// typed (ignoring case) or folded: a clerk who types "goerlitz", "strassen" or
// "oeffentlicher", or whose case came from a portal that sent the place decomposed
// (NFD), found nothing with lower-casing alone. The as-typed comparison stays because
// folding is not substring-faithful ("Quelle" folds to "qulle", which no longer
// contains "elle"). Identifiers (the submission's and the message's id, the
// service key, the portal's id) are compared as typed only: folded, "ae" is "a",
// and a fragment "0ae1" of one id found every case whose id holds "0a1".
func (q textQuery) matches(s *submission.Submission) bool {
	for _, f := range []string{s.ID, s.MessageID, s.CaseID, s.LeikaKey, s.Sender} {
		if strings.Contains(strings.ToLower(f), q.lower) {
			return true
		}
	}
	for _, f := range []string{s.ServiceName, s.Place, s.AreaName} {
		if strings.Contains(strings.ToLower(norm.NFC.String(f)), q.lower) {
			return true
		}
		if q.folded != "" && strings.Contains(textfold.Fold(f), q.folded) {
			return true
		}
	}
	return false
}

// Get implements OfficeDesk.
func (b *Broker) Get(_ context.Context, officeID, id string) (*submission.Submission, error) {
	return b.forOffice(officeID, id)
}

// Events implements OfficeDesk.
func (b *Broker) Events(ctx context.Context, officeID, id string) ([]submission.Event, error) {
	_, evs, err := b.GetWithEvents(ctx, officeID, id)
	return evs, err
}

// GetWithEvents implements OfficeDesk.
func (b *Broker) GetWithEvents(_ context.Context, officeID, id string) (*submission.Submission, []submission.Event, error) {
	s, evs, err := b.db.GetWithEvents(id)
	if err != nil {
		return nil, nil, err
	}
	if err := officeSees(officeID, s); err != nil {
		return nil, nil, err
	}
	return s, evs, nil
}

// OpenPackage implements OfficeDesk. The bytes are opened before the pickup is
// recorded: a fetch that cannot read them (ErrUnreadable) does not count as the
// office having the package.
func (b *Broker) OpenPackage(ctx context.Context, officeID, id string, p Pickup) (*submission.Submission, io.ReadCloser, error) {
	s, rc, err := b.openPackage(ctx, officeID, id, p.Admit)
	if err != nil {
		return nil, nil, err
	}
	if s, err = b.pickedUp(s, p); err != nil {
		rc.Close()
		return nil, nil, err
	}
	return s, rc, nil
}

// ReadCase implements OfficeDesk. The record is read once: the face's Open,
// the bytes, the pickup (its receipt signed from that read, confirmSub) and
// the office check of the events all go by it. The case page read it three or
// four times — whether opening is the pickup, the package, the pickup's own
// read, the events — each a decoded record (tens of KB with its certificates).
func (b *Broker) ReadCase(ctx context.Context, officeID, id string, o CaseRead) (*Case, error) {
	s, err := b.admitted(officeID, id, o.Pickup.Admit)
	if err != nil {
		return nil, err
	}
	c := &Case{Sub: s}
	if o.Open == nil || o.Open(s) {
		pkg, err := b.readPackage(ctx, s, o.Max)
		if err == nil {
			var now *submission.Submission
			if now, err = b.pickedUp(s, o.Pickup); err == nil {
				c.Sub, c.Package = now, pkg
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, ErrTooLarge), errors.Is(err, ErrUnreadable), errors.Is(err, ErrBytesRemoved), errors.Is(err, ErrConflict):
			c.Unread = err
		default:
			return nil, err
		}
	}
	if c.Events, err = b.db.Events(id); err != nil {
		return nil, err
	}
	return c, nil
}

// readPackage reads s's whole package, at most max bytes, and checks it against
// its SHA-256; bytes that end early or differ are ErrUnreadable.
func (b *Broker) readPackage(ctx context.Context, s *submission.Submission, max int64) ([]byte, error) {
	rc, err := b.openBytes(ctx, s)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if s.PackageSize > max {
		return nil, fmt.Errorf("submission %s: package of %d bytes: %w", s.ID, s.PackageSize, ErrTooLarge)
	}
	var pkg bytes.Buffer
	pkg.Grow(int(s.PackageSize))
	if _, err := store.CopyChecked(ctx, &pkg, rc, s.PackageSize, s.PackageSHA256, "package of "+s.ID); err != nil {
		return nil, unreadable(err)
	}
	return pkg.Bytes(), nil
}

// FetchPackage implements OfficeDesk. It records nothing: the first fetch was
// written before the bytes were handed out, and a getMessage whose answer never
// reached the office's system (a time-out, a broken connection during a large
// message) took the package out of the office's "new" polls for good — an
// application with its 201 that no office system would fetch again by default (an
// audit, 2026-12-05). The face records the fetch once it has sent the bytes
// (RecordFetch); one sent twice meanwhile is a repeat XTA's message id tells.
func (b *Broker) FetchPackage(ctx context.Context, officeID, id, channel string) (*submission.Submission, io.ReadCloser, error) {
	return b.openPackage(ctx, officeID, id, func(s *submission.Submission) error { return asConflict(s.PickupAllowed(channel)) })
}

// RecordFetch implements OfficeDesk.
func (b *Broker) RecordFetch(_ context.Context, officeID, id, channel string, at time.Time) (*submission.Submission, error) {
	s, err := b.forOffice(officeID, id)
	if err != nil || !s.RecordsFetch(channel) {
		return s, err
	}
	// After the delivery the transition records nothing (the office confirmed
	// meanwhile), but for the fetch of a case a clerk took over from this
	// channel while it was under way: the system got it all the same
	// (submission.Submission.Fetched).
	now, err := b.changeSub(id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.Fetched(at, now, channel)
	})
	if err != nil {
		return nil, err
	}
	if now != nil {
		s = now
	}
	return s, nil
}

// PackageGone is ErrBytesRemoved (naming s) when the retention or an erasure
// removed s's package bytes, else nil: what a face answers for the package
// without opening it (a HEAD) is what opening it would answer.
func PackageGone(s *submission.Submission) error {
	if s.BytesRemovedAt != nil {
		return fmt.Errorf("submission %s: %w", s.ID, ErrBytesRemoved)
	}
	return nil
}

// openPackage opens the package bytes of an office's submission that the face's
// admit (if not nil) lets it take, unless the retention removed them.
func (b *Broker) openPackage(ctx context.Context, officeID, id string, admit Admit) (*submission.Submission, io.ReadCloser, error) {
	s, err := b.admitted(officeID, id, admit)
	if err != nil {
		return nil, nil, err
	}
	rc, err := b.openBytes(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	return s, rc, nil
}

// openBytes opens the package bytes of s, unless the retention removed them.
func (b *Broker) openBytes(ctx context.Context, s *submission.Submission) (io.ReadCloser, error) {
	if err := PackageGone(s); err != nil {
		return nil, err
	}
	return b.openBlob(ctx, s, s.PackageSHA256)
}

// openBlob opens one blob of s, read a moment ago. An erasure or the
// retention writes the record first and deletes the bytes after it: a read
// between the two found the record whole and then no blob, and answered 404
// for a package, attachment or reply the status lists. The record read again
// says what happened — 410, its bytes removed — and a store that cannot hand
// the bytes out now is ErrUnreadable (503, retry), not a 500.
func (b *Broker) openBlob(ctx context.Context, s *submission.Submission, digest string) (io.ReadCloser, error) {
	rc, err := b.db.Blobs().Open(ctx, digest)
	if errors.Is(err, ErrNotFound) {
		if now, gerr := b.db.Get(s.ID); gerr == nil && now.BytesRemovedAt != nil {
			return nil, fmt.Errorf("submission %s: %w", s.ID, ErrBytesRemoved)
		}
	}
	return rc, unreadable(err)
}

// OpenAttachment implements OfficeDesk.
func (b *Broker) OpenAttachment(ctx context.Context, officeID, id, attID string, admit Admit) (submission.Attachment, io.ReadCloser, error) {
	s, err := b.admitted(officeID, id, admit)
	if err != nil {
		return submission.Attachment{}, nil, err
	}
	// The record keeps its attachments' names after the retention: an id it never
	// had is 404, as before the retention, and only a real one is 410.
	for _, a := range s.Attachments {
		if a.ID == attID {
			if s.BytesRemovedAt != nil {
				return submission.Attachment{}, nil, fmt.Errorf("submission %s: %w", id, ErrBytesRemoved)
			}
			rc, err := b.openBlob(ctx, s, a.SHA256)
			return a, rc, err
		}
	}
	return submission.Attachment{}, nil, fmt.Errorf("attachment %s: %w", attID, ErrNotFound)
}

// Receipt implements OfficeDesk.
func (b *Broker) Receipt(_ context.Context, officeID, id, kind string) ([]byte, error) {
	if _, err := b.forOffice(officeID, id); err != nil {
		return nil, err
	}
	return b.db.Receipt(id, kind)
}

// Confirm implements OfficeDesk. The first confirmation is the delivery: the office
// has the package, whatever push channel was still pending. Later ones change nothing.
func (b *Broker) Confirm(_ context.Context, officeID, id string, p Pickup) (*submission.Submission, error) {
	s, err := b.admitted(officeID, id, p.Admit)
	if err != nil {
		return nil, err
	}
	return b.pickedUp(s, p)
}

// pickedUp records the office's pickup of s, read just before, unless it has one.
// The receipt is signed from a copy of s (confirmSub's snapshot), not from a
// read of its own: every pickup read the record twice, and the commit keeps
// the receipt only if the stored record takes the same transition.
//
// A case whose bytes were erased before the office's system ever read them
// (FetchedAt) is no pickup: the office cannot have the package, and recording one
// signed a Zustellbestaetigung for an application no office had — a clerk
// opening the erased case in the mailbox, a decision through the pull API. It is
// ErrConflict and ErrBytesRemoved. A channel that handed the bytes over itself (a
// case folder) confirms through its Confirmer, not here.
//
// A case a clerk took over in the mailbox is no pickup by another face
// (submission.PickupAllowed): ErrConflict and submission.ErrTakenOver. The
// transition asks it on the record the commit reads, so a takeover committed
// after s was read (the office's system listed the case, the clerk took it,
// the system fetched) refuses the fetch instead of being passed over as a
// repeat: the face's own check on s could not see it.
func (b *Broker) pickedUp(s *submission.Submission, p Pickup) (*submission.Submission, error) {
	if s.DeliveredAt != nil {
		// Picked up before: a repeat, but not by the office's system of a case a
		// clerk took over (the same rule the transition below keeps).
		if err := s.PickupAllowed(p.Channel); err != nil {
			return nil, asConflict(err)
		}
		return s, nil
	}
	c := submission.Confirmation{Receiver: p.Receiver, At: time.Now().UTC()}
	// A copy: the transition changes it, and the caller keeps s for a refusal.
	now, err := b.confirmSub(s.ID, s.Clone(), c, func(cur *submission.Submission, now time.Time, c submission.Confirmation) ([]submission.Event, error) {
		if cur.DeliveredAt == nil && cur.BytesRemovedAt != nil && cur.FetchedAt == nil {
			return nil, fmt.Errorf("%w: submission %s: %w before the office had it", submission.ErrIllegal, cur.ID, ErrBytesRemoved)
		}
		return cur.Confirm(now, p.Channel, c)
	})
	if err == nil && now != nil && now.TakenOverFrom != "" && s.TakenOverFrom == "" {
		// This pickup was the clerk's takeover, committed now: an attempt still
		// under way to the office's system stops, on this node and, by a
		// message, on the other gateways of the cluster (stopEverywhere).
		b.stopEverywhere(s.ID)
	}
	return now, err
}

// errTakenOver is the cause with which a clerk's takeover cancels the context
// of an attempt under way (stopAttempt); process tells such an outcome by it.
var errTakenOver = fmt.Errorf("broker: attempt stopped: %w", submission.ErrTakenOver)

// stopAttempt cancels the delivery attempt of the case id under way on this
// node, if there is one, after a clerk's takeover of the case was committed
// here or on another gateway (clusterstop.go); it says whether there was one.
// The adapter gives the attempt up if it has not yet passed its point of no
// return (transfer: the rename of the case folder into the office's share; a
// webhook request not yet sent is not sent), and process records its end as
// no failure (no attempt_failed event, nothing for the breaker). An attempt
// past that point completes, and its outcome is stale as before. No store
// read or write: the delivery path keeps its cost.
func (b *Broker) stopAttempt(id string) bool {
	v, ok := b.inflight.Load(id)
	if ok {
		v.(context.CancelCauseFunc)(errTakenOver)
	}
	return ok
}

// Decide implements OfficeDesk. An office may decide on a package it has not picked
// up through this face (it was pushed and confirmed, or it decides at once): a
// pending delivery is confirmed first, from the record read for the office
// check and d.Admit.
//
// The outcome is checked after the office check and d.Admit: an id of another
// office is ErrNotFound whatever was sent, and a face that checks its own form
// in d.Admit answers it only for a case the office may decide.
func (b *Broker) Decide(_ context.Context, officeID, id string, d Decision) (*submission.Submission, error) {
	s, err := b.admitted(officeID, id, d.Admit)
	if err != nil {
		return nil, err
	}
	if d.Outcome != OutcomeAccepted && d.Outcome != OutcomeRejected {
		return nil, fmt.Errorf("%w: outcome %q", ErrConflict, d.Outcome)
	}
	if _, err := b.pickedUp(s, Pickup{Channel: d.Channel, Receiver: d.Actor}); err != nil {
		return nil, err
	}
	return b.changeSub(id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.Decide(now, d.Channel, d.Outcome, d.Reason, d.Actor)
	})
}

// MaxReplyBytes bounds one reply, whichever face it comes by; a face that reads
// a reply whole refuses a larger one before it reads it (the pull API: 413).
const MaxReplyBytes = 64 << 20

// Reply implements OfficeDesk: the bytes are fsynced as a blob, then the reply is
// recorded with its event in one transaction.
//
// A case whose bytes were removed (the retention, an erasure) takes no new reply,
// ErrBytesRemoved: nobody could read it — the portal's fetch is refused like every
// byte of the case, and the retention's sweep deletes a blob such a record names —
// yet the office was told it was stored. A case a clerk took over takes none from
// the office's system (ErrConflict and submission.ErrTakenOver: the transition's
// rule, asked before the bytes are stored as well). A repeat of a reply stored
// before still returns it, and stores nothing.
func (b *Broker) Reply(_ context.Context, officeID, id string, in ReplyIn) (submission.Reply, error) {
	if in.MessageID != "" {
		// The look for the message id below and the store are one step for
		// the replies with this id to this case on this node: a form sent
		// twice at once (a double click, Back and another file) stored each
		// request's bytes before the transaction told the repeat, and the
		// other file stayed as a blob no record names (an audit, 2026-12-06).
		// Two nodes of a cluster at once still record one reply; a loser's
		// other bytes wait for the retention's sweep.
		defer b.replyKeys.Lock(id + "\x00" + in.MessageID)()
	}
	s, err := b.forOffice(officeID, id)
	if err != nil {
		return submission.Reply{}, err
	}
	// A repeat returns the reply stored the first time, and its bytes are not
	// stored again: they may be other bytes (the face compares them), which no
	// record would name.
	if i := slices.IndexFunc(s.Replies, func(have submission.Reply) bool {
		return in.MessageID != "" && have.MessageID == in.MessageID
	}); i >= 0 {
		return s.Replies[i], nil
	}
	// Everything the transaction would refuse, asked before the bytes are
	// stored, the transition's rules on a copy: a reply to a case the office
	// does not have yet, or to one forwarded to a peer, stored its bytes and
	// then failed, and the blob waited for the sweep (an audit, 2026-12-06).
	// The transaction asks again (the record may change), about the same
	// reply: one id for both (a review, 2026-12-06).
	r := submission.Reply{ID: newID(), Kind: in.Kind, MessageID: in.MessageID, ContentType: in.ContentType,
		FileName: in.FileName, Size: int64(len(in.Content)), Channel: in.Channel, Actor: in.Actor}
	if err := acceptsReply(s, r); err != nil {
		return submission.Reply{}, err
	}
	if _, err := s.Clone().AddReply(time.Now().UTC(), r); err != nil {
		return submission.Reply{}, asConflict(err)
	}
	if len(in.Content) > MaxReplyBytes {
		return submission.Reply{}, fmt.Errorf("%w: reply of %d bytes exceeds %d", ErrConflict, len(in.Content), MaxReplyBytes)
	}
	r.SHA256, err = b.db.Blobs().Put(in.Content)
	if err != nil {
		// As a package's (Receive): the store cannot write now, a full disk,
		// and the face says "retry later" (503), not a bug (500).
		return submission.Reply{}, fmt.Errorf("broker: store reply: %w: %w", ErrUnavailable, err)
	}
	s, err = b.changeSub(id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		if err := acceptsReply(cur, r); err != nil {
			return nil, err
		}
		r.At = now
		return cur.AddReply(now, r)
	})
	if err != nil {
		return submission.Reply{}, err
	}
	// A repeat returns the reply stored the first time.
	for _, have := range s.Replies {
		if sameReply(have, r.ID, r.MessageID) {
			return have, nil
		}
	}
	return r, nil
}

// sameReply reports whether have is the reply with this id or office message id
// (as submission.AddReply tells a repeat).
func sameReply(have submission.Reply, id, messageID string) bool {
	return have.ID == id || (messageID != "" && have.MessageID == messageID)
}

// acceptsReply refuses a new reply r to a case whose bytes were removed (see
// Reply), the broker's rule beside the transition's (AddReply: a takeover, a
// forward, a case the office does not have); a repeat of one it holds passes.
func acceptsReply(s *submission.Submission, r submission.Reply) error {
	for _, have := range s.Replies {
		if sameReply(have, r.ID, r.MessageID) {
			return nil
		}
	}
	if s.BytesRemovedAt != nil {
		return fmt.Errorf("submission %s: a reply to it could not be read: %w", s.ID, ErrBytesRemoved)
	}
	return nil
}

// OpenReply implements OfficeDesk.
func (b *Broker) OpenReply(ctx context.Context, officeID, id, replyID string) (submission.Reply, io.ReadCloser, error) {
	s, err := b.forOffice(officeID, id)
	if err != nil {
		return submission.Reply{}, nil, err
	}
	return b.openReply(ctx, s, replyID)
}

func (b *Broker) openReply(ctx context.Context, s *submission.Submission, replyID string) (submission.Reply, io.ReadCloser, error) {
	for _, r := range s.Replies { // as OpenAttachment: 404 for an id never had
		if r.ID == replyID {
			if s.BytesRemovedAt != nil {
				return submission.Reply{}, nil, fmt.Errorf("submission %s: %w", s.ID, ErrBytesRemoved)
			}
			rc, err := b.openBlob(ctx, s, r.SHA256)
			return r, rc, err
		}
	}
	return submission.Reply{}, nil, fmt.Errorf("reply %s: %w", replyID, ErrNotFound)
}

// FindReply implements OfficeDesk. Cases of other offices that use the same id
// are passed over, as if they did not exist.
func (b *Broker) FindReply(_ context.Context, officeID, messageID string) (*submission.Submission, submission.Reply, error) {
	if messageID == "" {
		return nil, submission.Reply{}, fmt.Errorf("reply without a message id: %w", ErrNotFound)
	}
	ids, err := b.db.RepliesByMessage(messageID)
	if err != nil {
		return nil, submission.Reply{}, err
	}
	for _, id := range ids {
		s, err := b.forOffice(officeID, id)
		if errors.Is(err, ErrNotFound) {
			continue // another office's, or deleted since the index was read
		} else if err != nil {
			return nil, submission.Reply{}, err
		}
		for _, r := range s.Replies {
			if r.MessageID == messageID {
				return s, r, nil
			}
		}
	}
	return nil, submission.Reply{}, fmt.Errorf("reply %s: %w", messageID, ErrNotFound)
}

// MarkProcessed implements OfficeDesk.
func (b *Broker) MarkProcessed(_ context.Context, officeID, id string, done bool, actor, channel string) (*submission.Submission, error) {
	if _, err := b.forOffice(officeID, id); err != nil {
		return nil, err
	}
	return b.changeSub(id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.MarkProcessed(now, done, actor, channel)
	})
}

// unreadable marks a failure to open stored bytes, other than their absence, as
// ErrUnreadable: the faces answer "retry later" (503), not an internal error.
func unreadable(err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnreadable, err)
}
