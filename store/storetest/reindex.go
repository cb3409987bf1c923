package storetest

import (
	"context"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// testReindex: a gateway of an older build beside this one (a rolling upgrade,
// a way back and forward again) rewrites records and keeps only the indexes it
// knows, or none of the newer ones — Rewrite writes a record the way such a
// gateway does, past the indexes. `amtsbote store reindex` must bring every
// index back in line with the records, say per index what it changed, in one
// shape for both stores, and find nothing to do on a second run:
//   - a case the older build decided is still in the undecided index;
//   - a case it held is still in the outbox and missing from the held index;
//   - a Nachreichung it took in is not under its case;
//   - a case it moved to another office is missing from that office's list, and
//     still in the old one's, and its outbox entry names the old office.
func (s *suite) testReindex(t *testing.T) {
	st := s.h.Open(t)
	mk := func() *submission.Submission {
		return mustCreate(t, st, NewSubmission(uid("ri"), uid("p"), uid("m")), firstEvents(), "r")
	}
	decided, held, followUp, moved := mk(), mk(), mk(), mk()
	if _, err := st.Update(decided.ID, deliverVia("api")); err != nil {
		t.Fatal(err)
	}
	officeZ := uid("office-z")
	at := time.Now().UTC().Format(time.RFC3339Nano)
	for id, edit := range map[string]func(r map[string]any){
		decided.ID: func(r map[string]any) {
			r["state"] = string(submission.StateAccepted)
			r["decision"] = map[string]any{"outcome": submission.OutcomeAccepted, "at": at, "actor": "fv"}
		},
		held.ID:     func(r map[string]any) { r["state"] = string(submission.StateHeld) },
		followUp.ID: func(r map[string]any) { r["caseId"] = decided.ID },
		moved.ID:    func(r map[string]any) { r["officeId"] = officeZ },
	} {
		st = s.h.Rewrite(t, st, id, func(r map[string]any) bool { edit(r); return true })
	}

	rep := s.h.Reindex(t, st)
	want := map[string]store.IndexChanges{
		"outbox":     {Index: "outbox", Removed: 1, Rewritten: 1},
		"held":       {Index: "held", Added: 1},
		"undecided":  {Index: "undecided", Removed: 1},
		"by_office":  {Index: "by_office", Added: 1, Removed: 1},
		"follow_ups": {Index: "follow_ups", Added: 1},
	}
	for _, ix := range rep.Indexes {
		w, ok := want[ix.Index]
		if !ok {
			w = store.IndexChanges{Index: ix.Index}
		}
		if ix != w {
			t.Errorf("reindex changed %+v, want %+v", ix, w)
		}
		delete(want, ix.Index)
	}
	if len(want) > 0 || rep.Records != 4 {
		t.Fatalf("report of %d records lacks %v: %+v", rep.Records, want, rep)
	}

	// What the indexes serve follows the records again.
	ud, err := store.IDsOf(st.Undecided)()
	if err != nil || slices.Contains(ud, decided.ID) {
		t.Fatalf("undecided %v (%v): still names the decided case", ud, err)
	}
	hl, err := store.IDsOf(st.Held)()
	if err != nil || !slices.Contains(hl, held.ID) {
		t.Fatalf("held %v (%v): lacks the held case", hl, err)
	}
	ob, err := st.Outbox()
	if err != nil || slices.Contains(ob, held.ID) {
		t.Fatalf("outbox %v (%v): still names the held case", ob, err)
	}
	if ids, err := st.FollowUps(decided.ID); err != nil || !slices.Equal(ids, []string{followUp.ID}) {
		t.Fatalf("FollowUps: %v %v", ids, err)
	}
	var inZ []string
	if err := st.WalkOffice(officeZ, "", func(x *submission.Submission) bool { inZ = append(inZ, x.ID); return true }); err != nil || !slices.Equal(inZ, []string{moved.ID}) {
		t.Fatalf("office %s lists %v (%v)", officeZ, inZ, err)
	}
	w, err := st.Waiting(officeZ)
	if err != nil || len(w) != 1 || w[0].ID != moved.ID || w[0].Office != officeZ {
		t.Fatalf("office %s's waiting list %+v (%v)", officeZ, w, err)
	}

	if again := s.h.Reindex(t, st); again.Changed() != 0 || again.Records != 4 {
		t.Fatalf("a second reindex changed %+v", again)
	}
}

// testStrays: `amtsbote store verify` names the entries of the indexes keyed by
// a name that no record accounts for, and `store reindex` removes them; an
// operator trusts "verify passes, so reindex has nothing to do" on both
// stores. On the cluster verify named none (it had no such listing) and
// reindex removed them. Every store lists them (store.StrayLister), and names
// exactly those its repair removes: after a gateway of another build moved a
// case to another office (its key in the old office's list stays) and a
// Nachreichung to another case (its key under the old case stays), those two
// and nothing else; after the repair, none.
func (s *suite) testStrays(t *testing.T) {
	st := s.h.Open(t)
	l, ok := st.(store.StrayLister)
	if !ok {
		t.Fatalf("%T lists no stray entries (store.StrayLister): store verify cannot name what store reindex removes", st)
	}
	mk := func(edit func(*submission.Submission)) *submission.Submission {
		sub := NewSubmission(uid("sy"), uid("p"), uid("m"))
		if edit != nil {
			edit(sub)
		}
		return mustCreate(t, st, sub, firstEvents(), "r")
	}
	caseA, caseB := mk(nil), mk(nil)
	moved := mk(nil)
	followUp := mk(func(x *submission.Submission) { x.CaseID = caseA.ID })
	lister := func() store.StrayLister {
		t.Helper()
		l, ok := st.(store.StrayLister)
		if !ok {
			t.Fatalf("%T lists no stray entries after Rewrite", st)
		}
		return l
	}
	if es, err := l.StrayEntries(context.Background()); err != nil || len(es) != 0 {
		t.Fatalf("a sound store's stray entries: %+v (%v)", es, err)
	}
	officeZ := uid("office-z")
	st = s.h.Rewrite(t, st, moved.ID, func(r map[string]any) bool { r["officeId"] = officeZ; return true })
	st = s.h.Rewrite(t, st, followUp.ID, func(r map[string]any) bool { r["caseId"] = caseB.ID; return true })

	es, err := lister().StrayEntries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(es, func(i, j int) bool { return es[i].Index < es[j].Index })
	want := []store.StrayEntry{
		{Index: "by_office", ID: moved.ID, Name: moved.OfficeID},
		{Index: "follow_ups", ID: followUp.ID, Name: caseA.ID},
	}
	if !slices.Equal(es, want) {
		t.Fatalf("stray entries:\n got %+v\nwant %+v", es, want)
	}
	rep := s.h.Reindex(t, st)
	removed := 0
	for _, ix := range rep.Indexes {
		removed += ix.Removed
	}
	if removed != len(want) {
		t.Fatalf("reindex removed %d entries, the listing named %d: %+v", removed, len(want), rep.Indexes)
	}
	if es, err := lister().StrayEntries(context.Background()); err != nil || len(es) != 0 {
		t.Fatalf("stray entries after reindex: %+v (%v)", es, err)
	}
}
