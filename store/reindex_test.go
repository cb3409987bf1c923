package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/migrate"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
	bolt "go.etcd.io/bbolt"
)

// TestReindexInChunks: Reindex reads a big store in many transactions; faults
// on both sides of every chunk's edge, and entries without a record between and
// after the records' ids, are each repaired once, and the counts add up across
// the transactions. A second run changes nothing and Check finds no fault.
func TestReindexInChunks(t *testing.T) {
	defer store.SetReindexChunk(2)()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 9 {
		id := fmt.Sprintf("rc-%02d", i)
		s := storetest.NewSubmission(id, "amt24", "m-"+id)
		s.PackageSHA256, _ = db.Blobs().Put([]byte("package of " + id))
		s.Attachments = nil
		if _, _, _, err := db.Create(ctx, s, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
		// Every case delivered to the office's system and undecided.
		if _, err := db.Update(id, func(x *submission.Submission) ([]submission.Event, error) {
			return x.Confirm(time.Now().UTC(), "api", submission.Confirmation{Receiver: "office (pull API)"})
		}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// An older build's view: the odd cases have no undecided entry, and entries
	// of cases that are gone sit between and after the records.
	db = reopenEdited(t, dir, func(tx *bolt.Tx) error {
		u := tx.Bucket([]byte("undecided"))
		for i, id := range ids {
			if i%2 == 1 {
				if err := u.Delete([]byte(id)); err != nil {
					return err
				}
			}
		}
		return putKeys(u, "", "rc-03x", "rc-05x", "rc-99", "rc-991")
	})
	var p store.ReindexProgress
	rep, err := db.Reindex(ctx, &p)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 9 || p.Records.Load() != 9 || rep.Changed() != 8 {
		t.Fatalf("report %+v, progress %d records", rep, p.Records.Load())
	}
	for _, ix := range rep.Indexes {
		want := store.IndexChanges{Index: ix.Index}
		if ix.Index == "undecided" {
			want.Added, want.Removed = 4, 4
		}
		if ix != want {
			t.Errorf("%+v, want %+v", ix, want)
		}
	}
	u, err := db.Undecided()
	if err != nil || len(u) != 9 {
		t.Fatalf("undecided after: %v %v", store.IDs(u), err)
	}
	if rep, err := db.Reindex(ctx, nil); err != nil || rep.Changed() != 0 {
		t.Fatalf("second run: %+v %v", rep, err)
	}
	if _, _, faults, err := migrate.Check(ctx, db, nil); err != nil || len(faults) != 0 {
		t.Fatalf("Check after: %v %v", faults, err)
	}
}

// TestReindexRepairsTheFollowUpIndex: a Nachreichung an older build wrote has
// no entry in the index by case, and entries whose record is gone or names
// another case are left over; Reindex adds the one and removes the others.
func TestReindexRepairsTheFollowUpIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	create := func(id, caseID string) {
		t.Helper()
		s := storetest.NewSubmission(id, "amt24", "m-"+id)
		s.CaseID = caseID
		if _, _, _, err := db.Create(ctx, s, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
	}
	create("fu-case", "")
	create("fu-n1", "fu-case")
	create("fu-n2", "fu-case")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	storetest.EditFile(t, dir, func(tx *bolt.Tx) error {
		f := tx.Bucket([]byte("follow_ups"))
		if err := f.Delete([]byte("fu-case\x00fu-n1")); err != nil {
			return err
		}
		for _, k := range []string{"fu-case\x00fu-gone", "fu-other\x00fu-n2"} {
			if err := f.Put([]byte(k), nil); err != nil {
				return err
			}
		}
		return nil
	})
	db, err = store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, _ := db.FollowUps("fu-case"); fmt.Sprint(got) != "[fu-gone fu-n2]" {
		t.Fatalf("the planted faults did not take: %v", got)
	}
	rep, err := db.Reindex(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ix := range rep.Indexes {
		want := store.IndexChanges{Index: ix.Index}
		if ix.Index == "follow_ups" {
			want.Added, want.Removed = 1, 2
		}
		if ix != want {
			t.Errorf("%+v, want %+v", ix, want)
		}
	}
	if got, err := db.FollowUps("fu-case"); err != nil || fmt.Sprint(got) != "[fu-n1 fu-n2]" {
		t.Errorf("FollowUps after Reindex: %v %v", got, err)
	}
	if got, _ := db.FollowUps("fu-other"); len(got) != 0 {
		t.Errorf("the wrong case still lists %v", got)
	}
}

// TestWalkOfficePassesOverEntriesNoRecordAccountsFor: an office's list read
// each entry's record and failed on one whose record was gone (the office's
// whole listing then failed, the mailbox's and the pull API's) and handed on
// the case an entry named whatever office the record said (another office's
// case in this office's list). The JetStream store passed over both; bbolt
// does now, until `store reindex` removes the entries.
func TestWalkOfficePassesOverEntriesNoRecordAccountsFor(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var own []string
	for _, x := range []struct{ id, office string }{{"wo-1", "office-a"}, {"wo-2", "office-b"}, {"wo-3", "office-a"}} {
		s := storetest.NewSubmission(x.id, "amt24", "m-"+x.id)
		s.OfficeID = x.office
		if _, _, _, err := db.Create(context.Background(), s, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
		if x.office == "office-a" {
			own = append(own, x.id)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = reopenEdited(t, dir, func(tx *bolt.Tx) error {
		return putKeys(tx.Bucket([]byte("by_office")), "office-a\x00", "wo-0", "wo-2", "wo-2x", "wo-4") // gone, office-b's, gone, gone
	})
	for _, after := range []string{"", "wo-1"} {
		var walked []string
		if err := db.WalkOffice("office-a", after, func(s *submission.Submission) bool {
			walked = append(walked, s.ID)
			return true
		}); err != nil {
			t.Fatalf("after %q: %v", after, err)
		}
		want := own
		if after != "" {
			want = own[1:]
		}
		if !slices.Equal(walked, want) {
			t.Errorf("WalkOffice(office-a, after %q) = %v, want %v", after, walked, want)
		}
	}
}

// TestStrayEntriesInChunks: the entries no record accounts for are listed in
// read transactions of a few entries each, each once across the chunks' edges,
// and exactly those Reindex then removes; the file is not changed by the listing.
func TestStrayEntriesInChunks(t *testing.T) {
	defer store.SetReindexChunk(2)()
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		s := storetest.NewSubmission(fmt.Sprintf("se-%d", i), "amt24", fmt.Sprintf("m-se-%d", i))
		if _, _, _, err := db.Create(context.Background(), s, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	storetest.EditFile(t, dir, func(tx *bolt.Tx) error {
		if err := putKeys(tx.Bucket([]byte("by_office")), "office-a\x00", "se-0x", "se-2x", "se-4x"); err != nil { // between and after the records' entries
			return err
		}
		return tx.Bucket([]byte("idempotency")).Put([]byte("amt24\x00m-se-1"), []byte("se-3")) // another message's case
	})
	// Two records of one message: se-4 says it is m-se-0 too. The key of
	// m-se-0 stays se-0's, which is that message's; se-4's old key is stray.
	if err := store.RewriteRecord(dir, "se-4", func(m map[string]any) bool { m["messageId"] = "m-se-0"; return true }); err != nil {
		t.Fatal(err)
	}
	db, err = store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for range 2 { // a listing changes nothing
		es, err := db.StrayEntries(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := []store.StrayEntry{
			{Index: "by_office", ID: "se-0x", Name: "office-a", Gone: true},
			{Index: "by_office", ID: "se-2x", Name: "office-a", Gone: true},
			{Index: "by_office", ID: "se-4x", Name: "office-a", Gone: true},
			{Index: "idempotency", ID: "se-3", Name: "amt24\x00m-se-1"},
			{Index: "idempotency", ID: "se-4", Name: "amt24\x00m-se-4"},
		}
		if !slices.Equal(es, want) {
			t.Fatalf("StrayEntries = %+v, want %+v", es, want)
		}
	}
	rep, err := db.Reindex(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The idempotency key of se-1 is pointed at se-1 again: rewritten, not
	// removed as an entry se-3 does not account for.
	if ix := rep.Indexes[len(rep.Indexes)-1]; ix.Index != "idempotency" || ix.Rewritten != 1 || ix.Removed != 1 || ix.Added != 0 {
		t.Errorf("idempotency: %+v", ix)
	}
	if rep.Changed() != 5 {
		t.Fatalf("reindex changed %d entries, want the 5 listed: %+v", rep.Changed(), rep)
	}
	if s, err := db.FindByMessage("amt24", "m-se-0"); err != nil || s.ID != "se-0" {
		t.Fatalf("m-se-0: %v %v", s, err)
	}
	if es, err := db.StrayEntries(context.Background()); err != nil || len(es) != 0 {
		t.Fatalf("after reindex: %+v %v", es, err)
	}
	if _, _, faults, err := migrate.Check(context.Background(), db, nil); err != nil || len(faults) != 0 {
		t.Fatalf("after reindex: %v %v", faults, err)
	}
}

// reopenEdited hands the closed store file in dir to edit (storetest.EditFile)
// and opens it again, until the test ends.
func reopenEdited(t *testing.T, dir string, edit func(*bolt.Tx) error) *store.DB {
	t.Helper()
	storetest.EditFile(t, dir, edit)
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// putKeys puts prefix+id with no value into b for each id: index entries as a
// damaged file may hold them.
func putKeys(b *bolt.Bucket, prefix string, ids ...string) error {
	for _, id := range ids {
		if err := b.Put([]byte(prefix+id), nil); err != nil {
			return err
		}
	}
	return nil
}
