package jsstore_test

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/submission"
)

// strayEntries is st.StrayEntries, sorted.
func strayEntries(t *testing.T, st *jsstore.Store) []store.StrayEntry {
	t.Helper()
	es, err := st.StrayEntries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sortStrays(es)
	return es
}

func sortStrays(es []store.StrayEntry) {
	sort.Slice(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.Index != b.Index {
			return a.Index < b.Index
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Name < b.Name
	})
}

// TestVerifyNamesTheStraysReindexRemoves: on a cluster `store verify` named
// no key of the indexes keyed by a name that no record accounts for, and
// `store reindex` removed them: a store verify passed was changed by reindex
// (docs/cluster.md listed it as a gap). Verify now names each such key of
// every kind — a case's key in another office's list, under another case,
// for a reply it does not hold, for another message, and each kind for a case
// that is gone — exactly those, reindex removes exactly those, and verify then
// passes.
func TestVerifyNamesTheStraysReindexRemoves(t *testing.T) {
	_, st := openOnEmbedded(t, jsstore.Options{})
	delivered := createCase(t, st, "st-delivered", submission.StateDelivered, nil)
	base := createCase(t, st, "st-base", submission.StateDelivered, nil)
	answered := createCase(t, st, "st-answered", submission.StateAccepted, func(s *submission.Submission) {
		s.Decision = &submission.Decision{Outcome: submission.OutcomeAccepted, At: time.Now().UTC(), Actor: "fv"}
		s.Replies = []submission.Reply{{ID: "r1", Kind: "Bescheid", MessageID: "xta-4711", Size: 19, SHA256: s.PackageSHA256, Channel: "xta", At: time.Now().UTC()}}
	})
	followUp := createCase(t, st, "st-followup", submission.StateDelivered, func(s *submission.Submission) { s.CaseID = base.ID })
	office := delivered.OfficeID
	if f := indexFaults(t, st); len(f) > 0 {
		t.Fatalf("a sound store: %v", f)
	}

	jsstore.PutKey(t, st, jsstore.OfficeKey(st, "another-office", delivered.ID), nil)          // in another office's list
	jsstore.PutKey(t, st, jsstore.OfficeKey(st, office, "st-gone"), nil)                       // in its office's, gone
	jsstore.PutKey(t, st, jsstore.FollowUpKey(st, delivered.ID, followUp.ID), nil)             // under another case
	jsstore.PutKey(t, st, jsstore.FollowUpKey(st, base.ID, "st-gone"), nil)                    // under its case, gone
	jsstore.PutKey(t, st, jsstore.ReplyKey(st, "xta-0815", answered.ID), nil)                  // a reply it does not hold
	jsstore.PutKey(t, st, jsstore.ReplyKey(st, "xta-4711", "st-gone"), nil)                    // a reply of a gone case
	jsstore.PutKey(t, st, jsstore.IdemKey(st, "amt24", "m-other"), []byte(delivered.ID))       // another message's key
	jsstore.PutKey(t, st, jsstore.IdemKey(st, "amt24", "m-st-gone"), []byte("st-gone"))        // a gone case's
	jsstore.PutKey(t, st, "outbox.st-gone", nil)                                               // a waiting key: verify's own check names it
	jsstore.PutKey(t, st, jsstore.OfficeKey(st, office, delivered.ID), []byte("with a value")) // a member with a value: still a member

	want := []store.StrayEntry{
		{Index: "by_office", ID: "st-delivered", Name: "another-office"},
		{Index: "by_office", ID: "st-gone", Name: office, Gone: true},
		{Index: "follow_ups", ID: "st-followup", Name: delivered.ID},
		{Index: "follow_ups", ID: "st-gone", Name: base.ID, Gone: true},
		{Index: "idempotency", ID: "st-delivered"},
		{Index: "idempotency", ID: "st-gone", Gone: true},
		{Index: "replies", ID: "st-answered"},
		{Index: "replies", ID: "st-gone", Gone: true},
	}
	if got := strayEntries(t, st); !slices.Equal(got, want) {
		t.Fatalf("StrayEntries:\n got %+v\nwant %+v", got, want)
	}

	var lines []string
	for _, f := range indexFaults(t, st) {
		lines = append(lines, f.String())
	}
	sort.Strings(lines)
	wantLines := []string{
		"submission st-answered, index replies: an entry for a reply, but the case names no reply with that message id",
		"submission st-delivered, index by_office: an entry in the list of office another-office, but the case names another office",
		"submission st-delivered, index idempotency: the key of a message (sender and message id kept hashed), but the case names another message",
		"submission st-followup, index follow_ups: an entry under the case st-delivered, but the case names another case",
		"submission st-gone, index by_office: an entry in the list of office " + office + ", but the case is gone",
		"submission st-gone, index follow_ups: an entry under the case st-base, but the case is gone",
		"submission st-gone, index idempotency: the key of a message (sender and message id kept hashed), but the case is gone",
		"submission st-gone, index outbox: an entry without a record",
		"submission st-gone, index replies: an entry for a reply, but the case is gone",
	}
	if !slices.Equal(lines, wantLines) {
		t.Fatalf("verify named:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
	}

	// Reindex removes exactly what verify named, and verify then passes.
	rep := reindex(t, st, false)
	wantChanges := []store.IndexChanges{
		{Index: "outbox", Removed: 1},
		{Index: "handed_over"},
		{Index: "held"},
		{Index: "undecided"},
		{Index: "by_office", Removed: 2},
		{Index: "replies", Removed: 2},
		{Index: "follow_ups", Removed: 2},
		{Index: "idempotency", Removed: 2},
	}
	if !slicesEqual(rep.Indexes, wantChanges) || rep.Changed() != len(wantLines) {
		t.Fatalf("reindex: %+v, want %+v", rep.Indexes, wantChanges)
	}
	if f := indexFaults(t, st); len(f) > 0 {
		t.Fatalf("verify after reindex: %v", f)
	}
	if got := strayEntries(t, st); len(got) > 0 {
		t.Fatalf("StrayEntries after reindex: %+v", got)
	}
	if again := reindex(t, st, false); again.Changed() != 0 {
		t.Fatalf("a second reindex changed %+v", again.Indexes)
	}
	// The member with a value stays a member, the office lists its case.
	if _, ok := jsstore.KeyValue(t, st, jsstore.OfficeKey(st, office, delivered.ID)); !ok {
		t.Fatal("reindex removed the office key of a case in that office")
	}
}

// TestVerifyDoesNotNameAKeyAGatewayWroteMeanwhile: verify runs beside serving
// gateways, and its listing and scan are older than the moment it names a
// key. A gateway's write after them must not make it name a key the record
// wants by then:
//   - a case moved (after the scan) to the office whose list held its key;
//   - a case created (after the scan) under the id a key without a record named;
//   - a reply added (after the scan) with the message id of a key its case
//     did not hold;
//   - a case created after the first listing, whose keys no listing of the
//     scan's moment held;
//
// while a key that stays stray is named. The moved case's key in its old
// office's list is a stray from then on: the next verify names it.
func TestVerifyDoesNotNameAKeyAGatewayWroteMeanwhile(t *testing.T) {
	_, st := openOnEmbedded(t, jsstore.Options{})
	moved := createCase(t, st, "race-moved", submission.StateDelivered, nil)
	oldOffice := moved.OfficeID
	answered := createCase(t, st, "race-answered", submission.StateDelivered, nil)
	stays := createCase(t, st, "race-stays", submission.StateDelivered, nil)

	jsstore.PutKey(t, st, jsstore.OfficeKey(st, "office-b", moved.ID), nil)      // a stray until the move
	jsstore.PutKey(t, st, jsstore.OfficeKey(st, oldOffice, "race-created"), nil) // a stray until the Create
	jsstore.PutKey(t, st, jsstore.ReplyKey(st, "xta-late", answered.ID), nil)    // a stray until the reply
	jsstore.PutKey(t, st, jsstore.OfficeKey(st, "office-c", stays.ID), nil)      // a stray throughout

	ran := false
	jsstore.AfterStrayScan(st, func() {
		ran = true
		if _, err := st.Update(moved.ID, func(x *submission.Submission) ([]submission.Event, error) {
			x.OfficeID = "office-b"
			return []submission.Event{{Type: submission.EventRouted, Detail: "office-b"}}, nil
		}); err != nil {
			t.Error(err)
		}
		createCase(t, st, "race-created", submission.StateQueued, nil)
		createCase(t, st, "race-late", submission.StateQueued, func(s *submission.Submission) { s.CaseID = stays.ID })
		if _, err := st.Update(answered.ID, func(x *submission.Submission) ([]submission.Event, error) {
			x.Replies = append(x.Replies, submission.Reply{ID: "r1", Kind: "Bescheid", MessageID: "xta-late", Size: 1, SHA256: x.PackageSHA256, Channel: "xta", At: time.Now().UTC()})
			return []submission.Event{{Type: submission.EventRouted, Detail: "reply"}}, nil
		}); err != nil {
			t.Error(err)
		}
	})
	got := strayEntries(t, st)
	jsstore.AfterStrayScan(st, nil)
	if !ran {
		t.Fatal("the hook did not run: no race")
	}
	if want := []store.StrayEntry{{Index: "by_office", ID: stays.ID, Name: "office-c"}}; !slices.Equal(got, want) {
		t.Fatalf("StrayEntries beside the gateway's writes:\n got %+v\nwant %+v", got, want)
	}

	// Now the moved case's key in its old office's list no record accounts
	// for: named, and removed by reindex with the other.
	want := []store.StrayEntry{{Index: "by_office", ID: moved.ID, Name: oldOffice}, {Index: "by_office", ID: stays.ID, Name: "office-c"}}
	sortStrays(want)
	if got := strayEntries(t, st); !slices.Equal(got, want) {
		t.Fatalf("StrayEntries afterwards:\n got %+v\nwant %+v", got, want)
	}
	if rep := reindex(t, st, false); rep.Changed() != 2 || rep.Indexes[4].Removed != 2 {
		t.Fatalf("reindex: %+v", rep.Indexes)
	}
	if got := strayEntries(t, st); len(got) > 0 {
		t.Fatalf("StrayEntries after reindex: %+v", got)
	}
}
