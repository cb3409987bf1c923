package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// IndexFault is a submission whose place in the waiting indexes disagrees with its
// record: the rule that every state change writes its index entries in the same
// transaction (store.Store) was broken — by a fault, a bug, or an upgrade that
// left an entry behind. A case missing from the held index waits where no
// operator's list shows it; one left in the outbox is delivered again.
type IndexFault struct {
	SubmissionID string
	Index        string // "outbox", "handed_over", "held", "undecided", "follow_ups", "by_office", "replies" or "idempotency"
	Problem      string
}

func (f IndexFault) String() string {
	return fmt.Sprintf("submission %s, index %s: %s", f.SubmissionID, f.Index, f.Problem)
}

// indexView is what the indexes of cases that wait held when listed: the
// outbox's ids, the handed-over, held and undecided entries with their values.
// A case missing from the undecided index waits for a decision where no gauge,
// alert or list shows it; one left there (an older build decided it: a rolling
// upgrade of a cluster, a way back to an older build) fires the alert for ever.
type indexView struct {
	outbox                  map[string]bool
	handed, held, undecided map[string]store.Waiting
	seenByRecords           map[string]bool
}

func readIndexes(src store.Store) (*indexView, error) {
	v := &indexView{outbox: map[string]bool{}, handed: map[string]store.Waiting{}, held: map[string]store.Waiting{},
		undecided: map[string]store.Waiting{}, seenByRecords: map[string]bool{}}
	ids, err := src.Outbox()
	if err != nil {
		return nil, fmt.Errorf("migrate: outbox: %w", err)
	}
	for _, id := range ids {
		v.outbox[id] = true
	}
	for _, ix := range []struct {
		list func() ([]store.Waiting, error)
		into map[string]store.Waiting
		name string
	}{{src.HandedOver, v.handed, "handed_over"}, {src.Held, v.held, "held"}, {src.Undecided, v.undecided, "undecided"}} {
		ws, err := ix.list()
		if err != nil {
			return nil, fmt.Errorf("migrate: %s: %w", ix.name, err)
		}
		for _, w := range ws {
			ix.into[w.ID] = w
		}
	}
	return v, nil
}

// faultsOf compares one record with the indexes as listed.
func (v *indexView) faultsOf(s *submission.Submission) []IndexFault {
	if v.listed(s.ID) {
		// Only ids an index lists: dangling asks about those alone, and a set of
		// every record's id grew with the store's whole history (a store of
		// millions of cases held hundreds of megabytes for it).
		v.seenByRecords[s.ID] = true
	}
	var out []IndexFault
	member := func(name string, in, want bool, what string) {
		switch {
		case in && !want:
			out = append(out, IndexFault{s.ID, name, fmt.Sprintf("listed, but the case is %s", what)})
		case !in && want:
			out = append(out, IndexFault{s.ID, name, fmt.Sprintf("not listed, but the case is %s", what)})
		}
	}
	member("outbox", v.outbox[s.ID], s.State.Dispatchable(), string(s.State))
	for _, ix := range []struct {
		name  string
		m     map[string]store.Waiting
		want  bool
		state string // what the record is, for the fault
	}{
		{"handed_over", v.handed, s.State == submission.StateHandedOver, string(s.State)},
		{"held", v.held, s.State == submission.StateHeld, string(s.State)},
		{"undecided", v.undecided, s.AwaitsDecision(), undecidedWords(s)},
	} {
		w, in := ix.m[s.ID]
		member(ix.name, in, ix.want, ix.state)
		if in && w.Known && ix.want {
			// Office, channel and erasure: what the views of what waits rely on.
			// Not Fetched: entries of the morning builds of 2026-12-05 carry no such
			// bit, nothing rewrites them, and a store that is sound otherwise was
			// reported damaged (an audit); the bit only marks an XTA message as
			// new until the office closes it.
			if want := store.ParseWaiting(s.ID, store.WaitingValue(s)); want.Known && (want.Office != w.Office || want.Channel != w.Channel || want.Erased != w.Erased) {
				out = append(out, IndexFault{s.ID, ix.name, fmt.Sprintf("its entry names %s, the record %s", waitingWords(w), waitingWords(want))})
			}
		}
	}
	return out
}

// undecidedWords is what a record says about its office's decision, for an
// operator.
func undecidedWords(s *submission.Submission) string {
	switch {
	case s.AwaitsDecision():
		return "delivered via " + s.DeliveryChannel() + " and awaits its office's decision"
	case s.State != submission.StateDelivered:
		return string(s.State)
	case s.Processed:
		return "delivered and marked processed by its office"
	case s.BytesRemovedAt != nil:
		return "delivered and its bytes removed"
	}
	return fmt.Sprintf("delivered via %q, which takes no decision", s.DeliveryChannel())
}

// waitingWords is what an index entry says, for an operator.
func waitingWords(w store.Waiting) string {
	s := fmt.Sprintf("office %q, channel %q", w.Office, w.Channel)
	if w.Erased {
		s += ", erased"
	}
	return s
}

// listed reports whether any index lists id.
func (v *indexView) listed(id string) bool {
	return v.outbox[id] || has(v.handed, id) || has(v.held, id) || has(v.undecided, id)
}

// dangling are the entries no record of the scan accounted for whose record does
// not exist.
func (v *indexView) dangling(src store.Store) ([]IndexFault, error) {
	var out []IndexFault
	check := func(name, id string) error {
		if v.seenByRecords[id] {
			return nil
		}
		if _, err := src.Get(id); errors.Is(err, store.ErrNotFound) {
			out = append(out, IndexFault{id, name, "an entry without a record"})
		} else if err != nil {
			return err
		}
		return nil
	}
	for id := range v.outbox {
		if err := check("outbox", id); err != nil {
			return nil, err
		}
	}
	for name, m := range map[string]map[string]store.Waiting{"handed_over": v.handed, "held": v.held, "undecided": v.undecided} {
		for id := range m {
			if err := check(name, id); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// confirmFaults keeps of faults those that a second look still finds: in cluster
// mode Check runs beside serving gateways, and a case that moved between the
// listing of the indexes and the reading of its record is no fault.
func confirmFaults(src store.Store, faults []IndexFault) ([]IndexFault, error) {
	if len(faults) == 0 {
		return nil, nil
	}
	v, err := readIndexes(src)
	if err != nil {
		return nil, err
	}
	again := map[IndexFault]bool{}
	for _, f := range faults {
		s, err := src.Get(f.SubmissionID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if v.listed(f.SubmissionID) {
				again[IndexFault{f.SubmissionID, f.Index, "an entry without a record"}] = true
			}
		case err != nil:
			return nil, err
		default:
			gs, err := recordFaults(src, v, s)
			if err != nil {
				return nil, err
			}
			for _, g := range gs {
				again[g] = true
			}
		}
	}
	var out []IndexFault
	for _, f := range faults {
		if again[f] {
			out = append(out, f)
			delete(again, f)
		}
	}
	return out, nil
}

func has(m map[string]store.Waiting, id string) bool { _, ok := m[id]; return ok }

// recordFaults are one record's faults: its place in the waiting indexes as
// listed (faultsOf), and the entries the record's own writes keep that are
// read for it alone (a node of an older build of a cluster writes none of a
// newer index, a disk fault or a bug may lose one of any):
//   - by_office: the record in its office's list (store.Store.WalkOffice) —
//     without it the office's listings, the pull API's and the mailbox's,
//     leave the case out, and a case nobody lists reaches nobody;
//   - idempotency: its sender and NachrichtID find it (FindByMessage) —
//     without it the portal's repeat of the package is taken as a new one and
//     reaches the office twice;
//   - replies: each reply with the office's message id found by it
//     (RepliesByMessage) — without it XTA answers a transport report on that
//     reply with "unknown XTAMessageID";
//   - follow_ups: a Nachreichung under its case (FollowUps) — without it the
//     case's page in the mailbox and the office API's caseId list leave it out.
//
// They are the entries `amtsbote store reindex` writes as the record's writes
// would (store.DB.Reindex; on a cluster beside its gateways,
// jsstore.Store.Reindex), so what is named here it repairs — except an
// idempotency key that names another live record, which it leaves alone (two
// records of one message are no index's fault) and this check passes over.
func recordFaults(src store.Store, v *indexView, s *submission.Submission) ([]IndexFault, error) {
	out := v.faultsOf(s)
	if s.OfficeID != "" {
		listed, err := inOfficeList(src, s.OfficeID, s.ID)
		if err != nil {
			return nil, fmt.Errorf("migrate: the list of office %s: %w", s.OfficeID, err)
		}
		if !listed {
			out = append(out, IndexFault{s.ID, "by_office", fmt.Sprintf("not in the list of its office %s, whose listings (pull API, mailbox) leave it out", s.OfficeID)})
		}
	}
	if _, err := src.FindByMessage(s.Sender, s.MessageID); errors.Is(err, store.ErrNotFound) {
		out = append(out, IndexFault{s.ID, "idempotency", fmt.Sprintf("message %s of %s does not find it: a repeat of the package would be taken as a new case", s.MessageID, s.Sender)})
	} else if err != nil {
		return nil, fmt.Errorf("migrate: the idempotency key of %s: %w", s.ID, err)
	}
	for _, r := range s.Replies {
		if r.MessageID == "" {
			continue
		}
		ids, err := src.RepliesByMessage(r.MessageID)
		if err != nil {
			return nil, fmt.Errorf("migrate: the replies of message id %s: %w", r.MessageID, err)
		}
		if !slices.Contains(ids, s.ID) {
			out = append(out, IndexFault{s.ID, "replies", fmt.Sprintf("its reply %s is not found by its message id %s (XTA: \"unknown XTAMessageID\")", r.ID, r.MessageID)})
		}
	}
	if s.CaseID == "" {
		return out, nil
	}
	ids, err := src.FollowUps(s.CaseID)
	if err != nil {
		return nil, fmt.Errorf("migrate: the Nachreichungen of %s: %w", s.CaseID, err)
	}
	if !slices.Contains(ids, s.ID) {
		out = append(out, IndexFault{s.ID, "follow_ups", fmt.Sprintf("not listed under its case %s, whose page and caseId list leave it out", s.CaseID)})
	}
	return out, nil
}

// inOfficeList reports whether the office's list holds id, reading one record:
// it walks the list from a key just below id (justBefore), so the first record
// the walk meets is id's when the list holds it.
func inOfficeList(src store.Store, officeID, id string) (bool, error) {
	found := false
	err := src.WalkOffice(officeID, justBefore(id), func(s *submission.Submission) bool {
		found = s.ID == id
		return false
	})
	return found, err
}

// justBefore is a string that sorts before id with no id between the two: id
// with its last byte one less and then 0xff, which no id (text) continues with.
func justBefore(id string) string {
	if id == "" {
		return ""
	}
	last := id[len(id)-1]
	if last == 0 {
		return id[:len(id)-1]
	}
	return id[:len(id)-1] + string([]byte{last - 1, 0xff})
}

// strayFaults are the entries of the office lists, the index by case, the reply
// index and the idempotency keys that no record accounts for
// (store.StrayLister): with them a store `store verify` finds sound leaves
// `store reindex` nothing to do, on both stores. A bbolt file is checked with
// its gateway stopped, so its entries need no second look; a cluster's store
// (jsstore.Store.StrayEntries) is checked beside its gateways and names only
// the keys its reindex would remove at the moment it names them, after a
// second look at each key's case. Harmless where they are read — the walks
// pass over them, a key of a gone record finds nothing — but a sign of the
// damage that may have cost others their entries.
func strayFaults(ctx context.Context, src store.Store) ([]IndexFault, error) {
	l, ok := src.(store.StrayLister)
	if !ok {
		return nil, nil
	}
	es, err := l.StrayEntries(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]IndexFault, 0, len(es))
	for _, e := range es {
		out = append(out, IndexFault{e.ID, e.Index, strayWords(e)})
	}
	return out, nil
}

// strayWords is what a stray entry says, for an operator.
func strayWords(e store.StrayEntry) string {
	var where, other string
	switch e.Index {
	case "by_office":
		where, other = fmt.Sprintf("an entry in the list of office %s", e.Name), "another office"
	case "follow_ups":
		where, other = fmt.Sprintf("an entry under the case %s", e.Name), "another case"
	case "replies":
		where, other = "an entry for a reply", "no reply with that message id"
	case "idempotency":
		sender, msg, _ := strings.Cut(e.Name, "\x00")
		where, other = fmt.Sprintf("the key of message %s of %s", msg, sender), "another message"
		if e.Name == "" {
			// A cluster's key holds its sender and message id hashed only.
			where = "the key of a message (sender and message id kept hashed)"
		}
	default:
		where, other = "an entry", "something else"
	}
	if e.Gone {
		return where + ", but the case is gone"
	}
	return where + ", but the case names " + other
}
