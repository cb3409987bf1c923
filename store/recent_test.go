package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/amtsbote/amtsbote/submission"
	bolt "go.etcd.io/bbolt"
)

// stored reads the record's stored bytes and decodes them, around the cache.
func stored(t *testing.T, db *DB, id string) ([]byte, *submission.Submission) {
	t.Helper()
	var raw []byte
	if err := db.view(func(tx *bolt.Tx) error {
		raw = copyBytes(tx.Bucket(bucketCases).Get(recordKey(id)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s, err := decodeSubmission(id, raw)
	if err != nil {
		t.Fatal(err)
	}
	return raw, s
}

// TestRecentRecords: a record read once comes from the cache the next time,
// equals what decoding the stored bytes gives, and is the reader's own; no
// write, through the store or around it, is ever read stale.
func TestRecentRecords(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &submission.Submission{ID: "s1", MessageID: "m1", Sender: "amt24", OfficeID: "o", OfficeName: "Amt",
		State: submission.StateAccepted, Generation: 1, Targets: []submission.Target{{Channel: "webhook"}}}
	if _, _, _, err := db.Create(context.Background(), s, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		raw, want := stored(t, db, "s1")
		got, err := db.Get("s1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: read %+v, stored %+v", when, got, want)
		}
		if cached, _ := db.recent.get("s1", raw); cached == nil {
			t.Fatalf("%s: the record read is not in the cache; every read decodes again", when)
		}
		// The reader's own copy: changing it changes nothing stored or cached.
		got.OfficeName, got.Targets[0].Channel = "changed", "changed"
		if again, _ := db.Get("s1"); !reflect.DeepEqual(again, want) {
			t.Fatalf("%s: a reader's change reached the next read: %+v", when, again)
		}
	}
	check("after Create")
	check("read again")

	// An update that changes the record and then fails leaves nothing behind.
	if _, err := db.Update("s1", func(s *submission.Submission) ([]submission.Event, error) {
		s.OfficeName, s.Targets[0].Channel = "half done", "half done"
		return nil, errors.New("refused")
	}); err == nil {
		t.Fatal("the failing update succeeded")
	}
	check("after a failed update")

	attempt := func() {
		t.Helper()
		if _, err := db.Update("s1", func(s *submission.Submission) ([]submission.Event, error) {
			s.Attempts++
			return []submission.Event{{Type: submission.EventAttemptFailed}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	attempt()
	check("after Update")
	attempt()
	// A write drops the entry at once (an erased case's data does not wait in
	// memory for eviction); the next read makes it again.
	if _, kept := db.recent.byID["s1"]; kept {
		t.Fatal("the record's entry outlived its write")
	}
	check("read after the write")

	// A write that does not pass the cache (as a restore or an older build
	// would): the next read sees it.
	_, cur := stored(t, db, "s1")
	cur.Receiver = "written around the cache"
	enc, err := encodeSubmission(cur)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketCases).Put(recordKey("s1"), enc) }); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Get("s1"); got.Receiver != "written around the cache" {
		t.Fatalf("read %q after a write around the cache: stale", got.Receiver)
	}

	// Deleted (retention): the entry goes with the record.
	if err := db.Delete("s1"); err != nil {
		t.Fatal(err)
	}
	if _, kept := db.recent.byID["s1"]; kept {
		t.Fatal("a deleted record's entry stayed in memory")
	}
}

// TestRecentIsBounded: the oldest entries go.
func TestRecentIsBounded(t *testing.T) {
	r := newRecent(4)
	for i := range 10 {
		r.put(fmt.Sprint(i), []byte{byte(i)}, &submission.Submission{ID: fmt.Sprint(i)}, false)
		r.put(fmt.Sprint(i), []byte{byte(i)}, &submission.Submission{ID: fmt.Sprint(i)}, false) // again: no second slot
	}
	if len(r.byID) != 4 {
		t.Fatalf("%d entries, want 4", len(r.byID))
	}
	if gone, _ := r.get("5", []byte{5}); gone != nil {
		t.Fatal("want the oldest entries gone")
	}
	if kept, _ := r.get("9", []byte{9}); kept == nil {
		t.Fatal("want the last four kept and the rest gone")
	}
}
