package jsstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/store/migrate"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// faultCases are the cases of plantIndexFaults, by what they are.
type faultCases struct {
	undecided, decided, delivered, held, handed, queued, answered, followUp *submission.Submission
}

// createCase creates a case of id in state st (edit may change it first).
func createCase(t *testing.T, st *jsstore.Store, id string, state submission.State, edit func(*submission.Submission)) *submission.Submission {
	t.Helper()
	s := storetest.NewSubmission(id, "amt24", "m-"+id)
	s.State = state
	if edit != nil {
		edit(s)
	}
	if _, _, _, err := st.Create(context.Background(), s, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	return s
}

// awaitingCase creates a case delivered by the office API, awaiting its office's
// decision.
func awaitingCase(t *testing.T, st *jsstore.Store, id string) *submission.Submission {
	t.Helper()
	createCase(t, st, id, submission.StateQueued, nil)
	out, err := st.Update(id, func(x *submission.Submission) ([]submission.Event, error) {
		return x.Confirm(time.Now().UTC(), "api", submission.Confirmation{Receiver: "office (pull API)"})
	})
	if err != nil || !out.AwaitsDecision() {
		t.Fatalf("%s: %v", id, err)
	}
	return out
}

// plantIndexFaults makes sound cases and then writes their index keys as an
// older build, a lost write or a bug leaves them: every kind of fault `store
// verify` names for the JetStream store, in every index, and the entries no
// record accounts for that `store reindex` removes on a single node.
func plantIndexFaults(t *testing.T, st *jsstore.Store) faultCases {
	t.Helper()
	var c faultCases
	c.undecided, c.decided = awaitingCase(t, st, "ri-undecided"), awaitingCase(t, st, "ri-decided")
	var err error
	if c.decided, err = st.Update(c.decided.ID, func(x *submission.Submission) ([]submission.Event, error) {
		return x.Decide(time.Now().UTC(), "", submission.OutcomeAccepted, "", "fv")
	}); err != nil {
		t.Fatal(err)
	}
	c.delivered = createCase(t, st, "ri-delivered", submission.StateDelivered, nil)
	c.held = createCase(t, st, "ri-held", submission.StateHeld, nil)
	c.handed = createCase(t, st, "ri-handed", submission.StateHandedOver, nil)
	c.queued = createCase(t, st, "ri-queued", submission.StateQueued, nil)
	c.answered = createCase(t, st, "ri-answered", submission.StateAccepted, func(s *submission.Submission) {
		s.Decision = &submission.Decision{Outcome: submission.OutcomeAccepted, At: time.Now().UTC(), Actor: "fv"}
		s.Replies = []submission.Reply{{ID: "r1", Kind: "Bescheid", MessageID: "xta-4711", Size: 19, SHA256: s.PackageSHA256, Channel: "xta", At: time.Now().UTC()}}
	})
	c.followUp = createCase(t, st, "ri-followup", submission.StateDelivered, func(s *submission.Submission) { s.CaseID = "ri-undecided" })

	other := *c.handed
	other.OfficeID = "another-office"
	office := c.queued.OfficeID
	jsstore.DelKey(t, st, "undecided."+c.undecided.ID)                                                 // delivered by an older build: no key
	jsstore.PutKey(t, st, "undecided."+c.decided.ID, store.WaitingValue(c.undecided))                  // decided by an older build: key left
	jsstore.PutKey(t, st, "held."+c.delivered.ID, store.WaitingValue(c.delivered))                     // a stale held key
	jsstore.DelKey(t, st, "held."+c.held.ID)                                                           // a held case nobody lists
	jsstore.DelKey(t, st, "outbox."+c.queued.ID)                                                       // a queued case never delivered
	jsstore.PutKey(t, st, "outbox.ri-gone", store.WaitingValue(c.queued))                              // a key without a record
	jsstore.PutKey(t, st, "handed."+c.handed.ID, store.WaitingValue(&other))                           // a value naming another office
	jsstore.DelKey(t, st, jsstore.OfficeKey(st, office, c.queued.ID))                                  // missing from its office's list
	jsstore.PutKey(t, st, jsstore.OfficeKey(st, "another-office", c.delivered.ID), nil)                // in another office's list
	jsstore.PutKey(t, st, jsstore.OfficeKey(st, office, "ri-gone"), nil)                               // without a record
	jsstore.DelKey(t, st, jsstore.ReplyKey(st, "xta-4711", c.answered.ID))                             // a reply not found by its id
	jsstore.PutKey(t, st, jsstore.ReplyKey(st, "xta-0815", c.answered.ID), nil)                        // a reply the case does not hold
	jsstore.DelKey(t, st, jsstore.FollowUpKey(st, "ri-undecided", c.followUp.ID))                      // a Nachreichung an older build took in
	jsstore.PutKey(t, st, jsstore.FollowUpKey(st, "ri-queued", c.followUp.ID), nil)                    // under another case
	jsstore.DelKey(t, st, jsstore.IdemKey(st, c.held.Sender, c.held.MessageID))                        // a message that does not find its case
	jsstore.PutKey(t, st, jsstore.IdemKey(st, "amt24", "m-ri-gone"), []byte("ri-gone"))                // a message of a case that is gone
	jsstore.PutKey(t, st, jsstore.IdemKey(st, c.queued.Sender, c.queued.MessageID), []byte("ri-gone")) // naming a case that is gone
	jsstore.PutKey(t, st, jsstore.OfficeKey(st, office, c.delivered.ID), []byte("x"))                  // a member with a value: still a member
	return c
}

// plantedChanges is what Reindex changes on plantIndexFaults' store, per
// index, in the report's order.
var plantedChanges = []store.IndexChanges{
	{Index: "outbox", Added: 1, Removed: 1},
	{Index: "handed_over", Rewritten: 1},
	{Index: "held", Added: 1, Removed: 1},
	{Index: "undecided", Added: 1, Removed: 1},
	{Index: "by_office", Added: 1, Removed: 2},
	{Index: "replies", Added: 1, Removed: 1},
	{Index: "follow_ups", Added: 1, Removed: 1},
	{Index: "idempotency", Added: 1, Removed: 1, Rewritten: 1},
}

// indexFaults is what migrate.Check names on st.
func indexFaults(t *testing.T, st store.Store) []migrate.IndexFault {
	t.Helper()
	_, _, faults, err := migrate.Check(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return faults
}

func reindex(t *testing.T, st *jsstore.Store, dry bool) jsstore.ReindexReport {
	t.Helper()
	rep, err := st.Reindex(context.Background(), jsstore.ReindexOptions{DryRun: dry})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.ChangedMeanwhile) > 0 {
		t.Fatalf("passed over, though nothing else wrote: %v", rep.ChangedMeanwhile)
	}
	return rep
}

// TestReindexRepairsWhatVerifyNames: the cluster had no repair of the index
// faults `store verify` names (an older build beside newer ones leaves them):
// the operator removed keys by hand with `nats kv del`. Reindex repairs every
// kind in every index — and removes the keys no record accounts for —, a dry
// run says the same and writes nothing, verify then finds nothing, and a second
// run changes nothing.
func TestReindexRepairsWhatVerifyNames(t *testing.T) {
	_, st := openOnEmbedded(t, jsstore.Options{})
	c := plantIndexFaults(t, st)

	before := indexFaults(t, st)
	for _, want := range []string{
		"submission ri-undecided, index undecided: not listed",
		"submission ri-decided, index undecided: listed",
		"submission ri-delivered, index held: listed",
		"submission ri-held, index held: not listed",
		"submission ri-queued, index outbox: not listed",
		"submission ri-gone, index outbox: an entry without a record",
		"submission ri-handed, index handed_over: its entry names",
		"submission ri-queued, index by_office: not in the list",
		"submission ri-answered, index replies: its reply r1 is not found",
		"submission ri-followup, index follow_ups: not listed under its case",
		"submission ri-held, index idempotency: message",
		"submission ri-queued, index idempotency: message",
	} {
		found := false
		for _, f := range before {
			found = found || strings.HasPrefix(f.String(), want)
		}
		if !found {
			t.Errorf("verify did not name %q: %v", want, before)
		}
	}

	dry := reindex(t, st, true)
	if !slicesEqual(dry.Indexes, plantedChanges) || dry.Records != 8 {
		t.Fatalf("dry run: %d records, %+v, want %+v", dry.Records, dry.Indexes, plantedChanges)
	}
	if after := indexFaults(t, st); len(after) != len(before) {
		t.Fatalf("the dry run changed the indexes: %d faults before, %d after", len(before), len(after))
	}

	rep := reindex(t, st, false)
	if !slicesEqual(rep.Indexes, plantedChanges) || rep.Records != 8 {
		t.Fatalf("reindex: %d records, %+v, want %+v", rep.Records, rep.Indexes, plantedChanges)
	}
	if f := indexFaults(t, st); len(f) > 0 {
		t.Fatalf("verify after reindex: %v", f)
	}
	// The progress line's counts: every record, and the index keys read.
	var p store.ReindexProgress
	again, err := st.Reindex(context.Background(), jsstore.ReindexOptions{Progress: &p})
	if err != nil || again.Changed() != 0 || len(again.ChangedMeanwhile) > 0 {
		t.Fatalf("second reindex changed %+v (%v)", again, err)
	}
	if p.Records.Load() != 8 || p.Entries.Load() == 0 {
		t.Fatalf("progress: %s", p.Line())
	}

	// What the indexes serve works again, and the keys no record accounts for
	// are gone.
	if s, err := st.FindByMessage(c.held.Sender, c.held.MessageID); err != nil || s.ID != c.held.ID {
		t.Fatalf("FindByMessage: %v %v", s, err)
	}
	if _, err := st.FindByMessage("amt24", "m-ri-gone"); err == nil {
		t.Fatal("the key of a gone case still finds something")
	}
	if ids, err := st.RepliesByMessage("xta-0815"); err != nil || len(ids) != 0 {
		t.Fatalf("RepliesByMessage(xta-0815): %v %v", ids, err)
	}
	for _, k := range []string{jsstore.OfficeKey(st, "another-office", c.delivered.ID), jsstore.OfficeKey(st, c.queued.OfficeID, "ri-gone"),
		jsstore.FollowUpKey(st, "ri-queued", c.followUp.ID), "outbox.ri-gone"} {
		if _, ok := jsstore.KeyValue(t, st, k); ok {
			t.Errorf("%s is still there", k)
		}
	}
	if ids, err := st.FollowUps("ri-undecided"); err != nil || len(ids) != 1 || ids[0] != c.followUp.ID {
		t.Fatalf("FollowUps: %v %v", ids, err)
	}
}

func slicesEqual(a, b []store.IndexChanges) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// once has fn run the first time the hook is called for id.
func once(id string, fn func()) func(string) {
	done := false
	return func(got string) {
		if got == id && !done {
			done = true
			fn()
		}
	}
}

// TestReindexDoesNotUndoAGatewaysWrite: the repair runs beside serving
// gateways. A gateway's write of a case between the repair's read of it and
// its batch makes the batch fail whole; the repair reads again and decides
// from the case as the gateway left it:
//   - a case decided meanwhile gets no undecided key (the repair had read it
//     awaiting a decision, its key missing);
//   - a case moved to another office meanwhile gets no key in the old
//     office's list (the gateway's write does not touch that key: only the
//     batch's expectation of the record stops it);
//   - a case created meanwhile under the id of a stray outbox key keeps the
//     key its Create wrote;
//   - a Nachreichung deleted meanwhile (the retention) gets no key under its
//     case back.
func TestReindexDoesNotUndoAGatewaysWrite(t *testing.T) {
	_, st := openOnEmbedded(t, jsstore.Options{})
	decided := awaitingCase(t, st, "race-decided")
	jsstore.DelKey(t, st, "undecided."+decided.ID)
	moved := createCase(t, st, "race-moved", submission.StateDelivered, nil)
	oldOffice := moved.OfficeID
	jsstore.DelKey(t, st, jsstore.OfficeKey(st, oldOffice, moved.ID))
	jsstore.PutKey(t, st, "outbox.race-created", nil) // no record: a stray, until the Create below
	deleted := createCase(t, st, "race-deleted", submission.StateDelivered, func(s *submission.Submission) { s.CaseID = "race-decided" })
	jsstore.DelKey(t, st, jsstore.FollowUpKey(st, "race-decided", deleted.ID))

	hooks := map[string]func(string){
		decided.ID: once(decided.ID, func() {
			if _, err := st.Update(decided.ID, func(x *submission.Submission) ([]submission.Event, error) {
				return x.Decide(time.Now().UTC(), "", submission.OutcomeAccepted, "", "fv")
			}); err != nil {
				t.Error(err)
			}
		}),
		moved.ID: once(moved.ID, func() {
			if _, err := st.Update(moved.ID, func(x *submission.Submission) ([]submission.Event, error) {
				x.OfficeID = "office-b"
				return []submission.Event{{Type: submission.EventRouted, Detail: "office-b"}}, nil
			}); err != nil {
				t.Error(err)
			}
		}),
		"race-created": once("race-created", func() { createCase(t, st, "race-created", submission.StateQueued, nil) }),
		deleted.ID: once(deleted.ID, func() {
			if err := st.Delete(deleted.ID); err != nil {
				t.Error(err)
			}
		}),
	}
	var hooked []string
	jsstore.BeforeReindexWrite(st, func(id string) {
		hooked = append(hooked, id)
		if h := hooks[id]; h != nil {
			h(id)
		}
	})
	rep := reindex(t, st, false)
	for id := range hooks {
		if !strings.Contains(strings.Join(hooked, " "), id) {
			t.Errorf("the repair of %s wrote nothing: the race was not run (%v)", id, hooked)
		}
	}
	if rep.Changed() != 0 {
		t.Errorf("the repair changed %+v, though each case it meant to repair was changed first", rep.Indexes)
	}
	if _, ok := jsstore.KeyValue(t, st, "undecided."+decided.ID); ok {
		t.Error("a case decided meanwhile got an undecided key")
	}
	if _, ok := jsstore.KeyValue(t, st, jsstore.OfficeKey(st, oldOffice, moved.ID)); ok {
		t.Error("a case moved to another office meanwhile got a key in its old office's list")
	}
	if _, ok := jsstore.KeyValue(t, st, "outbox.race-created"); !ok {
		t.Error("the outbox key of a case created meanwhile was removed")
	}
	if _, ok := jsstore.KeyValue(t, st, jsstore.FollowUpKey(st, "race-decided", deleted.ID)); ok {
		t.Error("a case deleted meanwhile got its key under its case back")
	}
	jsstore.BeforeReindexWrite(st, nil)
	if f := indexFaults(t, st); len(f) > 0 {
		t.Fatalf("verify after: %v", f)
	}
}

// TestReindexPassesOverACaseThatKeepsChanging: a case a gateway changes
// between every read and write of its repair is passed over after a few tries
// and reported, not fought over; a second run repairs it.
func TestReindexPassesOverACaseThatKeepsChanging(t *testing.T) {
	_, st := openOnEmbedded(t, jsstore.Options{})
	busy := createCase(t, st, "busy", submission.StateQueued, nil)
	jsstore.DelKey(t, st, "outbox."+busy.ID)
	jsstore.BeforeReindexWrite(st, func(string) {
		if _, err := st.Update(busy.ID, func(x *submission.Submission) ([]submission.Event, error) {
			return []submission.Event{{Type: submission.EventRouted, Detail: "touched"}}, nil
		}); err != nil {
			t.Error(err)
		}
	})
	rep, err := st.Reindex(context.Background(), jsstore.ReindexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.ChangedMeanwhile) != 1 || rep.ChangedMeanwhile[0] != busy.ID || rep.Changed() != 0 {
		t.Fatalf("report: %+v", rep)
	}
	jsstore.BeforeReindexWrite(st, nil)
	if rep := reindex(t, st, false); rep.Indexes[0].Added != 1 {
		t.Fatalf("second run: %+v", rep.Indexes)
	}
}

// reindexForSuite is storetest.Harness.Reindex: no gateway writes beside the
// suite's repair, so a case passed over is a failure.
func reindexForSuite(t *testing.T, st store.Store) store.ReindexReport {
	t.Helper()
	rep, err := st.(*jsstore.Store).Reindex(context.Background(), jsstore.ReindexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.ChangedMeanwhile) > 0 {
		t.Fatalf("passed over, though nothing else wrote: %v", rep.ChangedMeanwhile)
	}
	return rep.ReindexReport
}
