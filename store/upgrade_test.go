package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
	bolt "go.etcd.io/bbolt"
)

// writeOldLayout writes what builds before schema 4 wrote for n cases: the
// record under its id in "submissions", events under id, 0, sequence in
// "events", receipts under id, 0, kind in "receipts" — plus the other buckets as
// Open made them, an orphan event and an orphan receipt of a deleted case, and
// schema "3".
func writeOldLayout(t *testing.T, path string, ids []string) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketSubmissions, bucketEvents, bucketOutbox, bucketIdempotency, bucketReceipts, bucketByOffice, bucketMeta, bucketHandedOver, bucketHeld, bucketReplies, bucketBlobs} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketMeta).Put([]byte("schema"), []byte("3")); err != nil {
			return err
		}
		evb := tx.Bucket(bucketEvents)
		put := func(bucket []byte, k, v []byte) error { return tx.Bucket(bucket).Put(k, v) }
		for i, id := range ids {
			s := &submission.Submission{ID: id, MessageID: "m" + id, Sender: "amt24", OfficeID: "amt-01", State: submission.StateDelivered, Generation: 1}
			if i == 1 {
				// Fetched by the office's system (its plan's api channel) and not
				// decided, as those builds recorded it: without DeliveredVia.
				at := time.Now().UTC()
				s.Targets, s.DeliveredAt = []submission.Target{{Channel: "api"}}, &at
			}
			if i == 0 {
				s.State = submission.StateQueued
				if err := put(bucketOutbox, []byte(id), nil); err != nil {
					return err
				}
			}
			rec, _ := json.Marshal(s)
			if err := put(bucketSubmissions, []byte(id), pack(rec)); err != nil {
				return err
			}
			if err := put(bucketIdempotency, idempotencyKey(s.Sender, s.MessageID), []byte(id)); err != nil {
				return err
			}
			if err := put(bucketByOffice, officeKey(s.OfficeID, id), nil); err != nil {
				return err
			}
			for _, typ := range []string{"received", "delivered"} {
				seq, _ := evb.NextSequence()
				ev, _ := json.Marshal(submission.Event{Seq: seq, SubmissionID: id, Type: typ, At: time.Now().UTC()})
				if err := evb.Put(binary.BigEndian.AppendUint64([]byte(id+"\x00"), seq), ev); err != nil {
					return err
				}
			}
			for _, kind := range []string{"Eingangsbestaetigung", "Zustellbestaetigung"} {
				if err := put(bucketReceipts, []byte(id+"\x00"+kind), pack([]byte("<"+kind+" id=\""+id+"\"/>"))); err != nil {
					return err
				}
			}
		}
		seq, _ := evb.NextSequence()
		if err := evb.Put(binary.BigEndian.AppendUint64([]byte("gone\x00"), seq), []byte(`{"type":"received"}`)); err != nil {
			return err
		}
		return put(bucketReceipts, []byte("gone\x00Eingangsbestaetigung"), []byte("<r/>"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeToOneTree: a file of the three-bucket layout, moved in chunks of two
// cases, with a kill after the first chunk: the half-moved file already refuses
// an older build (schema 4), the next Open finishes the move, and every record,
// event (in order, numbered on from where the file was) and receipt reads back
// through the store as before; the indexes still work, the old buckets and the
// orphans are gone. The case its office fetched and never decided is in the
// undecided index, which those builds did not have.
func TestUpgradeToOneTree(t *testing.T) {
	defer func(n int) { upgradeChunk = n }(upgradeChunk)
	upgradeChunk = 2
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	var ids []string
	for i := range 5 {
		ids = append(ids, fmt.Sprintf("0190000%d-0000-7000-8000-00000000000%d", i, i))
	}
	ids = append(ids, strings.Repeat("L", 300)) // a long id: a two-byte length
	writeOldLayout(t, path, ids)

	// The first chunk, then a "kill".
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := upgradeStep(b); err != nil || n != 2 {
		t.Fatalf("first step moved %d, %v", n, err)
	}
	_ = b.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte("schema")); string(v) != schemaVersion {
			t.Errorf("half-moved file marked %q: an older build would misread it", v)
		}
		return nil
	})
	b.Close()

	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range ids {
		s, err := db.Get(id)
		if err != nil || s.MessageID != "m"+id {
			t.Fatalf("%.20s: %+v, %v", id, s, err)
		}
		evs, err := db.Events(id)
		if err != nil || len(evs) != 2 || evs[0].Type != "received" || evs[1].Type != "delivered" || evs[0].Seq >= evs[1].Seq {
			t.Fatalf("%.20s: events %+v, %v", id, evs, err)
		}
		for _, kind := range []string{"Eingangsbestaetigung", "Zustellbestaetigung"} {
			r, err := db.Receipt(id, kind)
			if err != nil || !bytes.Contains(r, []byte(kind)) || !bytes.Contains(r, []byte(id)) {
				t.Fatalf("%.20s: %s: %q, %v", id, kind, r, err)
			}
		}
		if f, err := db.FindByMessage("amt24", "m"+id); err != nil || f.ID != id {
			t.Fatalf("%.20s: by message: %v", id, err)
		}
	}
	n := 0
	if err := db.Scan(func(*submission.Submission) bool { n++; return true }); err != nil || n != len(ids) {
		t.Fatalf("scan: %d records, %v", n, err)
	}
	n = 0
	if err := db.WalkOffice("amt-01", "", func(*submission.Submission) bool { n++; return true }); err != nil || n != len(ids) {
		t.Fatalf("office walk: %d records, %v", n, err)
	}
	if out, err := db.Outbox(); err != nil || len(out) != 1 || out[0] != ids[0] {
		t.Fatalf("outbox %v, %v", out, err)
	}
	if ud, err := db.Undecided(); err != nil || len(ud) != 1 || ud[0].ID != ids[1] || ud[0].Office != "amt-01" {
		t.Fatalf("undecided %+v, %v; want %s", ud, err, ids[1])
	}
	// New events are numbered after the old ones.
	if _, err := db.Update(ids[1], func(s *submission.Submission) ([]submission.Event, error) {
		return []submission.Event{{Type: "decided"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	evs, _ := db.Events(ids[1])
	if len(evs) != 3 || evs[2].Seq <= uint64(2*len(ids)+1) {
		t.Fatalf("a new event after the upgrade: %+v", evs)
	}
	_ = db.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketSubmissions) != nil || tx.Bucket(bucketReceipts) != nil {
			t.Error("an old bucket is left")
		}
		if k, _ := tx.Bucket(bucketEvents).Cursor().First(); k != nil {
			t.Errorf("the events bucket still holds %q", k)
		}
		if c := tx.Bucket(bucketCases).Stats().KeyN; c != 5*len(ids)+1 { // record, two events, two receipts; one event more
			t.Errorf("%d keys in cases, want %d", c, 5*len(ids)+1)
		}
		return nil
	})
	// Deleting a case removes every key of it, and only its.
	if err := db.Delete(ids[2]); err != nil {
		t.Fatal(err)
	}
	_ = db.view(func(tx *bolt.Tx) error {
		if c := tx.Bucket(bucketCases).Stats().KeyN; c != 5*len(ids)+1-5 {
			t.Errorf("%d keys in cases after a delete, want %d", c, 5*len(ids)+1-5)
		}
		return nil
	})
}

// TestCaseKeys: a case's keys start with its prefix and no other case's, and an
// id's length ends it unambiguously, also where one id is a prefix of another.
func TestCaseKeys(t *testing.T) {
	long := strings.Repeat("x", 200)
	for _, id := range []string{"a", "ab", long, long + "y"} {
		for _, k := range [][]byte{recordKey(id), receiptKey(id, "Zustellbestaetigung"), binary.BigEndian.AppendUint64(caseKey(id, tagEvent), 7)} {
			got, _, _, err := splitCaseKey(k)
			if err != nil || string(got) != id {
				t.Errorf("%.12q: split %x gave %.12q, %v", id, k, got, err)
			}
		}
	}
	if bytes.HasPrefix(recordKey("ab"), casePrefix("a")) || bytes.HasPrefix(recordKey(long+"y"), casePrefix(long)) {
		t.Error("one id's keys carry another's prefix")
	}
	for _, bad := range [][]byte{{}, {5, 'a'}, {0x80}} {
		if _, _, _, err := splitCaseKey(bad); err == nil {
			t.Errorf("malformed key %x split", bad)
		}
	}
}

// TestUpgradeDropsOrphansInChunks: events an old build left without a record are
// dropped at the end of the upgrade, and like the cases they go upgradeChunk per
// transaction: a store with years of them deleted them all in one, which held
// every page of the events tree in memory until it committed. A kill between
// those steps leaves a file the next Open finishes.
func TestUpgradeDropsOrphansInChunks(t *testing.T) {
	defer func(n int) { upgradeChunk = n }(upgradeChunk)
	upgradeChunk = 3
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	writeOldLayout(t, path, []string{"01900000-0000-7000-8000-000000000001"})
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	const orphans = 20
	err = b.Update(func(tx *bolt.Tx) error {
		evb := tx.Bucket(bucketEvents)
		for i := range orphans {
			seq, _ := evb.NextSequence()
			if err := evb.Put(binary.BigEndian.AppendUint64([]byte(fmt.Sprintf("old%02d\x00", i)), seq), []byte(`{"type":"received"}`)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := upgradeStep(b); err != nil || n != 1 {
		t.Fatalf("the case: moved %d, %v", n, err)
	}
	// The orphans: the fixture's one event and receipt and the ones above.
	steps, dropped := 0, 0
	for {
		n, d, err := upgradeStep(b)
		if err != nil || n != 0 {
			t.Fatalf("moved %d, %v", n, err)
		}
		if d == 0 {
			break
		}
		// The receipts bucket goes whole (freed, not rewritten): its one orphan
		// may come on top of a chunk.
		if d > upgradeChunk+1 {
			t.Fatalf("one transaction dropped %d keys, at most %d wanted", d, upgradeChunk+1)
		}
		steps++
		dropped += d
		if steps == 2 { // a "kill" between two steps
			b.Close()
			if b, err = bolt.Open(path, 0o600, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	b.Close()
	if dropped != orphans+2 {
		t.Fatalf("dropped %d keys, want %d", dropped, orphans+2)
	}
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Get("01900000-0000-7000-8000-000000000001"); err != nil {
		t.Fatal(err)
	}
	_ = db.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketSubmissions) != nil || tx.Bucket(bucketReceipts) != nil {
			t.Error("an old bucket is left")
		}
		if k, _ := tx.Bucket(bucketEvents).Cursor().First(); k != nil {
			t.Errorf("the events bucket still holds %q", k)
		}
		return nil
	})
}
