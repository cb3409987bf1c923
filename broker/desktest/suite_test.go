package desktest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/submission"
)

// memHarness builds MemDesks, each with the planted defect (none: "").
type memHarness struct{ defect string }

func (h memHarness) NewDesk(testing.TB) Desk {
	d := NewMemDesk()
	switch h.defect {
	case "":
		return d
	case "shows-other-office":
		return showsOtherOffice{d}
	case "decides-without-pickup":
		return decidesWithoutPickup{d}
	case "second-decision-accepted":
		return secondDecision{d}
	case "decision-without-event":
		return silentDecision{d}
	case "admit-before-office-check":
		return admitFirst{d}
	case "attachment-records-pickup":
		return attachmentPicksUp{d}
	case "readcase-unchecked":
		return readsUnchecked{d}
	case "fetch-records-fetch":
		return fetchRecords{d}
	case "waiting-keeps-picked-up":
		return waitingKeeps{d}
	case "reply-stored-twice":
		return replyTwice{d}
	case "reply-without-file-name":
		return replyNameless{d}
	case "findreply-any-office":
		return findsAny{d}
	case "opens-erased-bytes":
		return opensErased{d}
	case "serves-erased-attachment":
		return servesErasedAttachment{d}
	case "serves-erased-reply":
		return servesErasedReply{d}
	case "replies-to-erased":
		return repliesToErased{d}
	case "confirms-erased-unread":
		return confirmsErasedUnread{d}
	case "decides-erased-unread":
		return decidesErasedUnread{d}
	case "picks-up-forwarded":
		return picksUpForwarded{d}
	case "receipt-of-any-office":
		return receiptsAnyOffice{d}
	case "receipt-missing":
		return d // claims Receipts (Features) and holds none
	case "list-text-as-typed":
		return listsAsTyped{d}
	case "list-case-any-office":
		return listsCaseOfAnyOffice{d}
	case "refuses-forwarded-fetch":
		return refusesForwardedFetch{d}
	case "fetch-picks-up-forwarded":
		return fetchPicksUpForwarded{d}
	case "records-forwarded-fetch":
		return recordsForwardedFetch{d}
	case "decides-forwarded-locally":
		return decidesForwardedLocally{d}
	case "takeover-unmarked":
		return takeoverUnmarked{d}
	case "system-opens-taken-over":
		return systemOpensTakenOver{d}
	case "system-decides-taken-over":
		return systemDecidesTakenOver{d}
	case "system-replies-to-taken-over":
		return systemRepliesToTakenOver{d}
	case "clerk-refused-taken-over":
		return clerkRefusedTakenOver{d}
	case "takeover-after-fetch":
		return takeoverAfterFetch{d}
	case "stores-refused-reply":
		return storesRefusedReply{d}
	case "system-fetches-taken-over":
		return systemFetchesTakenOver{d}
	case "drops-fetch-at-takeover":
		return dropsFetchAtTakeover{d}
	}
	panic("desktest: unknown defect " + h.defect)
}

// Features: MemDesk signs nothing; the receipt defects are desks that say
// they hold receipts.
func (h memHarness) Features() Features {
	return Features{Receipts: h.defect == "receipt-of-any-office" || h.defect == "receipt-missing"}
}

// TestMemDeskConforms: the reference desk, which the mailbox's page tests
// run on, keeps every rule of the broker's desk.
func TestMemDeskConforms(t *testing.T) {
	Run(t, memHarness{})
}

// TestPlantedDefectsFail proves the suite has teeth: each defect, planted in
// an otherwise correct MemDesk, must make the case of its rule fail. The suite
// runs in a child process because a failing *testing.T cannot be contained in
// this one.
func TestPlantedDefectsFail(t *testing.T) {
	if os.Getenv("DESKTEST_DEFECT") != "" {
		return // this is the child process itself
	}
	testenv.PlantedDefects(t, "DESKTEST_DEFECT", "an office desk", map[string]string{
		"shows-other-office":           "OtherOfficeIsNotFound",
		"decides-without-pickup":       "DecisionImpliesPickup",
		"second-decision-accepted":     "DecisionIsFinal",
		"decision-without-event":       "ActionsAreLogged",
		"admit-before-office-check":    "AdmitAfterTheOfficeCheck",
		"attachment-records-pickup":    "OpenAttachmentRecordsNothing",
		"readcase-unchecked":           "ReadCaseUnreadIsNoPickup",
		"fetch-records-fetch":          "FetchRecordsNothingUntilRecordFetch",
		"waiting-keeps-picked-up":      "WaitingNamesWhatWaits",
		"reply-stored-twice":           "ReplyStoredOnce",
		"reply-without-file-name":      "ReplyStoredOnce",
		"findreply-any-office":         "FindReplyOwnOfficeOnly",
		"opens-erased-bytes":           "ErasedBytesAreRemoved",
		"serves-erased-attachment":     "ErasedBytesAreRemoved",
		"serves-erased-reply":          "ErasedBytesAreRemoved",
		"replies-to-erased":            "ErasedBytesAreRemoved",
		"confirms-erased-unread":       "ErasedUnreadAllowsNoPickup",
		"decides-erased-unread":        "ErasedUnreadAllowsNoPickup",
		"picks-up-forwarded":           "ForwardedAllowsNoPickup",
		"receipt-of-any-office":        "ReceiptOwnOfficeOnly",
		"receipt-missing":              "ReceiptOwnOfficeOnly",
		"list-text-as-typed":           "ListTextFolds",
		"list-case-any-office":         "ListCaseNamesItsNachreichungen",
		"refuses-forwarded-fetch":      "ForwardedFetchRecordsNothing",
		"fetch-picks-up-forwarded":     "ForwardedFetchRecordsNothing",
		"records-forwarded-fetch":      "ForwardedFetchRecordsNothing",
		"decides-forwarded-locally":    "ForwardedDecisionIsThePeers",
		"takeover-unmarked":            "TakeoverIsRecorded",
		"system-opens-taken-over":      "TakenOverIsRefusedToTheSystem",
		"system-decides-taken-over":    "TakenOverIsRefusedToTheSystem",
		"system-replies-to-taken-over": "TakenOverIsRefusedToTheSystem",
		"clerk-refused-taken-over":     "TakenOverIsRefusedToTheSystem",
		"takeover-after-fetch":         "ReadFirstIsNoTakeover",
		"stores-refused-reply":         "RefusedReplyLeavesNoBytes",
		"system-fetches-taken-over":    "TakenOverIsRefusedToTheSystem",
		"drops-fetch-at-takeover":      "FetchUnderWayAtTheTakeoverIsRecorded",
	})
}

// TestDefectChild is the child of TestPlantedDefectsFail and does nothing on its own.
func TestDefectChild(t *testing.T) {
	if defect := os.Getenv("DESKTEST_DEFECT"); defect != "" {
		Run(t, memHarness{defect: defect})
	}
}

// showsOtherOffice answers Get for any office's case.
type showsOtherOffice struct{ *MemDesk }

func (d showsOtherOffice) Get(_ context.Context, _, id string) (*submission.Submission, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.subs[id]; ok {
		return s.Clone(), nil
	}
	return nil, broker.ErrNotFound
}

// decidesWithoutPickup records the decision on a case the office never took.
type decidesWithoutPickup struct{ *MemDesk }

func (d decidesWithoutPickup) Decide(_ context.Context, office, id string, dec broker.Decision) (*submission.Submission, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.admitted(office, id, dec.Admit)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	s.Decision = &submission.Decision{Outcome: dec.Outcome, Reason: dec.Reason, Actor: dec.Actor, At: now, RecordedAt: now}
	s.State = submission.State(dec.Outcome)
	d.record(id, []submission.Event{{At: now, Type: dec.Outcome, Actor: dec.Actor, Channel: dec.Channel}})
	return s.Clone(), nil
}

// secondDecision takes another decision over the first.
type secondDecision struct{ *MemDesk }

func (d secondDecision) Decide(ctx context.Context, office, id string, dec broker.Decision) (*submission.Submission, error) {
	d.mu.Lock()
	if s, err := d.forOffice(office, id); err == nil && s.Decision != nil && s.Decision.Outcome != dec.Outcome {
		s.Decision = nil
		s.State = submission.StateDelivered
	}
	d.mu.Unlock()
	return d.MemDesk.Decide(ctx, office, id, dec)
}

// silentDecision records the decision and leaves its event out.
type silentDecision struct{ *MemDesk }

func (d silentDecision) Decide(ctx context.Context, office, id string, dec broker.Decision) (*submission.Submission, error) {
	s, err := d.MemDesk.Decide(ctx, office, id, dec)
	if err == nil {
		d.mu.Lock()
		evs := d.events[id]
		if n := len(evs); n > 0 && evs[n-1].Type == dec.Outcome {
			d.events[id] = evs[:n-1]
		}
		d.mu.Unlock()
	}
	return s, err
}

// admitFirst asks the face's Admit before the office check.
type admitFirst struct{ *MemDesk }

func (d admitFirst) Decide(ctx context.Context, office, id string, dec broker.Decision) (*submission.Submission, error) {
	d.mu.Lock()
	s, ok := d.subs[id]
	d.mu.Unlock()
	if ok && dec.Admit != nil {
		if err := dec.Admit(s.Clone()); err != nil {
			return nil, err
		}
	}
	dec.Admit = nil
	return d.MemDesk.Decide(ctx, office, id, dec)
}

// attachmentPicksUp counts opening an attachment as the pickup.
type attachmentPicksUp struct{ *MemDesk }

func (d attachmentPicksUp) OpenAttachment(ctx context.Context, office, id, aid string, admit broker.Admit) (submission.Attachment, io.ReadCloser, error) {
	a, rc, err := d.MemDesk.OpenAttachment(ctx, office, id, aid, admit)
	if err == nil {
		_, err = d.Confirm(ctx, office, id, broker.Pickup{Channel: "mailbox", Receiver: "attachment"})
	}
	return a, rc, err
}

// readsUnchecked takes the package bytes as they open, without their check.
type readsUnchecked struct{ *MemDesk }

func (d readsUnchecked) ReadCase(ctx context.Context, office, id string, o broker.CaseRead) (*broker.Case, error) {
	d.mu.Lock()
	if s, err := d.forOffice(office, id); err == nil {
		b := d.blobs["pkg:"+id]
		s.PackageSHA256, s.PackageSize = sha256Hex(b), int64(len(b))
	}
	d.mu.Unlock()
	return d.MemDesk.ReadCase(ctx, office, id, o)
}

// fetchRecords records the fetch when the bytes are handed out.
type fetchRecords struct{ *MemDesk }

func (d fetchRecords) FetchPackage(ctx context.Context, office, id, ch string) (*submission.Submission, io.ReadCloser, error) {
	s, rc, err := d.MemDesk.FetchPackage(ctx, office, id, ch)
	if err == nil {
		s, err = d.RecordFetch(ctx, office, id, ch, time.Now())
	}
	return s, rc, err
}

// dropsFetchAtTakeover records no fetch after the delivery, as RecordFetch
// did before 2026-12-07: a getMessage under way at a clerk's takeover left no
// trace.
type dropsFetchAtTakeover struct{ *MemDesk }

func (d dropsFetchAtTakeover) RecordFetch(ctx context.Context, office, id, ch string, at time.Time) (*submission.Submission, error) {
	d.mu.Lock()
	s, err := d.forOffice(office, id)
	delivered := err == nil && s.DeliveredAt != nil
	d.mu.Unlock()
	if delivered {
		return d.MemDesk.Get(ctx, office, id)
	}
	return d.MemDesk.RecordFetch(ctx, office, id, ch, at)
}

// waitingKeeps names every case of the office that was ever handed over.
type waitingKeeps struct{ *MemDesk }

func (d waitingKeeps) Waiting(_ context.Context, office string) ([]broker.WaitingEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []broker.WaitingEntry
	for _, id := range d.order {
		if s := d.subs[id]; s.OfficeID == office {
			out = append(out, broker.WaitingEntry{ID: id, Fetched: s.FetchedAt != nil})
		}
	}
	return out, nil
}

// replyTwice stores a repeat of a reply again.
type replyTwice struct{ *MemDesk }

func (d replyTwice) Reply(ctx context.Context, office, id string, in broker.ReplyIn) (submission.Reply, error) {
	in.MessageID += "-" + time.Now().Format(time.RFC3339Nano)
	return d.MemDesk.Reply(ctx, office, id, in)
}

// replyNameless stores a reply without the file name the office gave it.
type replyNameless struct{ *MemDesk }

func (d replyNameless) Reply(ctx context.Context, office, id string, in broker.ReplyIn) (submission.Reply, error) {
	in.FileName = ""
	return d.MemDesk.Reply(ctx, office, id, in)
}

// findsAny finds a reply at any office.
type findsAny struct{ *MemDesk }

func (d findsAny) FindReply(_ context.Context, _, messageID string) (*submission.Submission, submission.Reply, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range d.order {
		for _, r := range d.subs[id].Replies {
			if r.MessageID == messageID {
				return d.subs[id].Clone(), r, nil
			}
		}
	}
	return nil, submission.Reply{}, broker.ErrNotFound
}

// opensErased hands out what is left of an erased case's package, as MemDesk
// did before the suite checked erased cases.
type opensErased struct{ *MemDesk }

func (d opensErased) FetchPackage(_ context.Context, office, id, _ string) (*submission.Submission, io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.forOffice(office, id)
	if err != nil {
		return nil, nil, err
	}
	return s.Clone(), io.NopCloser(bytes.NewReader(d.blobs["pkg:"+id])), nil
}

// servesErasedAttachment opens an attachment of an erased case, empty, as
// MemDesk did before the suite checked it.
type servesErasedAttachment struct{ *MemDesk }

func (d servesErasedAttachment) OpenAttachment(ctx context.Context, office, id, aid string, admit broker.Admit) (a submission.Attachment, rc io.ReadCloser, err error) {
	d.unerased(office, id, func() { a, rc, err = d.MemDesk.OpenAttachment(ctx, office, id, aid, admit) })
	return a, rc, err
}

// servesErasedReply opens a reply of an erased case, empty, as MemDesk did
// before the suite checked it.
type servesErasedReply struct{ *MemDesk }

func (d servesErasedReply) OpenReply(ctx context.Context, office, id, replyID string) (r submission.Reply, rc io.ReadCloser, err error) {
	d.unerased(office, id, func() { r, rc, err = d.MemDesk.OpenReply(ctx, office, id, replyID) })
	return r, rc, err
}

// repliesToErased stores a new reply to an erased case that nobody could read.
type repliesToErased struct{ *MemDesk }

func (d repliesToErased) Reply(ctx context.Context, office, id string, in broker.ReplyIn) (r submission.Reply, err error) {
	d.unerased(office, id, func() { r, err = d.MemDesk.Reply(ctx, office, id, in) })
	return r, err
}

// unerased runs call with the case's erasure hidden: MemDesk passes over its
// erased-case rules and keeps every other (its blobs are gone all the same,
// so what it serves is empty).
func (d *MemDesk) unerased(office, id string, call func()) {
	d.hiding(office, id, func(s *submission.Submission) func() {
		gone := s.BytesRemovedAt
		s.BytesRemovedAt = nil
		return func() { s.BytesRemovedAt = gone }
	}, call)
}

// pickUpFirst records the pickup of the office's case id without asking
// whether its bytes were erased before the office read them; the MemDesk
// method called next then finds it picked up.
func (d *MemDesk) pickUpFirst(office, id string, p broker.Pickup) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, err := d.forOffice(office, id); err == nil {
		_ = d.change(s, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
			return cur.Confirm(now, p.Channel, submission.Confirmation{Receiver: p.Receiver, At: now})
		})
	}
}

// confirmsErasedUnread records a confirmation of a case erased before the
// office read it as the delivery.
type confirmsErasedUnread struct{ *MemDesk }

func (d confirmsErasedUnread) Confirm(ctx context.Context, office, id string, p broker.Pickup) (*submission.Submission, error) {
	d.pickUpFirst(office, id, p)
	return d.MemDesk.Confirm(ctx, office, id, p)
}

// decidesErasedUnread records the pickup a decision implies on a case erased
// before the office read it, and then the decision.
type decidesErasedUnread struct{ *MemDesk }

func (d decidesErasedUnread) Decide(ctx context.Context, office, id string, dec broker.Decision) (*submission.Submission, error) {
	d.pickUpFirst(office, id, broker.Pickup{Channel: dec.Channel, Receiver: dec.Actor})
	return d.MemDesk.Decide(ctx, office, id, dec)
}

// picksUpForwarded records a confirmation of a forwarded case as the delivery.
type picksUpForwarded struct{ *MemDesk }

func (d picksUpForwarded) Confirm(ctx context.Context, office, id string, p broker.Pickup) (*submission.Submission, error) {
	d.mu.Lock()
	if s, err := d.forOffice(office, id); err == nil && s.State == submission.StateForwarded {
		s.State = submission.StateHandedOver
	}
	d.mu.Unlock()
	return d.MemDesk.Confirm(ctx, office, id, p)
}

// receiptsAnyOffice holds an intake receipt for every case and hands it to
// any office.
type receiptsAnyOffice struct{ *MemDesk }

func (d receiptsAnyOffice) Receipt(_ context.Context, _, id, kind string) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.subs[id]; ok && kind == broker.ReceiptIntake {
		return []byte("<Eingangsbestaetigung>" + id + "</Eingangsbestaetigung>"), nil
	}
	return nil, broker.ErrNotFound
}

// listsAsTyped finds a case by text only as typed, ignoring case: MemDesk's
// search before the suite checked it, where "Goerlitz" found no Görlitz.
type listsAsTyped struct{ *MemDesk }

func (d listsAsTyped) List(ctx context.Context, office string, q broker.ListQuery) (broker.Page, error) {
	text := strings.ToLower(q.Text)
	q.Text = ""
	p, err := d.MemDesk.List(ctx, office, q)
	var keep []*submission.Submission
	for _, s := range p.Items {
		if strings.Contains(strings.ToLower(s.ID+" "+s.ServiceName+" "+s.Place+" "+s.Sender+" "+s.MessageID), text) {
			keep = append(keep, s)
		}
	}
	p.Items = keep
	return p, err
}

// listsCaseOfAnyOffice lists a case's Nachreichungen from the index alone,
// whichever office they went to.
type listsCaseOfAnyOffice struct{ *MemDesk }

func (d listsCaseOfAnyOffice) List(ctx context.Context, office string, q broker.ListQuery) (broker.Page, error) {
	if q.Case == "" {
		return d.MemDesk.List(ctx, office, q)
	}
	var p broker.Page
	for _, o := range []string{officeA, officeB} {
		more, err := d.MemDesk.List(ctx, o, q)
		if err != nil {
			return p, err
		}
		p.Items = append(p.Items, more.Items...)
	}
	return p, nil
}

// refusesForwardedFetch answers FetchPackage of a forwarded case as
// OpenPackage does, ErrConflict: "no pickup" taken for "no bytes".
type refusesForwardedFetch struct{ *MemDesk }

func (d refusesForwardedFetch) FetchPackage(ctx context.Context, office, id, ch string) (*submission.Submission, io.ReadCloser, error) {
	d.mu.Lock()
	s, err := d.forOffice(office, id)
	forwarded := err == nil && s.Forward != nil
	d.mu.Unlock()
	if forwarded {
		return nil, nil, fmt.Errorf("submission %s is the peer's: %w", id, broker.ErrConflict)
	}
	return d.MemDesk.FetchPackage(ctx, office, id, ch)
}

// fetchPicksUpForwarded records the fetch of a forwarded case as its pickup
// on the fetch's channel, over the peer's delivery to come.
type fetchPicksUpForwarded struct{ *MemDesk }

func (d fetchPicksUpForwarded) FetchPackage(ctx context.Context, office, id, ch string) (*submission.Submission, io.ReadCloser, error) {
	d.mu.Lock()
	if s, err := d.forOffice(office, id); err == nil && s.State == submission.StateForwarded {
		s.State = submission.StateHandedOver
		_ = d.pickedUp(s, broker.Pickup{Channel: ch, Receiver: "office A"})
	}
	d.mu.Unlock()
	return d.MemDesk.FetchPackage(ctx, office, id, ch)
}

// recordsForwardedFetch records the office system's fetch of a forwarded
// case, as RecordFetch did before the fetch's transition asked whether the
// case was forwarded.
type recordsForwardedFetch struct{ *MemDesk }

func (d recordsForwardedFetch) RecordFetch(ctx context.Context, office, id, ch string, at time.Time) (*submission.Submission, error) {
	d.mu.Lock()
	if s, err := d.forOffice(office, id); err == nil && s.Forward != nil && s.FetchedAt == nil {
		when := at.UTC()
		s.FetchedAt = &when
		d.record(id, []submission.Event{{At: when, Type: submission.EventFetched, Channel: ch}})
	}
	d.mu.Unlock()
	return d.MemDesk.RecordFetch(ctx, office, id, ch, at)
}

// decidesForwardedLocally records a decision through the desk on a forwarded
// case the peer reported delivered, as Decide did when only the state was
// asked.
type decidesForwardedLocally struct{ *MemDesk }

func (d decidesForwardedLocally) Decide(ctx context.Context, office, id string, dec broker.Decision) (sub *submission.Submission, err error) {
	d.hiding(office, id, func(s *submission.Submission) func() {
		fwd := s.Forward
		s.Forward = nil
		return func() { s.Forward = fwd }
	}, func() { sub, err = d.MemDesk.Decide(ctx, office, id, dec) })
	return sub, err
}

// withoutTakeover runs call on the office's case id with the record's
// takeover hidden, as a desk that does not ask it: the MemDesk method call
// runs then finds a case no clerk took over.
func (d *MemDesk) withoutTakeover(office, id string, call func()) {
	d.hiding(office, id, func(s *submission.Submission) func() {
		from := s.TakenOverFrom
		s.TakenOverFrom = ""
		return func() { s.TakenOverFrom = from }
	}, call)
}

// hiding runs call with a field of the office's case id hidden: hide clears it
// (under the desk's lock) and returns what puts it back afterwards — the way a
// planted defect makes MemDesk pass over one rule and keep every other.
func (d *MemDesk) hiding(office, id string, hide func(*submission.Submission) (restore func()), call func()) {
	restore := func() {}
	d.mu.Lock()
	if s, err := d.forOffice(office, id); err == nil {
		restore = hide(s)
	}
	d.mu.Unlock()
	call()
	d.mu.Lock()
	restore()
	d.mu.Unlock()
}

// takeoverUnmarked records the clerk's takeover as any pickup: the record
// does not say it was taken over.
type takeoverUnmarked struct{ *MemDesk }

func (d takeoverUnmarked) OpenPackage(ctx context.Context, office, id string, p broker.Pickup) (*submission.Submission, io.ReadCloser, error) {
	sub, rc, err := d.MemDesk.OpenPackage(ctx, office, id, p)
	d.mu.Lock()
	if s, ferr := d.forOffice(office, id); ferr == nil {
		s.TakenOverFrom = ""
	}
	d.mu.Unlock()
	if sub != nil {
		sub.TakenOverFrom = ""
	}
	return sub, rc, err
}

// systemOpensTakenOver hands the office's system the package of a case a
// clerk took over, as the pull API did before the takeover was recorded.
type systemOpensTakenOver struct{ *MemDesk }

func (d systemOpensTakenOver) OpenPackage(ctx context.Context, office, id string, p broker.Pickup) (sub *submission.Submission, rc io.ReadCloser, err error) {
	if p.Channel == channel.Mailbox {
		return d.MemDesk.OpenPackage(ctx, office, id, p)
	}
	d.withoutTakeover(office, id, func() { sub, rc, err = d.MemDesk.OpenPackage(ctx, office, id, p) })
	return sub, rc, err
}

// systemDecidesTakenOver records the system's decision on a case a clerk
// took over.
type systemDecidesTakenOver struct{ *MemDesk }

func (d systemDecidesTakenOver) Decide(ctx context.Context, office, id string, dec broker.Decision) (sub *submission.Submission, err error) {
	if dec.Channel == channel.Mailbox {
		return d.MemDesk.Decide(ctx, office, id, dec)
	}
	d.withoutTakeover(office, id, func() { sub, err = d.MemDesk.Decide(ctx, office, id, dec) })
	return sub, err
}

// systemRepliesToTakenOver stores the system's reply to a case a clerk took
// over, as the desk did before Reply asked the takeover.
type systemRepliesToTakenOver struct{ *MemDesk }

func (d systemRepliesToTakenOver) Reply(ctx context.Context, office, id string, in broker.ReplyIn) (r submission.Reply, err error) {
	d.withoutTakeover(office, id, func() { r, err = d.MemDesk.Reply(ctx, office, id, in) })
	return r, err
}

// clerkRefusedTakenOver refuses the takeover's own face too: the mailbox no
// longer opens the case its clerk took over.
type clerkRefusedTakenOver struct{ *MemDesk }

func (d clerkRefusedTakenOver) OpenPackage(ctx context.Context, office, id string, p broker.Pickup) (*submission.Submission, io.ReadCloser, error) {
	d.mu.Lock()
	s, err := d.forOffice(office, id)
	taken := err == nil && s.TakenOverFrom != ""
	d.mu.Unlock()
	if taken {
		return nil, nil, fmt.Errorf("%w: %w", broker.ErrConflict, submission.ErrTakenOver)
	}
	return d.MemDesk.OpenPackage(ctx, office, id, p)
}

// takeoverAfterFetch takes a clerk's pickup of a case with a target of the
// office's system for a takeover, whether the system read it first or not.
type takeoverAfterFetch struct{ *MemDesk }

func (d takeoverAfterFetch) mark(office, id string, p broker.Pickup) {
	if p.Channel != channel.Mailbox {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, err := d.forOffice(office, id); err == nil && s.DeliveredVia == channel.Mailbox {
		if t, ok := s.CurrentTarget(); ok && t.Channel != channel.Mailbox {
			s.TakenOverFrom = t.Channel
		}
	}
}

func (d takeoverAfterFetch) Confirm(ctx context.Context, office, id string, p broker.Pickup) (*submission.Submission, error) {
	sub, err := d.MemDesk.Confirm(ctx, office, id, p)
	d.mark(office, id, p)
	if err == nil {
		sub, err = d.MemDesk.Get(ctx, office, id)
	}
	return sub, err
}

func (d takeoverAfterFetch) OpenPackage(ctx context.Context, office, id string, p broker.Pickup) (*submission.Submission, io.ReadCloser, error) {
	sub, rc, err := d.MemDesk.OpenPackage(ctx, office, id, p)
	d.mark(office, id, p)
	if err == nil {
		sub, err = d.MemDesk.Get(ctx, office, id)
	}
	return sub, rc, err
}

// TestMemDeskAddKeepsTheRecord: Add, which the mailbox's tests use to set up
// cases in any state, stores the record as given and fills in only the
// package's digest and size, so that ReadCase checks the bytes.
func TestMemDeskAddKeepsTheRecord(t *testing.T) {
	d := NewMemDesk()
	pkg := []byte("<x/>")
	now := time.Now()
	d.Add(&submission.Submission{ID: "v1", OfficeID: "amt-a", State: submission.StateAccepted, ReceivedAt: now, DeliveredAt: &now}, pkg, nil)
	c, err := d.ReadCase(context.Background(), "amt-a", "v1", broker.CaseRead{Max: 1 << 10})
	if err != nil || c.Sub.State != submission.StateAccepted || c.Sub.PackageSize != int64(len(pkg)) {
		t.Fatalf("ReadCase: %+v, %v", c, err)
	}
	if !bytes.Equal(c.Package, pkg) || c.Unread != nil {
		t.Fatalf("ReadCase of an accepted case: %q, unread %v", c.Package, c.Unread)
	}
}

// storesRefusedReply stores a reply's bytes before the transition is asked,
// as the broker did: a refused reply leaves them behind.
type storesRefusedReply struct{ *MemDesk }

func (d storesRefusedReply) Reply(ctx context.Context, office, id string, in broker.ReplyIn) (submission.Reply, error) {
	d.mu.Lock()
	d.blobs["early:"+sha256Hex(in.Content)] = bytes.Clone(in.Content)
	d.mu.Unlock()
	return d.MemDesk.Reply(ctx, office, id, in)
}

// systemFetchesTakenOver serves an XTA getMessage the package of a case a
// clerk took over, as FetchPackage did when the face had to ask itself.
type systemFetchesTakenOver struct{ *MemDesk }

func (d systemFetchesTakenOver) FetchPackage(ctx context.Context, office, id, ch string) (sub *submission.Submission, rc io.ReadCloser, err error) {
	d.withoutTakeover(office, id, func() { sub, rc, err = d.MemDesk.FetchPackage(ctx, office, id, ch) })
	return sub, rc, err
}
